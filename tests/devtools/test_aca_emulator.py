"""Tests for the ACA ARM emulator, driven with the real azure-mgmt-appcontainers client."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.core.credentials import AccessToken
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)
from azure.mgmt.appcontainers import ContainerAppsAPIClient

from devtools.aca_emulator import AcaEmulator, default_probes

SUB = "8f2a4c1e-0000-4000-8000-000000000001"
RG = "rg-driftless"
API = "2025-01-01"
REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "tests" / "fixtures" / "arm"


class StaticCredential:
    """A TokenCredential that always returns the same bearer token."""

    def __init__(self, token: str = "test-token") -> None:
        self._token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self._token, int(time.time()) + 3600)


def make_client(emulator: AcaEmulator, token: str = "test-token", **kwargs: Any) -> ContainerAppsAPIClient:
    return ContainerAppsAPIClient(
        StaticCredential(token),
        SUB,
        base_url=emulator.url,
        polling_interval=0.05,
        connection_verify=emulator.ca_path,
        **kwargs,
    )


def app_body(env_id: str, image: str = "ghcr.io/acme/web:1.0", **properties: Any) -> dict[str, Any]:
    return {
        "location": "westeurope",
        "tags": {"team": "web", "env": "dev"},
        "properties": {
            "managedEnvironmentId": env_id,
            "configuration": {
                "ingress": {"external": True, "targetPort": 8080, "transport": "auto"},
                "secrets": [{"name": "db-password", "value": "s3cret"}],
            },
            "template": {"containers": [{"name": "web", "image": image}]},
            **properties,
        },
    }


def create(client: ContainerAppsAPIClient, name: str, body: dict[str, Any]) -> Any:
    return client.container_apps.begin_create_or_update(RG, name, body).result()


def apps_url(emulator: AcaEmulator, query: str = f"?api-version={API}") -> str:
    """The raw container-apps list URL, for requests the SDK would never send."""
    return f"{emulator.url}/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.App/containerApps{query}"


def test_create_returns_resource_with_defaults_and_revision(
    emulator: AcaEmulator, client: ContainerAppsAPIClient, env_id: str
) -> None:
    app = create(client, "web", app_body(env_id))

    raw = app.as_dict()
    props = raw["properties"]
    assert raw["type"] == "Microsoft.App/containerApps" and raw["tags"] == {"team": "web", "env": "dev"}
    assert raw["identity"] == {"type": "None"}
    assert set(raw["systemData"]) >= {"createdAt", "lastModifiedAt", "createdBy"}
    assert props["provisioningState"] == "Succeeded" and props["runningStatus"] == "Running"
    assert props["managedEnvironmentId"] == props["environmentId"] == env_id
    assert props["workloadProfileName"] == "Consumption"
    container = props["template"]["containers"][0]
    assert container["resources"] == {"cpu": 0.5, "memory": "1Gi", "ephemeralStorage": "2Gi"}
    assert container["probes"] == default_probes(8080)  # ACA's defaults: ingress and no probes of its own
    assert props["template"]["scale"] == {
        "minReplicas": None, "maxReplicas": 10, "rules": None, "cooldownPeriod": 300, "pollingInterval": 30
    }
    ingress = props["configuration"]["ingress"]
    assert ingress["transport"] == "Auto" and ingress["traffic"] == [{"weight": 100, "latestRevision": True}]
    assert ingress["fqdn"].startswith("web.") and ingress["clientCertificateMode"] == "Ignore"
    assert props["configuration"]["secrets"] == [{"name": "db-password"}]
    assert props["configuration"]["activeRevisionsMode"] == "Single"
    assert re.fullmatch(r"web--[0-9a-f]{7}", props["latestRevisionName"])
    assert props["latestReadyRevisionName"] == props["latestRevisionName"]

    revision = client.container_apps_revisions.get_revision(RG, "web", props["latestRevisionName"])
    assert revision.properties.provisioning_state == "Provisioned"
    assert revision.properties.health_state == "Healthy"
    assert revision.properties.active is True and revision.properties.traffic_weight == 100
    assert emulator.calls()["PUT app"] == 1 and emulator.calls()["GET operation"] >= 1


def test_same_put_twice_is_idempotent_and_adds_no_revision(client: ContainerAppsAPIClient, env_id: str) -> None:
    first = create(client, "web", app_body(env_id)).as_dict()
    second = create(client, "web", app_body(env_id)).as_dict()

    assert first.pop("systemData")["createdAt"] == second.pop("systemData")["createdAt"]
    assert first == second
    assert len(list(client.container_apps_revisions.list_revisions(RG, "web"))) == 1


def test_list_by_resource_group_pages_250_apps(
    emulator: AcaEmulator, client: ContainerAppsAPIClient, env_id: str
) -> None:
    names = [f"app-{i:03d}" for i in range(250)]
    for name in reversed(names):
        client.container_apps.begin_create_or_update(RG, name, app_body(env_id), polling=False)
    emulator.reset_calls()

    listed = [app.name for app in client.container_apps.list_by_resource_group(RG)]

    assert listed == names
    assert emulator.calls() == {"GET list": 3}


def test_get_missing_app_raises_not_found(client: ContainerAppsAPIClient, env_id: str) -> None:
    with pytest.raises(ResourceNotFoundError) as caught:
        client.container_apps.get(RG, "nope")
    assert caught.value.error.code == "ResourceNotFound"
    assert "Microsoft.App/containerApps/nope" in caught.value.error.message


def test_put_validation_errors(client: ContainerAppsAPIClient, env_id: str) -> None:
    missing_env = app_body(env_id.replace("env-dev", "env-missing"))
    with pytest.raises(HttpResponseError) as caught:
        create(client, "web", missing_env)
    assert caught.value.status_code == 400 and caught.value.error.code == "ManagedEnvironmentNotFound"

    no_containers = app_body(env_id)
    no_containers["properties"]["template"]["containers"] = []
    with pytest.raises(HttpResponseError) as caught:
        create(client, "web", no_containers)
    assert caught.value.error.code == "ContainerAppCreateMustContainContainer"

    no_image = app_body(env_id)
    del no_image["properties"]["template"]["containers"][0]["image"]
    with pytest.raises(HttpResponseError) as caught:
        create(client, "web", no_image)
    assert caught.value.error.code == "ContainerAppImageRequired" and "'web'" in caught.value.error.message


def test_update_applies_json_merge_patch(client: ContainerAppsAPIClient, env_id: str) -> None:
    created = create(client, "web", app_body(env_id))
    patch = {
        "tags": {"env": "prod", "owner": "ops"},
        "properties": {"template": {"containers": [{"name": "web", "image": "ghcr.io/acme/web:2.0"}]}},
    }

    updated = client.container_apps.begin_update(RG, "web", io.BytesIO(json.dumps(patch).encode())).result()

    assert updated.tags == {"team": "web", "env": "prod", "owner": "ops"}
    container = updated.as_dict()["properties"]["template"]["containers"][0]
    assert container == {
        "name": "web",
        "image": "ghcr.io/acme/web:2.0",
        "resources": {"cpu": 0.5, "memory": "1Gi", "ephemeralStorage": "2Gi"},
        "probes": default_probes(8080),
    }
    assert updated.properties.configuration.ingress.target_port == 8080
    assert updated.properties.latest_revision_name != created.properties.latest_revision_name
    assert updated.properties.provisioning_state == "Succeeded"

    removed = client.container_apps.begin_update(RG, "web", io.BytesIO(b'{"tags": {"owner": null}}')).result()
    assert removed.tags == {"team": "web", "env": "prod"}
    assert removed.properties.latest_revision_name == updated.properties.latest_revision_name


def test_delete_waits_until_app_is_gone(emulator: AcaEmulator, client: ContainerAppsAPIClient, env_id: str) -> None:
    create(client, "web", app_body(env_id))
    emulator.set_faults(lro_duration_s=0.5)

    poller = client.container_apps.begin_delete(RG, "web")
    assert client.container_apps.get(RG, "web").properties.provisioning_state == "Deleting"
    poller.result()

    with pytest.raises(ResourceNotFoundError):
        client.container_apps.get(RG, "web")
    assert list(client.container_apps.list_by_resource_group(RG)) == []
    assert client.container_apps.begin_delete(RG, "web").result() is None  # 204 when absent


def test_failed_operation_raises_and_marks_app_failed(
    emulator: AcaEmulator, client: ContainerAppsAPIClient, env_id: str
) -> None:
    emulator.set_faults(lro_fail_apps=["web"])

    with pytest.raises(HttpResponseError):
        create(client, "web", app_body(env_id))

    assert emulator.app(SUB, RG, "web")["properties"]["provisioningState"] == "Failed"


def test_hanging_operation_never_finishes_until_released(
    emulator: AcaEmulator, client: ContainerAppsAPIClient, env_id: str
) -> None:
    emulator.set_faults(lro_hang_apps=["web"])

    client.container_apps.begin_create_or_update(RG, "web", app_body(env_id), polling=False)

    for _ in range(3):  # however often it is read, a hung operation stays in progress
        assert client.container_apps.get(RG, "web").properties.provisioning_state == "InProgress"
    assert emulator.app(SUB, RG, "web")["properties"]["runningStatus"] == "Progressing"
    emulator.release(SUB, RG, "web")
    app = client.container_apps.get(RG, "web")
    assert app.properties.provisioning_state == "Succeeded" and app.properties.running_status == "Running"
    with pytest.raises(KeyError):
        emulator.release(SUB, RG, "web")  # nothing left to end
    # released for good: the next write is not hung
    later = create(client, "web", app_body(env_id, image="ghcr.io/acme/web:1.1"))
    assert later.properties.provisioning_state == "Succeeded"


def test_throttling_is_retried_after_retry_after(
    emulator: AcaEmulator, client: ContainerAppsAPIClient, env_id: str
) -> None:
    create(client, "web", app_body(env_id))
    emulator.set_faults(throttle_next=2, retry_after_s=1)
    emulator.reset_calls()

    started = time.monotonic()
    assert client.container_apps.get(RG, "web").name == "web"

    assert emulator.calls() == {"GET app": 3}
    assert time.monotonic() - started >= 2


def test_unavailable_is_retried(emulator: AcaEmulator, client: ContainerAppsAPIClient, env_id: str) -> None:
    create(client, "web", app_body(env_id))
    emulator.set_faults(unavailable_next=2)
    emulator.reset_calls()

    assert client.container_apps.get(RG, "web").name == "web"
    assert emulator.calls() == {"GET app": 3}


def test_fault_responses_on_the_wire(emulator: AcaEmulator) -> None:
    headers = {"Authorization": "Bearer x"}
    emulator.set_faults(throttle_next=1, unavailable_next=1, retry_after_s=3)

    throttled = requests.get(apps_url(emulator), headers=headers, verify=emulator.ca_path, timeout=5)
    unavailable = requests.get(apps_url(emulator), headers=headers, verify=emulator.ca_path, timeout=5)

    assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "3")
    assert throttled.json()["error"]["code"] == "TooManyRequests"
    assert unavailable.status_code == 503 and "Retry-After" not in unavailable.headers
    assert unavailable.json()["error"]["code"] == "ServiceUnavailable"


def test_missing_bearer_token_is_401(emulator: AcaEmulator) -> None:
    response = requests.get(apps_url(emulator), verify=emulator.ca_path, timeout=5)

    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert response.headers["x-ms-request-id"]
    assert response.json()["error"]["code"] == "AuthenticationFailed"


def test_missing_api_version_is_400(emulator: AcaEmulator) -> None:
    response = requests.get(
        apps_url(emulator, query=""), headers={"Authorization": "Bearer x"}, verify=emulator.ca_path, timeout=5
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "MissingApiVersionParameter"


def test_configured_token_rejects_other_tokens() -> None:
    emulator = AcaEmulator(token="expected").start()
    try:
        emulator.add_environment(SUB, RG, "env-dev")
        with pytest.raises(ClientAuthenticationError):
            make_client(emulator, token="other").managed_environments.get(RG, "env-dev")
        assert make_client(emulator, token="expected").managed_environments.get(RG, "env-dev").name == "env-dev"
    finally:
        emulator.stop()


def test_failing_image_fails_revision_and_keeps_last_ready(client: ContainerAppsAPIClient, env_id: str) -> None:
    good = create(client, "web", app_body(env_id))

    bad = create(client, "web", app_body(env_id, image="ghcr.io/acme/web:broken-1"))

    props = bad.properties
    assert props.provisioning_state == "Succeeded" and props.running_status == "Degraded"
    assert props.latest_ready_revision_name == good.properties.latest_revision_name
    assert props.latest_revision_name != props.latest_ready_revision_name
    failed = client.container_apps_revisions.get_revision(RG, "web", props.latest_revision_name).properties
    assert failed.provisioning_state == "Failed" and failed.health_state == "Unhealthy"
    assert failed.running_state == "Failed" and failed.active is False
    assert "'web'" in failed.provisioning_error and "ghcr.io/acme/web:broken-1" in failed.provisioning_error
    previous = client.container_apps_revisions.get_revision(RG, "web", props.latest_ready_revision_name).properties
    assert previous.active is True and previous.traffic_weight == 100


def test_environments_through_the_sdk(client: ContainerAppsAPIClient, emulator: AcaEmulator) -> None:
    created = client.managed_environments.begin_create_or_update(RG, "env-sdk", {"location": "northeurope"}).result()

    assert created.properties.provisioning_state == "Succeeded"
    assert created.properties.default_domain.endswith(".northeurope.azurecontainerapps.io")
    assert [env.name for env in client.managed_environments.list_by_resource_group(RG)] == ["env-sdk"]
    assert emulator.calls() == {"PUT environment": 1, "GET environments": 1}


def test_control_endpoints(emulator: AcaEmulator, client: ContainerAppsAPIClient) -> None:
    base, verify = f"{emulator.url}/_emulator", emulator.ca_path

    env = requests.put(f"{base}/environments/{SUB}/{RG}/env-ctl", json={"location": "eastus"}, verify=verify, timeout=5)
    assert env.status_code == 200 and env.json()["location"] == "eastus"
    create(client, "web", app_body(env.json()["id"]))
    assert requests.get(f"{base}/calls", verify=verify, timeout=5).json()["PUT app"] == 1

    assert requests.post(f"{base}/faults", json={"latency_s": 0.01}, verify=verify, timeout=5).status_code == 200
    bad = requests.post(f"{base}/faults", json={"nonsense": 1}, verify=verify, timeout=5)
    assert bad.status_code == 400 and "nonsense" in bad.json()["error"]["message"]
    with pytest.raises(ValueError):
        emulator.set_faults(nonsense=1)

    release = f"{base}/release/{SUB}/{RG}/web"
    assert requests.post(release, verify=verify, timeout=5).status_code == 404  # nothing runs on web
    emulator.set_faults(lro_hang_apps=["web"])
    assert wire(emulator, "PATCH", "web", {"tags": {"x": "1"}}).status_code == 202
    assert requests.post(release, json={"status": "Maybe"}, verify=verify, timeout=5).status_code == 400
    assert requests.post(release, json={"status": "Failed"}, verify=verify, timeout=5).status_code == 200
    assert emulator.app(SUB, RG, "web")["properties"]["provisioningState"] == "Failed"

    assert requests.post(f"{base}/reset-calls", verify=verify, timeout=5).status_code == 200
    assert emulator.calls() == {}
    assert requests.post(f"{base}/reset", verify=verify, timeout=5).status_code == 200
    assert emulator.app(SUB, RG, "web") is None


def test_command_line_serves_and_persists_state(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    command = [
        sys.executable, "-m", "devtools.aca_emulator",
        "--cert-dir", str(tmp_path / "certs"), "--state-file", str(state_file), "--page-size", "5",
    ]
    environ = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}

    def serve_once(action: Any) -> None:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=environ, cwd=REPO_ROOT)
        try:
            line = process.stdout.readline().strip()
            match = re.fullmatch(r"ACA emulator listening on (https://127\.0\.0\.1:\d+) CA=(.+)", line)
            assert match, line
            action(match.group(1), match.group(2))
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0

    def add_environment(url: str, ca: str) -> None:
        response = requests.put(f"{url}/_emulator/environments/{SUB}/{RG}/env-cli", verify=ca, timeout=5)
        assert response.status_code == 200
        deadline = time.monotonic() + 2
        while not (state_file.exists() and "env-cli" in state_file.read_text()):  # written while serving
            assert time.monotonic() < deadline, "state file not written after the mutation"
            time.sleep(0.02)

    def read_environment(url: str, ca: str) -> None:
        path = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.App/managedEnvironments/env-cli"
        response = requests.get(
            f"{url}{path}?api-version={API}", headers={"Authorization": "Bearer x"}, verify=ca, timeout=5
        )
        assert response.status_code == 200 and response.json()["name"] == "env-cli"

    serve_once(add_environment)
    serve_once(read_environment)


# --------------------------------------------------------- as strict as ARM (issue 14, section 1)


def app_url(emulator: AcaEmulator, name: str, api: str = API, sub: str = SUB, rg: str = RG) -> str:
    return (f"{emulator.url}/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.App/containerApps/"
            f"{name}?api-version={api}")


def wire(emulator: AcaEmulator, method: str, name: str, body: Any = None, **kwargs: Any) -> requests.Response:
    """One raw ARM request, as any client would send it (status codes and bodies are asserted as they are)."""
    return requests.request(method, app_url(emulator, name, **kwargs), json=body, timeout=10,
                            headers={"Authorization": "Bearer x"}, verify=emulator.ca_path)


def arm_error(response: requests.Response) -> dict[str, str]:
    """The ARM error body, checked to have exactly ARM's shape: {"error": {"code", "message"}}."""
    body = response.json()
    assert list(body) == ["error"] and set(body["error"]) == {"code", "message"}, body
    return body["error"]


