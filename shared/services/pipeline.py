"""The event pipeline: reconcile jobs from the timer, pushes, `POST /api/reconcile` and resumes, and the
queue worker that runs them one Target at a time.

Every accepted event ends applied, superseded by a newer pass, or visibly parked: a malformed
message goes to `reconcile-jobs-poison` at once, a transient failure raises so the Functions host
retries it (and poisons it after `maxDequeueCount`). Each pass is reported to CI as a phase event
of Driftless's own (when a `default` feedback config exists).
"""
from __future__ import annotations

import logging
import re
import threading
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from shared.adapters import telemetry
from shared.core.jobs import BadJob, Job, new_job, now_iso, parse_job
from shared.core.manifests import APP_NAME, Target
from shared.core.phases import pass_finished, pass_started
from shared.core.queues import PUSH_QUEUE, RECONCILE_QUEUE
from shared.core.reply import Reply, shown
from shared.core.webhook import MAX_BODY, Push, load_json, touched
from shared.services.context import Context

if TYPE_CHECKING:
    from shared.adapters.status_store import Store

log = logging.getLogger("driftless.pipeline")

URGENT = ("push", "manual")
"""Reasons whose jobs go on the push queue (`reconcile-pushes`), not behind the timer's."""


class Pipeline:
    """Producers and the worker of the `reconcile-jobs` queue."""

    lease_retry_seconds = 10
    """A job whose Target is busy comes back after this long (a new message, never a sleep); tests shorten it."""
    lease_seconds = 60.0
    """How long a Target's lease lasts unless renewed: a worker that dies mid-pass frees its Target within this."""
    heartbeat_seconds = 20.0
    """How often a running pass renews its lease (three times per lease: two renewals may fail in a row)."""

    def __init__(self, context: Context):
        self.context = context
        self.settings, self.store = context.settings, context.store

    def enqueue(self, job: Job, *, delay: int = 0, queue: str | None = None) -> None:
        """Put `job` on `queue`; by default pushes and manual requests on their own queue (never behind the
        timer's backlog), the timer's jobs on `reconcile-jobs`."""
        queue = queue or (PUSH_QUEUE if job.reason in URGENT else RECONCILE_QUEUE)
        self.context.send(queue, job.to_json(), delay=delay)
        log.info("enqueued job %s for target %s (%s)", job.id, job.target, job.reason,
                 extra={"job": job.id, "target": job.target, "reason": job.reason})

    # --- producers -----------------------------------------------------------------------
    def schedule(self) -> list[Job]:
        """Timer: one job per Target declared at the branch head."""
        _, targets = self.context.reconciler.targets_at_head()
        jobs = [new_job(t.name, "timer") for t in targets]
        for job in jobs:
            self.enqueue(job)
        return jobs

    def push(self, push: Push, delivery: str | None) -> Reply:
        """A verified push to the manifests branch: one job per Target whose path it touches, once per delivery."""
        def enqueue() -> Reply:
            _, targets = self.context.reconciler.targets_at_head()
            chosen = touched(push, targets, targets_path=self.settings.targets_path)
            jobs = [new_job(t.name, "push", revision=push.after, delivery=delivery) for t in chosen]
            for job in jobs:
                self.enqueue(job)
            if not jobs:
                return Reply(200, {"ignored": "the push touches no Target path", "revision": push.after})
            return Reply(202, {"revision": push.after, "jobs": [{"target": j.target, "id": j.id} for j in jobs]})

        return self.context.once_per_delivery(delivery, enqueue)

    def request_reconcile(self, body: bytes) -> Reply:
        """`POST /api/reconcile` with {"target": ...} and/or {"app": ...}; no body means every Target."""
        if len(body) > MAX_BODY:
            return Reply(413, {"error": f"body larger than {MAX_BODY} bytes"})
        try:
            request = load_json(body) if body.strip() else {}
        except ValueError as exc:
            return Reply(400, {"error": str(exc)})
        unknown = set(request) - {"target", "app"}
        if unknown or any(not isinstance(v, str) for v in request.values()):
            return Reply(400, {"error": "body may hold only 'target' and 'app', both strings"})
        revision, targets = self.context.reconciler.targets_at_head()
        if request.get("target"):
            targets = [t for t in targets if t.name == request["target"]]
            if not targets:
                return Reply(404, {"error": f"no Target named {shown(request['target'])}"})
        app = request.get("app")
        if app:
            targets = self._declaring(app, revision, targets)
            if not targets:
                return Reply(404, {"error": f"no Target declares an app named {shown(app)} at {revision[:12]}"})
        jobs = [new_job(t.name, "manual", revision=revision, app=app) for t in targets]
        for job in jobs:
            self.enqueue(job)
        return Reply(202, {"jobs": [{"id": j.id, "target": j.target, "app": j.app} for j in jobs]})

    def status(self, target: str | None = None) -> dict[str, Any]:
        """Last pass per Target and last outcome per app."""
        return self.store.status(target)

    def suspend(self, app: str) -> Reply:
        """Suspend a Container App (by name) or a Kubernetes object (`Kind/namespace/name`) at runtime; 404 when
        no Target declares it at the branch head (a suspension would change nothing)."""
        if not _suspendable(app):
            return Reply(400, {"error": f"{shown(app)} is neither a Container App name nor Kind/namespace/name"})
        revision, targets = self.context.reconciler.targets_at_head()
        if not self._declaring(app, revision, targets):
            return Reply(404, {"error": f"no Target declares an app named {shown(app)} at {revision[:12]}"})
        self.store.suspend(app)
        return Reply(200, {"app": app, "suspended": True})

    def resume(self, app: str) -> Reply:
        """Lift a runtime suspension and reconcile the Targets that declare the app at the branch head. An app no
        Target declares: its leftover suspension is lifted (200, no job), and without one the answer is 404."""
        if not _suspendable(app):
            return Reply(400, {"error": f"{shown(app)} is neither a Container App name nor Kind/namespace/name"})
        revision, targets = self.context.reconciler.targets_at_head()
        declaring = self._declaring(app, revision, targets)
        was = self.store.resume(app)
        if not declaring and not was:
            return Reply(404, {"error": f"no Target declares an app named {shown(app)} at {revision[:12]}"})
        jobs = [new_job(t.name, "manual", revision=revision, app=app) for t in declaring]
        for job in jobs:
            self.enqueue(job)
        return Reply(202 if jobs else 200, {"app": app, "suspended": False, "wasSuspended": was,
                                            "jobs": [{"id": j.id, "target": j.target} for j in jobs]})

    def _declaring(self, app: str, revision: str, targets: list[Target]) -> list[Target]:
        """The `targets` whose valid manifests at `revision` declare `app` (an App name or Kind/namespace/name)."""
        reconciler = self.context.reconciler
        return [t for t in targets if any(app in (a.name, getattr(a, "key", None))
                                          for a in reconciler.desired(t, revision)[0])]

    # --- the worker ----------------------------------------------------------------------
    def run_job(self, body: bytes, *, dequeue_count: int = 1, queue: str = RECONCILE_QUEUE) -> str:
        """Run one job from `queue`. Returns what happened; raises on transient failure so the host retries; a job
        whose Target is busy comes back on the same queue."""
        try:
            job = parse_job(body)
        except BadJob as exc:
            return self.context.park(queue, body, str(exc))
        context = {"job": job.id, "target": job.target, "reason": job.reason, "delivery": job.delivery,
                   "dequeue_count": dequeue_count}
        if dequeue_count > 1:
            telemetry.queue_retry(queue)
        with telemetry.span("reconcile job", **context) as span:
            outcome = self._run_job(job, context, queue)
            if span is not None:
                span.set_attribute("outcome", outcome)
            return outcome

    def _run_job(self, job: Job, context: dict[str, Any], queue: str) -> str:
        revision, targets = self.context.reconciler.targets_at_head()
        target = next((t for t in targets if t.name == job.target), None)
        if target is None:
            log.warning("job %s dropped: Target %s is not declared at %s", job.id, job.target, revision[:12],
                        extra=context)
            return "unknown-target"
        last = self.store.last_completed_start(target.name)
        if last and job.requested_at < last:
            log.info("job %s superseded: a pass that started at %s already read a newer head", job.id, last,
                     extra=context)
            return "superseded"
        ttl = timedelta(seconds=self.lease_seconds)
        if not self.store.acquire_lease(target.name, job.id, ttl=ttl):
            self.enqueue(job.retried(), delay=self.lease_retry_seconds, queue=queue)
            log.info("job %s deferred: Target %s is being reconciled", job.id, target.name, extra=context)
            return "deferred"
        if job.reason != "timer":
            self.context.report(pass_started(target.name, revision))
        try:
            with Heartbeat(self.store, target.name, job.id, ttl=ttl, every=self.heartbeat_seconds, context=context):
                started = now_iso()
                result = self.context.reconciler.reconcile(target, revision, only=job.app,
                                                           suspended=self.store.suspended(),
                                                           backoff=self.store.backoff(target.name))
                self.store.record_pass(result, started_at=started, complete=job.app is None)
        finally:
            self.store.release_lease(target.name, job.id)
        self.context.report(pass_finished(result))
        telemetry.record_pass(result, reason=job.reason, requested_at=job.requested_at)
        summary = ", ".join(f"{n} {a}" for a, n in result.summary().items() if n)
        level = logging.INFO if result.ok else logging.WARNING
        log.log(level, "target %s at %s: %s%s", target.name, revision[:12], summary or "no apps",
                " (degraded)" if result.degraded else "", extra={**context, "revision": revision, "ok": result.ok})
        return "reconciled"

