"""Container Apps jobs (`kind: Job`): the manifest, its ARM body and patch, drift, health and the plan. No I/O.

A Job manifest is ARM's `Microsoft.App/jobs` flattened one level under `spec`, exactly as an App:
what ARM keeps under `properties.configuration` (triggerType, replicaTimeout, replicaRetryLimit, the
trigger's own configuration, secrets, registries, identitySettings), `properties.template`
(containers, initContainers, volumes) and `properties` (workloadProfileName) sits directly under
`spec`. Containers (flat cpu/memory), secrets (Key Vault references only), registries and identity
are read by the App readers. The configuration block of the job's `triggerType` is the only one
allowed (Schedule and Event need theirs; Manual's is optional and defaults as ARM does).

Drift follows the App rules (`arm_json`): Git owns what the manifest declares, ARM's defaults
(parallelism, replicaCompletionCount, execution limits, resources) never drift, named lists are
compared by key, and a change is one merge PATCH built on the live job. A job is Driftless's when
its tags say so (the App ownership tags). Health is the latest execution's status.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from shared.core import app_sections, arm_json, container_app, image_policy
from shared.core.container_app import (
    TAG_OWNER,
    TAG_REVISION,
    TAG_SPEC_HASH,
    TAG_TARGET,
    Health,
    environment_of,
    operation_in_progress,
)
from shared.core.manifests import (
    API_VERSION,
    APP_NAME,
    Container,
    Identity,
    Problem,
    Registry,
    SecretRef,
    Target,
    _check_size,
    _Check,
    _declared_secrets,
    _kind,
    _read_containers,
    _read_identity,
    _read_registries,
    _read_secrets,
)
from shared.core.plan import Plan, Step, drift, invalid_steps, is_owned, plan_prune, preflight, wait_for

KIND = "Job"
ROOT = "JobProperties"
"""The schema model of a job's `properties` (aca_schema)."""
TRIGGER_TYPE = ("properties", "configuration", "triggerType")
TRIGGER_CONFIGS = {"Manual": "manualTriggerConfig", "Schedule": "scheduleTriggerConfig", "Event": "eventTriggerConfig"}
"""triggerType -> the configuration block that goes with it."""
SPEC_FIELDS: dict[str, app_sections.ArmPath] = {
    "triggerType": TRIGGER_TYPE,
    "replicaTimeout": ("properties", "configuration", "replicaTimeout"),
    "replicaRetryLimit": ("properties", "configuration", "replicaRetryLimit"),
    **{key: ("properties", "configuration", key) for key in TRIGGER_CONFIGS.values()},
    "identitySettings": ("properties", "configuration", "identitySettings"),
    "volumes": ("properties", "template", "volumes"),
    "workloadProfileName": ("properties", "workloadProfileName"),
}
"""Job fields directly under `spec` (besides containers, initContainers, secrets, registries, identity, suspend)
and where ARM keeps them."""
UNHEALTHY_EXECUTIONS = ("Failed", "Degraded")
"""Execution statuses that make a job unhealthy (Running, Processing, Succeeded, Stopped, Unknown do not)."""

_CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day-of-month", 1, 31, ()),
    ("month", 1, 12, ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")),
    ("day-of-week", 0, 7, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")),
)
_NUMBER = re.compile(r"^\d+$")


@dataclass(frozen=True)
class Job:
    """A Container Apps job as Git wants it. Optional sections left as None are not owned by Git."""

    name: str
    containers: tuple[Container, ...]
    file: str
    document: int
    init_containers: tuple[Container, ...] | None = None
    secrets: tuple[SecretRef, ...] | None = None
    registries: tuple[Registry, ...] | None = None
    identity: Identity | None = None
    sections: Mapping[tuple[str, ...], Any] = field(default_factory=dict, hash=False)
    """Git-owned ARM fragments by their place in the resource, e.g. ("properties", "configuration", "replicaTimeout")."""
    suspend: bool = False
    annotations: Mapping[str, str] | None = field(default=None, hash=False)

    @property
    def key(self) -> str:
        """What outcomes, suspensions and the status store call this job: `Job/<name>`."""
        return f"{KIND}/{self.name}"

    @property
    def trigger_type(self) -> str:
        """Manual, Schedule or Event (ARM's casing)."""
        return str(self.sections[TRIGGER_TYPE])


def is_job_key(key: str | None) -> bool:
    return bool(key) and str(key).startswith(KIND + "/")


# --- the manifest --------------------------------------------------------------------------------
def cron_problem(expression: Any) -> str | None:
    """Why `expression` is not the 5-field cron ACA accepts (minute hour day-of-month month day-of-week, in UTC:
    `*`, lists `a,b`, ranges `a-b`, steps `*/n` `a-b/n` `a/n`, month names JAN-DEC and weekday names SUN-SAT,
    day-of-week 0-7 with 0 and 7 both Sunday), or None when it is one."""
    if not isinstance(expression, str) or not expression.strip():
        return "must be a cron expression such as '0 2 * * *' (minute hour day-of-month month day-of-week)"
    parts = expression.split()
    if len(parts) != 5:
        return (f"{expression!r} has {len(parts)} field(s); ACA takes 5: minute hour day-of-month month day-of-week "
                "(no seconds, no year, no @hourly), e.g. '0 2 * * *'")
    for part, (label, low, high, names) in zip(parts, _CRON_FIELDS):
        for item in part.split(","):
            base, slash, step = item.partition("/")
            if slash and not (_NUMBER.fullmatch(step) and int(step) > 0):
                return f"{expression!r}: the {label} field has step '/{step}'; a step is a whole number of at least 1"
            if base == "*":
                continue
            bounds = base.split("-")
            if len(bounds) > 2 or not all(bounds):
                return f"{expression!r}: the {label} field '{part}' is not a value, range or list"
            values = []
            for bound in bounds:
                if bound.upper() in names:
                    values.append(names.index(bound.upper()) + low)
                elif _NUMBER.fullmatch(bound) and low <= int(bound) <= high:
                    values.append(int(bound))
                else:
                    allowed = f"{low}-{high}" + (f" or {names[0]}-{names[-1]}" if names else "")
                    return f"{expression!r}: '{bound}' is not allowed in the {label} field ({allowed})"
            if len(values) == 2 and values[0] > values[1]:
                return f"{expression!r}: the {label} range '{base}' goes backwards"
    return None


def read_job(doc: Any, check: _Check) -> Job | None:
    """Read and validate one `kind: Job` document (problems go to `check`); the Job, or None when its name is bad."""
    if not isinstance(doc, Mapping):
        check.add((), f"a manifest must be a mapping, got {_kind(doc)}")
        return None
    if doc.get("apiVersion") != API_VERSION:
        check.add(("apiVersion",), f"unsupported apiVersion '{doc.get('apiVersion')}' for kind Job; allowed: {API_VERSION}")
        return None
    check.mapping(doc, (), ("apiVersion", "kind", "metadata", "spec", "status"), ("metadata", "spec"))
    meta = check.mapping(doc.get("metadata"), ("metadata",), ("name", "labels", "annotations", "namespace"), ("name",))
    name = check.string(meta.get("name"), ("metadata", "name"), APP_NAME,
                        "2-32 characters, lowercase letters, digits and '-', starting with a letter "
                        "and not ending with '-'")
    if name and "--" in name:
        check.add(("metadata", "name"), f"'{name}' is not valid: '--' is not allowed in a Container Apps job name")
    annotations = meta.get("annotations")
    if annotations is not None and not isinstance(annotations, Mapping):
        check.add(("metadata", "annotations"), f"must be a mapping, got {_kind(annotations)}")
    for path, message in image_policy.read_policy(
            annotations, image_policy.container_names(doc, image_policy.APP_CONTAINERS))[1]:
        check.add(path, message)
    spec = check.mapping(doc.get("spec"), ("spec",), ("containers", "initContainers", "secrets", "registries",
                                                      "identity", "suspend", *SPEC_FIELDS),
                         ("triggerType", "replicaTimeout", "containers"))
    secrets = _read_secrets(spec.get("secrets"), check, False)
    identity = _read_identity(spec.get("identity"), check)
    sections = app_sections.Sections(check.add, secrets=None if secrets is None else [s.name for s in secrets],
                                     identities=identity.user_assigned if identity else (),
                                     system_identity=bool(identity and "SystemAssigned" in identity.type))
    sections.read_spec(spec, SPEC_FIELDS, root=ROOT)
    _check_trigger(spec, sections, check)
    declared = _declared_secrets(spec.get("secrets"))
    containers = _read_containers(spec.get("containers"), check, False, None, sections=sections, declared=declared)
    init_containers = None
    if spec.get("initContainers") is not None:
        init_containers = _read_containers(spec["initContainers"], check, False, None, sections=sections,
                                           declared=declared, path=("spec", "initContainers"))
    complete = (isinstance(spec.get("containers"), list) and len(containers) == len(spec["containers"])
                and (init_containers is None or len(init_containers) == len(spec["initContainers"])))
    if containers and complete and spec.get("workloadProfileName") in (None, "Consumption"):
        _check_size(containers, init_containers or (), check)
    sections.check_mounts((("spec", group_name, i, "volumeMounts", j, "volumeName"), mount.get("volumeName"))
                          for group_name, group in (("containers", containers), ("initContainers", init_containers or ()))
                          for i, container in enumerate(group)
                          for j, mount in enumerate(container.extra.get("volumeMounts") or ()))
    registries = _read_registries(spec.get("registries"), check, secrets)
    sections.identity_uses(spec)
    if not name or TRIGGER_TYPE not in sections.owned:
        return None
    return Job(name=name, containers=containers, file=check.file, document=check.document,
               init_containers=init_containers, secrets=secrets, registries=registries, identity=identity,
               sections=sections.owned, suspend=check.boolean(spec.get("suspend"), ("spec", "suspend"), False),
               annotations=dict(annotations) if isinstance(annotations, Mapping) else None)


def _check_trigger(spec: Mapping[str, Any], sections: app_sections.Sections, check: _Check) -> None:
    """The block of `triggerType` (required for Schedule and Event) and no other; the cron of a schedule; counts,
    limits and scale rules of the trigger; replicaTimeout and replicaRetryLimit in range."""
    trigger = sections.owned.get(TRIGGER_TYPE)
    for key, low in (("replicaTimeout", 1), ("replicaRetryLimit", 0)):
        value = spec.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value < low:
            check.add(("spec", key), f"must be {low} or more{' seconds' if key == 'replicaTimeout' else ''}, got {value}")
    if trigger not in TRIGGER_CONFIGS:
        return
    own = TRIGGER_CONFIGS[trigger]
    for other, key in TRIGGER_CONFIGS.items():
        if key != own and spec.get(key) is not None:
            check.add(("spec", key), f"is not allowed with triggerType {trigger} (it goes with triggerType {other}); "
                                     f"{'an' if trigger == 'Event' else 'a'} {trigger} job takes {own}")
    config = spec.get(own)
    if config is None:
        if trigger != "Manual":
            check.add(("spec", own), f"is required with triggerType {trigger}"
                                     + (": cronExpression, e.g. {cronExpression: '0 2 * * *'}" if trigger == "Schedule"
                                        else ": scale with at least one KEDA rule"))
        return
    if not isinstance(config, Mapping):
        return
    path = ("spec", own)
    for key in ("parallelism", "replicaCompletionCount"):
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value < 1:
            check.add(path + (key,), f"must be 1 or more, got {value}")
    if trigger == "Schedule":
        problem = cron_problem(config.get("cronExpression"))
        if problem and config.get("cronExpression") is None:
            check.add(path + ("cronExpression",), "is required: when the job runs, e.g. '0 2 * * *' (daily at 02:00 UTC)")
        elif problem:
            check.add(path + ("cronExpression",), problem)
    if trigger == "Event":
        _check_event_scale(config.get("scale"), path + ("scale",), sections, check)


def _check_event_scale(scale: Any, path: tuple[Any, ...], sections: app_sections.Sections, check: _Check) -> None:
    if scale is None:
        check.add(path, "is required for an Event job: rules (KEDA triggers) and optionally minExecutions, "
                        "maxExecutions, pollingInterval")
        return
    if not isinstance(scale, Mapping):
        return
    for key, low in (("minExecutions", 0), ("maxExecutions", 1), ("pollingInterval", 1)):
        value = scale.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value < low:
            check.add(path + (key,), f"must be {low} or more, got {value}")
    low, high = scale.get("minExecutions"), scale.get("maxExecutions")
    if all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high)) and low > high:
        check.add(path + ("minExecutions",), f"is {low}, more than maxExecutions ({high})")
    rules = scale.get("rules")
    if not rules:
        check.add(path + ("rules",), "needs at least one rule: an Event job starts executions when a KEDA rule fires")
    elif isinstance(rules, list):
        sections.scale_rules(rules, path + ("rules",), job=True)


