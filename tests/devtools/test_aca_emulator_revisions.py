"""Revisions in Multiple mode in the ACA emulator, as a canary or blue-green walks them (issue 17), driven through the
real azure-mgmt-appcontainers client (`container_apps_revisions.list_revisions/get_revision/activate_revision/
deactivate_revision`).

The contract comes from the azure-rest-api-specs Microsoft.App examples (ContainerApps_CreateOrUpdate/Patch with
`configuration.ingress.traffic` [{revisionName, weight, label, latestRevision}], Revisions_Get/List with `active`,
`trafficWeight`, `replicas`, `healthState`, `provisioningState`, `runningState`) and from real ARM behaviour reported
publicly:
- ACA accepts traffic for a deactivated revision and deactivating a revision that has traffic (even the only active
  one): github.com/microsoft/azure-container-apps/issues/1345 (open) and /issues/410 (the deactivated revision stays
  in the app's traffic). So the emulator accepts both too.
- traffic the new revision cannot be provisioned with makes ACA accept the write and fail its operation
  (`ContainerAppOperationError`, "Failed to provision revision for container app ..."):
  hashicorp/terraform-provider-azurerm#27221. The emulator does the same for traffic naming a revision the app does
  not have; that message's details are ours (unconfirmed).
- weights adding up to 100 and unique labels: the RP's generic InvalidParameterValueInContainerConfiguration with our
  details (the real codes for these two are unconfirmed).
"""

from __future__ import annotations

import copy
import io
import json
from typing import Any

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.appcontainers import ContainerAppsAPIClient

from devtools.aca_emulator import AcaEmulator
from tests.devtools.test_aca_emulator import RG, SUB, arm_error, make_client, wire

START = 1_796_040_000.0


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(emulator: AcaEmulator) -> Clock:
    injected = Clock()
    emulator.set_clock(injected)
    return injected


def body(env_id: str, suffix: str, image: str = "ghcr.io/acme/web:1.0", traffic: list[dict[str, Any]] | None = None,
         **configuration: Any) -> dict[str, Any]:
    return {
        "location": "westeurope",
        "properties": {
            "managedEnvironmentId": env_id,
            "configuration": {
                "activeRevisionsMode": "Multiple",
                "ingress": {"external": True, "targetPort": 8080,
                            "traffic": traffic or [{"latestRevision": True, "weight": 100}]},
                **configuration,
            },
            "template": {"revisionSuffix": suffix, "containers": [{"name": "web", "image": image}]},
        },
    }


def patch(client: ContainerAppsAPIClient, changes: dict[str, Any]) -> Any:
    return client.container_apps.begin_update(RG, "web", io.BytesIO(json.dumps(changes).encode())).result()


def canary(env_id: str, suffix: str, image: str, traffic: list[dict[str, Any]]) -> dict[str, Any]:
    """The PATCH a canary step sends: a new template (revision) and the traffic split."""
    new = body(env_id, suffix, image)["properties"]
    return {"properties": {"template": new["template"], "configuration": {"ingress": {"traffic": traffic}}}}


def revisions(client: ContainerAppsAPIClient) -> dict[str, Any]:
    return {r.name: r.properties for r in client.container_apps_revisions.list_revisions(RG, "web")}


