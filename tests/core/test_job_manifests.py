"""`kind: Job` manifests: Microsoft's published job shapes read as they are, and each invalid use is one clear
problem naming file, line and field, with no Job to apply."""
from __future__ import annotations

import copy
import re

import pytest
import yaml

from shared.core.aca_kinds import ACA_READERS
from shared.core.container_app_job import Job, cron_problem
from shared.core.manifests import load_file, load_objects

USER_ID = ("/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-ids/providers/"
           "Microsoft.ManagedIdentity/userAssignedIdentities/report-id")
KV = "https://kv-shop-prod.vault.azure.net/secrets/"

SCHEDULED = {
    "apiVersion": "driftless.io/v1alpha1",
    "kind": "Job",
    "metadata": {"name": "nightly-report"},
    "spec": {
        "triggerType": "Schedule",
        "replicaTimeout": 1800,
        "replicaRetryLimit": 2,
        "scheduleTriggerConfig": {"cronExpression": "30 2 * * MON-FRI", "parallelism": 1, "replicaCompletionCount": 1},
        "identity": {"type": "SystemAssigned,UserAssigned", "userAssignedIdentities": [USER_ID]},
        "identitySettings": [{"identity": USER_ID, "lifecycle": "All"}],
        "secrets": [{"name": "db-connection", "keyVaultUrl": KV + "report-db", "identity": "system"}],
        "registries": [{"server": "myacr.azurecr.io", "identity": USER_ID}],
        "volumes": [{"name": "scratch", "storageType": "EmptyDir"}],
        "initContainers": [{"name": "fetch", "image": "myacr.azurecr.io/report-fetch:1.2.0", "cpu": 0.25,
                            "memory": "0.5Gi", "volumeMounts": [{"volumeName": "scratch", "mountPath": "/scratch"}]}],
        "containers": [{"name": "report", "image": "myacr.azurecr.io/report:1.2.0", "cpu": 0.5, "memory": "1Gi",
                        "args": ["--since", "24h"], "env": [{"name": "DB", "secretRef": "db-connection"}],
                        "volumeMounts": [{"volumeName": "scratch", "mountPath": "/scratch"}]}],
    },
}

EVENT = {
    "apiVersion": "driftless.io/v1alpha1",
    "kind": "Job",
    "metadata": {"name": "orders-worker"},
    "spec": {
        "triggerType": "Event",
        "replicaTimeout": 600,
        "replicaRetryLimit": 1,
        "identity": {"type": "SystemAssigned"},
        "secrets": [{"name": "sb-connection", "keyVaultUrl": KV + "sb-connection"}],
        "eventTriggerConfig": {
            "replicaCompletionCount": 1, "parallelism": 4,
            "scale": {"minExecutions": 0, "maxExecutions": 10, "pollingInterval": 30, "rules": [
                {"name": "servicebuscalingrule", "type": "azure-servicebus",
                 "metadata": {"queueName": "orders", "messageCount": "5"},
                 "auth": [{"secretRef": "sb-connection", "triggerParameter": "connection"}]}]},
        },
        "containers": [{"name": "worker", "image": "myacr.azurecr.io/orders-worker:3.1.0", "cpu": 0.5,
                        "memory": "1Gi"}],
    },
}

# Microsoft's Job_CreateorUpdate.json example (2025-01-01), flattened as the manifest reference says: what ARM has
# under properties.configuration and properties.template directly under spec, resources flat on the container.
MICROSOFT_MANUAL = """\
apiVersion: driftless.io/v1alpha1
kind: Job
metadata:
  name: testcontainerappsjob0
spec:
  replicaTimeout: 10
  replicaRetryLimit: 10
  manualTriggerConfig:
    replicaCompletionCount: 1
    parallelism: 4
  triggerType: Manual
  containers:
    - image: repo/testcontainerappsjob0:v1
      name: testcontainerappsjob0
      probes:
        - type: Liveness
          httpGet:
            path: /health
            port: 8080
            httpHeaders:
              - name: Custom-Header
                value: Awesome
          initialDelaySeconds: 5
          periodSeconds: 3
      volumeMounts:
        - volumeName: azurefile
          mountPath: /mnt/path1
          subPath: subPath1
        - volumeName: nfsazurefile
          mountPath: /mnt/path2
          subPath: subPath2
  initContainers:
    - image: repo/testcontainerappsjob0:v4
      name: testinitcontainerAppsJob0
      cpu: 0.5
      memory: 1Gi
      command: [/bin/sh]
      args: [-c, "while true; do echo hello; sleep 10;done"]
  volumes:
    - name: azurefile
      storageType: AzureFile
      storageName: storage
    - name: nfsazurefile
      storageType: NfsAzureFile
      storageName: nfsStorage
"""


