"""AKS Targets: plain Kubernetes objects from Git, applied with server-side apply; no agent in the cluster.

One pass: validate (shared.kube_manifests) -> per object a GET and a `dryRun=All` apply, compared on the
fields the manifest sets -> writes with field manager `driftless` (Namespaces and CRDs first, bounded
concurrency) -> prune by ownership labels under the same rules as ACA (`shared.plan`) -> health.
Connecting: API server and CA from ARM (`listClusterUserCredential`) and an Entra token for the AKS
server app, or a local kubeconfig (DRIFTLESS_KUBECONFIG). lightkube is imported lazily.
"""
from __future__ import annotations

import hashlib
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterable

import yaml

from shared.container_app import Health
from shared.credentials import credential
from shared.diff import diff
from shared.kube_manifests import FIRST_KINDS, KubeObject, key_of
from shared.manifests import FluxRef, Problem, Target, names_in_problems
from shared.outcome import Outcome, PassResult
from shared.plan import Plan, Step, plan_prune
from shared.settings import Settings

if TYPE_CHECKING:
    from lightkube import Client

AKS_SCOPE = "6dae42f8-4368-4678-94ff-3960e28e3630/.default"
"""The Entra ID application of the AKS API server (the same for every AKS cluster)."""
FIELD_MANAGER = "driftless"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_TARGET = "driftless.io/target"
ANNOTATION_SPEC_HASH = "driftless.io/spec-hash"
FLUX_REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
SERVER_METADATA = ("managedFields", "resourceVersion", "uid", "creationTimestamp", "generation", "selfLink")
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
FLUX_TYPES = {"GitRepository": ("source.toolkit.fluxcd.io/v1", "gitrepositories"),
              "Kustomization": ("kustomize.toolkit.fluxcd.io/v1", "kustomizations")}
PRUNE_KINDS = (("v1", "ConfigMap"), ("v1", "Namespace"), ("v1", "PersistentVolumeClaim"), ("v1", "Secret"),
               ("v1", "Service"), ("v1", "ServiceAccount"), ("apps/v1", "DaemonSet"), ("apps/v1", "Deployment"),
               ("apps/v1", "StatefulSet"), ("batch/v1", "CronJob"), ("batch/v1", "Job"),
               ("networking.k8s.io/v1", "Ingress"), ("rbac.authorization.k8s.io/v1", "Role"),
               ("rbac.authorization.k8s.io/v1", "RoleBinding"))
"""Kinds prune always looks at (with the label selector), besides every kind in Git: so removing the last
object of a common kind from Git still finds it. A custom kind is found only while Git holds one of it."""
_VERDICTS = {"create": "created", "update": "updated", "delete": "deleted"}

Progress = Callable[[int, int, Outcome], None]


@dataclass
class KubeStep(Step):
    """A Step for one Kubernetes object; `obj` is what Git wants (None for an orphan)."""

    obj: KubeObject | None = None

    @property
    def first(self) -> bool:
        kind = self.obj.kind if self.obj else (self.live or {}).get("kind")
        return kind in FIRST_KINDS


class KubeError(Exception):
    """The API server refused a request; `message` is its Status message (409: manager and field)."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code, self.message = code, message


# ------------------------------------------------------------------------------ connecting


def _kubeconfig_from_arm(kubeconfig: bytes) -> tuple[str, str]:
    """(server, base64 CA) of the current context's cluster in a kubeconfig; credentials are ignored."""
    config = yaml.safe_load(kubeconfig)
    clusters = {c["name"]: c["cluster"] for c in config.get("clusters") or []}
    contexts = {c["name"]: c["context"] for c in config.get("contexts") or []}
    current = contexts.get(config.get("current-context"), {}).get("cluster")
    cluster = clusters.get(current) or next(iter(clusters.values()), None)
    if not cluster or not cluster.get("server") or not cluster.get("certificate-authority-data"):
        raise ValueError("the cluster's kubeconfig names no server with certificate-authority-data")
    return cluster["server"], cluster["certificate-authority-data"]