def test_every_write_while_an_operation_runs_is_409_and_changes_nothing(
    emulator: AcaEmulator, client: ContainerAppsAPIClient, env_id: str
) -> None:
    create(client, "web", app_body(env_id))
    emulator.set_faults(lro_hang_apps=["web"])
    patch = {"properties": {"template": {"containers": [{"name": "web", "image": "ghcr.io/acme/web:2.0"}]}}}
    assert wire(emulator, "PATCH", "web", patch).status_code == 202
    during = emulator.app(SUB, RG, "web")
    assert during["properties"]["provisioningState"] == "InProgress"

    answers = [wire(emulator, "PUT", "web", app_body(env_id, image="ghcr.io/acme/web:3.0")),
               wire(emulator, "PATCH", "web", {"tags": {"env": "prod"}}),
               wire(emulator, "DELETE", "web")]

    for answer in answers:
        assert answer.status_code == 409
        error = arm_error(answer)
        assert error["code"] == "ContainerAppOperationInProgress"
        assert ("Cannot modify a container app 'web' because there is an active provisioning operation"
                in error["message"])
    assert emulator.app(SUB, RG, "web") == during  # the refused writes changed nothing
    emulator.release(SUB, RG, "web")
    assert emulator.app(SUB, RG, "web")["properties"]["template"]["containers"][0]["image"] == "ghcr.io/acme/web:2.0"
    assert wire(emulator, "PATCH", "web", {"tags": {"env": "prod"}}).status_code == 202  # accepted once it ended


