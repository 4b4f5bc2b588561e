"""The one small protocol every kind of Target implements, and the shapes it shares.

An engine is built for one Target (by `shared.engines.engine_for`) and kept while the Target's
definition is unchanged. It reads what Git wants (`load`), compares it with what runs (`plan`,
reads only), applies the difference (`reconcile`) and reports health of what it owns in each
outcome. Engines never read Git or queues themselves: the reconciler hands
them files, suspensions, backoff and (for the Dapr inventory) the status store.
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping, Protocol

from shared.adapters.container_apps import ApplyFailed, ContainerApps, Operation, OperationInProgress, for_subscription
from shared.config.settings import Settings
from shared.core.aca_kinds import ACA_READERS
from shared.core.image_policy import Followed
from shared.core.manifests import FileCache, Problem, Target, load_objects
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


def guarded(step: Step, revision: str, call: Callable[[], "Outcome | Pending"]) -> "Outcome | Pending":
    """`call()`, with anything that goes wrong as the step's outcome, never raised (the pass goes on): a write ARM
    refuses (409) because an operation on the object started after the plan still runs is `skipped` and unhealthy
    (left alone, the next pass looks again); ARM refusing the write or its operation failing or timing out is
    `failed` with ARM's code and message; any other error is `failed` with its type."""
    diff = [c.to_dict() for c in step.changes]
    try:
        return call()
    except OperationInProgress as exc:
        return Outcome(step.app, "skipped", f"operation in progress ({exc}); left alone, the next pass looks again",
                       diff, revision, healthy=False, health_reason="operation in progress")
    except ApplyFailed as exc:
        return Outcome(step.app, "failed", f"{step.kind} failed: {exc}", diff, revision)
    except Exception as exc:  # one object's surprise must not stop the pass
        return failed(step, revision, exc)


MAX_PENDING = 1000
"""Operations one pass keeps pending at most (memory stays bounded; ARM's write bucket allows about 600 pending
writes of 40 s each)."""
SWEEP_FROM = 3
"""Operations waiting for a look from which `apply_started` offers them to its `sweep` (the adapter weighs the
cost)."""
PAUSE_AFTER_FAILED_SWEEP = 1.0
"""Seconds at least without a sweep after one failed (its operations' interval when longer)."""


class Pending:
    """A step whose write ARM accepted and whose operation is still running: `handle` is what `poll` needs,
    `due` the monotonic time to look again, `every` the seconds between looks."""

    def __init__(self, handle: Any, due: float, every: float = 0.0):
        self.handle, self.due, self.every = handle, due, every


Look = Callable[[Step], "Outcome | Pending"]