def test_a_new_template_adds_a_revision_at_zero_and_keeps_the_stable_one_active(
    client: ContainerAppsAPIClient, env_id: str
) -> None:
    client.container_apps.begin_create_or_update(RG, "web", body(env_id, "v1")).result()

    patch(client, canary(env_id, "v2", "ghcr.io/acme/web:2.0", [
        {"revisionName": "web--v1", "weight": 100, "label": "stable"},
        {"revisionName": "web--v2", "weight": 0, "label": "canary"}]))

    seen = revisions(client)
    assert list(seen) == ["web--v1", "web--v2"]
    assert [(p.active, p.traffic_weight, p.provisioning_state, p.health_state, p.running_state, p.replicas)
            for p in seen.values()] == [(True, 100, "Provisioned", "Healthy", "Running", 1),
                                        (True, 0, "Provisioned", "Healthy", "Running", 0)]   # idle: minReplicas 0
    assert seen["web--v2"].template.containers[0].image == "ghcr.io/acme/web:2.0"
    app = client.container_apps.get(RG, "web").properties
    assert (app.latest_revision_name, app.latest_ready_revision_name) == ("web--v2", "web--v2")
    assert [(t.revision_name, t.weight, t.label) for t in app.configuration.ingress.traffic] == [
        ("web--v1", 100, "stable"), ("web--v2", 0, "canary")]

    # the next canary step only moves weight: no new revision
    patch(client, {"properties": {"configuration": {"ingress": {"traffic": [
        {"revisionName": "web--v1", "weight": 80}, {"revisionName": "web--v2", "weight": 20}]}}}})
    assert {name: p.traffic_weight for name, p in revisions(client).items()} == {"web--v1": 80, "web--v2": 20}


def test_latest_revision_follows_the_newest_revision_once_it_is_ready(
    emulator: AcaEmulator, client: ContainerAppsAPIClient, env_id: str, clock: Clock
) -> None:
    client.container_apps.begin_create_or_update(RG, "web", body(env_id, "v1")).result()
    emulator.set_faults(lro_duration_s=30)
    new = body(env_id, "v2", "ghcr.io/acme/web:2.0")["properties"]["template"]
    client.container_apps.begin_update(RG, "web", io.BytesIO(json.dumps({"properties": {"template": new}}).encode()))

    provisioning = revisions(client)  # the operation runs: the new revision gets no traffic yet
    assert (provisioning["web--v2"].provisioning_state, provisioning["web--v2"].traffic_weight) == ("Provisioning", 0)
    assert provisioning["web--v1"].traffic_weight == 100

    clock.now += 30
    ready = revisions(client)
    assert {name: (p.traffic_weight, p.active) for name, p in ready.items()} == {
        "web--v1": (0, True), "web--v2": (100, True)}  # Multiple mode: the old one stays active at 0%


def test_blue_green_switch_moves_all_traffic_at_once(client: ContainerAppsAPIClient, env_id: str) -> None:
    client.container_apps.begin_create_or_update(RG, "web", body(env_id, "blue")).result()
    patch(client, canary(env_id, "green", "ghcr.io/acme/web:2.0", [
        {"revisionName": "web--blue", "weight": 100}, {"revisionName": "web--green", "weight": 0, "label": "preview"}]))
    assert revisions(client)["web--green"].fqdn.startswith("web--green.")  # reachable by its own name at 0%

    patch(client, {"properties": {"configuration": {"ingress": {"traffic": [
        {"revisionName": "web--green", "weight": 100}, {"revisionName": "web--blue", "weight": 0}]}}}})
    client.container_apps_revisions.deactivate_revision(RG, "web", "web--blue")

    seen = revisions(client)
    assert {n: (p.traffic_weight, p.active, p.replicas) for n, p in seen.items()} == {
        "web--blue": (0, False, 0), "web--green": (100, True, 1)}


@pytest.mark.parametrize(("traffic", "says"), [
    ([{"revisionName": "web--v1", "weight": 90}, {"latestRevision": True, "weight": 20}], "add up to 100"),
    ([{"revisionName": "web--v1", "weight": 50, "label": "x"}, {"latestRevision": True, "weight": 50, "label": "x"}],
     "labels must be unique"),
    ([{"revisionName": "web--v1", "weight": 101}, {"latestRevision": True, "weight": -1}], "between 0 and 100"),
], ids=["weights not adding up to 100", "a label used twice", "a weight over 100"])
def test_arm_refuses_traffic_it_cannot_parse(
    emulator: AcaEmulator, client: ContainerAppsAPIClient, env_id: str, traffic: list[dict[str, Any]], says: str
) -> None:
    client.container_apps.begin_create_or_update(RG, "web", body(env_id, "v1")).result()
    before = emulator.app(SUB, RG, "web")

    answer = wire(emulator, "PATCH", "web", {"properties": {"configuration": {"ingress": {"traffic": traffic}}}})

    assert answer.status_code == 400, answer.text
    error = arm_error(answer)
    assert error["code"] == "InvalidParameterValueInContainerConfiguration" and says in error["message"], error
    assert emulator.app(SUB, RG, "web") == before