def read(text: str, file: str = "apps/job.yaml"):
    return load_file(file, text.encode(), ACA_READERS)


def dumped(manifest: dict) -> str:
    return yaml.safe_dump(manifest, sort_keys=False)


@pytest.mark.parametrize("manifest", [SCHEDULED, EVENT], ids=["schedule", "event"])
def test_production_jobs_are_valid_and_keep_arms_shape(manifest):
    jobs, problems = read(dumped(manifest))
    assert problems == () and len(jobs) == 1
    job = jobs[0]
    assert isinstance(job, Job) and job.key == f"Job/{manifest['metadata']['name']}"
    assert job.trigger_type == manifest["spec"]["triggerType"]
    config = ("properties", "configuration")
    assert job.sections[config + ("replicaTimeout",)] == manifest["spec"]["replicaTimeout"]
    trigger = {"Schedule": "scheduleTriggerConfig", "Event": "eventTriggerConfig"}[job.trigger_type]
    assert job.sections[config + (trigger,)] == manifest["spec"][trigger]


def test_microsofts_published_manual_job_reads_as_a_manifest():
    jobs, problems = read(MICROSOFT_MANUAL)
    assert problems == ()
    job = jobs[0]
    assert job.trigger_type == "Manual" and job.init_containers[0].name == "testinitcontainerAppsJob0"
    assert job.containers[0].extra["probes"][0]["httpGet"]["httpHeaders"] == [{"name": "Custom-Header",
                                                                               "value": "Awesome"}]
    assert [v["storageType"] for v in job.sections[("properties", "template", "volumes")]] == ["AzureFile",
                                                                                               "NfsAzureFile"]


def test_a_manual_job_needs_no_trigger_block_and_trigger_type_takes_any_case():
    manifest = copy.deepcopy(SCHEDULED)
    del manifest["spec"]["scheduleTriggerConfig"]
    manifest["spec"]["triggerType"] = "manual"
    jobs, problems = read(dumped(manifest))
    assert problems == () and jobs[0].trigger_type == "Manual"


def test_jobs_live_next_to_apps_and_a_job_may_share_an_apps_name():
    app = ("apiVersion: driftless.io/v1alpha1\nkind: App\nmetadata:\n  name: nightly-report\nspec:\n  containers:\n"
           "    - {name: web, image: nginx:1.27}\n")
    found, problems = load_objects({"apps/all.yaml": (app + "---\n" + dumped(SCHEDULED)).encode()}, ACA_READERS)
    assert problems == [] and sorted(o.key for o in found) == ["Job/nightly-report", "nightly-report"]


@pytest.mark.parametrize("expression", ["0 */2 * * *", "0 0 * * 0", "0 0 1 * *", "30 2 * * MON-FRI",
                                        "0 0 1 JAN,JUL *", "*/15 9-17 * * 1-5", "0 0 * * 7", "5/10 * * * *",
                                        "0 0 1-31/2 * sun"])
def test_cron_expressions_aca_documents_are_accepted(expression):
    assert cron_problem(expression) is None


def spec_of(manifest: dict):
    return manifest["spec"]


def scheduled(change):
    manifest = copy.deepcopy(SCHEDULED)
    change(manifest["spec"])
    return manifest


def event(change):
    manifest = copy.deepcopy(EVENT)
    change(manifest["spec"])
    return manifest


def rule(spec):
    return spec["eventTriggerConfig"]["scale"]["rules"][0]


