"""Container registries over the OCI distribution API: image references, "does this tag exist", tag lists.

`parse_image` reads references as Docker does: `nginx` is Docker Hub's `library/nginx` (served by
registry-1.docker.io), `host:port/ns/repo:tag` and `host/ns/repo@sha256:...` name their registry, and a
first component is a host only when it has a `.` or `:` or is `localhost`.

`Registry` talks HTTPS. Azure Container Registry (`*.azurecr.io`, `.cn`, `.us`) is reached with the
managed identity: an Entra token for ARM exchanged at `/oauth2/exchange` for a refresh token, then
`/oauth2/token` for a pull-scoped access token. Any other registry is asked anonymously first and
follows its `WWW-Authenticate` challenge (Bearer token from the realm, or Basic), sending `user:password`
credentials when a Key Vault secret holds them. Tokens are never logged or put in messages.
"""
from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urljoin

from shared.core import image_reference

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
_HUB_ALIASES = ("docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com")
ACR_SUFFIXES = (".azurecr.io", ".azurecr.cn", ".azurecr.us")
ARM_SCOPE = "https://management.azure.com/.default"
MANIFEST_TYPES = ", ".join((
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
))
TIMEOUT = 10
MAX_PAGES = 100
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


class RegistryError(RuntimeError):
    """The registry could not answer now (unreachable, 5xx, unexpected reply); worth retrying later."""


class RegistryDenied(RuntimeError):
    """The registry refused our credentials (401/403 after authenticating); retrying will not help."""


@dataclass(frozen=True)
class ImageRef:
    """One image reference. `name` is everything before the tag or digest, spelled as written."""

    name: str
    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def api_host(self) -> str:
        """Where the registry API lives (host[:port])."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def version(self) -> str:
        """The tag, else the digest: what "from" shows."""
        return self.tag or self.digest or ""

    def with_tag(self, tag: str) -> str:
        """The same image with `tag` (a digest is dropped), keeping how the name was written."""
        return f"{self.name}:{tag}"


def parse_image(text: str) -> ImageRef:
    """Parse an image reference (the OCI grammar of `shared.core.image_reference`); raise ValueError saying what is
    wrong."""
    reference = text.strip()
    why = image_reference.problem(reference)
    if why:
        raise ValueError(why)
    match = image_reference.REFERENCE.fullmatch(reference)
    name, tag, digest = match["name"], match["tag"], match["digest"]
    first, _, remainder = name.partition("/")
    if remainder and ("." in first or ":" in first or first == "localhost"):
        registry, path = first.lower(), remainder
    else:
        registry, path = DOCKER_HUB, name
    if registry in _HUB_ALIASES:
        registry = DOCKER_HUB
        path = path if "/" in path else f"library/{path}"
    return ImageRef(name, registry, path, tag, digest or None)


def is_acr(host: str) -> bool:
    """True for an Azure Container Registry login server (port ignored)."""
    return host.rsplit(":", 1)[0].lower().endswith(ACR_SUFFIXES)


def secret_name(registry: str) -> str:
    """The Key Vault secret holding `user:password` for a registry: `driftless-registry-<host-with-dashes>`."""
    return "driftless-registry-" + re.sub(r"[^a-z0-9]+", "-", registry.lower()).strip("-")


class Registry:
    """One registry host; token per repository scope cached for the life of the object (one job)."""

    def __init__(self, host: str, *, credentials: Callable[[], str | None] = lambda: None,
                 credentials_name: str = "", entra_token: Callable[[str], str] | None = None):
        import requests

        self.host, self.credentials_name = host, credentials_name or secret_name(host)
        self._credentials, self._entra_token = credentials, entra_token
        self._session = requests.Session()
        self._tokens: dict[str, str] = {}

    def exists(self, repository: str, reference: str) -> bool:
        """HEAD the manifest (tag or digest) with every manifest media type accepted."""
        reply = self._get(repository, f"/v2/{repository}/manifests/{reference}", method="HEAD",
                          headers={"Accept": MANIFEST_TYPES})
        if reply.status_code == 404:
            return False
        if reply.status_code >= 300:
            raise RegistryError(f"{self.host} answered {reply.status_code} for {repository}:{reference}")
        return True

    def tags(self, repository: str) -> list[str]:
        """Every tag of `repository`, following `Link: <...>; rel="next"` pages."""
        url, tags = f"/v2/{repository}/tags/list?n=1000", []
        for _ in range(MAX_PAGES):
            reply = self._get(repository, url)
            if reply.status_code == 404:
                return tags
            if reply.status_code >= 300:
                raise RegistryError(f"{self.host} answered {reply.status_code} listing tags of {repository}")
            tags += (reply.json() or {}).get("tags") or []
            following = reply.links.get("next", {}).get("url")
            if not following:
                return tags
            url = following
        raise RegistryError(f"{self.host}: more than {MAX_PAGES} pages of tags for {repository}")

    # --- transport ---------------------------------------------------------------------------
    def _get(self, repository: str, path: str, *, method: str = "GET", headers: dict[str, str] | None = None):
        scope = f"repository:{repository}:pull"
        headers = dict(headers or {})
        if is_acr(self.host) and self._entra_token:
            headers["Authorization"] = f"Bearer {self._acr_token(scope)}"
            return self._send(method, path, headers, denied_ok=False)
        if scope in self._tokens:
            headers["Authorization"] = self._tokens[scope]
        reply = self._send(method, path, headers, denied_ok=True)
        if reply.status_code != 401:
            return reply
        self._tokens[scope] = self._answer(reply.headers.get("WWW-Authenticate", ""), scope)
        headers["Authorization"] = self._tokens[scope]
        return self._send(method, path, headers, denied_ok=False)

    def _send(self, method: str, path: str, headers: dict[str, str], *, denied_ok: bool):
        import requests

        try:
            reply = self._session.request(method, urljoin(f"https://{self.host}", path), headers=headers,
                                          timeout=TIMEOUT, allow_redirects=True)
        except requests.RequestException as exc:
            raise RegistryError(f"{self.host} unreachable: {type(exc).__name__}") from None
        if reply.status_code == 403 or (reply.status_code == 401 and not denied_ok):
            raise RegistryDenied(f"{self.host} refused access ({reply.status_code}) for {path.split('?')[0]}")
        return reply

    def _answer(self, challenge: str, scope: str) -> str:
        """The Authorization header answering a 401 challenge (Bearer token from the realm, or Basic)."""
        import requests

        scheme = challenge.split(" ", 1)[0].lower()
        auth = self._basic()
        if scheme == "basic":
            if auth is None:
                raise RegistryDenied(f"{self.host} wants Basic credentials; store user:password in the Key Vault "
                                     f"secret {self.credentials_name}")
            return "Basic " + base64.b64encode(":".join(auth).encode()).decode()
        if scheme != "bearer":
            raise RegistryDenied(f"{self.host} answered 401 without a Bearer or Basic challenge")
        fields = dict(_CHALLENGE.findall(challenge))
        realm = fields.get("realm")
        if not realm or not realm.startswith("https://"):
            raise RegistryDenied(f"{self.host}: the token realm must be an https URL")
        params = {"service": fields.get("service", ""), "scope": fields.get("scope") or scope}
        try:
            reply = self._session.get(realm, params=params, auth=auth, timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise RegistryError(f"token service of {self.host} unreachable: {type(exc).__name__}") from None
        if reply.status_code in (401, 403):
            raise RegistryDenied(f"token service of {self.host} refused the credentials ({reply.status_code})")
        if reply.status_code >= 300:
            raise RegistryError(f"token service of {self.host} answered {reply.status_code}")
        body = reply.json()
        token = body.get("token") or body.get("access_token")
        if not token:
            raise RegistryError(f"token service of {self.host} returned no token")
        return f"Bearer {token}"

    def _basic(self) -> tuple[str, str] | None:
        value = self._credentials()
        if not value:
            return None
        user, sep, password = value.partition(":")
        if not sep:
            raise RegistryDenied(f"the registry secret {self.credentials_name} must hold user:password")
        return user, password

    def _acr_token(self, scope: str) -> str:
        """ACR: Entra token -> refresh token (/oauth2/exchange) -> access token for `scope` (/oauth2/token)."""
        if scope not in self._tokens:
            service = self.host.rsplit(":", 1)[0]
            if "refresh" not in self._tokens:
                self._tokens["refresh"] = self._acr_post("/oauth2/exchange", {
                    "grant_type": "access_token", "service": service,
                    "access_token": self._entra_token(ARM_SCOPE)}, "refresh_token")
            self._tokens[scope] = self._acr_post("/oauth2/token", {
                "grant_type": "refresh_token", "service": service, "scope": scope,
                "refresh_token": self._tokens["refresh"]}, "access_token")
        return self._tokens[scope]

    def _acr_post(self, path: str, form: dict[str, str], key: str) -> str:
        import requests

        try:
            reply = self._session.post(f"https://{self.host}{path}", data=form, timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise RegistryError(f"{self.host}{path} unreachable: {type(exc).__name__}") from None
        if reply.status_code in (400, 401, 403):
            raise RegistryDenied(f"{self.host}{path} refused the managed identity ({reply.status_code}); it needs "
                                 "the AcrPull role on the registry")
        if reply.status_code >= 300 or not (reply.json() or {}).get(key):
            raise RegistryError(f"{self.host}{path} answered {reply.status_code} without a {key}")
        return reply.json()[key]
