"""Azure credentials: `DefaultAzureCredential` everywhere.

In Azure that is the Function App's managed identity (user-assigned when AZURE_CLIENT_ID is set);
on a laptop `az login`; against the local stack the managed identity endpoint of
`devtools/identity.py`, reached through the same IDENTITY_ENDPOINT / IDENTITY_HEADER variables
the Functions host sets. There is no other path.
"""
from __future__ import annotations

from shared.config.settings import Settings


def credential(settings: Settings):
    """A DefaultAzureCredential for ARM, Key Vault, AKS and ACR token exchange."""
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(managed_identity_client_id=settings.managed_identity_client_id)
