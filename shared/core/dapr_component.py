"""Dapr components of a Container Apps environment (`kind: DaprComponent`): the manifest, the ARM body, drift and
the plan. No I/O.

A DaprComponent manifest is ARM's `Microsoft.App/managedEnvironments/daprComponents` with its
`properties` directly under `spec`: componentType, version, ignoreErrors, initTimeout, metadata
(each a name with a value or a secretRef), secrets (Key Vault references only, as an App's),
secretStoreComponent and scopes (the Dapr app ids that may load it).

ARM keeps no tags on a Dapr component, so what Driftless owns is an inventory in the status store
(`inventory.<target>`, one row per component, written after a successful write): prune compares Git
with that inventory only, under the App prune rules, and never deletes a component Driftless did not
create. A component of the same name that is not in the inventory is refused, unless its spec already
equals Git's: then it is adopted (written once and recorded). ARM never returns secret references, so
a change of a Key Vault URL is seen through the spec hash kept in the inventory row.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from shared.core import aca_schema, arm_json
from shared.core.container_app import Health
from shared.core.diff import Change, diff
from shared.core.manifests import API_VERSION, Problem, SecretRef, Target, _Check, _kind, _read_secrets
from shared.core.plan import Plan, Step, invalid_steps, plan_prune

KIND = "DaprComponent"
COMPONENT_NAME = re.compile(r"^[a-z][a-z0-9-]{0,58}[a-z0-9]$")
COMPONENT_TYPE = re.compile(r"^[a-z][a-z0-9]*(\.[a-z0-9][a-z0-9-]*)+$")
VERSION = re.compile(r"^v[0-9]+([a-z]+[0-9]*)?$")
DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$")
APP_ID = re.compile(r"^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$")
SPEC_FIELDS = ("componentType", "version", "ignoreErrors", "initTimeout", "metadata", "secrets",
               "secretStoreComponent", "scopes")
"""`spec` fields: ARM's DaprComponentProperties, by the same names."""
WRITABLE = SPEC_FIELDS
"""Live properties a write keeps when Git does not declare them (read-only ones such as provisioningState are dropped)."""
NO_STORE = ("not applied: Dapr components are owned through an inventory in the status store (ARM keeps no tags "
            "on them), and no status store is configured here (AzureWebJobsStorage)")


@dataclass(frozen=True)
class DaprComponent:
    """A Dapr component as Git wants it: `properties` in ARM's shape (secrets apart: references only)."""

    name: str
    file: str
    document: int
    properties: Mapping[str, Any] = field(default_factory=dict, hash=False)
    secrets: tuple[SecretRef, ...] | None = None

    @property
    def key(self) -> str:
        """What outcomes, suspensions and the inventory call this component: `DaprComponent/<name>`."""
        return f"{KIND}/{self.name}"

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(self.properties.get("scopes") or ())


def is_component_key(key: str | None) -> bool:
    return bool(key) and str(key).startswith(KIND + "/")


# --- the manifest --------------------------------------------------------------------------------
def read_component(doc: Any, check: _Check) -> DaprComponent | None:
    """Read and validate one `kind: DaprComponent` document (problems go to `check`)."""
    if not isinstance(doc, Mapping):
        check.add((), f"a manifest must be a mapping, got {_kind(doc)}")
        return None
    if doc.get("apiVersion") != API_VERSION:
        check.add(("apiVersion",), f"unsupported apiVersion '{doc.get('apiVersion')}' for kind DaprComponent; "
                                   f"allowed: {API_VERSION}")
        return None
    check.mapping(doc, (), ("apiVersion", "kind", "metadata", "spec", "status"), ("metadata", "spec"))
    meta = check.mapping(doc.get("metadata"), ("metadata",), ("name", "labels", "annotations", "namespace"), ("name",))
    name = check.string(meta.get("name"), ("metadata", "name"), COMPONENT_NAME,
                        "2-60 characters, lowercase letters, digits and '-', starting with a letter and ending with "
                        "a letter or digit")
    if name and "--" in name:
        check.add(("metadata", "name"), f"'{name}' is not valid: '--' is not allowed in a Dapr component name")
    spec = check.mapping(doc.get("spec"), ("spec",), SPEC_FIELDS, ("componentType", "version"))
    secrets = _read_secrets(spec.get("secrets"), check, False)
    fields = aca_schema.fields("DaprComponentProperties")
    properties: dict[str, Any] = {}
    for key in SPEC_FIELDS:
        if key == "secrets" or spec.get(key) is None:
            continue
        before = len(check.problems)
        aca_schema.check(spec[key], fields[key], ("spec", key), check.add)
        if len(check.problems) == before:
            properties[key] = spec[key]
    for key, pattern, rule in (
            ("componentType", COMPONENT_TYPE, "the Dapr building block and component, e.g. state.azure.cosmosdb, "
                                              "pubsub.azure.servicebus.topics"),
            ("version", VERSION, "the component's version, e.g. v1"),
            ("initTimeout", DURATION, "a duration such as 5s, 1m or 1m30s"),
            ("secretStoreComponent", COMPONENT_NAME, "the name of a Dapr secret store component")):
        if isinstance(properties.get(key), str) and not pattern.fullmatch(properties[key]):
            check.add(("spec", key), f"{properties[key]!r} is not valid: {rule}")
    _check_metadata(spec.get("metadata"), secrets, properties.get("secretStoreComponent"), check)
    _check_scopes(spec.get("scopes"), check)
    if not name:
        return None
    return DaprComponent(name=name, file=check.file, document=check.document, properties=properties, secrets=secrets)


