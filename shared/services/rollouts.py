"""Progressive delivery: the worker of the `rollout-steps` queue and the manual controls (status, promote, abort).

A rollout is started by the Container Apps engine (new revision at 0%, state in the status store, first step job
queued). Each step job walks it as far as the service's clock allows (`shared.core.rollout.walk`) and queues the
next one with a visibility delay until it is due: the end of a pause, or the next analysis (capped at the 7 days a
queue message may stay invisible: a longer wait is re-queued). No process waits for a step. The state is updated
only with the ETag it was read with and each job carries the `tick` it was sent for, so a repeated, stale or
concurrent job is a no-op; a re-delivered job whose transition was stored but whose follow-up was not sent sends it
again. Nothing is written to ARM while a pause is pending; analyses read only. A runtime suspension of the app
holds its rollout where it is, and so does `spec.suspend: true` in Git (once a pass has seen it). Each finished rollout (promoted, rolled back, aborted) is reported to CI as a
commit status of context `driftless/rollout/<target>/<app>`.
"""
from __future__ import annotations

import logging
import math
import time
import uuid
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any, Callable

from shared.adapters.container_apps import AppRevisions, for_subscription
from shared.adapters.monitor import Metrics, MetricsError
from shared.core import rollout as r
from shared.core.queues import ROLLOUT_QUEUE
from shared.core.reply import Reply, shown
from shared.services.context import Context

log = logging.getLogger("driftless.rollouts")

LONGEST_DELAY = 7 * 24 * 3600 - 60
"""Azure Storage keeps a message invisible for at most 7 days; a longer wait is re-queued when it comes back."""


