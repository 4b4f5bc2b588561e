"""The Container Apps jobs engine: `Job` manifests of one `aca` Target into its resource group (ARM).

plan = the live jobs of the Target's resource group (one paged GET) and, for each job Git declares
that exists, its executions (one GET, for health), compared with Git by
`shared.core.container_app_job.plan_jobs` under the App safety rules; reconcile = that plan applied
with bounded concurrency through `shared.adapters.container_apps`. Anything that goes wrong with one
job becomes that job's `failed` outcome; listing the live jobs failing raises (the caller retries
the pass). A job whose operation still runs is left alone, as an app is. A job's health is its
latest execution's status; a job that failed is never re-applied (that would not run it again).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterable, Mapping

from shared.adapters.container_apps import ApplyFailed, OperationInProgress
from shared.core import container_app_job
from shared.core.container_app_job import Job
from shared.core.image_policy import APP_CONTAINERS, Followed, followed
from shared.core.manifests import Problem
from shared.core.outcome import Outcome, PassResult
from shared.core.plan import Plan, Step
from shared.engines.engine import (
    ArmKindEngine,
    VERDICTS,
    Progress,
    apply_plan,
    check_workload_profiles,
    dry_run_outcome,
    failed,
    verdict,
)


class ContainerAppJobsEngine(ArmKindEngine):
    """Plans and reconciles the `Job` manifests of one Target of kind `aca`."""

    kind = Job

    def plan(self, revision: str, desired: list[Job], problems: list[Problem], *, only: str | None = None,
             suspended: Iterable[str] = (), backoff: Mapping[str, str] | None = None) -> Plan:
        rg = self.target.resource_group
        live = self.aca.list_jobs(rg)
        names = {r.get("name") for r in live}
        wanted = [j.name for j in desired if j.name in names and (only is None or j.key == only)]
        latest: dict[str, dict[str, Any] | None] = {}
        if wanted:
            with ThreadPoolExecutor(max_workers=self.settings.concurrency, thread_name_prefix="executions") as pool:
                latest = dict(zip(wanted, pool.map(self._latest, wanted)))
        plan = container_app_job.plan_jobs(target=self.target, instance=self.settings.instance, jobs=desired,
                                           problems=problems, live=live, latest=latest, suspended=suspended,
                                           only=only)
        check_workload_profiles(plan, lambda: self.aca.environment(self.target.environment_id))
        return plan

    def _latest(self, name: str) -> dict[str, Any] | None:
        """The job's latest execution (None when it never ran); reading it failing raises, as listing does."""
        return container_app_job.latest_execution(self.aca.executions(self.target.resource_group, name))

    def apply(self, revision: str, plan: Plan, problems: list[Problem], *, dry_run: bool = False,
              progress: Progress | None = None) -> PassResult:
        """Apply a plan made by `plan` (bounded concurrency; one job's failure never stops the others)."""
        return apply_plan(self.target, revision, plan, problems, lambda step: self._apply(step, revision, dry_run),
                          dry_run=dry_run, concurrency=self.settings.concurrency, progress=progress, span="apply job")

    def followed(self, desired: list[Job]) -> list[Followed]:
        found = []
        for job in desired:
            body = {"spec": {"containers": [{"name": c.name, "image": c.image} for c in job.containers]}}
            item = followed(self.target.name, job.file, job.key, container_app_job.KIND, job.name, None,
                            job.annotations, body, APP_CONTAINERS)
            if item is not None:
                found.append(item)
        return found

    # --- one step ----------------------------------------------------------------------------
    def _apply(self, step: Step, revision: str, dry_run: bool) -> Outcome:
        if not step.writes:
            return verdict(step, revision)
        if dry_run:
            return dry_run_outcome(step, revision)
        diff = [c.to_dict() for c in step.changes]
        rg, aca = self.target.resource_group, self.aca
        name = step.app.split("/", 1)[1]
        try:
            if step.kind == "delete":
                aca.delete_job(rg, name)
                return Outcome(step.app, "deleted", step.reason, diff, revision)
            job: Job = step.desired  # type: ignore[assignment]
            tags = container_app_job.ownership_tags(job, self.target, self.settings.instance, revision)
            if step.kind == "create":
                live = aca.create_job(rg, name, container_app_job.create_body(
                    job, location=self._environment_location(), environment_id=self.target.environment_id,
                    tags=tags))
            else:
                live = aca.update_job(rg, name, container_app_job.update_patch(job, step.live or {}, tags=tags))
        except OperationInProgress as exc:  # someone else's operation started after the plan: wait for it
            return Outcome(step.app, "skipped", f"operation in progress ({exc}); left alone, the next pass looks "
                                                "again", diff, revision, healthy=False,
                           health_reason="operation in progress")
        except ApplyFailed as exc:
            return Outcome(step.app, "failed", f"{step.kind} failed: {exc}", diff, revision)
        except Exception as exc:  # one job's surprise must not stop the pass
            return failed(step, revision, exc)
        health = container_app_job.health(live, None)
        if health.healthy and step.health is not None:    # an update leaves the latest execution as it was
            health = step.health
        return Outcome(step.app, VERDICTS[step.kind], step.reason, diff, revision, healthy=health.healthy,
                       health_reason=health.reason)