# --- ARM ------------------------------------------------------------------------------------------
def desired_view(job: Job) -> dict[str, Any]:
    """The Git-owned fields of `job` in a canonical shape shared with `live_view`."""
    view: dict[str, Any] = {"containers": {c.name: container_app._container_view(c) for c in job.containers}}
    if job.init_containers is not None:
        view["initContainers"] = {c.name: container_app._container_view(c) for c in job.init_containers}
    for arm_path, value in job.sections.items():
        view[container_app._section_key(arm_path)] = arm_json.view(value, arm_path[-1])
    if job.secrets is not None:
        view["secrets"] = sorted(s.name for s in job.secrets)
    if job.registries is not None:
        view["registries"] = {r.server: container_app._registry_json(r) for r in job.registries}
    if job.identity is not None:
        view["identity"] = {"type": job.identity.type.lower(),
                            "userAssigned": sorted(i.lower() for i in job.identity.user_assigned)}
    return view


def live_view(resource: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """A live job projected onto the keys of `desired`: containers, secrets, registries and identity read as an
    App's; every Git-owned fragment with the job's enums in ARM's casing, restricted to what Git declares."""
    view = container_app.live_view(resource, desired)
    for key, wanted in desired.items():
        if key not in container_app._TYPED_KEYS:
            live = arm_json.at(resource, ("properties", *key.split(".")))
            view[key] = arm_json.project(container_app._canonical(live, key, ROOT), wanted)
    return view


def spec_hash(job: Job) -> str:
    """A short hash of everything Git owns, including the secret references ARM never returns."""
    document = {"view": desired_view(job),
                "secrets": [[s.name, s.key_vault_url, s.identity] for s in job.secrets or ()]}
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:16]