CASES = [
    ("no trigger type", scheduled(lambda s: s.pop("triggerType")), "spec.triggerType", "is required"),
    ("trigger type outside the enum", scheduled(lambda s: s.update(triggerType="Cron")), "spec.triggerType",
     "allowed: Event, Manual, Schedule"),
    ("schedule without its block", scheduled(lambda s: s.pop("scheduleTriggerConfig")), "spec.scheduleTriggerConfig",
     "is required with triggerType Schedule"),
    ("another trigger's block", scheduled(lambda s: s.update(manualTriggerConfig={"parallelism": 1})),
     "spec.manualTriggerConfig", "is not allowed with triggerType Schedule"),
    ("six cron fields", scheduled(lambda s: s["scheduleTriggerConfig"].update(cronExpression="0 30 2 * * *")),
     "spec.scheduleTriggerConfig.cronExpression", "has 6 field(s); ACA takes 5"),
    ("minute out of range", scheduled(lambda s: s["scheduleTriggerConfig"].update(cronExpression="60 2 * * *")),
     "spec.scheduleTriggerConfig.cronExpression", "'60' is not allowed in the minute field (0-59)"),
    ("unknown weekday name", scheduled(lambda s: s["scheduleTriggerConfig"].update(cronExpression="0 2 * * FUN")),
     "spec.scheduleTriggerConfig.cronExpression", "day-of-week field (0-7 or SUN-SAT)"),
    ("backwards range", scheduled(lambda s: s["scheduleTriggerConfig"].update(cronExpression="0 5-2 * * *")),
     "spec.scheduleTriggerConfig.cronExpression", "the hour range '5-2' goes backwards"),
    ("zero step", scheduled(lambda s: s["scheduleTriggerConfig"].update(cronExpression="*/0 * * * *")),
     "spec.scheduleTriggerConfig.cronExpression", "a step is a whole number of at least 1"),
    ("no cron", scheduled(lambda s: s["scheduleTriggerConfig"].pop("cronExpression")),
     "spec.scheduleTriggerConfig.cronExpression", "is required"),
    ("unknown field in the schedule", scheduled(lambda s: s["scheduleTriggerConfig"].update(timeZone="CET")),
     "spec.scheduleTriggerConfig.timeZone", "allowed here: cronExpression, parallelism, replicaCompletionCount"),
    ("no replica timeout", scheduled(lambda s: s.pop("replicaTimeout")), "spec.replicaTimeout", "is required"),
    ("zero replica timeout", scheduled(lambda s: s.update(replicaTimeout=0)), "spec.replicaTimeout",
     "must be 1 or more seconds"),
    ("negative retry limit", scheduled(lambda s: s.update(replicaRetryLimit=-1)), "spec.replicaRetryLimit",
     "must be 0 or more"),
    ("replica timeout as text", scheduled(lambda s: s.update(replicaTimeout="30m")), "spec.replicaTimeout",
     "must be a whole number"),
    ("zero parallelism", scheduled(lambda s: s["scheduleTriggerConfig"].update(parallelism=0)),
     "spec.scheduleTriggerConfig.parallelism", "must be 1 or more"),
    ("unknown spec field", scheduled(lambda s: s.update(schedule="0 2 * * *")), "spec.schedule",
     "unknown field; allowed here"),
    ("event without scale", event(lambda s: s["eventTriggerConfig"].pop("scale")), "spec.eventTriggerConfig.scale",
     "is required for an Event job"),
    ("event without rules", event(lambda s: s["eventTriggerConfig"]["scale"].update(rules=[])),
     "spec.eventTriggerConfig.scale.rules", "needs at least one rule"),
    ("rule without a KEDA type", event(lambda s: rule(s).pop("type")),
     "spec.eventTriggerConfig.scale.rules[0].type", "the KEDA scaler type"),
    ("rule name", event(lambda s: rule(s).update(name="Orders_Queue")),
     "spec.eventTriggerConfig.scale.rules[0].name", "lowercase letters, digits"),
    ("rule metadata as a number", event(lambda s: rule(s)["metadata"].update(messageCount=5)),
     "spec.eventTriggerConfig.scale.rules[0].metadata.messageCount", "must be a string"),
    ("rule auth with an undeclared secret", event(lambda s: rule(s)["auth"][0].update(secretRef="nope")),
     "spec.eventTriggerConfig.scale.rules[0].auth[0].secretRef", "secret 'nope' is not declared in spec.secrets"),
    ("rule identity the job has not", event(lambda s: rule(s).update(identity=USER_ID)),
     "spec.eventTriggerConfig.scale.rules[0].identity", "is not an identity of this app"),
    ("secret read with an identity the job has not", event(lambda s: s.pop("identity")),
     "spec.secrets[0].identity", "'system' needs spec.identity with type SystemAssigned"),
    ("registry pulled with an identity the job has not", scheduled(lambda s: s["registries"].append(
        {"server": "other.azurecr.io", "identity": USER_ID.replace("report-id", "other-id")})),
     "spec.registries[1].identity", "is not an identity of this app"),
    ("rule field of an app's rule", event(lambda s: rule(s).update(azureQueue={"queueName": "q"})),
     "spec.eventTriggerConfig.scale.rules[0].azureQueue", "allowed here: auth, identity, metadata, name, type"),
    ("more min than max executions", event(lambda s: s["eventTriggerConfig"]["scale"].update(minExecutions=20)),
     "spec.eventTriggerConfig.scale.minExecutions", "more than maxExecutions (10)"),
    ("zero polling interval", event(lambda s: s["eventTriggerConfig"]["scale"].update(pollingInterval=0)),
     "spec.eventTriggerConfig.scale.pollingInterval", "must be 1 or more"),
    ("plaintext secret", scheduled(lambda s: s["secrets"].append({"name": "token", "value": "hunter2"})),
     "spec.secrets[1].value", "plaintext value, which is never allowed in Git"),
    ("env naming an undeclared secret", scheduled(lambda s: s["containers"][0]["env"].append(
        {"name": "TOKEN", "secretRef": "token"})), "spec.containers[0].env[1].secretRef",
     "secret 'token' is not declared in spec.secrets"),
    ("mount of an undeclared volume", scheduled(lambda s: s["containers"][0]["volumeMounts"].append(
        {"volumeName": "logs", "mountPath": "/logs"})), "spec.containers[0].volumeMounts[1].volumeName",
     "volume 'logs' is not declared in spec.volumes"),
    ("CPU and memory ACA does not offer", scheduled(lambda s: s["containers"][0].update(memory="3Gi")),
     "spec.initContainers", "not an allowed CPU/memory combination"),
    ("registry password without a secret", scheduled(lambda s: s["registries"].append(
        {"server": "docker.io", "username": "me", "passwordSecretRef": "hub"})), "spec.registries[1].passwordSecretRef",
     "secret 'hub' is not declared in spec.secrets"),
    ("identity settings for another identity", scheduled(lambda s: s["identitySettings"][0].update(
        identity="/subscriptions/x/resourceGroups/y/providers/Microsoft.ManagedIdentity/userAssignedIdentities/z")),
     "spec.identitySettings[0].identity", "is not an identity of this app"),
    ("volume storage type", scheduled(lambda s: s["volumes"][0].update(storageType="Tmpfs")),
     "spec.volumes[0].storageType", "allowed: AzureFile, EmptyDir, NfsAzureFile, Secret"),
]


