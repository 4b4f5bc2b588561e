"""The whole Container App model through the real SDK and the ACA emulator: every field round-trips,
a steady pass writes nothing, one changed field is one PATCH that changes that field, and ARM's
defaults never show as drift."""
from __future__ import annotations

import copy
import json

import pytest
import yaml

from tests.conftest import GROUP, SUBSCRIPTION, outcomes, sync, writes

USER_ID = ("/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-ids/providers/"
           "Microsoft.ManagedIdentity/userAssignedIdentities/orders-id")
KV = "https://kv-orders.vault.azure.net/secrets/"

PRODUCTION = {
    "apiVersion": "driftless.io/v1alpha1",
    "kind": "App",
    "metadata": {"name": "orders"},
    "spec": {
        "identity": {"type": "SystemAssigned,UserAssigned", "userAssignedIdentities": [USER_ID]},
        "secrets": [{"name": "queue-conn", "keyVaultUrl": KV + "queue-conn", "identity": "system"},
                    {"name": "tls-cert", "keyVaultUrl": KV + "tls-cert", "identity": USER_ID}],
        "activeRevisionsMode": "Multiple",
        "maxInactiveRevisions": 5,
        "terminationGracePeriodSeconds": 60,
        "dapr": {"enabled": True, "appId": "orders", "appPort": 8080, "appProtocol": "http", "logLevel": "warn"},
        "identitySettings": [{"identity": USER_ID, "lifecycle": "Main"}],
        "ingress": {
            "enabled": True, "external": True, "targetPort": 8080, "transport": "http",
            "traffic": [{"latestRevision": True, "weight": 100, "label": "current"}],
            "ipSecurityRestrictions": [{"name": "office", "ipAddressRange": "203.0.113.0/24", "action": "Allow"}],
            "stickySessions": {"affinity": "sticky"},
            "clientCertificateMode": "accept",
            "corsPolicy": {"allowedOrigins": ["https://shop.example.com"], "allowedMethods": ["GET", "POST"]},
            "allowInsecure": False,
            "additionalPortMappings": [{"targetPort": 9090, "external": False}],
        },
        "serviceBinds": [{"name": "redis", "serviceId": "/subscriptions/11111111-2222-3333-4444-555555555555/"
                                                       "resourceGroups/rg-apps/providers/Microsoft.App/containerApps/redis"}],
        "scale": {
            "minReplicas": 1, "maxReplicas": 20, "cooldownPeriod": 120, "pollingInterval": 15,
            "rules": [{"name": "orders-queue",
                       "azureQueue": {"accountName": "stordersprod", "queueName": "orders", "queueLength": 20,
                                      "auth": [{"secretRef": "queue-conn", "triggerParameter": "connection"}]}},
                      {"name": "http-burst", "http": {"metadata": {"concurrentRequests": "50"}}}],
        },
        "volumes": [{"name": "cache", "storageType": "EmptyDir"},
                    {"name": "certs", "storageType": "Secret", "secrets": [{"secretRef": "tls-cert", "path": "tls.pem"}]}],
        "initContainers": [{"name": "migrate", "image": "myacr.azurecr.io/orders-migrate:1.4.2", "cpu": 0.25,
                            "memory": "0.5Gi", "command": ["/app/migrate"],
                            "volumeMounts": [{"volumeName": "cache", "mountPath": "/cache"}]}],
        "containers": [{
            "name": "orders", "image": "myacr.azurecr.io/orders:1.4.2", "cpu": 0.75, "memory": "1.5Gi",
            "env": [{"name": "QUEUE", "secretRef": "queue-conn"}],
            "probes": [{"type": "Liveness", "httpGet": {"path": "/healthz", "port": 8080,
                                                        "httpHeaders": [{"name": "X-Probe", "value": "live"}]},
                        "periodSeconds": 10, "failureThreshold": 3},
                       {"type": "Readiness", "tcpSocket": {"port": 8080}, "initialDelaySeconds": 5}],
            "volumeMounts": [{"volumeName": "cache", "mountPath": "/cache"},
                             {"volumeName": "certs", "mountPath": "/certs"}],
        }],
    },
}


