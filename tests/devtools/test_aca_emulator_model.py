"""The whole Container Apps model in the ACA emulator (issue 13): every app setting stored and returned with the
defaults ARM fills in, the refusals of the Container Apps RP, workload profiles, and revisions in Multiple mode.

Codes confirmed from real ARM answers (the rest are the RP's generic template code or inferred, see the report):
- ContainerAppProbeFailureThresholdOutOfRange and its message shape: github.com/microsoft/azure-container-apps/issues/1100
- failureThreshold limits 30 / 48 / 240 (Liveness / Readiness / Startup): hashicorp/terraform-provider-azurerm
  issue 31980 and PR 31989 (the portal's limits), and ACA's own default probes (48, 240)
- ContainerAppInvalidRevisionName and its message: github.com/Azure/azure-quickstart-templates/issues/14660
- a reused revision suffix fails the operation with "Field 'template.revisionsuffix' is invalid ... revision with
  suffix already exists": github.com/Azure/terraform-azurerm-avm-res-app-containerapp/issues/115
"""

from __future__ import annotations

import copy
import io
import json
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.appcontainers import ContainerAppsAPIClient

from devtools.aca_emulator import AcaEmulator, default_probes
from tests.devtools.test_aca_emulator import (
    RG,
    SUB,
    USER_ID,
    arm_error,
    wire,
)


PROFILES = [{"name": "dedicated", "workloadProfileType": "D4", "minimumCount": 1, "maximumCount": 3}]


@pytest.fixture
def env_id(emulator: AcaEmulator) -> str:
    return emulator.add_environment(SUB, RG, "env-dev", workload_profiles=PROFILES)["id"]


def full_body(env_id: str) -> dict[str, Any]:
    """An app using every setting issue 13 lists, written as a team would (some enums in another casing)."""
    return {
        "location": "westeurope",
        "identity": {"type": "SystemAssigned,UserAssigned", "userAssignedIdentities": {USER_ID: {}}},
        "properties": {
            "managedEnvironmentId": env_id,
            "workloadProfileName": "dedicated",
            "configuration": {
                "activeRevisionsMode": "multiple",
                "maxInactiveRevisions": 5,
                "secrets": [{"name": "queue-conn", "value": "c0nn"}, {"name": "tls-cert", "value": "pem"}],
                "ingress": {
                    "external": True, "targetPort": 8080, "transport": "http", "allowInsecure": False,
                    "traffic": [{"latestRevision": True, "weight": 100, "label": "current"}],
                    "customDomains": [{"name": "www.example.com", "bindingType": "Disabled"}],
                    "ipSecurityRestrictions": [{"name": "office", "ipAddressRange": "192.0.2.0/24",
                                                "action": "Allow"}],
                    "stickySessions": {"affinity": "sticky"},
                    "clientCertificateMode": "accept",
                    "corsPolicy": {"allowedOrigins": ["https://example.com"], "allowedMethods": ["GET"],
                                   "maxAge": 600, "allowCredentials": True},
                    "additionalPortMappings": [{"external": False, "targetPort": 9090}],
                },
                "dapr": {"enabled": True, "appId": "web", "appPort": 8080},
                "identitySettings": [{"identity": "system", "lifecycle": "All"},
                                     {"identity": USER_ID, "lifecycle": "Init"}],
            },
            "template": {
                "revisionSuffix": "v1",
                "terminationGracePeriodSeconds": 45,
                "initContainers": [{"name": "migrate", "image": "ghcr.io/acme/migrate:1.0",
                                    "resources": {"cpu": 0.25, "memory": "0.5Gi"}}],
                "containers": [{
                    "name": "web", "image": "ghcr.io/acme/web:1.0",
                    "resources": {"cpu": 3, "memory": "12Gi"},
                    "probes": [
                        {"type": "liveness", "httpGet": {"path": "/healthz", "port": 8080, "scheme": "https"}},
                        {"type": "Readiness", "tcpSocket": {"port": 8080}, "failureThreshold": 48,
                         "initialDelaySeconds": 60, "periodSeconds": 240, "timeoutSeconds": 240},
                        {"type": "Startup", "httpGet": {"path": "/started", "port": 8080}, "failureThreshold": 240},
                    ],
                    "volumeMounts": [{"volumeName": "cache", "mountPath": "/cache"},
                                     {"volumeName": "certs", "mountPath": "/certs", "subPath": "tls"}],
                }],
                "volumes": [{"name": "cache", "storageType": "EmptyDir"},
                            {"name": "certs", "storageType": "Secret",
                             "secrets": [{"secretRef": "tls-cert", "path": "tls.pem"}]}],
                "scale": {
                    "minReplicas": 1, "maxReplicas": 5,
                    "rules": [
                        {"name": "http", "http": {"metadata": {"concurrentRequests": "50"}}},
                        {"name": "queue", "azureQueue": {"accountName": "acct", "queueName": "orders",
                                                         "queueLength": 10,
                                                         "auth": [{"secretRef": "queue-conn",
                                                                   "triggerParameter": "connection"}]}},
                        {"name": "bus", "custom": {"type": "azure-servicebus",
                                                   "metadata": {"queueName": "jobs", "messageCount": "5"},
                                                   "identity": "system"}},
                        {"name": "tcp", "tcp": {"metadata": {"concurrentConnections": "100"}}},
                    ],
                },
                "serviceBinds": [{"serviceId": env_id.rsplit("/", 2)[0] + "/containerApps/redis", "name": "redis"}],
            },
        },
    }