class Heartbeat:
    """While a pass runs (`with Heartbeat(...)`), a daemon thread renews the Target's lease every `every` seconds
    for `ttl` more. A renewal that fails (storage unreachable) is logged and tried again at the next beat; one that
    finds the lease held by another worker is logged and the thread stops renewing (`lost`): the pass goes on, its
    writes are idempotent. If the process dies, renewals stop and the lease expires `ttl` after the last one."""

    def __init__(self, store: Store, target: str, holder: str, *, ttl: timedelta, every: float,
                 context: dict[str, Any] | None = None):
        self.store, self.target, self.holder, self.ttl, self.every = store, target, holder, ttl, every
        self.context = context or {}
        self.renewals = 0
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name=f"lease-{target}")

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            try:
                renewed = self.store.renew_lease(self.target, self.holder, ttl=self.ttl)
            except Exception as exc:  # storage unreachable: the lease may lapse; keep trying while the pass runs
                log.warning("could not renew the lease of Target %s: %s", self.target, type(exc).__name__,
                            extra=self.context)
                continue
            if not renewed:
                self.lost = True
                log.warning("the lease of Target %s is held by another worker now; this pass goes on without "
                            "renewing it", self.target, extra=self.context)
                return
            self.renewals += 1


_OBJECT_KEY = re.compile(r"^[A-Z][A-Za-z0-9]*/([a-z0-9][a-z0-9.-]*/)?[a-z0-9][a-z0-9.-]*$")


def _suspendable(name: str) -> bool:
    return bool(APP_NAME.match(name) or _OBJECT_KEY.match(name))
