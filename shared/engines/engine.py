"""The one small protocol every kind of Target implements, and the shapes it shares.

An engine is built for one Target (by `shared.engines.engine_for`) and kept while the Target's
definition is unchanged. It reads what Git wants (`load`), compares it with what runs (`plan`,
reads only), applies the difference (`reconcile`) and reports health of what it owns in each
outcome. Engines never read Git, queues or the status store themselves: the reconciler hands
them files, suspensions and backoff.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping, Protocol

from shared.core.image_policy import Followed
from shared.core.manifests import FileCache, Problem, Target
from shared.core.outcome import Outcome, PassResult
from shared.core.plan import Plan, Step

Progress = Callable[[int, int, Outcome], None]
"""Called after each outcome with (done, total, outcome): the CLI's progress line."""

VERDICTS = {"create": "created", "update": "updated", "reapply": "updated", "delete": "deleted"}


class Engine(Protocol):
    """What the reconciler needs of one kind of Target."""

    target: Target

    def load(self, files: Mapping[str, bytes]) -> tuple[list[Any], list[Problem]]:
        """Parse and validate the manifests of the Target's path: (valid desired objects, problems)."""

    def plan(self, revision: str, desired: list[Any], problems: list[Problem], *, only: str | None = None,
             suspended: Iterable[str] = (), backoff: Mapping[str, str] | None = None) -> Plan:
        """What a pass would do, from live state (reads only)."""

    def reconcile(self, revision: str, desired: list[Any], problems: list[Problem], *, dry_run: bool = False,
                  only: str | None = None, suspended: Iterable[str] = (), backoff: Mapping[str, str] | None = None,
                  progress: Progress | None = None) -> PassResult:
        """Plan and apply; with `dry_run` nothing is written. One object's failure never stops the others."""

    def followed(self, desired: list[Any]) -> list[Followed]:
        """The desired objects that opt in to image updates."""


EngineFactory = Callable[..., Engine]
"""`factory(settings, target, files=FileCache[, store=Store | None])`: builds the engine of one Target (or of one kind
of object of a Target; those also take the status store, for ownership kept as an inventory)."""


def new_result(target: Target, revision: str, dry_run: bool) -> PassResult:
    """An empty PassResult stamped with the start time."""
    return PassResult(target=target.name, revision=revision, dry_run=dry_run,
                      started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))


def verdict(step: Step, revision: str) -> Outcome:
    """The outcome of a step that writes nothing, with the health observed while planning."""
    return Outcome(step.app, step.kind, step.reason, [c.to_dict() for c in step.changes], revision,
                   healthy=step.health.healthy if step.health else None,
                   health_reason=step.health.reason if step.health else "")


def dry_run_outcome(step: Step, revision: str) -> Outcome:
    """What a dry run reports for a write it did not make."""
    return Outcome(step.app, VERDICTS[step.kind], f"dry run, not applied: {step.reason}",
                   [c.to_dict() for c in step.changes], revision,
                   healthy=step.health.healthy if step.health else None,
                   health_reason=step.health.reason if step.health else "")


def failed(step: Step, revision: str, exc: Exception) -> Outcome:
    """One object's unexpected error as its `failed` outcome (never raised: the pass goes on)."""
    return Outcome(step.app, "failed", f"{step.kind} failed: {type(exc).__name__}: {exc}"[:500],
                   [c.to_dict() for c in step.changes], revision)


def apply_plan(target: Target, revision: str, plan: Plan, problems: list[Problem],
               apply_step: Callable[[Step], Outcome], *, dry_run: bool, concurrency: int,
               progress: Progress | None, span: str) -> PassResult:
    """Carry out every step of `plan` with at most `concurrency` at once, each in a telemetry span named `span`
    and timed; outcomes in plan order. `apply_step` turns one step into its outcome and never raises."""
    from concurrent.futures import ThreadPoolExecutor

    from shared.adapters import telemetry

    started = time.monotonic()
    result = new_result(target, revision, dry_run)
    result.degraded, result.prune = plan.degraded, plan.prune
    result.problems = [p.to_dict() for p in problems]

    def timed(step: Step) -> Outcome:
        began = time.monotonic()
        with telemetry.span(span, app=step.app, target=target.name, revision=revision, planned=step.kind) as trace:
            outcome = apply_step(step)
            if trace is not None:
                trace.set_attributes({"action": outcome.action, "healthy": str(outcome.healthy),
                                      "reason": outcome.reason[:500]})
        outcome.duration_ms = int((time.monotonic() - began) * 1000)
        return outcome

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="apply") as pool:
        for outcome in pool.map(timed, plan.steps):
            result.outcomes.append(outcome)
            if progress:
                progress(len(result.outcomes), len(plan.steps), outcome)
    return finish(result, started)


def finish(result: PassResult, started: float) -> PassResult:
    result.duration_ms = int((time.monotonic() - started) * 1000)
    return result


__all__ = ["Engine", "EngineFactory", "FileCache", "Progress", "VERDICTS", "apply_plan", "dry_run_outcome", "failed",
           "finish",
           "new_result", "verdict"]