def _check_metadata(items: Any, secrets: tuple[SecretRef, ...] | None, store: Any, check: _Check) -> None:
    """Each entry: a name used once and exactly one of value or secretRef; a secretRef names a secret of
    spec.secrets, unless a secretStoreComponent resolves it."""
    if not isinstance(items, list):
        return
    declared = {s.name for s in secrets or ()}
    first: dict[str, int] = {}
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            continue
        where = ("spec", "metadata", i)
        name = item.get("name")
        if not isinstance(name, str) or not name:
            check.add(where + ("name",), "is required")
        elif first.setdefault(name, i) != i:
            check.add(where + ("name",), f"'{name}' is already set at spec.metadata[{first[name]}]; set it once")
        if (item.get("value") is None) == (item.get("secretRef") is None):
            check.add(where, "needs exactly one of 'value' or 'secretRef'")
        ref = item.get("secretRef")
        if isinstance(ref, str) and not store and ref not in declared:
            check.add(where + ("secretRef",), f"secret '{ref}' is not declared in spec.secrets"
                                              + (f" (declared: {', '.join(sorted(declared))})" if declared else
                                                 "; declare it there, or name a secretStoreComponent"))


def _check_scopes(scopes: Any, check: _Check) -> None:
    if not isinstance(scopes, list):
        return
    first: dict[str, int] = {}
    for i, scope in enumerate(scopes):
        if not isinstance(scope, str):
            continue
        if not APP_ID.fullmatch(scope):
            check.add(("spec", "scopes", i), f"{scope!r} is not a Dapr app id: lowercase letters, digits and '-' "
                                             "(the dapr.appId of an App)")
        elif first.setdefault(scope, i) != i:
            check.add(("spec", "scopes", i), f"'{scope}' is already listed at spec.scopes[{first[scope]}]")


# --- ARM ------------------------------------------------------------------------------------------
def _metadata_view(items: Any) -> dict[str, Any]:
    return {m.get("name"): ({"secretRef": m["secretRef"]} if m.get("secretRef") is not None else
                            {"value": m.get("value")}) for m in items or [] if isinstance(m, Mapping)}


def desired_view(component: DaprComponent) -> dict[str, Any]:
    """The Git-owned properties in a canonical shape shared with `live_view` (metadata by name, scopes and secret
    names as sorted lists: their order never drifts)."""
    view: dict[str, Any] = {}
    for key, value in component.properties.items():
        view[key] = (_metadata_view(value) if key == "metadata" else sorted(value) if key == "scopes" else value)
    if component.secrets is not None:
        view["secrets"] = sorted(s.name for s in component.secrets)
    return view


def live_view(resource: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """A live component projected onto the keys of `desired` (what Git does not declare is not looked at)."""
    props = resource.get("properties") or {}
    view: dict[str, Any] = {}
    for key in desired:
        if key == "metadata":
            view[key] = _metadata_view(props.get("metadata"))
        elif key == "scopes":
            view[key] = sorted(props.get("scopes") or [])
        elif key == "secrets":
            view[key] = sorted(s.get("name") for s in props.get("secrets") or [] if isinstance(s, Mapping))
        else:
            view[key] = props.get(key)
    return view


def spec_hash(component: DaprComponent) -> str:
    """A short hash of everything Git owns, including the secret references ARM never returns."""
    document = {"properties": component.properties,
                "secrets": [[s.name, s.key_vault_url, s.identity] for s in component.secrets or ()]}
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).hexdigest()[:16]


def put_body(component: DaprComponent, live: dict[str, Any] | None) -> dict[str, Any]:
    """The PUT body (ARM replaces a component whole): Git's properties laid over the live ones, so a property Git
    does not declare keeps its live value (of live secrets, the Key Vault references ARM reports); lists Git
    declares (metadata, secrets, scopes) are Git's whole."""
    kept = {k: v for k, v in ((live or {}).get("properties") or {}).items() if k in WRITABLE and v is not None}
    if "secrets" in kept:       # only references can be sent again (ARM never returns a secret's value)
        kept["secrets"] = [s for s in kept["secrets"] if isinstance(s, Mapping) and s.get("keyVaultUrl")]
    wanted: dict[str, Any] = dict(component.properties)
    if component.secrets is not None:
        wanted["secrets"] = [{"name": s.name, "keyVaultUrl": s.key_vault_url, "identity": s.identity}
                             for s in component.secrets]
    return {"properties": arm_json.overlay(kept, wanted)}


