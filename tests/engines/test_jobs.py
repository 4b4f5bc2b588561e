"""Container Apps jobs through the real SDK and the ACA emulator: create, a steady pass writes nothing, one changed
field is one PATCH of that field, prune under the App safety rules and ownership tags, health from the latest
execution, `driftless job start` / `get jobs`, and a bad Job never blocks the Apps of its Target."""
from __future__ import annotations

import copy
import json

import pytest
import requests
import yaml

from shared.core.container_app import TAG_OWNER, TAG_TARGET
from tests.conftest import ENVIRONMENT, GROUP, SUBSCRIPTION, TOKEN, app_yaml, outcomes, sync, writes
from tests.core.test_job_manifests import EVENT, MICROSOFT_MANUAL, SCHEDULED

NIGHTLY, ORDERS = "Job/nightly-report", "Job/orders-worker"


def write(repo, manifest: dict, name: str | None = None) -> None:
    repo.write(f"apps/{name or manifest['metadata']['name']}.yaml", yaml.safe_dump(manifest, sort_keys=False))


@pytest.fixture
def created(repo, aca, driftless):
    write(repo, SCHEDULED)
    write(repo, EVENT)
    repo.commit()
    reconciler = driftless()
    result = sync(reconciler)["default"]
    by_key = outcomes(result)
    assert by_key[NIGHTLY].action == "created", by_key[NIGHTLY].reason
    assert by_key[ORDERS].action == "created", by_key[ORDERS].reason
    assert result.ok, [(o.app, o.action, o.reason) for o in result.outcomes]
    return reconciler


def job(aca, name: str = "nightly-report") -> dict:
    return aca.job(SUBSCRIPTION, GROUP, name)


def by_hand(emulator, path: str, body: dict) -> int:
    """Another tool of the same identity PUTs `body` to `path` (under the resource group's Microsoft.App); ARM's
    status code."""
    url = (f"{emulator.url}/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}/providers/Microsoft.App/{path}"
           "?api-version=2025-01-01")
    reply = requests.put(url, json=body, headers={"Authorization": f"Bearer {TOKEN}"}, verify=emulator.ca_path,
                         timeout=30)
    assert reply.status_code < 300, reply.text
    return reply.status_code


def test_every_field_of_production_jobs_reaches_arm_in_arms_shape(created, aca):
    nightly = job(aca)
    config, template = nightly["properties"]["configuration"], nightly["properties"]["template"]
    assert config["triggerType"] == "Schedule" and config["replicaTimeout"] == 1800 and config["replicaRetryLimit"] == 2
    assert config["scheduleTriggerConfig"] == {"cronExpression": "30 2 * * MON-FRI", "parallelism": 1,
                                               "replicaCompletionCount": 1}
    assert config["secrets"] == [{"name": "db-connection", "keyVaultUrl": SCHEDULED["spec"]["secrets"][0]["keyVaultUrl"],
                                  "identity": "system"}]
    assert config["identitySettings"] == [{"identity": SCHEDULED["spec"]["identity"]["userAssignedIdentities"][0],
                                           "lifecycle": "All"}]
    assert template["volumes"] == [{"name": "scratch", "storageType": "EmptyDir"}]
    assert template["initContainers"][0]["volumeMounts"] == [{"volumeName": "scratch", "mountPath": "/scratch"}]
    assert template["containers"][0]["env"] == [{"name": "DB", "secretRef": "db-connection"}]
    assert nightly["properties"]["environmentId"].endswith(f"/managedEnvironments/{ENVIRONMENT}")
    assert nightly["tags"][TAG_OWNER] == "driftless" and nightly["tags"][TAG_TARGET] == "default"
    scale = job(aca, "orders-worker")["properties"]["configuration"]["eventTriggerConfig"]["scale"]
    assert scale["rules"] == EVENT["spec"]["eventTriggerConfig"]["scale"]["rules"]


