"""How an `App` looks in ARM, and how a live Container App compares with it. No I/O.

Git owns the fields a manifest declares and nothing else: the containers (by name), each
optional section (`secrets`, `registries`, `identity`, `ingress`, `scale`) only when the manifest
has it, and the ARM fragments of `App.sections` and each container's `extra` (probes, volume
mounts), compared by the rules of `shared.core.arm_json` (named lists by key, declared fields
only, enums in ARM's casing). Updates are JSON merge patches of exactly those fields laid over the
live app, so tags from Azure Policy, scale rules set in the portal, and any other property Git does
not mention survive. Probes are compared only for the types Git declares, so the TCP probes ACA
adds to an app with ingress are not drift; they are left out of a patch only when Git moves the
ingress port (ACA then adds them for the new port). The identity type is sent as ARM's exact enum
value (`SystemAssigned,UserAssigned`, no space).
"""
from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from shared.core import aca_schema, app_sections, arm_json, sizes
from shared.core.manifests import App, Target

TAG_OWNER = "driftless-owner"
TAG_TARGET = "driftless-target"
TAG_REVISION = "driftless-revision"
TAG_SPEC_HASH = "driftless-spec-hash"
OWNERSHIP_TAGS = (TAG_OWNER, TAG_TARGET)
"""Tags that mark an app as Driftless's; an app is ours only when both match."""
BUSY_STATES = ("InProgress", "Deleting")
"""provisioningState values of an app whose operation still runs: ACA refuses writes (409) until it ends."""


def operation_in_progress(resource: dict[str, Any]) -> str:
    """Why the app must be left alone this pass ("" when it may be written): an operation still runs on it."""
    state = (resource.get("properties") or {}).get("provisioningState")
    if state not in BUSY_STATES:
        return ""
    return f"operation in progress (provisioningState {state}); left alone, the next pass looks again"


def _aca_default_probes(port: int) -> list[dict[str, Any]]:
    """The TCP probes ACA adds to the main container of an app with ingress on `port`, for each type the
    container does not define (learn.microsoft.com/azure/container-apps/health-probes#default-configuration)."""
    return [
        {"type": "Startup", "tcpSocket": {"port": port}, "timeoutSeconds": 3, "periodSeconds": 1,
         "initialDelaySeconds": 1, "successThreshold": 1, "failureThreshold": 240},
        {"type": "Liveness", "tcpSocket": {"port": port}},
        {"type": "Readiness", "tcpSocket": {"port": port}, "timeoutSeconds": 5, "periodSeconds": 5,
         "initialDelaySeconds": 3, "successThreshold": 1, "failureThreshold": 48},
    ]


def _without_aca_default_probes(probes: list[Any], port: int) -> list[Any]:
    """`probes` minus those equal to ACA's defaults for ingress on `port` (null fields and type case ignored)."""
    def canonical(probe: Any) -> Any:
        if not isinstance(probe, dict):
            return probe
        return {k: (str(v).lower() if k == "type" else v) for k, v in probe.items() if v is not None}
    defaults = [canonical(p) for p in _aca_default_probes(port)]
    return [p for p in probes if canonical(p) not in defaults]


def _container_view(container) -> dict[str, Any]:
    view: dict[str, Any] = {"image": container.image, "cpu": round(container.cpu, 4),
                            "memory": round(container.memory_gib, 4)}
    if container.command is not None:
        view["command"] = list(container.command)
    if container.args is not None:
        view["args"] = list(container.args)
    if container.env is not None:
        view["env"] = {e.name: ({"secretRef": e.secret_ref} if e.secret_ref else {"value": e.value})
                       for e in container.env}
    view.update(arm_json.view(dict(container.extra)))
    return view


def _section_key(arm_path: tuple[str, ...]) -> str:
    """How a Git-owned ARM fragment is named in a view and a diff: its path without `properties`."""
    return ".".join(arm_path[1:])


