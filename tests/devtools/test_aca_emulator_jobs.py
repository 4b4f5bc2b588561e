"""Container Apps jobs (with executions) and Dapr components in the ACA emulator, driven with the real
azure-mgmt-appcontainers client and checked against Microsoft's published examples (tests/fixtures/arm).

Confirmed from a recorded real ARM session (Azure/azure-cli-extensions, containerapp test recording
test_containerapp_cronjob_defaults_e2e.yaml): a job DELETE answers 202 with a ``Location`` under
``locations/<region>/containerappsjobOperationResults/``, which answers 202 and then 204 once the job is gone.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.appcontainers import ContainerAppsAPIClient

from devtools.aca_emulator import AcaEmulator, cron_problem
from tests.devtools.test_aca_emulator import (
    EXAMPLES,
    RG,
    SUB,
    arm_error,
    make_client,
    same_shape,
)


def job_body(env_id: str, trigger: str = "Manual", **configuration: Any) -> dict[str, Any]:
    return {
        "location": "westeurope",
        "tags": {"managed-by": "driftless"},
        "properties": {
            "environmentId": env_id,
            "configuration": {"triggerType": trigger, "replicaTimeout": 600,
                              "secrets": [{"name": "queue-conn", "value": "c0nn"}], **configuration},
            "template": {"containers": [{"name": "task", "image": "ghcr.io/acme/task:1.0",
                                         "env": [{"name": "CONN", "secretRef": "queue-conn"}]}]},
        },
    }


def url(emulator: AcaEmulator, path: str, sub: str = SUB, rg: str = RG, api: str = "2025-01-01") -> str:
    return (f"{emulator.url}/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.App/{path}"
            f"?api-version={api}")


def call(emulator: AcaEmulator, method: str, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
    return requests.request(method, url(emulator, path, **kwargs), json=body, timeout=10,
                            headers={"Authorization": "Bearer x"}, verify=emulator.ca_path)


def get(emulator: AcaEmulator, full_url: str) -> requests.Response:
    return requests.get(full_url, headers={"Authorization": "Bearer x"}, verify=emulator.ca_path, timeout=10)


def example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / f"{name}.json").read_text())


# ------------------------------------------------------------------------------------------------- jobs


def test_jobs_of_each_trigger_type_get_arm_defaults(
    emulator: AcaEmulator, client: ContainerAppsAPIClient, env_id: str
) -> None:
    manual = client.jobs.begin_create_or_update(RG, "manual", job_body(env_id, "manual")).result().as_dict()
    schedule = client.jobs.begin_create_or_update(RG, "nightly", job_body(
        env_id, "Schedule", scheduleTriggerConfig={"cronExpression": "0 2 * * MON-FRI"})).result().as_dict()
    event = client.jobs.begin_create_or_update(RG, "orders", job_body(env_id, "Event", eventTriggerConfig={"scale": {
        "rules": [{"name": "queue", "type": "azure-queue", "metadata": {"queueName": "orders"},
                   "auth": [{"secretRef": "queue-conn", "triggerParameter": "connection"}]}]}})).result().as_dict()

    props = manual["properties"]
    assert manual["type"] == "Microsoft.App/jobs" and manual["tags"] == {"managed-by": "driftless"}
    assert props["provisioningState"] == "Succeeded" and props["environmentId"] == env_id
    assert props["configuration"]["triggerType"] == "Manual"
    assert props["configuration"]["manualTriggerConfig"] == {"replicaCompletionCount": 1, "parallelism": 1}
    assert props["configuration"]["secrets"] == [{"name": "queue-conn"}]
    assert props["template"]["containers"][0]["resources"] == {"cpu": 0.5, "memory": "1Gi", "ephemeralStorage": "2Gi"}
    assert "probes" not in props["template"]["containers"][0]  # jobs get no default probes
    assert schedule["properties"]["configuration"]["scheduleTriggerConfig"] == {
        "cronExpression": "0 2 * * MON-FRI", "replicaCompletionCount": 1, "parallelism": 1}
    scale = event["properties"]["configuration"]["eventTriggerConfig"]["scale"]
    assert (scale["minExecutions"], scale["maxExecutions"], scale["pollingInterval"]) == (0, 100, 30)
    assert [j.name for j in client.jobs.list_by_resource_group(RG)] == ["manual", "nightly", "orders"]
    assert emulator.calls()["PUT job"] == 3 and emulator.job(SUB, RG, "nightly")["name"] == "nightly"


def _cfg(body: dict[str, Any]) -> dict[str, Any]:
    return body["properties"]["configuration"]


JOB_REFUSED: list[tuple[str, str, Any, str, str]] = [
    ("six-field cron", "job", lambda b: _cfg(b).update(triggerType="Schedule", scheduleTriggerConfig={
        "cronExpression": "0 0 2 * * *"}), "InvalidParameterValueInJobConfiguration", "expected 5 fields"),
    ("minute 61", "job", lambda b: _cfg(b).update(triggerType="Schedule", scheduleTriggerConfig={
        "cronExpression": "61 * * * *"}), "InvalidParameterValueInJobConfiguration", "out of range for the minute"),
    ("cron macro", "job", lambda b: _cfg(b).update(triggerType="Schedule", scheduleTriggerConfig={
        "cronExpression": "@daily"}), "InvalidParameterValueInJobConfiguration", "expected 5 fields"),
    ("schedule without its configuration", "job", lambda b: _cfg(b).update(triggerType="Schedule"),
     "InvalidParameterValueInJobConfiguration", "scheduleTriggerConfig is required"),
    ("manual job with a schedule", "job", lambda b: _cfg(b).update(scheduleTriggerConfig={"cronExpression": "* * * * *"}),
     "InvalidParameterValueInJobConfiguration", "not allowed with triggerType Manual"),
    ("no replicaTimeout", "job", lambda b: _cfg(b).pop("replicaTimeout"),
     "InvalidParameterValueInJobConfiguration", "replicaTimeout is required"),
    ("unknown trigger type", "job", lambda b: _cfg(b).update(triggerType="Cron"),
     "InvalidRequestContent", "'Cron' was not found"),
    ("parallelism 0", "job", lambda b: _cfg(b).update(manualTriggerConfig={"parallelism": 0}),
     "InvalidParameterValueInJobConfiguration", "manualTriggerConfig.parallelism"),
    ("no containers", "job", lambda b: b["properties"]["template"].update(containers=[]),
     "ContainerAppCreateMustContainContainer", "atleast one container"),
    ("secretRef to an undeclared secret", "job", lambda b: _cfg(b).update(secrets=[]),
     "ContainerAppSecretRefNotFound", "SecretRef 'queue-conn'"),
    ("event rule auth to an undeclared secret", "job", lambda b: _cfg(b).update(
        triggerType="Event", eventTriggerConfig={"scale": {"rules": [{"name": "q", "type": "azure-queue", "auth": [
            {"secretRef": "nope", "triggerParameter": "connection"}]}]}}),
     "InvalidParameterValueInContainerTemplate", "scale rule auth references a secret"),
    ("job name with upper case", "Nightly", lambda b: None, "ContainerAppJobInvalidName", "Invalid ContainerAppJob name"),
    ("CPU and memory off the Consumption table", "job", lambda b: b["properties"]["template"]["containers"][0].update(
        resources={"cpu": 1, "memory": "1Gi"}), "ContainerAppInvalidResourceTotal", "(CPU: 1, memory: 1.0)"),
    ("unknown workload profile", "job", lambda b: b["properties"].update(workloadProfileName="D4"),
     "WorkloadProfileNotFound", "'D4' was not found"),
    ("probe out of range", "job", lambda b: b["properties"]["template"]["containers"][0].update(
        probes=[{"type": "Liveness", "tcpSocket": {"port": 80}, "periodSeconds": 500}]),
     "ContainerAppProbePeriodSecondsOutOfRange", "['1', '240']"),
    ("mount of an undeclared volume", "job", lambda b: b["properties"]["template"]["containers"][0].update(
        volumeMounts=[{"volumeName": "data", "mountPath": "/data"}]),
     "InvalidParameterValueInContainerTemplate", "not declared"),
]


@pytest.mark.parametrize(("name", "change", "code", "says"), [r[1:] for r in JOB_REFUSED],
                         ids=[r[0] for r in JOB_REFUSED])
def test_arm_refuses_invalid_jobs(emulator: AcaEmulator, env_id: str, name: str, change: Any, code: str,
                                  says: str) -> None:
    body = job_body(env_id)
    change(body)

    answer = call(emulator, "PUT", f"jobs/{name}", body)

    assert answer.status_code == 400, answer.text
    error = arm_error(answer)
    assert error["code"] == code and says in error["message"], error
    assert emulator.job(SUB, RG, name) is None


@pytest.mark.parametrize("expression", ["* * * * *", "*/15 0-6,22,23 1 JAN-MAR sun", "0 0 29 2 7", "5,10 1-5/2 * * *"])
def test_valid_cron_expressions(expression: str) -> None:
    assert cron_problem(expression) is None


def test_update_delete_and_409_while_a_job_operation_runs(
    emulator: AcaEmulator, client: ContainerAppsAPIClient, env_id: str
) -> None:
    client.jobs.begin_create_or_update(RG, "task", job_body(env_id)).result()
    patch = {"tags": {"team": "data"}, "properties": {"template": {"containers": [
        {"name": "task", "image": "ghcr.io/acme/task:2.0", "env": [{"name": "CONN", "secretRef": "queue-conn"}]}]}}}

    updated = client.jobs.begin_update(RG, "task", io.BytesIO(json.dumps(patch).encode())).result()

    assert updated.properties.template.containers[0].image == "ghcr.io/acme/task:2.0"
    assert updated.tags == {"managed-by": "driftless", "team": "data"}
    emulator.set_faults(lro_hang_jobs=["task"])
    assert call(emulator, "PATCH", "jobs/task", {"tags": {"x": "1"}}).status_code == 202
    busy = call(emulator, "PUT", "jobs/task", job_body(env_id))
    assert busy.status_code == 409 and arm_error(busy)["code"] == "ContainerAppJobOperationInProgress"
    emulator.release_job(SUB, RG, "task")
    assert emulator.job(SUB, RG, "task")["tags"]["x"] == "1"
    client.jobs.begin_delete(RG, "task").result()
    with pytest.raises(ResourceNotFoundError):
        client.jobs.get(RG, "task")
    assert client.jobs.begin_delete(RG, "task").result() is None  # 204 when absent
    assert emulator.calls()["DELETE job"] == 2


def test_a_failed_job_write_leaves_the_job_as_it_was(
    emulator: AcaEmulator, client: ContainerAppsAPIClient, env_id: str
) -> None:
    before = client.jobs.begin_create_or_update(RG, "task", job_body(env_id)).result().as_dict()
    emulator.set_faults(lro_fail_jobs=["task"])
    changed = job_body(env_id)
    changed["properties"]["template"]["containers"][0]["image"] = "ghcr.io/acme/task:9"

    with pytest.raises(HttpResponseError):
        client.jobs.begin_create_or_update(RG, "task", changed).result()

    after = emulator.job(SUB, RG, "task")
    assert after["properties"]["provisioningState"] == "Failed"
    assert after["properties"]["template"] == before["properties"]["template"]


def test_start_and_executions_whose_outcome_the_test_decides(
    emulator: AcaEmulator, client: ContainerAppsAPIClient, env_id: str
) -> None:
    client.jobs.begin_create_or_update(RG, "task", job_body(env_id)).result()

    started = client.jobs.begin_start(RG, "task").result()

    assert started.name.startswith("task-") and started.id.endswith(f"/jobs/task/executions/{started.name}")
    listed = list(client.jobs_executions.list(RG, "task"))
    assert [(e.name, e.properties.status) for e in listed] == [(started.name, "Running")]
    assert listed[0].properties.template.containers[0].image == "ghcr.io/acme/task:1.0"
    emulator.set_execution(SUB, RG, "task", started.name, "Failed", reason="BackoffLimitExceeded",
                           message="Container 'task' exited with code 2", exit_code=2)
    failed = client.job_execution(RG, "task", started.name).as_dict()["properties"]
    assert failed["status"] == "Failed" and failed["reason"] == "BackoffLimitExceeded"
    assert failed["message"] == "Container 'task' exited with code 2" and failed["endTime"]
    assert failed["detailedStatus"]["replicas"][0]["containers"][0]["code"] == 2
    scheduled = emulator.add_execution(SUB, RG, "task", status="Succeeded")
    newest = [e["name"] for e in emulator.executions(SUB, RG, "task")]
    assert newest[0] == scheduled and set(newest) == {scheduled, started.name}
    with pytest.raises(ValueError):
        emulator.set_execution(SUB, RG, "task", scheduled, "Done")
    with pytest.raises(ResourceNotFoundError):
        client.job_execution(RG, "task", "task-missing")
    other = client.jobs.begin_start(RG, "task", {"containers": [{"name": "task", "image": "ghcr.io/acme/task:1.1"}]})
    execution = other.result().name
    assert client.job_execution(RG, "task", execution).properties.template.containers[0].image == "ghcr.io/acme/task:1.1"
    assert emulator.calls()["POST job start"] == 2


def test_list_jobs_pages(tmp_path: Path) -> None:
    emulator = AcaEmulator(page_size=2).start()
    try:
        env_id = emulator.add_environment(SUB, RG, "env-dev")["id"]
        client = make_client(emulator)
        for name in ("c-job", "a-job", "b-job"):
            client.jobs.begin_create_or_update(RG, name, job_body(env_id), polling=False)
        emulator.reset_calls()
        assert [j.name for j in client.jobs.list_by_resource_group(RG)] == ["a-job", "b-job", "c-job"]
        assert emulator.calls() == {"GET jobs": 2}
    finally:
        emulator.stop()


def test_the_published_job_examples_run_with_their_status_codes_headers_and_shapes(emulator: AcaEmulator) -> None:
    put = example("Job_CreateorUpdate")
    params = put["parameters"]
    at = {"sub": params["subscriptionId"], "rg": params["resourceGroupName"], "api": params["api-version"]}
    name = params["jobName"]
    emulator.add_environment(at["sub"], at["rg"], "demokube", "East US")
    emulator.set_faults(lro_hang_jobs=[name])

    created = call(emulator, "PUT", f"jobs/{name}", params["JobEnvelope"], **at)
    assert created.status_code == 201 and "Azure-AsyncOperation" in created.headers
    assert "/containerappsjobOperationStatuses/" in created.headers["Azure-AsyncOperation"]
    assert same_shape(created.json(), put["responses"]["201"]["body"]) == []
    emulator.release_job(at["sub"], at["rg"], name)
    assert get(emulator, created.headers["Azure-AsyncOperation"]).json()["status"] == "Succeeded"

    patch = example("Job_Patch")
    patched = call(emulator, "PATCH", f"jobs/{name}", patch["parameters"]["JobEnvelope"], **at)
    assert str(patched.status_code) in patch["responses"] and patched.status_code == 202
    emulator.release_job(at["sub"], at["rg"], name)
    got = call(emulator, "GET", f"jobs/{name}", **at)
    assert same_shape(got.json(), patch["responses"]["200"]["body"]) == []

    start = example("Job_Start")
    started = call(emulator, "POST", f"jobs/{name}/start", start["parameters"]["template"], **at)
    assert str(started.status_code) in start["responses"] and started.status_code == 202
    result = get(emulator, started.headers["Location"])
    assert result.status_code == 200 and same_shape(result.json(), start["responses"]["200"]["body"]) == []
    execution = call(emulator, "GET", f"jobs/{name}/executions/{result.json()['name']}", **at).json()
    assert same_shape(execution, example("Job_Execution_Get")["responses"]["200"]["body"]) == [
        ".properties.endTime: missing"]  # a Running execution has no endTime yet (the example shows one)
    emulator.set_execution(at["sub"], at["rg"], name, result.json()["name"], "Succeeded")
    execution = call(emulator, "GET", f"jobs/{name}/executions/{result.json()['name']}", **at).json()
    assert same_shape(execution, example("Job_Execution_Get")["responses"]["200"]["body"]) == []
    listed = call(emulator, "GET", f"jobs/{name}/executions", **at).json()
    page = example("Job_Executions_Get")["responses"]["200"]["body"]
    assert same_shape(listed["value"][0], page["value"][0]) == [] and set(listed) <= set(page)

    deleted = call(emulator, "DELETE", f"jobs/{name}", **at)
    assert str(deleted.status_code) in example("Job_Delete")["responses"] and deleted.status_code == 202
    assert "/containerappsjobOperationResults/" in deleted.headers["Location"]
    assert get(emulator, deleted.headers["Location"]).status_code == 204  # gone
    assert call(emulator, "DELETE", f"jobs/{name}", **at).status_code == 204


# ------------------------------------------------------------------------------------------- dapr components


def component(**properties: Any) -> dict[str, Any]:
    return {"properties": {"componentType": "state.azure.blobstorage", "version": "v1",
                           "secrets": [{"name": "account-key", "value": "k3y"}],
                           "metadata": [{"name": "accountName", "value": "acct"},
                                        {"name": "accountKey", "secretRef": "account-key"}],
                           "scopes": ["web", "worker"], **properties}}


def test_dapr_components_through_the_sdk(emulator: AcaEmulator, client: ContainerAppsAPIClient, env_id: str) -> None:
    body = {**component(), "tags": {"managed-by": "driftless"}, "location": "westeurope"}

    created = client.dapr_components.create_or_update(RG, "env-dev", "statestore", body).as_dict()

    assert created["type"] == "Microsoft.App/managedEnvironments/daprcomponents"
    assert created["id"] == f"{env_id}/daprcomponents/statestore"
    assert "tags" not in created and "location" not in created  # ARM keeps no tags on Dapr components
    assert created["properties"]["secrets"] == [{"name": "account-key"}]
    assert created["properties"]["ignoreErrors"] is False
    got = client.dapr_components.get(RG, "env-dev", "statestore").as_dict()
    assert got["properties"] == created["properties"] and "k3y" not in json.dumps(got)
    assert [c.name for c in client.dapr_components.list(RG, "env-dev")] == ["statestore"]
    secrets = client.dapr_components.list_secrets(RG, "env-dev", "statestore").as_dict()
    assert secrets == {"value": [{"name": "account-key", "value": "k3y"}]}
    emulator.reset_calls()
    client.dapr_components.get(RG, "env-dev", "statestore")
    assert emulator.calls() == {"GET dapr component": 1}  # reading writes nothing
    client.dapr_components.delete(RG, "env-dev", "statestore")
    client.dapr_components.delete(RG, "env-dev", "statestore")  # 204 when absent
    assert emulator.dapr_component(SUB, RG, "env-dev", "statestore") is None
    assert emulator.calls()["DELETE dapr component"] == 2


DAPR_REFUSED: list[tuple[str, str, str, Any, int, str, str]] = [
    ("metadata secretRef to an undeclared secret", "env-dev", "store", component(secrets=[]), 400,
     "DaprComponentSecretRefNotFound", "SecretRef 'account-key'"),
    ("secret without value or Key Vault reference", "env-dev", "store", component(secrets=[{"name": "account-key"}]),
     400, "DaprComponentSecretInvalid", "value or keyVaultUrl and identity"),
    ("no componentType", "env-dev", "store", component(componentType=None), 400, "InvalidRequestContent",
     "componentType"),
    ("bad initTimeout", "env-dev", "store", component(initTimeout="soon"), 400, "DaprComponentInvalidProperty",
     "not a valid duration"),
    ("upper-case name", "env-dev", "StateStore", component(), 400, "DaprComponentInvalidName", "Invalid Dapr component"),
    ("environment missing", "env-none", "store", component(), 404, "ParentResourceNotFound", "could not be found"),
]


@pytest.mark.parametrize(("env", "name", "body", "status", "code", "says"), [r[1:] for r in DAPR_REFUSED],
                         ids=[r[0] for r in DAPR_REFUSED])
def test_arm_refuses_invalid_dapr_components(emulator: AcaEmulator, env_id: str, env: str, name: str,
                                             body: dict[str, Any], status: int, code: str, says: str) -> None:
    answer = call(emulator, "PUT", f"managedEnvironments/{env}/daprComponents/{name}", body)

    assert answer.status_code == status, answer.text
    error = arm_error(answer)
    assert error["code"] == code and says in error["message"], error
    assert emulator.dapr_component(SUB, RG, "env-dev", name) is None


def test_a_secret_store_component_resolves_secret_refs_and_key_vault_secrets_are_listed_by_reference(
    emulator: AcaEmulator, env_id: str
) -> None:
    store = call(emulator, "PUT", "managedEnvironments/env-dev/daprComponents/store",
                 component(secrets=None, secretStoreComponent="vault"))
    assert store.status_code == 200 and store.json()["properties"]["secretStoreComponent"] == "vault"
    vault = {"name": "account-key", "keyVaultUrl": "https://kv.vault.azure.net/secrets/key", "identity": "system"}
    assert call(emulator, "PUT", "managedEnvironments/env-dev/daprComponents/kv",
                component(secrets=[vault])).status_code == 200
    listed = call(emulator, "POST", "managedEnvironments/env-dev/daprComponents/kv/listSecrets").json()
    assert listed == {"value": [vault]}


def test_the_published_dapr_examples_run_with_their_status_codes_and_shapes(emulator: AcaEmulator) -> None:
    put = example("DaprComponents_CreateOrUpdate_Secrets")
    params = put["parameters"]
    at = {"sub": params["subscriptionId"], "rg": params["resourceGroupName"], "api": params["api-version"]}
    emulator.add_environment(at["sub"], at["rg"], params["environmentName"])
    path = f"managedEnvironments/{params['environmentName']}/daprComponents/{params['componentName']}"

    created = call(emulator, "PUT", path, params["daprComponentEnvelope"], **at)
    assert str(created.status_code) in put["responses"] and created.status_code == 200
    assert same_shape(created.json(), put["responses"]["200"]["body"]) == []
    assert created.json()["properties"]["secrets"] == put["responses"]["200"]["body"]["properties"]["secrets"]
    again = call(emulator, "PUT", path, params["daprComponentEnvelope"], **at)
    assert again.status_code == 200 and again.json()["properties"] == created.json()["properties"]
    listed = call(emulator, "POST", f"{path}/listSecrets", **at)
    page = example("DaprComponents_ListSecrets")["responses"]["200"]["body"]
    assert listed.status_code == 200 and same_shape(listed.json()["value"][0], page["value"][0]) == []
    delete = example("DaprComponents_Delete")["responses"]
    assert str(call(emulator, "DELETE", path, **at).status_code) in delete
    gone = call(emulator, "DELETE", path, **at)
    assert gone.status_code == 204 and str(gone.status_code) in delete


def test_jobs_and_components_survive_a_restart_with_a_state_file(tmp_path: Path) -> None:
    state = str(tmp_path / "state.json")
    first = AcaEmulator(state_file=state, cert_dir=str(tmp_path / "certs")).start()
    try:
        env_id = first.add_environment(SUB, RG, "env-dev")["id"]
        client = make_client(first)
        client.jobs.begin_create_or_update(RG, "task", job_body(env_id)).result()
        client.dapr_components.create_or_update(RG, "env-dev", "statestore", component())
        execution = first.add_execution(SUB, RG, "task")
    finally:
        first.stop()

    second = AcaEmulator(state_file=state, cert_dir=str(tmp_path / "certs"))
    assert second.job(SUB, RG, "task")["properties"]["provisioningState"] == "Succeeded"
    assert [e["name"] for e in second.executions(SUB, RG, "task")] == [execution]
    assert second.dapr_component(SUB, RG, "env-dev", "statestore")["name"] == "statestore"
