"""The rest of a Container App in an App manifest: probes, volumes, scale rules, Dapr, revisions and
traffic, the whole ingress, service binds, identity settings and the workload profile.

Every field keeps ARM's property name and shape, flattened one level under `spec` (what ARM has
under `properties.template`, `properties.configuration` and `properties` sits directly under
`spec`; probes and volume mounts under each container), so a block copied from Bicep or the REST
docs works. Each field is checked against ARM's own schema (`aca_schema`, from the SDK) and
against the rules ARM applies across fields; what passes is kept as the ARM JSON fragment Git
owns, with enum values in ARM's casing. No I/O.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Iterable, Mapping

from shared.core import aca_schema

Path = tuple[Any, ...]
ArmPath = tuple[str, ...]
Report = Callable[[Path, str], None]

SPEC_FIELDS: dict[str, ArmPath] = {
    "volumes": ("properties", "template", "volumes"),
    "revisionSuffix": ("properties", "template", "revisionSuffix"),
    "serviceBinds": ("properties", "template", "serviceBinds"),
    "terminationGracePeriodSeconds": ("properties", "template", "terminationGracePeriodSeconds"),
    "dapr": ("properties", "configuration", "dapr"),
    "activeRevisionsMode": ("properties", "configuration", "activeRevisionsMode"),
    "maxInactiveRevisions": ("properties", "configuration", "maxInactiveRevisions"),
    "identitySettings": ("properties", "configuration", "identitySettings"),
    "workloadProfileName": ("properties", "workloadProfileName"),
}
"""Fields directly under `spec` and where ARM keeps them."""
INGRESS_FIELDS = ("traffic", "customDomains", "ipSecurityRestrictions", "stickySessions", "clientCertificateMode",
                  "corsPolicy", "exposedPort", "additionalPortMappings", "allowInsecure")
"""`spec.ingress` fields besides external, targetPort and transport (properties.configuration.ingress)."""
SCALE_FIELDS = ("cooldownPeriod", "pollingInterval", "rules")
"""`spec.scale` fields besides min/maxReplicas (properties.template.scale)."""
CONTAINER_FIELDS = ("probes", "volumeMounts")
"""Per-container fields (init containers take volumeMounts only)."""

USER_IDENTITY_ID = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.ManagedIdentity/userAssignedIdentities/[^/]+$",
    re.IGNORECASE)
REVISION_SUFFIX = re.compile(r"^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$")
SCALE_RULE_NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")
TRIGGERS = ("http", "tcp", "azureQueue", "custom")
FAILURE_THRESHOLD = {"liveness": 30, "readiness": 48, "startup": 240}
"""The most failures ACA accepts per probe type (its own default probes use 48 and 240)."""


def canonical(value: Any, kind: Any) -> Any:
    """`value` with every enum in ARM's casing (ARM compares enums case-insensitively)."""
    if isinstance(kind, str) and kind in aca_schema.models():
        kind = {"model": kind}
    if isinstance(kind, dict) and "model" in kind and isinstance(value, dict):
        fields = aca_schema.fields(kind["model"])
        return {k: canonical(v, fields.get(k, "any")) for k, v in value.items()}
    if isinstance(kind, dict) and "list" in kind and isinstance(value, list):
        return [canonical(v, kind["list"]) for v in value]
    if isinstance(kind, dict) and "enum" in kind and isinstance(value, str):
        return next((e for e in kind["enum"] if e.lower() == value.lower()), value)
    return value