def desired_view(app: App) -> dict[str, Any]:
    """The Git-owned fields of `app` in a canonical shape shared with `live_view`."""
    view: dict[str, Any] = {"containers": {c.name: _container_view(c) for c in app.containers}}
    if app.init_containers is not None:
        view["initContainers"] = {c.name: _container_view(c) for c in app.init_containers}
    for arm_path, value in app.sections.items():
        view[_section_key(arm_path)] = arm_json.view(value, arm_path[-1])
    if app.secrets is not None:
        view["secrets"] = sorted(s.name for s in app.secrets)
    if app.registries is not None:
        view["registries"] = {r.server: _registry_json(r) for r in app.registries}
    if app.identity is not None:
        view["identity"] = {"type": app.identity.type.lower(),
                            "userAssigned": sorted(i.lower() for i in app.identity.user_assigned)}
    if app.ingress is not None:
        view["ingress"] = _ingress_view(app)
    if app.scale is not None:
        view["scale"] = {"minReplicas": app.scale.min_replicas, "maxReplicas": app.scale.max_replicas}
    return view


def _ingress_view(app: App) -> dict[str, Any] | None:
    ingress = app.ingress
    if ingress is None or not ingress.enabled:
        return None
    view = {"external": ingress.external, "targetPort": ingress.target_port, "transport": ingress.transport}
    if ingress.allowed_origins is not None:
        view["allowedOrigins"] = sorted(ingress.allowed_origins)
    return view


def live_view(resource: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """Project a live ARM Container App onto the keys of `desired`, normalising ARM's defaults (what Git does
    not declare, such as probes ACA adds or defaults ARM fills in, is not looked at)."""
    props = resource.get("properties") or {}
    config = props.get("configuration") or {}
    template = props.get("template") or {}
    view: dict[str, Any] = {"containers": _live_containers(template.get("containers"), desired["containers"])}
    if "initContainers" in desired:
        view["initContainers"] = _live_containers(template.get("initContainers"), desired["initContainers"])
    if "secrets" in desired:
        view["secrets"] = sorted(s.get("name") for s in config.get("secrets") or [])
    if "registries" in desired:
        view["registries"] = {r.get("server"): {k: r[k] for k in ("identity", "username", "passwordSecretRef") if r.get(k)}
                              for r in config.get("registries") or []}
    if "identity" in desired:
        identity = resource.get("identity") or {}
        view["identity"] = {"type": str(identity.get("type") or "None").replace(" ", "").lower(),
                            "userAssigned": sorted(i.lower() for i in identity.get("userAssignedIdentities") or {})}
    if "ingress" in desired:
        ingress = config.get("ingress")
        view["ingress"] = None if not ingress else {
            "external": bool(ingress.get("external")), "targetPort": ingress.get("targetPort"),
            "transport": str(ingress.get("transport") or "auto").lower(),
            **({"allowedOrigins": sorted((ingress.get("corsPolicy") or {}).get("allowedOrigins") or [])}
               if "allowedOrigins" in (desired["ingress"] or {}) else {}),
        }
    if "scale" in desired:
        scale = template.get("scale") or {}
        view["scale"] = {"minReplicas": scale.get("minReplicas") or 0,
                         "maxReplicas": 10 if scale.get("maxReplicas") is None else scale["maxReplicas"]}
    for key, wanted in desired.items():
        if key not in _TYPED_KEYS:
            live = arm_json.at(resource, ("properties", *key.split(".")))
            view[key] = arm_json.project(_canonical(live, key), wanted)
    return view


_TYPED_KEYS = ("containers", "initContainers", "secrets", "registries", "identity", "ingress", "scale")
"""View keys built from the App's typed fields; every other key is a Git-owned ARM fragment."""


def _canonical(live: Any, key: str, root: str = "ContainerAppProperties") -> Any:
    """A live ARM fragment (named by its view `key`) as a view, enums in ARM's casing like Git's side (`root`:
    the resource's properties model, JobProperties for a job)."""
    arm_path = ("properties", *key.split("."))
    return arm_json.view(app_sections.canonical(live, app_sections.kind_of_path(arm_path, root)), arm_path[-1])


def _live_containers(containers: Any, desired: dict[str, Any]) -> dict[str, Any]:
    """Live containers (or init containers) in the shape of `_container_view`, restricted to what Git declares."""
    view: dict[str, Any] = {}
    for container in containers or []:
        wanted = desired.get(container.get("name"), {})
        resources = container.get("resources") or {}
        item: dict[str, Any] = {"image": container.get("image"),
                                "cpu": round(float(resources.get("cpu") or 0), 4),
                                "memory": round(sizes.parse_memory(resources.get("memory")) or 0, 4)}
        if "command" in wanted:
            item["command"] = list(container.get("command") or [])
        if "args" in wanted:
            item["args"] = list(container.get("args") or [])
        if "env" in wanted:
            item["env"] = {e.get("name"): ({"secretRef": e["secretRef"]} if e.get("secretRef")
                                           else {"value": e.get("value")})
                           for e in container.get("env") or []}
        for name in app_sections.CONTAINER_FIELDS:
            if name in wanted:
                live = app_sections.canonical(container.get(name) or [], aca_schema.fields("Container")[name])
                item[name] = arm_json.project(arm_json.view(live, name), wanted[name])
        view[container.get("name")] = item
    return view


def spec_hash(app: App) -> str:
    """A short hash of everything Git owns, including secret references ARM never returns."""
    document = {"view": desired_view(app),
                "secrets": [[s.name, s.key_vault_url, s.identity] for s in app.secrets or ()]}
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:16]