def apply_started(target: Target, revision: str, plan: Plan, problems: list[Problem], start: Look,
                  poll: Callable[[Step, Any], "Outcome | Pending"], *, dry_run: bool, concurrency: int,
                  progress: Progress | None, span: str,
                  sweep: Callable[[list[Any]], tuple[list[Any], list[Any]]] | None = None) -> PassResult:
    """Carry out every step of `plan` without parking a thread per operation: `start(step)` sends the write and
    returns its Outcome (nothing to wait for, or a failure) or a Pending; this one loop then calls `poll(step,
    handle)` for each pending operation when it is due, until it returns the Outcome. Starts and polls are single
    requests run on two pools of `concurrency` threads (the ARM budget paces them); at most `MAX_PENDING`
    operations are pending at once. Of the operations due, the oldest is polled first: when ARM's read budget
    cannot poll every one on time, its reads go to the operations most likely to have ended.

    With `sweep`, an operation that is due is first offered to a sweep: once at least `SWEEP_FROM` operations
    wait for a look (due or not; not those being polled or declined), their handles go to `sweep(handles)`,
    which may read them all at once (a list instead of one GET each) and returns (read, missing). The read ones
    are polled at once, due or not; the next sweep comes when they are due again (their `every` after this one)
    and covers the operations started since. A missing one (the sweep cannot read it) is polled alone from then
    on; one the sweep did not look at (it judged the list dearer) is polled alone if due and offered again next
    time; while fewer than `SWEEP_FROM` wait, the due ones are polled alone. A sweep that raises is logged, and
    for one interval (at least `PAUSE_AFTER_FAILED_SWEEP`) every operation due is polled alone. `start` and `poll`
    never raise. Outcomes in plan order, each timed, with a telemetry span named `span` from the write's start to
    its outcome; `progress` in plan order."""
    import heapq
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
    from itertools import islice

    from shared.adapters import telemetry

    started = time.monotonic()
    result = new_result(target, revision, dry_run)
    result.degraded, result.prune = plan.degraded, plan.prune
    result.problems = [p.to_dict() for p in problems]
    steps = plan.steps
    outcomes: list[Outcome | None] = [None] * len(steps)
    began = [0.0] * len(steps)
    began_ns = [0] * len(steps)                    # the same moment in epoch nanoseconds, for the step's span
    due: list[tuple[float, int, Pending]] = []
    ready: list[tuple[int, Pending]] = []          # due now, polled one by one, oldest (lowest index) first
    held: list[tuple[int, Pending]] = []           # due now, left to the next sweep
    declined: set[int] = set()                     # missing from a sweep's list: polled one by one from then on
    running: dict[Any, int] = {}
    reported = 0
    sweeping: Any = None                           # the sweep in flight, and what it was offered
    offered: dict[int, tuple[int, Pending]] = {}
    sweep_began = hold_until = 0.0                 # the next sweep: when what the last one read is due again
    paused_until = 0.0                             # after a sweep failed: no sweep, each operation polled alone

    def done(index: int, outcome: Outcome) -> None:
        step = steps[index]
        with telemetry.span(span, start_time_ns=began_ns[index], app=step.app, target=target.name, revision=revision,
                            planned=step.kind) as trace:
            if trace is not None:
                trace.set_attributes({"action": outcome.action, "healthy": str(outcome.healthy),
                                      "reason": outcome.reason[:500]})
        outcome.duration_ms = int((time.monotonic() - began[index]) * 1000)
        outcomes[index] = outcome

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="apply-start") as starts, \
            ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="apply-poll") as polls:
        following = 0
        while reported < len(steps):
            now = time.monotonic()
            starting = sum(1 for f in running if running[f] >= 0)
            polling = len(running) - starting + (sweeping is not None)
            while due and due[0][0] <= now:
                _, index, pending = heapq.heappop(due)
                if sweep and index not in declined and now >= paused_until:
                    held.append((index, pending))
                else:
                    heapq.heappush(ready, (index, pending))
            if held and sweeping is None:
                enough = len(held) + sum(1 for _ in islice((e for e in due if e[1] not in declined),
                                                           SWEEP_FROM)) >= SWEEP_FROM
                if now < paused_until or not enough:       # polled alone
                    for entry in held:
                        heapq.heappush(ready, entry)
                    held = []
                elif now >= hold_until:                     # offer every operation waiting for a look
                    waiting = [(i, p) for _, i, p in due if i not in declined]
                    offered = {id(p.handle): (i, p) for i, p in held + waiting}
                    held, due = [], [entry for entry in due if entry[1] in declined]
                    heapq.heapify(due)
                    sweeping, sweep_began = polls.submit(sweep, [p.handle for _, p in offered.values()]), now
                    polling += 1
            while ready and polling < concurrency:
                index, pending = heapq.heappop(ready)
                running[polls.submit(poll, steps[index], pending.handle)] = -1 - index
                polling += 1
            while (following < len(steps) and starting < concurrency
                   and len(due) + len(ready) + len(held) + len(offered) + len(running) < MAX_PENDING):
                began[following], began_ns[following] = time.monotonic(), time.time_ns()
                running[starts.submit(start, steps[following])] = following
                following += 1
                starting += 1
            # wake for: a future (always, and only that while every poll thread is busy), the next due operation,
            # the next sweep
            wakes = [] if ready else [due[0][0]] if due else []
            if held and sweeping is None:
                wakes.append(hold_until)
            timeout = max(0.0, min(wakes) - time.monotonic()) if wakes else None
            if running or sweeping is not None:
                finished, _ = wait([*running, *([sweeping] if sweeping is not None else [])], timeout=timeout,
                                   return_when=FIRST_COMPLETED)
            else:
                time.sleep(timeout or 0)
                finished = set()
            if sweeping is not None and sweeping in finished:
                finished.discard(sweeping)
                read, missing = _swept(sweeping, target)
                now = time.monotonic()
                for key, (index, pending) in offered.items():
                    if key in read or pending.due <= now:   # read: the sweep made its look; else due: alone
                        heapq.heappush(ready, (index, pending))
                    else:
                        heapq.heappush(due, (pending.due, index, pending))
                    if key in missing:
                        declined.add(index)
                everies = [p.every for key, (_, p) in offered.items() if key in read]
                hold_until = sweep_began + min(everies, default=0.0)
                if sweeping.exception() is not None:            # what came due meanwhile is polled alone
                    paused_until = now + max(PAUSE_AFTER_FAILED_SWEEP, min(p.every for _, p in offered.values()))
                    for entry in held:
                        heapq.heappush(ready, entry)
                    held = []
                sweeping, offered = None, {}
            for future in finished:
                key = running.pop(future)
                index = key if key >= 0 else -1 - key
                answer = future.result()
                if isinstance(answer, Pending):
                    heapq.heappush(due, (answer.due, index, answer))
                else:
                    done(index, answer)
            while reported < len(steps) and outcomes[reported] is not None:
                result.outcomes.append(outcomes[reported])
                reported += 1
                if progress:
                    progress(reported, len(steps), result.outcomes[-1])
    return finish(result, started)