def raw(emulator: AcaEmulator, name: str) -> dict[str, Any]:
    answer = wire(emulator, "GET", name)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_every_setting_round_trips_with_the_defaults_arm_fills_in(
    emulator: AcaEmulator, client: ContainerAppsAPIClient, env_id: str
) -> None:
    sent = full_body(env_id)
    client.container_apps.begin_create_or_update(RG, "web", copy.deepcopy(sent)).result()

    app = raw(emulator, "web")
    props, template = app["properties"], app["properties"]["template"]
    configuration = props["configuration"]
    assert props["workloadProfileName"] == "dedicated" and props["provisioningState"] == "Succeeded"
    assert configuration["activeRevisionsMode"] == "Multiple"  # ARM's casing
    assert configuration["maxInactiveRevisions"] == 5
    assert configuration["dapr"] == {"enabled": True, "appId": "web", "appPort": 8080, "appProtocol": "http",
                                     "logLevel": "info", "enableApiLogging": False}
    assert configuration["identitySettings"] == sent["properties"]["configuration"]["identitySettings"]
    ingress = configuration["ingress"]
    sent_ingress = sent["properties"]["configuration"]["ingress"]
    for key in ("traffic", "customDomains", "ipSecurityRestrictions", "stickySessions", "corsPolicy",
                "additionalPortMappings", "allowInsecure"):
        assert ingress[key] == sent_ingress[key], key
    assert ingress["transport"] == "Http" and ingress["clientCertificateMode"] == "Accept"
    assert ingress["exposedPort"] == 0
    probes = template["containers"][0]["probes"]
    assert [p["type"] for p in probes] == ["Liveness", "Readiness", "Startup"]  # no default probe added
    assert probes[0] == {"type": "Liveness", "httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTPS"}}
    assert probes[1] == sent["properties"]["template"]["containers"][0]["probes"][1]  # timing as sent
    assert template["containers"][0]["volumeMounts"] == sent["properties"]["template"]["containers"][0]["volumeMounts"]
    assert template["volumes"] == sent["properties"]["template"]["volumes"]
    assert template["initContainers"][0]["resources"] == {"cpu": 0.25, "memory": "0.5Gi", "ephemeralStorage": "2Gi"}
    assert template["scale"] == {**sent["properties"]["template"]["scale"], "cooldownPeriod": 300,
                                 "pollingInterval": 30}
    assert template["serviceBinds"] == sent["properties"]["template"]["serviceBinds"]
    assert template["terminationGracePeriodSeconds"] == 45 and template["revisionSuffix"] == "v1"
    assert props["latestRevisionName"] == "web--v1"
    assert "value" not in json.dumps(configuration["secrets"])

    # The same body again is no change: no new revision, the same answer (what a zero-write steady pass relies on).
    client.container_apps.begin_create_or_update(RG, "web", copy.deepcopy(sent)).result()
    again = raw(emulator, "web")
    assert again["properties"] == props
    assert [r.name for r in client.container_apps_revisions.list_revisions(RG, "web")] == ["web--v1"]


