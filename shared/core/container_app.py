"""How an `App` looks in ARM, and how a live Container App compares with it. No I/O.

Git owns the fields a manifest declares and nothing else: the containers (by name), and
each optional section (`secrets`, `registries`, `identity`, `ingress`, `scale`) only when
the manifest has it. Updates are JSON merge patches of exactly those fields, built on the
live containers, so tags from Azure Policy, probes or scale rules set in the portal, and any
other property Git does not mention survive.
"""
from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from shared.core import sizes
from shared.core.manifests import App, Target

TAG_OWNER = "driftless-owner"
TAG_TARGET = "driftless-target"
TAG_REVISION = "driftless-revision"
TAG_SPEC_HASH = "driftless-spec-hash"
OWNERSHIP_TAGS = (TAG_OWNER, TAG_TARGET)
"""Tags that mark an app as Driftless's; an app is ours only when both match."""


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
    return view


def desired_view(app: App) -> dict[str, Any]:
    """The Git-owned fields of `app` in a canonical shape shared with `live_view`."""
    view: dict[str, Any] = {"containers": {c.name: _container_view(c) for c in app.containers}}
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
    """Project a live ARM Container App onto the keys of `desired`, normalising ARM's defaults."""
    props = resource.get("properties") or {}
    config = props.get("configuration") or {}
    template = props.get("template") or {}
    view: dict[str, Any] = {"containers": {}}
    for container in template.get("containers") or []:
        wanted = desired["containers"].get(container.get("name"), {})
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
        view["containers"][container.get("name")] = item
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


def _container_json(container, base: dict[str, Any] | None) -> dict[str, Any]:
    body = copy.deepcopy(base) if base else {}
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
    return body


def _owned_properties(app: App, live: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(configuration, template) fragments holding the Git-owned fields, merged onto live containers."""
    live_props = (live or {}).get("properties") or {}
    live_containers = {c.get("name"): c for c in (live_props.get("template") or {}).get("containers") or []}
    template: dict[str, Any] = {"containers": [_container_json(c, live_containers.get(c.name)) for c in app.containers]}
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
    return configuration, template


def _ingress_json(app: App) -> dict[str, Any] | None:
    view = _ingress_view(app)
    if view is None:
        return None
    body = {"external": view["external"], "targetPort": view["targetPort"], "transport": view["transport"]}
    if "allowedOrigins" in view:
        body["corsPolicy"] = {"allowedOrigins": list(app.ingress.allowed_origins)}
    return body


def _identity_json(app: App, live: dict[str, Any] | None) -> dict[str, Any]:
    identity: dict[str, Any] = {"type": app.identity.type.replace(",", ", ")}
    if app.identity.user_assigned or live:
        wanted = {rid: {} for rid in app.identity.user_assigned}
        stale = {rid: None for rid in ((live or {}).get("identity") or {}).get("userAssignedIdentities") or {}
                 if rid.lower() not in {w.lower() for w in wanted}}
        if wanted or stale:
            identity["userAssignedIdentities"] = {**wanted, **stale}
    return identity


def create_body(app: App, *, location: str, environment_id: str, tags: dict[str, str]) -> dict[str, Any]:
    """The PUT body that creates `app`."""
    configuration, template = _owned_properties(app, None)
    configuration.setdefault("activeRevisionsMode", "Single")
    if configuration.get("ingress", 0) is None:
        del configuration["ingress"]
    body: dict[str, Any] = {"location": location, "tags": tags,
                            "properties": {"managedEnvironmentId": environment_id,
                                           "configuration": configuration, "template": template}}
    if app.identity is not None:
        body["identity"] = _identity_json(app, None)
    return body


def update_patch(app: App, live: dict[str, Any], *, tags: dict[str, str],
                 revision_suffix: str | None = None) -> dict[str, Any]:
    """The JSON merge patch that brings `live` to `app` while keeping what Git does not own.

    A `revision_suffix` forces a new revision even when the template is unchanged: that is how
    an unhealthy app is re-applied (ACA creates no revision for an identical template)."""
    configuration, template = _owned_properties(app, live)
    if revision_suffix:
        template["revisionSuffix"] = revision_suffix
    patch: dict[str, Any] = {"tags": tags, "properties": {"template": template}}
    if configuration:
        patch["properties"]["configuration"] = configuration
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
