"""A local stand-in for an OCI distribution registry over HTTPS, recording every call (dev only).

Serves `HEAD|GET /v2/<repo>/manifests/<tag or digest>` and `GET /v2/<repo>/tags/list` (pages of `page_size`
tags with a `Link: <...>; rel="next"` header), behind one of three auth modes:
- `none`: anonymous;
- `bearer`: Docker Hub / GHCR style, 401 with `WWW-Authenticate: Bearer realm=<stub>/token,service,scope`;
  `GET /token` issues a token for the scope, demanding Basic `credentials` when they are set;
- `acr`: Azure Container Registry style, `POST /oauth2/exchange` (an Entra `access_token` for a refresh
  token) and `POST /oauth2/token` (a refresh token for a repository-scoped access token).
The certificate is issued by the shared test CA for 127.0.0.1, localhost and *.azurecr.io.

Manifests as the distribution registry serves them: every pushed tag has its own content and so its own digest
(`Docker-Content-Digest`, `Etag`), of the media type it was pushed as (an OCI index by default, whose linux/amd64
and linux/arm64 image manifests are served by digest). `Accept` is honoured: an OCI index or OCI manifest the
client does not accept is 404 `MANIFEST_UNKNOWN` ("OCI index found, but accept header does not support OCI
indexes"); a Docker manifest list asked for by tag by a client that does not accept lists is answered with its
linux/amd64 manifest; `Content-Type` is the media type of what is served. Unknown repositories are 404
`NAME_UNKNOWN`, unknown tags or digests 404 `MANIFEST_UNKNOWN`.
"""
from __future__ import annotations

import base64
import hashlib
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

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
_CHILD = {OCI_INDEX: OCI_MANIFEST, DOCKER_LIST: DOCKER_MANIFEST}
_CONFIG = {OCI_MANIFEST: "application/vnd.oci.image.config.v1+json",
           DOCKER_MANIFEST: "application/vnd.docker.container.image.v1+json"}
_LAYER = {OCI_MANIFEST: "application/vnd.oci.image.layer.v1.tar+gzip",
          DOCKER_MANIFEST: "application/vnd.docker.image.rootfs.diff.tar.gzip"}
PLATFORMS = (("linux", "amd64"), ("linux", "arm64"))
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
    """Seed images with `push`; read `calls`; `host` is 127.0.0.1:<port> once started."""

    cert_dir: str | None = None
    auth: str = "bearer"                 # none | bearer | acr
    credentials: str | None = None       # user:password the token endpoint demands (bearer)
    entra_token: str | None = None       # the Entra token /oauth2/exchange accepts (acr)
    service: str = "registry.stub"       # the `service` the challenge names and the token endpoints expect
    page_size: int = 100
    calls: list[Call] = field(default_factory=list)
    host: str = ""

    def __post_init__(self) -> None:
        self.ca_path, self._leaf, self._tmp = certificate(self.cert_dir, "127.0.0.1", "localhost", "*.azurecr.io")
        self._tokens: dict[str, str] = {}         # access token -> scope
        self._refresh: set[str] = set()
        self._lock = threading.Lock()
        self._tags: dict[str, dict[str, str]] = {}                          # repository -> tag -> digest
        self._blobs: dict[str, dict[str, tuple[str, bytes]]] = {}           # repository -> digest -> (type, body)

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

    def push(self, repository: str, *tags: str, media_type: str = OCI_INDEX) -> None:
        """Make images `repository:<tag>` exist, each with its own content and digest, as `media_type` (an OCI
        index or Docker manifest list of linux/amd64 and linux/arm64 images, or a single image manifest)."""
        with self._lock:
            for tag in tags:
                self._tags.setdefault(repository, {})[tag] = self._store(repository, tag, media_type)

    def digest(self, repository: str, tag: str) -> str:
        """The digest `repository:<tag>` points at."""
        with self._lock:
            return self._tags[repository][tag]

    def _store(self, repository: str, tag: str, media_type: str) -> str:
        """Store the manifest of one pushed tag (and an index's image manifests); its digest."""
        if media_type in _CHILD:
            children = [{"mediaType": _CHILD[media_type], "digest": (child := self._store_image(
                repository, f"{tag}/{os}/{arch}", _CHILD[media_type]))[0], "size": child[1],
                         "platform": {"os": os, "architecture": arch}} for os, arch in PLATFORMS]
            return self._put(repository, media_type, {"schemaVersion": 2, "mediaType": media_type,
                                                      "manifests": children})
        if media_type not in _CONFIG:
            raise ValueError(f"unknown manifest media type {media_type}")
        return self._store_image(repository, tag, media_type)[0]

    def _store_image(self, repository: str, name: str, media_type: str) -> tuple[str, int]:
        config, layer = (f"sha256:{hashlib.sha256(f'{repository}:{name}:{part}'.encode()).hexdigest()}"
                         for part in ("config", "layer"))
        digest = self._put(repository, media_type, {
            "schemaVersion": 2, "mediaType": media_type,
            "config": {"mediaType": _CONFIG[media_type], "digest": config, "size": 1469},
            "layers": [{"mediaType": _LAYER[media_type], "digest": layer, "size": 3623807}]})
        return digest, len(self._blobs[repository][digest][1])

    def _put(self, repository: str, media_type: str, manifest: dict[str, Any]) -> str:
        body = json.dumps(manifest, indent=3).encode()
        digest = f"sha256:{hashlib.sha256(body).hexdigest()}"
        self._blobs.setdefault(repository, {})[digest] = (media_type, body)
        return digest

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
        if repository not in self._tags:
            return 404, {}, {"errors": [{"code": "NAME_UNKNOWN", "message": "repository name not known to registry",
                                         "detail": {"name": repository}}]}
        if kind == "manifest":
            accept = ", ".join(v for k, v in headers.items() if k.lower() == "accept")
            return self._manifest(repository, match.group(2), accept)
        tags = list(self._tags[repository])
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

    def _manifest(self, repository: str, reference: str, accept: str) -> tuple[int, dict[str, str], Any]:
        """A manifest by tag or digest, negotiated with `accept` as the distribution registry does."""
        blobs = self._blobs[repository]
        digest = self._tags[repository].get(reference) or (reference if reference in blobs else None)
        if digest is None:
            return 404, {}, {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown",
                                         "detail": {"Tag" if ":" not in reference else "Digest": reference}}]}
        media_type, body = blobs[digest]
        accepted = {part.split(";")[0].strip() for part in accept.split(",")}
        for kind, what, plural in ((OCI_MANIFEST, "OCI manifest", "OCI manifests"),
                                   (OCI_INDEX, "OCI index", "OCI indexes")):
            if media_type == kind and kind not in accepted:
                return 404, {}, {"errors": [{"code": "MANIFEST_UNKNOWN", "message": f"{what} found, but accept "
                                             f"header does not support {plural}"}]}
        if media_type == DOCKER_LIST and DOCKER_LIST not in accepted and reference in self._tags[repository]:
            default = next(m for m in json.loads(body)["manifests"]
                           if (m["platform"]["os"], m["platform"]["architecture"]) == PLATFORMS[0])
            digest = default["digest"]
            media_type, body = blobs[digest]
        return 200, {"Content-Type": media_type, "Docker-Content-Digest": digest, "Etag": f'"{digest}"'}, body

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
        given: dict[str, str] = {}
        for name, value in self.headers.items():         # repeated headers (Accept) count as one list
            given[name] = f"{given[name]}, {value}" if name in given else value
        status, headers, body = self.server.owner.handle(self.command, self.path, raw, given)
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
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