def test_minimal_sections_get_arm_defaults(emulator: AcaEmulator, client: ContainerAppsAPIClient, env_id: str) -> None:
    body = {"location": "westeurope", "properties": {
        "managedEnvironmentId": env_id,
        "configuration": {"ingress": {"targetPort": 80}, "dapr": {"enabled": True, "appId": "api",
                                                                    "appProtocol": "GRPC", "logLevel": "Debug"}},
        "template": {"containers": [{"name": "api", "image": "nginx",
                                     "probes": [{"type": "READINESS", "tcpSocket": {"port": 80}}]}],
                     "scale": {"rules": [{"name": "http", "http": {"metadata": {"concurrentRequests": "10"}}}]}}}}

    app = client.container_apps.begin_create_or_update(RG, "api", body).result().as_dict()["properties"]

    assert app["configuration"]["ingress"]["traffic"] == [{"weight": 100, "latestRevision": True}]
    assert app["configuration"]["ingress"]["allowInsecure"] is False
    assert app["configuration"]["dapr"]["appProtocol"] == "grpc" and app["configuration"]["dapr"]["logLevel"] == "debug"
    assert app["configuration"]["dapr"]["enableApiLogging"] is False
    assert app["configuration"]["maxInactiveRevisions"] == 100
    assert app["template"]["scale"]["maxReplicas"] == 10 and app["template"]["scale"]["cooldownPeriod"] == 300
    defaults = {p["type"]: p for p in default_probes(80)}
    assert app["template"]["containers"][0]["probes"] == [
        {"type": "Readiness", "tcpSocket": {"port": 80}}, defaults["Startup"], defaults["Liveness"]]


def _t(body: dict[str, Any]) -> dict[str, Any]:
    return body["properties"]["template"]


def _c(body: dict[str, Any]) -> dict[str, Any]:
    return body["properties"]["template"]["containers"][0]


def _i(body: dict[str, Any]) -> dict[str, Any]:
    return body["properties"]["configuration"]["ingress"]


def _probe(body: dict[str, Any], **fields: Any) -> None:
    _c(body)["probes"] = [{"type": "Liveness", "tcpSocket": {"port": 8080}, **fields}]


