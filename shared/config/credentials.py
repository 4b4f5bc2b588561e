"""Azure credentials: DefaultAzureCredential in Azure (managed identity, `az login` locally),
or a fixed bearer token for the local emulators (DRIFTLESS_EMULATOR_TOKEN, dev only)."""
from __future__ import annotations

from typing import Any

from shared.config.settings import Settings


class StaticToken:
    """A fixed bearer token, for the local ACA emulator only (DRIFTLESS_EMULATOR_TOKEN)."""

    def __init__(self, token: str):
        self._token = token

    def get_token(self, *scopes: str, **kwargs: Any):
        from azure.core.credentials import AccessToken

        return AccessToken(self._token, 2**31 - 1)

    def get_token_info(self, *scopes: str, options: Any = None):
        from azure.core.credentials import AccessTokenInfo

        return AccessTokenInfo(self._token, 2**31 - 1)


def credential(settings: Settings):
    """The credential for ARM: the emulator token when set, else DefaultAzureCredential."""
    if settings.emulator_token:
        return StaticToken(settings.emulator_token)
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(managed_identity_client_id=settings.managed_identity_client_id)
