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

import time
from typing import Iterable, Mapping

from shared.adapters.container_apps import ApplyFailed, Operation, OperationInProgress
from shared.core import container_app
from shared.core.image_policy import APP_CONTAINERS, Followed, followed
from shared.core.manifests import App, Problem
from shared.core.outcome import Outcome, PassResult
from shared.core.plan import Plan, Step, make_plan
from shared.engines.engine import (
    ArmKindEngine,
    VERDICTS,
    Pending,
    Progress,
    apply_started,
    check_workload_profiles,
    dry_run_outcome,
    failed,
    verdict,
)


class ContainerAppsEngine(ArmKindEngine):
    """Plans and reconciles one Target of kind `aca`."""

    kind = App

    def plan(self, revision: str, desired: list[App], problems: list[Problem], *, only: str | None = None,
             suspended: Iterable[str] = (), backoff: Mapping[str, str] | None = None) -> Plan:
        live = self.aca.list_apps(self.target.resource_group)
        plan = make_plan(target=self.target, instance=self.settings.instance, apps=desired, problems=problems,
                         live=live, suspended=suspended, only=only, backoff=backoff)
        check_workload_profiles(plan, self._environment)
        return plan

    def apply(self, revision: str, plan: Plan, problems: list[Problem], *, dry_run: bool = False,
              progress: Progress | None = None) -> PassResult:
        """Apply a plan made by `plan` (writes paced by the ARM budget, operations polled from one loop; one app's
        failure never stops the others)."""
        return apply_started(self.target, revision, plan, problems, lambda step: self._start(step, revision, dry_run),
                             lambda step, op: self._poll(step, revision, op), dry_run=dry_run,
                             concurrency=self.settings.concurrency, progress=progress, span="apply app")

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
        """Send the step's write (nothing for steps that write nothing or a dry run); its outcome, or its pending
        operation."""
        if not step.writes:
            return verdict(step, revision)
        if dry_run:
            return dry_run_outcome(step, revision)
        rg, aca = self.target.resource_group, self.aca

        def begin() -> Operation:
            if step.kind == "delete":
                return aca.begin("delete", rg, step.app)
            tags = container_app.ownership_tags(step.desired, self.target, self.settings.instance, revision)
            if step.kind == "create":
                body = container_app.create_body(step.desired, location=self._environment_location(),
                                                 environment_id=self.target.environment_id, tags=tags)
                return aca.begin("create", rg, step.app, body)
            suffix = f"r{int(time.time() * 1000) % 10**10}" if step.kind == "reapply" else None
            return aca.begin("update", rg, step.app, container_app.update_patch(
                step.desired, step.live, tags=tags, revision_suffix=suffix))

        return self._guarded(step, revision, lambda: self._look(step, revision, begin()))

    def _poll(self, step: Step, revision: str, op: Operation) -> Outcome | Pending:
        """One look at the step's pending operation: its outcome once it ended, else when to look again."""
        return self._guarded(step, revision, lambda: self._look(step, revision, op))

    def _look(self, step: Step, revision: str, op: Operation) -> Outcome | Pending:
        live = self.aca.poll(op)
        if live is None:
            return Pending(op, op.next_poll)
        diff = [c.to_dict() for c in step.changes]
        if step.kind == "delete":
            return Outcome(step.app, "deleted", step.reason, diff, revision)
        health = container_app.health(live)
        reason = health.reason
        if not health.healthy and health.revision:
            reason = self.aca.revision_problem(self.target.resource_group, step.app, health.revision)
        said = f"re-applied ({step.reason})" if step.kind == "reapply" else step.reason
        return Outcome(step.app, VERDICTS[step.kind], said, diff, revision, healthy=health.healthy,
                       health_reason=reason)

    @staticmethod
    def _guarded(step: Step, revision: str, call) -> Outcome | Pending:
        """`call()`, with anything that goes wrong as the step's outcome (never raised: the pass goes on)."""
        diff = [c.to_dict() for c in step.changes]
        try:
            return call()
        except OperationInProgress as exc:  # someone else's operation started after the plan: wait for it
            return Outcome(step.app, "skipped", f"operation in progress ({exc}); left alone, the next pass looks "
                                                "again", diff, revision, healthy=False,
                           health_reason="operation in progress")
        except ApplyFailed as exc:
            return Outcome(step.app, "failed", f"{step.kind} failed: {exc}", diff, revision)
        except Exception as exc:  # one app's surprise must not stop the pass
            return failed(step, revision, exc)