REFUSED: list[tuple[str, Any, str, str]] = [
    # (case, change to the full body, code, part of the message)
    ("traffic weights not adding up to 100", lambda b: _i(b).update(traffic=[{"latestRevision": True, "weight": 90}]),
     "InvalidParameterValueInContainerConfiguration", "must add up to 100"),
    ("traffic split in Single mode", lambda b: b["properties"]["configuration"].update(activeRevisionsMode="Single")
     or _i(b).update(traffic=[{"latestRevision": True, "weight": 50}, {"revisionName": "web--old", "weight": 50}]),
     "InvalidParameterValueInContainerConfiguration", "needs activeRevisionsMode Multiple"),
    ("traffic entry without a target", lambda b: _i(b).update(traffic=[{"weight": 100}]),
     "InvalidParameterValueInContainerConfiguration", "revisionName or latestRevision"),
    ("mount of an undeclared volume", lambda b: _c(b)["volumeMounts"].append({"volumeName": "nope", "mountPath": "/x"}),
     "InvalidParameterValueInContainerTemplate", "volume mount references a volume that is not declared"),
    ("secret volume with an undeclared secret", lambda b: _t(b)["volumes"][1]["secrets"].append({"secretRef": "gone"}),
     "InvalidParameterValueInContainerTemplate", "secret volume references a secret"),
    ("unknown storage type", lambda b: _t(b)["volumes"][0].update(storageType="Disk"),
     "InvalidParameterValueInContainerTemplate", "supported values: AzureFile"),
    ("initialDelaySeconds 61", lambda b: _probe(b, initialDelaySeconds=61),
     "ContainerAppProbeInitialDelaySecondsOutOfRange", "'Liveness' probe's InitialDelaySeconds must be in the range of ['1', '60']"),
    ("periodSeconds 0", lambda b: _probe(b, periodSeconds=0), "ContainerAppProbePeriodSecondsOutOfRange", "['1', '240']"),
    ("timeoutSeconds 241", lambda b: _probe(b, timeoutSeconds=241), "ContainerAppProbeTimeoutSecondsOutOfRange", "240"),
    ("successThreshold 2 on a liveness probe", lambda b: _probe(b, successThreshold=2),
     "ContainerAppProbeSuccessThresholdOutOfRange", "['1', '1']"),
    ("failureThreshold 31 on a liveness probe", lambda b: _probe(b, failureThreshold=31),
     "ContainerAppProbeFailureThresholdOutOfRange",
     "Container 'web' 'Liveness' probe's FailureThreshold must be in the range of ['1', '30']."),
    ("two liveness probes", lambda b: _c(b)["probes"].append({"type": "LIVENESS", "tcpSocket": {"port": 1}}),
     "InvalidParameterValueInContainerTemplate", "more than one Liveness probe"),
    ("probe with httpGet and tcpSocket", lambda b: _probe(b, httpGet={"path": "/", "port": 1}),
     "InvalidParameterValueInContainerTemplate", "exactly one of httpGet or tcpSocket"),
    ("probe of an unknown type", lambda b: _c(b)["probes"].append({"type": "Ready", "tcpSocket": {"port": 1}}),
     "InvalidParameterValueInContainerTemplate", "Liveness, Readiness, Startup"),
    ("scale rule with two triggers", lambda b: _t(b)["scale"]["rules"][0].update(tcp={"metadata": {}}),
     "InvalidParameterValueInContainerTemplate", "exactly one of azureQueue, custom, http or tcp"),
    ("scale rule without trigger", lambda b: _t(b)["scale"]["rules"].append({"name": "empty"}),
     "InvalidParameterValueInContainerTemplate", "exactly one of azureQueue"),
    ("scale rule auth to an undeclared secret",
     lambda b: _t(b)["scale"]["rules"][1]["azureQueue"]["auth"][0].update(secretRef="gone"),
     "InvalidParameterValueInContainerTemplate", "scale rule auth references a secret"),
    ("scale rule identity not assigned", lambda b: b.update(identity={"type": "None"}) or b["properties"][
        "configuration"].pop("identitySettings"),
     "InvalidParameterValueInContainerTemplate", "the identity is not assigned"),
    ("minReplicas above maxReplicas", lambda b: _t(b)["scale"].update(minReplicas=6),
     "InvalidParameterValueInContainerTemplate", "must not be greater than maxReplicas"),
    ("exposedPort without tcp", lambda b: _i(b).update(exposedPort=9000),
     "InvalidParameterValueInContainerConfiguration", "exposedPort can only be set when transport is tcp"),
    ("Allow and Deny restrictions mixed", lambda b: _i(b)["ipSecurityRestrictions"].append(
        {"name": "bad", "ipAddressRange": "198.51.100.0/24", "action": "Deny"}),
     "InvalidParameterValueInContainerConfiguration", "must use the same action"),
    ("unknown workload profile", lambda b: b["properties"].update(workloadProfileName="gpu"),
     "WorkloadProfileNotFound", "Workload profile 'gpu' was not found"),
    ("more than the D4 profile holds", lambda b: _c(b).update(resources={"cpu": 4.5, "memory": "8Gi"}),
     "ContainerAppInvalidResourceTotal", "at most 4 vCPU and 16Gi"),
    ("Consumption sizes on the Consumption profile", lambda b: b["properties"].pop("workloadProfileName"),
     "ContainerAppInvalidResourceTotal", "must add up to one of the following"),
    ("revision suffix in upper case", lambda b: _t(b).update(revisionSuffix="V1"),
     "ContainerAppInvalidRevisionName", "Revision name has an invalid value 'V1'"),
    ("revision name over 54 characters", lambda b: _t(b).update(revisionSuffix="r" * 50),
     "ContainerAppInvalidRevisionName", "54 characters"),
    ("unknown dapr log level", lambda b: b["properties"]["configuration"]["dapr"].update(logLevel="verbose"),
     "InvalidParameterValueInContainerConfiguration", "configuration.dapr.logLevel"),
    ("identity setting for an unassigned identity", lambda b: b["properties"]["configuration"][
        "identitySettings"].append({"identity": USER_ID + "-other", "lifecycle": "All"}),
     "InvalidParameterValueInContainerConfiguration", "configuration.identitySettings.identity"),
    ("CORS policy without origins", lambda b: _i(b)["corsPolicy"].pop("allowedOrigins"),
     "InvalidParameterValueInContainerConfiguration", "allowedOrigins is required"),
]