def test_a_failed_update_leaves_the_app_as_it_was(
    emulator: AcaEmulator, client: ContainerAppsAPIClient, env_id: str
) -> None:
    before = create(client, "web", app_body(env_id)).as_dict()
    emulator.set_faults(lro_fail_apps=["web"])
    patch = {"tags": {"env": "prod"},
             "properties": {"template": {"containers": [{"name": "web", "image": "ghcr.io/acme/web:2.0"}]}}}

    with pytest.raises(HttpResponseError) as caught:
        client.container_apps.begin_update(RG, "web", io.BytesIO(json.dumps(patch).encode())).result()

    assert "ContainerAppOperationError" in str(caught.value)
    after = emulator.app(SUB, RG, "web")
    assert after["properties"]["provisioningState"] == "Failed"
    assert after["tags"] == before["tags"]
    assert after["properties"]["template"] == before["properties"]["template"]
    assert after["properties"]["latestReadyRevisionName"] == before["properties"]["latestRevisionName"]
    emulator.set_faults(lro_fail_apps=[])  # the same write again now goes through, with a new revision
    again = client.container_apps.begin_update(RG, "web", io.BytesIO(json.dumps(patch).encode())).result()
    assert again.properties.provisioning_state == "Succeeded" and again.tags["env"] == "prod"
    assert again.properties.latest_ready_revision_name == again.properties.latest_revision_name