def connect(settings: Settings, target: Target) -> Client:
    """A lightkube client for the Target's cluster: DRIFTLESS_KUBECONFIG when set (the context named like
    the cluster, else the current one), else server + CA from ARM with an Entra token; nothing is stored."""
    from lightkube import Client, KubeConfig
    from lightkube.config.models import Cluster, User

    if settings.kubeconfig:
        config = KubeConfig.from_file(settings.kubeconfig)
        return Client(config.get(target.cluster if target.cluster in config.contexts else None),
                      field_manager=FIELD_MANAGER, trust_env=False)
    from azure.mgmt.containerservice import ContainerServiceClient

    arm = ContainerServiceClient(credential(settings), target.subscription_id,
                                 base_url=settings.arm_endpoint or "https://management.azure.com")
    found = arm.managed_clusters.list_cluster_user_credentials(target.resource_group, target.cluster)
    server, ca = _kubeconfig_from_arm(found.kubeconfigs[0].value)
    token = credential(settings).get_token(AKS_SCOPE).token
    config = KubeConfig.from_one(cluster=Cluster(server=server, certificate_auth_data=ca), user=User(token=token))
    return Client(config, field_manager=FIELD_MANAGER, trust_env=False)


class Api:
    """The few calls a pass makes, on plain dicts; resource types come from lightkube's models, CRDs in Git,
    or the cluster's CRDs (listed once, only for a custom kind Git does not describe)."""

    def __init__(self, client: Client, crds: Iterable[KubeObject] = ()):
        self.client = client
        self._types: dict[tuple[str, str], Any] = {}
        self._crds = {_crd_type(o.body) for o in crds if o.kind == "CustomResourceDefinition"} - {None}
        self._crds |= {(v.split("/")[0], (v.split("/")[1],), k, p, True) for k, (v, p) in FLUX_TYPES.items()}
        self._cluster_crds: set | None = None
        self._lock = threading.Lock()

    def type(self, api_version: str, kind: str):
        with self._lock:
            if (api_version, kind) not in self._types:
                self._types[(api_version, kind)] = self._resolve(api_version, kind)
            return self._types[(api_version, kind)]

    def _resolve(self, api_version: str, kind: str):
        from lightkube.core.exceptions import LoadResourceError
        from lightkube.core.resource_registry import resource_registry
        from lightkube.generic_resource import GenericGlobalResource, GenericNamespacedResource, create_api_info
        from lightkube.core.resource import NamespacedResource

        group, _, version = api_version.rpartition("/")
        try:
            model = resource_registry.load(api_version, kind)
            plural, namespaced = model._api_info.plural, issubclass(model, NamespacedResource)
        except (LoadResourceError, ImportError):
            known = {(g, k): (p, n) for g, vs, k, p, n in self._crds if version in vs}
            if (group, kind) not in known:
                known.update({(g, k): (p, n) for g, vs, k, p, n in self._listed_crds() if version in vs})
            if (group, kind) not in known:
                raise KubeError(404, f"the cluster serves no {kind} in {api_version} (no CustomResourceDefinition)")
            plural, namespaced = known[(group, kind)]
        base = GenericNamespacedResource if namespaced else GenericGlobalResource
        return type(kind, (base,), {"_api_info": create_api_info(group, version, kind, plural)})

    def _listed_crds(self) -> set:
        from lightkube.resources.apiextensions_v1 import CustomResourceDefinition

        if self._cluster_crds is None:
            self._cluster_crds = {_crd_type(c.to_dict()) for c in self.client.list(CustomResourceDefinition)} - {None}
        return self._cluster_crds

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        try:
            return dict(self.client.get(self.type(api_version, kind), name, namespace=namespace))
        except Exception as exc:
            if _code(exc) == 404:
                return None
            raise _refused(exc) from exc

    def apply(self, body: dict[str, Any], *, force: bool, dry_run: bool) -> dict[str, Any]:
        from lightkube.types import PatchType

        meta = body["metadata"]
        try:
            return dict(self.client.patch(self.type(body["apiVersion"], body["kind"]), meta["name"], body,
                                          namespace=meta.get("namespace"), patch_type=PatchType.APPLY,
                                          field_manager=FIELD_MANAGER, force=force, dry_run=dry_run))
        except Exception as exc:
            raise _refused(exc) from exc

    def merge_patch(self, api_version: str, kind: str, namespace: str | None, name: str, patch: dict) -> None:
        from lightkube.types import PatchType

        try:
            self.client.patch(self.type(api_version, kind), name, patch, namespace=namespace,
                              patch_type=PatchType.MERGE, field_manager=FIELD_MANAGER)
        except Exception as exc:
            raise _refused(exc) from exc

    def owned(self, api_version: str, kind: str, labels: dict[str, str]) -> list[dict[str, Any]]:
        """Every object of the kind carrying all `labels`, in every namespace; none when the cluster does not
        serve the kind (yet)."""
        try:
            kind_type = self.type(api_version, kind)
            return [dict(o) for o in self.client.list(kind_type, namespace="*" if _namespaced(kind_type) else None,
                                                      labels=labels)]
        except Exception as exc:
            if _code(exc) == 404:
                return []
            raise _refused(exc) from exc

    def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> None:
        try:
            self.client.delete(self.type(api_version, kind), name, namespace=namespace)
        except Exception as exc:
            if _code(exc) != 404:
                raise _refused(exc) from exc