def test_the_next_pass_makes_zero_writes_and_a_new_job_is_healthy(created, aca):
    aca.reset_calls()
    result = sync(created)["default"]
    by_key = outcomes(result)
    assert by_key[NIGHTLY].action == "unchanged", by_key[NIGHTLY].reason
    assert by_key[NIGHTLY].healthy is True and by_key[NIGHTLY].health_reason == "no execution yet"
    assert writes(aca) == 0 and aca.calls()["GET jobs"] == 1


def test_microsofts_published_manual_job_round_trips(repo, aca, driftless):
    aca.add_environment(SUBSCRIPTION, GROUP, ENVIRONMENT)
    repo.write("apps/job.yaml", MICROSOFT_MANUAL)
    repo.commit()
    reconciler = driftless()
    first = outcomes(sync(reconciler)["default"])["Job/testcontainerappsjob0"]
    assert first.action == "created", first.reason
    aca.reset_calls()
    again = outcomes(sync(reconciler)["default"])["Job/testcontainerappsjob0"]
    assert again.action == "unchanged", again.reason
    assert writes(aca) == 0


def scale_rule(spec):
    return spec["eventTriggerConfig"]["scale"]["rules"][0]


ONE_FIELD_CHANGES = [
    ("cron", "nightly-report", lambda s: s["scheduleTriggerConfig"].update(cronExpression="0 3 * * *"),
     lambda p: p["configuration"]["scheduleTriggerConfig"]["cronExpression"] == "0 3 * * *"),
    ("replica timeout", "nightly-report", lambda s: s.update(replicaTimeout=3600),
     lambda p: p["configuration"]["replicaTimeout"] == 3600),
    ("retry limit", "nightly-report", lambda s: s.update(replicaRetryLimit=0),
     lambda p: p["configuration"]["replicaRetryLimit"] == 0),
    ("parallelism", "nightly-report", lambda s: s["scheduleTriggerConfig"].update(parallelism=2),
     lambda p: p["configuration"]["scheduleTriggerConfig"]["parallelism"] == 2),
    ("image", "nightly-report", lambda s: s["containers"][0].update(image="myacr.azurecr.io/report:1.3.0"),
     lambda p: p["template"]["containers"][0]["image"] == "myacr.azurecr.io/report:1.3.0"),
    ("args", "nightly-report", lambda s: s["containers"][0].update(args=["--since", "48h"]),
     lambda p: p["template"]["containers"][0]["args"] == ["--since", "48h"]),
    ("init container image", "nightly-report",
     lambda s: s["initContainers"][0].update(image="myacr.azurecr.io/report-fetch:1.3.0"),
     lambda p: p["template"]["initContainers"][0]["image"] == "myacr.azurecr.io/report-fetch:1.3.0"),
    ("volume mount sub-path", "nightly-report", lambda s: s["containers"][0]["volumeMounts"][0].update(subPath="r"),
     lambda p: p["template"]["containers"][0]["volumeMounts"][0]["subPath"] == "r"),
    ("scale rule metadata", "orders-worker", lambda s: scale_rule(s)["metadata"].update(messageCount="20"),
     lambda p: p["configuration"]["eventTriggerConfig"]["scale"]["rules"][0]["metadata"]["messageCount"] == "20"),
    ("max executions", "orders-worker", lambda s: s["eventTriggerConfig"]["scale"].update(maxExecutions=20),
     lambda p: p["configuration"]["eventTriggerConfig"]["scale"]["maxExecutions"] == 20),
]


@pytest.mark.parametrize("what, name, change, applied", ONE_FIELD_CHANGES, ids=[c[0] for c in ONE_FIELD_CHANGES])
def test_one_changed_field_is_one_patch_that_changes_that_field(created, aca, repo, what, name, change, applied):
    base = SCHEDULED if name == "nightly-report" else EVENT
    before = job(aca, name)
    manifest = copy.deepcopy(base)
    change(manifest["spec"])
    write(repo, manifest)
    repo.commit()
    aca.reset_calls()
    outcome = outcomes(sync(created)["default"])[f"Job/{name}"]
    assert outcome.action == "updated", outcome.reason
    assert len(outcome.diff) == 1, outcome.diff
    assert {k: n for k, n in aca.calls().items() if k.split()[0] in ("PUT", "PATCH", "DELETE")} == {"PATCH job": 1}
    after = job(aca, name)
    assert applied(after["properties"])
    assert _without(after, outcome.diff[0]["path"]) == _without(before, outcome.diff[0]["path"])
    aca.reset_calls()
    assert outcomes(sync(created)["default"])[f"Job/{name}"].action == "unchanged" and writes(aca) == 0