def test_release_can_end_a_hung_write_as_failed(
    emulator: AcaEmulator, client: ContainerAppsAPIClient, env_id: str
) -> None:
    before = create(client, "web", app_body(env_id)).as_dict()
    emulator.set_faults(lro_hang_apps=["web"])
    assert wire(emulator, "PATCH", "web", {"tags": {"env": "prod"}}).status_code == 202

    emulator.release(SUB, RG, "web", status="Failed")

    after = emulator.app(SUB, RG, "web")
    assert after["properties"]["provisioningState"] == "Failed" and after["tags"] == before["tags"]


# Codes and messages of each refusal, from real ARM answers:
# - ContainerAppInvalidName: github.com/dotnet/docs-aspire/issues/1094, github.com/Azure/azure-cli/pull/27933
# - ContainerAppInvalidResourceTotal: github.com/Azure/bicep-types-az/issues/1924, Azure/bicep/issues/14569
# - ContainerAppSecretRefNotFound: github.com/microsoft/java-on-aca-with-ai/issues/13
# - ContainerAppRegistriesPasswordSecretRefNotFound: github.com/piizei/terraform-container-apps/issues/2
# - ContainerAppSecretInvalid: github.com/pulumi/pulumi-azure-native/issues/2807 and /2673
# - InvalidParameterValueInContainerTemplate ("could not parse reference"; "Unable to get value using Managed
#   identity"): az containerapp answers quoted in public repositories, microsoft/azure-container-apps/issues/722
# - ContainerAppOperationInProgress (409): az containerapp answers quoted in public repositories
# - identity.type outside ARM's enum: no published answer found; InvalidRequestContent (ARM's code for a body
#   that does not deserialize) is used.
LONG_NAME = "a" * 33