def write(repo, manifest: dict) -> None:
    repo.write("apps/orders.yaml", yaml.safe_dump(manifest, sort_keys=False))
    repo.commit()


@pytest.fixture
def created(repo, aca, driftless):
    write(repo, PRODUCTION)
    reconciler = driftless()
    result = sync(reconciler)["default"]
    assert outcomes(result)["orders"].action == "created", outcomes(result)["orders"].reason
    return reconciler


def live(aca) -> dict:
    return aca.app(SUBSCRIPTION, GROUP, "orders")


def test_every_field_of_a_production_app_reaches_arm_in_arms_shape(created, aca):
    props = live(aca)["properties"]
    template, config = props["template"], props["configuration"]
    container = template["containers"][0]
    assert [p["type"] for p in container["probes"]][:2] == ["Liveness", "Readiness"]
    assert container["probes"][0]["httpGet"]["httpHeaders"] == [{"name": "X-Probe", "value": "live"}]
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/cache", "/certs"}
    assert {k: template["initContainers"][0]["resources"][k] for k in ("cpu", "memory")} == {"cpu": 0.25, "memory": "0.5Gi"}
    assert template["scale"]["rules"][0]["azureQueue"]["auth"] == [{"secretRef": "queue-conn",
                                                                    "triggerParameter": "connection"}]
    assert template["volumes"][1]["secrets"] == [{"secretRef": "tls-cert", "path": "tls.pem"}]
    assert template["terminationGracePeriodSeconds"] == 60
    assert config["activeRevisionsMode"] == "Multiple" and config["maxInactiveRevisions"] == 5
    assert config["dapr"]["appId"] == "orders" and config["dapr"]["logLevel"] == "warn"
    assert config["ingress"]["traffic"] == [{"latestRevision": True, "weight": 100, "label": "current"}]
    assert config["ingress"]["clientCertificateMode"].lower() == "accept"
    assert config["ingress"]["corsPolicy"]["allowedMethods"] == ["GET", "POST"]
    assert config["identitySettings"] == [{"identity": USER_ID, "lifecycle": "Main"}]


def test_the_next_pass_makes_zero_writes(created, aca):
    aca.reset_calls()
    result = sync(created)["default"]
    assert outcomes(result)["orders"].action == "unchanged", outcomes(result)["orders"].reason
    assert writes(aca) == 0