class Rollouts:
    """The `rollout-steps` worker and the manual controls."""

    clock: Callable[[], float] = staticmethod(time.time)
    """Seconds since the epoch; tests install an injected clock and advance it instead of sleeping."""
    longest_delay: float = LONGEST_DELAY
    """The longest visibility delay of a step job; tests set 0 so a job is visible at once and decided by `clock`."""
    suspended_recheck: float = 300
    """A suspended app's rollout job comes back after this long (nothing is done meanwhile)."""
    overdue: float = 600
    """How late a running rollout's next job may be before the timer's sweep queues it again."""

    def __init__(self, context: Context):
        self.context = context
        self.settings, self.store = context.settings, context.store
        self._metrics: Metrics | None = None

    @property
    def metrics(self) -> Metrics:
        if self._metrics is None:
            self._metrics = Metrics(self.settings)
        return self._metrics

    def _arm(self, state: r.State) -> AppRevisions:
        return for_subscription(self.settings, state.subscription).revisions(state.resource_group, state.app)

    def _send(self, state: r.State, now: float, *, at: float | None = None, job: r.Job | None = None) -> None:
        """Queue `job` (default: a new job for the state's current transition), visible at `at` (now when None),
        at most `longest_delay` from now."""
        delay = 0 if at is None else max(0, min(math.ceil(at - now), int(self.longest_delay)))
        self.context.send(ROLLOUT_QUEUE, (job or r.job_for(state)).to_json(), delay=delay)

    # --- the worker ----------------------------------------------------------------------------
    def run(self, body: bytes, *, dequeue_count: int = 1) -> str:
        """Carry out one step job; returns what happened. A transition is stored (ETag-guarded) before ARM is
        written, so a concurrent actor that moved the rollout first wins and nothing is written. Raises on a
        transient failure: the host retries the job, which then finds its transition stored and only carries out
        its ARM writes (idempotent) and follow-up again."""
        try:
            job = r.parse_job(body)
        except ValueError as exc:
            return self.context.park(ROLLOUT_QUEUE, body, str(exc))
        found = self.store.rollout(job.target, job.app)
        if found is None:
            return "stale"
        state, etag = found
        if state.revision != job.revision:
            return "stale"
        now = self.clock()
        if job.tick == state.tick - 1 and job.id == state.by:    # our transition was stored, maybe not carried out
            self._carry_out(state)
            self._follow_up(state, now)
            if not state.active:
                self.context.report(r.phase_event(state))
            return "resent"
        if job.tick != state.tick or not state.active:
            return "stale"
        if state.app in self.store.suspended() or self.store.last_action(state.target, state.app) == "suspended":
            self.context.send(ROLLOUT_QUEUE, job.to_json(), delay=int(min(self.suspended_recheck, self.longest_delay)))
            return "suspended"
        if state.started_at and not self._due_now(state, now):
            self._send(state, now, at=r.wake(state), job=job)       # came back early (a long wait re-queued)
            return "waiting"
        new = self._step(state, now)
        new.tick, new.by = state.tick + 1, job.id
        if not self.store.put_rollout(new, etag):
            return "stale"                                           # another worker or a person moved it first
        self._carry_out(new, before=state)
        self._follow_up(new, now)
        if not new.active:
            self.context.report(r.phase_event(new))
        log.info("rollout of %s in %s at %s: %s (%s)", new.app, new.target, new.revision[:12], new.phase,
                 new.reason, extra={"app": new.app, "target": new.target, "revision": new.revision,
                                    "phase": new.phase, "step": new.step, "weight": new.weights().get(new.canary, 0),
                                    "reason": new.reason[:300]})
        return new.phase

    def sweep(self) -> list[str]:
        """Timer: queue a job for every running rollout whose next job is overdue by more than `overdue` seconds
        (its message parked after failed tries, or lost between a stored transition and its send); the apps. A
        duplicate job for the same transition is a no-op, so this is always safe."""
        now, queued = self.clock(), []
        for state in self.store.rollouts():
            due = r.wake(state)
            if state.active and due is not None and now > due + self.overdue:
                self._send(state, now)
                queued.append(f"{state.target}/{state.app}")
        if queued:
            log.warning("re-queued the overdue step jobs of %d rollout(s): %s", len(queued), ", ".join(queued))
        return queued

    @staticmethod
    def _due_now(state: r.State, now: float) -> bool:
        """Whether the job has something to do: a pause that ended, an analysis due, or a step that is not a
        pending pause."""
        steps = state.rollout.steps
        if state.rollout.analysis and now >= state.next_analysis:
            return True
        if state.phase == r.PAUSED:
            return False
        if state.step >= len(steps):
            return True
        step = steps[state.step]
        return step.weight is not None or step.manual or not state.due or now >= state.due

    def _follow_up(self, state: r.State, now: float) -> None:
        if state.active:
            wake = r.wake(state)
            if wake is not None:
                self._send(state, now, at=wake)

    def _step(self, state: r.State, now: float) -> r.State:
        """One transition, decided (no ARM write): first start (timestamps), then a due analysis (which may roll
        back or pause; it reads only), then the walk (weights, pauses, promotion)."""
        state = replace(state, analyses=list(state.analyses))
        if not state.started_at:
            state = r.begin(state, now)
        if state.rollout.analysis and now >= state.next_analysis:
            state, said = r.record_analysis(state, self._analyse(state, self._arm(state), now), now)
            if said.startswith("rollback"):
                return r.finish(state, r.ROLLED_BACK, said, now)
            if said.startswith("pause"):
                state.phase, state.reason = r.PAUSED, said[len("pause: "):]
        if state.phase != r.PROGRESSING:
            state.updated_at = now
            return state
        return r.walk(state, now)

    def _carry_out(self, state: r.State, *, before: r.State | None = None) -> None:
        """Make ARM match a stored `state`: its traffic (written when the weights or the phase changed since
        `before`, always without it), then after a promotion the old revision deactivated, after a roll back or
        an abort the canary. Every write is idempotent; a deactivation that fails is logged (it has no traffic)."""
        ended = state.phase in (r.PROMOTED, r.ROLLED_BACK, r.ABORTED)
        if before is not None and not ended and before.weight == state.weight:
            return
        arm = self._arm(state)
        arm.set_traffic(r.traffic(state))
        if ended:
            retired = state.stable if state.phase == r.PROMOTED else state.canary
            try:
                arm.deactivate(retired)
            except Exception as exc:
                log.warning("could not deactivate revision %s of %s: %s", retired, state.app, exc)

    def _analyse(self, state: r.State, arm: AppRevisions, now: float) -> list[dict[str, Any]]:
        """The canary's health and every metric over the last interval (whole minutes, ending at the last minute
        that was over `DRIFTLESS_METRICS_DELAY` seconds ago, so Monitor has ingested it). A metric that cannot be
        read is inconclusive, never a pass."""
        verdict, why = r.judge_health(arm.get(state.canary))
        results = [{"name": "health", "verdict": verdict, "value": None, "limit": None, "why": why}]
        span = r.metrics_window(state, now, self.settings.metrics_delay)
        if span is None:
            return results + [{"name": m.name, "verdict": r.NOT_YET, "value": None,
                               "limit": m.max_percent_5xx if m.source == "requests" else m.max_value,
                               "why": "no whole minute of readable metrics since the canary got traffic"}
                              for m in state.rollout.analysis.metrics]
        traffic: dict[str, Any] | None = None
        window = datetime.fromtimestamp(span[0], timezone.utc), datetime.fromtimestamp(span[1], timezone.utc)
        for metric in state.rollout.analysis.metrics:
            if metric.source == "appInsights":
                try:
                    value = self.metrics.query_value(metric.resource or "", metric.query_for(state.canary), *window)
                except MetricsError as exc:
                    results.append({"name": metric.name, "verdict": r.INCONCLUSIVE, "value": None,
                                    "limit": metric.max_value, "why": f"Application Insights: {exc}"[:300]})
                    continue
                results.append(r.judge_metric(metric, value=value))
                continue
            if traffic is None:
                try:
                    traffic = self.metrics.requests_by_revision(state.app_id, state.location, *window)
                except MetricsError as exc:
                    results.append({"name": metric.name, "verdict": r.INCONCLUSIVE, "value": None,
                                    "limit": metric.max_percent_5xx, "why": f"Azure Monitor: {exc}"[:300]})
                    continue
            found = next((v for k, v in traffic.items() if k.lower() == state.canary.lower()), None)
            results.append(r.judge_metric(metric, requests=found.requests if found else 0.0,
                                          errors_5xx=found.errors_5xx if found else 0.0))
        return results

    # --- manual control ------------------------------------------------------------------------
    def _find(self, app: str, target: str | None) -> list[tuple[r.State, str]] | Reply:
        if not isinstance(app, str) or not app or len(app) > 64:
            return Reply(400, {"error": "name an app"})
        if target is not None and (not target or len(target) > 128):
            return Reply(400, {"error": "target must be a Target name"})
        found = self.store.rollouts_of(app, target)
        if not found:
            where = f" in Target {shown(target)}" if target else ""
            return Reply(404, {"error": f"app {shown(app)} has no rollout{where}"})
        return found

    def status(self, app: str, target: str | None = None) -> Reply:
        """The app's rollouts (one per Target that has one): phase, step, weights, last analysis."""
        found = self._find(app, target)
        if isinstance(found, Reply):
            return found
        return Reply(200, {"rollouts": [state.view() for state, _ in found]})

    def _one(self, app: str, target: str | None) -> tuple[r.State, str] | Reply:
        found = self._find(app, target)
        if isinstance(found, Reply):
            return found
        if len(found) > 1:
            return Reply(409, {"error": f"app {shown(app)} has rollouts in several Targets "
                                        f"({', '.join(s.target for s, _ in found)}); name one with target"})
        return found[0]

    def promote(self, app: str, target: str | None = None) -> Reply:
        """Let a Paused rollout go on (its next job is queued at once); 409 when it is not paused."""
        found = self._one(app, target)
        if isinstance(found, Reply):
            return found
        state, etag = found
        if state.phase != r.PAUSED:
            return Reply(409, {"error": f"the rollout of {shown(app)} is {state.phase}, not Paused: nothing to "
                                        "promote", "rollout": state.view()})
        now = self.clock()
        new = r.promote(state, now)
        new.tick, new.by = state.tick + 1, "promote"
        if not self.store.put_rollout(new, etag):
            return Reply(409, {"error": "the rollout moved meanwhile; look at its status and try again"})
        self._send(new, now)          # should this send fail, the timer's sweep queues the job (it is overdue)
        return Reply(202, {"promoted": app, "rollout": new.view()})

    def abort(self, app: str, target: str | None = None) -> Reply:
        """Back to the stable revision at 100%, the canary deactivated, the rollout Aborted; 409 when it is not
        running."""
        found = self._one(app, target)
        if isinstance(found, Reply):
            return found
        state, etag = found
        if not state.active:
            return Reply(409, {"error": f"the rollout of {shown(app)} is {state.phase}: nothing to abort",
                               "rollout": state.view()})
        now = self.clock()
        new = r.finish(state, r.ABORTED, "aborted by hand", now)
        new.tick, new.by = state.tick + 1, uuid.uuid4().hex
        if not self.store.put_rollout(new, etag):            # stored first: a step job that moved it wins
            return Reply(409, {"error": "the rollout moved meanwhile; look at its status and try again"})
        try:
            self._carry_out(new, before=state)
        except Exception as exc:   # ARM refused or timed out: a queued job carries out the abort (retried)
            self.context.send(ROLLOUT_QUEUE, r.Job(new.target, new.app, new.revision, new.tick - 1, new.by).to_json())
            reason = f"{type(exc).__name__}: {exc}"[:300]
            log.warning("abort of the rollout of %s: traffic not moved yet (%s); a queued job retries", app, reason)
            return Reply(202, {"aborted": app, "rollout": new.view(),
                               "pending": f"moving the traffic back failed ({reason}); a queued job retries it"})
        self.context.report(r.phase_event(new))
        return Reply(200, {"aborted": app, "rollout": new.view()})
