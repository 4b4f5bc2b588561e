"""Azure DevOps REST (Azure Repos statuses and commits, PR properties, Azure Pipelines plan events).

The token (PAT or Entra token from Key Vault) goes as the basic-auth password, as Azure DevOps
expects, with `X-TFS-FedAuthRedirect: Suppress` so a refused token is a 401 rather than a 203 sign-in page
(a 203 is treated as a 401 all the same). Every refusal becomes `AzureDevOpsError`; the token never appears
in a message.
"""
from __future__ import annotations

from typing import Any, Callable
from urllib.parse import urlsplit

TIMEOUT = 10
HEADERS = {"Accept": "application/json", "X-TFS-FedAuthRedirect": "Suppress"}


class AzureDevOpsError(RuntimeError):
    """Azure DevOps refused a request (`status`) or could not be reached (`status` None)."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status


class AzureDevOps:
    """Calls one organization's REST API with the token from `token()`."""

    def __init__(self, token: Callable[[], str | None]):
        self._token = token

    def request(self, method: str, url: str, body: dict | None = None, *,
                missing_ok: bool = False) -> dict[str, Any] | None:
        """The JSON answer ({} when empty); None for a 404 when `missing_ok`."""
        import requests

        try:
            reply = requests.request(method, url, json=body, auth=("", self._token() or ""), timeout=TIMEOUT,
                                     headers=HEADERS, allow_redirects=False)
        except requests.RequestException as exc:
            raise AzureDevOpsError(f"Azure DevOps unreachable: {type(exc).__name__}") from None
        if reply.status_code == 404 and missing_ok:
            return None
        if reply.status_code == 203 or (200 <= reply.status_code < 300 and "json" not in
                                        reply.headers.get("Content-Type", "json")):
            raise AzureDevOpsError(f"Azure DevOps answered {reply.status_code} with a sign-in page for {method} "
                                   f"{urlsplit(url).path}: the token was not accepted", status=401)
        if reply.status_code >= 300:
            raise AzureDevOpsError(f"Azure DevOps answered {reply.status_code} for {method} {urlsplit(url).path}",
                                   status=reply.status_code)
        return reply.json() if reply.content else {}
