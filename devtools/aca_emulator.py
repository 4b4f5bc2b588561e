"""Local HTTPS emulator of the Azure Resource Manager contract for Azure Container Apps (dev only).

Serves ``Microsoft.App/containerApps`` (with revisions, activate/deactivate and
async operations), ``Microsoft.App/jobs`` (with ``start`` and executions),
``Microsoft.App/managedEnvironments`` (with workload profiles) and their
``daprComponents`` closely enough for the real ``azure-mgmt-appcontainers``
client to run against it unchanged, with per-route call counters and injectable
faults (latency, throttling, unavailability, failing or hanging operations,
another client's operation running on an app or job, images that fail to start).
Tests decide job execution outcomes with ``add_execution`` / ``set_execution``, a
revision's health with ``set_revision_state`` and time with ``set_clock``. The same
port serves Azure Monitor's metrics API (``metrics:getBatch``, values injected with
``set_requests``) and the Application Insights query API (answers injected with
``set_query_result``): see devtools/monitor_stub.py.

Long-running operations are evaluated lazily whenever their app or the
operation itself is read, using the fault settings in force at that moment
(no thread or timer per operation). With a state file, a single writer thread
persists changes while serving.

As strict as ARM: a write to an app whose operation still runs is refused with
409 ``ContainerAppOperationInProgress``; a hung operation stays ``InProgress``
until ``release`` ends it; a failed write leaves the app as it was; bodies the
Container Apps RP refuses (name, identity type, image reference, CPU/memory
total, secrets and their references, probes, volumes, scale rules, ingress and
traffic, Dapr, identity settings, workload profiles, revision names, job
triggers and cron expressions, Dapr component secrets) get its 400 codes; ARM's
defaults are filled in (ACA's default probes on the main container of an app
with ingress, scale, Dapr, traffic, trigger configurations); a reused revision
suffix fails the write's operation.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import copy
import hashlib
import json
import logging
import math
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
import random
from typing import Any, Callable, Iterator
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import trustme

from devtools.merge_patch import merge_patch
from devtools.monitor_stub import Answer, LogQueries, MonitorError, Rate, RequestMetrics, logs_body, logs_resource
from devtools.tls import TlsServer, certificate

_LOG = logging.getLogger(__name__)

APP_TYPE = "Microsoft.App/containerApps"
ENV_TYPE = "Microsoft.App/managedEnvironments"
REVISION_TYPE = "Microsoft.App/containerApps/revisions"
JOB_TYPE = "Microsoft.App/jobs"
EXECUTION_TYPE = "Microsoft.App/jobs/executions"
# As Microsoft's published examples spell it (DaprComponents_*.json): the type and id segment in lower case.
DAPR_TYPE = "Microsoft.App/managedEnvironments/daprcomponents"
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
    "conflict_apps": [],
    "lro_fail_jobs": [],
    "lro_hang_jobs": [],
    "conflict_jobs": [],
    "throttle_next": 0,
    "unavailable_next": 0,
    "retry_after_s": 1,
    "failing_image_marker": "broken",
    # ARM's request throttling (off unless 1) and the operation timing model; see ``ThrottlingModel``.
    "throttling": 0,
    "time_scale": 1.0,
    "lro_durations_s": {},
    "lro_jitter": 0.0,
}

ARM_BUCKETS: dict[str, tuple[int, float]] = {"reads": (250, 25.0), "writes": (200, 10.0), "deletes": (200, 10.0)}
"""ARM's token buckets per subscription and caller (security principal): (bucket size, refill per second), from
"Understand how Azure Resource Manager throttles requests" (regional throttling and token bucket algorithm)."""
ARM_GLOBAL_FACTOR = 15
"""The global subscription limit of each operation type, shared by all principals: 15 times the per-principal one."""
_LRO_KINDS = ("create", "update", "delete", "start")

# ARM answers these enum values capitalised whatever casing the client sent.
_ENUMS: dict[str, dict[str, str]] = {
    "transport": {v.lower(): v for v in ("Auto", "Http", "Http2", "Tcp")},
    "activeRevisionsMode": {v.lower(): v for v in ("Single", "Multiple", "Labels")},
    "clientCertificateMode": {v.lower(): v for v in ("Ignore", "Accept", "Require")},
    "identity": {v.lower(): v for v in ("None", "SystemAssigned", "UserAssigned", "SystemAssigned,UserAssigned")},
    "probe": {v.lower(): v for v in ("Liveness", "Readiness", "Startup")},
    "scheme": {v.lower(): v for v in ("HTTP", "HTTPS")},
    "storageType": {v.lower(): v for v in ("AzureFile", "EmptyDir", "NfsAzureFile", "Secret", "Smb")},
    "triggerType": {v.lower(): v for v in ("Manual", "Schedule", "Event")},
    "appProtocol": {v: v for v in ("http", "grpc")},
    "logLevel": {v: v for v in ("info", "debug", "warn", "error")},
    "affinity": {v: v for v in ("sticky", "none")},
    "action": {v.lower(): v for v in ("Allow", "Deny")},
    "bindingType": {v.lower(): v for v in ("Disabled", "SniEnabled", "Auto")},
    "lifecycle": {v.lower(): v for v in ("All", "Init", "Main", "None")},
    "executionStatus": {v.lower(): v for v in
                        ("Running", "Processing", "Stopped", "Degraded", "Failed", "Unknown", "Succeeded")},
}

_SUB = r"/subscriptions/(?P<sub>[^/]+)"
_RG = _SUB + r"/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.App"
_APP = _RG + r"/containerApps/(?P<name>[^/]+)"
_JOB = _RG + r"/jobs/(?P<name>[^/]+)"
_DAPR = _RG + r"/managedEnvironments/(?P<env>[^/]+)/daprComponents"
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
    (re.compile(_APP + r"/revisions/(?P<rev>[^/]+)/(?P<action>activate|deactivate)", re.I),
     {"POST": ("POST revision action", "_revision_action")}),
    (re.compile(_RG + r"/jobs", re.I), {"GET": ("GET jobs", "_list_jobs")}),
    (
        re.compile(_JOB, re.I),
        {
            "GET": ("GET job", "_get_job"),
            "PUT": ("PUT job", "_put_job"),
            "PATCH": ("PATCH job", "_patch_job"),
            "DELETE": ("DELETE job", "_delete_job"),
        },
    ),
    (re.compile(_JOB + r"/start", re.I), {"POST": ("POST job start", "_start_job")}),
    (re.compile(_JOB + r"/executions", re.I), {"GET": ("GET job executions", "_list_executions")}),
    (re.compile(_JOB + r"/executions/(?P<execution>[^/]+)", re.I),
     {"GET": ("GET job execution", "_get_execution")}),
    (re.compile(_DAPR, re.I), {"GET": ("GET dapr components", "_list_dapr_components")}),
    (
        re.compile(_DAPR + r"/(?P<name>[^/]+)", re.I),
        {
            "GET": ("GET dapr component", "_get_dapr_component"),
            "PUT": ("PUT dapr component", "_put_dapr_component"),
            "DELETE": ("DELETE dapr component", "_delete_dapr_component"),
        },
    ),
    (re.compile(_DAPR + r"/(?P<name>[^/]+)/listSecrets", re.I),
     {"POST": ("POST dapr component listSecrets", "_list_dapr_secrets")}),
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
    (
        re.compile(_OPS + r"/containerappsjobOperationStatuses/(?P<opid>[^/]+)", re.I),
        {"GET": ("GET operation", "_get_operation_status")},
    ),
    (
        re.compile(_OPS + r"/containerappsjobOperationResults/(?P<opid>[^/]+)", re.I),
        {"GET": ("GET operation", "_get_operation_result")},
    ),
]
# Where each kind of long-running operation is polled, and the fault lists that act on it.
_OPERATION_PATHS = {"apps": ("containerappOperationStatuses", "containerappOperationResults"),
                    "jobs": ("containerappsjobOperationStatuses", "containerappsjobOperationResults")}
_FAULT_LISTS = {"apps": ("lro_hang_apps", "lro_fail_apps", "conflict_apps"),
                "jobs": ("lro_hang_jobs", "lro_fail_jobs", "conflict_jobs")}
# Top-level keys the emulator owns; any other key a client sends is kept as sent.
_APP_KEYS = frozenset({"id", "name", "type", "location", "tags", "identity", "systemData", "properties"})
_ENV_KEYS = _APP_KEYS - {"identity"}
_METRICS_BATCH = re.compile(_SUB + r"/metrics:getBatch", re.I)
"""Azure Monitor's metrics data plane (devtools/monitor_stub.py), served on the same port."""
_CONTROL_ENV = re.compile(r"/_emulator/environments/(?P<sub>[^/]+)/(?P<rg>[^/]+)/(?P<name>[^/]+)")
_CONTROL_REQUESTS = re.compile(r"/_emulator/requests/(?P<app>[^/]+)/(?P<revision>[^/]+)")
_CONTROL_REVISION_STATE = re.compile(r"/_emulator/revision-state/(?P<app>[^/]+)/(?P<revision>[^/]+)")
_CONTROL_RELEASE = re.compile(r"/_emulator/release(?P<job>-job)?/(?P<sub>[^/]+)/(?P<rg>[^/]+)/(?P<name>[^/]+)")


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
    if default:
        _default(obj, key, default)
    value = obj.get(key)
    if isinstance(value, str):
        obj[key] = _ENUMS[enum].get(value.lower(), value)


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
    """A container with ARM's defaults: resources (0.5 CPU, 1Gi, read-only 2Gi ephemeral storage), probes
    (``[]`` for app containers) with their ``type`` and ``httpGet.scheme`` in ARM's casing."""
    out = dict(container)
    resources = dict(out.get("resources") or {})
    _default(resources, "cpu", 0.5)
    _default(resources, "memory", "1Gi")
    resources["ephemeralStorage"] = "2Gi"
    out["resources"] = resources
    if probes:
        _default(out, "probes", [])
    if out.get("probes"):
        out["probes"] = [_normalise_probe(p) for p in out["probes"]]
    return out


def _normalise_probe(probe: dict[str, Any]) -> dict[str, Any]:
    """A probe as ARM returns it: the timing fields as sent (ARM fills none in), enum values in ARM's casing."""
    out = dict(probe)
    _canonical(out, "type", "probe", "")
    if isinstance(out.get("httpGet"), dict) and out["httpGet"].get("scheme") is not None:
        out["httpGet"] = dict(out["httpGet"])
        _canonical(out["httpGet"], "scheme", "scheme", "HTTP")
    return out


def _normalise_dapr(dapr: dict[str, Any] | None) -> dict[str, Any] | None:
    """``configuration.dapr`` with the defaults the API documents (appProtocol http, logLevel info, API
    logging off), enum values in ARM's (lower) casing."""
    if dapr is None:
        return None
    out = dict(dapr)
    _canonical(out, "appProtocol", "appProtocol", "http")
    _canonical(out, "logLevel", "logLevel", "info")
    _default(out, "enableApiLogging", False)
    return out


def default_probes(port: int) -> list[dict[str, Any]]:
    """The TCP probes ACA adds to the main container of an app with ingress, one per type the container lacks
    (learn.microsoft.com/azure/container-apps/health-probes#default-configuration)."""
    return [
        {"type": "Startup", "tcpSocket": {"port": port}, "timeoutSeconds": 3, "periodSeconds": 1,
         "initialDelaySeconds": 1, "successThreshold": 1, "failureThreshold": 240},
        {"type": "Liveness", "tcpSocket": {"port": port}},
        {"type": "Readiness", "tcpSocket": {"port": port}, "timeoutSeconds": 5, "periodSeconds": 5,
         "initialDelaySeconds": 3, "successThreshold": 1, "failureThreshold": 48},
    ]


def _with_default_probes(container: dict[str, Any], port: int) -> dict[str, Any]:
    """``container`` with ACA's default probe added for each probe type it does not define."""
    probes = list(container.get("probes") or [])
    defined = {str(p.get("type", "")).lower() for p in probes if isinstance(p, dict)}
    probes += [p for p in default_probes(port) if p["type"].lower() not in defined]
    return {**container, "probes": probes}


def _normalise_template(template: dict[str, Any], ingress: dict[str, Any] | None = None) -> dict[str, Any]:
    """``properties.template`` with the defaults ARM fills in; with ingress on a target port, the main
    (first) container gets ACA's default probes for the types it does not define (sidecars do not)."""
    out = dict(template)
    _default(out, "revisionSuffix", "")
    out.setdefault("terminationGracePeriodSeconds", None)
    out["containers"] = [_normalise_container(c, probes=True) for c in out["containers"]]
    port = (ingress or {}).get("targetPort")
    if isinstance(port, int) and not isinstance(port, bool) and port > 0:
        out["containers"][0] = _with_default_probes(out["containers"][0], port)
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
    out["dapr"] = _normalise_dapr(out.get("dapr"))
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


