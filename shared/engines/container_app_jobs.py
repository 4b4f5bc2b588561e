"""The Container Apps jobs engine: `Job` manifests of one `aca` Target into its resource group (ARM).

plan = the live jobs of the Target's resource group (one paged GET) and, for each job Git declares
that exists, its executions (one GET, for health), compared with Git by
`shared.core.container_app_job.plan_jobs` under the App safety rules; reconcile = that plan applied
through `shared.adapters.container_apps` as apps are (`ArmKindEngine.apply`): each PUT, PATCH or DELETE
is started as fast as the subscription's ARM write budget allows and its operation polled from one loop.
Anything that goes wrong with one job becomes that job's `failed` outcome; listing the live jobs failing
raises (the caller retries the pass). A job whose operation still runs is left alone, as an app is. A
job's health is its latest execution's status; a job that failed is never re-applied (that would not
run it again).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterable, Mapping

from shared.adapters.container_apps import JOBS, Operation
from shared.core import container_app_job
from shared.core.container_app_job import Job
from shared.core.image_policy import APP_CONTAINERS, Followed, followed
from shared.core.manifests import Problem
from shared.core.outcome import Outcome
from shared.core.plan import Plan, Step
from shared.engines.engine import ArmKindEngine, VERDICTS, check_workload_profiles


class ContainerAppJobsEngine(ArmKindEngine):
    """Plans and reconciles the `Job` manifests of one Target of kind `aca`."""

    kind = Job
    span = "apply job"

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
    def _begin(self, step: Step, revision: str) -> Operation:
        rg, name = self.target.resource_group, step.app.split("/", 1)[1]
        if step.kind == "delete":
            return self.aca.begin("delete", rg, name, resource=JOBS)
        job: Job = step.desired  # type: ignore[assignment]
        tags = container_app_job.ownership_tags(job, self.target, self.settings.instance, revision)
        if step.kind == "create":
            return self.aca.begin("create", rg, name, container_app_job.create_body(
                job, location=self._environment_location(), environment_id=self.target.environment_id, tags=tags),
                resource=JOBS)
        return self.aca.begin("update", rg, name, container_app_job.update_patch(job, step.live or {}, tags=tags),
                              resource=JOBS)

    def _finished(self, step: Step, revision: str, live: dict[str, Any]) -> Outcome:
        diff = [c.to_dict() for c in step.changes]
        if step.kind == "delete":
            return Outcome(step.app, "deleted", step.reason, diff, revision)
        health = container_app_job.health(live, None)
        if health.healthy and step.health is not None:    # an update leaves the latest execution as it was
            health = step.health
        return Outcome(step.app, VERDICTS[step.kind], step.reason, diff, revision, healthy=health.healthy,
                       health_reason=health.reason)
