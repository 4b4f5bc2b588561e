"""One reconcile pass: Git at the branch head -> validated Apps -> plan -> bounded-concurrency apply.

The pass is idempotent and safe to run again at any time. Reading the source or listing
the live apps failing raises (the caller retries the whole pass); anything that goes wrong
with one app becomes that app's `failed` outcome and never stops the others.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Callable, Iterable, Mapping

from shared import container_app, telemetry
from shared.aca import ApplyFailed, ContainerApps
from shared.manifests import App, FileCache, Problem, Target, load_apps, load_targets
from shared.outcome import Outcome, PassResult
from shared.plan import Plan, Step, make_plan
from shared.settings import Settings
from shared.source import GitSource, SourceError

if TYPE_CHECKING:
    from shared.aks import AksTarget
    from shared.github_app import InstallationToken
    from shared.secrets import Secrets

Progress = Callable[[int, int, Outcome], None]

_VERDICTS = {"create": "created", "update": "updated", "reapply": "updated", "delete": "deleted"}
_PARSE_CACHE_SIZE = 32


class Reconciler:
    """Reconciles the Targets of one repository. Holds the Git source, parse cache and ARM clients."""

    def __init__(self, settings: Settings, *, source: GitSource | None = None):
        self.settings = settings
        self.source = source or GitSource(str(settings.repo_url), settings.branch)
        self._parsed: OrderedDict[tuple[str, ...], tuple[list, list[Problem]]] = OrderedDict()
        self.files = FileCache()
        self._clients: dict[str, ContainerApps] = {}
        self._clusters: dict[str, AksTarget] = {}
        self._lock = threading.Lock()

    def targets(self, revision: str) -> tuple[list[Target], list[Problem]]:
        """Targets declared under DRIFTLESS_TARGETS_PATH at `revision`, else the default Target from settings."""
        files = self.source.read(self.settings.targets_path, revision)
        if not files:
            return [self.settings.default_target()], []
        return load_targets(files, default_subscription=self.settings.subscription_id)

    def desired(self, target: Target, revision: str) -> tuple[list, list[Problem]]:
        """Validated Apps (Kubernetes objects for an aks Target) under the Target's path; parsed once per
        revision, path and kind of Target (for apps, only the files whose content is new are parsed)."""
        key = (revision, target.path, target.type, target.namespace)
        with self._lock:
            if key in self._parsed:
                self._parsed.move_to_end(key)
                return self._parsed[key]
        files = self.source.read(target.path, revision)
        if files is None and not target.allow_empty:
            parsed: tuple[list[App], list[Problem]] = ([], [Problem(
                target.path, f"path '{target.path}' does not exist at {revision[:12]}; treated as unreadable, "
                             "so nothing is pruned (set allowEmpty: true on the Target to allow an empty path)")])
        elif target.type == "aks":
            from shared.kube_manifests import load_objects

            parsed = load_objects(files or {}, namespace=target.namespace)
        else:
            parsed = load_apps(files or {}, self.files)
        with self._lock:
            self._parsed[key] = parsed
            while len(self._parsed) > _PARSE_CACHE_SIZE:
                self._parsed.popitem(last=False)
        return parsed

    def apps_client(self, subscription_id: str) -> ContainerApps:
        with self._lock:
            if subscription_id not in self._clients:
                self._clients[subscription_id] = ContainerApps(self.settings, subscription_id)
            return self._clients[subscription_id]

    def cluster(self, target: Target) -> AksTarget:
        """The engine of an aks Target (kept while the Target's definition is unchanged)."""
        from shared.aks import AksTarget

        with self._lock:
            engine = self._clusters.get(target.name)
            if engine is None or engine.target != target:
                engine = self._clusters[target.name] = AksTarget(self.settings, target)
            return engine

    def plan(self, target: Target, revision: str, *, only: str | None = None, suspended: Iterable[str] = (),
             backoff: Mapping[str, str] | None = None) -> Plan:
        """Plan one Target at `revision` against the live apps (reads only)."""
        apps, problems = self.desired(target, revision)
        if target.type == "aks":
            return self.cluster(target).plan(apps, problems, only=only, suspended=suspended)
        live = self.apps_client(target.subscription_id).list_apps(target.resource_group)
        return make_plan(target=target, instance=self.settings.instance, apps=apps, problems=problems,
                         live=live, suspended=suspended, only=only, backoff=backoff)

    def reconcile(self, target: Target, revision: str, *, dry_run: bool = False, only: str | None = None,
                  suspended: Iterable[str] = (), backoff: Mapping[str, str] | None = None,
                  progress: Progress | None = None) -> PassResult:
        """Plan and apply one Target; with `dry_run` nothing is written."""
        if target.type == "aks":
            objects, problems = self.desired(target, revision)
            return self.cluster(target).reconcile(revision, objects, problems, dry_run=dry_run, only=only,
                                                  suspended=suspended, progress=progress)
        started = time.monotonic()
        result = PassResult(target=target.name, revision=revision, dry_run=dry_run,
                            started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        _, problems = self.desired(target, revision)
        plan = self.plan(target, revision, only=only, suspended=suspended, backoff=backoff)
        result.degraded, result.prune = plan.degraded, plan.prune
        result.problems = [p.to_dict() for p in problems]
        run = _Apply(self, target, revision, dry_run)
        total, done = len(plan.steps), 0
        with ThreadPoolExecutor(max_workers=self.settings.concurrency, thread_name_prefix="apply") as pool:
            for outcome in pool.map(run, plan.steps):
                done += 1
                result.outcomes.append(outcome)
                if progress:
                    progress(done, total, outcome)
        result.duration_ms = int((time.monotonic() - started) * 1000)
        return result


class _Apply:
    """Carries out one Step and turns it into an Outcome."""

    def __init__(self, reconciler: Reconciler, target: Target, revision: str, dry_run: bool):
        self.reconciler, self.target, self.revision, self.dry_run = reconciler, target, revision, dry_run
        self.aca = reconciler.apps_client(target.subscription_id)
        self._location: str | None = None
        self._lock = threading.Lock()

    def __call__(self, step: Step) -> Outcome:
        started = time.monotonic()
        with telemetry.span("apply app", app=step.app, target=self.target.name, revision=self.revision,
                            planned=step.kind) as span:
            outcome = self._run(step)
            if span is not None:
                span.set_attributes({"action": outcome.action, "healthy": str(outcome.healthy),
                                     "reason": outcome.reason[:500]})
        outcome.duration_ms = int((time.monotonic() - started) * 1000)
        return outcome

    def _run(self, step: Step) -> Outcome:
        diff = [c.to_dict() for c in step.changes]
        observed = step.health.healthy if step.health else None
        observed_reason = step.health.reason if step.health else ""
        if not step.writes:
            return Outcome(step.app, step.kind, step.reason, diff, self.revision, healthy=observed,
                           health_reason=observed_reason)
        if self.dry_run:
            return Outcome(step.app, _VERDICTS[step.kind], f"dry run, not applied: {step.reason}", diff,
                           self.revision, healthy=observed, health_reason=observed_reason)
        rg = self.target.resource_group
        try:
            if step.kind == "delete":
                self.aca.delete(rg, step.app)
                return Outcome(step.app, "deleted", step.reason, diff, self.revision)
            tags = container_app.ownership_tags(step.desired, self.target, self.reconciler.settings.instance,
                                                self.revision)
            if step.kind == "create":
                body = container_app.create_body(step.desired, location=self.location(),
                                                 environment_id=self.target.environment_id, tags=tags)
                live = self.aca.create(rg, step.app, body)
            else:
                suffix = f"r{int(time.time() * 1000) % 10**10}" if step.kind == "reapply" else None
                live = self.aca.update(rg, step.app, container_app.update_patch(
                    step.desired, step.live, tags=tags, revision_suffix=suffix))
        except ApplyFailed as exc:
            return Outcome(step.app, "failed", f"{step.kind} failed: {exc}", diff, self.revision)
        except Exception as exc:  # one app's surprise must not stop the pass
            return Outcome(step.app, "failed", f"{step.kind} failed: {type(exc).__name__}: {exc}"[:500], diff,
                           self.revision)
        health = container_app.health(live)
        reason = health.reason
        if not health.healthy and health.revision:
            reason = self.aca.revision_problem(rg, step.app, health.revision)
        verb = "re-applied" if step.kind == "reapply" else step.reason
        return Outcome(step.app, _VERDICTS[step.kind], verb if step.kind != "reapply" else f"{verb} ({step.reason})",
                       diff, self.revision, healthy=health.healthy, health_reason=reason)

    def location(self) -> str:
        with self._lock:
            if self._location is None:
                self._location = self.aca.environment_location(self.target.environment_id)
            return self._location


def source_for(settings: Settings, secrets: "Secrets",
               password: Callable[[], str | None] | None = None) -> GitSource:
    """The Git source, authenticated with `password` (default: `github_token(settings, secrets)`)."""
    settings.require("DRIFTLESS_REPO_URL")
    return GitSource(str(settings.repo_url), settings.branch, username=settings.git_username,
                     password=password or github_token(settings, secrets))


def github_token(settings: Settings, secrets: "Secrets") -> Callable[[], str | None]:
    """A GitHub App installation token when an app is configured, else the Git token secret
    (PAT or Azure DevOps token), else None. Used for Git over HTTPS and for GitHub's REST API."""
    if settings.github_app_id and settings.github_app_installation_id:
        def app_token() -> str | None:
            key = secrets.github_app_private_key()
            if not key:
                raise SourceError(f"GitHub App {settings.github_app_id} is configured but the private key secret "
                                  f"{settings.github_app_key_name} is empty")
            return _installation(settings, key)()

        return app_token
    return secrets.git_token


_installations: dict[tuple[str, str, str], "InstallationToken"] = {}


def _installation(settings: Settings, key: str):
    from shared.github_app import InstallationToken

    ident = (str(settings.github_app_id), str(settings.github_app_installation_id), settings.github_api_url)
    if ident not in _installations:
        _installations[ident] = InstallationToken(ident[0], key, ident[1], ident[2])
    return _installations[ident]