# What the Container Apps resource provider refuses, with the codes and messages real deployments report
# (sources are listed in tests/devtools/test_aca_emulator.py next to the test of each refusal).
_APP_NAME = re.compile(r"[a-z][a-z0-9-]{0,30}[a-z0-9]")
_APP_NAME_RULE = (
    "A name must consist of lower case alphanumeric characters or '-', start with an alphabetic character, "
    "and end with an alphanumeric character and cannot have '--'. The length must be between 2 and 32 "
    "characters inclusive."
)
# The OCI / Docker distribution reference grammar (github.com/distribution/reference, regexp.go).
_ALNUM = r"[a-z0-9]+"
_PATH_COMPONENT = rf"{_ALNUM}(?:(?:[._]|__|-+){_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_IMAGE = re.compile(
    rf"(?P<name>(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    r"(?::[\w][\w.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?",
    re.ASCII,
)
_IMAGE_NAME_MAX = 255  # distribution's NameTotalLengthMax
_IMAGE_MAX = 512  # name + ':' + 128-character tag + '@' + sha512 digest fits; anything longer is refused unparsed
_GIB = re.compile(r"(\d+(?:\.\d+)?)Gi")
CONSUMPTION_SIZES: tuple[tuple[float, float], ...] = tuple((step / 4, step / 2) for step in range(1, 17))
"""(vCPU, GiB) totals an app may request on the Consumption workload profile: 0.25/0.5Gi ... 4.0/8.0Gi."""


def _shown(value: Any, limit: int = 100) -> str:
    """``value`` as text, cut to ``limit`` characters so an oversized input is never echoed whole."""
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _template_invalid(field_path: str, value: Any, details: str) -> ArmError:
    """The RP's ``InvalidParameterValueInContainerTemplate`` answer for one field."""
    return ArmError(
        400,
        "InvalidParameterValueInContainerTemplate",
        f"The following field(s) are either invalid or missing. Field '{field_path}' is invalid with details: "
        f"'Invalid value: \"{_shown(value)}\": {details}';.",
    )


def _check_app_name(name: str) -> None:
    """ARM refuses to create an app whose name breaks ACA's naming rule."""
    if not _APP_NAME.fullmatch(name) or "--" in name:
        raise ArmError(400, "ContainerAppInvalidName", f"Invalid ContainerApp name '{_shown(name)}'. {_APP_NAME_RULE}")


def _check_identity(identity: Any) -> None:
    """``identity.type`` must be one of ARM's ManagedServiceIdentityType values, spelt exactly (no space
    after the comma of ``SystemAssigned,UserAssigned``; ARM compares case-insensitively)."""
    if identity is None:
        return
    kind = _obj(identity).get("type")
    if not isinstance(identity, dict) or (kind is not None and str(kind).lower() not in _ENUMS["identity"]):
        allowed = ", ".join(_ENUMS["identity"].values())
        message = (f"The request content was invalid and could not be deserialized: 'Requested value "
                   f"'{_shown(kind)}' was not found. Path 'identity.type'.' Allowed values: {allowed}.")
        raise ArmError(400, "InvalidRequestContent", message)


def _check_image(field_path: str, image: str) -> None:
    """An image must parse as an OCI reference (repository name at most 255 characters)."""
    match = _IMAGE.fullmatch(image) if len(image) <= _IMAGE_MAX else None
    if match is None or len(match.group("name")) > _IMAGE_NAME_MAX:
        raise _template_invalid(field_path, image, "could not parse reference")


def _gib(value: Any) -> float | None:
    match = _GIB.fullmatch(value) if isinstance(value, str) else None
    return float(match.group(1)) if match else None


def _cpu(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _decimal(value: float) -> str:
    """0.25 -> '0.25', 1 -> '1.0', as the RP prints sizes."""
    text = f"{value:.2f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _check_resources(containers: list[dict[str, Any]], profile: dict[str, Any] | None = None) -> None:
    """The CPU and memory summed over the (non-init) containers (missing values count as ARM's defaults, 0.5
    vCPU and 1Gi): on the Consumption profile one of ``CONSUMPTION_SIZES``; on a Dedicated ``profile`` of a
    known type at most that profile's size (``DEDICATED_SIZES``)."""
    kind = str(_obj(profile).get("workloadProfileType") or "Consumption")
    if kind.lower() != "consumption":
        _check_dedicated_resources(containers, profile or {}, kind)
        return
    cpu, memory, shown_memory = 0.0, 0.0, []
    for container in containers:
        resources = _obj(container.get("resources"))
        raw_cpu, raw_memory = resources.get("cpu"), resources.get("memory")
        one_cpu = _cpu(0.5 if raw_cpu is None else raw_cpu)
        one_memory = _gib("1Gi" if raw_memory is None else raw_memory)
        cpu += one_cpu if one_cpu is not None else float("nan")
        memory += one_memory if one_memory is not None else float("nan")
        shown_memory.append("1Gi" if raw_memory is None else str(raw_memory))
    if any(abs(cpu - c) < 1e-6 and abs(memory - m) < 1e-6 for c, m in CONSUMPTION_SIZES):
        return
    shown = _decimal(memory) if memory == memory else _shown(" + ".join(shown_memory))
    pairs = "; ".join(f"[cpu: {_decimal(c)}, memory: {_decimal(m)}Gi]" for c, m in CONSUMPTION_SIZES)
    raise ArmError(
        400,
        "ContainerAppInvalidResourceTotal",
        f"The total requested CPU and memory resources for this application (CPU: {cpu:g}, memory: {shown}) is "
        "invalid. Total CPU and memory for all containers defined in a Container App must add up to one of the "
        f"following CPU - Memory combinations: {pairs}",
    )


def _totals(containers: list[dict[str, Any]]) -> tuple[float, float]:
    """(vCPU, GiB) summed over ``containers`` with ARM's defaults; NaN where a value does not parse."""
    cpu = memory = 0.0
    for container in containers:
        resources = _obj(container.get("resources"))
        one_cpu = _cpu(0.5 if resources.get("cpu") is None else resources["cpu"])
        one_memory = _gib("1Gi" if resources.get("memory") is None else resources["memory"])
        cpu += one_cpu if one_cpu is not None else float("nan")
        memory += one_memory if one_memory is not None else float("nan")
    return cpu, memory


def _check_dedicated_resources(containers: list[dict[str, Any]], profile: dict[str, Any], kind: str) -> None:
    """On a Dedicated profile the totals must fit the profile's node size (unknown profile types pass)."""
    size = DEDICATED_SIZES.get(kind.upper())
    if size is None:
        return
    cpu, memory = _totals(containers)
    if 0 < cpu <= size[0] + 1e-6 and 0 < memory <= size[1] + 1e-6:  # False for NaN
        return
    raise ArmError(
        400,
        "ContainerAppInvalidResourceTotal",
        f"The total requested CPU and memory resources for this application (CPU: {cpu:g}, memory: "
        f"{'invalid' if math.isnan(memory) else _decimal(memory)}) is invalid. Workload profile "
        f"'{_shown(profile.get('name'))}' of type {kind} allows at most {size[0]:g} vCPU and {size[1]:g}Gi in total.",
    )


def _identity_assigned(ref: Any, identity: Any) -> bool:
    """Whether ``ref`` (``system`` or a user-assigned identity's resource id) is an identity of the resource."""
    block = _obj(identity)
    kind = str(block.get("type") or "None").lower()
    if not isinstance(ref, str):
        return False
    if ref.lower() == "system":
        return "systemassigned" in kind
    users = _obj(block.get("userAssignedIdentities")) if "userassigned" in kind else {}
    return ref.lower() in {rid.lower() for rid in users}


def _check_secrets(body: dict[str, Any], sent: dict[str, Any]) -> None:
    """Secrets the request sends need a value or a Key Vault URL *and* identity; a Key Vault identity must be
    assigned to the app; every ``secretRef`` and registry ``passwordSecretRef`` must name a declared secret."""
    configuration = _obj(_obj(body.get("properties")).get("configuration"))
    secrets = [s for s in configuration.get("secrets") or [] if isinstance(s, dict)]
    sent_secrets = _obj(_obj(_obj(sent.get("properties")).get("configuration"))).get("secrets") or []
    invalid = [str(s.get("name")) for s in sent_secrets if isinstance(s, dict) and s.get("value") is None
               and not (s.get("keyVaultUrl") and s.get("identity"))]
    if invalid:
        names = _shown(", ".join(invalid))
        raise ArmError(400, "ContainerAppSecretInvalid", f"Invalid Request: Container app secret(s) with name(s) "
                                                          f"'{names}' are invalid: value or keyVaultUrl and identity "
                                                          "should be provided.")
    for secret in secrets:
        ref = secret.get("identity")
        if not secret.get("keyVaultUrl") or not isinstance(ref, str):
            continue
        if _identity_assigned(ref, body.get("identity")):
            continue
        raise _template_invalid("configuration.secrets", secret.get("name"),
                                f"Unable to get value using Managed identity {_shown(ref)} for secret "
                                f"{_shown(secret.get('name'))}: the identity is not assigned to the container app")
    names = {s.get("name") for s in secrets}
    template = _obj(_obj(body.get("properties")).get("template"))
    for container in [*(template.get("containers") or []), *(template.get("initContainers") or [])]:
        for variable in _obj(container).get("env") or []:
            ref = _obj(variable).get("secretRef")
            if ref and ref not in names:
                raise ArmError(400, "ContainerAppSecretRefNotFound",
                               f"SecretRef '{_shown(ref)}' defined for container '{_shown(container.get('name'))}' "
                               "not found.")
    for registry in configuration.get("registries") or []:
        ref = _obj(registry).get("passwordSecretRef")
        if ref and ref not in names:
            raise ArmError(400, "ContainerAppRegistriesPasswordSecretRefNotFound",
                           f"PasswordSecretRef '{_shown(ref)}' defined for registry server "
                           f"'{_shown(registry.get('server'))}' not found.")


# Codes confirmed from real ARM answers are listed in tests/devtools/test_aca_emulator_model.py; every other
# refusal below uses the RP's generic InvalidParameterValueInContainerTemplate (template fields) or the
# InvalidParameterValueInContainerConfiguration counterpart (configuration fields), with our own details.
_PROBE_LIMITS: tuple[tuple[str, str, int, int], ...] = (
    ("initialDelaySeconds", "InitialDelaySeconds", 1, 60),
    ("periodSeconds", "PeriodSeconds", 1, 240),
    ("timeoutSeconds", "TimeoutSeconds", 1, 240),
    ("successThreshold", "SuccessThreshold", 1, 10),
    ("terminationGracePeriodSeconds", "TerminationGracePeriodSeconds", 0, 3600),
)
# ACA's own default probes use 48 (Readiness) and 240 (Startup); Liveness stops at 30.
_FAILURE_THRESHOLD_MAX = {"Liveness": 30, "Readiness": 48, "Startup": 240}
DEDICATED_SIZES: dict[str, tuple[float, float]] = {
    "D4": (4, 16), "D8": (8, 32), "D16": (16, 64), "D32": (32, 128),
    "E4": (4, 32), "E8": (8, 64), "E16": (16, 128), "E32": (32, 256),
    "NC24-A100": (24, 220), "NC48-A100": (48, 440), "NC96-A100": (96, 880),
}
"""(vCPU, GiB) of each Dedicated workload profile type (learn.microsoft.com/azure/container-apps/workload-profiles-overview)."""
_SCALE_TRIGGERS = ("azureQueue", "custom", "http", "tcp")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _configuration_invalid(field_path: str, value: Any, details: str) -> ArmError:
    """A refused ``properties.configuration`` field, in the shape of the RP's template answer."""
    return ArmError(
        400,
        "InvalidParameterValueInContainerConfiguration",
        f"The following field(s) are either invalid or missing. Field '{field_path}' is invalid with details: "
        f"'Invalid value: \"{_shown(value)}\": {details}';.",
    )


def _check_probes(container: dict[str, Any], where: str) -> None:
    """Per container: a known type, at most one probe per type, exactly one of httpGet / tcpSocket with a port
    in 1-65535, and every timing field within ACA's range."""
    seen: set[str] = set()
    name = _shown(container.get("name"))
    for probe in container.get("probes") or []:
        probe = _obj(probe)
        kind = _ENUMS["probe"].get(str(probe.get("type") or "").lower())
        if kind is None:
            raise _template_invalid(f"{where}.probes.type", probe.get("type"),
                                    "supported values: Liveness, Readiness, Startup")
        if kind in seen:
            raise _template_invalid(f"{where}.probes", kind, f"container '{name}' has more than one {kind} probe")
        seen.add(kind)
        actions = [key for key in ("httpGet", "tcpSocket") if probe.get(key) is not None]
        if len(actions) != 1:
            raise _template_invalid(f"{where}.probes.{kind}", ", ".join(actions) or "none",
                                    "exactly one of httpGet or tcpSocket must be set")
        action = _obj(probe[actions[0]])
        port = action.get("port")
        if not _is_int(port) or not 1 <= port <= 65535:
            raise _template_invalid(f"{where}.probes.{kind}.{actions[0]}.port", port,
                                    "must be an integer between 1 and 65535")
        scheme = action.get("scheme")
        if actions[0] == "httpGet" and scheme is not None and str(scheme).lower() not in _ENUMS["scheme"]:
            raise _template_invalid(f"{where}.probes.{kind}.httpGet.scheme", scheme, "supported values: HTTP, HTTPS")
        limits = [*_PROBE_LIMITS, ("failureThreshold", "FailureThreshold", 1, _FAILURE_THRESHOLD_MAX[kind])]
        for key, label, low, high in limits:
            if key == "successThreshold" and kind != "Readiness":
                high = 1  # the API: "Must be 1 for liveness and startup"
            value = probe.get(key)
            if value is not None and (not _is_int(value) or not low <= value <= high):
                raise ArmError(400, f"ContainerAppProbe{label}OutOfRange",
                               f"Container '{name}' '{kind}' probe's {label} must be in the range of "
                               f"['{low}', '{high}'].")


def _check_volumes(template: dict[str, Any], secret_names: set[Any], where: str = "template") -> None:
    """Volumes have unique names and a known storage type (AzureFile / NfsAzureFile name a storage); a Secret
    volume's secrets are declared secrets; every volumeMount names a declared volume and has a mountPath."""
    declared: set[str] = set()
    for volume in template.get("volumes") or []:
        volume = _obj(volume)
        name = volume.get("name")
        if not isinstance(name, str) or not name:
            raise _template_invalid(f"{where}.volumes.name", name, "a volume needs a name")
        if name in declared:
            raise _template_invalid(f"{where}.volumes.name", name, "volume names must be unique")
        declared.add(name)
        kind = _ENUMS["storageType"].get(str(volume.get("storageType") or "EmptyDir").lower())
        if kind is None:
            raise _template_invalid(f"{where}.volumes.{name}.storageType", volume.get("storageType"),
                                    "supported values: AzureFile, EmptyDir, NfsAzureFile, Secret, Smb")
        if kind in ("AzureFile", "NfsAzureFile") and not volume.get("storageName"):
            raise _template_invalid(f"{where}.volumes.{name}.storageName", "",
                                    f"a {kind} volume must name an environment storage")
        for item in volume.get("secrets") or []:
            ref = _obj(item).get("secretRef")
            if kind == "Secret" and ref not in secret_names:
                raise _template_invalid(f"{where}.volumes.{name}.secrets.secretRef", ref,
                                        "secret volume references a secret the resource does not declare")
    for section in ("containers", "initContainers"):
        for container in template.get(section) or []:
            container = _obj(container)
            for mount in container.get("volumeMounts") or []:
                mount = _obj(mount)
                field_path = f"{where}.{section}.{_shown(container.get('name'))}.volumeMounts"
                if mount.get("volumeName") not in declared:
                    raise _template_invalid(f"{field_path}.volumeName", mount.get("volumeName"),
                                            "volume mount references a volume that is not declared")
                if not mount.get("mountPath"):
                    raise _template_invalid(f"{field_path}.mountPath", "", "a volume mount needs a mountPath")


def _check_rule_auth(rule: dict[str, Any], field_path: str, secret_names: set[Any], identity: Any) -> None:
    """A scale rule's ``auth`` entries name declared secrets and a trigger parameter; its ``identity`` is one of
    the resource's identities."""
    for auth in rule.get("auth") or []:
        auth = _obj(auth)
        if auth.get("secretRef") not in secret_names:
            raise _template_invalid(f"{field_path}.auth.secretRef", auth.get("secretRef"),
                                    "scale rule auth references a secret the resource does not declare")
        if not auth.get("triggerParameter"):
            raise _template_invalid(f"{field_path}.auth.triggerParameter", "", "a trigger parameter is required")
    ref = rule.get("identity")
    if ref is not None and not _identity_assigned(ref, identity):
        raise _template_invalid(f"{field_path}.identity", ref, "the identity is not assigned to the resource")


def _check_scale(template: dict[str, Any], secret_names: set[Any], identity: Any) -> None:
    """minReplicas 0-1000 <= maxReplicas 1-1000; each rule has a unique name and exactly one trigger of
    azureQueue / custom / http / tcp, with its auth and identity checked."""
    scale = _obj(template.get("scale"))
    low, high = scale.get("minReplicas"), scale.get("maxReplicas")
    if low is not None and (not _is_int(low) or not 0 <= low <= 1000):
        raise _template_invalid("template.scale.minReplicas", low, "must be between 0 and 1000")
    if high is not None and (not _is_int(high) or not 1 <= high <= 1000):
        raise _template_invalid("template.scale.maxReplicas", high, "must be between 1 and 1000")
    if _is_int(low) and low > (high if _is_int(high) else 10):
        raise _template_invalid("template.scale.minReplicas", low, "must not be greater than maxReplicas")
    for key in ("cooldownPeriod", "pollingInterval"):
        value = scale.get(key)
        if value is not None and (not _is_int(value) or value < 0):
            raise _template_invalid(f"template.scale.{key}", value, "must be a non-negative integer")
    names: set[str] = set()
    for rule in scale.get("rules") or []:
        rule = _obj(rule)
        name = rule.get("name")
        if not isinstance(name, str) or not name or name in names:
            raise _template_invalid("template.scale.rules.name", name, "each scale rule needs a unique name")
        names.add(name)
        triggers = [key for key in _SCALE_TRIGGERS if rule.get(key) is not None]
        if len(triggers) != 1:
            raise _template_invalid(f"template.scale.rules.{name}", ", ".join(triggers) or "none",
                                    "exactly one of azureQueue, custom, http or tcp must be set")
        trigger = _obj(rule[triggers[0]])
        if triggers[0] == "custom" and not trigger.get("type"):
            raise _template_invalid(f"template.scale.rules.{name}.custom.type", "", "a custom rule needs a type")
        if triggers[0] == "azureQueue" and not (trigger.get("queueName") and _is_int(trigger.get("queueLength"))):
            raise _template_invalid(f"template.scale.rules.{name}.azureQueue", trigger.get("queueName"),
                                    "queueName and queueLength are required")
        _check_rule_auth(trigger, f"template.scale.rules.{name}.{triggers[0]}", secret_names, identity)


def _check_ingress(configuration: dict[str, Any]) -> None:
    """Ports, enum values, one action across IP restrictions, exposedPort only with the tcp transport, and the
    traffic rules: weights 0-100 summing to 100, each entry either a revisionName or latestRevision, and a
    split over several entries only with activeRevisionsMode Multiple (or Labels)."""
    ingress = configuration.get("ingress")
    if ingress is None:
        return
    ingress = _obj(ingress)
    for key in ("targetPort", "exposedPort"):
        value = ingress.get(key)
        if value is not None and (not _is_int(value) or not 0 <= value <= 65535):
            raise _configuration_invalid(f"configuration.ingress.{key}", value, "must be a port number")
    transport = str(ingress.get("transport") or "auto").lower()
    if transport not in _ENUMS["transport"]:
        raise _configuration_invalid("configuration.ingress.transport", ingress.get("transport"),
                                     "supported values: auto, http, http2, tcp")
    if ingress.get("exposedPort") and transport != "tcp":
        raise _configuration_invalid("configuration.ingress.exposedPort", ingress["exposedPort"],
                                     "exposedPort can only be set when transport is tcp")
    for key, enum in (("clientCertificateMode", "clientCertificateMode"),):
        value = ingress.get(key)
        if value is not None and str(value).lower() not in _ENUMS[enum]:
            raise _configuration_invalid(f"configuration.ingress.{key}", value, "supported values: ignore, accept, require")
    affinity = _obj(ingress.get("stickySessions")).get("affinity")
    if affinity is not None and str(affinity).lower() not in _ENUMS["affinity"]:
        raise _configuration_invalid("configuration.ingress.stickySessions.affinity", affinity,
                                     "supported values: sticky, none")
    actions = set()
    for rule in ingress.get("ipSecurityRestrictions") or []:
        rule = _obj(rule)
        action = _ENUMS["action"].get(str(rule.get("action") or "").lower())
        if action is None or not rule.get("name") or not rule.get("ipAddressRange"):
            raise _configuration_invalid("configuration.ingress.ipSecurityRestrictions", rule.get("name"),
                                         "name, ipAddressRange and action (Allow or Deny) are required")
        actions.add(action)
    if len(actions) > 1:
        raise _configuration_invalid("configuration.ingress.ipSecurityRestrictions", "Allow, Deny",
                                     "all IP security restrictions must use the same action")
    for domain in ingress.get("customDomains") or []:
        domain = _obj(domain)
        binding = domain.get("bindingType")
        if not domain.get("name") or (binding is not None and str(binding).lower() not in _ENUMS["bindingType"]):
            raise _configuration_invalid("configuration.ingress.customDomains", domain.get("name"),
                                         "a custom domain needs a name and bindingType Disabled, SniEnabled or Auto")
    for mapping in ingress.get("additionalPortMappings") or []:
        port = _obj(mapping).get("targetPort")
        if not _is_int(port) or not 1 <= port <= 65535:
            raise _configuration_invalid("configuration.ingress.additionalPortMappings.targetPort", port,
                                         "must be a port number")
    cors = ingress.get("corsPolicy")
    if cors is not None and not _obj(cors).get("allowedOrigins"):
        raise _configuration_invalid("configuration.ingress.corsPolicy.allowedOrigins", "",
                                     "allowedOrigins is required in a CORS policy")
    _check_traffic(configuration, ingress)


def _check_traffic(configuration: dict[str, Any], ingress: dict[str, Any]) -> None:
    traffic = ingress.get("traffic")
    if not traffic:
        return
    labels: set[str] = set()
    total = 0
    for entry in traffic:
        entry = _obj(entry)
        weight = entry.get("weight", 0)
        if not _is_int(weight) or not 0 <= weight <= 100:
            raise _configuration_invalid("configuration.ingress.traffic.weight", weight, "must be between 0 and 100")
        total += weight
        if bool(entry.get("latestRevision")) == bool(entry.get("revisionName")):
            raise _configuration_invalid("configuration.ingress.traffic", entry.get("revisionName"),
                                         "each entry needs either a revisionName or latestRevision true")
        label = entry.get("label")
        if label is not None:
            if label in labels:
                raise _configuration_invalid("configuration.ingress.traffic.label", label, "labels must be unique")
            labels.add(label)
    if total != 100:
        raise _configuration_invalid("configuration.ingress.traffic", total, "traffic weights must add up to 100")
    mode = str(configuration.get("activeRevisionsMode") or "Single").lower()
    if len(traffic) > 1 and mode == "single":
        raise _configuration_invalid("configuration.ingress.traffic", len(traffic),
                                     "splitting traffic across revisions needs activeRevisionsMode Multiple")


def _check_dapr(configuration: dict[str, Any]) -> None:
    dapr = configuration.get("dapr")
    if dapr is None:
        return
    dapr = _obj(dapr)
    for key in ("appProtocol", "logLevel"):
        value = dapr.get(key)
        if value is not None and str(value).lower() not in _ENUMS[key]:
            raise _configuration_invalid(f"configuration.dapr.{key}", value,
                                         f"supported values: {', '.join(_ENUMS[key])}")
    port = dapr.get("appPort")
    if port is not None and (not _is_int(port) or not 1 <= port <= 65535):
        raise _configuration_invalid("configuration.dapr.appPort", port, "must be a port number")


def _check_identity_settings(configuration: dict[str, Any], identity: Any) -> None:
    """Each identitySettings entry names one of the resource's identities, with a known lifecycle."""
    for setting in configuration.get("identitySettings") or []:
        setting = _obj(setting)
        if not _identity_assigned(setting.get("identity"), identity):
            raise _configuration_invalid("configuration.identitySettings.identity", setting.get("identity"),
                                         "the identity is not assigned to the resource")
        lifecycle = setting.get("lifecycle")
        if lifecycle is not None and str(lifecycle).lower() not in _ENUMS["lifecycle"]:
            raise _configuration_invalid("configuration.identitySettings.lifecycle", lifecycle,
                                         "supported values: All, Init, Main, None")


def _check_containers(template: dict[str, Any]) -> list[dict[str, Any]]:
    """Containers (at least one) and init containers have a name and a parseable image; probes are checked.
    Returns the (non-init) containers."""
    containers = template.get("containers")
    if not isinstance(containers, list) or not containers:
        raise ArmError(400, "ContainerAppCreateMustContainContainer", "Must specify atleast one container.")
    init = template.get("initContainers") or []
    for section, items in (("containers", containers), ("initContainers", init if isinstance(init, list) else [])):
        for i, container in enumerate(items):
            if not isinstance(container, dict) or not container.get("name"):
                raise ArmError(400, "InvalidRequestContent", f"'properties.template.{section}[{i}]' requires 'name'.")
            image = container.get("image")
            if not image:
                raise ArmError(400, "ContainerAppImageRequired",
                               f"Container with name '{_shown(container['name'])}' must have an 'Image' property "
                               "specified.")
            _check_image(f"template.{section}.{_shown(container['name'])}.image", str(image))
            if section == "containers":
                _check_probes(container, f"template.containers.{_shown(container['name'])}")
    return containers


def _secret_names(body: dict[str, Any]) -> set[Any]:
    configuration = _obj(_obj(body.get("properties")).get("configuration"))
    return {_obj(s).get("name") for s in configuration.get("secrets") or []}


def _check_revision_suffix(app: str, template: dict[str, Any]) -> None:
    """``<app>--<revisionSuffix>`` must be a valid revision name of at most 54 characters."""
    suffix = template.get("revisionSuffix")
    if not suffix:
        return
    name = f"{app}--{suffix}"
    if not isinstance(suffix, str) or not _APP_NAME.fullmatch(name) or "--" in str(suffix) or len(name) > 54:
        raise ArmError(
            400,
            "ContainerAppInvalidRevisionName",
            f"Revision name has an invalid value '{_shown(suffix)}'. A revision name must consist of lower case "
            "alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric "
            "character. The length of the revision name must not be more than a combined 54 characters with the "
            "container app name.",
        )


def _validate_app(body: dict[str, Any], sent: dict[str, Any]) -> str:
    """Check the app ``body`` about to be stored as ARM and the Container Apps RP do (``sent`` is the request
    body: only its secrets carry values); return the environment id it names."""
    if not isinstance(body.get("location"), str) or not body["location"].strip():
        raise ArmError(400, "InvalidRequestContent", "The 'location' property is required.")
    _check_identity(body.get("identity"))
    props = _obj(body.get("properties"))
    template = _obj(props.get("template"))
    _check_containers(template)
    _check_secrets(body, sent)
    secrets = _secret_names(body)
    _check_volumes(template, secrets)
    _check_scale(template, secrets, body.get("identity"))
    configuration = _obj(props.get("configuration"))
    mode = configuration.get("activeRevisionsMode")
    if mode is not None and str(mode).lower() not in _ENUMS["activeRevisionsMode"]:
        raise _configuration_invalid("configuration.activeRevisionsMode", mode, "supported values: Single, Multiple")
    inactive = configuration.get("maxInactiveRevisions")
    if inactive is not None and (not _is_int(inactive) or inactive < 0):
        raise _configuration_invalid("configuration.maxInactiveRevisions", inactive, "must be a non-negative integer")
    _check_ingress(configuration)
    _check_dapr(configuration)
    _check_identity_settings(configuration, body.get("identity"))
    grace = template.get("terminationGracePeriodSeconds")
    if grace is not None and (not _is_int(grace) or grace < 0):
        raise _template_invalid("template.terminationGracePeriodSeconds", grace, "must be a non-negative integer")
    env_id = props.get("managedEnvironmentId") or props.get("environmentId")
    if not isinstance(env_id, str) or not env_id:
        raise ArmError(400, "InvalidRequestContent", "'properties.managedEnvironmentId' is required.")
    return env_id


def _workload_profile(name: Any, env: dict[str, Any]) -> dict[str, Any] | None:
    """The environment's workload profile called ``name`` (compared case-insensitively); None when no name is
    given (the Consumption profile). A name the environment lacks is refused."""
    if name is None:
        return None
    profiles = env["properties"].get("workloadProfiles") or []
    for profile in profiles:
        if str(_obj(profile).get("name") or "").lower() == str(name).lower():
            return profile
    known = ", ".join(str(_obj(p).get("name")) for p in profiles)
    raise ArmError(400, "WorkloadProfileNotFound",
                   f"Workload profile '{_shown(name)}' was not found in managed environment '{env['name']}'. "
                   f"Workload profiles of the environment: {known}.")


def _check_workload_profiles(body: dict[str, Any]) -> None:
    """Each workload profile of an environment has a unique name, a type, and minimumCount <= maximumCount."""
    seen: set[str] = set()
    for profile in _obj(body.get("properties")).get("workloadProfiles") or []:
        profile = _obj(profile)
        name, kind = profile.get("name"), profile.get("workloadProfileType")
        if not isinstance(name, str) or not name or not isinstance(kind, str) or not kind:
            raise ArmError(400, "InvalidRequestContent",
                           "Each 'properties.workloadProfiles' entry requires 'name' and 'workloadProfileType'.")
        if name.lower() in seen:
            raise ArmError(400, "InvalidRequestContent", f"Workload profile name '{_shown(name)}' is used twice.")
        seen.add(name.lower())
        low, high = profile.get("minimumCount"), profile.get("maximumCount")
        if _is_int(low) and _is_int(high) and low > high:
            raise ArmError(400, "InvalidRequestContent",
                           f"Workload profile '{_shown(name)}': minimumCount must not exceed maximumCount.")


_CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")),
    ("day of week", 0, 7, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")),
)


def cron_problem(expression: Any) -> str | None:
    """Why ``expression`` is not a standard 5-field cron expression (minute hour day-of-month month
    day-of-week; ``*``, lists, ranges, ``/steps``, month and weekday names), or None when it is."""
    if not isinstance(expression, str):
        return "a cron expression must be a string"
    parts = expression.split()
    if len(parts) != 5:
        return f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(parts)}"
    for part, (label, low, high, names) in zip(parts, _CRON_FIELDS):
        for item in part.split(","):
            base, slash, step = item.partition("/")
            if slash and not (step.isdigit() and int(step) > 0):
                return f"invalid step '{step}' in the {label} field"
            if base == "*":
                continue
            bounds = base.split("-")
            if len(bounds) > 2 or not all(bounds):
                return f"invalid {label} field '{part}'"
            values = []
            for bound in bounds:
                upper = bound.upper()
                if upper in names:
                    values.append(names.index(upper) + (1 if label == "month" else 0))
                elif bound.isdigit() and low <= int(bound) <= high:
                    values.append(int(bound))
                else:
                    return f"'{bound}' is out of range for the {label} field ({low}-{high})"
            if len(values) == 2 and values[0] > values[1]:
                return f"invalid range '{base}' in the {label} field"
    return None


_JOB_TRIGGERS = {"Manual": "manualTriggerConfig", "Schedule": "scheduleTriggerConfig", "Event": "eventTriggerConfig"}


def _job_invalid(field_path: str, value: Any, details: str) -> ArmError:
    """A refused job configuration field (the RP's template answer shape)."""
    return ArmError(
        400,
        "InvalidParameterValueInJobConfiguration",
        f"The following field(s) are either invalid or missing. Field '{field_path}' is invalid with details: "
        f"'Invalid value: \"{_shown(value)}\": {details}';.",
    )


def _check_job_name(name: str) -> None:
    """A job name follows the same rule as a container app name."""
    if not _APP_NAME.fullmatch(name) or "--" in name:
        raise ArmError(400, "ContainerAppJobInvalidName",
                       f"Invalid ContainerAppJob name '{_shown(name)}'. {_APP_NAME_RULE}")


def _check_positive(config: dict[str, Any], key: str, field_path: str, low: int = 1) -> None:
    value = config.get(key)
    if value is not None and (not _is_int(value) or value < low):
        raise _job_invalid(f"{field_path}.{key}", value, f"must be an integer of at least {low}")


def _validate_job(body: dict[str, Any], sent: dict[str, Any]) -> str:
    """Check the job ``body`` about to be stored as the Container Apps RP does; return its environment id:
    location, identity, triggerType with only its own trigger configuration (a valid 5-field cron for
    Schedule), replicaTimeout, counts, event scale rules, and the containers, secrets, volumes and probes
    rules of apps."""
    if not isinstance(body.get("location"), str) or not body["location"].strip():
        raise ArmError(400, "InvalidRequestContent", "The 'location' property is required.")
    _check_identity(body.get("identity"))
    props = _obj(body.get("properties"))
    configuration = props.get("configuration")
    if not isinstance(configuration, dict):
        raise ArmError(400, "InvalidRequestContent", "'properties.configuration' is required.")
    trigger = _ENUMS["triggerType"].get(str(configuration.get("triggerType") or "").lower())
    if trigger is None:
        message = (f"The request content was invalid and could not be deserialized: 'Requested value "
                   f"'{_shown(configuration.get('triggerType'))}' was not found. Path "
                   "'properties.configuration.triggerType'.' Allowed values: Manual, Schedule, Event.")
        raise ArmError(400, "InvalidRequestContent", message)
    timeout = configuration.get("replicaTimeout")
    if not _is_int(timeout) or timeout < 1:
        raise _job_invalid("configuration.replicaTimeout", timeout, "replicaTimeout is required, in seconds (>= 1)")
    _check_positive(configuration, "replicaRetryLimit", "configuration", low=0)
    for other, key in _JOB_TRIGGERS.items():
        if other != trigger and configuration.get(key) is not None:
            raise _job_invalid(f"configuration.{key}", other, f"not allowed with triggerType {trigger}")
    key = _JOB_TRIGGERS[trigger]
    trigger_config = configuration.get(key)
    if trigger in ("Schedule", "Event") and not isinstance(trigger_config, dict):
        raise _job_invalid(f"configuration.{key}", None, f"{key} is required with triggerType {trigger}")
    trigger_config = _obj(trigger_config)
    for count in ("replicaCompletionCount", "parallelism"):
        _check_positive(trigger_config, count, f"configuration.{key}")
    if trigger == "Schedule":
        problem = cron_problem(trigger_config.get("cronExpression"))
        if problem:
            raise _job_invalid(f"configuration.{key}.cronExpression", trigger_config.get("cronExpression"), problem)
    template = _obj(props.get("template"))
    _check_containers(template)
    _check_secrets(body, sent)
    secrets = _secret_names(body)
    _check_volumes(template, secrets)
    _check_identity_settings(configuration, body.get("identity"))
    if trigger == "Event":
        scale = _obj(trigger_config.get("scale"))
        for count, low in (("minExecutions", 0), ("maxExecutions", 1), ("pollingInterval", 1)):
            _check_positive(scale, count, f"configuration.{key}.scale", low=low)
        names: set[str] = set()
        for rule in scale.get("rules") or []:
            rule = _obj(rule)
            name = rule.get("name")
            if not isinstance(name, str) or not name or name in names or not rule.get("type"):
                raise _job_invalid(f"configuration.{key}.scale.rules", name,
                                   "each rule needs a unique name and a KEDA type")
            names.add(name)
            _check_rule_auth(rule, f"configuration.{key}.scale.rules.{name}", secrets, body.get("identity"))
    env_id = props.get("environmentId")
    if not isinstance(env_id, str) or not env_id:
        raise ArmError(400, "InvalidRequestContent", "'properties.environmentId' is required.")
    return env_id


def _normalise_job_configuration(configuration: dict[str, Any]) -> dict[str, Any]:
    """``properties.configuration`` of a job with ARM's defaults: triggerType in ARM's casing; its trigger
    configuration with replicaCompletionCount and parallelism 1 (and for Event jobs scale minExecutions 0,
    maxExecutions 100, pollingInterval 30); secret values are never stored nor returned."""
    out = dict(configuration)
    secrets = out.get("secrets")
    out["secrets"] = [{k: v for k, v in s.items() if k != "value"} for s in secrets] if secrets is not None else None
    _canonical(out, "triggerType", "triggerType", "Manual")
    key = _JOB_TRIGGERS[out["triggerType"]]
    trigger = dict(out.get(key) or {})
    _default(trigger, "replicaCompletionCount", 1)
    _default(trigger, "parallelism", 1)
    if key == "eventTriggerConfig":
        scale = dict(trigger.get("scale") or {})
        _default(scale, "minExecutions", 0)
        _default(scale, "maxExecutions", 100)
        _default(scale, "pollingInterval", 30)
        trigger["scale"] = scale
    out[key] = trigger
    return out


def _normalise_job_template(template: dict[str, Any]) -> dict[str, Any]:
    """``properties.template`` of a job with container defaults (jobs get no default probes)."""
    out = dict(template)
    out["containers"] = [_normalise_container(c, probes=False) for c in out["containers"]]
    init = out.get("initContainers")
    out["initContainers"] = [_normalise_container(c, probes=False) for c in init] if init else None
    out.setdefault("volumes", None)
    return out


_EXECUTION_CONTAINER_KEYS = ("image", "name", "command", "args", "env", "resources")


def _execution_template(template: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """The containers an execution runs: the job's, or the ones a start request sends instead (the
    JobExecutionTemplate fields only)."""
    out: dict[str, Any] = {}
    for section in ("containers", "initContainers"):
        items = override.get(section) if override.get(section) is not None else template.get(section)
        if items:
            out[section] = [{k: c[k] for k in _EXECUTION_CONTAINER_KEYS if c.get(k) is not None}
                            for c in (_obj(i) for i in items)]
    return out


_DAPR_NAME = re.compile(r"[a-z][a-z0-9-]{0,58}[a-z0-9]")
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+")


def _check_dapr_component(name: str, body: dict[str, Any]) -> None:
    """A Dapr component: a valid name, componentType and version, a Go duration as initTimeout, secrets with a
    value or a Key Vault URL and identity, metadata entries with a name and a secretRef to a declared secret
    (unless a secret store component resolves them), scopes a list of app ids."""
    if not _DAPR_NAME.fullmatch(name) or "--" in name:
        raise ArmError(400, "DaprComponentInvalidName",
                       f"Invalid Dapr component name '{_shown(name)}'. A name must consist of lower case "
                       "alphanumeric characters or '-', start with an alphabetic character, and end with an "
                       "alphanumeric character and cannot have '--'. The length must be between 2 and 60 characters.")
    props = body.get("properties")
    if not isinstance(props, dict):
        raise ArmError(400, "InvalidRequestContent", "'properties' is required.")
    for key in ("componentType", "version"):
        if not isinstance(props.get(key), str) or not props[key]:
            raise ArmError(400, "InvalidRequestContent", f"'properties.{key}' is required.")
    if props.get("ignoreErrors") is not None and not isinstance(props["ignoreErrors"], bool):
        raise ArmError(400, "InvalidRequestContent", "'properties.ignoreErrors' must be a boolean.")
    timeout = props.get("initTimeout")
    if timeout is not None and not (isinstance(timeout, str) and _DURATION.fullmatch(timeout)):
        raise ArmError(400, "DaprComponentInvalidProperty",
                       f"initTimeout '{_shown(timeout)}' is not a valid duration (for example 5s, 1m30s).")
    secrets = props.get("secrets") or []
    invalid = [str(_obj(s).get("name")) for s in secrets if not _obj(s).get("name") or (
        _obj(s).get("value") is None and not (_obj(s).get("keyVaultUrl") and _obj(s).get("identity")))]
    if invalid:
        raise ArmError(400, "DaprComponentSecretInvalid",
                       f"Invalid Request: Dapr component secret(s) with name(s) '{_shown(', '.join(invalid))}' are "
                       "invalid: value or keyVaultUrl and identity should be provided.")
    names = {_obj(s).get("name") for s in secrets}
    for item in props.get("metadata") or []:
        item = _obj(item)
        if not item.get("name"):
            raise ArmError(400, "InvalidRequestContent", "Each 'properties.metadata' entry requires 'name'.")
        ref = item.get("secretRef")
        if ref is not None and item.get("value") is not None:
            raise ArmError(400, "DaprComponentInvalidProperty",
                           f"Metadata '{_shown(item['name'])}' sets both value and secretRef.")
        if ref is not None and not props.get("secretStoreComponent") and ref not in names:
            raise ArmError(400, "DaprComponentSecretRefNotFound",
                           f"SecretRef '{_shown(ref)}' defined for Dapr component metadata '{_shown(item['name'])}' "
                           "not found.")
    scopes = props.get("scopes")
    if scopes is not None and not (isinstance(scopes, list) and all(isinstance(x, str) and x for x in scopes)):
        raise ArmError(400, "InvalidRequestContent", "'properties.scopes' must be a list of app ids.")


def _image_failure(template: dict[str, Any], marker: str) -> tuple[str, str] | None:
    """(container, image) of the first container whose image contains ``marker``; an empty marker never matches."""
    if not marker:
        return None
    for container in [*template["containers"], *(template.get("initContainers") or [])]:
        if marker in str(container.get("image", "")):
            return str(container["name"]), str(container["image"])
    return None


# ------------------------------------------------------------- throttling


class _Bucket:
    """One token bucket: ``size`` tokens at most, refilled at ``rate`` per second of the clock."""

    def __init__(self, size: float, rate: float, now: float) -> None:
        self.size, self.rate, self.tokens, self.at = size, rate, size, now

    def refill(self, now: float) -> float:
        self.tokens = min(self.size, self.tokens + max(0.0, now - self.at) * self.rate)
        self.at = now
        return self.tokens

    def wait(self) -> float:
        """Seconds until one whole token is back (0 when one is there)."""
        return max(0.0, (1 - self.tokens) / self.rate)


ARM_TIME_SCALE_VARIABLE = "DRIFTLESS_DEV_ARM_TIME_SCALE"
"""Dev only: the emulator's ``time_scale`` as seen by the processes that talk to it (benches, local hosts)."""


def scale_arm_budget(scale: float | None = None) -> None:
    """Make this process's mirror of ARM's buckets (``shared.adapters.arm_budget``) refill on the emulator's scaled
    time: its refill rates times ``scale`` (default: ``DRIFTLESS_DEV_ARM_TIME_SCALE``, unset: nothing changes).
    A bench that scales ARM's time must scale both sides, or the mirror waits out ARM seconds in real seconds.
    Call it before the first ARM client is built."""
    if scale is None:
        text = os.environ.get(ARM_TIME_SCALE_VARIABLE)
        if not text:
            return
        scale = float(text)
    if not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"{ARM_TIME_SCALE_VARIABLE} must be a positive number, got {scale!r}")
    from shared.adapters import arm_budget

    arm_budget.BUCKETS = {kind: (size, rate * scale) for kind, (size, rate) in arm_budget.BUCKETS.items()}


class ThrottlingModel:
    """ARM's subscription throttling: a token bucket per subscription, caller and operation type
    (``ARM_BUCKETS``) and a global one per subscription and operation type shared by every caller
    (``ARM_GLOBAL_FACTOR`` times larger). ``time_scale`` multiplies the refill rates (a bench runs ARM's
    minutes in seconds); the bucket sizes stay ARM's. Time comes from ``clock`` (injectable for tests)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._buckets: dict[tuple[str, str, str], _Bucket] = {}

    def reset(self) -> None:
        self._buckets.clear()

    def take(self, subscription: str, caller: str, kind: str, time_scale: float) -> tuple[dict[str, str], float]:
        """Spend one token of ``kind`` (reads, writes, deletes) for the caller: (the remaining-requests headers
        ARM sends, 0.0) when allowed, else (the same headers, seconds until a token is back) and nothing spent."""
        now = self._clock()
        size, rate = ARM_BUCKETS[kind]
        own = self._bucket((subscription.lower(), caller, kind), size, rate * time_scale, now)
        shared = self._bucket((subscription.lower(), "", kind), size * ARM_GLOBAL_FACTOR,
                              rate * ARM_GLOBAL_FACTOR * time_scale, now)
        own.refill(now)
        shared.refill(now)
        wait = max(own.wait(), shared.wait())
        if wait == 0:
            own.tokens -= 1
            shared.tokens -= 1
        headers = {f"x-ms-ratelimit-remaining-subscription-{kind}": str(int(own.tokens)),
                   f"x-ms-ratelimit-remaining-subscription-global-{kind}": str(int(shared.tokens))}
        return headers, wait

    def _bucket(self, key: tuple[str, str, str], size: float, rate: float, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(size, rate, now)
        elif bucket.rate != rate:
            bucket.refill(now)
            bucket.rate = rate
        return bucket


def _request_kind(method: str) -> str:
    """The ARM operation type a request counts against."""
    return "reads" if method in ("GET", "HEAD") else "deletes" if method == "DELETE" else "writes"


def _caller(req: Request) -> str:
    """Who is calling, for the per-caller buckets: the token's ``oid`` claim when it is a JWT, else a digest of the
    token (the emulator's static tokens)."""
    token = (req.headers.get("Authorization") or "").partition(" ")[2].strip()
    parts = token.split(".")
    if len(parts) == 3:
        with contextlib.suppress(ValueError, TypeError, KeyError, AttributeError):
            import base64

            claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
            return str(claims["oid"])
    return _digest(token)[:16]


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
        clock: Callable[[], float] = time.time,
        seed: int = 0,
    ) -> None:
        """``clock`` times operations and throttling (tests inject one; never sleep); ``seed`` makes the duration
        jitter of operations reproducible."""
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self._state_file = state_file
        self._page_size = page_size
        self._token = token
        self._base_clock = clock
        self._test_clock: Callable[[], float] | None = None
        self._clock: Callable[[], float] = self._now
        self._random = random.Random(seed)
        self._throttling = ThrottlingModel(self._clock)
        self._lock = threading.RLock()
        self._dirty = False
        self._counts: Counter[str] = Counter()
        self._faults: dict[str, Any] = copy.deepcopy(FAULT_DEFAULTS)
        self._envs: dict[str, dict[str, Any]] = {}
        self._apps: dict[str, dict[str, Any]] = {}
        self._ops: dict[str, dict[str, Any]] = {}
        self._index: dict[str, list[str]] = {}
        self._jobs: dict[str, dict[str, Any]] = {}
        self._job_index: dict[str, list[str]] = {}
        self._dapr: dict[str, dict[str, Any]] = {}
        self._metrics = RequestMetrics(self._clock)
        self._logs = LogQueries()
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

    def operation_durations(self) -> list[float]:
        """Seconds (real time, after ``time_scale``) each long-running operation was set to take, in the order
        the operations started: what a bench needs to compute the earliest every operation could have ended."""
        with self._lock:
            ops = sorted(self._ops.values(), key=lambda op: op["_started"])
            return [float(op["_duration"]) for op in ops if op.get("_duration") is not None]

    def reset_calls(self) -> None:
        with self._lock:
            self._counts.clear()

    def reset(self) -> None:
        """Forget all apps, jobs, Dapr components, environments, operations, faults and counters."""
        with self._locked():
            self._envs.clear()
            self._apps.clear()
            self._ops.clear()
            self._index.clear()
            self._jobs.clear()
            self._job_index.clear()
            self._dapr.clear()
            self._metrics.reset()
            self._logs.reset()
            self._test_clock = None
            self._counts.clear()
            self._faults = copy.deepcopy(FAULT_DEFAULTS)
            self._throttling.reset()
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
        self,
        subscription_id: str,
        resource_group: str,
        name: str,
        location: str = "westeurope",
        *,
        workload_profiles: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Create or replace a managed environment and return it. ``workload_profiles`` are ARM's
        ``properties.workloadProfiles`` entries (``name``, ``workloadProfileType`` such as Consumption, D4, E8,
        ``minimumCount``, ``maximumCount``); the Consumption profile is added when they lack one."""
        body: dict[str, Any] = {"location": location}
        if workload_profiles is not None:
            profiles = [dict(p) for p in workload_profiles]
            if not any(str(p.get("workloadProfileType", "")).lower() == "consumption" for p in profiles):
                profiles.insert(0, {"workloadProfileType": "Consumption", "name": "Consumption"})
            body["properties"] = {"workloadProfiles": profiles}
        _check_workload_profiles(body)
        with self._locked():
            env, _ = self._store_environment(subscription_id, resource_group, name, body)
            return copy.deepcopy(env)

    def release(self, subscription_id: str, resource_group: str, name: str, *, status: str = "Succeeded") -> None:
        """End the app's hung (or still running) operation now with ``status`` (``Succeeded`` or ``Failed``)
        and stop hanging its later ones. KeyError when the app has no operation in progress."""
        self._release("apps", _app_key(subscription_id, resource_group, name), name, status)

    def release_job(
        self, subscription_id: str, resource_group: str, name: str, *, status: str = "Succeeded"
    ) -> None:
        """``release`` for a job (its write or delete operation; ``lro_hang_jobs`` stops naming it)."""
        self._release("jobs", _job_key(subscription_id, resource_group, name), name, status)

    def _release(self, store: str, key: str, name: str, status: str) -> None:
        if status not in ("Succeeded", "Failed"):
            raise ValueError(f"status must be Succeeded or Failed, not {status!r}")
        hang = _FAULT_LISTS[store][0]
        with self._locked():
            self._faults[hang] = [n for n in self._faults[hang] if n.lower() != name.lower()]
            record = (self._jobs if store == "jobs" else self._apps).get(key)
            if record is None or not record["op"]:
                what = "container app job" if store == "jobs" else "container app"
                raise KeyError(f"{what} {name!r} has no operation in progress")
            self._finish(self._ops[record["op"]], status)

    def app(self, subscription_id: str, resource_group: str, name: str) -> dict[str, Any] | None:
        """A deep copy of the app as GET would return it, or None."""
        with self._locked():
            record = self._settled(_app_key(subscription_id, resource_group, name))
            return copy.deepcopy(record["resource"]) if record else None

    def job(self, subscription_id: str, resource_group: str, name: str) -> dict[str, Any] | None:
        """A deep copy of the job as GET would return it, or None."""
        with self._locked():
            record = self._settled(_job_key(subscription_id, resource_group, name), "jobs")
            return copy.deepcopy(record["resource"]) if record else None

    def executions(self, subscription_id: str, resource_group: str, job: str) -> list[dict[str, Any]]:
        """The job's executions as GET .../executions returns them (newest first). KeyError for no such job."""
        with self._locked():
            record = self._job_record(subscription_id, resource_group, job)
            return copy.deepcopy(self._execution_list(record))

    def add_execution(
        self,
        subscription_id: str,
        resource_group: str,
        job: str,
        *,
        status: str = "Running",
        reason: str | None = None,
        message: str | None = None,
        exit_code: int | None = None,
    ) -> str:
        """Start an execution as the job's schedule or event trigger would (name ``<job>-<n>``, the job's own
        containers) with the given outcome; return its name. KeyError for no such job."""
        with self._locked():
            record = self._job_record(subscription_id, resource_group, job)
            template = _execution_template(record["resource"]["properties"]["template"], {})
            name = self._new_execution(record, template, scheduled=True)
            self._set_execution(record, name, status, reason, message, exit_code)
            return name

    def set_execution(
        self,
        subscription_id: str,
        resource_group: str,
        job: str,
        execution: str,
        status: str,
        *,
        reason: str | None = None,
        message: str | None = None,
        exit_code: int | None = None,
    ) -> None:
        """Decide an execution's outcome: ``status`` one of Running, Processing, Stopped, Degraded, Failed,
        Unknown, Succeeded (endTime is set once it is no longer Running/Processing); ``reason`` / ``message``
        as ARM reports them and ``exit_code`` in ``detailedStatus``. KeyError for no such job or execution,
        ValueError for an unknown status."""
        with self._locked():
            record = self._job_record(subscription_id, resource_group, job)
            self._set_execution(record, execution, status, reason, message, exit_code)

    def dapr_component(
        self, subscription_id: str, resource_group: str, environment: str, name: str
    ) -> dict[str, Any] | None:
        """A deep copy of the Dapr component as GET would return it (no secret values), or None."""
        with self._locked():
            record = self._dapr.get(_dapr_key(subscription_id, resource_group, environment, name))
            return copy.deepcopy(record["resource"]) if record else None

    def set_clock(self, clock: Callable[[], float] | None) -> None:
        """Use ``clock`` (seconds since the epoch) instead of the constructor's from now on, for operations,
        throttling and metrics, until ``reset`` (or ``set_clock(None)``): a session-wide emulator with a test's
        injected time."""
        with self._lock:
            self._test_clock = clock

    def _now(self) -> float:
        return (self._test_clock or self._base_clock)()

    # ------------------------------------------------- Azure Monitor metrics

    @property
    def metrics_url(self) -> str:
        """The metrics endpoint (``DRIFTLESS_METRICS_ENDPOINT``): Azure Monitor's metrics API on this port, as
        ``https://<region>.metrics.monitor.azure.com`` serves it."""
        return self.url

    def set_requests(self, app: str, revision: str, *, per_minute: Rate = 0.0, errors_5xx: Rate = 0.0,
                     errors_4xx: Rate = 0.0, pods: int = 1) -> None:
        """Inject the ``Requests`` metric of the app's ``revision`` (app and revision by name, any resource group):
        ``per_minute`` requests a minute, ``errors_5xx`` / ``errors_4xx`` of them failing, each a number or a
        function of the minute's start (seconds since the epoch on this emulator's clock). A minute is reported
        once it is over on that clock. See devtools/monitor_stub.py."""
        self._metrics.set_requests(app, revision, per_minute=per_minute, errors_5xx=errors_5xx,
                                   errors_4xx=errors_4xx, pods=pods)

    def clear_requests(self, app: str, revision: str | None = None) -> None:
        """Forget the app's injected requests (one revision's, or all)."""
        self._metrics.clear_requests(app, revision)

    def set_query_result(self, resource_id: str, query: str, value: Answer, column: str = "value") -> None:
        """Answer the Application Insights (Log Analytics) ``query`` on ``resource_id`` (served at ``metrics_url``
        too, as ``POST /v1{resource id}/query``) with one row holding ``value``: a number, None (no row) or a
        function of (start, end) seconds since the epoch. Other queries are refused (400 SemanticError)."""
        self._logs.set_query_result(resource_id, query, value, column)

    def _logs_query(self, req: Request, resource_id: str) -> Response:
        """``POST /v1/{resource id}/query`` of the Log Analytics API (counted as ``POST logs query``)."""
        with self._lock:
            self._counts["POST logs query"] += 1
        try:
            if req.method != "POST":
                raise MonitorError(405, "MethodNotAllowed", f"The requested resource does not support http method "
                                   f"'{req.method}'.")
            self._logs.authenticate(req.headers.get("Authorization"), self._token)
            return Response.json(200, self._logs.query(resource_id, req.body))
        except MonitorError as err:
            return Response.json(err.status, logs_body(err), err.headers)

    def _metrics_batch(self, req: Request, sub: str) -> Response:
        """``POST /subscriptions/{sub}/metrics:getBatch`` (counted as ``POST metrics:getBatch``)."""
        with self._lock:
            self._counts["POST metrics:getBatch"] += 1
        try:
            if req.method != "POST":
                raise MonitorError(405, "MethodNotAllowed", f"The requested resource does not support http method "
                                   f"'{req.method}'.")
            self._metrics.authenticate(req.headers.get("Authorization"), self._token)
            return Response.json(200, self._metrics.get_batch(sub, req.query, req.body, self._app_location))
        except MonitorError as err:
            return Response.json(err.status, err.body(), err.headers)

    def _app_location(self, resource_id: str) -> str | None:
        """The location of the app with this ARM id (its slug, as Monitor's ``resourceregion``), None if unknown."""
        with self._locked():
            record = self._settled(resource_id.rstrip("/").lower())
            return _location_slug(record["resource"]["location"]) if record else None

    # ----------------------------------------------------------- dispatch

    def handle(self, req: Request) -> Response:
        """Answer one HTTP request (control endpoints under ``/_emulator/``, Azure Monitor's metrics:getBatch and
        the Log Analytics query API, everything else ARM)."""
        path = req.path.rstrip("/") or "/"
        try:
            if path.lower().startswith("/_emulator/"):
                response = self._control(req, path)
            elif batch := _METRICS_BATCH.fullmatch(path):
                response = self._metrics_batch(req, unquote(batch.group("sub")))
            elif logs := logs_resource(path):
                response = self._logs_query(req, unquote(logs))
            else:
                response = self._arm(req, path)
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
            remaining = self._throttle(req, path)
        except ArmError as err:
            return err.response()
        try:
            if handler is None:
                raise ArmError(404, "NotFound", f"No ARM route for {req.method} {path}.")
            if not req.query.get("api-version"):
                raise ArmError(
                    400,
                    "MissingApiVersionParameter",
                    "The api-version query parameter (?api-version=) is required for all requests.",
                )
            response = handler(req, **params)
        except ArmError as err:
            response = err.response()
        response.headers.update(remaining)
        return response

    def _throttle(self, req: Request, path: str) -> dict[str, str]:
        """With ``throttling`` on, spend a token of the request's type for its subscription and caller: the
        remaining-requests headers ARM puts on the answer, or 429 ``SubscriptionRequestsThrottled`` with
        ``Retry-After`` (whole seconds, as ARM sends it) when the bucket is empty. Off: no headers."""
        match = re.match(_SUB, path, re.I)
        with self._lock:
            if not self._faults["throttling"] or match is None:
                return {}
            kind, caller = _request_kind(req.method), _caller(req)
            headers, wait = self._throttling.take(match.group("sub"), caller, kind,
                                                  float(self._faults["time_scale"]))
        if wait == 0:
            return headers
        retry_after = max(1, math.ceil(wait))
        noun = kind[:-1]
        message = (f"Number of '{noun}' requests for subscription '{match.group('sub')}' actor '{caller}' exceeded. "
                   f"Please try again after '{retry_after}' seconds after additional tokens are available. "
                   "Refer to https://aka.ms/arm-throttling for additional information.")
        raise ArmError(429, "SubscriptionRequestsThrottled", message, {**headers, "Retry-After": str(retry_after)})

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
                profiles = body.get("workloadProfiles")
                env = self.add_environment(sub, rg, name, str(body.get("location") or "westeurope"),
                                           workload_profiles=profiles if isinstance(profiles, list) else None)
                return Response.json(200, env)
            requests_match = _CONTROL_REQUESTS.fullmatch(path)
            if req.method == "POST" and requests_match:
                body = req.json(allow_empty=True)
                try:
                    self.set_requests(*(unquote(v) for v in requests_match.groups()),
                                      **{k: body[k] for k in ("per_minute", "errors_5xx", "errors_4xx", "pods")
                                         if k in body})
                except (TypeError, ValueError) as exc:
                    raise ArmError(400, "InvalidRequests", str(exc)) from exc
                return Response.json(200, {})
            state_match = _CONTROL_REVISION_STATE.fullmatch(path)
            if req.method == "POST" and state_match:
                body = req.json(allow_empty=True)
                try:
                    self.set_revision_state(*(unquote(v) for v in state_match.groups()),
                                            **{k: body[k] for k in ("healthy", "running_state", "replicas",
                                                                    "subscription_id", "resource_group") if k in body})
                except KeyError as exc:
                    raise ArmError(404, "NotFound", str(exc.args[0])) from exc
                except (TypeError, ValueError) as exc:
                    raise ArmError(400, "InvalidRevisionState", str(exc)) from exc
                return Response.json(200, {})
            release_match = _CONTROL_RELEASE.fullmatch(path)
            if req.method == "POST" and release_match:
                job, sub, rg, name = release_match.group("job"), *(
                    unquote(release_match.group(k)) for k in ("sub", "rg", "name"))
                release = self.release_job if job else self.release
                try:
                    release(sub, rg, name, status=str(req.json(allow_empty=True).get("status") or "Succeeded"))
                except KeyError as exc:
                    raise ArmError(404, "OperationNotFound", str(exc.args[0])) from exc
                except ValueError as exc:
                    raise ArmError(400, "InvalidReleaseStatus", str(exc)) from exc
                return Response.json(200, {})
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
        return self._page(req, sub, rg, "apps")

    def _page(self, req: Request, sub: str, rg: str, store: str) -> Response:
        """One page of the resource group's apps or jobs ordered by name (``$skipToken``: the last name)."""
        scope = _scope_key(sub, rg)
        index, segment = (self._job_index, "jobs") if store == "jobs" else (self._index, "containerapps")
        with self._locked():
            names = index.get(scope, [])
            page: list[dict[str, Any]] = []
            cursor = req.query.get("$skiptoken", "")
            while len(page) < self._page_size:
                i = bisect.bisect_right(names, cursor)
                if i >= len(names):
                    break
                cursor = names[i]
                record = self._settled(f"{scope}/providers/microsoft.app/{segment}/{cursor}", store)
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
        """Create or replace an app wholesale and start its operation (201 new / 200 existing);
        409 while the app's previous operation is still running."""
        body = req.json()
        _check_app_name(name)
        with self._locked():
            record = self._settled(_app_key(sub, rg, name))
            self._refuse_while_busy(record)
            env = self._environment_for(body, body, name)
            previous = copy.deepcopy(record["resource"]) if record else None
            record, revision, error = self._write_app(sub, rg, name, body, env, record)
            op = self._begin_operation(record, "write", req, revision, previous, error=error)
            headers = {"Azure-AsyncOperation": op["_statusUrl"]}
            return Response.json(200 if previous else 201, record["resource"], headers)

    def _patch_app(self, req: Request, sub: str, rg: str, name: str) -> Response:
        """Apply a JSON merge patch to tags, identity and properties; 202 with operation headers;
        409 while the app's previous operation is still running."""
        patch = req.json()
        with self._locked():
            record = self._require_app(sub, rg, name)
            self._refuse_while_busy(record)
            body = copy.deepcopy(record["resource"])
            for key in ("tags", "identity", "properties"):
                if key in patch:
                    body[key] = merge_patch(body.get(key), patch[key])
            env = self._environment_for(body, patch, name)
            previous = copy.deepcopy(record["resource"])
            record, revision, error = self._write_app(sub, rg, name, body, env, record)
            op = self._begin_operation(record, "write", req, revision, previous, error=error)
            return Response(202, headers={"Azure-AsyncOperation": op["_statusUrl"], "Location": op["_resultUrl"]})

    def _delete_app(self, req: Request, sub: str, rg: str, name: str) -> Response:
        """204 when absent; 409 while its previous operation runs; else 202 and the app shows ``Deleting``
        until its operation completes."""
        with self._locked():
            record = self._settled(_app_key(sub, rg, name))
            if record is None:
                return Response(204)
            self._refuse_while_busy(record)
            record["resource"]["properties"]["provisioningState"] = "Deleting"
            op = self._begin_operation(record, "delete", req, None)
            return Response(202, headers={"Azure-AsyncOperation": op["_statusUrl"], "Location": op["_resultUrl"]})

    def _require_app(self, sub: str, rg: str, name: str) -> dict[str, Any]:
        record = self._settled(_app_key(sub, rg, name))
        if record is None:
            raise _not_found(f"{APP_TYPE}/{name}", rg)
        return record

    def _refuse_while_busy(self, record: dict[str, Any] | None, store: str = "apps") -> None:
        """ACA refuses any write to an app (or job) whose last operation has not finished (``conflict_apps`` /
        ``conflict_jobs``: as if another client's operation were running on these)."""
        if record is None:
            return
        name = record["resource"]["name"]
        conflict = name.lower() in _lower(self._faults[_FAULT_LISTS[store][2]])
        opid = record["op"] or (_stable_uuid(f"conflict:{name}") if conflict else None)
        if opid:
            what, code = ("container app", "ContainerAppOperationInProgress") if store == "apps" else (
                "container app job", "ContainerAppJobOperationInProgress")
            raise ArmError(
                409,
                code,
                f"Cannot modify a {what} '{name}' because there is an active provisioning operation in "
                f"progress. OperationId: '{opid}'.",
            )

    def _environment_for(self, body: dict[str, Any], sent: dict[str, Any], name: str) -> dict[str, Any]:
        """Validate the app ``body`` to be stored (``sent``: the request body) and return its environment."""
        env_id = _validate_app(body, sent)
        props = body["properties"]
        _check_revision_suffix(name, props["template"])
        env = self._require_environment(env_id)
        profile = _workload_profile(props.get("workloadProfileName"), env)
        _check_resources(props["template"]["containers"], profile)
        return env

    def _require_environment(self, env_id: str) -> dict[str, Any]:
        env = self._envs.get(env_id.lower())
        if env is None:
            raise ArmError(400, "ManagedEnvironmentNotFound", f"Managed environment '{env_id}' was not found.")
        return env

    def _write_app(
        self, sub: str, rg: str, name: str, body: dict[str, Any], env: dict[str, Any], record: dict[str, Any] | None
    ) -> tuple[dict[str, Any], str | None, dict[str, str] | None]:
        """Store the normalised app (creating its record); return it, the revision added (if any) and the error
        its operation is bound to end with (a revision suffix already used)."""
        key = _app_key(sub, rg, name)
        now = time.time()
        before = record["resource"]["properties"]["template"] if record is not None else None
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
        props["template"] = _normalise_template(props["template"], props["configuration"]["ingress"])
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
        revision, error = self._add_revision_if_changed(record, before, props["template"], now)
        return record, revision, error or _unknown_traffic_target(record)

    def _add_revision_if_changed(
        self, record: dict[str, Any], before: dict[str, Any] | None, template: dict[str, Any], now: float
    ) -> tuple[str | None, dict[str, str] | None]:
        """Add a ``Provisioning`` revision when ``template`` differs from the app's template ``before`` the
        write (or the app has none yet); return its key. A revision suffix already used by another revision
        adds none and returns the error ACA fails the operation with."""
        if record["revisions"] and before == template:
            return None, None
        name = self._new_revision_name(record, template)
        if name.lower() in record["revisions"]:
            suffix = template["revisionSuffix"]
            return None, {
                "code": "InvalidParameterValueInContainerTemplate",
                "message": f"Failed to provision revision for container app '{record['resource']['name']}'. Error "
                           "details: The following field(s) are either invalid or missing. Field "
                           f"'template.revisionsuffix' is invalid with details: 'Invalid value: \"{_shown(suffix)}\": "
                           "revision with suffix already exists';.",
            }
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
        return name.lower(), None

    def _new_revision_name(self, record: dict[str, Any], template: dict[str, Any]) -> str:
        """``<app>--<revisionSuffix>`` when the template has one, else ``<app>--<7 hex>`` from the template and a
        per-app counter, unique among the app's revisions."""
        if template.get("revisionSuffix"):
            return f"{record['resource']['name']}--{template['revisionSuffix']}"
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
        """The revision resource with traffic, activity and replicas derived from the app's current state (a
        revision without traffic runs minReplicas replicas, as ACA scales an idle revision down), and the health,
        running state and replicas a test injected with ``set_revision_state`` (while active)."""
        props = record["resource"]["properties"]
        mode = props["configuration"]["activeRevisionsMode"]
        weight = _traffic_weights(record).get(rev["name"].lower(), 0)
        provisioned = rev["provisioningState"] == "Provisioned"
        active = provisioned and (weight > 0 if mode == "Single" else rev.get("_active", True))
        min_replicas = int(rev["template"]["scale"].get("minReplicas") or 0)
        details = {k: v for k, v in rev.items() if k != "name" and not k.startswith("_")}
        injected = dict(rev.get("_state") or {}) if provisioned else {}
        # an active revision with traffic runs at least one replica; without traffic it scales down to minReplicas
        # (0 by default: an idle canary at 0% really runs none)
        replicas = injected.pop("replicas", max(1, min_replicas) if weight > 0 else min_replicas)
        if not active:
            injected = {}
        return {
            "id": f"{record['resource']['id']}/revisions/{rev['name']}",
            "name": rev["name"],
            "type": REVISION_TYPE,
            "properties": {
                **details,
                **injected,
                "fqdn": _fqdn(record, rev["name"]),
                "active": active,
                "replicas": replicas if active else 0,
                "trafficWeight": weight,
            },
        }

    def set_revision_state(
        self,
        app: str,
        revision: str,
        *,
        healthy: bool | None = None,
        running_state: str | None = None,
        replicas: int | None = None,
        subscription_id: str | None = None,
        resource_group: str | None = None,
    ) -> None:
        """Make a provisioned revision of the app (by name; give ``subscription_id`` / ``resource_group`` when the
        name is in several) report ``healthState`` Healthy / Unhealthy, ``runningState`` (Running, Processing,
        Stopped, Degraded, Failed, Unknown; default Running when healthy, Degraded when not) and ``replicas`` while
        it is active, as ARM does once its replicas pass or fail their probes. ``healthy=None`` with no other
        argument forgets what was injected. KeyError for no such app or revision, ValueError for a bad value."""
        if running_state is not None and running_state not in _RUNNING_STATES:
            raise ValueError(f"running_state must be one of {', '.join(_RUNNING_STATES)}, not {running_state!r}")
        if replicas is not None and (not _is_int(replicas) or replicas < 0):
            raise ValueError("replicas must be a non-negative integer")
        with self._locked():
            record = self._app_named(app, subscription_id, resource_group)
            rev = record["revisions"].get(revision.lower())
            if rev is None:
                raise KeyError(f"container app {app!r} has no revision {revision!r}")
            state: dict[str, Any] = {}
            if healthy is not None:
                state["healthState"] = "Healthy" if healthy else "Unhealthy"
                state["runningState"] = "Running" if healthy else "Degraded"
            if running_state is not None:
                state["runningState"] = running_state
            if replicas is not None:
                state["replicas"] = replicas
            rev["_state"] = state or None
            self._dirty = True

    def _app_named(self, app: str, subscription_id: str | None, resource_group: str | None) -> dict[str, Any]:
        """The settled record of the one app called ``app`` (in the given subscription / resource group)."""
        keys = [key for key in self._apps if key.rsplit("/", 1)[1] == app.lower()
                and (subscription_id is None or key.split("/")[2] == subscription_id.lower())
                and (resource_group is None or key.split("/")[4] == resource_group.lower())]
        if len(keys) != 1:
            raise KeyError(f"{'no' if not keys else 'more than one'} container app named {app!r}"
                           + (": give subscription_id and resource_group" if keys else ""))
        record = self._settled(keys[0])
        if record is None:
            raise KeyError(f"no container app named {app!r}")
        return record

    def _revision_action(self, req: Request, sub: str, rg: str, name: str, rev: str, action: str) -> Response:
        """Activate or deactivate a revision (200, no body); it counts as active in Multiple mode only."""
        with self._locked():
            record = self._require_app(sub, rg, name)
            revision = record["revisions"].get(rev.lower())
            if revision is None:
                raise _not_found(f"{APP_TYPE}/{name}/revisions/{rev}", rg)
            revision["_active"] = action.lower() == "activate"
            self._purge_inactive(record)
            self._dirty = True
            return Response(200)

    def _purge_inactive(self, record: dict[str, Any]) -> None:
        """Drop the oldest inactive revisions beyond ``maxInactiveRevisions`` (never the latest revision, nor one
        the traffic configuration names)."""
        limit = record["resource"]["properties"]["configuration"].get("maxInactiveRevisions")
        if not _is_int(limit):
            return
        latest = _latest_revision(record)
        ingress = record["resource"]["properties"]["configuration"]["ingress"]
        named = {str(rule.get("revisionName") or "").lower() for rule in (ingress or {}).get("traffic") or []}
        inactive = [key for key, rev in record["revisions"].items()
                    if rev is not latest and rev["provisioningState"] != "Provisioning" and key not in named
                    and not self._revision_body(record, rev)["properties"]["active"]]
        for key in inactive[:max(0, len(inactive) - limit)]:
            del record["revisions"][key]

    # ----------------------------------------------------------- ARM: jobs

    def _list_jobs(self, req: Request, sub: str, rg: str) -> Response:
        return self._page(req, sub, rg, "jobs")

    def _get_job(self, req: Request, sub: str, rg: str, name: str) -> Response:
        with self._locked():
            return Response.json(200, self._require_job(sub, rg, name)["resource"])

    def _put_job(self, req: Request, sub: str, rg: str, name: str) -> Response:
        """Create or replace a job and start its operation (201 new / 200 existing, ``Azure-AsyncOperation``);
        409 while the job's previous operation is still running."""
        body = req.json()
        _check_job_name(name)
        with self._locked():
            record = self._settled(_job_key(sub, rg, name), "jobs")
            self._refuse_while_busy(record, "jobs")
            env = self._job_environment(body, body)
            previous = copy.deepcopy(record["resource"]) if record else None
            record = self._write_job(sub, rg, name, body, env, record)
            op = self._begin_operation(record, "write", req, None, previous, store="jobs")
            return Response.json(200 if previous else 201, record["resource"],
                                 {"Azure-AsyncOperation": op["_statusUrl"]})

    def _patch_job(self, req: Request, sub: str, rg: str, name: str) -> Response:
        """JSON merge patch of tags, identity and properties; 202 with operation headers; 409 while busy."""
        patch = req.json()
        with self._locked():
            record = self._require_job(sub, rg, name)
            self._refuse_while_busy(record, "jobs")
            body = copy.deepcopy(record["resource"])
            for key in ("tags", "identity", "properties"):
                if key in patch:
                    body[key] = merge_patch(body.get(key), patch[key])
            env = self._job_environment(body, patch)
            previous = copy.deepcopy(record["resource"])
            record = self._write_job(sub, rg, name, body, env, record)
            op = self._begin_operation(record, "write", req, None, previous, store="jobs")
            return Response(202, headers={"Azure-AsyncOperation": op["_statusUrl"], "Location": op["_resultUrl"]})

    def _delete_job(self, req: Request, sub: str, rg: str, name: str) -> Response:
        """204 when absent; 409 while busy; else 202 (``Location``: 202 until gone, then 204)."""
        with self._locked():
            record = self._settled(_job_key(sub, rg, name), "jobs")
            if record is None:
                return Response(204)
            self._refuse_while_busy(record, "jobs")
            record["resource"]["properties"]["provisioningState"] = "Deleting"
            op = self._begin_operation(record, "delete", req, None, store="jobs")
            return Response(202, headers={"Azure-AsyncOperation": op["_statusUrl"], "Location": op["_resultUrl"]})

    def _start_job(self, req: Request, sub: str, rg: str, name: str) -> Response:
        """Start an execution (any trigger type; the body may replace the containers, as a
        JobExecutionTemplate): 202 with ``Location``, whose result is the execution's ``{"id", "name"}``."""
        override = req.json(allow_empty=True)
        with self._locked():
            record = self._require_job(sub, rg, name)
            self._refuse_while_busy(record, "jobs")
            for section in ("containers", "initContainers"):
                for container in override.get(section) or []:
                    image = _obj(container).get("image")
                    if not image:
                        raise ArmError(400, "ContainerAppImageRequired",
                                       f"Container with name '{_shown(_obj(container).get('name'))}' must have an "
                                       "'Image' property specified.")
                    _check_image(f"template.{section}.{_shown(_obj(container).get('name'))}.image", str(image))
            template = _execution_template(record["resource"]["properties"]["template"], override)
            execution = self._new_execution(record, template, scheduled=False)
            op = self._begin_operation(record, "start", req, None, store="jobs", execution=execution)
            return Response(202, headers={"Location": op["_resultUrl"]})

    def _list_executions(self, req: Request, sub: str, rg: str, name: str) -> Response:
        with self._locked():
            return Response.json(200, {"value": self._execution_list(self._require_job(sub, rg, name))})

    def _get_execution(self, req: Request, sub: str, rg: str, name: str, execution: str) -> Response:
        with self._locked():
            record = self._require_job(sub, rg, name)
            found = record["executions"].get(execution.lower())
            if found is None:
                raise _not_found(f"{JOB_TYPE}/{name}/executions/{execution}", rg)
            return Response.json(200, found)

    def _require_job(self, sub: str, rg: str, name: str) -> dict[str, Any]:
        record = self._settled(_job_key(sub, rg, name), "jobs")
        if record is None:
            raise _not_found(f"{JOB_TYPE}/{name}", rg)
        return record

    def _job_record(self, sub: str, rg: str, name: str) -> dict[str, Any]:
        record = self._settled(_job_key(sub, rg, name), "jobs")
        if record is None:
            raise KeyError(f"container app job {name!r} does not exist")
        return record

    def _job_environment(self, body: dict[str, Any], sent: dict[str, Any]) -> dict[str, Any]:
        """Validate the job ``body`` to be stored (``sent``: the request body) and return its environment."""
        env = self._require_environment(_validate_job(body, sent))
        props = body["properties"]
        _check_resources(props["template"]["containers"], _workload_profile(props.get("workloadProfileName"), env))
        return env

    def _write_job(
        self, sub: str, rg: str, name: str, body: dict[str, Any], env: dict[str, Any], record: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Store the normalised job (creating its record) and return the record."""
        now = time.time()
        if record is None:
            record = {"scope": _scope_key(sub, rg), "op": None, "executions": {}, "serial": 0}
            self._jobs[_job_key(sub, rg, name)] = record
            bisect.insort(self._job_index.setdefault(record["scope"], []), name.lower())
            job_id = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/{JOB_TYPE}/{name}"
            job_name, created_at = name, _iso(now)
        else:
            old = record["resource"]
            job_id, job_name, created_at = old["id"], old["name"], old["systemData"]["createdAt"]
        location = body["location"]
        props = dict(body["properties"])
        props["environmentId"] = env["id"]
        _default(props, "workloadProfileName", "Consumption")
        props["configuration"] = _normalise_job_configuration(props["configuration"])
        props["template"] = _normalise_job_template(props["template"])
        props["provisioningState"] = "InProgress"
        props["outboundIpAddresses"] = _ips(env["id"].lower(), 2)
        props["eventStreamEndpoint"] = (
            f"https://{_location_slug(location)}.azurecontainerapps.dev/subscriptions/{sub}"
            f"/resourceGroups/{rg}/containerAppsJobs/{job_name}/eventstream"
        )
        extras = {k: v for k, v in body.items() if k not in _APP_KEYS}
        record["resource"] = {
            **extras,
            "id": job_id,
            "name": job_name,
            "type": JOB_TYPE,
            "location": location,
            "tags": dict(body.get("tags") or {}),
            "identity": _identity(body.get("identity"), job_id),
            "systemData": _system_data(created_at, now),
            "properties": props,
        }
        self._dirty = True
        return record

    def _new_execution(self, record: dict[str, Any], template: dict[str, Any], *, scheduled: bool) -> str:
        """Add a Running execution: ``<job>-<7 characters>`` when started, ``<job>-<minute number>`` when a
        schedule or event started it (as ACA names them); return its name."""
        job = record["resource"]
        while True:
            record["serial"] += 1
            if scheduled:
                name = f"{job['name']}-{int(time.time() // 60) + record['serial']}"
            else:
                digest = int(_digest(f"{job['id']}:{record['serial']}"), 16)
                name = f"{job['name']}-" + "".join("abcdefghijklmnopqrstuvwxyz0123456789"[(digest >> (6 * i)) % 36]
                                                    for i in range(7))
            if name.lower() not in record["executions"]:
                break
        record["executions"][name.lower()] = {
            "id": f"{job['id']}/executions/{name}",
            "name": name,
            "type": EXECUTION_TYPE,
            "properties": {"status": "Running", "startTime": _iso(time.time()), "template": template},
        }
        self._dirty = True
        return name

    def _set_execution(self, record: dict[str, Any], execution: str, status: str, reason: str | None,
                       message: str | None, exit_code: int | None) -> None:
        canonical = _ENUMS["executionStatus"].get(str(status).lower())
        if canonical is None:
            raise ValueError(f"unknown execution status {status!r}; one of {', '.join(_ENUMS['executionStatus'].values())}")
        found = record["executions"].get(execution.lower())
        if found is None:
            raise KeyError(f"job {record['resource']['name']!r} has no execution {execution!r}")
        props = found["properties"]
        props["status"] = canonical
        for key, value in (("reason", reason), ("message", message)):
            if value is None:
                props.pop(key, None)
            else:
                props[key] = value
        if canonical in ("Running", "Processing"):
            props.pop("endTime", None)
        else:
            props["endTime"] = _iso(time.time())
        if exit_code is None:
            props.pop("detailedStatus", None)
        else:
            containers = props["template"].get("containers") or []
            props["detailedStatus"] = {"replicas": [{
                "name": f"{found['name']}-{_digest(found['name'])[:5]}",
                "containers": [{"name": c.get("name"), "code": exit_code, "status": canonical,
                                "additionalInformation": message} for c in containers],
            }]}
        self._dirty = True

    @staticmethod
    def _execution_list(record: dict[str, Any]) -> list[dict[str, Any]]:
        """Executions newest first."""
        return sorted(record["executions"].values(), key=lambda e: e["properties"]["startTime"], reverse=True)

    # ------------------------------------------------------ ARM: dapr components

    def _list_dapr_components(self, req: Request, sub: str, rg: str, env: str) -> Response:
        prefix = _env_key(sub, rg, env) + "/daprcomponents/"
        with self._locked():
            self._require_parent(sub, rg, env, "read")
            found = [r["resource"] for k, r in sorted(self._dapr.items()) if k.startswith(prefix)]
            return Response.json(200, {"value": found})

    def _get_dapr_component(self, req: Request, sub: str, rg: str, env: str, name: str) -> Response:
        with self._locked():
            return Response.json(200, self._require_dapr(sub, rg, env, name)["resource"])

    def _put_dapr_component(self, req: Request, sub: str, rg: str, env: str, name: str) -> Response:
        """Create or replace synchronously (200 either way, as the API defines); secret values are kept for
        ``listSecrets`` only; a component keeps no tags or location (ARM's DaprComponent has none)."""
        body = req.json()
        with self._locked():
            environment = self._require_parent(sub, rg, env, "write")
            _check_dapr_component(name, body)
            key = _dapr_key(sub, rg, env, name)
            existing = self._dapr.get(key)
            now = time.time()
            props = {k: v for k, v in body["properties"].items()
                     if k not in ("provisioningState", "deploymentErrors")}
            secrets = props.get("secrets")
            values = {s["name"]: s["value"] for s in secrets or [] if s.get("value") is not None}
            props["secrets"] = [{k: v for k, v in s.items() if k != "value"} for s in secrets] if secrets else None
            _default(props, "ignoreErrors", False)
            created_at = existing["resource"]["systemData"]["createdAt"] if existing else _iso(now)
            shown_name = existing["resource"]["name"] if existing else name
            self._dapr[key] = {
                "secrets": values,
                "resource": {
                    "id": f"{environment['id']}/daprcomponents/{shown_name}",
                    "name": shown_name,
                    "type": DAPR_TYPE,
                    "systemData": _system_data(created_at, now),
                    "properties": props,
                },
            }
            self._dirty = True
            return Response.json(200, self._dapr[key]["resource"])

    def _delete_dapr_component(self, req: Request, sub: str, rg: str, env: str, name: str) -> Response:
        """200 once deleted, 204 when there was none (synchronous)."""
        with self._locked():
            self._require_parent(sub, rg, env, "delete")
            if self._dapr.pop(_dapr_key(sub, rg, env, name), None) is None:
                return Response(204)
            self._dirty = True
            return Response(200)

    def _list_dapr_secrets(self, req: Request, sub: str, rg: str, env: str, name: str) -> Response:
        """The component's secrets with their values (Key Vault references by name, URL and identity)."""
        with self._locked():
            record = self._require_dapr(sub, rg, env, name)
            listed = []
            for secret in record["resource"]["properties"].get("secrets") or []:
                value = record["secrets"].get(secret["name"])
                listed.append({"name": secret["name"], "value": value} if value is not None else dict(secret))
            return Response.json(200, {"value": listed})

    def _require_dapr(self, sub: str, rg: str, env: str, name: str) -> dict[str, Any]:
        self._require_parent(sub, rg, env, "read")
        record = self._dapr.get(_dapr_key(sub, rg, env, name))
        if record is None:
            raise _not_found(f"{ENV_TYPE}/{env}/daprComponents/{name}", rg)
        return record

    def _require_parent(self, sub: str, rg: str, env: str, action: str) -> dict[str, Any]:
        """The environment of a Dapr component; ARM's ``ParentResourceNotFound`` (404) when it does not exist."""
        environment = self._envs.get(_env_key(sub, rg, env))
        if environment is None:
            raise ArmError(
                404,
                "ParentResourceNotFound",
                f"Failed to perform '{action}' on resource(s) of type 'managedEnvironments/daprComponents', because "
                f"the parent resource '/subscriptions/{sub}/resourceGroups/{rg}/providers/{ENV_TYPE}/{env}' could "
                "not be found.",
            )
        return environment

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
        _check_workload_profiles(body)
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
        """202 while running; then the app or job (200), 204 once gone, or for a job start the execution's
        ``{"id", "name"}`` (200); a failed operation answers its error."""
        with self._locked():
            op = self._require_operation(opid)
            if op["status"] == "InProgress":
                return Response(202, headers={"Location": op["_resultUrl"]})
            if op["status"] != "Succeeded":
                raise ArmError(400, op["error"]["code"], op["error"]["message"])
            if op["_kind"] == "start":
                return Response.json(200, {"id": f"{op['_resourceId']}/executions/{op['_execution']}",
                                           "name": op["_execution"]})
            record = self._store(op).get(op["_app"])
            return Response.json(200, record["resource"]) if record else Response(204)

    def _require_operation(self, opid: str) -> dict[str, Any]:
        op = self._ops.get(opid.lower())
        if op is None:
            raise ArmError(404, "OperationNotFound", f"Operation '{opid}' was not found.")
        if self._due(op):
            self._finish(op, self._planned_status(op))
        return op

    def _begin_operation(
        self,
        record: dict[str, Any],
        kind: str,
        req: Request,
        revision: str | None,
        previous: dict[str, Any] | None = None,
        *,
        store: str = "apps",
        error: dict[str, str] | None = None,
        execution: str | None = None,
    ) -> dict[str, Any]:
        """Register an InProgress operation for the app or job (and the revision it provisions); it completes
        lazily. ``previous`` is the resource as it was before a write: what a failed write restores; ``error``
        the error the operation is bound to fail with. A job ``start`` operation (``execution``) does not
        hold the job."""
        resource = record["resource"]
        sub = resource["id"].split("/")[2]
        opid = str(uuid.uuid4())
        path = f"/subscriptions/{sub}/providers/Microsoft.App/locations/{_location_slug(resource['location'])}"
        statuses, results = _OPERATION_PATHS[store]
        api = quote(req.query["api-version"], safe="")
        now = time.time()
        call = "update" if kind == "write" and previous is not None else "create" if kind == "write" else kind
        op = {
            "id": f"{path}/{statuses}/{opid}",
            "name": opid,
            "status": "InProgress",
            "startTime": _iso(now),
            "_app": resource["id"].lower(),
            "_appName": resource["name"].lower(),
            "_resourceId": resource["id"],
            "_store": store,
            "_kind": kind,
            "_started": now,
            "_clockStarted": self._clock(),
            "_duration": self._duration(call),
            "_revision": revision,
            "_previous": previous,
            "_error": error,
            "_execution": execution,
            "_statusUrl": f"{req.base_url}{path}/{statuses}/{opid}?api-version={api}",
            "_resultUrl": f"{req.base_url}{path}/{results}/{opid}?api-version={api}",
        }
        self._ops[opid] = op
        if kind != "start":
            record["op"] = opid
        if store == "apps":
            self._refresh(record)
        self._dirty = True
        return op

    def _store(self, op: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """The records (apps or jobs) an operation acts on."""
        return self._jobs if op.get("_store") == "jobs" else self._apps

    def _due(self, op: dict[str, Any]) -> bool:
        """Whether a pending operation completes now under the current fault settings (a job start never hangs)."""
        hang = _FAULT_LISTS[op.get("_store", "apps")][0]
        if op["status"] != "InProgress" or (op["_kind"] != "start" and op["_appName"] in _lower(self._faults[hang])):
            return False
        duration = op.get("_duration")
        if duration is None:  # the fault setting in force now (tests change it while an operation runs)
            duration = float(self._faults["lro_duration_s"]) / float(self._faults["time_scale"])
        return self._clock() >= op.get("_clockStarted", op["_started"]) + duration

    def _duration(self, call: str) -> float | None:
        """Seconds of the clock an operation of this call type (create, update, delete, start) takes, fixed when
        it starts: ``lro_durations_s[call]`` (else ``lro_duration_s``) with +/- ``lro_jitter`` (a fraction,
        seeded), divided by ``time_scale``. None when neither is set for it: ``lro_duration_s`` is then read
        whenever the operation is looked at."""
        base = self._faults["lro_durations_s"].get(call)
        jitter = float(self._faults["lro_jitter"])
        if base is None and not jitter:
            return None
        base = float(self._faults["lro_duration_s"] if base is None else base)
        return base * (1 + jitter * self._random.uniform(-1, 1)) / float(self._faults["time_scale"])

    def _planned_status(self, op: dict[str, Any]) -> str:
        fail = _FAULT_LISTS[op.get("_store", "apps")][1]
        failing = op["_kind"] == "write" and op["_appName"] in _lower(self._faults[fail])
        return "Failed" if failing or op.get("_error") else "Succeeded"

    def _settled(self, key: str, store: str = "apps") -> dict[str, Any] | None:
        """The app (or job) record after completing its pending operation if due (None once deleted)."""
        records = self._jobs if store == "jobs" else self._apps
        record = records.get(key)
        if record is not None and record["op"]:
            op = self._ops[record["op"]]
            if self._due(op):
                self._finish(op, self._planned_status(op))
        return records.get(key)

    def _finish(self, op: dict[str, Any], status: str) -> None:
        """Record the operation's end and apply its effect to the app (and the revision it created) or job."""
        op["status"], op["endTime"] = status, _iso(time.time())
        if status == "Failed":
            what = "container app job" if op.get("_store") == "jobs" else "container app"
            op["error"] = op.get("_error") or {
                "code": "ContainerAppOperationError",
                "message": f"Failed to provision {what} '{op['_appName']}' (injected operation failure).",
            }
        self._dirty = True
        records = self._store(op)
        record = records.get(op["_app"])
        if record is None or record["op"] != op["name"]:
            return
        record["op"] = None
        if op["_kind"] == "delete" and status == "Succeeded":
            self._remove(records, op["_app"], record)
            return
        if status != "Succeeded" and op.get("_previous") is not None:
            record["resource"] = copy.deepcopy(op["_previous"])  # a failed write leaves the resource as it was
        record["resource"]["properties"]["provisioningState"] = status
        if op.get("_store") == "jobs":
            return
        revision = record["revisions"].get(op["_revision"] or "")
        if revision is not None:
            self._finish_revision(record, revision, op, status)
        self._purge_inactive(record)
        self._refresh(record)

    def _finish_revision(self, record: dict[str, Any], rev: dict[str, Any], op: dict[str, Any], status: str) -> None:
        """Provision the revision, or fail it (failed operation, or an image matching the marker)."""
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
        else:
            error = details = op["error"]["message"]
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

    def _remove(self, records: dict[str, dict[str, Any]], key: str, record: dict[str, Any]) -> None:
        """Forget an app or job and its name in the resource group's listing index."""
        del records[key]
        index = self._job_index if records is self._jobs else self._index
        names = index[record["scope"]]
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
                state = {"environments": self._envs, "apps": self._apps, "operations": operations,
                         "jobs": self._jobs, "dapr": self._dapr}
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
        self._jobs, self._dapr = state.get("jobs", {}), state.get("dapr", {})
        for records, index in ((self._apps, self._index), (self._jobs, self._job_index)):
            for key, record in records.items():
                index.setdefault(record["scope"], []).append(key.rsplit("/", 1)[1])
            for names in index.values():
                names.sort()


# ------------------------------------------------------------ small pieces


def _app_key(sub: str, rg: str, name: str) -> str:
    return f"{_scope_key(sub, rg)}/providers/microsoft.app/containerapps/{name.lower()}"


def _env_key(sub: str, rg: str, name: str) -> str:
    return f"{_scope_key(sub, rg)}/providers/microsoft.app/managedenvironments/{name.lower()}"


def _job_key(sub: str, rg: str, name: str) -> str:
    return f"{_scope_key(sub, rg)}/providers/microsoft.app/jobs/{name.lower()}"


def _dapr_key(sub: str, rg: str, env: str, name: str) -> str:
    return f"{_env_key(sub, rg, env)}/daprcomponents/{name.lower()}"


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


_RUNNING_STATES = ("Running", "Processing", "Stopped", "Degraded", "Failed", "Unknown")
"""ARM's RevisionRunningState values."""


def _unknown_traffic_target(record: dict[str, Any]) -> dict[str, str] | None:
    """The error a write's operation fails with when its traffic names a revision the app does not have (the one
    the write creates counts): ACA accepts the write and its operation ends Failed (as for traffic that leaves the
    new revision out, hashicorp/terraform-provider-azurerm#27221); the message is ours (unconfirmed)."""
    ingress = record["resource"]["properties"]["configuration"]["ingress"]
    for rule in (ingress or {}).get("traffic") or []:
        name = str(rule.get("revisionName") or "")
        if name and name.lower() not in record["revisions"]:
            return {
                "code": "ContainerAppOperationError",
                "message": f"Failed to provision revision for container app '{record['resource']['name']}'. Error "
                           f"details: the traffic configuration names revision '{_shown(name)}', which does not "
                           "exist.",
            }
    return None


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
        if isinstance(default, dict):
            if not isinstance(value, dict) or set(value) - set(_LRO_KINDS):
                raise TypeError(f"expected an object of seconds per call type ({', '.join(_LRO_KINDS)})")
            durations = {str(k): float(v) for k, v in value.items()}
            if any(v < 0 for v in durations.values()):
                raise ValueError("durations must not be negative")
            return durations
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
    if name == "time_scale" and coerced <= 0:
        raise ValueError("fault setting 'time_scale' must be positive")
    if name == "lro_jitter" and coerced > 1:
        raise ValueError("fault setting 'lro_jitter' is a fraction between 0 and 1")
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