class Sections:
    """Reads the sections of one App; `report(path, message)` collects problems with manifest paths."""

    def __init__(self, report: Report, *, secrets: Iterable[str] | None, identities: Iterable[str],
                 system_identity: bool):
        self.report = report
        self.secrets = None if secrets is None else set(secrets)
        self.identities = {i.lower() for i in identities}
        self.system_identity = system_identity
        self.owned: dict[ArmPath, Any] = {}

    # --- spec -----------------------------------------------------------------------------
    def read_spec(self, spec: Mapping[str, Any], fields: Mapping[str, ArmPath] = SPEC_FIELDS, *,
                  root: str = "ContainerAppProperties") -> None:
        """The `fields` directly under `spec` (an App's by default; a job passes its own and `root`
        JobProperties), checked against ARM's schema, then the rules across fields."""
        for name, arm_path in fields.items():
            if spec.get(name) is None:
                continue
            value = self._checked(spec[name], kind_of_path(arm_path, root), ("spec", name))
            if value is not None:
                self.owned[arm_path] = value
        self._volumes(spec.get("volumes"))
        self._revisions(spec)
        self._identity_settings(spec.get("identitySettings"))
        dapr = spec.get("dapr")
        if isinstance(dapr, Mapping) and dapr.get("enabled") and not dapr.get("appId"):
            self.report(("spec", "dapr", "appId"), "is required when Dapr is enabled")
        profile = spec.get("workloadProfileName")
        if profile is not None and (not isinstance(profile, str) or not profile.strip()):
            self.report(("spec", "workloadProfileName"), "must name a workload profile of the environment")

    def read_ingress(self, ingress: Mapping[str, Any], *, enabled: bool, transport: str) -> None:
        present = [f for f in INGRESS_FIELDS if ingress.get(f) is not None]
        if present and not enabled:
            self.report(("spec", "ingress", present[0]), "needs ingress enabled")
            return
        for name in present:
            arm_path = ("properties", "configuration", "ingress", name)
            value = self._checked(ingress[name], aca_schema.fields("Ingress")[name], ("spec", "ingress", name))
            if value is not None:
                self.owned[arm_path] = value
        if ingress.get("exposedPort") is not None and transport != "tcp":
            self.report(("spec", "ingress", "exposedPort"), "is only allowed with transport: tcp")
        rules = ingress.get("ipSecurityRestrictions")
        if isinstance(rules, list):
            actions = {str(r.get("action", "")).lower() for r in rules if isinstance(r, Mapping)}
            if len(actions) > 1:
                self.report(("spec", "ingress", "ipSecurityRestrictions"),
                            "rules must be all Allow or all Deny (Container Apps does not mix them)")
            self._unique(rules, "name", ("spec", "ingress", "ipSecurityRestrictions"))
        self._unique(ingress.get("customDomains"), "name", ("spec", "ingress", "customDomains"))

    def read_scale(self, scale: Mapping[str, Any]) -> None:
        for name in SCALE_FIELDS:
            if scale.get(name) is None:
                continue
            value = self._checked(scale[name], aca_schema.fields("Scale")[name], ("spec", "scale", name))
            if value is not None:
                self.owned[("properties", "template", "scale", name)] = value
        for name in ("cooldownPeriod", "pollingInterval"):
            value = scale.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value < (0 if name == "cooldownPeriod" else 1):
                self.report(("spec", "scale", name), f"must be {'0 or more' if name == 'cooldownPeriod' else '1 or more'} "
                                                    f"seconds, got {value}")
        rules = scale.get("rules")
        if isinstance(rules, list):
            self.scale_rules(rules, ("spec", "scale", "rules"))

    def scale_rules(self, rules: list[Any], path: Path, *, job: bool = False) -> None:
        """Each rule: a name, exactly one trigger, declared secrets in `auth`, an identity the app has. A job's
        event rules (`job`: ARM's JobScaleRule) are KEDA rules themselves: name, type, metadata (strings), and
        auth or identity, with the same checks."""
        self._unique(rules, "name", path)
        for i, rule in enumerate(rules):
            if not isinstance(rule, Mapping):
                continue
            where = path + (i,)
            name = rule.get("name")
            if not isinstance(name, str) or not SCALE_RULE_NAME.fullmatch(name):
                self.report(where + ("name",), "is required: lowercase letters, digits, '-' and '.', starting and "
                                               "ending with a letter or digit")
            triggers = ["custom"] if job else [t for t in TRIGGERS if rule.get(t) is not None]
            if len(triggers) != 1:
                self.report(where, f"needs exactly one of {', '.join(TRIGGERS)}, got "
                                   f"{', '.join(triggers) if triggers else 'none'}")
                continue
            trigger = rule if job else rule[triggers[0]]
            if not isinstance(trigger, Mapping):
                continue
            at = where if job else where + (triggers[0],)
            if job and trigger.get("metadata") is not None:
                aca_schema.check(trigger["metadata"], {"map": "str"}, at + ("metadata",), self.report)
            if triggers[0] == "custom" and not trigger.get("type"):
                self.report(at + ("type",), "is required: the KEDA scaler type, e.g. azure-servicebus")
            if triggers[0] == "azureQueue":
                for key in ("queueName", "queueLength"):
                    if trigger.get(key) is None:
                        self.report(at + (key,), "is required")
            for j, auth in enumerate(trigger.get("auth") or []):
                if isinstance(auth, Mapping):
                    self._secret_ref(auth.get("secretRef"), at + ("auth", j, "secretRef"))
                    if not auth.get("triggerParameter"):
                        self.report(at + ("auth", j, "triggerParameter"), "is required")
            if trigger.get("identity") is not None:
                self._identity(trigger["identity"], at + ("identity",))
            if trigger.get("auth") and trigger.get("identity") is not None:
                self.report(at, "takes either auth (secrets) or identity, not both")

    # --- containers -----------------------------------------------------------------------
    def read_container(self, container: Mapping[str, Any], path: Path, *, init: bool) -> dict[str, Any]:
        """The Git-owned extra fields of one container (probes, volumeMounts) in ARM's casing."""
        owned: dict[str, Any] = {}
        model = "InitContainer" if init else "Container"
        for name in CONTAINER_FIELDS:
            if container.get(name) is None:
                continue
            if name not in aca_schema.fields(model):
                self.report(path + (name,), "is not allowed on an init container")
                continue
            value = self._checked(container[name], aca_schema.fields(model)[name], path + (name,))
            if value is not None:
                owned[name] = value
        if isinstance(container.get("probes"), list):
            self._probes(container["probes"], path + ("probes",))
        if isinstance(container.get("volumeMounts"), list):
            self._mounts(container["volumeMounts"], path + ("volumeMounts",))
        return owned

    def _probes(self, probes: list[Any], path: Path) -> None:
        seen: dict[str, int] = {}
        for i, probe in enumerate(probes):
            if not isinstance(probe, Mapping):
                continue
            kind = str(probe.get("type") or "")
            if not kind:
                self.report(path + (i, "type"), "is required: Liveness, Readiness or Startup")
            elif seen.setdefault(kind.lower(), i) != i:
                self.report(path + (i, "type"), f"a {aca_schema.canonical_enum('ContainerAppProbe', 'type', kind)} "
                                                f"probe is already defined at probes[{seen[kind.lower()]}]; at most one "
                                                "probe of each type")
            handlers = [h for h in ("httpGet", "tcpSocket") if probe.get(h) is not None]
            if len(handlers) != 1:
                self.report(path + (i,), "needs exactly one of httpGet or tcpSocket")
            for handler in handlers:
                target = probe[handler]
                if isinstance(target, Mapping) and target.get("port") is None:
                    self.report(path + (i, handler, "port"), "is required")
                port = target.get("port") if isinstance(target, Mapping) else None
                if isinstance(port, int) and not isinstance(port, bool) and not 1 <= port <= 65535:
                    self.report(path + (i, handler, "port"), f"must be a port from 1 to 65535, got {port}")
            if kind.lower() in ("liveness", "startup") and probe.get("successThreshold") not in (None, 1):
                self.report(path + (i, "successThreshold"), f"must be 1 for a {kind} probe")
            most = FAILURE_THRESHOLD.get(kind.lower())
            failures = probe.get("failureThreshold")
            if most and isinstance(failures, int) and not isinstance(failures, bool) and failures > most:
                self.report(path + (i, "failureThreshold"), f"must be at most {most} for a {kind} probe, got {failures}")

    def _mounts(self, mounts: list[Any], path: Path) -> None:
        self._unique(mounts, "mountPath", path)
        for i, mount in enumerate(mounts):
            if not isinstance(mount, Mapping):
                continue
            for key in ("volumeName", "mountPath"):
                if not mount.get(key):
                    self.report(path + (i, key), "is required")
            if isinstance(mount.get("mountPath"), str) and not mount["mountPath"].startswith("/"):
                self.report(path + (i, "mountPath"), f"must be an absolute path, got {mount['mountPath']!r}")

    def check_mounts(self, mounts: Iterable[tuple[Path, str]]) -> None:
        """Every volume mount names a volume of `spec.volumes`."""
        declared = {v.get("name") for v in self.owned.get(SPEC_FIELDS["volumes"]) or [] if isinstance(v, Mapping)}
        for path, name in mounts:
            if name not in declared:
                self.report(path, f"volume '{name}' is not declared in spec.volumes"
                                  + (f" (declared: {', '.join(sorted(n for n in declared if n))})" if declared else ""))

    # --- cross-field rules ----------------------------------------------------------------
    def _volumes(self, volumes: Any) -> None:
        if not isinstance(volumes, list):
            return
        path = ("spec", "volumes")
        self._unique(volumes, "name", path)
        for i, volume in enumerate(volumes):
            if not isinstance(volume, Mapping):
                continue
            if not volume.get("name"):
                self.report(path + (i, "name"), "is required")
            storage = str(volume.get("storageType") or "EmptyDir").lower()
            if storage in ("azurefile", "nfsazurefile") and not volume.get("storageName"):
                self.report(path + (i, "storageName"), f"is required for storageType {volume.get('storageType')}: "
                                                       "the name of the environment's storage")
            if storage in ("emptydir", "secret") and volume.get("storageName"):
                self.report(path + (i, "storageName"), f"is not used with storageType {volume.get('storageType') or 'EmptyDir'}")
            if volume.get("secrets") is not None and storage != "secret":
                self.report(path + (i, "secrets"), "is only allowed with storageType Secret")
            for j, item in enumerate(volume.get("secrets") or []):
                if isinstance(item, Mapping):
                    self._secret_ref(item.get("secretRef"), path + (i, "secrets", j, "secretRef"))
            if storage == "secret" and not volume.get("secrets") and self.secrets is None:
                self.report(path + (i,), "a Secret volume without `secrets` mounts every app secret: declare "
                                         "spec.secrets so Git owns them")

    def _revisions(self, spec: Mapping[str, Any]) -> None:
        mode = str(spec.get("activeRevisionsMode") or "Single").lower()
        ingress = spec.get("ingress") if isinstance(spec.get("ingress"), Mapping) else {}
        traffic = ingress.get("traffic")
        suffix = spec.get("revisionSuffix")
        if isinstance(suffix, str) and not REVISION_SUFFIX.fullmatch(suffix):
            self.report(("spec", "revisionSuffix"), "lowercase letters, digits and '-', starting and ending with a "
                                                    "letter or digit, at most 64 characters")
        if not isinstance(traffic, list):
            return
        path = ("spec", "ingress", "traffic")
        total, targets = 0, 0
        for i, entry in enumerate(traffic):
            if not isinstance(entry, Mapping):
                continue
            weight = entry.get("weight", 0)
            if isinstance(weight, int) and not isinstance(weight, bool):
                if not 0 <= weight <= 100:
                    self.report(path + (i, "weight"), f"must be from 0 to 100, got {weight}")
                total += weight
                targets += weight > 0
            if bool(entry.get("revisionName")) == bool(entry.get("latestRevision")):
                self.report(path + (i,), "needs exactly one of revisionName or latestRevision: true")
        if traffic and total != 100:
            self.report(path, f"weights add up to {total}; they must add up to 100")
        if targets > 1 and mode != "multiple":
            self.report(path, "splits traffic across revisions, which needs activeRevisionsMode: Multiple")

    def _identity_settings(self, settings: Any) -> None:
        if not isinstance(settings, list):
            return
        self._unique(settings, "identity", ("spec", "identitySettings"))
        for i, item in enumerate(settings):
            if isinstance(item, Mapping) and item.get("identity") is not None:
                self._identity(item["identity"], ("spec", "identitySettings", i, "identity"))

    def identity_uses(self, spec: Mapping[str, Any]) -> None:
        """Every Key Vault secret (default `system`) and registry of `spec` uses an identity the app has: ARM
        refuses the resource otherwise."""
        for field_name, default in (("secrets", "system"), ("registries", None)):
            items = spec.get(field_name)
            for i, item in enumerate(items if isinstance(items, list) else []):
                if not isinstance(item, Mapping) or (field_name == "secrets" and "keyVaultUrl" not in item):
                    continue                            # a plaintext secret is refused on its own
                used = item.get("identity", default)
                if isinstance(used, str) and (used == "system" or USER_IDENTITY_ID.fullmatch(used)):
                    self._identity(used, ("spec", field_name, i, "identity"))

    def _identity(self, value: Any, path: Path) -> None:
        if value == "system":
            if not self.system_identity:
                self.report(path, "'system' needs spec.identity with type SystemAssigned")
        elif not isinstance(value, str) or value.lower() not in self.identities:
            self.report(path, f"{value!r} is not an identity of this app: use 'system' or one of "
                              "spec.identity.userAssignedIdentities")

    def _secret_ref(self, name: Any, path: Path) -> None:
        if not name:
            self.report(path, "is required")
        elif self.secrets is None or name not in self.secrets:
            known = sorted(self.secrets or ())
            self.report(path, f"secret '{name}' is not declared in spec.secrets"
                              + (f" (declared: {', '.join(known)})" if known else ""))

    def _unique(self, items: Any, key: str, path: Path) -> None:
        if not isinstance(items, list):
            return
        first: dict[Any, int] = {}
        for i, item in enumerate(items):
            value = item.get(key) if isinstance(item, Mapping) else None
            if value is not None and first.setdefault(str(value).lower(), i) != i:
                self.report(path + (i, key), f"'{value}' is already used at [{first[str(value).lower()]}]")

    def _checked(self, value: Any, kind: Any, path: Path) -> Any:
        problems: list[tuple[Path, str]] = []
        aca_schema.check(value, kind, path, lambda p, m: problems.append((p, m)))
        for where, message in problems:
            self.report(where, message)
        return None if problems else canonical(value, kind)


def kind_of_path(arm_path: ArmPath, root: str = "ContainerAppProperties") -> Any:
    """The schema kind at any depth of a Container App's properties (or of another resource's, by its `root`
    properties model, e.g. JobProperties), e.g. properties.configuration.ingress.traffic."""
    kind: Any = {"model": root}
    for step in arm_path[1:]:
        model = kind.get("model") if isinstance(kind, dict) else None
        if model is None:
            return "any"
        kind = aca_schema.fields(model).get(step, "any")
    return kind