def ownership_tags(job: Job, target: Target, instance: str, revision: str) -> dict[str, str]:
    """The App ownership tags, for a job."""
    return {TAG_OWNER: instance, TAG_TARGET: target.name, TAG_REVISION: revision[:40], TAG_SPEC_HASH: spec_hash(job)}


def _owned_properties(job: Job, live: dict[str, Any] | None) -> dict[str, Any]:
    """The `properties` holding every Git-owned field, laid over the live job so what Git does not declare is
    kept; the configuration block of another trigger type is removed (ARM refuses two)."""
    live_props = (live or {}).get("properties") or {}
    live_template = live_props.get("template") or {}
    by_name = {c.get("name"): c for c in live_template.get("containers") or []}
    template: dict[str, Any] = {"containers": [container_app._container_json(c, by_name.get(c.name))
                                               for c in job.containers]}
    if job.init_containers is not None:
        live_init = {c.get("name"): c for c in live_template.get("initContainers") or []}
        template["initContainers"] = [container_app._container_json(c, live_init.get(c.name))
                                      for c in job.init_containers]
    configuration: dict[str, Any] = {}
    if job.secrets is not None:
        configuration["secrets"] = [{"name": s.name, "keyVaultUrl": s.key_vault_url, "identity": s.identity}
                                    for s in job.secrets]
    if job.registries is not None:
        configuration["registries"] = [{"server": r.server, **container_app._registry_json(r)} for r in job.registries]
    properties: dict[str, Any] = {"configuration": configuration, "template": template}
    for arm_path, value in job.sections.items():
        arm_json.put(properties, arm_path[1:], arm_json.overlay(arm_json.at(live or {}, arm_path), value, arm_path[-1]))
    live_configuration = live_props.get("configuration") or {}
    for trigger, key in TRIGGER_CONFIGS.items():
        if trigger != job.trigger_type and live_configuration.get(key) is not None:
            configuration[key] = None
    return properties


def create_body(job: Job, *, location: str, environment_id: str, tags: dict[str, str]) -> dict[str, Any]:
    """The PUT body that creates `job`."""
    body: dict[str, Any] = {"location": location, "tags": tags,
                            "properties": {"environmentId": environment_id, **_owned_properties(job, None)}}
    if job.identity is not None:
        body["identity"] = container_app._identity_json(job, None)  # type: ignore[arg-type]  # same identity shape
    return body