def _namespaced(kind_type) -> bool:
    from lightkube.core.resource import NamespacedResource

    return issubclass(kind_type, NamespacedResource)


def _crd_type(body: dict[str, Any]):
    """(group, versions, kind, plural, namespaced) of a CRD."""
    spec = body.get("spec") or {}
    names = spec.get("names") or {}
    if not (spec.get("group") and names.get("kind") and names.get("plural")):
        return None
    return (spec["group"], tuple(v.get("name") for v in spec.get("versions") or []), names["kind"],
            names["plural"], spec.get("scope") != "Cluster")


def _code(exc: Exception) -> int | None:
    status = getattr(exc, "status", None)
    return getattr(status, "code", None)


def _refused(exc: Exception) -> Exception:
    """An ApiError becomes a KubeError with the server's Status message; anything else (network) passes."""
    if isinstance(exc, KubeError) or _code(exc) is None:
        return exc
    return KubeError(_code(exc), getattr(exc.status, "message", None) or str(exc))


# ------------------------------------------------------------------------------ comparing and health


def strip_server_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without what the server manages: status, managedFields, resourceVersion, uid,
    creationTimestamp, generation, selfLink and kubectl's last-applied annotation."""
    out = {k: v for k, v in obj.items() if k != "status"}
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in SERVER_METADATA}
    if LAST_APPLIED in (meta.get("annotations") or {}):
        meta["annotations"] = {k: v for k, v in meta["annotations"].items() if k != LAST_APPLIED}
    out["metadata"] = meta
    return out


def _project(value: Any, shape: Any) -> Any:
    """`value` restricted to the fields `shape` (the manifest) sets; lists of named items are keyed by name."""
    if isinstance(shape, dict):
        value = value if isinstance(value, dict) else {}
        return {k: _project(value.get(k), s) for k, s in shape.items()}
    if _named(shape) and _named(value):
        by_name = {item["name"]: item for item in value}
        return {item["name"]: _project(by_name.get(item["name"]), item) for item in shape}
    return value


def _named(items: Any) -> bool:
    return isinstance(items, list) and bool(items) and all(isinstance(i, dict) and "name" in i for i in items)


def health(obj: dict[str, Any]) -> Health:
    """Deployments, StatefulSets and DaemonSets rolled out; Jobs complete; anything else healthy once applied."""
    kind, spec, status = obj.get("kind"), obj.get("spec") or {}, obj.get("status") or {}
    generation, observed = (obj.get("metadata") or {}).get("generation", 0), status.get("observedGeneration")
    if kind in ("Deployment", "StatefulSet", "DaemonSet"):
        stuck = next((c for c in status.get("conditions") or [] if c.get("reason") == "ProgressDeadlineExceeded"), None)
        if stuck:
            return Health(False, f"ProgressDeadlineExceeded: {stuck.get('message', '')}".strip())
        if observed is None or observed < generation:
            return Health(False, f"rollout not observed yet (observedGeneration {observed} < generation {generation})")
        if kind == "DaemonSet":
            wanted, updated, available = (status.get(k, 0) for k in
                                          ("desiredNumberScheduled", "updatedNumberScheduled", "numberAvailable"))
        else:
            wanted = spec.get("replicas", 1)
            updated, available = status.get("updatedReplicas", 0), status.get("availableReplicas", 0)
        if updated < wanted or available < wanted:
            return Health(False, f"rollout in progress: {updated} of {wanted} updated, {available} available")
        return Health(True)
    if kind == "Job":
        conditions = {c.get("type"): c for c in status.get("conditions") or [] if c.get("status") == "True"}
        if "Complete" in conditions:
            return Health(True)
        if "Failed" in conditions:
            failed = conditions["Failed"]
            return Health(False, f"job failed: {failed.get('reason', '')} {failed.get('message', '')}".strip())
        return Health(False, f"job not complete yet ({status.get('succeeded', 0)} succeeded, "
                             f"{status.get('active', 0)} active)")
    return Health(True)


# ------------------------------------------------------------------------------ one pass