ONE_FIELD_CHANGES = [
    ("probe period", lambda s: s["containers"][0]["probes"][0].update(periodSeconds=20),
     lambda p: p["template"]["containers"][0]["probes"][0]["periodSeconds"] == 20),
    ("scale rule queue length", lambda s: s["scale"]["rules"][0]["azureQueue"].update(queueLength=40),
     lambda p: p["template"]["scale"]["rules"][0]["azureQueue"]["queueLength"] == 40),
    ("cooldown", lambda s: s["scale"].update(cooldownPeriod=300),
     lambda p: p["template"]["scale"]["cooldownPeriod"] == 300),
    ("dapr log level", lambda s: s["dapr"].update(logLevel="debug"),
     lambda p: p["configuration"]["dapr"]["logLevel"] == "debug"),
    ("ip restriction range", lambda s: s["ingress"]["ipSecurityRestrictions"][0].update(ipAddressRange="198.51.100.0/24"),
     lambda p: p["configuration"]["ingress"]["ipSecurityRestrictions"][0]["ipAddressRange"] == "198.51.100.0/24"),
    ("init container image", lambda s: s["initContainers"][0].update(image="myacr.azurecr.io/orders-migrate:1.5.0"),
     lambda p: p["template"]["initContainers"][0]["image"] == "myacr.azurecr.io/orders-migrate:1.5.0"),
    ("max inactive revisions", lambda s: s.update(maxInactiveRevisions=10),
     lambda p: p["configuration"]["maxInactiveRevisions"] == 10),
    ("sticky sessions", lambda s: s["ingress"].update(stickySessions={"affinity": "none"}),
     lambda p: p["configuration"]["ingress"]["stickySessions"]["affinity"] == "none"),
    ("client certificate mode", lambda s: s["ingress"].update(clientCertificateMode="require"),
     lambda p: p["configuration"]["ingress"]["clientCertificateMode"].lower() == "require"),
    ("cors methods", lambda s: s["ingress"]["corsPolicy"].update(allowedMethods=["GET"]),
     lambda p: p["configuration"]["ingress"]["corsPolicy"]["allowedMethods"] == ["GET"]),
    ("port mapping", lambda s: s["ingress"]["additionalPortMappings"][0].update(external=True),
     lambda p: p["configuration"]["ingress"]["additionalPortMappings"][0]["external"] is True),
    ("termination grace", lambda s: s.update(terminationGracePeriodSeconds=90),
     lambda p: p["template"]["terminationGracePeriodSeconds"] == 90),
    ("identity settings lifecycle", lambda s: s["identitySettings"][0].update(lifecycle="All"),
     lambda p: p["configuration"]["identitySettings"][0]["lifecycle"] == "All"),
    ("dapr app port", lambda s: s["dapr"].update(appPort=9090),
     lambda p: p["configuration"]["dapr"]["appPort"] == 9090),
    ("polling interval", lambda s: s["scale"].update(pollingInterval=60),
     lambda p: p["template"]["scale"]["pollingInterval"] == 60),
    ("probe path", lambda s: s["containers"][0]["probes"][0]["httpGet"].update(path="/live"),
     lambda p: p["template"]["containers"][0]["probes"][0]["httpGet"]["path"] == "/live"),
    ("init container command", lambda s: s["initContainers"][0].update(command=["/app/migrate", "--dry"]),
     lambda p: p["template"]["initContainers"][0]["command"] == ["/app/migrate", "--dry"]),
    ("service bind target", lambda s: s["serviceBinds"][0].update(serviceId=s["serviceBinds"][0]["serviceId"] + "-eu"),
     lambda p: p["template"]["serviceBinds"][0]["serviceId"].endswith("redis-eu")),
    ("volume mount sub-path", lambda s: s["containers"][0]["volumeMounts"][0].update(subPath="orders"),
     lambda p: p["template"]["containers"][0]["volumeMounts"][0].get("subPath") == "orders"),
]


@pytest.mark.parametrize("what, change, applied", ONE_FIELD_CHANGES, ids=[c[0] for c in ONE_FIELD_CHANGES])
def test_one_changed_field_is_one_patch_that_changes_that_field(created, aca, repo, what, change, applied):
    before = live(aca)
    manifest = copy.deepcopy(PRODUCTION)
    change(manifest["spec"])
    write(repo, manifest)
    aca.reset_calls()
    result = sync(created)["default"]
    outcome = outcomes(result)["orders"]
    assert outcome.action == "updated", outcome.reason
    assert len(outcome.diff) == 1, outcome.diff
    assert {k: n for k, n in aca.calls().items() if k.split()[0] in ("PUT", "PATCH", "DELETE")} == {"PATCH app": 1}
    after = live(aca)
    assert applied(after["properties"])
    assert _without(after, outcome.diff[0]["path"]) == _without(before, outcome.diff[0]["path"])
    aca.reset_calls()
    assert outcomes(sync(created)["default"])["orders"].action == "unchanged" and writes(aca) == 0


def _without(resource: dict, path: str) -> str:
    """The resource as JSON without volatile fields and without the section the changed field is in."""
    clone = copy.deepcopy(resource)
    props = clone["properties"]
    for key in ("latestRevisionName", "latestReadyRevisionName", "latestRevisionFqdn", "provisioningState",
                "runningStatus"):
        props.pop(key, None)
    for key in ("tags", "systemData"):
        clone.pop(key, None)
    props["template"].pop("revisionSuffix", None)
    first, second = (path.split(".") + [""])[:2]
    if first.startswith(("containers[", "initContainers[")):
        props["template"].pop(first.split("[")[0])
    else:
        props[first].pop(second.split("[")[0])
    return json.dumps(clone, sort_keys=True)


