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
from typing import Any, Iterator

import pytest
import requests
from azure.core.credentials import AccessToken
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)
from azure.mgmt.appcontainers import ContainerAppsAPIClient

from devtools.aca_emulator import AcaEmulator

SUB = "8f2a4c1e-0000-4000-8000-000000000001"
RG = "rg-driftless"
API = "2025-01-01"
REPO_ROOT = Path(__file__).resolve().parents[2]


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


@pytest.fixture(scope="module")
def server() -> Iterator[AcaEmulator]:
    emulator = AcaEmulator().start()
    yield emulator
    emulator.stop()


@pytest.fixture
def emulator(server: AcaEmulator) -> AcaEmulator:
    server.reset()
    return server


@pytest.fixture
def env_id(emulator: AcaEmulator) -> str:
    return emulator.add_environment(SUB, RG, "env-dev")["id"]


@pytest.fixture
def client(emulator: AcaEmulator) -> ContainerAppsAPIClient:
    return make_client(emulator, retry_backoff_factor=0.01)


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
    assert container["probes"] == []
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
    assert caught.value.error.code == "InvalidRequestContent"


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
        "probes": [],
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

    poller = client.container_apps.begin_create_or_update(RG, "web", app_body(env_id))
    poller.wait(0.5)

    assert not poller.done()
    assert emulator.app(SUB, RG, "web")["properties"]["runningStatus"] == "Progressing"
    emulator.set_faults(lro_hang_apps=[])
    assert poller.result(timeout=5).properties.provisioning_state == "Succeeded"


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
