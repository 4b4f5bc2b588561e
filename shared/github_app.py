"""GitHub App authentication: app id + private key -> a short-lived installation token (PyGithub)."""
from __future__ import annotations

import threading
import time


class InstallationToken:
    """Callable returning a valid installation token, renewed five minutes before it expires."""

    def __init__(self, app_id: str, private_key: str, installation_id: str, api_url: str = "https://api.github.com"):
        self._app_id, self._key, self._installation = app_id, private_key, int(installation_id)
        self._api_url = api_url
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"InstallationToken(app_id={self._app_id!r}, installation_id={self._installation})"

    def __call__(self) -> str:
        with self._lock:
            if self._token is None or time.time() > self._expires - 300:
                from github import Auth, GithubIntegration

                integration = GithubIntegration(auth=Auth.AppAuth(self._app_id, self._key), base_url=self._api_url)
                grant = integration.get_access_token(self._installation)
                self._token, self._expires = grant.token, grant.expires_at.timestamp()
            return self._token