class AksTarget:
    """Plans and reconciles one AKS Target; keeps the connection per pass and the revision Flux was last nudged at."""

    def __init__(self, settings: Settings, target: Target, *, connect_to: Callable[[], Client] | None = None):
        self.settings, self.target = settings, target
        self._connect = connect_to or (lambda: connect(settings, target))
        self._nudged: str | None = None

    @property
    def labels(self) -> dict[str, str]:
        return {LABEL_MANAGED_BY: self.settings.instance, LABEL_TARGET: self.target.name}

    def body(self, obj: KubeObject) -> dict[str, Any]:
        """What is applied: the manifest (without server fields) plus the ownership labels and a spec hash,
        so a field removed from Git is seen as a change."""
        body = strip_server_fields(obj.body)
        digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:16]
        meta = body["metadata"]
        meta["labels"] = {**(meta.get("labels") or {}), **self.labels}
        meta["annotations"] = {**(meta.get("annotations") or {}), ANNOTATION_SPEC_HASH: digest}
        return body

    def plan(self, objects: list[KubeObject], problems: list[Problem], *, api: Api | None = None,
             only: str | None = None, suspended: Iterable[str] = ()) -> Plan:
        """GET and dry-run apply every object (reads only), then the prune verdict."""
        api = api or Api(self._connect(), objects)
        suspended = set(suspended)
        chosen = [o for o in objects if only is None or o.key == only]
        with ThreadPoolExecutor(max_workers=self.settings.concurrency, thread_name_prefix="aks-plan") as pool:
            steps: list[Step] = list(pool.map(lambda o: self._plan_object(api, o, suspended), chosen))
        invalid = names_in_problems(problems) - {o.key for o in objects}
        for key in sorted(invalid):
            reasons = "; ".join(f"{p.field}: {p.message}" if p.field else p.message for p in problems if p.app == key)
            steps.append(KubeStep(key, "failed", f"invalid manifest, not applied: {reasons}"))
        owned = {}
        for api_version, kind in sorted({(o.api_version, o.kind) for o in objects} | set(PRUNE_KINDS)):
            for live in api.owned(api_version, kind, self.labels):
                meta = live["metadata"]
                owned[key_of(kind, meta.get("namespace"), meta["name"])] = live
        prune_steps, verdict = plan_prune(self.target, owned, {o.key for o in objects} | invalid, bool(problems),
                                          len(problems), noun="objects", protected_field="protected")
        steps += [KubeStep(s.app, s.kind, s.reason, live=owned[s.app]) for s in prune_steps
                  if only is None or s.app == only]
        return Plan(steps, bool(problems), verdict)

    def _plan_object(self, api: Api, obj: KubeObject, suspended: set[str]) -> KubeStep:
        if obj.key in suspended:
            return KubeStep(obj.key, "suspended", "suspended at runtime (driftless resume to lift)", obj=obj)
        try:
            live = api.get(obj.api_version, obj.kind, obj.namespace, obj.name)
            if live is None:
                return KubeStep(obj.key, "create", "not found in the cluster", obj=obj)
            owner = self._foreign_owner(live)
            if owner:
                return KubeStep(obj.key, "failed", f"{owner}; refusing to take it over", obj=obj, live=live)
            body = self.body(obj)
            try:
                dry = api.apply(body, force=self.target.force, dry_run=True)
                conflict = ""
            except KubeError as exc:
                if exc.code != 409:
                    raise
                dry, conflict = api.apply(body, force=True, dry_run=True), exc.message
        except KubeError as exc:
            return KubeStep(obj.key, "failed", f"refused by the API server: {exc.message}", obj=obj)
        shape = strip_server_fields(body)
        changes = diff(_project(strip_server_fields(dry), shape), _project(strip_server_fields(live), shape))
        state = health(live)
        if conflict:
            return KubeStep(obj.key, "failed", f"conflict: {conflict}; another field manager owns these fields "
                                               "(set force: true on the Target to take them over)",
                            changes, obj=obj, live=live, health=state)
        if changes:
            return KubeStep(obj.key, "update", "drifted: " + ", ".join(c.path for c in changes), changes,
                            obj=obj, live=live, health=state)
        return KubeStep(obj.key, "unchanged", "in sync", obj=obj, live=live, health=state)

    def _foreign_owner(self, live: dict[str, Any]) -> str:
        labels = (live.get("metadata") or {}).get("labels") or {}
        for label, mine in ((LABEL_MANAGED_BY, self.settings.instance), (LABEL_TARGET, self.target.name)):
            if labels.get(label) not in (None, mine):
                return f"labelled {label}={labels[label]}, not {mine}"
        return ""

    def reconcile(self, revision: str, objects: list[KubeObject], problems: list[Problem], *, dry_run: bool = False,
                  only: str | None = None, suspended: Iterable[str] = (), progress: Progress | None = None) -> PassResult:
        """Plan and apply: Namespaces and CRDs first, then everything else, deletions of Namespaces and CRDs
        last; with `dry_run` only reads and dry-run applies are sent. Flux is nudged once per new revision."""
        started = time.monotonic()
        result = PassResult(target=self.target.name, revision=revision, dry_run=dry_run,
                            started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        api = Api(self._connect(), objects)
        plan = self.plan(objects, problems, api=api, only=only, suspended=suspended)
        result.degraded, result.prune = plan.degraded, plan.prune
        result.problems = [p.to_dict() for p in problems]
        total = len(plan.steps)

        def record(outcome: Outcome) -> None:
            result.outcomes.append(outcome)
            if progress:
                progress(len(result.outcomes), total, outcome)

        writes = [s for s in plan.steps if s.writes]
        for step in plan.steps:
            if not step.writes:
                record(self._verdict(step, revision))
        phases = ([s for s in writes if s.first and s.kind != "delete"],
                  [s for s in writes if not s.first],
                  [s for s in writes if s.first and s.kind == "delete"])
        run = (lambda s: self._dry(s, revision)) if dry_run else (lambda s: self._write(api, s, revision))
        with ThreadPoolExecutor(max_workers=self.settings.concurrency, thread_name_prefix="aks-apply") as pool:
            for phase in phases:
                for outcome in pool.map(run, phase):
                    record(outcome)
        if self.target.flux_assist and not dry_run and only is None and revision != self._nudged:
            nudges = request_flux_reconcile(api, self.target.flux_assist, revision)
            for outcome in nudges:
                record(outcome)
            if all(o.action != "failed" for o in nudges):
                self._nudged = revision
        result.duration_ms = int((time.monotonic() - started) * 1000)
        return result

    @staticmethod
    def _verdict(step: Step, revision: str) -> Outcome:
        return Outcome(step.app, step.kind, step.reason, [c.to_dict() for c in step.changes], revision,
                       healthy=step.health.healthy if step.health else None,
                       health_reason=step.health.reason if step.health else "")

    @staticmethod
    def _dry(step: Step, revision: str) -> Outcome:
        return Outcome(step.app, _VERDICTS[step.kind], f"dry run, not applied: {step.reason}",
                       [c.to_dict() for c in step.changes], revision)

    def _write(self, api: Api, step: KubeStep, revision: str) -> Outcome:
        started = time.monotonic()
        changes = [c.to_dict() for c in step.changes]
        try:
            if step.kind == "delete":
                meta = step.live["metadata"]
                api.delete(step.live["apiVersion"], step.live["kind"], meta.get("namespace"), meta["name"])
                outcome = Outcome(step.app, "deleted", step.reason, changes, revision)
            else:
                live = api.apply(self.body(step.obj), force=self.target.force, dry_run=False)
                state = health(live)
                outcome = Outcome(step.app, _VERDICTS[step.kind], step.reason, changes, revision,
                                  healthy=state.healthy, health_reason=state.reason)
        except KubeError as exc:
            hint = "; set force: true on the Target to take these fields over" if exc.code == 409 else ""
            outcome = Outcome(step.app, "failed", f"{step.kind} failed: {exc.message}{hint}"[:1000], changes, revision)
        except Exception as exc:  # one object's surprise must not stop the pass
            outcome = Outcome(step.app, "failed", f"{step.kind} failed: {type(exc).__name__}: {exc}"[:500], changes,
                              revision)
        outcome.duration_ms = int((time.monotonic() - started) * 1000)
        return outcome


def request_flux_reconcile(api: Api, refs: Iterable[FluxRef], revision: str | None = None) -> list[Outcome]:
    """Ask Flux to reconcile now, as its webhook receiver does: a merge patch setting
    `reconcile.fluxcd.io/requestedAt` (RFC 3339, now) on each GitRepository or Kustomization."""
    now = datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
    outcomes = []
    for ref in refs:
        api_version, _ = FLUX_TYPES[ref.kind]
        key = key_of(ref.kind, ref.namespace, ref.name)
        try:
            api.merge_patch(api_version, ref.kind, ref.namespace, ref.name,
                            {"metadata": {"annotations": {FLUX_REQUESTED_AT: now}}})
            outcomes.append(Outcome(key, "updated", f"Flux reconcile requested ({FLUX_REQUESTED_AT}={now})",
                                    revision=revision))
        except KubeError as exc:
            outcomes.append(Outcome(key, "failed", f"Flux reconcile request failed: {exc.message}", revision=revision))
    return outcomes