def ownership_tags(app: App, target: Target, instance: str, revision: str) -> dict[str, str]:
    return {TAG_OWNER: instance, TAG_TARGET: target.name, TAG_REVISION: revision[:40], TAG_SPEC_HASH: spec_hash(app)}


def _registry_json(registry) -> dict[str, Any]:
    if registry.identity:
        return {"identity": registry.identity}
    return {"username": registry.username, "passwordSecretRef": registry.password_secret_ref}


def _container_json(container, base: dict[str, Any] | None, stale_port: int | None = None) -> dict[str, Any]:
    """The container as ARM wants it, built on the live one (`base`). With `stale_port` (the live ingress port
    Git moves away from), ACA's default probes for that port are dropped so ACA adds them for the new port."""
    body = copy.deepcopy(base) if base else {}
    if stale_port is not None and body.get("probes"):
        body["probes"] = _without_aca_default_probes(body["probes"], stale_port)
        if not body["probes"]:
            del body["probes"]
    body["name"] = container.name
    body["image"] = container.image
    resources = dict(body.get("resources") or {})
    resources["cpu"] = container.cpu
    resources["memory"] = sizes.format_memory(container.memory_gib)
    body["resources"] = resources
    for key, value in (("command", container.command), ("args", container.args)):
        if value is not None:
            body[key] = list(value)
    if container.env is not None:
        body["env"] = [{"name": e.name, "secretRef": e.secret_ref} if e.secret_ref else {"name": e.name, "value": e.value}
                       for e in container.env]
    for key, value in container.extra.items():
        body[key] = arm_json.overlay(body.get(key), value, key)
    return body


def _owned_properties(app: App, live: dict[str, Any] | None) -> dict[str, Any]:
    """The `properties` holding every Git-owned field (configuration, template, workloadProfileName), laid over
    the live app so what Git does not declare is kept."""
    live_props = (live or {}).get("properties") or {}
    live_containers = {c.get("name"): c for c in (live_props.get("template") or {}).get("containers") or []}
    live_port = ((live_props.get("configuration") or {}).get("ingress") or {}).get("targetPort")
    wanted_port = app.ingress.target_port if app.ingress is not None and app.ingress.enabled else None
    stale_port = live_port if app.ingress is not None and live_port is not None and live_port != wanted_port else None
    template: dict[str, Any] = {"containers": [_container_json(c, live_containers.get(c.name), stale_port)
                                               for c in app.containers]}
    if app.init_containers is not None:
        live_init = {c.get("name"): c for c in (live_props.get("template") or {}).get("initContainers") or []}
        template["initContainers"] = [_container_json(c, live_init.get(c.name)) for c in app.init_containers]
    if app.scale is not None:
        template["scale"] = {"minReplicas": app.scale.min_replicas, "maxReplicas": app.scale.max_replicas}
    configuration: dict[str, Any] = {}
    if app.secrets is not None:
        configuration["secrets"] = [{"name": s.name, "keyVaultUrl": s.key_vault_url, "identity": s.identity}
                                    for s in app.secrets]
    if app.registries is not None:
        configuration["registries"] = [{"server": r.server, **_registry_json(r)} for r in app.registries]
    if app.ingress is not None:
        configuration["ingress"] = _ingress_json(app)
    properties = {"configuration": configuration, "template": template}
    for arm_path, value in app.sections.items():
        arm_json.put(properties, arm_path[1:], arm_json.overlay(arm_json.at(live or {}, arm_path), value, arm_path[-1]))
    return properties