def _with(env_id: str, change: Any, **properties: Any) -> dict[str, Any]:
    body = app_body(env_id, **properties)
    change(body)
    return body


def _container(body: dict[str, Any]) -> dict[str, Any]:
    return body["properties"]["template"]["containers"][0]


REFUSED: list[tuple[str, str, Any, str, str]] = [
    # (case, app name, change to a valid body, code, part of the message)
    ("uppercase name", "WebApp", lambda b: None, "ContainerAppInvalidName", "Invalid ContainerApp name 'WebApp'"),
    ("double hyphen", "web--app", lambda b: None, "ContainerAppInvalidName", "cannot have '--'"),
    ("one character", "w", lambda b: None, "ContainerAppInvalidName", "between 2 and 32"),
    ("33 characters", LONG_NAME, lambda b: None, "ContainerAppInvalidName", "between 2 and 32"),
    ("starts with a digit", "1web", lambda b: None, "ContainerAppInvalidName", "start with an alphabetic"),
    ("ends with a hyphen", "web-", lambda b: None, "ContainerAppInvalidName", "end with an alphanumeric"),
    ("identity type with a space", "web",
     lambda b: b.update(identity={"type": "SystemAssigned, UserAssigned", "userAssignedIdentities": {}}),
     "InvalidRequestContent", "'SystemAssigned, UserAssigned' was not found. Path 'identity.type'"),
    ("unknown identity type", "web", lambda b: b.update(identity={"type": "Managed"}),
     "InvalidRequestContent", "Path 'identity.type'"),
    ("memory not twice the CPU", "web", lambda b: _container(b).update(resources={"cpu": 0.5, "memory": "2Gi"}),
     "ContainerAppInvalidResourceTotal", "(CPU: 0.5, memory: 2.0) is invalid"),
    ("CPU off the 0.25 grid", "web", lambda b: _container(b).update(resources={"cpu": 0.3, "memory": "0.6Gi"}),
     "ContainerAppInvalidResourceTotal", "[cpu: 4.0, memory: 8.0Gi]"),
    ("total above 4 vCPU", "web", lambda b: b["properties"]["template"]["containers"].extend(
        [{"name": "side", "image": "busybox", "resources": {"cpu": 4.0, "memory": "8Gi"}}]),
     "ContainerAppInvalidResourceTotal", "(CPU: 4.5, memory: 9.0)"),
    ("memory not in Gi", "web", lambda b: _container(b).update(resources={"cpu": 0.5, "memory": "1GB"}),
     "ContainerAppInvalidResourceTotal", "memory: 1GB"),
    ("secretRef to an undeclared secret", "web",
     lambda b: _container(b).update(env=[{"name": "X", "secretRef": "nope"}]),
     "ContainerAppSecretRefNotFound", "SecretRef 'nope' defined for container 'web' not found."),
    ("registry password secret undeclared", "web", lambda b: b["properties"]["configuration"].update(
        registries=[{"server": "myacr.azurecr.io", "username": "u", "passwordSecretRef": "acr-pwd"}]),
     "ContainerAppRegistriesPasswordSecretRefNotFound",
     "PasswordSecretRef 'acr-pwd' defined for registry server 'myacr.azurecr.io' not found."),
    ("Key Vault secret without identity", "web", lambda b: b["properties"]["configuration"].update(
        secrets=[{"name": "db", "keyVaultUrl": "https://kv.vault.azure.net/secrets/db"}]),
     "ContainerAppSecretInvalid", "'db' are invalid: value or keyVaultUrl and identity should be provided."),
    ("Key Vault secret read by an unassigned system identity", "web", lambda b: b["properties"]["configuration"].update(
        secrets=[{"name": "db", "keyVaultUrl": "https://kv.vault.azure.net/secrets/db", "identity": "system"}]),
     "InvalidParameterValueInContainerTemplate", "Unable to get value using Managed identity system for secret db"),
    ("newline in the image", "web", lambda b: _container(b).update(image="nginx:1.27\nrm -rf /"),
     "InvalidParameterValueInContainerTemplate", "template.containers.web.image' is invalid"),
    ("spaces and ; in the image", "web", lambda b: _container(b).update(image="nginx; curl evil"),
     "InvalidParameterValueInContainerTemplate", "could not parse reference"),
    ("uppercase repository", "web", lambda b: _container(b).update(image="ghcr.io/JasonEtco/drinks:pr-82"),
     "InvalidParameterValueInContainerTemplate", "could not parse reference"),
    ("tag longer than 128", "web", lambda b: _container(b).update(image="nginx:" + "1" * 129),
     "InvalidParameterValueInContainerTemplate", "could not parse reference"),
    ("repository name over 255", "web", lambda b: _container(b).update(image="r/" + "a" * 260 + ":1"),
     "InvalidParameterValueInContainerTemplate", "could not parse reference"),
    ("a 10 MB image", "web", lambda b: _container(b).update(image="a" * 10_000_000),
     "InvalidParameterValueInContainerTemplate", "could not parse reference"),
]