@pytest.mark.parametrize("what, manifest, field, message", CASES, ids=[c[0] for c in CASES])
def test_each_invalid_use_is_one_problem_at_its_line_and_no_job(what, manifest, field, message):
    text = dumped(manifest)
    jobs, problems = read(text)
    assert not jobs, "an invalid Job must never be applied"
    matching = [p for p in problems if p.field == field]
    assert matching, [str(p) for p in problems]
    problem = matching[0]
    assert message in problem.message, str(problem)
    assert problem.file == "apps/job.yaml" and problem.app == f"Job/{manifest['metadata']['name']}"
    assert problem.line and deepest_key(manifest, field) in text.splitlines()[problem.line - 1], (problem.line, text)


def deepest_key(manifest: dict, field: str) -> str:
    """The last key of `field` (spec.a[0].b) that the manifest has: where a problem's line points (a missing field's
    problem is reported at the mapping that lacks it)."""
    node, found = manifest, ""
    for part in re.findall(r"[^.\[\]]+", field):
        key: object = int(part) if part.isdigit() else part
        if isinstance(node, dict) and key in node:
            node, found = node[key], str(key)
        elif isinstance(node, list) and isinstance(key, int) and key < len(node):
            node, found = node[key], "- "                       # a list item starts its line with '- '
        else:
            break
    return found


def test_a_job_name_follows_the_container_app_rule():
    manifest = copy.deepcopy(SCHEDULED)
    manifest["metadata"]["name"] = "Nightly--Report"
    jobs, problems = read(dumped(manifest))
    assert not jobs and [(p.field, p.line) for p in problems] == [("metadata.name", 4)]


def test_a_synoscd_api_version_is_not_a_job():
    manifest = copy.deepcopy(SCHEDULED)
    manifest["apiVersion"] = "synoscd.io/v1alpha1"
    jobs, problems = read(dumped(manifest))
    assert not jobs and problems[0].field == "apiVersion" and "allowed: driftless.io/v1alpha1" in problems[0].message