def _ingress_json(app: App) -> dict[str, Any] | None:
    view = _ingress_view(app)
    if view is None:
        return None
    body = {"external": view["external"], "targetPort": view["targetPort"], "transport": view["transport"]}
    if "allowedOrigins" in view:
        body["corsPolicy"] = {"allowedOrigins": list(app.ingress.allowed_origins)}
    return body


def _identity_json(app: App, live: dict[str, Any] | None) -> dict[str, Any]:
    identity: dict[str, Any] = {"type": app.identity.type}  # ARM's enum value, e.g. "SystemAssigned,UserAssigned"
    if app.identity.user_assigned or live:
        wanted = {rid: {} for rid in app.identity.user_assigned}
        stale = {rid: None for rid in ((live or {}).get("identity") or {}).get("userAssignedIdentities") or {}
                 if rid.lower() not in {w.lower() for w in wanted}}
        if wanted or stale:
            identity["userAssignedIdentities"] = {**wanted, **stale}
    return identity


def create_body(app: App, *, location: str, environment_id: str, tags: dict[str, str]) -> dict[str, Any]:
    """The PUT body that creates `app`."""
    properties = _owned_properties(app, None)
    configuration = properties["configuration"]
    configuration.setdefault("activeRevisionsMode", "Single")
    if configuration.get("ingress", 0) is None:
        del configuration["ingress"]
    body: dict[str, Any] = {"location": location, "tags": tags,
                            "properties": {"managedEnvironmentId": environment_id, **properties}}
    if app.identity is not None:
        body["identity"] = _identity_json(app, None)
    return body


def update_patch(app: App, live: dict[str, Any], *, tags: dict[str, str],
                 revision_suffix: str | None = None) -> dict[str, Any]:
    """The JSON merge patch that brings `live` to `app` while keeping what Git does not own.

    A `revision_suffix` forces a new revision even when the template is unchanged: that is how
    an unhealthy app is re-applied (ACA creates no revision for an identical template)."""
    properties = _owned_properties(app, live)
    if revision_suffix:
        properties["template"]["revisionSuffix"] = revision_suffix
    if not properties["configuration"]:
        del properties["configuration"]
    patch: dict[str, Any] = {"tags": tags, "properties": properties}
    if app.identity is not None:
        patch["identity"] = _identity_json(app, live)
    return patch


@dataclass(frozen=True)
class Health:
    healthy: bool
    reason: str = ""
    revision: str | None = None


def health(resource: dict[str, Any]) -> Health:
    """Healthy = provisioning succeeded, the latest revision is the latest ready one, and it runs."""
    props = resource.get("properties") or {}
    state = props.get("provisioningState")
    latest, ready = props.get("latestRevisionName"), props.get("latestReadyRevisionName")
    running = props.get("runningStatus")
    if state != "Succeeded":
        return Health(False, f"provisioning state is {state}", latest)
    if latest and latest != ready:
        return Health(False, f"latest revision {latest} is not ready (ready: {ready or 'none'})", latest)
    if running not in (None, "Running"):
        return Health(False, f"running status is {running}", latest)
    return Health(True, "", latest)


def environment_of(resource: dict[str, Any]) -> str:
    props = resource.get("properties") or {}
    return str(props.get("managedEnvironmentId") or props.get("environmentId") or "")