def health(resource: dict[str, Any]) -> Health:
    """Healthy once ARM has it (a provisioningState other than Succeeded, when ARM reports one, is not)."""
    props = resource.get("properties") or {}
    state = props.get("provisioningState")
    if state in (None, "Succeeded"):
        return Health(True)
    errors = "; ".join(str(e) for e in props.get("deploymentErrors") or [] if e) if isinstance(
        props.get("deploymentErrors"), list) else str(props.get("deploymentErrors") or "")
    return Health(False, f"provisioning state is {state}" + (f": {errors}" if errors else ""))


def scope_notice(component: DaprComponent, app_ids: set[str]) -> str:
    """A warning (never a problem) for each scope no App of the Target's path has as its Dapr appId ("" if none)."""
    missing = [s for s in component.scopes if s not in app_ids]
    if not missing:
        return ""
    return ("warning: " + ", ".join(f"scope '{s}'" for s in missing)
            + f" name{'s' if len(missing) == 1 else ''} no App of this Target with dapr.enabled and that dapr.appId "
              "(the component is not loaded by an app that is not in scope)")


# --- the plan -------------------------------------------------------------------------------------
def plan_components(*, target: Target, components: Iterable[DaprComponent], problems: list[Problem],
                    live: Iterable[dict[str, Any]], inventory: Mapping[str, Mapping[str, Any]] | None,
                    owners_elsewhere: Mapping[str, str] | None = None, app_ids: Iterable[str] = (),
                    suspended: Iterable[str] = (), only: str | None = None) -> Plan:
    """Plan the Target's Dapr components. `live`: the environment's components; `inventory`: this Target's rows
    (key -> row with `spec_hash`) for this environment, or None without a status store (then nothing is written
    or pruned); `owners_elsewhere`: key -> another Target whose inventory holds it. Any problem makes the pass
    degraded, which forbids prune."""
    components = list(components)
    live_by_name = {str(r.get("name", "")).lower(): r for r in live}
    ids, held = set(app_ids), set(suspended)
    steps = []
    for component in components:
        step = _plan_component(component, live_by_name.get(component.name), inventory, owners_elsewhere or {}, held)
        notice = scope_notice(component, ids)
        if notice:
            step.reason = f"{step.reason}; {notice}"
        steps.append(step)
    mine = [p for p in problems if is_component_key(p.app)]
    steps += invalid_steps(mine, {c.key for c in components})
    degraded = bool(problems)
    prune = ""
    if inventory is not None:
        owned = {key: live_by_name.get(key.split("/", 1)[1].lower()) or {} for key in inventory}
        prune_steps, prune = plan_prune(target, owned, {c.key for c in components} | {str(p.app) for p in mine},
                                        degraded, len(problems), noun="Dapr components")
        steps += prune_steps
    if only is not None:
        steps = [s for s in steps if s.app == only]
    return Plan(steps, degraded, prune)


def _plan_component(component: DaprComponent, resource: dict[str, Any] | None,
                    inventory: Mapping[str, Mapping[str, Any]] | None, elsewhere: Mapping[str, str],
                    suspended: set[str]) -> Step:
    key = component.key
    if key in suspended:
        return Step(key, "suspended", "suspended at runtime (driftless resume to lift)", desired=component, live=resource)
    if inventory is None:
        return Step(key, "failed", NO_STORE, desired=component, live=resource)
    digest = spec_hash(component)
    if resource is None:
        return Step(key, "create", "not found in Azure", desired=component)
    wanted = desired_view(component)
    changes = diff(wanted, live_view(resource, wanted), "")
    state = health(resource)
    if key not in inventory:
        if key in elsewhere:
            return Step(key, "failed", f"in the inventory of Target {elsewhere[key]}; refusing to take it over",
                        desired=component, live=resource)
        if changes:
            return Step(key, "failed", "a Dapr component of this name exists in the environment but Driftless did not "
                                       "create it (not in this Target's inventory) and it differs from Git ("
                        + ", ".join(c.path for c in changes) + "); refusing to take it over: make it equal to Git's "
                                                               "to adopt it, or delete it", changes, component, resource)
        return Step(key, "update", "adopted: not created by Driftless but its spec equals Git's; written once and "
                                   "recorded in the inventory", [Change("inventory", digest, None)], component,
                    resource, state)
    recorded = inventory[key].get("spec_hash")
    if not changes and recorded != digest:
        changes.append(Change("inventory.specHash", digest, recorded))
    if changes:
        return Step(key, "update", "drifted: " + ", ".join(c.path for c in changes), changes, component, resource, state)
    return Step(key, "unchanged", "in sync", [], component, resource, state)