def test_live_defaults_and_casing_are_not_drift(created, aca, driftless):
    """What ARM adds or re-cases (probe defaults, scale defaults, Dapr defaults, enum casing) is not drift."""
    from tests.engines.test_container_apps import patch_live

    current = live(aca)["properties"]
    containers = copy.deepcopy(current["template"]["containers"])
    containers[0]["probes"][1].update(periodSeconds=10, timeoutSeconds=1, successThreshold=1, failureThreshold=3)
    containers[0]["probes"][0]["type"] = "liveness"
    dapr = {**current["configuration"]["dapr"], "enableApiLogging": False, "httpReadBufferSize": 4,
            "appProtocol": "HTTP"}
    patch_live(aca, "orders", {"properties": {"template": {"containers": containers},
                                              "configuration": {"dapr": dapr}}})
    aca.reset_calls()
    result = sync(created)["default"]
    assert outcomes(result)["orders"].action == "unchanged", outcomes(result)["orders"].diff
    assert writes(aca) == 0


def test_a_section_removed_from_git_is_left_as_it_is(created, aca, repo):
    manifest = copy.deepcopy(PRODUCTION)
    del manifest["spec"]["dapr"]
    del manifest["spec"]["scale"]["rules"]
    write(repo, manifest)
    aca.reset_calls()
    outcome = outcomes(sync(created)["default"])["orders"]
    assert [d["path"] for d in outcome.diff] == ["tags.driftless-spec-hash"]      # only the record of what Git owns
    props = live(aca)["properties"]
    assert props["configuration"]["dapr"]["appId"] == "orders" and props["template"]["scale"]["rules"]


def test_an_item_added_in_the_portal_to_a_list_git_owns_is_drift_and_removed(created, aca):
    from tests.engines.test_container_apps import patch_live

    volumes = live(aca)["properties"]["template"]["volumes"] + [{"name": "scratch", "storageType": "EmptyDir"}]
    patch_live(aca, "orders", {"properties": {"template": {"volumes": volumes}}})
    result = sync(created)["default"]
    outcome = outcomes(result)["orders"]
    assert outcome.action == "updated" and [d["path"] for d in outcome.diff] == ["template.volumes.scratch"]
    assert [v["name"] for v in live(aca)["properties"]["template"]["volumes"]] == ["cache", "certs"]


def test_dedicated_workload_profiles_are_read_from_the_environment(repo, aca, driftless):
    from tests.conftest import ENVIRONMENT, app_yaml

    aca.add_environment(SUBSCRIPTION, GROUP, ENVIRONMENT, workload_profiles=[
        {"name": "general", "workloadProfileType": "D4", "minimumCount": 1, "maximumCount": 3}])
    repo.write("apps/fits.yaml", app_yaml("fits", cpu=3, memory="12Gi", extra="  workloadProfileName: general\n"))
    repo.write("apps/too-big.yaml", app_yaml("too-big", cpu=6, memory="12Gi", extra="  workloadProfileName: general\n"))
    repo.write("apps/lost.yaml", app_yaml("lost", cpu=1, memory="2Gi", extra="  workloadProfileName: gpu\n"))
    repo.commit()
    result = outcomes(sync(driftless())["default"])
    assert result["fits"].action == "created", result["fits"].reason          # 3 vCPU/12Gi: not a Consumption pair
    assert result["too-big"].action == "failed" and "does not fit one node of profile 'general' (D4" in result["too-big"].reason
    assert result["lost"].action == "failed" and "workload profile 'gpu' is not in the environment" in result["lost"].reason
    assert aca.app(SUBSCRIPTION, GROUP, "too-big") is None and aca.app(SUBSCRIPTION, GROUP, "lost") is None
