"""Progressive delivery of a Container App (`spec.rollout`): the manifest field, the state of one rollout, the
step machine and the analysis verdict. No I/O.

A rollout walks the new revision (the canary) through `steps` in Argo Rollouts' vocabulary: `setWeight` sends
that share of the traffic to it, `pause: {duration: 5m}` waits, `pause: {}` waits for a manual promote. Every
`analysis.interval` while it walks, the canary's health and metrics are judged; more than `failureLimit` bad
intervals roll it back, a metric that cannot be judged (no requests, a source that is not read) pauses it for a
person to decide (never a pass). After the last step the canary is promoted: 100% of the traffic, the stable
revision deactivated. BlueGreen keeps the new revision at 0% behind the `preview` label until it is promoted,
then switches at once (its steps are pauses only).
"""
from __future__ import annotations

import json
import re
import uuid
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from shared.core.jobs import BadJob, versioned

if TYPE_CHECKING:
    from shared.core.phases import PhaseEvent

STRATEGIES = ("Canary", "BlueGreen")
SOURCES = ("requests", "appInsights")
PROGRESSING, PAUSED, PROMOTED, ROLLED_BACK, ABORTED = "Progressing", "Paused", "Promoted", "RolledBack", "Aborted"
ACTIVE = (PROGRESSING, PAUSED)
"""Phases of a rollout still walking (or waiting for a promote)."""
CANARY_LABEL, PREVIEW_LABEL = "canary", "preview"
ARM_ID = re.compile(r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/[^/]+/[^/]+/[^/]+$", re.IGNORECASE)
DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
MAX_PAUSE = 30 * 24 * 3600
"""The longest pause (30 days); a pause longer than a queue message can stay invisible (7 days) is re-enqueued."""
KEEP_ANALYSES = 10
"""Analysis results kept in a rollout's state (the newest)."""

Report = Callable[[tuple[Any, ...], str], None]


def parse_duration(text: Any) -> float | None:
    """Seconds of "30s", "5m", "1h" or "1h30m" (whole units only), or of a whole number of seconds (`10`, "10"),
    as Argo Rollouts reads a pause's duration; None when it is not such a duration."""
    if isinstance(text, int) and not isinstance(text, bool):
        return float(text) if text >= 0 else None
    if not isinstance(text, str) or not text:
        return None
    if text.strip().isdigit():
        return float(int(text.strip()))
    found = DURATION.fullmatch(text.strip())
    if not found or not any(found.groups()):
        return None
    hours, minutes, seconds = (int(g or 0) for g in found.groups())
    return float(hours * 3600 + minutes * 60 + seconds)


def shown_duration(seconds: float) -> str:
    """90 -> "1m30s" (the manifest's notation)."""
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return "".join(f"{n}{u}" for n, u in ((hours, "h"), (minutes, "m"), (secs, "s")) if n) or "0s"


@dataclass(frozen=True)
class Step:
    """One step: `weight` (setWeight) or a pause of `pause` seconds, or a manual pause (`manual`)."""

    weight: int | None = None
    pause: float | None = None
    manual: bool = False

    def describe(self) -> str:
        if self.weight is not None:
            return f"setWeight {self.weight}"
        return "pause until promoted" if self.manual else f"pause {shown_duration(self.pause or 0)}"


@dataclass(frozen=True)
class Metric:
    """One analysis metric: a 5xx share of the canary's requests, or an Application Insights query's value."""

    name: str
    source: str
    max_percent_5xx: float | None = None
    query: str | None = None
    max_value: float | None = None
    resource: str | None = None
    """The Application Insights component (or Log Analytics workspace) the query runs on, as an ARM id."""

    def query_for(self, revision: str) -> str:
        """The query with `{revision}` replaced by the canary revision's name."""
        return (self.query or "").replace("{revision}", revision)


@dataclass(frozen=True)
class Analysis:
    interval: float
    failure_limit: int
    metrics: tuple[Metric, ...] = ()


@dataclass(frozen=True)
class Rollout:
    """`spec.rollout` of an App."""

    strategy: str
    steps: tuple[Step, ...]
    analysis: Analysis | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Rollout":
        analysis = data.get("analysis")
        return cls(data["strategy"], tuple(Step(**s) for s in data["steps"]),
                   None if not analysis else Analysis(analysis["interval"], analysis["failure_limit"],
                                                      tuple(Metric(**m) for m in analysis.get("metrics") or ())))


# --- the manifest field ------------------------------------------------------------------------
def read_rollout(node: Any, report: Report, *, mode: str, ingress: bool, traffic: bool) -> Rollout | None:
    """`spec.rollout`, every problem reported with its path; None when it is absent or invalid. `mode`: the app's
    activeRevisionsMode (a rollout needs Multiple), `ingress`: whether ingress is enabled (it splits traffic),
    `traffic`: whether the manifest sets ingress.traffic (the rollout owns it)."""
    if node is None:
        return None
    path: tuple[Any, ...] = ("spec", "rollout")
    before = _Counter(report)
    report = before
    if not isinstance(node, Mapping):
        report(path, "must be a mapping with strategy, steps and optionally analysis")
        return None
    _known(node, path, ("strategy", "steps", "analysis"), report)
    strategy = node.get("strategy")
    if strategy not in STRATEGIES:
        report(path + ("strategy",), f"{strategy!r} is not valid; allowed: {', '.join(STRATEGIES)}")
    if str(mode).lower() != "multiple":
        report(path, "needs activeRevisionsMode: Multiple (a rollout splits traffic between revisions)")
    if not ingress:
        report(path, "needs ingress enabled (a rollout moves ingress traffic between revisions)")
    if traffic:
        report(("spec", "ingress", "traffic"), "is owned by spec.rollout; remove it (the rollout sets the weights)")
    steps = _read_steps(node.get("steps"), path + ("steps",), report, strategy)
    analysis = _read_analysis(node.get("analysis"), path + ("analysis",), report)
    if strategy == "BlueGreen" and analysis is not None:
        for i, metric in enumerate(analysis.metrics):
            if metric.source == "requests":
                report(path + ("analysis", "metrics", i, "source"),
                       "requests judges the share of live traffic a canary serves; BlueGreen keeps the new revision "
                       "at 0% until it is promoted, so it would never be judged: use source appInsights (a query on "
                       "the preview's test traffic) or health alone (no metrics)")
    if before.count:
        return None
    return Rollout(str(strategy), steps, analysis)


class _Counter:
    def __init__(self, report: Report):
        self.report, self.count = report, 0

    def __call__(self, path: tuple[Any, ...], message: str) -> None:
        self.count += 1
        self.report(path, message)


def _known(node: Mapping[str, Any], path: tuple[Any, ...], allowed: Iterable[str], report: Report) -> None:
    allowed = tuple(allowed)
    for key in node:
        if key not in allowed:
            report(path + (key,), f"unknown field; allowed here: {', '.join(allowed)}")


def _read_steps(node: Any, path: tuple[Any, ...], report: Report, strategy: Any) -> tuple[Step, ...]:
    if not isinstance(node, list) or not node:
        report(path, "needs at least one step: setWeight (0-100), pause {duration: 30s|5m|1h} or pause {}")
        return ()
    steps = []
    for i, item in enumerate(node):
        where = path + (i,)
        if not isinstance(item, Mapping) or len(item) != 1 or next(iter(item)) not in ("setWeight", "pause"):
            report(where, "must be exactly one of setWeight: <0-100> or pause: {duration: <30s|5m|1h>} / pause: {}")
            continue
        if "setWeight" in item:
            weight = item["setWeight"]
            if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
                report(where + ("setWeight",), f"must be a whole number from 0 to 100, got {weight!r}")
                continue
            if strategy == "BlueGreen":
                report(where + ("setWeight",), "is for Canary; BlueGreen keeps the new revision at 0% (label "
                                               "preview) and switches at once when promoted: use pause steps")
                continue
            steps.append(Step(weight=weight))
            continue
        pause = item["pause"]
        if pause is None or pause == {}:
            steps.append(Step(manual=True))
            continue
        if not isinstance(pause, Mapping):
            report(where + ("pause",), "must be a mapping: {duration: 5m}, or {} to wait for a manual promote")
            continue
        _known(pause, where + ("pause",), ("duration",), report)
        seconds = parse_duration(pause.get("duration"))
        if seconds is None or not 0 < seconds <= MAX_PAUSE:
            report(where + ("pause", "duration"), f"{pause.get('duration')!r} is not a duration: whole seconds "
                                                  f"(30) or a number with s, m or h (30s, 5m, 1h, 1h30m), more than 0 "
                                                  "and at most 30 days")
            continue
        steps.append(Step(pause=seconds))
    return tuple(steps)


def _read_analysis(node: Any, path: tuple[Any, ...], report: Report) -> Analysis | None:
    if node is None:
        return None
    if not isinstance(node, Mapping):
        report(path, "must be a mapping with interval, failureLimit and metrics")
        return None
    _known(node, path, ("interval", "failureLimit", "metrics"), report)
    interval = parse_duration(node.get("interval", "1m"))
    if interval is None or not 10 <= interval <= 3600:
        report(path + ("interval",), f"{node.get('interval')!r} is not valid: a duration from 10s to 1h (30s, 1m)")
        interval = 60.0
    limit = node.get("failureLimit", 0)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= 100:
        report(path + ("failureLimit",), f"must be a whole number from 0 to 100, got {limit!r}")
        limit = 0
    metrics = []
    items = node.get("metrics")
    if not isinstance(items, list) or not items:
        report(path + ("metrics",), "needs at least one metric: {name, source: requests, maxPercent5xx} or "
                                    "{name, source: appInsights, query, maxValue}")
        items = []
    names: dict[str, int] = {}
    for i, item in enumerate(items):
        where = path + ("metrics", i)
        if not isinstance(item, Mapping):
            report(where, "must be a mapping")
            continue
        _known(item, where, ("name", "source", "maxPercent5xx", "query", "maxValue", "resource"), report)
        name, source = item.get("name"), item.get("source")
        if not isinstance(name, str) or not name.strip():
            report(where + ("name",), "is required")
        elif names.setdefault(name, i) != i:
            report(where + ("name",), f"'{name}' is already used at metrics[{names[name]}]")
        if source not in SOURCES:
            report(where + ("source",), f"{source!r} is not valid; allowed: {', '.join(SOURCES)}")
            continue
        if source == "requests":
            most = item.get("maxPercent5xx")
            if isinstance(most, bool) or not isinstance(most, (int, float)) or not 0 <= most <= 100:
                report(where + ("maxPercent5xx",), f"is required with source requests: a number from 0 to 100, "
                                                   f"got {most!r}")
                continue
            for extra in ("query", "maxValue", "resource"):
                if item.get(extra) is not None:
                    report(where + (extra,), "is for source appInsights")
            metrics.append(Metric(str(name), source, max_percent_5xx=float(most)))
        else:
            query, most, resource = item.get("query"), item.get("maxValue"), item.get("resource")
            if not isinstance(query, str) or not query.strip():
                report(where + ("query",), "is required with source appInsights: a KQL query returning one number "
                                           "({revision} stands for the canary revision's name)")
            if not isinstance(resource, str) or not ARM_ID.fullmatch(resource):
                report(where + ("resource",), "is required with source appInsights: the ARM id of the Application "
                                              "Insights component (/subscriptions/<id>/resourceGroups/<group>/providers"
                                              "/Microsoft.Insights/components/<name>) or Log Analytics workspace")
            if isinstance(most, bool) or not isinstance(most, (int, float)):
                report(where + ("maxValue",), f"is required with source appInsights: a number, got {most!r}")
                continue
            if item.get("maxPercent5xx") is not None:
                report(where + ("maxPercent5xx",), "is for source requests")
            metrics.append(Metric(str(name), source, query=str(query), max_value=float(most),
                                  resource=str(resource)))
    return Analysis(interval, limit, tuple(metrics))


# --- the state of one rollout -------------------------------------------------------------------
@dataclass
class State:
    """One rollout as the status store keeps it (row `rollout.<target>` / app). `tick` counts transitions: a step
    job carries the tick it was sent for and is stale once the state moved on; `by` is the job that made the last
    transition (a re-delivery of it only re-sends the follow-up job)."""

    app: str
    target: str
    revision: str
    stable: str
    canary: str
    rollout: Rollout
    resource_group: str
    subscription: str
    app_id: str = ""
    location: str = ""
    phase: str = PROGRESSING
    step: int = 0
    weight: int = 0
    due: float = 0.0
    next_analysis: float = 0.0
    failures: int = 0
    exposed_at: float = 0.0
    """When the canary first got a share of the traffic (0: not yet); request metrics are judged only over
    windows that start after it."""
    tick: int = 0
    by: str = ""
    reason: str = ""
    started_at: float = 0.0
    updated_at: float = 0.0
    analyses: list[dict[str, Any]] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.phase in ACTIVE

    def to_json(self) -> str:
        data = asdict(self)
        data["rollout"] = self.rollout.to_dict()
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "State":
        data = json.loads(text)
        data["rollout"] = Rollout.from_dict(data["rollout"])
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def strategy(self) -> str:
        """Canary or BlueGreen (the manifest's `spec.rollout.strategy`)."""
        return self.rollout.strategy

    def weights(self) -> dict[str, int]:
        """Traffic per revision as this state wants it (`traffic` by name)."""
        return {entry["revisionName"]: entry["weight"] for entry in traffic(self)}

    def view(self) -> dict[str, Any]:
        """What status, the CLI and the HTTP routes show."""
        steps = self.rollout.steps
        return {
            "app": self.app, "target": self.target, "revision": self.revision, "strategy": self.strategy,
            "phase": self.phase, "step": min(self.step, len(steps)), "steps": len(steps),
            "currentStep": steps[self.step].describe() if self.step < len(steps) and self.active else None,
            "stableRevision": self.stable, "canaryRevision": self.canary, "weights": self.weights(),
            "failures": self.failures, "reason": self.reason,
            "lastAnalysis": self.analyses[-1] if self.analyses else None,
        }


def start(*, app: str, target: str, revision: str, rollout: Rollout, stable: str, canary: str, resource_group: str,
          subscription: str, app_id: str, location: str, now: float) -> State:
    """A new rollout: the canary at 0%, step 0 next; begun at `now` (0: not yet, its first step job begins it)."""
    state = State(app=app, target=target, revision=revision, stable=stable, canary=canary,
                  rollout=rollout, resource_group=resource_group, subscription=subscription, app_id=app_id,
                  location=location, updated_at=now, reason="started")
    return begin(state, now) if now else state


def begin(state: State, now: float) -> State:
    """`state` started at `now`: its first analysis one interval later."""
    state.started_at = now
    _next_analysis(state, now)
    return state


def _next_analysis(state: State, now: float) -> None:
    if state.rollout.analysis:
        state.next_analysis = now + state.rollout.analysis.interval


def revision_suffix(revision: str) -> str:
    """The canary's revision suffix derived from the Git revision (`g` + 12 hex digits)."""
    return "g" + revision[:12].lower()


def traffic(state: State) -> list[dict[str, Any]]:
    """`ingress.traffic` for `state` (ARM's shape): the stable and the new revision by name; the new one labelled
    (canary or preview) while the rollout runs; after a promotion only the new revision, after a roll back only
    the stable one."""
    if state.phase == PROMOTED:
        return [{"revisionName": state.canary, "weight": 100}]
    if state.phase in (ROLLED_BACK, ABORTED):
        return [{"revisionName": state.stable, "weight": 100}]
    label = PREVIEW_LABEL if state.strategy == "BlueGreen" else CANARY_LABEL
    return [{"revisionName": state.stable, "weight": 100 - state.weight},
            {"revisionName": state.canary, "weight": state.weight, "label": label}]


# --- the step machine ---------------------------------------------------------------------------
def walk(state: State, now: float) -> State:
    """Carry the rollout from its current step as far as `now` allows: consecutive setWeights collapse into one
    weight (the last), a timed pause not yet over waits, a manual pause stops in phase Paused, after the last step
    it is Promoted. Returns the new state (a copy); what to write follows from it (`traffic`: only when the weight
    or the phase changed, so nothing while a pause is pending) and when to look again from `wake`."""
    state = replace(state, analyses=list(state.analyses))
    steps = state.rollout.steps
    while state.phase == PROGRESSING and state.step < len(steps):
        step = steps[state.step]
        if step.weight is not None:
            state.weight = step.weight
            if state.weight > 0 and not state.exposed_at:
                state.exposed_at = now
            state.step += 1
            state.reason = f"step {state.step}: {step.describe()}"
        elif step.manual:
            state.phase, state.reason = PAUSED, f"step {state.step + 1}: paused until promoted"
        else:
            if not state.due:
                state.due = now + (step.pause or 0)
            if now < state.due:
                state.reason = f"step {state.step + 1}: {step.describe()} until {state.due:.0f}"
                break
            state.due = 0.0
            state.step += 1
    if state.phase == PROGRESSING and state.step >= len(steps):
        state.phase, state.reason, state.weight = PROMOTED, "promoted after the last step", 100
    state.updated_at = now
    return state


def wake(state: State) -> float | None:
    """When the rollout's next job should run: at the end of the pending pause or the next analysis, whichever
    comes first; None when nothing is due (finished, or paused without analysis)."""
    if not state.active:
        return None
    times = []
    if state.phase == PROGRESSING and state.due:
        times.append(state.due)
    if state.rollout.analysis:
        times.append(state.next_analysis)
    return min(times) if times else None


def promote(state: State, now: float) -> State:
    """A manual promote: a Paused rollout goes on (past its manual pause step; one paused by an inconclusive analysis
    resumes the step it was at)."""
    state = replace(state, analyses=list(state.analyses))
    steps = state.rollout.steps
    if state.phase == PAUSED and state.step < len(steps) and steps[state.step].manual:
        state.step, state.due = state.step + 1, 0.0
    state.phase, state.updated_at = PROGRESSING, now
    state.reason = "promoted by hand"
    _next_analysis(state, now)
    return state


def finish(state: State, phase: str, reason: str, now: float) -> State:
    """`state` ended as RolledBack or Aborted (back to stable) with `reason`."""
    return replace(state, phase=phase, reason=reason, weight=0, due=0.0, updated_at=now, analyses=list(state.analyses))


# --- analysis -----------------------------------------------------------------------------------
PASS, FAIL, INCONCLUSIVE, NOT_YET = "pass", "fail", "inconclusive", "not yet"
"""A metric is `not yet` judged while its window starts before the canary had traffic; it counts for nothing."""


def judge_health(revision: Mapping[str, Any] | None) -> tuple[str, str]:
    """(verdict, why) of the canary revision from ARM's revision resource: failed provisioning, an unhealthy or
    failed revision, or no replica running is a failure; a revision still provisioning is inconclusive."""
    if not revision:
        return FAIL, "the canary revision is gone"
    props = revision.get("properties") or {}
    state, health, running = props.get("provisioningState"), props.get("healthState"), props.get("runningState")
    if state == "Failed" or health == "Unhealthy" or running in ("Failed", "Degraded"):
        detail = props.get("provisioningError") or props.get("runningStateDetails") or ""
        return FAIL, f"canary {state}/{health}/{running}" + (f": {detail}" if detail else "")
    if state != "Provisioned":
        return INCONCLUSIVE, f"canary is {state}"
    if not props.get("replicas"):
        least = ((props.get("template") or {}).get("scale") or {}).get("minReplicas") or 0
        if not least:                       # minReplicas 0: an idle revision scales to zero, which is not a failure
            return PASS, f"canary {health or 'healthy'}, scaled to zero (minReplicas 0)"
        return FAIL, f"no canary replica is running (minReplicas {least})"
    return PASS, f"canary {health or 'healthy'}, {props.get('replicas')} replica(s)"


def metrics_window(state: State, now: float, delay: float) -> tuple[float, float] | None:
    """The whole minutes the analysis at `now` reads request metrics over: the last `interval` (at least a minute)
    that ended `delay` seconds ago (Azure Monitor's ingestion delay); None while that window would start before the
    canary had any traffic (its requests cannot be judged yet: not a pass, not inconclusive)."""
    assert state.rollout.analysis is not None
    end = (int(now - delay) // 60) * 60
    start = end - max(60, -(-int(state.rollout.analysis.interval) // 60) * 60)
    if not state.exposed_at or start < state.exposed_at - state.exposed_at % 60:
        return None
    return float(start), float(end)


def judge_metric(metric: Metric, *, requests: float | None = None, errors_5xx: float | None = None,
                 value: float | None = None) -> dict[str, Any]:
    """One metric's result: {name, verdict, value, limit, why}. No requests or no value is inconclusive (never a
    pass)."""
    if metric.source == "requests":
        limit = metric.max_percent_5xx
        if requests is None or errors_5xx is None:
            return {"name": metric.name, "verdict": INCONCLUSIVE, "value": None, "limit": limit,
                    "why": "no request metrics for the canary"}
        if requests <= 0:
            return {"name": metric.name, "verdict": INCONCLUSIVE, "value": None, "limit": limit,
                    "why": "the canary served no requests in the interval"}
        rate = round(errors_5xx / requests * 100, 3)
        ok = rate <= (limit or 0)
        return {"name": metric.name, "verdict": PASS if ok else FAIL, "value": rate, "limit": limit,
                "why": f"5xx {rate}% of {requests:g} requests ({'<=' if ok else '>'} {limit:g}%)"}
    limit = metric.max_value
    if value is None:
        return {"name": metric.name, "verdict": INCONCLUSIVE, "value": None, "limit": limit,
                "why": "the query returned no value"}
    ok = value <= (limit or 0)
    return {"name": metric.name, "verdict": PASS if ok else FAIL, "value": value, "limit": limit,
            "why": f"{value:g} ({'<=' if ok else '>'} {limit:g})"}


def verdict(results: Iterable[Mapping[str, Any]]) -> str:
    """The interval's verdict: fail when any result failed, else inconclusive when any was, else pass (`not yet`
    results count for nothing)."""
    found = {r["verdict"] for r in results}
    return FAIL if FAIL in found else INCONCLUSIVE if INCONCLUSIVE in found else PASS


def record_analysis(state: State, results: list[dict[str, Any]], now: float) -> tuple[State, str]:
    """`state` with one interval's results: a failed interval counts; more than failureLimit failures rolls back
    (returned verdict "rollback"), an inconclusive one pauses the rollout for a person ("pause"), else "continue"."""
    analysis = state.rollout.analysis
    assert analysis is not None
    state = replace(state, analyses=list(state.analyses))
    judged = verdict(results)
    state.analyses = (state.analyses + [{"at": now, "verdict": judged, "weight": state.weight,
                                         "results": list(results)}])[-KEEP_ANALYSES:]
    state.next_analysis = now + analysis.interval
    if judged == FAIL:
        state.failures += 1
        if state.failures > analysis.failure_limit:
            why = "; ".join(f"{r['name']}: {r['why']}" for r in results if r["verdict"] == FAIL)
            return state, f"rollback: analysis failed {state.failures} time(s) (failureLimit {analysis.failure_limit}): {why}"
        return state, "continue"
    if judged == INCONCLUSIVE and state.phase == PROGRESSING:
        why = "; ".join(f"{r['name']}: {r['why']}" for r in results if r["verdict"] == INCONCLUSIVE)
        return state, f"pause: analysis inconclusive ({why}); promote to go on or abort"
    return state, "continue"


# --- step jobs ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    """A step job of the `rollout-steps` queue: walk rollout (target, app, revision) at `tick`."""

    target: str
    app: str
    revision: str
    tick: int
    id: str = ""

    def to_json(self) -> str:
        return json.dumps({"v": 1, "id": self.id or uuid.uuid4().hex, "target": self.target, "app": self.app,
                           "revision": self.revision, "tick": self.tick})


def parse_job(body: bytes | str) -> Job:
    """The job in `body`; BadJob (a ValueError) naming what is wrong when it is not one."""
    data = versioned(body, 1, "rollout step job")
    fields = {"target": str, "app": str, "revision": str, "tick": int, "id": str}
    for key, kind in fields.items():
        if not isinstance(data.get(key), kind) or isinstance(data.get(key), bool):
            raise BadJob(f"rollout step job field {key!r} is missing or not a {kind.__name__}")
    return Job(data["target"], data["app"], data["revision"], data["tick"], data["id"])


def job_for(state: State) -> Job:
    return Job(state.target, state.app, state.revision, state.tick, uuid.uuid4().hex)


def phase_event(state: State) -> "PhaseEvent":
    """The commit status of a rollout for CI (context `driftless/rollout/<target>/<app>`): pending while it walks,
    success once promoted, failure when rolled back or aborted (with the reason: the metric values)."""
    from shared.core.phases import FAILURE, PENDING, SUCCESS, PhaseEvent

    state_of = {PROMOTED: SUCCESS, ROLLED_BACK: FAILURE, ABORTED: FAILURE}.get(state.phase, PENDING)
    return PhaseEvent("driftless", state.revision, f"driftless/rollout/{state.target}/{state.app}", "Rollout",
                      state.app, state_of, not state.active, state.phase, state.reason, [f"App/{state.app}"])