def _swept(sweep: Any, target: Target) -> tuple[set[int], set[int]]:
    """The handles (by id) a finished sweep read and found missing; a sweep that raised read nothing (logged)."""
    if sweep.exception() is not None:
        exc = sweep.exception()
        logging.getLogger(__name__).warning("Target %s: reading pending operations with one list failed (%s: %s); "
                                            "each is looked at alone for one interval", target.name,
                                            type(exc).__name__, str(exc)[:300])
        return set(), set()
    read, missing = sweep.result()
    return {id(h) for h in read}, {id(h) for h in missing}


def check_workload_profiles(plan: Plan, environment: Callable[[], dict]) -> None:
    """Writes of apps or jobs on a workload profile the environment lacks, or whose CPU/memory total does not fit
    it, become `failed` (never written). `environment()` (the managed environment as ARM JSON) is read once, and
    only when a write names a profile."""
    from shared.core import sizes

    key = ("properties", "workloadProfileName")
    profiled = [s for s in plan.steps if s.writes and s.desired is not None
                and getattr(s.desired, "sections", {}).get(key)]
    if not profiled:
        return
    found = environment()
    props = found.get("properties") or found
    profiles = {p.get("name"): p.get("workloadProfileType") or ""
                for p in props.get("workloadProfiles") or [] if isinstance(p, dict)}
    for step in profiled:
        desired = step.desired
        everything = (*desired.containers, *(desired.init_containers or ()))
        why = sizes.workload_profile_problem(sum(c.cpu for c in everything), sum(c.memory_gib for c in everything),
                                             desired.sections[key], profiles)
        if why:
            step.kind, step.reason = "failed", f"not applied: {why}"


def finish(result: PassResult, started: float) -> PassResult:
    result.duration_ms = int((time.monotonic() - started) * 1000)
    return result


__all__ = ["ArmKindEngine", "Engine", "EngineFactory", "FileCache", "MAX_PENDING", "Pending", "Progress", "VERDICTS",
           "apply_started", "dry_run_outcome", "failed",
           "finish", "guarded",
           "new_result", "verdict"]