def _without(resource: dict, path: str) -> str:
    """The job as JSON without volatile fields and without the section the changed field (a diff path such as
    configuration.replicaTimeout or containers[report].image) is in."""
    props = copy.deepcopy(resource["properties"])
    props.pop("provisioningState", None)
    head = path.split(".")[0].split("[")[0]
    if head in ("containers", "initContainers"):
        props["template"].pop(head, None)
    else:
        props[head].pop(path.split(".")[1].split("[")[0], None)
    tags = {k: v for k, v in resource["tags"].items() if k not in ("driftless-revision", "driftless-spec-hash")}
    return json.dumps({**props, "tags": tags}, sort_keys=True)


def test_switching_the_trigger_type_is_one_patch_and_drops_the_old_block(created, aca, repo):
    manifest = copy.deepcopy(SCHEDULED)
    manifest["spec"]["triggerType"] = "Manual"
    manifest["spec"]["manualTriggerConfig"] = manifest["spec"].pop("scheduleTriggerConfig")
    del manifest["spec"]["manualTriggerConfig"]["cronExpression"]
    write(repo, manifest)
    repo.commit()
    aca.reset_calls()
    outcome = outcomes(sync(created)["default"])[NIGHTLY]
    assert outcome.action == "updated", outcome.reason
    assert {k: n for k, n in aca.calls().items() if k.split()[0] in ("PUT", "PATCH", "DELETE")} == {"PATCH job": 1}
    config = job(aca)["properties"]["configuration"]
    assert config["triggerType"] == "Manual" and not config.get("scheduleTriggerConfig")
    assert outcomes(sync(created)["default"])[NIGHTLY].action == "unchanged"


def test_a_failed_execution_makes_the_job_unhealthy_with_its_reason(created, aca):
    aca.add_execution(SUBSCRIPTION, GROUP, "nightly-report", status="Succeeded")
    outcome = outcomes(sync(created)["default"])[NIGHTLY]
    assert outcome.healthy is True and "Succeeded" in outcome.health_reason
    failed = aca.add_execution(SUBSCRIPTION, GROUP, "nightly-report", status="Failed", reason="BackoffLimitExceeded",
                               message="Job has reached the specified backoff limit", exit_code=3)
    aca.reset_calls()
    result = sync(created)["default"]
    outcome = outcomes(result)[NIGHTLY]
    assert outcome.action == "unchanged" and outcome.healthy is False and not result.ok
    assert outcome.health_reason == (f"latest execution {failed} Failed: BackoffLimitExceeded; Job has reached the "
                                     "specified backoff limit; container report exited with code 3")
    assert writes(aca) == 0                                   # a failed run is reported, never "re-applied"
    running = aca.add_execution(SUBSCRIPTION, GROUP, "nightly-report", status="Running")
    outcome = outcomes(sync(created)["default"])[NIGHTLY]
    assert outcome.healthy is True and outcome.health_reason == f"latest execution {running} Running"


def prune_on(driftless, **env):
    return driftless(DRIFTLESS_PRUNE="true", **env)


def test_a_job_that_left_git_is_pruned_only_when_owned_and_allowed(repo, aca, driftless):
    repo.write("apps/web.yaml", app_yaml("web"))                           # the path stays readable without jobs
    for name in ("alpha", "bravo", "charlie"):
        manifest = copy.deepcopy(EVENT)
        manifest["metadata"]["name"] = name
        write(repo, manifest)
    repo.commit()
    assert sync(prune_on(driftless))["default"].ok
    repo.remove("apps/charlie.yaml")
    repo.commit()

    off = outcomes(sync(driftless())["default"])["Job/charlie"]
    assert off.action == "skipped" and "prune is off" in off.reason and job(aca, "charlie")

    result = sync(prune_on(driftless))["default"]
    assert outcomes(result)["Job/charlie"].action == "deleted" and result.prune == "on"
    assert job(aca, "charlie") is None

    repo.remove("apps/alpha.yaml")
    repo.remove("apps/bravo.yaml")
    repo.commit()
    refused = sync(prune_on(driftless))["default"]
    assert "prune refused: it would delete 2 of 2 owned jobs (all)" in refused.prune
    assert job(aca, "alpha") and job(aca, "bravo")
    assert outcomes(refused)["web"].action == "unchanged"