def update_patch(job: Job, live: dict[str, Any], *, tags: dict[str, str]) -> dict[str, Any]:
    """The JSON merge patch that brings `live` to `job` while keeping what Git does not own."""
    patch: dict[str, Any] = {"tags": tags, "properties": _owned_properties(job, live)}
    if job.identity is not None:
        patch["identity"] = container_app._identity_json(job, live)  # type: ignore[arg-type]
    return patch


# --- health ---------------------------------------------------------------------------------------
def latest_execution(executions: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """The execution that started last (None when the job never ran)."""
    return max(executions, key=lambda e: str((e.get("properties") or {}).get("startTime") or ""), default=None)


def execution_problem(execution: dict[str, Any]) -> str:
    """Why an execution did not succeed, from ARM's reason, message and the containers' exit codes ("" if none)."""
    props = execution.get("properties") or {}
    parts = [str(props[k]) for k in ("reason", "message") if props.get(k)]
    for replica in (props.get("detailedStatus") or {}).get("replicas") or []:
        for container in replica.get("containers") or []:
            if container.get("code") not in (None, 0):
                parts.append(f"container {container.get('name')} exited with code {container.get('code')}")
    return "; ".join(dict.fromkeys(parts))[:500]


def health(resource: dict[str, Any], latest: dict[str, Any] | None) -> Health:
    """Healthy = provisioning succeeded and the latest execution did not fail (a job that never ran is healthy).
    `Health.revision` names the latest execution."""
    state = (resource.get("properties") or {}).get("provisioningState")
    if state != "Succeeded":
        return Health(False, f"provisioning state is {state}")
    if latest is None:
        return Health(True, "no execution yet")
    status = str((latest.get("properties") or {}).get("status") or "Unknown")
    said = f"latest execution {latest.get('name')} {status}"
    if status in UNHEALTHY_EXECUTIONS:
        why = execution_problem(latest)
        return Health(False, f"{said}: {why}" if why else said, latest.get("name"))
    return Health(True, said, latest.get("name"))


# --- the plan -------------------------------------------------------------------------------------
def plan_jobs(*, target: Target, instance: str, jobs: Iterable[Job], problems: list[Problem],
              live: Iterable[dict[str, Any]], latest: Mapping[str, dict[str, Any] | None] | None = None,
              suspended: Iterable[str] = (), only: str | None = None) -> Plan:
    """Plan the Target's jobs with the App safety rules (`shared.core.plan`): `live` is every job in the Target's
    resource group, `latest` the latest execution by job name (for health). Any problem makes the pass degraded."""
    jobs = list(jobs)
    live_by_name = {r.get("name"): r for r in live}
    env_id = target.environment_id.lower()
    steps = [_plan_job(job, live_by_name.get(job.name), (latest or {}).get(job.name), target, instance, env_id,
                       set(suspended)) for job in jobs]
    mine = [p for p in problems if is_job_key(p.app)]
    steps += invalid_steps(mine, {j.key for j in jobs})
    degraded = bool(problems)
    owned = {f"{KIND}/{r['name']}": r for r in live_by_name.values()
             if is_owned(r, target, instance) and environment_of(r).lower() == env_id}
    prune_steps, prune = plan_prune(target, owned, {j.key for j in jobs} | {str(p.app) for p in mine}, degraded,
                                    len(problems), noun="jobs")
    steps += [wait_for(s.live, s) if s.kind == "delete" and s.live and operation_in_progress(s.live) else s
              for s in prune_steps]
    if only is not None:
        steps = [s for s in steps if s.app == only]
    return Plan(steps, degraded, prune)


def _plan_job(job: Job, resource: dict[str, Any] | None, latest: dict[str, Any] | None, target: Target,
              instance: str, env_id: str, suspended: set[str]) -> Step:
    verdict = preflight(job.key, job.name, "a job", job, resource, target=target, instance=instance, env_id=env_id,
                        suspended=suspended)
    if verdict is not None:
        return verdict
    assert resource is not None
    wanted = desired_view(job)
    changes = drift(wanted, live_view(resource, wanted), resource, target=target, instance=instance,
                    digest=spec_hash(job))
    state = health(resource, latest)
    if changes:
        return Step(job.key, "update", "drifted: " + ", ".join(c.path for c in changes), changes, job, resource, state)
    return Step(job.key, "unchanged", "in sync", [], job, resource, state)
