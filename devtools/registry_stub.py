"""A local stand-in for an OCI distribution registry over HTTPS, recording every call (dev only).

Serves `HEAD|GET /v2/<repo>/manifests/<tag>` and `GET /v2/<repo>/tags/list` (pages of `page_size`
tags with a `Link: <...>; rel="next"` header), behind one of three auth modes:
- `none`: anonymous;
- `bearer`: Docker Hub / GHCR style, 401 with `WWW-Authenticate: Bearer realm=<stub>/token,service,scope`;
  `GET /token` issues a token for the scope, demanding Basic `credentials` when they are set;
- `acr`: Azure Container Registry style, `POST /oauth2/exchange` (an Entra `access_token` for a refresh
  token) and `POST /oauth2/token` (a refresh token for a repository-scoped access token).
The certificate is issued by the shared test CA for 127.0.0.1, localhost and *.azurecr.io.
"""
from __future__ import annotations

import base64
import json
import re
import ssl
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from devtools.tls import TlsServer, certificate

MANIFEST_TYPE = "application/vnd.oci.image.index.v1+json"
_MANIFEST = re.compile(r"^/v2/(.+)/manifests/([^/]+)$")
_TAGS = re.compile(r"^/v2/(.+)/tags/list$")


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, list[str]]
    form: dict[str, list[str]]
    headers: dict[str, str]


@dataclass
class RegistryStub:
    """Seed `images` (repository -> tags); read `calls`; `host` is 127.0.0.1:<port> once started."""

    cert_dir: str | None = None
    auth: str = "bearer"                 # none | bearer | acr
    credentials: str | None = None       # user:password the token endpoint demands (bearer)
    entra_token: str | None = None       # the Entra token /oauth2/exchange accepts (acr)
    service: str = "registry.stub"       # the `service` the challenge names and the token endpoints expect
    page_size: int = 100
    images: dict[str, list[str]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    host: str = ""

    def __post_init__(self) -> None:
        self.ca_path, self._leaf, self._tmp = certificate(self.cert_dir, "127.0.0.1", "localhost", "*.azurecr.io")
        self._tokens: dict[str, str] = {}         # access token -> scope
        self._refresh: set[str] = set()
        self._lock = threading.Lock()

    def start(self) -> "RegistryStub":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._leaf.configure_cert(context)
        self._server = TlsServer(("127.0.0.1", 0), context, self, _Handler)
        self.host = f"127.0.0.1:{self._server.server_address[1]}"
        self._server.serve_in_background("registry-stub")
        return self

    def stop(self) -> None:
        self._server.stop()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def push(self, repository: str, *tags: str) -> None:
        """Make images `repository:<tag>` exist."""
        with self._lock:
            self.images.setdefault(repository, []).extend(t for t in tags if t not in self.images[repository])

    def of(self, kind: str) -> list[Call]:
        """Calls of one kind: manifest, tags, token, exchange, oauth_token."""
        return [c for c in self.calls if _kind(c.path) == kind]

    # --- handling ----------------------------------------------------------------------------
    def handle(self, method: str, target: str, raw: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        parts = urlsplit(target)
        form = parse_qs(raw.decode()) if raw else {}
        with self._lock:
            self.calls.append(Call(method, parts.path, parse_qs(parts.query), form, headers))
        kind = _kind(parts.path)
        if kind == "token" and self.auth == "bearer":
            return self._token(parse_qs(parts.query), headers)
        if kind in ("exchange", "oauth_token") and self.auth == "acr" and method == "POST":
            return self._acr(kind, form)
        match = _MANIFEST.match(parts.path) or _TAGS.match(parts.path)
        if match is None:
            return 404, {}, {"errors": [{"code": "NOT_FOUND"}]}
        repository = match.group(1)
        denied = self._denied(repository, headers)
        if denied:
            return denied
        tags = list(self.images.get(repository, []))
        if kind == "manifest":
            found = match.group(2) in tags
            return (200, {"Content-Type": MANIFEST_TYPE, "Docker-Content-Digest": "sha256:" + "0" * 64}, {}) \
                if found else (404, {}, {"errors": [{"code": "MANIFEST_UNKNOWN"}]})
        if repository not in self.images:
            return 404, {}, {"errors": [{"code": "NAME_UNKNOWN"}]}
        query = parse_qs(parts.query)
        size = min(int(query.get("n", [self.page_size])[0]), self.page_size)
        last = query.get("last", [None])[0]
        ordered = sorted(tags)
        rest = [t for t in ordered if last is None or t > last]
        page = rest[:size]
        extra = {}
        if len(rest) > size:
            extra["Link"] = f'</v2/{repository}/tags/list?{urlencode({"n": size, "last": page[-1]})}>; rel="next"'
        return 200, extra, {"name": repository, "tags": page}

    def _denied(self, repository: str, headers: dict[str, str]) -> tuple[int, dict[str, str], Any] | None:
        if self.auth == "none":
            return None
        scope = f"repository:{repository}:pull"
        given = headers.get("Authorization", "")
        if given.startswith("Bearer ") and self._tokens.get(given[7:]) == scope:
            return None
        realm = f"https://{self.host}/token" if self.auth == "bearer" else f"https://{self.host}/oauth2/token"
        return 401, {"WWW-Authenticate": f'Bearer realm="{realm}",service="{self.service}",scope="{scope}"'}, \
            {"errors": [{"code": "UNAUTHORIZED"}]}

    def _token(self, query: dict[str, list[str]], headers: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        if self.credentials:
            expected = "Basic " + base64.b64encode(self.credentials.encode()).decode()
            if headers.get("Authorization") != expected:
                return 401, {}, {"details": "incorrect username or password"}
        if query.get("service") != [self.service] or not query.get("scope"):
            return 400, {}, {"details": "service and scope are required"}
        return 200, {}, {"token": self._issue(query["scope"][0]), "expires_in": 300}

    def _acr(self, kind: str, form: dict[str, list[str]]) -> tuple[int, dict[str, str], Any]:
        value = {k: v[0] for k, v in form.items()}
        if value.get("service") != self.service:
            return 400, {}, {"errors": [{"message": "wrong service"}]}
        if kind == "exchange":
            if value.get("grant_type") != "access_token" or value.get("access_token") != self.entra_token:
                return 401, {}, {"errors": [{"message": "invalid Entra token"}]}
            refresh = f"acr-refresh-{uuid.uuid4().hex}"
            self._refresh.add(refresh)
            return 200, {}, {"refresh_token": refresh}
        if value.get("grant_type") != "refresh_token" or value.get("refresh_token") not in self._refresh:
            return 401, {}, {"errors": [{"message": "invalid refresh token"}]}
        return 200, {}, {"access_token": self._issue(value.get("scope", ""))}

    def _issue(self, scope: str) -> str:
        token = f"stub-token-{uuid.uuid4().hex}"
        self._tokens[token] = scope
        return token


def _kind(path: str) -> str:
    if _MANIFEST.match(path):
        return "manifest"
    if _TAGS.match(path):
        return "tags"
    return {"/token": "token", "/oauth2/exchange": "exchange", "/oauth2/token": "oauth_token"}.get(path, "other")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        status, headers, body = self.server.owner.handle(self.command, self.path, raw, dict(self.headers))
        data = json.dumps(body).encode()
        self.send_response(status)
        headers = {"Content-Type": "application/json", **headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_HEAD = do_POST = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass
