"""Local HTTPS emulator of the Azure Resource Manager contract for Azure Container Apps (dev only).

Serves ``Microsoft.App/containerApps`` (with revisions and async operations) and
``Microsoft.App/managedEnvironments`` closely enough for the real
``azure-mgmt-appcontainers`` client to run against it unchanged, with per-route
call counters and injectable faults (latency, throttling, unavailability,
failing or hanging operations, images that fail to start).

Long-running operations are evaluated lazily whenever their app or the
operation itself is read, using the fault settings in force at that moment
(no thread or timer per operation). With a state file, a single writer thread
persists changes while serving.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import copy
import hashlib
import json
import logging
import os
import re
import signal
import ssl
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import Message
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable, Iterator
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import trustme

from devtools.tls import TlsServer, certificate

_LOG = logging.getLogger(__name__)

APP_TYPE = "Microsoft.App/containerApps"
ENV_TYPE = "Microsoft.App/managedEnvironments"
REVISION_TYPE = "Microsoft.App/containerApps/revisions"
TENANT_ID = "00000000-0000-4000-8000-0000000000e1"
SYSTEM_ACTOR = "driftless-aca-emulator"
NOT_FOUND_HINT = "For more details please go to https://aka.ms/ARMResourceNotFoundFix"
MISSING_AUTH_CHALLENGE = (
    'Bearer authorization_uri="https://login.microsoftonline.com/common", error="invalid_token", '
    "error_description=\"The authentication failed because of missing 'Authorization' header.\""
)
INVALID_TOKEN_CHALLENGE = (
    'Bearer authorization_uri="https://login.microsoftonline.com/common", error="invalid_token", '
    'error_description="The access token is invalid."'
)
_STATE_WRITE_INTERVAL_S = 0.2

FAULT_DEFAULTS: dict[str, Any] = {
    "latency_s": 0.0,
    "lro_duration_s": 0.0,
    "lro_fail_apps": [],
    "lro_hang_apps": [],
    "throttle_next": 0,
    "unavailable_next": 0,
    "retry_after_s": 1,
    "failing_image_marker": "broken",
}

# ARM answers these enum values capitalised whatever casing the client sent.
_ENUMS: dict[str, dict[str, str]] = {
    "transport": {v.lower(): v for v in ("Auto", "Http", "Http2", "Tcp")},
    "activeRevisionsMode": {v.lower(): v for v in ("Single", "Multiple", "Labels")},
    "clientCertificateMode": {v.lower(): v for v in ("Ignore", "Accept", "Require")},
    "identity": {v.lower(): v for v in ("None", "SystemAssigned", "UserAssigned", "SystemAssigned,UserAssigned")},
}

_SUB = r"/subscriptions/(?P<sub>[^/]+)"
_RG = _SUB + r"/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.App"
_APP = _RG + r"/containerApps/(?P<name>[^/]+)"
_OPS = _SUB + r"/providers/Microsoft\.App/locations/(?P<loc>[^/]+)"
# (path pattern, {method: (calls() key, handler method name)})
_ROUTES: list[tuple[re.Pattern[str], dict[str, tuple[str, str]]]] = [
    (re.compile(_RG + r"/containerApps", re.I), {"GET": ("GET list", "_list_apps")}),
    (
        re.compile(_APP, re.I),
        {
            "GET": ("GET app", "_get_app"),
            "PUT": ("PUT app", "_put_app"),
            "PATCH": ("PATCH app", "_patch_app"),
            "DELETE": ("DELETE app", "_delete_app"),
        },
    ),
    (re.compile(_APP + r"/revisions", re.I), {"GET": ("GET revisions", "_list_revisions")}),
    (re.compile(_APP + r"/revisions/(?P<rev>[^/]+)", re.I), {"GET": ("GET revision", "_get_revision")}),
    (re.compile(_RG + r"/managedEnvironments", re.I), {"GET": ("GET environments", "_list_environments")}),
    (
        re.compile(_RG + r"/managedEnvironments/(?P<name>[^/]+)", re.I),
        {"GET": ("GET environment", "_get_environment"), "PUT": ("PUT environment", "_put_environment_route")},
    ),
    (
        re.compile(_OPS + r"/containerappOperationStatuses/(?P<opid>[^/]+)", re.I),
        {"GET": ("GET operation", "_get_operation_status")},
    ),
    (
        re.compile(_OPS + r"/containerappOperationResults/(?P<opid>[^/]+)", re.I),
        {"GET": ("GET operation", "_get_operation_result")},
    ),
]
# Top-level keys the emulator owns; any other key a client sends is kept as sent.
_APP_KEYS = frozenset({"id", "name", "type", "location", "tags", "identity", "systemData", "properties"})
_ENV_KEYS = _APP_KEYS - {"identity"}
_CONTROL_ENV = re.compile(r"/_emulator/environments/(?P<sub>[^/]+)/(?P<rg>[^/]+)/(?P<name>[^/]+)")


# ---------------------------------------------------------------- helpers


def _iso(ts: float) -> str:
    """Format an epoch timestamp the way ARM does (UTC, ``Z`` suffix)."""
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _stable_uuid(seed: str) -> str:
    """A UUID derived from ``seed`` (so identities keep their principal across writes)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, seed.lower()))


def _ips(seed: str, count: int) -> list[str]:
    """``count`` deterministic public-looking IPv4 addresses derived from ``seed``."""
    h = _digest(seed)
    octets = [int(h[i:i + 2], 16) for i in range(0, 6 * count, 2)]
    return [f"20.{octets[i]}.{octets[i + 1]}.{octets[i + 2]}" for i in range(0, 3 * count, 3)]


def _location_slug(location: str) -> str:
    """``"West Europe"`` -> ``"westeurope"``, as used in ARM URLs and hostnames."""
    return location.replace(" ", "").lower()


def _default(obj: dict[str, Any], key: str, value: Any) -> None:
    """Set ``obj[key]`` to ``value`` when it is absent or null."""
    if obj.get(key) is None:
        obj[key] = value


def _canonical(obj: dict[str, Any], key: str, enum: str, default: str) -> None:
    """Default ``obj[key]`` and capitalise a known enum value as ARM does."""
    _default(obj, key, default)
    value = obj[key]
    if isinstance(value, str):
        obj[key] = _ENUMS[enum].get(value.replace(" ", "").lower(), value)


def merge_patch(target: Any, patch: Any) -> Any:
    """Return the RFC 7386 JSON merge patch of ``patch`` onto ``target`` (inputs are not modified)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _not_found(type_path: str, rg: str) -> ArmError:
    return ArmError(
        404,
        "ResourceNotFound",
        f"The Resource '{type_path}' under resource group '{rg}' was not found. {NOT_FOUND_HINT}",
    )


class ArmError(Exception):
    """An ARM error answer: ``{"error": {"code", "message"}}`` with a status and optional headers."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}

    def response(self) -> Response:
        return Response.json(self.status, {"error": {"code": self.code, "message": self.message}}, self.headers)


@dataclass
class Request:
    """One HTTP request as the emulator sees it (query keys lower-cased, ARM treats them case-insensitively)."""

    method: str
    path: str
    query: dict[str, str]
    headers: Message
    body: bytes
    base_url: str

    def json(self, *, allow_empty: bool = False) -> dict[str, Any]:
        """The body as a JSON object (``{}`` for an allowed empty body); else ``InvalidRequestContent``."""
        if allow_empty and not self.body.strip():
            return {}
        try:
            value = json.loads(self.body)
        except ValueError as exc:
            message = f"The request content was invalid and could not be deserialized: {exc}"
            raise ArmError(400, "InvalidRequestContent", message) from exc
        if not isinstance(value, dict):
            raise ArmError(400, "InvalidRequestContent", "The request content must be a JSON object.")
        return value


@dataclass
class Response:
    """A response with its body already encoded (so it is serialised while the state lock is held)."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, value: Any, headers: dict[str, str] | None = None) -> Response:
        return cls(status, json.dumps(value, separators=(",", ":")).encode(), headers or {})


# ------------------------------------------------------- resource shaping


def _normalise_container(container: dict[str, Any], *, probes: bool) -> dict[str, Any]:
    """A container with ARM's defaults: resources (0.5 CPU, 1Gi, read-only 2Gi ephemeral storage), probes."""
    out = dict(container)
    resources = dict(out.get("resources") or {})
    _default(resources, "cpu", 0.5)
    _default(resources, "memory", "1Gi")
    resources["ephemeralStorage"] = "2Gi"
    out["resources"] = resources
    if probes:
        _default(out, "probes", [])
    return out


def _normalise_template(template: dict[str, Any]) -> dict[str, Any]:
    """``properties.template`` with the defaults ARM fills in."""
    out = dict(template)
    _default(out, "revisionSuffix", "")
    out.setdefault("terminationGracePeriodSeconds", None)
    out["containers"] = [_normalise_container(c, probes=True) for c in out["containers"]]
    init = out.get("initContainers")
    out["initContainers"] = [_normalise_container(c, probes=False) for c in init] if init else None
    scale = dict(out.get("scale") or {})
    scale.setdefault("minReplicas", None)
    _default(scale, "maxReplicas", 10)
    scale.setdefault("rules", None)
    _default(scale, "cooldownPeriod", 300)
    _default(scale, "pollingInterval", 30)
    out["scale"] = scale
    out.setdefault("volumes", None)
    out.setdefault("serviceBinds", None)
    return out


def _normalise_ingress(ingress: dict[str, Any] | None) -> dict[str, Any] | None:
    """``configuration.ingress`` with ARM's defaults (``fqdn`` is filled per app later)."""
    if ingress is None:
        return None
    out = dict(ingress)
    out.setdefault("fqdn", "")
    _default(out, "external", False)
    out.setdefault("targetPort", None)
    _default(out, "exposedPort", 0)
    _canonical(out, "transport", "transport", "Auto")
    _default(out, "traffic", [{"weight": 100, "latestRevision": True}])
    for key in ("customDomains", "ipSecurityRestrictions", "stickySessions", "corsPolicy"):
        out.setdefault(key, None)
    _default(out, "allowInsecure", False)
    _canonical(out, "clientCertificateMode", "clientCertificateMode", "Ignore")
    return out


def _normalise_configuration(configuration: dict[str, Any] | None) -> dict[str, Any]:
    """``properties.configuration`` with ARM's defaults; secret values are never stored nor returned."""
    out = dict(configuration or {})
    secrets = out.get("secrets")
    out["secrets"] = [{k: v for k, v in s.items() if k != "value"} for s in secrets] if secrets is not None else None
    _canonical(out, "activeRevisionsMode", "activeRevisionsMode", "Single")
    out["ingress"] = _normalise_ingress(out.get("ingress"))
    _default(out, "registries", [])
    out.setdefault("dapr", None)
    _default(out, "maxInactiveRevisions", 100)
    out.setdefault("service", None)
    return out


def _identity(identity: dict[str, Any] | None, app_id: str) -> dict[str, Any]:
    """Managed identity as ARM returns it: ``{"type": "None"}`` when not given; system principal/tenant
    per app and principal/client per user-assigned identity filled in (stable across writes)."""
    out = dict(identity or {})
    _canonical(out, "type", "identity", "None")
    kind = out["type"]
    if "SystemAssigned" in kind:
        out["principalId"] = _stable_uuid(f"system:{app_id}")
        out["tenantId"] = TENANT_ID
    else:
        out.pop("principalId", None)
        out.pop("tenantId", None)
    if "UserAssigned" in kind:
        users = out.get("userAssignedIdentities") or {}
        out["userAssignedIdentities"] = {
            rid: {"principalId": _stable_uuid(f"principal:{rid}"), "clientId": _stable_uuid(f"client:{rid}")}
            for rid in users
        }
    else:
        out.pop("userAssignedIdentities", None)
    return out


def _validate_app(body: dict[str, Any]) -> str:
    """Check what ARM requires of a container app body; return the environment id it names."""
    if not isinstance(body.get("location"), str) or not body["location"].strip():
        raise ArmError(400, "InvalidRequestContent", "The 'location' property is required.")
    props = body.get("properties")
    template = props.get("template") if isinstance(props, dict) else None
    containers = template.get("containers") if isinstance(template, dict) else None
    if not isinstance(containers, list) or not containers:
        raise ArmError(400, "InvalidRequestContent", "'properties.template.containers' must be a non-empty list.")
    for i, container in enumerate(containers):
        if not isinstance(container, dict) or not container.get("name") or not container.get("image"):
            message = f"'properties.template.containers[{i}]' requires 'name' and 'image'."
            raise ArmError(400, "InvalidRequestContent", message)
    env_id = props.get("managedEnvironmentId") or props.get("environmentId")
    if not isinstance(env_id, str) or not env_id:
        raise ArmError(400, "InvalidRequestContent", "'properties.managedEnvironmentId' is required.")
    return env_id


def _image_failure(template: dict[str, Any], marker: str) -> tuple[str, str] | None:
    """(container, image) of the first container whose image contains ``marker``; an empty marker never matches."""
    if not marker:
        return None
    for container in [*template["containers"], *(template.get("initContainers") or [])]:
        if marker in str(container.get("image", "")):
            return str(container["name"]), str(container["image"])
    return None


# ----------------------------------------------------------------- emulator


class AcaEmulator:
    """In-memory ARM emulator for Container Apps served over HTTPS (see the module docstring)."""

    def __init__(
        self,
        *,
        state_file: str | None = None,
        cert_dir: str | None = None,
        page_size: int = 100,
        token: str | None = None,
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self._state_file = state_file
        self._page_size = page_size
        self._token = token
        self._lock = threading.RLock()
        self._dirty = False
        self._counts: Counter[str] = Counter()
        self._faults: dict[str, Any] = copy.deepcopy(FAULT_DEFAULTS)
        self._envs: dict[str, dict[str, Any]] = {}
        self._apps: dict[str, dict[str, Any]] = {}
        self._ops: dict[str, dict[str, Any]] = {}
        self._index: dict[str, list[str]] = {}
        self._server: TlsServer | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._writer: threading.Thread | None = None
        self._write_wanted = threading.Event()
        self._writer_stop = threading.Event()
        self._write_lock = threading.Lock()
        self.url = ""
        self.ca_path, self._server_cert = self._load_certificates(cert_dir)
        self._load_state()

    # ---------------------------------------------------------- lifecycle

    def start(self, host: str = "127.0.0.1", port: int = 0) -> AcaEmulator:
        """Serve in a daemon thread; ``url`` is set once listening."""
        if self._server is not None:
            raise RuntimeError("emulator already started")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._server_cert.configure_cert(context)
        self._server = TlsServer((host, port), context, self, _Handler)
        shown_host = "127.0.0.1" if host in ("", "0.0.0.0") else host
        self.url = f"https://{shown_host}:{self._server.server_address[1]}"
        self._server.serve_in_background("aca-emulator")
        if self._state_file:
            self._writer_stop.clear()
            self._writer = threading.Thread(target=self._state_writer, name="aca-emulator-state", daemon=True)
            self._writer.start()
        return self

    def stop(self) -> None:
        """Stop serving, close open connections and write the state file a final time; state is kept."""
        if self._server is None:
            return
        self._server.stop()
        self._server = None
        if self._writer is not None:
            self._writer_stop.set()
            self._write_wanted.set()
            self._writer.join()
            self._writer = None
            self._write_state()

    def _load_certificates(self, cert_dir: str | None) -> tuple[str, trustme.LeafCert]:
        """Reuse the CA in ``cert_dir`` (``ca.pem`` + ``ca-key.pem``) or create one; issue a server cert."""
        ca_path, leaf, self._tmp = certificate(cert_dir, "127.0.0.1", "localhost")
        return ca_path, leaf

    # ----------------------------------------------------- public control

    def calls(self) -> dict[str, int]:
        """Counts of ARM requests received per route (faulted and rejected requests included)."""
        with self._lock:
            return {key: count for key, count in self._counts.items() if count}

    def reset_calls(self) -> None:
        with self._lock:
            self._counts.clear()

    def reset(self) -> None:
        """Forget all apps, environments, operations, faults and counters."""
        with self._locked():
            self._envs.clear()
            self._apps.clear()
            self._ops.clear()
            self._index.clear()
            self._counts.clear()
            self._faults = copy.deepcopy(FAULT_DEFAULTS)
            self._dirty = True

    def set_faults(self, **settings: Any) -> None:
        """Merge fault settings (names in ``FAULT_DEFAULTS``); unknown names or bad values raise ValueError."""
        unknown = sorted(set(settings) - set(FAULT_DEFAULTS))
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(unknown)}")
        coerced = {name: _coerce_fault(name, value) for name, value in settings.items()}
        with self._lock:
            self._faults.update(coerced)

    def add_environment(
        self, subscription_id: str, resource_group: str, name: str, location: str = "westeurope"
    ) -> dict[str, Any]:
        """Create or replace a managed environment and return it."""
        with self._locked():
            env, _ = self._store_environment(subscription_id, resource_group, name, {"location": location})
            return copy.deepcopy(env)

    def app(self, subscription_id: str, resource_group: str, name: str) -> dict[str, Any] | None:
        """A deep copy of the app as GET would return it, or None."""
        with self._locked():
            record = self._settled(_app_key(subscription_id, resource_group, name))
            return copy.deepcopy(record["resource"]) if record else None

    # ----------------------------------------------------------- dispatch

    def handle(self, req: Request) -> Response:
        """Answer one HTTP request (control endpoints under ``/_emulator/``, everything else ARM)."""
        path = req.path.rstrip("/") or "/"
        try:
            response = self._control(req, path) if path.lower().startswith("/_emulator/") else self._arm(req, path)
        except Exception:  # noqa: BLE001 - a bug must still produce an ARM-shaped answer
            _LOG.exception("emulator failed on %s %s", req.method, req.path)
            response = ArmError(500, "InternalServerError", "The emulator failed; see its log.").response()
        response.headers.setdefault("Content-Type", "application/json; charset=utf-8")
        response.headers["x-ms-request-id"] = str(uuid.uuid4())
        client_request_id = req.headers.get("x-ms-client-request-id")
        if client_request_id:
            response.headers["x-ms-client-request-id"] = client_request_id
        return response

    def _arm(self, req: Request, path: str) -> Response:
        count_key, handler, params = self._route(req.method, path)
        with self._lock:
            self._counts[count_key] += 1
            latency = float(self._faults["latency_s"])
        if latency > 0:
            time.sleep(latency)
        try:
            self._inject_fault()
            self._authenticate(req)
            if handler is None:
                raise ArmError(404, "NotFound", f"No ARM route for {req.method} {path}.")
            if not req.query.get("api-version"):
                raise ArmError(
                    400,
                    "MissingApiVersionParameter",
                    "The api-version query parameter (?api-version=) is required for all requests.",
                )
            return handler(req, **params)
        except ArmError as err:
            return err.response()

    def _route(self, method: str, path: str) -> tuple[str, Callable[..., Response] | None, dict[str, str]]:
        """(calls() key, bound handler or None, unquoted path parameters) for an ARM request."""
        for pattern, methods in _ROUTES:
            match = pattern.fullmatch(path)
            if match and method in methods:
                key, name = methods[method]
                return key, getattr(self, name), {k: unquote(v) for k, v in match.groupdict().items()}
        return f"{method} other", None, {}

    def _inject_fault(self) -> None:
        """Consume one pending throttle (429) or unavailability (503) fault, if any."""
        with self._lock:
            if self._faults["throttle_next"] > 0:
                self._faults["throttle_next"] -= 1
                retry_after = int(self._faults["retry_after_s"])
                raise ArmError(
                    429,
                    "TooManyRequests",
                    f"Rate limit is exceeded. Try again in {retry_after} seconds.",
                    {"Retry-After": str(retry_after)},
                )
            if self._faults["unavailable_next"] > 0:
                self._faults["unavailable_next"] -= 1
                message = "The service is temporarily unavailable. Please try again later."
                raise ArmError(503, "ServiceUnavailable", message)

    def _authenticate(self, req: Request) -> None:
        scheme, _, token = (req.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ArmError(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
                {"WWW-Authenticate": MISSING_AUTH_CHALLENGE},
            )
        if self._token is not None and token.strip() != self._token:
            raise ArmError(
                401,
                "InvalidAuthenticationToken",
                "The access token is invalid.",
                {"WWW-Authenticate": INVALID_TOKEN_CHALLENGE},
            )

    def _control(self, req: Request, path: str) -> Response:
        """The unauthenticated ``/_emulator/`` endpoints used by other processes."""
        action = (req.method, path.lower())
        try:
            if action == ("GET", "/_emulator/calls"):
                return Response.json(200, self.calls())
            if action == ("POST", "/_emulator/reset"):
                self.reset()
                return Response.json(200, {})
            if action == ("POST", "/_emulator/reset-calls"):
                self.reset_calls()
                return Response.json(200, {})
            if action == ("POST", "/_emulator/faults"):
                try:
                    self.set_faults(**req.json())
                except ValueError as exc:
                    raise ArmError(400, "InvalidFaultSettings", str(exc)) from exc
                with self._lock:
                    return Response.json(200, self._faults)
            env_match = _CONTROL_ENV.fullmatch(path)
            if req.method == "PUT" and env_match:
                sub, rg, name = (unquote(v) for v in env_match.groups())
                body = req.json(allow_empty=True)
                env = self.add_environment(sub, rg, name, str(body.get("location") or "westeurope"))
                return Response.json(200, env)
            raise ArmError(404, "NotFound", f"No emulator control endpoint {req.method} {path}.")
        except ArmError as err:
            return err.response()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the state lock; on exit, if anything changed, have the state file written
        (by the writer thread while serving, else right away)."""
        with self._lock:
            try:
                yield
            finally:
                if self._dirty and self._state_file:
                    self._dirty = False
                    if self._writer is not None:
                        self._write_wanted.set()
                    else:
                        self._write_state()

    # ---------------------------------------------------- ARM: container apps

    def _list_apps(self, req: Request, sub: str, rg: str) -> Response:
        """One page of apps ordered by name; ``$skipToken`` is the last name of the previous page."""
        scope = _scope_key(sub, rg)
        with self._locked():
            names = self._index.get(scope, [])
            page: list[dict[str, Any]] = []
            cursor = req.query.get("$skiptoken", "")
            while len(page) < self._page_size:
                i = bisect.bisect_right(names, cursor)
                if i >= len(names):
                    break
                cursor = names[i]
                record = self._settled(f"{scope}/providers/microsoft.app/containerapps/{cursor}")
                if record:
                    page.append(record["resource"])
            body: dict[str, Any] = {"value": page}
            if len(page) == self._page_size and bisect.bisect_right(names, cursor) < len(names):
                api = quote(req.query["api-version"], safe="")
                body["nextLink"] = f"{req.base_url}{req.path}?api-version={api}&$skipToken={quote(cursor, safe='')}"
            return Response.json(200, body)

    def _get_app(self, req: Request, sub: str, rg: str, name: str) -> Response:
        with self._locked():
            return Response.json(200, self._require_app(sub, rg, name)["resource"])

    def _put_app(self, req: Request, sub: str, rg: str, name: str) -> Response:
        """Create or replace an app wholesale and start its operation (201 new / 200 existing)."""
        body = req.json()
        with self._locked():
            env = self._environment_for(body)
            key = _app_key(sub, rg, name)
            record = self._settled(key)
            if record is not None:
                self._supersede(record)
                record = self._apps.get(key)
            created = record is None
            record, revision = self._write_app(sub, rg, name, body, env, record)
            op = self._begin_operation(record, "write", req, revision)
            headers = {"Azure-AsyncOperation": op["_statusUrl"]}
            return Response.json(201 if created else 200, record["resource"], headers)

    def _patch_app(self, req: Request, sub: str, rg: str, name: str) -> Response:
        """Apply a JSON merge patch to tags, identity and properties; 202 with operation headers."""
        patch = req.json()
        with self._locked():
            record = self._require_app(sub, rg, name)
            self._supersede(record)
            record = self._require_app(sub, rg, name)
            body = copy.deepcopy(record["resource"])
            for key in ("tags", "identity", "properties"):
                if key in patch:
                    body[key] = merge_patch(body.get(key), patch[key])
            env = self._environment_for(body)
            record, revision = self._write_app(sub, rg, name, body, env, record)
            op = self._begin_operation(record, "write", req, revision)
            return Response(202, headers={"Azure-AsyncOperation": op["_statusUrl"], "Location": op["_resultUrl"]})

    def _delete_app(self, req: Request, sub: str, rg: str, name: str) -> Response:
        """204 when absent; else 202 and the app shows ``Deleting`` until its operation completes."""
        with self._locked():
            record = self._settled(_app_key(sub, rg, name))
            if record is not None:
                self._supersede(record)
                record = self._settled(_app_key(sub, rg, name))
            if record is None:
                return Response(204)
            record["resource"]["properties"]["provisioningState"] = "Deleting"
            op = self._begin_operation(record, "delete", req, None)
            return Response(202, headers={"Azure-AsyncOperation": op["_statusUrl"], "Location": op["_resultUrl"]})

    def _require_app(self, sub: str, rg: str, name: str) -> dict[str, Any]:
        record = self._settled(_app_key(sub, rg, name))
        if record is None:
            raise _not_found(f"{APP_TYPE}/{name}", rg)
        return record

    def _environment_for(self, body: dict[str, Any]) -> dict[str, Any]:
        env_id = _validate_app(body)
        env = self._envs.get(env_id.lower())
        if env is None:
            raise ArmError(400, "ManagedEnvironmentNotFound", f"Managed environment '{env_id}' was not found.")
        return env

    def _write_app(
        self, sub: str, rg: str, name: str, body: dict[str, Any], env: dict[str, Any], record: dict[str, Any] | None
    ) -> tuple[dict[str, Any], str | None]:
        """Store the normalised app (creating its record); return it and the revision added, if any."""
        key = _app_key(sub, rg, name)
        now = time.time()
        if record is None:
            record = {"scope": _scope_key(sub, rg), "revisions": {}, "ready": "", "op": None, "serial": 0}
            self._apps[key] = record
            bisect.insort(self._index.setdefault(record["scope"], []), name.lower())
            app_id = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/{APP_TYPE}/{name}"
            app_name, created_at = name, _iso(now)
        else:
            old = record["resource"]
            app_id, app_name, created_at = old["id"], old["name"], old["systemData"]["createdAt"]
        location = body["location"]
        props = dict(body["properties"])
        props["managedEnvironmentId"] = props["environmentId"] = env["id"]
        _default(props, "workloadProfileName", "Consumption")
        props["configuration"] = _normalise_configuration(props.get("configuration"))
        props["template"] = _normalise_template(props["template"])
        props["provisioningState"] = "InProgress"
        props["customDomainVerificationId"] = _digest(f"verification:{sub.lower()}").upper()
        props["outboundIpAddresses"] = _ips(env["id"].lower(), 2)
        props["eventStreamEndpoint"] = (
            f"https://{_location_slug(location)}.azurecontainerapps.dev/subscriptions/{sub}"
            f"/resourceGroups/{rg}/containerApps/{app_name}/eventstream"
        )
        extras = {k: v for k, v in body.items() if k not in _APP_KEYS}
        record["resource"] = {
            **extras,
            "id": app_id,
            "name": app_name,
            "type": APP_TYPE,
            "location": location,
            "tags": dict(body.get("tags") or {}),
            "identity": _identity(body.get("identity"), app_id),
            "systemData": _system_data(created_at, now),
            "properties": props,
        }
        record["domain"] = env["properties"]["defaultDomain"]
        self._dirty = True
        return record, self._add_revision_if_changed(record, props["template"], now)

    def _add_revision_if_changed(self, record: dict[str, Any], template: dict[str, Any], now: float) -> str | None:
        """Add a ``Provisioning`` revision unless ``template`` equals the latest revision's; return its key."""
        latest = _latest_revision(record)
        if latest is not None and latest["template"] == template:
            return None
        name = self._new_revision_name(record, template)
        record["revisions"][name.lower()] = {
            "name": name,
            "createdTime": _iso(now),
            "lastActiveTime": _iso(now),
            "template": copy.deepcopy(template),
            "healthState": "None",
            "provisioningState": "Provisioning",
            "provisioningError": None,
            "runningState": "Processing",
            "runningStateDetails": None,
        }
        return name.lower()

    def _new_revision_name(self, record: dict[str, Any], template: dict[str, Any]) -> str:
        """``<app>--<7 hex>`` from the template and a per-app counter, unique among the app's revisions."""
        canonical = json.dumps(template, sort_keys=True)
        while True:
            record["serial"] += 1
            suffix = _digest(f"{record['serial']}:{canonical}")[:7]
            name = f"{record['resource']['name']}--{suffix}"
            if name.lower() not in record["revisions"]:
                return name

    # ----------------------------------------------------- ARM: revisions

    def _list_revisions(self, req: Request, sub: str, rg: str, name: str) -> Response:
        with self._locked():
            record = self._require_app(sub, rg, name)
            revisions = [self._revision_body(record, rev) for rev in record["revisions"].values()]
            return Response.json(200, {"value": revisions})

    def _get_revision(self, req: Request, sub: str, rg: str, name: str, rev: str) -> Response:
        with self._locked():
            record = self._require_app(sub, rg, name)
            revision = record["revisions"].get(rev.lower())
            if revision is None:
                raise _not_found(f"{APP_TYPE}/{name}/revisions/{rev}", rg)
            return Response.json(200, self._revision_body(record, revision))

    def _revision_body(self, record: dict[str, Any], rev: dict[str, Any]) -> dict[str, Any]:
        """The revision resource with traffic, activity and replicas derived from the app's current state."""
        props = record["resource"]["properties"]
        mode = props["configuration"]["activeRevisionsMode"]
        weight = _traffic_weights(record).get(rev["name"].lower(), 0)
        provisioned = rev["provisioningState"] == "Provisioned"
        active = provisioned and (weight > 0 or mode == "Multiple")
        min_replicas = int(rev["template"]["scale"].get("minReplicas") or 0)
        details = {k: v for k, v in rev.items() if k != "name"}
        return {
            "id": f"{record['resource']['id']}/revisions/{rev['name']}",
            "name": rev["name"],
            "type": REVISION_TYPE,
            "properties": {
                **details,
                "fqdn": _fqdn(record, rev["name"]),
                "active": active,
                "replicas": max(1, min_replicas) if active else 0,
                "trafficWeight": weight,
            },
        }

    # ------------------------------------------------------ ARM: environments

    def _list_environments(self, req: Request, sub: str, rg: str) -> Response:
        prefix = _scope_key(sub, rg) + "/"
        with self._locked():
            envs = [env for key, env in sorted(self._envs.items()) if key.startswith(prefix)]
            return Response.json(200, {"value": envs})

    def _get_environment(self, req: Request, sub: str, rg: str, name: str) -> Response:
        with self._locked():
            env = self._envs.get(_env_key(sub, rg, name))
            if env is None:
                raise _not_found(f"{ENV_TYPE}/{name}", rg)
            return Response.json(200, env)

    def _put_environment_route(self, req: Request, sub: str, rg: str, name: str) -> Response:
        """Environments are created synchronously: 201/200 with provisioningState ``Succeeded``."""
        body = req.json()
        if not isinstance(body.get("location"), str) or not body["location"].strip():
            raise ArmError(400, "InvalidRequestContent", "The 'location' property is required.")
        with self._locked():
            env, created = self._store_environment(sub, rg, name, body)
            return Response.json(201 if created else 200, env)

    def _store_environment(self, sub: str, rg: str, name: str, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        key = _env_key(sub, rg, name)
        existing = self._envs.get(key)
        now = time.time()
        env_id = existing["id"] if existing else f"/subscriptions/{sub}/resourceGroups/{rg}/providers/{ENV_TYPE}/{name}"
        location = str(body["location"])
        props = dict(body.get("properties") or {})
        props["provisioningState"] = "Succeeded"
        props["defaultDomain"] = f"{name.lower()}-{_digest(key)[:8]}.{_location_slug(location)}.azurecontainerapps.io"
        props["staticIp"] = _ips(key, 1)[0]
        _default(props, "workloadProfiles", [{"workloadProfileType": "Consumption", "name": "Consumption"}])
        _default(props, "zoneRedundant", False)
        extras = {k: v for k, v in body.items() if k not in _ENV_KEYS}
        created_at = existing["systemData"]["createdAt"] if existing else _iso(now)
        self._envs[key] = {
            **extras,
            "id": env_id,
            "name": existing["name"] if existing else name,
            "type": ENV_TYPE,
            "location": location,
            "tags": dict(body.get("tags") or {}),
            "systemData": _system_data(created_at, now),
            "properties": props,
        }
        self._dirty = True
        return self._envs[key], existing is None

    # ------------------------------------------------------- ARM: operations

    def _get_operation_status(self, req: Request, sub: str, loc: str, opid: str) -> Response:
        with self._locked():
            op = self._require_operation(opid)
            return Response.json(200, {k: v for k, v in op.items() if not k.startswith("_")})

    def _get_operation_result(self, req: Request, sub: str, loc: str, opid: str) -> Response:
        """202 while running; then the app (200) or 204 once gone; a failed operation answers its error."""
        with self._locked():
            op = self._require_operation(opid)
            if op["status"] == "InProgress":
                return Response(202, headers={"Location": op["_resultUrl"]})
            if op["status"] != "Succeeded":
                error = op.get("error") or {"code": "OperationCanceled", "message": "The operation was canceled."}
                raise ArmError(400, error["code"], error["message"])
            record = self._apps.get(op["_app"])
            return Response.json(200, record["resource"]) if record else Response(204)

    def _require_operation(self, opid: str) -> dict[str, Any]:
        op = self._ops.get(opid.lower())
        if op is None:
            raise ArmError(404, "OperationNotFound", f"Operation '{opid}' was not found.")
        if self._due(op):
            self._finish(op, self._planned_status(op))
        return op

    def _begin_operation(
        self, record: dict[str, Any], kind: str, req: Request, revision: str | None
    ) -> dict[str, Any]:
        """Register an InProgress operation for the app (and the revision it provisions); it completes lazily."""
        resource = record["resource"]
        sub = resource["id"].split("/")[2]
        opid = str(uuid.uuid4())
        path = f"/subscriptions/{sub}/providers/Microsoft.App/locations/{_location_slug(resource['location'])}"
        api = quote(req.query["api-version"], safe="")
        now = time.time()
        op = {
            "id": f"{path}/containerappOperationStatuses/{opid}",
            "name": opid,
            "status": "InProgress",
            "startTime": _iso(now),
            "_app": resource["id"].lower(),
            "_appName": resource["name"].lower(),
            "_kind": kind,
            "_started": now,
            "_revision": revision,
            "_statusUrl": f"{req.base_url}{path}/containerappOperationStatuses/{opid}?api-version={api}",
            "_resultUrl": f"{req.base_url}{path}/containerappOperationResults/{opid}?api-version={api}",
        }
        self._ops[opid] = op
        record["op"] = opid
        self._refresh(record)
        self._dirty = True
        return op

    def _due(self, op: dict[str, Any]) -> bool:
        """Whether a pending operation completes now under the current fault settings."""
        if op["status"] != "InProgress" or op["_appName"] in _lower(self._faults["lro_hang_apps"]):
            return False
        return time.time() >= op["_started"] + float(self._faults["lro_duration_s"])

    def _planned_status(self, op: dict[str, Any]) -> str:
        failing = op["_kind"] == "write" and op["_appName"] in _lower(self._faults["lro_fail_apps"])
        return "Failed" if failing else "Succeeded"

    def _settled(self, key: str) -> dict[str, Any] | None:
        """The app record after completing its pending operation if due (None once deleted)."""
        record = self._apps.get(key)
        if record is not None and record["op"]:
            op = self._ops[record["op"]]
            if self._due(op):
                self._finish(op, self._planned_status(op))
        return self._apps.get(key)

    def _supersede(self, record: dict[str, Any]) -> None:
        """Complete a still-pending operation before a new write: as planned, or ``Canceled`` if hanging."""
        if record["op"]:
            op = self._ops[record["op"]]
            hanging = op["_appName"] in _lower(self._faults["lro_hang_apps"])
            self._finish(op, "Canceled" if hanging else self._planned_status(op))

    def _finish(self, op: dict[str, Any], status: str) -> None:
        """Record the operation's end and apply its effect to the app and the revision it created."""
        op["status"], op["endTime"] = status, _iso(time.time())
        if status == "Failed":
            op["error"] = {
                "code": "ContainerAppOperationError",
                "message": f"Failed to provision container app '{op['_appName']}' (injected operation failure).",
            }
        self._dirty = True
        record = self._apps.get(op["_app"])
        if record is None or record["op"] != op["name"]:
            return
        record["op"] = None
        if op["_kind"] == "delete" and status == "Succeeded":
            self._remove_app(op["_app"], record)
            return
        record["resource"]["properties"]["provisioningState"] = status
        revision = record["revisions"].get(op["_revision"] or "")
        if revision is not None:
            self._finish_revision(record, revision, op, status)
        self._refresh(record)

    def _finish_revision(self, record: dict[str, Any], rev: dict[str, Any], op: dict[str, Any], status: str) -> None:
        """Provision the revision, or fail it (failed/canceled operation, or an image matching the marker)."""
        failure = _image_failure(rev["template"], str(self._faults["failing_image_marker"]))
        if status == "Succeeded" and failure is None:
            rev.update(provisioningState="Provisioned", healthState="Healthy", runningState="Running")
            rev["lastActiveTime"] = op["endTime"]
            record["ready"] = rev["name"]
            return
        if status == "Succeeded" and failure is not None:
            container, image = failure
            error = f"Container '{container}' failed to start: image '{image}' could not be pulled (ImagePullBackOff)"
            details = f"Container '{container}' is in ImagePullBackOff: image '{image}' could not be pulled."
        elif status == "Failed":
            error = details = op["error"]["message"]
        else:
            error = details = "Revision provisioning was canceled by a newer operation."
        rev.update(
            provisioningState="Failed",
            healthState="Unhealthy",
            runningState="Failed",
            provisioningError=error,
            runningStateDetails=details,
        )

    def _refresh(self, record: dict[str, Any]) -> None:
        """Recompute the app properties derived from its revisions and pending operation."""
        props = record["resource"]["properties"]
        latest = _latest_revision(record)
        props["latestRevisionName"] = latest["name"] if latest else ""
        props["latestReadyRevisionName"] = record["ready"]
        props["latestRevisionFqdn"] = _fqdn(record, latest["name"]) if latest else ""
        if record["op"]:
            props["runningStatus"] = "Progressing"
        elif latest and latest["provisioningState"] == "Failed":
            props["runningStatus"] = "Degraded"
        else:
            props["runningStatus"] = "Running"
        ingress = props["configuration"]["ingress"]
        if ingress is not None:
            ingress["fqdn"] = _fqdn(record, record["resource"]["name"])

    def _remove_app(self, key: str, record: dict[str, Any]) -> None:
        del self._apps[key]
        names = self._index[record["scope"]]
        name = key.rsplit("/", 1)[1]
        del names[bisect.bisect_left(names, name)]

    # ------------------------------------------------------------ persistence

    def _state_writer(self) -> None:
        """While serving: write the state file after mutations, batching those made during a write
        (one snapshot per ``_STATE_WRITE_INTERVAL_S`` at most, so large states do not hog the lock)."""
        while True:
            self._write_wanted.wait()
            if self._writer_stop.is_set():
                return
            self._write_wanted.clear()
            self._write_state()
            if self._writer_stop.wait(_STATE_WRITE_INTERVAL_S):
                return

    def _write_state(self) -> None:
        """Atomically replace the state file with a snapshot (finished operations are not kept)."""
        if not self._state_file:
            return
        with self._write_lock:
            with self._lock:
                operations = {k: op for k, op in self._ops.items() if op["status"] == "InProgress"}
                state = {"environments": self._envs, "apps": self._apps, "operations": operations}
                data = json.dumps(state, separators=(",", ":"))
            tmp = f"{self._state_file}.{os.getpid()}.tmp"
            with open(tmp, "w", encoding="utf-8") as handle:
                handle.write(data)
            os.replace(tmp, self._state_file)

    def _load_state(self) -> None:
        if not self._state_file or not os.path.exists(self._state_file):
            return
        with open(self._state_file, encoding="utf-8") as handle:
            state = json.load(handle)
        self._envs, self._apps, self._ops = state["environments"], state["apps"], state["operations"]
        for key, record in self._apps.items():
            self._index.setdefault(record["scope"], []).append(key.rsplit("/", 1)[1])
        for names in self._index.values():
            names.sort()


# ------------------------------------------------------------ small pieces


def _app_key(sub: str, rg: str, name: str) -> str:
    return f"{_scope_key(sub, rg)}/providers/microsoft.app/containerapps/{name.lower()}"


def _env_key(sub: str, rg: str, name: str) -> str:
    return f"{_scope_key(sub, rg)}/providers/microsoft.app/managedenvironments/{name.lower()}"


def _scope_key(sub: str, rg: str) -> str:
    return f"/subscriptions/{sub}/resourcegroups/{rg}".lower()


def _lower(names: list[str]) -> set[str]:
    return {n.lower() for n in names}


def _latest_revision(record: dict[str, Any]) -> dict[str, Any] | None:
    return next(reversed(record["revisions"].values()), None)


def _fqdn(record: dict[str, Any], host: str) -> str:
    """``<host>.[internal.]<environment domain>`` when the app has ingress, else ``""``."""
    ingress = record["resource"]["properties"]["configuration"]["ingress"]
    if ingress is None:
        return ""
    return f"{host}.{'' if ingress.get('external') else 'internal.'}{record['domain']}"


def _traffic_weights(record: dict[str, Any]) -> dict[str, int]:
    """Traffic weight per lower-cased revision name (``latestRevision`` means the latest ready one)."""
    configuration = record["resource"]["properties"]["configuration"]
    ready = record["ready"].lower()
    ingress = configuration["ingress"]
    if configuration["activeRevisionsMode"] != "Multiple" or ingress is None:
        return {ready: 100} if ready else {}
    weights: Counter[str] = Counter()
    for rule in ingress.get("traffic") or []:
        target = ready if rule.get("latestRevision") else str(rule.get("revisionName") or "").lower()
        if target:
            weights[target] += int(rule.get("weight") or 0)
    return dict(weights)


def _system_data(created_at: str, modified: float) -> dict[str, str]:
    """ARM ``systemData`` for a resource created at ``created_at`` and modified now."""
    return {
        "createdBy": SYSTEM_ACTOR,
        "createdByType": "Application",
        "createdAt": created_at,
        "lastModifiedBy": SYSTEM_ACTOR,
        "lastModifiedByType": "Application",
        "lastModifiedAt": _iso(modified),
    }


def _coerce_fault(name: str, value: Any) -> Any:
    """Coerce a fault setting to the type of its default; ValueError when impossible."""
    default = FAULT_DEFAULTS[name]
    try:
        if isinstance(default, list):
            if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, set)):
                raise TypeError("expected a list of app names")
            return [str(v) for v in value]
        if isinstance(default, str):
            if not isinstance(value, str):
                raise TypeError("expected a string")
            return value
        coerced = type(default)(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"invalid value for fault setting {name!r}: {value!r} ({exc})") from exc
    if coerced < 0:
        raise ValueError(f"fault setting {name!r} must not be negative")
    return coerced


# --------------------------------------------------------------- HTTP layer


class _Handler(BaseHTTPRequestHandler):
    """Translates HTTP/1.1 requests (keep-alive) into ``AcaEmulator.handle`` calls."""

    protocol_version = "HTTP/1.1"
    server: TlsServer

    def _serve(self) -> None:
        url = urlsplit(self.path)
        request = Request(
            method=self.command,
            path=url.path,
            query={k.lower(): v for k, v in parse_qsl(url.query, keep_blank_values=True)},
            headers=self.headers,
            body=self._read_body(),
            base_url=f"https://{host}" if (host := self.headers.get("Host")) else self.server.owner.url,
        )
        response = self.server.owner.handle(request)
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)

    do_GET = do_PUT = do_PATCH = do_DELETE = do_POST = _serve

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature fixed by the base class
        """Silence per-request logging."""


# ---------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    """Run the emulator until SIGTERM/SIGINT, printing one ``listening`` line."""
    parser = argparse.ArgumentParser(prog="python -m devtools.aca_emulator", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cert-dir")
    parser.add_argument("--state-file")
    parser.add_argument("--page-size", type=int, default=100)
    args = parser.parse_args(argv)
    emulator = AcaEmulator(state_file=args.state_file, cert_dir=args.cert_dir, page_size=args.page_size)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    emulator.start(args.host, args.port)
    print(f"ACA emulator listening on {emulator.url} CA={emulator.ca_path}", flush=True)
    while not stopping.wait(0.5):
        pass
    emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
