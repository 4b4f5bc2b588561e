"""Invalid uses of the whole Container App model: each is one clear problem (file, line, field, what is
allowed), and the App is not valid, so it is never written."""
from __future__ import annotations

import copy

import pytest
import yaml

from shared.core.manifests import load_app_file
from tests.engines.test_app_model import PRODUCTION


def problems_of(mutate) -> list:
    manifest = copy.deepcopy(PRODUCTION)
    mutate(manifest["spec"])
    apps, problems = load_app_file("apps/orders.yaml", yaml.safe_dump(manifest, sort_keys=False).encode())
    assert not apps, "an invalid App must not be applied"
    return list(problems)


def test_the_production_app_is_valid():
    apps, problems = load_app_file("apps/orders.yaml", yaml.safe_dump(PRODUCTION, sort_keys=False).encode())
    assert problems == () and [a.name for a in apps] == ["orders"]
    app = apps[0]
    assert app.sections[("properties", "configuration", "dapr")]["appId"] == "orders"
    assert app.containers[0].extra["probes"][0]["type"] == "Liveness"
    assert [c.name for c in app.init_containers] == ["migrate"]


def test_acas_own_default_probe_limits_are_accepted():
    manifest = copy.deepcopy(PRODUCTION)
    manifest["spec"]["containers"][0]["probes"] = [
        {"type": "Startup", "tcpSocket": {"port": 8080}, "failureThreshold": 240, "periodSeconds": 1},
        {"type": "Readiness", "tcpSocket": {"port": 8080}, "failureThreshold": 48, "periodSeconds": 5}]
    apps, problems = load_app_file("apps/orders.yaml", yaml.safe_dump(manifest, sort_keys=False).encode())
    assert problems == () and apps


def probe(spec):
    return spec["containers"][0]["probes"]


