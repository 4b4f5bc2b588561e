"""Local Azure identity: the App Service managed identity endpoint, as a Function App sees it.

In Azure, a Function App's `DefaultAzureCredential` finds its managed identity through the
`IDENTITY_ENDPOINT` and `IDENTITY_HEADER` environment variables and asks that endpoint for a
token per resource. `IdentityStub` serves the same protocol (api-version 2019-08-01) on loopback
and hands out one fixed token, so the product's own credential path runs unchanged against the
local emulators: no dev-only branch in the product. `StaticToken` is for test code that drives
an SDK client directly (to look at or change an emulator's state).
"""
from __future__ import annotations

import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

API_VERSION = "2019-08-01"


class StaticToken:
    """A fixed bearer token for test code's own SDK clients."""

    def __init__(self, token: str):
        self._token = token

    def get_token(self, *scopes: str, **kwargs: Any):
        from azure.core.credentials import AccessToken

        return AccessToken(self._token, 2**31 - 1)

    def get_token_info(self, *scopes: str, options: Any = None):
        from azure.core.credentials import AccessTokenInfo

        return AccessTokenInfo(self._token, 2**31 - 1)


class IdentityStub:
    """The managed identity endpoint of App Service / Functions. `token` is what it issues (change it to
    test a refused token); `requests` records (resource, client_id) per token request."""

    def __init__(self, token: str):
        self.token = token
        self.header = secrets.token_hex(16)
        self.requests: list[tuple[str, str | None]] = []
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://127.0.0.1:{self._server.server_address[1]}/msi/token"

    @property
    def env(self) -> dict[str, str]:
        """The variables the Functions host sets for a managed identity."""
        return {"IDENTITY_ENDPOINT": self.url, "IDENTITY_HEADER": self.header}

    def start(self) -> "IdentityStub":
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                status, body = stub.answer(self.path, self.headers.get("X-IDENTITY-HEADER"))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True, name="identity-stub").start()
        return self

    def answer(self, path: str, header: str | None) -> tuple[int, dict[str, Any]]:
        """The endpoint's answer: 400 without the header secret or a resource, else a token for an hour."""
        query = {k: v[0] for k, v in parse_qs(urlsplit(path).query).items()}
        if header != self.header:
            return 400, {"statusCode": 400, "message": "X-IDENTITY-HEADER is missing or wrong"}
        if query.get("api-version") != API_VERSION or not query.get("resource"):
            return 400, {"statusCode": 400, "message": f"api-version {API_VERSION} and resource are required"}
        self.requests.append((query["resource"], query.get("client_id")))
        return 200, {"access_token": self.token, "expires_on": str(int(time.time()) + 3600),
                     "resource": query["resource"], "token_type": "Bearer", "client_id": query.get("client_id", "")}

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