@pytest.mark.parametrize(("name", "change", "code", "says"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_arm_refuses_what_the_container_apps_rp_refuses(
    emulator: AcaEmulator, env_id: str, name: str, change: Any, code: str, says: str
) -> None:
    answer = wire(emulator, "PUT", name, _with(env_id, change))

    assert answer.status_code == 400
    error = arm_error(answer)
    assert error["code"] == code and says in error["message"], error
    assert len(answer.content) < 2_000  # an oversized input is never echoed whole
    assert emulator.app(SUB, RG, name) is None and emulator.calls()["PUT app"] == 1


ACCEPTED: list[tuple[str, str, Any]] = [
    ("32 characters", "a" + "b1-" * 10 + "c", lambda b: None),
    ("identity enum exactly", "web", lambda b: b.update(identity={"type": "SystemAssigned,UserAssigned",
                                                                   "userAssignedIdentities": {USER_ID: {}}})),
    ("identity enum in another case", "web", lambda b: b.update(identity={"type": "systemassigned"})),
    ("two containers adding up", "web", lambda b: b["properties"]["template"]["containers"].extend(
        [{"name": "side", "image": "busybox", "resources": {"cpu": 0.25, "memory": "0.5Gi"}}])
     or _container(b).update(resources={"cpu": 0.75, "memory": "1.5Gi"})),
    ("the largest Consumption size", "web", lambda b: _container(b).update(resources={"cpu": 4, "memory": "8Gi"})),
    ("secretRef and registry password to declared secrets", "web", lambda b: _container(b).update(
        env=[{"name": "DB", "secretRef": "db-password"}]) or b["properties"]["configuration"].update(
        registries=[{"server": "myacr.azurecr.io", "username": "u", "passwordSecretRef": "db-password"}])),
    ("Key Vault secret read by the app's identity", "web", lambda b: b.update(identity={"type": "SystemAssigned"})
     or b["properties"]["configuration"]["secrets"].append(
        {"name": "kv", "keyVaultUrl": "https://kv.vault.azure.net/secrets/kv", "identity": "system"})),
    ("Key Vault secret read by a user-assigned identity", "web", lambda b: b.update(
        identity={"type": "UserAssigned", "userAssignedIdentities": {USER_ID: {}}})
     or b["properties"]["configuration"]["secrets"].append(
        {"name": "kv", "keyVaultUrl": "https://kv.vault.azure.net/secrets/kv", "identity": USER_ID.lower()})),
    ("registry with port, digest", "web", lambda b: _container(b).update(
        image="localhost:5000/team/web-app@sha256:" + "a" * 64)),
    ("tag and digest", "web", lambda b: _container(b).update(
        image="mcr.microsoft.com/azuredocs/containerapps-helloworld:latest@sha256:" + "0" * 64)),
]
USER_ID = (f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/"
           "web-identity")


@pytest.mark.parametrize(("name", "change"), [r[1:] for r in ACCEPTED], ids=[r[0] for r in ACCEPTED])
def test_what_arm_accepts_is_accepted(emulator: AcaEmulator, env_id: str, name: str, change: Any) -> None:
    answer = wire(emulator, "PUT", name, _with(env_id, change))

    assert answer.status_code == 201, answer.text


def test_a_patch_is_checked_as_the_app_it_makes_and_a_refused_one_changes_nothing(
    emulator: AcaEmulator, client: ContainerAppsAPIClient, env_id: str
) -> None:
    create(client, "web", app_body(env_id))
    before = emulator.app(SUB, RG, "web")

    # The stored secret has no value any more (ARM never returns it); a PATCH that leaves secrets alone is fine.
    assert wire(emulator, "PATCH", "web", {"tags": {"env": "prod"}}).status_code == 202
    refused = wire(emulator, "PATCH", "web", {"properties": {"template": {"containers": [
        {"name": "web", "image": "nginx", "env": [{"name": "X", "secretRef": "gone"}]}]}}})
    spaced = wire(emulator, "PATCH", "web", {"identity": {"type": "SystemAssigned, UserAssigned"}})

    assert refused.status_code == 400 and arm_error(refused)["code"] == "ContainerAppSecretRefNotFound"
    assert spaced.status_code == 400 and arm_error(spaced)["code"] == "InvalidRequestContent"
    after = emulator.app(SUB, RG, "web")
    assert after["tags"]["env"] == "prod" and after["properties"]["template"] == before["properties"]["template"]


def test_default_probes_go_to_the_main_container_of_an_app_with_ingress_only(
    emulator: AcaEmulator, client: ContainerAppsAPIClient, env_id: str
) -> None:
    custom = {"type": "Liveness", "httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 3}
    body = app_body(env_id)
    body["properties"]["template"]["containers"] = [
        {"name": "web", "image": "nginx", "probes": [custom]},
        {"name": "side", "image": "busybox"},
    ]
    body["properties"]["template"]["containers"][0]["resources"] = {"cpu": 0.25, "memory": "0.5Gi"}
    body["properties"]["template"]["containers"][1]["resources"] = {"cpu": 0.25, "memory": "0.5Gi"}
    no_ingress = app_body(env_id)
    del no_ingress["properties"]["configuration"]["ingress"]

    web = create(client, "web", body).as_dict()["properties"]["template"]["containers"]
    worker = create(client, "worker", no_ingress).as_dict()["properties"]["template"]["containers"]

    defaults = {p["type"]: p for p in default_probes(8080)}
    assert web[0]["probes"] == [custom, defaults["Startup"], defaults["Readiness"]]  # own Liveness kept
    assert defaults["Startup"] == {"type": "Startup", "tcpSocket": {"port": 8080}, "timeoutSeconds": 3,
                                   "periodSeconds": 1, "initialDelaySeconds": 1, "successThreshold": 1,
                                   "failureThreshold": 240}
    assert web[1]["probes"] == []  # sidecars get none
    assert worker[0]["probes"] == []  # no ingress, no defaults
    assert len(list(client.container_apps_revisions.list_revisions(RG, "web"))) == 1
    again = create(client, "web", body)  # the same body again is no change: no new revision
    assert len(list(client.container_apps_revisions.list_revisions(RG, "web"))) == 1
    assert again.properties.provisioning_state == "Succeeded"


# ------------------------------------------------ Microsoft's published examples (tests/fixtures/arm)


def example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / f"ContainerApps_{name}.json").read_text())


def same_shape(ours: Any, theirs: Any, path: str = "") -> list[str]:
    """Where `ours` lacks a key the published example has, or holds another JSON type (values may differ)."""
    if isinstance(theirs, dict):
        if not isinstance(ours, dict):
            return [f"{path}: object expected"]
        return [p for k, v in theirs.items() if v is not None
                for p in ([f"{path}.{k}: missing"] if k not in ours else same_shape(ours[k], v, f"{path}.{k}"))]
    if isinstance(theirs, list):
        return [f"{path}: array expected"] if not isinstance(ours, list) else []
    if isinstance(theirs, bool) or theirs is None:
        return [] if isinstance(ours, type(theirs)) or theirs is None else [f"{path}: {type(theirs).__name__}"]
    if isinstance(theirs, (int, float)):
        return [] if isinstance(ours, (int, float)) and not isinstance(ours, bool) else [f"{path}: number expected"]
    return [] if isinstance(ours, str) else [f"{path}: string expected"]


def test_the_published_examples_run_against_the_emulator_with_their_status_codes_headers_and_shapes(
    emulator: AcaEmulator,
) -> None:
    put = example("CreateOrUpdate")
    params = put["parameters"]
    sub, rg, name, api = (params[k] for k in ("subscriptionId", "resourceGroupName", "containerAppName", "api-version"))
    emulator.add_environment(sub, rg, "demokube", "East US", workload_profiles=[
        {"name": put["parameters"]["containerAppEnvelope"]["properties"]["workloadProfileName"],
         "workloadProfileType": "D4", "minimumCount": 1, "maximumCount": 3}])
    emulator.set_faults(lro_hang_apps=[name])
    at = {"sub": sub, "rg": rg, "api": api}

    created = wire(emulator, "PUT", name, params["containerAppEnvelope"], **at)
    assert created.status_code == 201 and created.headers["Azure-AsyncOperation"].startswith(emulator.url)
    assert same_shape(created.json(), put["responses"]["201"]["body"]) == []
    assert created.json()["identity"]["type"] == "SystemAssigned,UserAssigned"
    emulator.release(sub, rg, name)
    status = requests.get(created.headers["Azure-AsyncOperation"], headers={"Authorization": "Bearer x"},
                          verify=emulator.ca_path, timeout=10).json()
    assert status["status"] == "Succeeded"
    replaced = wire(emulator, "PUT", name, params["containerAppEnvelope"], **at)
    assert replaced.status_code == 200 and same_shape(replaced.json(), put["responses"]["200"]["body"]) == []
    emulator.release(sub, rg, name)

    got = wire(emulator, "GET", name, **at)
    assert got.status_code == 200 and same_shape(got.json(), example("Get")["responses"]["200"]["body"]) == []
    list_url = f"{emulator.url}/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.App/containerApps"
    listed = requests.get(f"{list_url}?api-version={api}", headers={"Authorization": "Bearer x"},
                          verify=emulator.ca_path, timeout=10)
    page = example("ListByResourceGroup")["responses"]["200"]["body"]
    assert listed.status_code == 200 and same_shape(listed.json()["value"][0], page["value"][0]) == []
    assert set(listed.json()) <= set(page)  # "value" and, when there is more, "nextLink"

    patch = example("Patch")
    patched = wire(emulator, "PATCH", name, patch["parameters"]["containerAppEnvelope"], **at)
    assert str(patched.status_code) in patch["responses"] and patched.status_code == 202
    assert {"Azure-AsyncOperation", "Location"} <= set(patched.headers)
    assert patched.content == b""
    emulator.release(sub, rg, name)
    after = wire(emulator, "GET", name, **at).json()
    assert after["tags"] == {"tag1": "value1", "tag2": "value2"}
    assert after["properties"]["template"]["containers"][0]["image"] == "repo/testcontainerapp0:v1"

    delete = example("Delete")["responses"]
    deleted = wire(emulator, "DELETE", name, **at)
    assert str(deleted.status_code) in delete and deleted.status_code == 202 and "Location" in deleted.headers
    emulator.release(sub, rg, name)
    gone = wire(emulator, "GET", name, **at)
    assert gone.status_code == 404 and arm_error(gone)["code"] == "ResourceNotFound"
    again = wire(emulator, "DELETE", name, **at)
    assert str(again.status_code) in delete and again.status_code == 204