@pytest.mark.parametrize(("change", "code", "says"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_arm_refuses_invalid_uses_of_the_model(
    emulator: AcaEmulator, env_id: str, change: Any, code: str, says: str
) -> None:
    body = full_body(env_id)
    change(body)

    answer = wire(emulator, "PUT", "web", body)

    assert answer.status_code == 400, answer.text
    error = arm_error(answer)
    assert error["code"] == code and says in error["message"], error
    assert emulator.app(SUB, RG, "web") is None  # nothing was written


ACCEPTED: list[tuple[str, Any]] = [
    ("readiness failureThreshold 48 and startup 240 (ACA's own defaults)", lambda b: None),
    ("traffic split in Multiple mode", lambda b: _i(b).update(traffic=[
        {"latestRevision": True, "weight": 80}, {"revisionName": "web--v0", "weight": 20, "label": "old"}])),
    ("exposedPort with tcp", lambda b: _i(b).update(transport="tcp", exposedPort=9000)),
    ("exactly the D4 size", lambda b: _c(b).update(resources={"cpu": 3.75, "memory": "15.5Gi"})),
    ("a Consumption size when no profile is named", lambda b: (b["properties"].pop("workloadProfileName"),
                                                               _c(b).update(resources={"cpu": 1.75, "memory": "3.5Gi"}))),
    ("Deny rules only", lambda b: _i(b)["ipSecurityRestrictions"][0].update(action="Deny")),
    ("workload profile named in another case", lambda b: b["properties"].update(workloadProfileName="Dedicated")),
]


@pytest.mark.parametrize("change", [r[1] for r in ACCEPTED], ids=[r[0] for r in ACCEPTED])
def test_valid_uses_of_the_model_are_accepted(emulator: AcaEmulator, env_id: str, change: Any) -> None:
    body = full_body(env_id)
    change(body)

    answer = wire(emulator, "PUT", "web", body)

    assert answer.status_code == 201, answer.text


def test_environment_workload_profiles_through_the_sdk(emulator: AcaEmulator, client: ContainerAppsAPIClient) -> None:
    emulator.add_environment(SUB, RG, "env-wp", workload_profiles=[
        {"name": "general", "workloadProfileType": "D8", "minimumCount": 1, "maximumCount": 4},
        {"name": "memory", "workloadProfileType": "E4", "minimumCount": 0, "maximumCount": 2}])

    env = client.managed_environments.get(RG, "env-wp")

    profiles = [(p.name, p.workload_profile_type, p.minimum_count, p.maximum_count)
                for p in env.properties.workload_profiles]
    assert profiles == [("Consumption", "Consumption", None, None), ("general", "D8", 1, 4), ("memory", "E4", 0, 2)]
    with pytest.raises(Exception, match="minimumCount must not exceed maximumCount"):
        emulator.add_environment(SUB, RG, "env-bad", workload_profiles=[
            {"name": "x", "workloadProfileType": "D4", "minimumCount": 3, "maximumCount": 1}])
    # an environment without profiles has ARM's Consumption profile only
    plain = emulator.add_environment(SUB, RG, "env-plain")
    assert plain["properties"]["workloadProfiles"] == [{"workloadProfileType": "Consumption", "name": "Consumption"}]


def _patch(client: ContainerAppsAPIClient, name: str, patch: dict[str, Any]) -> Any:
    return client.container_apps.begin_update(RG, name, io.BytesIO(json.dumps(patch).encode())).result()


def test_revisions_in_multiple_mode_keep_traffic_labels_and_activation(
    emulator: AcaEmulator, client: ContainerAppsAPIClient, env_id: str
) -> None:
    body = full_body(env_id)
    client.container_apps.begin_create_or_update(RG, "web", body).result()
    template = copy.deepcopy(body["properties"]["template"])
    template["revisionSuffix"] = "v2"
    template["containers"][0]["image"] = "ghcr.io/acme/web:2.0"
    _patch(client, "web", {"properties": {"template": template, "configuration": {"ingress": {"traffic": [
        {"revisionName": "web--v1", "weight": 30, "label": "stable"},
        {"latestRevision": True, "weight": 70, "label": "canary"}]}}}})

    revisions = {r.name: r.properties for r in client.container_apps_revisions.list_revisions(RG, "web")}
    assert set(revisions) == {"web--v1", "web--v2"}
    assert (revisions["web--v1"].traffic_weight, revisions["web--v2"].traffic_weight) == (30, 70)
    assert revisions["web--v1"].active and revisions["web--v2"].active
    assert raw(emulator, "web")["properties"]["configuration"]["ingress"]["traffic"][0]["label"] == "stable"

    client.container_apps_revisions.deactivate_revision(RG, "web", "web--v1")
    assert client.container_apps_revisions.get_revision(RG, "web", "web--v1").properties.active is False
    client.container_apps_revisions.activate_revision(RG, "web", "web--v1")
    assert client.container_apps_revisions.get_revision(RG, "web", "web--v1").properties.active is True
    assert emulator.calls()["POST revision action"] == 2


def test_max_inactive_revisions_is_honoured(emulator: AcaEmulator, client: ContainerAppsAPIClient, env_id: str) -> None:
    body = full_body(env_id)
    body["properties"]["configuration"].update(activeRevisionsMode="Single", maxInactiveRevisions=1)
    for suffix in ("v1", "v2", "v3"):
        body["properties"]["template"]["revisionSuffix"] = suffix
        client.container_apps.begin_create_or_update(RG, "web", copy.deepcopy(body)).result()

    names = [r.name for r in client.container_apps_revisions.list_revisions(RG, "web")]

    assert names == ["web--v2", "web--v3"]  # v1, the oldest inactive one beyond the limit of 1, is gone


def test_a_reused_revision_suffix_fails_the_operation_and_keeps_the_app(
    emulator: AcaEmulator, client: ContainerAppsAPIClient, env_id: str
) -> None:
    client.container_apps.begin_create_or_update(RG, "web", full_body(env_id)).result()
    before = raw(emulator, "web")
    changed = full_body(env_id)
    changed["properties"]["template"]["containers"][0]["image"] = "ghcr.io/acme/web:2.0"  # suffix still v1

    with pytest.raises(HttpResponseError) as caught:
        client.container_apps.begin_create_or_update(RG, "web", changed).result()

    assert "template.revisionsuffix" in str(caught.value) and "revision with suffix already exists" in str(caught.value)
    after = raw(emulator, "web")
    assert after["properties"]["provisioningState"] == "Failed"
    assert after["properties"]["template"] == before["properties"]["template"]
    assert [r.name for r in client.container_apps_revisions.list_revisions(RG, "web")] == ["web--v1"]