def test_prune_never_runs_on_a_degraded_pass_and_foreign_jobs_are_never_touched(repo, aca, driftless):
    for name in ("alpha", "bravo", "charlie"):
        manifest = copy.deepcopy(EVENT)
        manifest["metadata"]["name"] = name
        write(repo, manifest)
    repo.commit()
    sync(prune_on(driftless))
    other = aca.job(SUBSCRIPTION, GROUP, "alpha")
    other_body = {"location": other["location"], "tags": {TAG_OWNER: "someone-else", TAG_TARGET: "default"},
                  "identity": {"type": "SystemAssigned"},
                  "properties": {k: other["properties"][k] for k in ("environmentId", "configuration", "template")}}
    by_hand(aca, "jobs/delta", other_body)                                   # same shape, another owner's tags

    repo.remove("apps/charlie.yaml")
    repo.write("apps/broken.yaml", app_yaml("broken", cpu=3.0))             # an invalid App in the same Target
    repo.commit()
    degraded = sync(prune_on(driftless))["default"]
    assert degraded.degraded and "the pass is degraded" in outcomes(degraded)["Job/charlie"].reason
    assert job(aca, "charlie")

    repo.remove("apps/broken.yaml")
    repo.commit()
    clean = sync(prune_on(driftless))["default"]
    assert outcomes(clean)["Job/charlie"].action == "deleted"
    assert "Job/delta" not in outcomes(clean) and job(aca, "delta")        # not ours: not even listed

    taken = copy.deepcopy(EVENT)
    taken["metadata"]["name"] = "delta"
    write(repo, taken)
    repo.commit()
    refused = outcomes(sync(prune_on(driftless))["default"])["Job/delta"]
    assert refused.action == "failed" and "owned by driftless-owner=someone-else" in refused.reason
    assert job(aca, "delta")["tags"][TAG_OWNER] == "someone-else"


def test_a_bad_job_never_blocks_the_apps_of_its_target(repo, aca, driftless):
    repo.write("apps/web.yaml", app_yaml("web"))
    bad = copy.deepcopy(SCHEDULED)
    bad["spec"]["scheduleTriggerConfig"]["cronExpression"] = "every night"
    write(repo, bad)
    failing = copy.deepcopy(EVENT)
    write(repo, failing)
    repo.commit()
    aca.set_faults(lro_fail_jobs=["orders-worker"])
    result = sync(driftless())["default"]
    by_key = outcomes(result)
    assert by_key["web"].action == "created" and by_key["web"].healthy
    assert by_key[NIGHTLY].action == "failed" and "spec.scheduleTriggerConfig.cronExpression" in by_key[NIGHTLY].reason
    assert by_key[ORDERS].action == "failed" and "ContainerAppOperationError" in by_key[ORDERS].reason
    assert result.degraded and job(aca) is None and aca.app(SUBSCRIPTION, GROUP, "web")
    assert [p["app"] for p in result.problems] == [NIGHTLY]


def test_a_job_whose_operation_runs_is_left_alone(created, aca, repo):
    manifest = copy.deepcopy(SCHEDULED)
    manifest["spec"]["replicaTimeout"] = 900
    write(repo, manifest)
    repo.commit()
    aca.set_faults(conflict_jobs=["nightly-report"])
    outcome = outcomes(sync(created)["default"])[NIGHTLY]
    assert outcome.action == "skipped" and "operation in progress" in outcome.reason and outcome.healthy is False
    aca.set_faults(conflict_jobs=[])
    assert outcomes(sync(created)["default"])[NIGHTLY].action == "updated"