def test_traffic_naming_a_revision_the_app_lacks_fails_the_operation_and_keeps_the_app(
    emulator: AcaEmulator, client: ContainerAppsAPIClient, env_id: str
) -> None:
    client.container_apps.begin_create_or_update(RG, "web", body(env_id, "v1")).result()
    before = emulator.app(SUB, RG, "web")

    with pytest.raises(HttpResponseError) as caught:
        patch(client, {"properties": {"configuration": {"ingress": {"traffic": [
            {"revisionName": "web--v1", "weight": 50}, {"revisionName": "web--typo", "weight": 50}]}}}})

    assert "ContainerAppOperationError" in str(caught.value) and "web--typo" in str(caught.value)
    after = emulator.app(SUB, RG, "web")
    assert after["properties"]["provisioningState"] == "Failed"
    assert after["properties"]["configuration"] == before["properties"]["configuration"]  # traffic as it was
    assert {n: p.traffic_weight for n, p in revisions(client).items()} == {"web--v1": 100}


def test_like_arm_traffic_to_an_inactive_revision_and_deactivating_one_with_traffic_are_accepted(
    client: ContainerAppsAPIClient, env_id: str
) -> None:
    client.container_apps.begin_create_or_update(RG, "web", body(env_id, "v1")).result()
    patch(client, canary(env_id, "v2", "ghcr.io/acme/web:2.0", [
        {"revisionName": "web--v1", "weight": 70}, {"revisionName": "web--v2", "weight": 30}]))

    client.container_apps_revisions.deactivate_revision(RG, "web", "web--v2")  # it has 30%
    patch(client, {"properties": {"configuration": {"ingress": {"traffic": [
        {"revisionName": "web--v1", "weight": 50}, {"revisionName": "web--v2", "weight": 50}]}}}})

    seen = revisions(client)
    # the revision reports the weight the app gives it, though it is inactive and serves nothing
    assert (seen["web--v2"].active, seen["web--v2"].traffic_weight, seen["web--v2"].replicas) == (False, 50, 0)
    client.container_apps_revisions.activate_revision(RG, "web", "web--v2")
    assert client.container_apps_revisions.get_revision(RG, "web", "web--v2").properties.active is True


def test_unknown_revisions_are_404_for_get_activate_and_deactivate(
    client: ContainerAppsAPIClient, env_id: str
) -> None:
    client.container_apps.begin_create_or_update(RG, "web", body(env_id, "v1")).result()
    for call in (client.container_apps_revisions.get_revision, client.container_apps_revisions.activate_revision,
                 client.container_apps_revisions.deactivate_revision):
        with pytest.raises(ResourceNotFoundError, match="ResourceNotFound"):
            call(RG, "web", "web--nope")


