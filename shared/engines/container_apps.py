"""The Container Apps engine: `App` manifests of one Target into one Container Apps environment (ARM).

plan = the live list of the Target's resource group (one paged GET) compared with Git by
`shared.core.plan.make_plan`; reconcile = that plan applied through `shared.adapters.container_apps`: writes
are started as fast as the subscription's ARM write budget allows and every pending operation is polled from
one loop (`apply_started`), no thread waits on an operation. Anything that goes wrong with one app becomes that app's
`failed` outcome and never stops the others; listing the live apps failing raises (the caller
retries the whole pass). An app whose operation still runs is never written: planning leaves it
`skipped` (unhealthy, with the reason), and a write ARM refuses with 409 because an operation
started after the plan is reported the same way, not as a failure.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Iterable, Mapping

from shared.adapters import storage
from shared.adapters.container_apps import Operation
from shared.core import container_app, rollout as rollouts
from shared.core.queues import ROLLOUT_QUEUE
from shared.core.image_policy import APP_CONTAINERS, Followed, followed
from shared.core.manifests import App, Problem
from shared.core.outcome import Outcome
from shared.core.plan import Plan, Step, make_plan
from shared.engines.engine import VERDICTS, ArmKindEngine, Pending, check_workload_profiles, guarded, verdict


class ContainerAppsEngine(ArmKindEngine):
    """Plans and reconciles the `App`s of one Target of kind `aca`."""

    kind = App
    span = "apply app"

    def plan(self, revision: str, desired: list[App], problems: list[Problem], *, only: str | None = None,
             suspended: Iterable[str] = (), backoff: Mapping[str, str] | None = None) -> Plan:
        live = self.aca.list_apps(self.target.resource_group)
        plan = make_plan(target=self.target, instance=self.settings.instance, apps=desired, problems=problems,
                         live=live, suspended=suspended, only=only, backoff=backoff)
        check_workload_profiles(plan, self._environment)
        self._plan_rollouts(plan, revision)
        return plan

    def _plan_rollouts(self, plan: Plan, revision: str) -> None:
        """Apps with `spec.rollout`: an update that creates a revision (containers, init containers, volumes, ...;
        during a running rollout any template change) of an app with a healthy stable revision is marked to start a
        rollout (new revision at 0%, traffic pinned to the stable one); other updates apply at once. An unhealthy
        app whose latest revision is a rollout's canary is not re-applied: the rollout (or its roll back) owns it. A
        canary the engine created at 0% whose rollout was never stored (the status store failed right after the
        write) gets its rollout started by the next pass, without a write."""
        steps = [s for s in plan.steps if s.kind in ("update", "reapply", "unchanged") and s.desired is not None
                 and s.desired.rollout is not None]
        if not steps:
            return
        states = {s.app: s for s in self.store.rollouts(self.target.name)} if self.store is not None else {}
        for step in steps:
            if step.kind == "unchanged":
                if self.store is not None:
                    _resume_stranded(step, states.get(step.app))
                continue
            state, live = states.get(step.app), step.live or {}
            latest = (live.get("properties") or {}).get("latestRevisionName") or ""
            running = state is not None and state.active
            if step.kind == "reapply" and state is not None and latest.lower() == state.canary.lower():
                step.kind = "unchanged"
                step.reason += (f"; not re-applied: revision {latest} is the canary of a rollout "
                                f"({state.phase}: {state.reason})")
                continue
            if step.kind == "reapply" or not any(_creates_revision(c.path, running) for c in step.changes):
                _follow_latest(step, live, latest, running)
                continue
            if self.store is None:
                step.reason += "; no status store: applied at once, without a rollout"
                _follow_latest(step, live, latest, running)
                continue
            stable = state.stable if running else stable_revision(live)
            if not stable or (not running and not self._healthy(step.app, stable)):
                step.reason += "; no healthy stable revision to shift traffic from: applied at once"
                _follow_latest(step, live, latest, running, force=True)   # the new revision takes the traffic
                continue
            suffix = step.desired.sections.get(("properties", "template", "revisionSuffix")) or \
                rollouts.revision_suffix(revision)
            canary = f"{step.app}--{suffix}"
            if canary.lower() in (stable.lower(), latest.lower()):
                step.reason += f"; revision {canary} exists already: applied at once"
                continue
            step.rollout = {"stable": stable, "canary": canary, "suffix": suffix,
                            "aborts": state.canary if running else None}
            step.reason += (f"; new revision {canary} at 0%, {step.desired.rollout.strategy} rollout from {stable}"
                            + (f" (aborts the rollout of {state.revision[:12]})" if running else ""))

    def _healthy(self, app: str, revision: str) -> bool:
        """Whether `revision` (the one serving the app's traffic) is healthy, judged on the revision itself: the
        app's own health follows its latest revision, which after a roll back is the failed canary."""
        verdict, _ = rollouts.judge_health(self.aca.revisions(self.target.resource_group, app).get(revision))
        return verdict == rollouts.PASS

    def followed(self, desired: list[App]) -> list[Followed]:
        found = []
        for app in desired:
            body = {"spec": {"containers": [{"name": c.name, "image": c.image} for c in app.containers]}}
            item = followed(self.target.name, app.file, app.name, "App", app.name, None, app.annotations, body,
                            APP_CONTAINERS)
            if item is not None:
                found.append(item)
        return found

    # --- one step ----------------------------------------------------------------------------
    def _start(self, step: Step, revision: str, dry_run: bool) -> Outcome | Pending:
        """As every kind (`ArmKindEngine._start`), except a stranded canary's rollout, which starts with no write."""
        if step.rollout and step.rollout.get("resume") and not dry_run:
            return guarded(step, revision, lambda: self._resume_rollout(step, revision))
        return super()._start(step, revision, dry_run)

    def _resume_rollout(self, step: Step, revision: str) -> Outcome:
        outcome = verdict(step, revision)
        outcome.reason = self._start_rollout(step, revision, step.live or {}, outcome.reason)
        return outcome

    def _begin(self, step: Step, revision: str) -> Operation:
        """Send the step's write: create (PUT), update or re-apply (merge patch; a rollout's start pins the traffic
        to the stable revision and names the canary), delete."""
        rg, aca = self.target.resource_group, self.aca
        if step.kind == "delete":
            return aca.begin("delete", rg, step.app)
        tags = container_app.ownership_tags(step.desired, self.target, self.settings.instance, revision)
        if step.kind == "create":
            body = container_app.create_body(step.desired, location=self._environment_location(),
                                             environment_id=self.target.environment_id, tags=tags)
            return aca.begin("create", rg, step.app, body)
        suffix = f"r{int(time.time() * 1000) % 10**10}" if step.kind == "reapply" else None
        starts = bool(step.rollout and "canary" in step.rollout)
        if starts:
            suffix = step.rollout["suffix"]
        patch = container_app.update_patch(step.desired, step.live, tags=tags, revision_suffix=suffix)
        if starts:
            patch["properties"]["configuration"]["ingress"]["traffic"] = rollouts.traffic(
                self._rollout_state(step, revision))
        elif step.rollout and step.rollout.get("follow_latest"):
            patch["properties"]["configuration"]["ingress"]["traffic"] = [{"latestRevision": True, "weight": 100}]
        if step.rollout and step.rollout.get("new_suffix"):
            patch["properties"]["template"]["revisionSuffix"] = ""
        return aca.begin("update", rg, step.app, patch)

    def _finished(self, step: Step, revision: str, live: dict[str, Any]) -> Outcome:
        """The outcome once the write's operation succeeded: the app's health (with the failing revision's own
        reason), and a rollout started when the write created its canary."""
        diff = [c.to_dict() for c in step.changes]
        if step.kind == "delete":
            return Outcome(step.app, "deleted", step.reason, diff, revision)
        health = container_app.health(live)
        reason = health.reason
        if not health.healthy and health.revision:
            reason = self.aca.revision_problem(self.target.resource_group, step.app, health.revision)
        said = f"re-applied ({step.reason})" if step.kind == "reapply" else step.reason
        if step.rollout and "canary" in step.rollout:
            said = self._start_rollout(step, revision, live, said)
        return Outcome(step.app, VERDICTS[step.kind], said, diff, revision, healthy=health.healthy,
                       health_reason=reason)

    def _rollout_state(self, step: Step, revision: str, live: dict[str, Any] | None = None) -> rollouts.State:
        """The new rollout of `step` (an update marked by `_plan_rollouts`), not started yet: its step jobs stamp
        the times with the rollout service's clock."""
        live = live or step.live or {}
        return rollouts.start(app=step.app, target=self.target.name, revision=revision, rollout=step.desired.rollout,
                              stable=step.rollout["stable"], canary=step.rollout["canary"],
                              resource_group=self.target.resource_group, subscription=self.target.subscription_id,
                              app_id=str(live.get("id") or ""), location=str(live.get("location") or ""), now=0.0)

    def _start_rollout(self, step: Step, revision: str, live: dict[str, Any], said: str) -> str:
        """After the write that created the canary at 0%: the rollout it aborts (if any) loses its canary, the new
        one is recorded in the status store and its first step job is queued. Returns the outcome's reason."""
        state = self._rollout_state(step, revision, live)
        aborted = step.rollout.get("aborts")
        if aborted:
            try:
                self.aca.revisions(self.target.resource_group, step.app).deactivate(aborted)
            except Exception as exc:   # the new rollout goes on; the old canary has no traffic either way
                log.warning("could not deactivate revision %s of the aborted rollout of %s: %s", aborted, step.app,
                            exc)
        self.store.put_rollout(state)
        storage.send(ROLLOUT_QUEUE, rollouts.job_for(state).to_json(), self.store.env)
        return f"{said}; rollout started"


log = logging.getLogger("driftless.engine")
_REVISION_PATHS = ("containers", "initContainers", "template.")
"""View paths whose change makes ACA create a revision and so starts a rollout (`template.scale` excepted, unless
a rollout runs: a scale change alone applies at once)."""


def _follow_latest(step: Step, live: Mapping[str, Any], latest: str, running: bool, *, force: bool = False) -> None:
    """A write applied at once to an app with a rollout, while none runs and its latest revision serves all traffic
    (pinned by name after a promotion): traffic goes to the latest revision again, so a revision this write makes
    (a scale change, a re-apply) takes it at once, as without a rollout. After a roll back (the latest revision is the
    failed canary) traffic stays on the stable revision, unless `force` (the revision serving the traffic is
    unhealthy: the write's new revision takes it at once). A write that makes a revision while the live template keeps
    a rollout's revision suffix (Git sets none) clears it, so ARM names the new revision (a suffix is used once)."""
    if force or (not running and latest and stable_revision(live).lower() == latest.lower()):
        step.rollout = {"follow_latest": True}
    template = ((live.get("properties") or {}).get("template") or {})
    owned = ("properties", "template", "revisionSuffix") in step.desired.sections
    if (step.kind == "update" and template.get("revisionSuffix") and not owned
            and any(_creates_revision(c.path, True) for c in step.changes)):
        step.rollout = {**(step.rollout or {}), "new_suffix": True}   # the rollout's suffix is taken: ARM names it


def _resume_stranded(step: Step, state: rollouts.State | None) -> None:
    """Mark an unchanged app whose live traffic still has the shape a rollout's start wrote (the stable revision by
    name at 100%, the latest revision at 0% with the canary or preview label) but whose rollout the store does not
    know: its rollout is started, from that canary, when the plan is applied."""
    live = step.live or {}
    props = live.get("properties") or {}
    latest = str(props.get("latestRevisionName") or "")
    traffic = ((props.get("configuration") or {}).get("ingress") or {}).get("traffic") or []
    labelled = [t for t in traffic if isinstance(t, dict) and str(t.get("revisionName") or "").lower() == latest.lower()
                and t.get("label") in (rollouts.CANARY_LABEL, rollouts.PREVIEW_LABEL) and not t.get("weight")]
    stable = stable_revision(live)
    if not latest or not labelled or not stable or stable.lower() == latest.lower():
        return
    if state is not None and state.canary.lower() == latest.lower():
        return                                  # its rollout is known (running, or ended: nothing to resume)
    step.rollout = {"stable": stable, "canary": latest, "resume": True}
    step.reason = (f"{step.reason}; revision {latest} waits at 0% with no rollout (the store missed its start): "
                   "the rollout starts").lstrip("; ")


def _creates_revision(path: str, running: bool) -> bool:
    if running and (path.startswith("scale") or path.startswith("template.")):
        return True
    return path.startswith(_REVISION_PATHS) and not path.startswith("template.scale")


def stable_revision(resource: Mapping[str, Any]) -> str:
    """The revision serving the app now: the one ingress gives the most traffic by name, else (traffic to the
    latest revision) the latest ready one; "" when there is none."""
    props = resource.get("properties") or {}
    traffic = ((props.get("configuration") or {}).get("ingress") or {}).get("traffic") or []
    named = [t for t in traffic if isinstance(t, dict) and t.get("revisionName") and (t.get("weight") or 0) > 0]
    if named:
        return str(max(named, key=lambda t: t.get("weight") or 0)["revisionName"])
    return str(props.get("latestReadyRevisionName") or "")

