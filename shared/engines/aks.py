"""The AKS engine: plain Kubernetes objects from Git, applied with server-side apply; no agent in the cluster.

One pass: validate (shared.core.kube_manifests) -> per object a GET and a `dryRun=All` apply, compared on the
fields the manifest sets -> writes with field manager `driftless` (Namespaces and CRDs first, bounded
concurrency) -> prune by ownership labels under the same rules as ACA (`shared.core.plan`) -> health.
Talking to the cluster is `shared.adapters.kubernetes`.
"""
from __future__ import annotations

import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from shared.adapters.kubernetes import FLUX_TYPES, Api, KubeError, connect
from shared.config.settings import Settings
from shared.core.container_app import Health
from shared.core.diff import diff
from shared.core.image_policy import WORKLOAD_CONTAINERS, Followed, followed
from shared.core.kube_manifests import FIRST_KINDS, KubeObject, key_of, load_objects
from shared.core.manifests import FileCache, FluxRef, Problem, Target, names_in_problems
from shared.core.outcome import Outcome, PassResult
from shared.core.plan import Plan, Step, foreign_owner, invalid_steps, plan_prune
from shared.engines.engine import (
    VERDICTS,
    Progress,
    dry_run_outcome,
    failed,
    finish,
    new_result,
    verdict,
)

if TYPE_CHECKING:
    from lightkube import Client

LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_TARGET = "driftless.io/target"
ANNOTATION_SPEC_HASH = "driftless.io/spec-hash"
FLUX_REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
SERVER_METADATA = ("managedFields", "resourceVersion", "uid", "creationTimestamp", "generation", "selfLink")
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
PRUNE_KINDS = (("v1", "ConfigMap"), ("v1", "PersistentVolumeClaim"), ("v1", "Secret"), ("v1", "Service"),
               ("v1", "ServiceAccount"), ("apps/v1", "DaemonSet"), ("apps/v1", "Deployment"),
               ("apps/v1", "StatefulSet"), ("batch/v1", "CronJob"), ("batch/v1", "Job"),
               ("networking.k8s.io/v1", "Ingress"))
"""Kinds prune always looks at (with the label selector), besides every kind in Git: so removing the last
object of a common kind from Git still finds it. Only kinds the role Driftless's Bicep grants (Azure Kubernetes
Service RBAC Writer) may list *and* delete: not Namespaces (read-only for it), Roles or RoleBindings (no access).
Any other kind, custom kinds included, is looked at only while Git holds one of it; if the cluster refuses to
list it (403), that kind gets one failed outcome naming the missing permission and the rest of the pass goes on."""


@dataclass
class KubeStep(Step):
    """A Step for one Kubernetes object; `obj` is what Git wants (None for an orphan)."""

    obj: KubeObject | None = None

    @property
    def first(self) -> bool:
        kind = self.obj.kind if self.obj else (self.live or {}).get("kind")
        return kind in FIRST_KINDS


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