def cli_env(monkeypatch, repo, aca) -> None:
    for key, value in {"DRIFTLESS_REPO_URL": str(repo.path), "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
                       "DRIFTLESS_RESOURCE_GROUP": GROUP, "DRIFTLESS_ACA_ENVIRONMENT": ENVIRONMENT,
                       "DRIFTLESS_ARM_ENDPOINT": aca.url, "DRIFTLESS_ARM_POLL_INTERVAL": "0.02",
                       "DRIFTLESS_QUIET": "1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AzureWebJobsStorage", raising=False)


def test_job_start_runs_a_manual_job_and_get_jobs_shows_its_execution(repo, aca, monkeypatch, capsys):
    from shared.cli import main

    manual = copy.deepcopy(SCHEDULED)
    manual["metadata"]["name"] = "reindex"
    manual["spec"]["triggerType"] = "Manual"
    del manual["spec"]["scheduleTriggerConfig"]
    write(repo, manual)
    write(repo, SCHEDULED)
    repo.commit()
    cli_env(monkeypatch, repo, aca)
    assert main(["job", "start", "reindex"]) == 1
    assert "does not exist in Azure yet; run `driftless sync` first" in capsys.readouterr().err
    assert main(["sync", "-o", "json"]) == 0
    capsys.readouterr()

    assert main(["job", "start", "Job/reindex", "-o", "json"]) == 0
    started = json.loads(capsys.readouterr().out)
    assert started["job"] == "reindex" and started["target"] == "default"
    assert [e["name"] for e in aca.executions(SUBSCRIPTION, GROUP, "reindex")] == [started["execution"]]

    assert main(["job", "start", "nightly-report"]) == 2
    err = capsys.readouterr().err
    assert "is a Schedule job (it runs on its schedule); only Manual jobs are started" in err
    assert main(["job", "start", "ghost"]) == 2 and "no Target declares a valid job named ghost" in capsys.readouterr().err

    aca.set_execution(SUBSCRIPTION, GROUP, "reindex", started["execution"], "Failed", reason="Error",
                      message="exit status 1")
    assert main(["get", "jobs", "-o", "json"]) == 0
    rows = {r["job"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["reindex"]["trigger"] == "Manual" and rows["reindex"]["execution"] == started["execution"]
    assert rows["reindex"]["status"] == "Failed" and rows["reindex"]["reason"] == "Error; exit status 1"
    assert rows["nightly-report"]["status"] == "none yet" and rows["nightly-report"]["state"] == "in sync"
    assert rows["nightly-report"]["images"] == "myacr.azurecr.io/report:1.2.0"
    assert main(["get", "jobs"]) == 0
    table = capsys.readouterr().out
    assert "TRIGGER" in table and f"default/reindex: {started['execution']} Failed: Error; exit status 1" in table
    assert main(["get", "apps", "-o", "json"]) == 0 and json.loads(capsys.readouterr().out) == []


def test_jobs_on_dedicated_workload_profiles_are_checked_against_the_environment(repo, aca, driftless):
    aca.add_environment(SUBSCRIPTION, GROUP, ENVIRONMENT, workload_profiles=[
        {"name": "batch", "workloadProfileType": "E4", "minimumCount": 0, "maximumCount": 2}])
    fits, too_big = copy.deepcopy(SCHEDULED), copy.deepcopy(SCHEDULED)
    fits["metadata"]["name"], too_big["metadata"]["name"] = "fits", "too-big"
    for manifest, cpu, memory in ((fits, 3, "24Gi"), (too_big, 6, "24Gi")):
        manifest["spec"]["workloadProfileName"] = "batch"
        manifest["spec"]["containers"][0].update(cpu=cpu, memory=memory)
        write(repo, manifest)
    repo.commit()
    by_key = outcomes(sync(driftless())["default"])
    assert by_key["Job/fits"].action == "created", by_key["Job/fits"].reason      # not a Consumption pair
    assert by_key["Job/too-big"].action == "failed"
    assert "does not fit one node of profile 'batch' (E4" in by_key["Job/too-big"].reason
    assert aca.job(SUBSCRIPTION, GROUP, "too-big") is None
