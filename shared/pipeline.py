"""The event pipeline: what each function in function_app.py calls.

Timer, GitHub push webhook and `POST /api/reconcile` enqueue jobs; the queue worker runs
them one Target at a time. Every accepted event ends applied, superseded by a newer pass, or
visibly parked: a malformed message goes to `reconcile-jobs-poison` at once, a transient
failure raises so the Functions host retries it (and poisons it after `maxDequeueCount`).
"""
from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Mapping

from shared import storage, telemetry
from shared.jobs import BadJob, Job, new_job, now_iso, parse_job
from shared.manifests import APP_NAME
from shared.reconcile import Reconciler, github_token, source_for
from shared.settings import Settings
from shared.webhook import MAX_BODY, ignore_reason, load_json, parse_push, signature_ok, touched

if TYPE_CHECKING:
    from shared.callbacks import Callbacks
    from shared.image_update import ImageUpdates
    from shared.manifests import Target

log = logging.getLogger("driftless.pipeline")

LEASE_TTL = timedelta(minutes=10)
"""As long as host.json's functionTimeout: a crashed worker's lease frees itself by then."""
LEASE_RETRY_SECONDS = 10
"""A job whose Target is busy comes back after this long (a new message, never a sleep)."""


@dataclass
class Reply:
    """An HTTP answer: status and JSON body."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)


class Pipeline:
    """One per process; holds the reconciler (Git cache, ARM clients), secrets and store."""

    def __init__(self, settings: Settings, *, env: Mapping[str, str] | None = None):
        from shared.secrets import Secrets
        from shared.store import Store

        self.settings = settings
        self.secrets = Secrets(settings, env=env)
        self.store = Store(backoff_base=settings.reapply_backoff, env=env)
        self.env = env
        self._reconciler: Reconciler | None = None
        self._callbacks: "Callbacks | None" = None
        self._images: "ImageUpdates | None" = None
        self._lock = threading.Lock()
        self.github_token = github_token(settings, self.secrets)

    @property
    def callbacks(self) -> "Callbacks":
        """Flux / Argo CD phase events and Driftless's own commit statuses."""
        with self._lock:
            if self._callbacks is None:
                from shared.callbacks import Callbacks

                self._callbacks = Callbacks(self)
            return self._callbacks

    @property
    def images(self) -> "ImageUpdates":
        """Image update automation: app repository events and the `image-updates` queue."""
        with self._lock:
            if self._images is None:
                from shared.image_update import ImageUpdates

                self._images = ImageUpdates(self)
            return self._images

    @property
    def reconciler(self) -> Reconciler:
        with self._lock:
            if self._reconciler is None:
                self._reconciler = Reconciler(self.settings, source=source_for(self.settings, self.secrets,
                                                                               self.github_token))
            return self._reconciler

    def enqueue(self, job: Job, *, delay: int = 0) -> None:
        storage.queue(storage.RECONCILE_QUEUE, self.env).send_message(job.to_json(), visibility_timeout=delay or None)
        log.info("enqueued job %s for target %s (%s)", job.id, job.target, job.reason,
                 extra={"job": job.id, "target": job.target, "reason": job.reason})

    def targets_at_head(self) -> tuple[str, list[Target]]:
        """The branch head and the valid Targets declared there; invalid Target manifests are logged."""
        revision = self.reconciler.source.head()
        targets, problems = self.reconciler.targets(revision)
        for problem in problems:
            log.error("invalid Target manifest: %s", problem)
        return revision, targets

    # --- producers -----------------------------------------------------------------------
    def schedule(self) -> list[Job]:
        """Timer: one job per Target declared at the branch head."""
        _, targets = self.targets_at_head()
        jobs = [new_job(t.name, "timer") for t in targets]
        for job in jobs:
            self.enqueue(job)
        return jobs

    def github_webhook(self, headers: Mapping[str, str], body: bytes) -> Reply:
        """Verify, filter and enqueue a GitHub event. Never acts on an unsigned body."""
        from shared.secrets import SecretsUnavailable

        headers = {k.lower(): v for k, v in headers.items()}
        if len(body) > MAX_BODY:
            return Reply(413, {"error": f"body larger than {MAX_BODY} bytes"})
        try:
            secret = self.secrets.webhook_secret()
        except SecretsUnavailable as exc:
            log.error("webhook refused: %s", exc)
            return Reply(503, {"error": "the webhook secret cannot be read right now; GitHub may redeliver"})
        if not secret:
            log.error("webhook refused: no webhook secret is configured (Key Vault secret %s); "
                      "unsigned events are never accepted", self.settings.webhook_secret_name)
            return Reply(500, {"error": "webhook secret not configured"})
        if not signature_ok(secret, body, headers.get("x-hub-signature-256")):
            return Reply(401, {"error": "X-Hub-Signature-256 missing or wrong"})
        event, delivery = headers.get("x-github-event", ""), headers.get("x-github-delivery")
        try:
            payload = load_json(body)
        except ValueError as exc:
            return Reply(400, {"error": str(exc)})
        if event == "ping":
            return Reply(200, {"ok": "pong"})
        if self.images.handles(event, payload):
            return self.images.webhook(event, payload, delivery)
        if event != "push":
            return Reply(202, {"ignored": f"event '{event}' is not handled"})
        push = parse_push(payload)
        reason = ignore_reason(push, branch=self.settings.branch, repo_url=self.settings.repo_url or "")
        if reason:
            return Reply(202, {"ignored": reason})
        if delivery and not self.store.claim_delivery(delivery):
            return Reply(200, {"duplicate": delivery})
        try:
            _, targets = self.targets_at_head()
            chosen = touched(push, targets, targets_path=self.settings.targets_path)
            jobs = [new_job(t.name, "push", revision=push.after, delivery=delivery) for t in chosen]
            for job in jobs:
                self.enqueue(job)
        except Exception as exc:
            if delivery:
                self.store.release_delivery(delivery)
            log.error("push %s not enqueued: %s: %s", delivery, type(exc).__name__, exc)
            return Reply(503, {"error": "could not enqueue; GitHub may redeliver"})
        if not jobs:
            return Reply(200, {"ignored": "the push touches no Target path", "revision": push.after})
        return Reply(202, {"revision": push.after, "jobs": [{"target": j.target, "id": j.id} for j in jobs]})

    def request_reconcile(self, body: bytes) -> Reply:
        """`POST /api/reconcile` with {"target": ...} and/or {"app": ...}; no body means every Target."""
        try:
            request = load_json(body) if body.strip() else {}
        except ValueError as exc:
            return Reply(400, {"error": str(exc)})
        unknown = set(request) - {"target", "app"}
        if unknown or any(not isinstance(v, str) for v in request.values()):
            return Reply(400, {"error": "body may hold only 'target' and 'app', both strings"})
        revision, targets = self.targets_at_head()
        if request.get("target"):
            targets = [t for t in targets if t.name == request["target"]]
            if not targets:
                return Reply(404, {"error": f"no Target named {request['target']!r}"})
        app = request.get("app")
        if app:
            targets = [t for t in targets if any(app in (a.name, getattr(a, "key", None))
                                                 for a in self.reconciler.desired(t, revision)[0])]
            if not targets:
                return Reply(404, {"error": f"no Target declares an app named {app!r} at {revision[:12]}"})
        jobs = [new_job(t.name, "manual", revision=revision, app=app) for t in targets]
        for job in jobs:
            self.enqueue(job)
        return Reply(202, {"jobs": [{"id": j.id, "target": j.target, "app": j.app} for j in jobs]})

    def status(self, target: str | None = None) -> Reply:
        return Reply(200, {**self.store.status(target), "images": self.images.status(target)})

    def suspend(self, app: str) -> Reply:
        """Suspend a Container App (by name) or a Kubernetes object (`Kind/namespace/name`) at runtime."""
        if not _suspendable(app):
            return Reply(400, {"error": f"{app!r} is neither a Container App name nor Kind/namespace/name"})
        self.store.suspend(app)
        return Reply(200, {"app": app, "suspended": True})

    def resume(self, app: str) -> Reply:
        """Lift a runtime suspension and reconcile the app's Targets right away."""
        if not _suspendable(app):
            return Reply(400, {"error": f"{app!r} is neither a Container App name nor Kind/namespace/name"})
        was = self.store.resume(app)
        names = self.store.targets_of_app(app)
        if not names:
            names = [t.name for t in self.targets_at_head()[1]]
        jobs = [new_job(name, "manual", app=app) for name in names]
        for job in jobs:
            self.enqueue(job)
        return Reply(202 if jobs else 200, {"app": app, "suspended": False, "wasSuspended": was,
                                            "jobs": [{"id": j.id, "target": j.target} for j in jobs]})

    # --- the worker ----------------------------------------------------------------------
    def run_job(self, body: bytes, *, dequeue_count: int = 1) -> str:
        """Run one job. Returns what happened; raises on transient failure so the host retries."""
        try:
            job = parse_job(body)
        except BadJob as exc:
            log.error("parked a malformed reconcile job (%s); see queue %s%s", exc,
                      storage.RECONCILE_QUEUE, storage.POISON_SUFFIX)
            storage.queue(storage.RECONCILE_QUEUE + storage.POISON_SUFFIX, self.env).send_message(
                body.decode("utf-8", "replace"))
            return "parked"
        context = {"job": job.id, "target": job.target, "reason": job.reason, "delivery": job.delivery,
                   "dequeue_count": dequeue_count}
        if dequeue_count > 1:
            telemetry.queue_retry(storage.RECONCILE_QUEUE)
        with telemetry.span("reconcile job", **context) as span:
            outcome = self._run_job(job, context)
            if span is not None:
                span.set_attribute("outcome", outcome)
            return outcome

    def _run_job(self, job: Job, context: dict[str, Any]) -> str:
        revision, targets = self.targets_at_head()
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
        if not self.store.acquire_lease(target.name, job.id, ttl=LEASE_TTL):
            self.enqueue(job.retried(), delay=LEASE_RETRY_SECONDS)
            log.info("job %s deferred: Target %s is being reconciled", job.id, target.name, extra=context)
            return "deferred"
        if job.reason != "timer":
            self.callbacks.report_pass_started(target.name, revision)
        try:
            started = now_iso()
            result = self.reconciler.reconcile(target, revision, only=job.app, suspended=self.store.suspended(),
                                               backoff=self.store.backoff(target.name))
            self.store.record_pass(result, started_at=started, complete=job.app is None)
        finally:
            self.store.release_lease(target.name, job.id)
        self.callbacks.report_pass(result)
        telemetry.record_pass(result, reason=job.reason, requested_at=job.requested_at)
        summary = ", ".join(f"{n} {a}" for a, n in result.summary().items() if n)
        level = logging.INFO if result.ok else logging.WARNING
        log.log(level, "target %s at %s: %s%s", target.name, revision[:12], summary or "no apps",
                " (degraded)" if result.degraded else "", extra={**context, "revision": revision, "ok": result.ok})
        return "reconciled"


_OBJECT_KEY = re.compile(r"^[A-Z][A-Za-z0-9]*/([a-z0-9][a-z0-9.-]*/)?[a-z0-9][a-z0-9.-]*$")


def _suspendable(name: str) -> bool:
    return bool(APP_NAME.match(name) or _OBJECT_KEY.match(name))


_current: tuple[Settings, dict[str, str], Pipeline] | None = None
_current_lock = threading.Lock()


def current() -> Pipeline:
    """The process's Pipeline, rebuilt only when settings or the storage connection change."""
    global _current
    settings = Settings.from_env()
    storage_env = {k: v for k, v in os.environ.items() if k.startswith("AzureWebJobsStorage")}
    with _current_lock:
        if _current is None or _current[0] != settings or _current[1] != storage_env:
            _current = (settings, storage_env, Pipeline(settings))
        return _current[2]