class AksEngine:
    """Plans and reconciles one Target of kind `aks`; connects once per pass and remembers the revision Flux
    was last nudged at."""

    def __init__(self, settings: Settings, target: Target, *, files: FileCache | None = None,
                 connect_to: Callable[[], Client] | None = None):
        self.settings, self.target = settings, target
        self._connect = connect_to or (lambda: connect(settings, target))
        self._nudged: str | None = None

    @property
    def labels(self) -> dict[str, str]:
        return {LABEL_MANAGED_BY: self.settings.instance, LABEL_TARGET: self.target.name}

    def load(self, files: Mapping[str, bytes]) -> tuple[list[KubeObject], list[Problem]]:
        return load_objects(files, namespace=self.target.namespace)

    def body(self, obj: KubeObject) -> dict[str, Any]:
        """What is applied: the manifest (without server fields) plus the ownership labels and a spec hash,
        so a field removed from Git is seen as a change."""
        body = strip_server_fields(obj.body)
        digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:16]
        meta = body["metadata"]
        meta["labels"] = {**(meta.get("labels") or {}), **self.labels}
        meta["annotations"] = {**(meta.get("annotations") or {}), ANNOTATION_SPEC_HASH: digest}
        return body

    def plan(self, revision: str, desired: list[KubeObject], problems: list[Problem], *, only: str | None = None,
             suspended: Iterable[str] = (), backoff: Mapping[str, str] | None = None, api: Api | None = None) -> Plan:
        """GET and dry-run apply every object (reads only), then the prune verdict. `backoff` is not used:
        a Kubernetes controller re-rolls on its own."""
        api = api or Api(self._connect(), desired)
        suspended = set(suspended)
        chosen = [o for o in desired if only is None or o.key == only]
        with ThreadPoolExecutor(max_workers=self.settings.concurrency, thread_name_prefix="aks-plan") as pool:
            steps: list[Step] = list(pool.map(lambda o: self._plan_object(api, o, suspended), chosen))
        steps += invalid_steps(problems, {o.key for o in desired}, make=KubeStep)
        owned: dict[str, dict[str, Any]] = {}
        for api_version, kind in sorted({(o.api_version, o.kind) for o in desired} | set(PRUNE_KINDS)):
            try:
                found = api.owned(api_version, kind, self.labels)
            except KubeError as exc:
                if exc.code != 403:
                    raise
                if only is None:
                    steps.append(KubeStep(f"{kind}/*", "failed", f"prune cannot list {kind} objects, so none of "
                                          f"them is pruned or reported as an orphan: {refusal(exc)}"))
                continue
            for live in found:
                meta = live["metadata"]
                owned[key_of(kind, meta.get("namespace"), meta["name"])] = live
        in_git = {o.key for o in desired} | names_in_problems(problems)
        prune_steps, prune = plan_prune(self.target, owned, in_git, bool(problems), len(problems), noun="objects",
                                        protected_field="protected")
        steps += [KubeStep(s.app, s.kind, s.reason, live=owned[s.app], verdict=s.verdict) for s in prune_steps
                  if only is None or s.app == only]
        return Plan(steps, bool(problems), prune)

    def _plan_object(self, api: Api, obj: KubeObject, suspended: set[str]) -> KubeStep:
        if obj.key in suspended:
            return KubeStep(obj.key, "suspended", "suspended at runtime (driftless resume to lift)", obj=obj)
        try:
            live = api.get(obj.api_version, obj.kind, obj.namespace, obj.name)
            if live is None:
                return KubeStep(obj.key, "create", "not found in the cluster", obj=obj)
            owner = foreign_owner((live.get("metadata") or {}).get("labels") or {},
                                  ((LABEL_MANAGED_BY, self.settings.instance), (LABEL_TARGET, self.target.name)))
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
            return KubeStep(obj.key, "failed", f"refused by the API server: {refusal(exc)}", obj=obj)
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

    def reconcile(self, revision: str, desired: list[KubeObject], problems: list[Problem], *, dry_run: bool = False,
                  only: str | None = None, suspended: Iterable[str] = (), backoff: Mapping[str, str] | None = None,
                  progress: Progress | None = None) -> PassResult:
        """Plan and apply: Namespaces and CRDs first, then everything else, deletions of Namespaces and CRDs
        last; with `dry_run` only reads and dry-run applies are sent. Flux is nudged once per new revision."""
        started = time.monotonic()
        result = new_result(self.target, revision, dry_run)
        api = Api(self._connect(), desired)
        plan = self.plan(revision, desired, problems, api=api, only=only, suspended=suspended)
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
                record(verdict(step, revision))
        phases = ([s for s in writes if s.first and s.kind != "delete"],
                  [s for s in writes if not s.first],
                  [s for s in writes if s.first and s.kind == "delete"])
        run = (lambda s: dry_run_outcome(s, revision)) if dry_run else (lambda s: self._write(api, s, revision))
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
        return finish(result, started)

    def followed(self, desired: list[KubeObject]) -> list[Followed]:
        found = []
        for obj in desired:
            path = WORKLOAD_CONTAINERS.get(obj.kind)
            if path is None:
                continue
            item = followed(self.target.name, obj.file, obj.key, obj.kind, obj.name, obj.namespace,
                            (obj.body.get("metadata") or {}).get("annotations"), obj.body, path)
            if item is not None:
                found.append(item)
        return found

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
                outcome = Outcome(step.app, VERDICTS[step.kind], step.reason, changes, revision,
                                  healthy=state.healthy, health_reason=state.reason)
        except KubeError as exc:
            hint = "; set force: true on the Target to take these fields over" if exc.code == 409 else ""
            outcome = Outcome(step.app, "failed", f"{step.kind} failed: {refusal(exc)}{hint}"[:1000], changes,
                              revision)
        except Exception as exc:  # one object's surprise must not stop the pass
            outcome = failed(step, revision, exc)
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
            outcomes.append(Outcome(key, "failed", f"Flux reconcile request failed: {refusal(exc)}",
                                    revision=revision))
    return outcomes


def refusal(exc: KubeError) -> str:
    """The API server's message; for a 403, which Azure RBAC data action Driftless's identity lacks and where the
    docs say how to grant more."""
    if exc.code != 403:
        return exc.message
    missing = f"the Azure RBAC data action {exc.permission}" if exc.permission else "a permission"
    return (f"{exc.message} (Driftless's identity lacks {missing} on this cluster; the role Driftless's Bicep "
            "grants, Azure Kubernetes Service RBAC Writer, manages no Namespaces, Roles, RoleBindings, CRDs or custom "
            "resources: to manage them, grant a custom role or RBAC Cluster Admin, see docs/aks.md)")
