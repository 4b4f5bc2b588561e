"""Local HTTPS stub of Azure Key Vault's secrets API (dev only).

Follows Key Vault's wire contract closely enough for the real
``azure.keyvault.secrets.SecretClient`` to run against it unchanged: an
unauthenticated request is answered 401 with Key Vault's ``WWW-Authenticate``
challenge, ``GET /secrets/{name}[/{version}]`` and ``PUT /secrets/{name}`` return
secret bundles, unknown secrets are 404 ``SecretNotFound``.

The SDK only accepts a challenge whose resource is a parent domain of the vault
host, which an IP address never has. So, as in Azure (``<vault>.vault.azure.net``
challenged for ``https://vault.azure.net``), the stub is addressed as
``https://driftless.vault.localhost:<port>`` and challenges for
``https://vault.localhost:<port>``. That name must resolve to the loopback
address (RFC 6761; systemd-resolved does so, else add it to the hosts file).

Refusals Key Vault makes, with its status codes and bodies: ``deny`` makes the
caller lack an RBAC role (403 ``Forbidden``, inner error ``ForbiddenByRbac``),
``disable`` disables a secret (403 ``Forbidden`` "Operation get is not allowed on
a disabled secret.", inner error ``SecretDisabled``), ``throttle`` answers the
next requests 429 ``Throttled`` with a ``Retry-After`` header.
"""

from __future__ import annotations

import json
import re
import ssl
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import trustme

from devtools.tls import TlsServer, certificate

VAULT_DOMAIN = "vault.localhost"
VAULT_NAME = "driftless"
VAULT_HOST = f"{VAULT_NAME}.{VAULT_DOMAIN}"
TENANT_ID = "00000000-0000-0000-0000-000000000000"
NOT_FOUND_HINT = (
    "If you recently deleted this secret you may be able to recover it using the correct recovery command. "
    "For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
)
_SECRET_PATH = re.compile(r"/secrets/(?P<name>[^/]+)(?:/(?P<version>[^/]*))?/?")
_VALID_NAME = re.compile(r"[0-9a-zA-Z-]{1,127}")