def test_revision_health_running_state_and_replicas_are_injectable(
    emulator: AcaEmulator, client: ContainerAppsAPIClient, env_id: str
) -> None:
    client.container_apps.begin_create_or_update(RG, "web", body(env_id, "v1")).result()
    patch(client, canary(env_id, "v2", "ghcr.io/acme/web:2.0", [
        {"revisionName": "web--v1", "weight": 90}, {"revisionName": "web--v2", "weight": 10}]))

    emulator.set_revision_state("web", "web--v2", healthy=False, replicas=3)
    sick = client.container_apps_revisions.get_revision(RG, "web", "web--v2").properties
    assert (sick.health_state, sick.running_state, sick.replicas, sick.provisioning_state) == (
        "Unhealthy", "Degraded", 3, "Provisioned")
    assert client.container_apps_revisions.get_revision(RG, "web", "web--v1").properties.health_state == "Healthy"

    emulator.set_revision_state("web", "web--v2", healthy=True, running_state="Processing", replicas=0)
    state = client.container_apps_revisions.get_revision(RG, "web", "web--v2").properties
    assert (state.health_state, state.running_state, state.replicas) == ("Healthy", "Processing", 0)

    emulator.set_revision_state("web", "web--v2")  # forget the injected state
    assert client.container_apps_revisions.get_revision(RG, "web", "web--v2").properties.replicas == 1
    with pytest.raises(KeyError):
        emulator.set_revision_state("web", "web--nope", healthy=False)
    with pytest.raises(KeyError):
        emulator.set_revision_state("nope", "web--v2", healthy=False)
    with pytest.raises(ValueError):
        emulator.set_revision_state("web", "web--v2", running_state="Sleepy")


def test_max_inactive_revisions_prunes_the_oldest_inactive_ones_but_not_those_with_traffic(
    client: ContainerAppsAPIClient, env_id: str
) -> None:
    client.container_apps.begin_create_or_update(RG, "web", body(env_id, "v1", maxInactiveRevisions=1)).result()
    for suffix in ("v2", "v3", "v4"):
        patch(client, canary(env_id, suffix, f"ghcr.io/acme/web:{suffix}", [
            {"revisionName": "web--v1", "weight": 100}, {"latestRevision": True, "weight": 0}]))
    for name in ("web--v2", "web--v3"):
        client.container_apps_revisions.deactivate_revision(RG, "web", name)
    client.container_apps_revisions.deactivate_revision(RG, "web", "web--v1")  # still named in the traffic

    assert list(revisions(client)) == ["web--v1", "web--v3", "web--v4"]  # v2, the oldest inactive, is gone


def test_a_session_emulator_takes_a_test_clock(emulator: AcaEmulator, env_id: str) -> None:
    clock = Clock()
    client = make_client(emulator)
    emulator.set_clock(clock)
    emulator.set_faults(lro_duration_s=60)
    poller = client.container_apps.begin_create_or_update(RG, "web", body(env_id, "v1"))
    assert emulator.app(SUB, RG, "web")["properties"]["provisioningState"] == "InProgress"

    clock.now += 60
    assert poller.result().properties.provisioning_state == "Succeeded"


def test_multiple_mode_revisions_keep_their_templates(client: ContainerAppsAPIClient, env_id: str) -> None:
    first = body(env_id, "v1")
    client.container_apps.begin_create_or_update(RG, "web", copy.deepcopy(first)).result()
    patch(client, canary(env_id, "v2", "ghcr.io/acme/web:2.0", [
        {"revisionName": "web--v1", "weight": 100}, {"revisionName": "web--v2", "weight": 0}]))

    images = {n: p.template.containers[0].image for n, p in revisions(client).items()}

    assert images == {"web--v1": "ghcr.io/acme/web:1.0", "web--v2": "ghcr.io/acme/web:2.0"}


def test_revision_state_is_injectable_over_the_control_endpoint(
    emulator: AcaEmulator, client: ContainerAppsAPIClient, env_id: str
) -> None:
    client.container_apps.begin_create_or_update(RG, "web", body(env_id, "v1")).result()

    def post(revision: str, state: dict[str, Any]) -> int:
        return requests.post(f"{emulator.url}/_emulator/revision-state/web/{revision}", json=state,
                             verify=emulator.ca_path, timeout=10).status_code

    assert post("web--v1", {"healthy": False}) == 200
    assert client.container_apps_revisions.get_revision(RG, "web", "web--v1").properties.health_state == "Unhealthy"
    assert post("web--nope", {"healthy": False}) == 404
    assert post("web--v1", {"running_state": "Sleepy"}) == 400