class ArmKindEngine:
    """What the engines of an aca Target's kinds share: settings, the Target, the parse cache, the status store
    (only Dapr components use it), the subscription's ARM client, the environment, `reconcile` = `plan` + `apply`,
    and `apply` itself: each write is started (`_begin`) as fast as the subscription's ARM budget allows and
    every pending operation is polled from one loop (`apply_started`) until `_finished` turns the resource ARM
    ended with into the outcome. A subclass names its manifest class in `kind` and its telemetry span in `span`,
    and writes `plan`, `_begin`, `_finished` and `followed`."""

    kind: type = object
    span = "apply"

    def __init__(self, settings: Settings, target: Target, *, files: FileCache | None = None, store: Any = None):
        self.settings, self.target, self.store = settings, target, store
        self.files = files or FileCache()
        self._location: str | None = None
        self._lock = threading.Lock()

    @property
    def aca(self) -> ContainerApps:
        return for_subscription(self.settings, self.target.subscription_id)

    def load(self, files: Mapping[str, bytes]) -> tuple[list[Any], list[Problem]]:
        """The Target's objects of this engine's kind (every aca kind is parsed, each file once per content)."""
        objects, problems = load_objects(files, ACA_READERS, self.files)
        return [o for o in objects if isinstance(o, self.kind)], problems

    def reconcile(self, revision: str, desired: list[Any], problems: list[Problem], *, dry_run: bool = False,
                  only: str | None = None, suspended: Iterable[str] = (), backoff: Mapping[str, str] | None = None,
                  progress: Progress | None = None) -> PassResult:
        plan = self.plan(revision, desired, problems, only=only, suspended=suspended, backoff=backoff)
        return self.apply(revision, plan, problems, dry_run=dry_run, progress=progress)

    def apply(self, revision: str, plan: Plan, problems: list[Problem], *, dry_run: bool = False,
              progress: Progress | None = None) -> PassResult:
        """Apply a plan made by `plan`: writes paced by the ARM budget, operations polled from one loop, no thread
        waiting on one; one object's failure never stops the others; a dry run writes nothing."""
        return apply_started(self.target, revision, plan, problems, lambda step: self._start(step, revision, dry_run),
                             lambda step, op: guarded(step, revision, lambda: self._look(step, revision, op)),
                             dry_run=dry_run, concurrency=self.settings.concurrency, progress=progress, span=self.span,
                             sweep=self.aca.look_listed)

    def _start(self, step: Step, revision: str, dry_run: bool) -> Outcome | Pending:
        """Send the step's write (nothing for steps that write nothing or a dry run): its outcome, or its pending
        operation."""
        if not step.writes:
            return verdict(step, revision)
        if dry_run:
            return dry_run_outcome(step, revision)
        return guarded(step, revision, lambda: self._started(step, revision, self._begin(step, revision)))

    def _started(self, step: Step, revision: str, op: Operation) -> Outcome | Pending:
        """A write ARM answered: its outcome when it already ended, else first looked at when ARM said to."""
        if op.result is None:
            return self._pending(op)
        return self._look(step, revision, op)

    def _pending(self, op: Operation) -> Pending:
        return Pending(op, op.next_poll, op.every or self.settings.arm_poll_interval)

    def _look(self, step: Step, revision: str, op: Operation) -> Outcome | Pending:
        """One look at the step's operation: its outcome once it ended, else when to look again."""
        live = self.aca.poll(op)
        if live is None:
            return self._pending(op)
        return self._finished(step, revision, live)

    def _begin(self, step: Step, revision: str) -> Operation:
        """Send the write of a step that writes (create, update, reapply or delete) through `self.aca.begin`."""
        raise NotImplementedError

    def _finished(self, step: Step, revision: str, live: dict[str, Any]) -> Outcome:
        """The outcome of the step whose operation succeeded; `live` is the resource ARM ended with (`{}` after a
        delete)."""
        raise NotImplementedError

    def _environment(self) -> dict[str, Any]:
        """The Target's managed environment as ARM JSON."""
        return self.aca.environment(self.target.environment_id)

    def _environment_location(self) -> str:
        """The environment's location, read once."""
        with self._lock:
            if self._location is None:
                self._location = str(self._environment().get("location") or "")
            return self._location