CASES = [
    ("probe type outside the enum", lambda s: probe(s)[0].update(type="Sometimes"),
     "spec.containers[0].probes[0].type", "allowed: Liveness, Readiness, Startup"),
    ("two probes of one type", lambda s: probe(s)[1].update(type="liveness", tcpSocket={"port": 8080}),
     "spec.containers[0].probes[1].type", "at most one probe of each type"),
    ("probe with both handlers", lambda s: probe(s)[0].update(tcpSocket={"port": 8080}),
     "spec.containers[0].probes[0]", "exactly one of httpGet or tcpSocket"),
    ("probe period out of ARM's range", lambda s: probe(s)[0].update(periodSeconds=500),
     "spec.containers[0].probes[0].periodSeconds", "from 1 to 240"),
    ("probe port as a string", lambda s: probe(s)[0]["httpGet"].update(port="8080"),
     "spec.containers[0].probes[0].httpGet.port", "whole number"),
    ("liveness failure threshold above ACA's limit", lambda s: probe(s)[0].update(failureThreshold=31),
     "spec.containers[0].probes[0].failureThreshold", "at most 30 for a Liveness probe"),
    ("liveness success threshold", lambda s: probe(s)[0].update(successThreshold=2),
     "spec.containers[0].probes[0].successThreshold", "must be 1 for a Liveness probe"),
    ("mount of an undeclared volume", lambda s: s["containers"][0]["volumeMounts"].append(
        {"volumeName": "logs", "mountPath": "/logs"}),
     "spec.containers[0].volumeMounts[2].volumeName", "volume 'logs' is not declared in spec.volumes"),
    ("secret volume naming an undeclared secret", lambda s: s["volumes"][1]["secrets"].append(
        {"secretRef": "nope", "path": "x"}), "spec.volumes[1].secrets[1].secretRef",
     "secret 'nope' is not declared in spec.secrets"),
    ("azure file volume without storage", lambda s: s["volumes"].append({"name": "share", "storageType": "AzureFile"}),
     "spec.volumes[2].storageName", "is required for storageType AzureFile"),
    ("storage type outside the enum", lambda s: s["volumes"][0].update(storageType="Tmpfs"),
     "spec.volumes[0].storageType", "allowed: AzureFile, EmptyDir, NfsAzureFile, Secret"),
    ("scale rule with two triggers", lambda s: s["scale"]["rules"][1].update(tcp={"metadata": {}}),
     "spec.scale.rules[1]", "needs exactly one of http, tcp, azureQueue, custom"),
    ("scale rule auth with an undeclared secret", lambda s: s["scale"]["rules"][0]["azureQueue"]["auth"][0].update(
        secretRef="missing"), "spec.scale.rules[0].azureQueue.auth[0].secretRef", "not declared in spec.secrets"),
    ("custom rule without a type", lambda s: s["scale"]["rules"].append({"name": "sb", "custom": {"metadata": {}}}),
     "spec.scale.rules[2].custom.type", "is required"),
    ("scale rule identity the app lacks", lambda s: s["scale"]["rules"][1]["http"].update(
        identity="/subscriptions/x/resourceGroups/y/providers/Microsoft.ManagedIdentity/userAssignedIdentities/z"),
     "spec.scale.rules[1].http.identity", "is not an identity of this app"),
    ("traffic that does not add up", lambda s: s["ingress"]["traffic"][0].update(weight=90),
     "spec.ingress.traffic", "must add up to 100"),
    ("traffic split in Single mode", lambda s: (s.update(activeRevisionsMode="Single"), s["ingress"].update(
        traffic=[{"revisionName": "orders--v1", "weight": 50}, {"latestRevision": True, "weight": 50}])),
     "spec.ingress.traffic", "needs activeRevisionsMode: Multiple"),
    ("revision mode outside the enum", lambda s: s.update(activeRevisionsMode="Many"),
     "spec.activeRevisionsMode", "allowed: Multiple, Single"),
    ("mixed ip rules", lambda s: s["ingress"]["ipSecurityRestrictions"].append(
        {"name": "bad", "ipAddressRange": "192.0.2.0/24", "action": "Deny"}),
     "spec.ingress.ipSecurityRestrictions", "all Allow or all Deny"),
    ("exposed port without tcp", lambda s: s["ingress"].update(exposedPort=9000),
     "spec.ingress.exposedPort", "only allowed with transport: tcp"),
    ("unknown ingress field", lambda s: s["ingress"].update(stickySession={"affinity": "sticky"}),
     "spec.ingress.stickySession", "unknown field"),
    ("dapr enabled without an app id", lambda s: s["dapr"].pop("appId"),
     "spec.dapr.appId", "is required when Dapr is enabled"),
    ("dapr log level outside the enum", lambda s: s["dapr"].update(logLevel="verbose"),
     "spec.dapr.logLevel", "allowed: debug, error, info, warn"),
    ("probes on an init container", lambda s: s["initContainers"][0].update(probes=[]),
     "spec.initContainers[0].probes", "not allowed on an init container"),
    ("init container with a bad image", lambda s: s["initContainers"][0].update(image="Not An Image"),
     "spec.initContainers[0].image", ""),
    ("init containers pushing the total out of the table", lambda s: s["initContainers"][0].update(cpu=0.5, memory="0.5Gi"),
     "spec.initContainers", "not an allowed CPU/memory combination"),
    ("identity settings for an identity the app lacks", lambda s: s["identitySettings"].append(
        {"identity": "system", "lifecycle": "Sometimes"}), "spec.identitySettings[1].lifecycle", "allowed: All, Init, Main, None"),
    ("a Key Vault secret read by an identity the app lacks", lambda s: s["identity"].update(type="UserAssigned"),
     "spec.secrets[0].identity", "'system' needs spec.identity with type SystemAssigned"),
    ("revision suffix with capitals", lambda s: s.update(revisionSuffix="V2"),
     "spec.revisionSuffix", "lowercase letters"),
    ("termination grace below zero", lambda s: s.update(terminationGracePeriodSeconds=-1),
     "spec.terminationGracePeriodSeconds", "at least 0"),
]


@pytest.mark.parametrize("what, mutate, field, says", CASES, ids=[c[0] for c in CASES])
def test_each_invalid_use_is_a_located_problem(what, mutate, field, says):
    problems = problems_of(mutate)
    found = [p for p in problems if p.field == field]
    assert found, f"no problem at {field}; got {[(p.field, p.message) for p in problems]}"
    assert says in found[0].message
    assert found[0].file == "apps/orders.yaml" and found[0].line, found[0]