@dataclass
class _Reply:
    """One answer: status, JSON body and extra headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None,
           inner: str | None = None) -> _Reply:
    error: dict[str, Any] = {"code": code, "message": message}
    if inner:
        error["innererror"] = {"code": inner}
    return _Reply(status, {"error": error}, headers or {})


@dataclass
class _Version:
    """One stored secret version."""

    name: str
    version: str
    value: str
    created: int
    tags: dict[str, str]
    content_type: str | None
    enabled: bool = True

    def bundle(self, base_url: str) -> dict[str, Any]:
        """The secret bundle Key Vault returns for this version, its id under ``base_url``."""
        body: dict[str, Any] = {
            "value": self.value,
            "id": f"{base_url}/secrets/{self.name}/{self.version}",
            "attributes": {"enabled": self.enabled, "created": self.created, "updated": self.created,
                           "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90},
            "tags": self.tags,
        }
        if self.content_type is not None:
            body["contentType"] = self.content_type
        return body


class KeyVaultStub:
    """In-memory Key Vault (secrets only) served over HTTPS; see the module docstring.

    ``token``: when given, only ``Authorization: Bearer <token>`` is accepted (others get 401 Unauthorized).
    ``down``: while True every request is answered 503 ServiceUnavailable.
    """

    def __init__(self, cert_dir: str | None = None, token: str | None = None) -> None:
        self._token = token
        self._lock = threading.Lock()
        self._secrets: dict[str, list[_Version]] = {}
        self._counts: Counter[str] = Counter()
        self._server: TlsServer | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.down = False
        self._denied: set[str] = set()     # secret names (lower case, "*" for all) the caller has no role for
        self._throttled: list[str] = []     # Retry-After of each next request to answer 429
        self.url = ""
        self.ca_path, self._server_cert = self._load_certificates(cert_dir)

    # ---------------------------------------------------------- lifecycle

    def start(self, host: str = "127.0.0.1", port: int = 0) -> KeyVaultStub:
        """Serve in a daemon thread; ``url`` (the vault URL for clients) is set once listening."""
        if self._server is not None:
            raise RuntimeError("stub already started")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._server_cert.configure_cert(context)
        self._server = TlsServer((host, port), context, self, _Handler)
        self.url = f"https://{VAULT_HOST}:{self._server.server_address[1]}"
        self._server.serve_in_background("keyvault-stub")
        return self

    def stop(self) -> None:
        """Stop serving and close open connections; secrets are kept."""
        if self._server is None:
            return
        self._server.stop()
        self._server = None

    def _load_certificates(self, cert_dir: str | None) -> tuple[str, trustme.LeafCert]:
        """Reuse the CA in ``cert_dir`` (``ca.pem`` + ``ca-key.pem``, as the ACA emulator does) or create one."""
        ca_path, leaf, self._tmp = certificate(cert_dir, VAULT_HOST, "127.0.0.1", "localhost")
        return ca_path, leaf

    # ----------------------------------------------------- public control

    def set_secret(self, name: str, value: str) -> str:
        """Store a new version of ``name``; return the version (32 hex digits)."""
        with self._lock:
            return self._store(name, value, {}, None).version

    def values(self) -> dict[str, str]:
        """The latest value of every secret (tests check that none of them leaks into logs)."""
        with self._lock:
            return {name: versions[-1].value for name, versions in self._secrets.items() if versions}

    def calls(self) -> dict[str, int]:
        """Requests received per kind: "GET secret", "PUT secret", "challenge" (no bearer), "unauthorized", "other"."""
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        """Forget all secrets, counters, denials and throttling; bring the vault back up."""
        with self._lock:
            self._secrets.clear()
            self._counts.clear()
            self._denied.clear()
            self._throttled.clear()
            self.down = False

    def deny(self, name: str = "*") -> None:
        """The caller loses its RBAC role for secret `name` (every secret with "*"): 403 ForbiddenByRbac."""
        with self._lock:
            self._denied.add(name.lower())

    def disable(self, name: str) -> None:
        """Disable the latest version of `name`, as `az keyvault secret set-attributes --enabled false` does."""
        with self._lock:
            self._secrets[name.lower()][-1].enabled = False

    def throttle(self, count: int = 1, retry_after: str = "1") -> None:
        """Answer the next `count` authenticated requests 429 Throttled with `Retry-After: <retry_after>`."""
        with self._lock:
            self._throttled += [retry_after] * count

    # ----------------------------------------------------------- dispatch

    def handle(self, method: str, target: str, authorization: str | None, body: bytes, base_url: str) -> _Reply:
        """Answer one request: outage, then authentication, then api-version, then the secrets routes."""
        url = urlsplit(target)
        route, match = _route(method, url.path)
        with self._lock:
            if self.down:
                self._counts[route] += 1
                return _error(503, "ServiceUnavailable", "The service is temporarily unavailable. Try again later.")
            if not (authorization or "").startswith("Bearer "):
                self._counts["challenge"] += 1
                return self._unauthorized("AKV10000: Request is missing a Bearer or PoP token.")
            if self._token is not None and authorization != f"Bearer {self._token}":
                self._counts["unauthorized"] += 1
                return self._unauthorized("AKV10032: Invalid issuer. The access token is not valid for this vault.")
            self._counts[route] += 1
            if self._throttled:
                self._counts["throttled"] += 1
                return _error(429, "Throttled", "Request was not processed because too many requests were received. "
                              "Reason: VaultRequestTypeLimitReached", {"Retry-After": self._throttled.pop(0)})
            if not dict(parse_qsl(url.query)).get("api-version"):
                return _error(400, "BadParameter", "The request URI has an invalid or missing api-version parameter.")
            if match is None:
                return _error(404, "NotFound", f"No route for {method} {url.path}.")
            name = unquote(match["name"])
            if self._denied & {"*", name.lower()}:
                self._counts["forbidden"] += 1
                return self._forbidden_by_rbac(name, "setSecret" if method == "PUT" else "getSecret")
            if method == "PUT":
                return self._put(base_url, name, body)
            return self._get(base_url, name, unquote(match["version"] or ""))

    def _forbidden_by_rbac(self, name: str, action: str) -> _Reply:
        """Key Vault's answer to a caller whose role assignments do not allow `action` on the secret."""
        message = ("Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments "
                   "or role definitions were changed recently, please observe propagation time.\r\n"
                   f"Caller: appid={TENANT_ID};oid={TENANT_ID};iss=https://sts.windows.net/{TENANT_ID}/\r\n"
                   f"Action: 'Microsoft.KeyVault/vaults/secrets/{action}/action'\r\n"
                   f"Resource: '/subscriptions/{TENANT_ID}/resourcegroups/rg/providers/microsoft.keyvault/vaults/"
                   f"{VAULT_NAME}/secrets/{name.lower()}'\r\nAssignment: (not found)\r\nDenyAssignmentId: null\r\n"
                   f"DecisionReason: 'DeniedWithNoValidRBAC' \r\nVault: {VAULT_NAME};location=westeurope\r\n")
        return _error(403, "Forbidden", message, inner="ForbiddenByRbac")

    def _unauthorized(self, message: str) -> _Reply:
        """401 with Key Vault's challenge; its resource is the parent domain of ``VAULT_HOST`` at our port."""
        port = self._server.server_address[1] if self._server else 443
        challenge = (f'Bearer authorization="https://login.microsoftonline.com/{TENANT_ID}", '
                     f'resource="https://{VAULT_DOMAIN}:{port}"')
        return _error(401, "Unauthorized", message, {"WWW-Authenticate": challenge})

    def _get(self, base_url: str, name: str, version: str) -> _Reply:
        versions = self._secrets.get(name.lower(), [])
        found = [v for v in versions if v.version == version] if version else versions[-1:]
        if not found:
            shown = f"{name}/{version}" if version else name
            return _error(404, "SecretNotFound",
                          f"A secret with (name/id) {shown} was not found in this key vault. {NOT_FOUND_HINT}")
        if not found[0].enabled:
            return _error(403, "Forbidden", "Operation get is not allowed on a disabled secret.", inner="SecretDisabled")
        return _Reply(200, found[0].bundle(base_url))

    def _put(self, base_url: str, name: str, body: bytes) -> _Reply:
        if not _VALID_NAME.fullmatch(name):
            message = f"The secret name '{name}' is invalid: use 1-127 letters, digits and dashes."
            return _error(400, "BadParameter", message)
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        if not isinstance(payload, dict) or not isinstance(payload.get("value"), str):
            return _error(400, "BadParameter", "Property 'value' is required and must be a string.")
        tags = payload["tags"] if isinstance(payload.get("tags"), dict) else {}
        return _Reply(200, self._store(name, payload["value"], tags, payload.get("contentType")).bundle(base_url))

    def _store(self, name: str, value: str, tags: dict[str, str], content_type: str | None) -> _Version:
        """Append a version (names are case-insensitive, like Key Vault's); the lock must be held."""
        version = _Version(name, uuid.uuid4().hex, value, int(time.time()), tags, content_type)
        self._secrets.setdefault(name.lower(), []).append(version)
        return version


def _route(method: str, path: str) -> tuple[str, re.Match[str] | None]:
    """(calls() key, path match): GET of a secret or one version, PUT of a secret; anything else is "other"."""
    match = _SECRET_PATH.fullmatch(path)
    if match and (method == "GET" or (method == "PUT" and not match["version"])):
        return f"{method} secret", match
    return "other", None


# --------------------------------------------------------------- HTTP layer


class _Handler(BaseHTTPRequestHandler):
    """Translates HTTP/1.1 requests (keep-alive) into ``KeyVaultStub.handle`` calls."""

    protocol_version = "HTTP/1.1"
    server: TlsServer

    def _serve(self) -> None:
        stub = self.server.owner
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        base_url = f"https://{host}" if (host := self.headers.get("Host")) else stub.url
        reply = stub.handle(self.command, self.path, self.headers.get("Authorization"), body, base_url)
        data = json.dumps(reply.body, separators=(",", ":")).encode()
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        if client_request_id := self.headers.get("x-ms-client-request-id"):
            self.send_header("x-ms-client-request-id", client_request_id)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature fixed by the base class
        """Silence per-request logging."""
