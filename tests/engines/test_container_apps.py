"""Reconcile passes against the ACA emulator through the real SDK, from real Git repositories.

Each test states one promise of the ACA core (issue #2, section 8) and fails if it is broken.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

from azure.mgmt.appcontainers import ContainerAppsAPIClient

from devtools.identity import StaticToken
from shared.core.container_app import TAG_OWNER, TAG_TARGET, desired_view, health, live_view
from shared.core.diff import diff
from shared.core.manifests import Target, load_apps
from shared.core.plan import make_plan
from tests.conftest import (
    ENVIRONMENT,
    GROUP,
    SUBSCRIPTION,
    TOKEN,
    app_yaml,
    outcomes,
    sync,
    writes,
)

SECRET = """  secrets:
    - {name: db, keyVaultUrl: "https://contoso.vault.azure.net/secrets/db-one", identity: system}
"""
SYSTEM_IDENTITY = "  identity: {type: SystemAssigned}\n"
"""A Key Vault secret read with identity `system` needs the app's system identity (ARM refuses it otherwise)."""


def arm(emulator) -> ContainerAppsAPIClient:
    """A second, independent ARM client: what a person in the portal (or another tool) does."""
    return ContainerAppsAPIClient(StaticToken(TOKEN), SUBSCRIPTION, base_url=emulator.url, polling_interval=0.02)


def patch_live(emulator, name: str, patch: dict) -> None:
    arm(emulator).container_apps.begin_update(GROUP, name, io.BytesIO(json.dumps(patch).encode()),
                                              content_type="application/json").result()


def put_foreign(emulator, name: str, tags: dict, environment: str = ENVIRONMENT) -> None:
    env_id = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}/providers/Microsoft.App/"
              f"managedEnvironments/{environment}")
    body = {"location": "westeurope", "tags": tags,
            "properties": {"managedEnvironmentId": env_id,
                           "template": {"containers": [{"name": name, "image": "nginx"}]}}}
    arm(emulator).container_apps.begin_create_or_update(GROUP, name, body).result()


def three_apps(repo) -> None:
    for name in ("alpha", "bravo", "charlie"):
        repo.write(f"apps/{name}.yaml", app_yaml(name))


def test_first_pass_creates_apps_that_are_healthy_and_tagged(repo, aca, driftless):
    three_apps(repo)
    head = repo.commit()
    result = sync(driftless())["default"]
    assert {o.app: o.action for o in result.outcomes} == {"alpha": "created", "bravo": "created", "charlie": "created"}
    assert all(o.healthy for o in result.outcomes) and result.ok
    live = aca.app(SUBSCRIPTION, GROUP, "alpha")
    assert live["tags"][TAG_OWNER] == "driftless" and live["tags"][TAG_TARGET] == "default"
    assert live["tags"]["driftless-revision"] == head
    assert json.loads(json.dumps(result.to_dict()))["summary"]["created"] == 3


def test_cpu_not_in_table_is_rejected_before_any_arm_call(repo, aca, driftless):
    repo.write("apps/odd.yaml", app_yaml("odd", cpu=0.3, memory="0.6Gi"))
    repo.commit()
    reconciler = driftless()
    revision = reconciler.source.head()
    target = reconciler.targets(revision)[0][0]
    apps, problems = reconciler.desired(target, revision)
    assert aca.calls() == {}
    assert apps == [] and len(problems) == 1
    message = str(problems[0])
    assert "container 'odd'" in message and "0.3 vCPU with 0.6Gi" in message
    assert "0.25/0.5Gi" in message and "4/8Gi" in message and "apps/odd.yaml:7" in message
    result = reconciler.reconcile(target, revision)
    assert outcomes(result)["odd"].action == "failed" and writes(aca) == 0


def test_memory_must_match_cpu_and_the_total_over_containers_is_checked(repo, aca, driftless):
    repo.write("apps/fat.yaml", app_yaml("fat", cpu=0.5, memory="2Gi"))
    repo.write("apps/max.yaml", app_yaml("max", cpu=4, memory="8Gi"))
    sidecars = ("    - {name: side, image: busybox, cpu: 0.2, memory: 0.4Gi}\n")
    repo.write("apps/pair.yaml", app_yaml("pair", cpu=0.3, memory="0.6Gi").replace(
        "      memory: 0.6Gi\n", "      memory: 0.6Gi\n" + sidecars))
    big = "    - {name: side, image: busybox, cpu: 2.25, memory: 4.5Gi}\n"
    repo.write("apps/big.yaml", app_yaml("big", cpu=2, memory="4Gi").replace("      memory: 4Gi\n", "      memory: 4Gi\n" + big))
    repo.commit()
    result = sync(driftless())["default"]
    by_app = outcomes(result)
    assert by_app["fat"].action == "failed" and "0.5 vCPU with 2Gi" in by_app["fat"].reason
    assert by_app["max"].action == "created"
    assert by_app["pair"].action == "created"   # 0.3 + 0.2 = 0.5 vCPU, 0.6 + 0.4 = 1Gi
    assert by_app["big"].action == "failed" and "total over containers 'big', 'side'" in by_app["big"].reason
    assert result.degraded


def test_invalid_file_still_applies_the_others_and_skips_prune(repo, aca, driftless):
    three_apps(repo)
    repo.write("apps/delta.yaml", app_yaml("delta"))
    repo.commit()
    sync(driftless(DRIFTLESS_PRUNE="true"))
    repo.write("apps/broken.yaml", "apiVersion: driftless.io/v1alpha1\nkind: App\nmetadata: {name: echo}\nspec:\n  suspend: false\n")
    repo.remove("apps/delta.yaml")
    repo.write("apps/alpha.yaml", app_yaml("alpha", image="nginx:1.28"))
    repo.commit()
    result = sync(driftless(DRIFTLESS_PRUNE="true"))["default"]
    by_app = outcomes(result)
    assert result.degraded and "degraded" in result.prune
    assert by_app["echo"].action == "failed" and "spec.containers: is required" in by_app["echo"].reason
    assert by_app["alpha"].action == "updated"
    assert by_app["delta"].action == "skipped" and aca.app(SUBSCRIPTION, GROUP, "delta") is not None
    assert result.problems[0]["file"] == "apps/broken.yaml" and result.problems[0]["line"] == 4


def test_prune_deletes_an_owned_orphan_and_waits_but_only_when_on(repo, aca, driftless):
    three_apps(repo)
    repo.write("apps/delta.yaml", app_yaml("delta"))
    repo.commit()
    sync(driftless())
    repo.remove("apps/delta.yaml")
    repo.commit()
    kept = outcomes(sync(driftless())["default"])["delta"]
    assert kept.action == "skipped" and "orphan" in kept.reason and "prune is off" in kept.reason
    assert aca.app(SUBSCRIPTION, GROUP, "delta") is not None
    aca.set_faults(lro_duration_s=0.3)
    deleted = outcomes(sync(driftless(DRIFTLESS_PRUNE="true"))["default"])["delta"]
    assert deleted.action == "deleted" and deleted.duration_ms >= 250
    assert aca.app(SUBSCRIPTION, GROUP, "delta") is None


def test_prune_never_touches_protected_unowned_other_target_or_other_environment_apps(repo, aca, driftless):
    for name in ("alpha", "bravo", "charlie", "delta", "guarded"):
        repo.write(f"apps/{name}.yaml", app_yaml(name))
    repo.commit()
    sync(driftless())
    put_foreign(aca, "handmade", {})
    put_foreign(aca, "theirs", {TAG_OWNER: "driftless", TAG_TARGET: "another-target"})
    put_foreign(aca, "elsewhere", {TAG_OWNER: "driftless", TAG_TARGET: "default"}, environment="env-other")
    put_foreign(aca, "other-instance", {TAG_OWNER: "driftless-staging", TAG_TARGET: "default"})
    repo.remove("apps/guarded.yaml")
    repo.remove("apps/delta.yaml")
    repo.commit()
    result = sync(driftless(DRIFTLESS_PRUNE="true", DRIFTLESS_PROTECTED_APPS="guarded"))["default"]
    by_app = outcomes(result)
    assert by_app["delta"].action == "deleted"
    assert by_app["guarded"].action == "skipped" and "listed in the Target's protectedApps" in by_app["guarded"].reason
    for name in ("guarded", "handmade", "theirs", "elsewhere", "other-instance"):
        assert aca.app(SUBSCRIPTION, GROUP, name) is not None, name
    assert not {"handmade", "theirs", "elsewhere", "other-instance"} & set(by_app)


def test_removing_every_manifest_deletes_nothing_and_says_why(repo, aca, driftless):
    three_apps(repo)
    repo.write("apps/README.txt", "apps live here")
    repo.commit()
    sync(driftless(DRIFTLESS_PRUNE="true"))
    for name in ("alpha", "bravo", "charlie"):
        repo.remove(f"apps/{name}.yaml")
    repo.commit()
    result = sync(driftless(DRIFTLESS_PRUNE="true"))["default"]
    assert "prune refused" in result.prune and "3 of 3" in result.prune and "allowEmpty" in result.prune
    assert all(o.action == "skipped" for o in result.outcomes) and len(result.outcomes) == 3
    assert writes(aca) == 3  # the three creates of the first pass, no delete
    repo.remove("apps/README.txt")
    repo.commit()
    gone = sync(driftless(DRIFTLESS_PRUNE="true"))["default"]
    assert gone.degraded and "does not exist" in gone.problems[0]["message"]
    assert all(aca.app(SUBSCRIPTION, GROUP, n) is not None for n in ("alpha", "bravo", "charlie"))


def test_more_than_half_is_refused_but_allow_empty_lets_it_through(repo, aca, driftless):
    three_apps(repo)
    repo.commit()
    sync(driftless())
    repo.remove("apps/alpha.yaml")
    repo.remove("apps/bravo.yaml")
    repo.commit()
    refused = sync(driftless(DRIFTLESS_PRUNE="true"))["default"]
    assert "more than half" in refused.prune
    allowed = sync(driftless(DRIFTLESS_PRUNE="true", DRIFTLESS_ALLOW_EMPTY="true"))["default"]
    assert {o.app: o.action for o in allowed.outcomes} == {"alpha": "deleted", "bravo": "deleted",
                                                           "charlie": "unchanged"}


def test_suspended_app_gets_no_write(repo, aca, driftless):
    repo.write("apps/alpha.yaml", app_yaml("alpha"))
    repo.write("apps/paused.yaml", app_yaml("paused", extra="  suspend: true\n"))
    repo.commit()
    result = sync(driftless())["default"]
    assert outcomes(result)["paused"].action == "suspended"
    assert aca.app(SUBSCRIPTION, GROUP, "paused") is None
    assert writes(aca) == 1


def test_second_pass_is_steady_state_with_zero_writes_and_no_per_app_get(repo, aca, driftless):
    three_apps(repo)
    repo.write("apps/full.yaml", app_yaml("full", extra=SECRET + """  identity: {type: SystemAssigned}
  ingress: {enabled: true, external: true, targetPort: 8080}
  scale: {minReplicas: 1, maxReplicas: 4}
  registries:
    - {server: myacr.azurecr.io, identity: system}
"""))
    repo.write("apps/quiet.yaml", app_yaml("quiet", extra="  ingress: {enabled: false}\n"))
    repo.commit()
    reconciler = driftless()
    assert sync(reconciler)["default"].ok
    aca.reset_calls()
    result = sync(reconciler)["default"]
    assert {o.action for o in result.outcomes} == {"unchanged"}, [(o.app, o.reason) for o in result.outcomes]
    assert writes(aca) == 0
    assert aca.calls() == {"GET list": 1, "GET jobs": 1}          # one list of apps, one of jobs: no per-app GET


def test_changing_only_a_secret_reference_is_drift_and_is_applied(repo, aca, driftless):
    repo.write("apps/alpha.yaml", app_yaml("alpha", extra=SECRET + SYSTEM_IDENTITY))
    repo.commit()
    sync(driftless())
    repo.write("apps/alpha.yaml", app_yaml("alpha", extra=SECRET.replace("db-one", "db-two") + SYSTEM_IDENTITY))
    repo.commit()
    result = outcomes(sync(driftless())["default"])["alpha"]
    assert result.action == "updated"
    assert [d["path"] for d in result.diff] == ["tags.driftless-spec-hash"]
    live = aca.app(SUBSCRIPTION, GROUP, "alpha")
    assert live["properties"]["configuration"]["secrets"][0]["keyVaultUrl"].endswith("/db-two")


def test_update_keeps_tags_and_properties_git_does_not_own(repo, aca, driftless):
    repo.write("apps/alpha.yaml", app_yaml("alpha", extra="  scale: {minReplicas: 1, maxReplicas: 3}\n"))
    repo.commit()
    sync(driftless())
    live = aca.app(SUBSCRIPTION, GROUP, "alpha")
    containers = live["properties"]["template"]["containers"]
    containers[0]["probes"] = [{"type": "Liveness", "httpGet": {"path": "/healthz", "port": 8080}}]
    patch_live(aca, "alpha", {"tags": {"policy-owner": "platform"},
                              "properties": {"template": {"containers": containers,
                                                          "scale": {"rules": [{"name": "http", "http": {"metadata": {"concurrentRequests": "50"}}}]}},
                                             "configuration": {"dapr": {"enabled": True, "appId": "alpha"}}}})
    repo.write("apps/alpha.yaml", app_yaml("alpha", image="nginx:1.28", extra="  scale: {minReplicas: 1, maxReplicas: 3}\n"))
    repo.commit()
    assert outcomes(sync(driftless())["default"])["alpha"].action == "updated"
    after = aca.app(SUBSCRIPTION, GROUP, "alpha")
    assert after["tags"]["policy-owner"] == "platform"
    assert after["properties"]["template"]["containers"][0]["image"] == "nginx:1.28"
    assert after["properties"]["template"]["containers"][0]["probes"][0]["httpGet"]["path"] == "/healthz"
    assert after["properties"]["template"]["scale"]["rules"][0]["name"] == "http"
    assert after["properties"]["configuration"]["dapr"]["appId"] == "alpha"


def test_failed_and_endless_operations_are_failures_never_success(repo, aca, driftless):
    repo.write("apps/doomed.yaml", app_yaml("doomed"))
    repo.write("apps/stuck.yaml", app_yaml("stuck"))
    repo.write("apps/fine.yaml", app_yaml("fine"))
    repo.commit()
    aca.set_faults(lro_fail_apps=["doomed"], lro_hang_apps=["stuck"])
    result = sync(driftless(DRIFTLESS_APPLY_TIMEOUT="0.5"))["default"]
    by_app = outcomes(result)
    assert by_app["doomed"].action == "failed" and "ContainerAppOperationError" in by_app["doomed"].reason
    assert by_app["stuck"].action == "failed" and "did not finish within 0.5s" in by_app["stuck"].reason
    assert by_app["fine"].action == "created" and not result.ok


def test_throttling_and_server_errors_are_retried_until_the_pass_converges(repo, aca, driftless):
    three_apps(repo)
    repo.commit()
    aca.set_faults(throttle_next=2, retry_after_s=1)
    first = sync(driftless(DRIFTLESS_ARM_POLL_INTERVAL="0.5"))["default"]   # all three started before a look
    # two 429s, then the plan's list, then one list that looks at the three pending creates at once
    assert first.ok and aca.calls()["GET list"] == 4 and "GET app" not in aca.calls(), aca.calls()
    aca.set_faults(unavailable_next=2)
    repo.write("apps/alpha.yaml", app_yaml("alpha", image="nginx:1.28"))
    repo.commit()
    second = sync(driftless())["default"]
    assert second.ok and outcomes(second)["alpha"].action == "updated"
    assert aca.app(SUBSCRIPTION, GROUP, "alpha")["properties"]["template"]["containers"][0]["image"] == "nginx:1.28"


def test_failing_revision_is_reported_unhealthy_with_the_reason_and_reapplied(repo, aca, driftless):
    repo.write("apps/alpha.yaml", app_yaml("alpha", image="myacr.azurecr.io/alpha:broken-build"))
    repo.commit()
    created = outcomes(sync(driftless())["default"])["alpha"]
    assert created.action == "created" and created.healthy is False
    assert "ImagePullBackOff" in created.health_reason and "alpha:broken-build" in created.health_reason
    first_revision = aca.app(SUBSCRIPTION, GROUP, "alpha")["properties"]["latestRevisionName"]
    again = outcomes(sync(driftless())["default"])["alpha"]
    assert again.action == "updated" and "unhealthy" in again.reason
    assert aca.app(SUBSCRIPTION, GROUP, "alpha")["properties"]["latestRevisionName"] != first_revision  # a real retry


def test_one_failing_app_never_blocks_the_others_and_the_cli_exits_1(repo, aca, monkeypatch, capsys):
    from shared.cli import main

    for name in ("alpha", "bravo", "charlie", "doomed"):
        repo.write(f"apps/{name}.yaml", app_yaml(name))
    repo.commit()
    aca.set_faults(lro_fail_apps=["doomed"])
    env = {"DRIFTLESS_REPO_URL": str(repo.path), "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
           "DRIFTLESS_RESOURCE_GROUP": GROUP, "DRIFTLESS_ACA_ENVIRONMENT": ENVIRONMENT,
           "DRIFTLESS_ARM_ENDPOINT": aca.url,
           "DRIFTLESS_ARM_POLL_INTERVAL": "0.02", "DRIFTLESS_QUIET": "1"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(["sync", "-o", "json"]) == 1
    result = json.loads(capsys.readouterr().out)[0]
    actions = {o["app"]: o["action"] for o in result["outcomes"]}
    assert actions == {"alpha": "created", "bravo": "created", "charlie": "created", "doomed": "failed"}
    assert all(aca.app(SUBSCRIPTION, GROUP, n) for n in ("alpha", "bravo", "charlie"))


def test_dry_run_and_diff_write_nothing_and_show_path_desired_live(repo, aca, driftless):
    three_apps(repo)
    repo.commit()
    sync(driftless())
    repo.write("apps/alpha.yaml", app_yaml("alpha", image="nginx:1.28"))
    repo.write("apps/new.yaml", app_yaml("new"))
    repo.commit()
    aca.reset_calls()
    reconciler = driftless()
    dry = sync(reconciler, dry_run=True)["default"]
    assert dry.dry_run and outcomes(dry)["alpha"].diff == [
        {"path": "containers[alpha].image", "desired": "nginx:1.28", "live": "nginx:1.27"}]
    assert outcomes(dry)["new"].action == "created" and "dry run" in outcomes(dry)["new"].reason
    revision = reconciler.source.head()
    plan = reconciler.plan(reconciler.targets(revision)[0][0], revision, only="alpha")
    assert [(c.path, c.desired, c.live) for c in plan.steps[0].changes] == [
        ("containers[alpha].image", "nginx:1.28", "nginx:1.27")]
    assert writes(aca) == 0 and aca.app(SUBSCRIPTION, GROUP, "new") is None


def test_synoscd_manifest_reconciles_and_its_plaintext_secret_is_rejected_with_guidance(repo, aca, driftless):
    repo.write("apps/legacy.yaml", """\
        apiVersion: synoscd.io/v1alpha1
        kind: App
        metadata:
          name: legacy-api
          namespace: production
          labels: {synoscd.io/managed: "true"}
        spec:
          containers:
            - {name: api, image: "mcr.microsoft.com/azuredocs/containerapps-helloworld:latest", cpu: 0.25, memory: 0.5Gi}
          environment:
            - {name: LOG_LEVEL, value: INFO}
          ingress: {enabled: true, external: true, targetPort: 80}
          scale: {minReplicas: 1, maxReplicas: 3}
        """)
    repo.write("apps/leaky.yaml", """\
        apiVersion: synoscd.io/v1alpha1
        kind: App
        metadata: {name: leaky, labels: {synoscd.io/managed: "true"}}
        spec:
          containers: [{name: api, image: nginx}]
          secrets: {api-key: hunter2-plaintext}
        """)
    repo.write("apps/unmanaged.yaml", """\
        apiVersion: synoscd.io/v1alpha1
        kind: App
        metadata: {name: unmanaged}
        spec:
          containers: [{name: api, image: nginx}]
        """)
    repo.commit()
    result = sync(driftless())["default"]
    by_app = outcomes(result)
    assert by_app["legacy-api"].action == "created" and by_app["legacy-api"].healthy
    live = aca.app(SUBSCRIPTION, GROUP, "legacy-api")["properties"]
    assert live["template"]["containers"][0]["env"] == [{"name": "LOG_LEVEL", "value": "INFO"}]
    assert live["configuration"]["ingress"]["external"] is True
    assert by_app["leaky"].action == "failed"
    assert "secrets: {api-key: https://<vault>.vault.azure.net/secrets/<name>}" in by_app["leaky"].reason
    assert "hunter2" not in json.dumps(result.to_dict())
    assert by_app["unmanaged"].action == "skipped" and aca.app(SUBSCRIPTION, GROUP, "unmanaged") is None


def test_an_app_owned_elsewhere_is_refused_not_taken_over(repo, aca, driftless):
    put_foreign(aca, "theirs", {TAG_OWNER: "driftless", TAG_TARGET: "another-target"})
    put_foreign(aca, "parked", {}, environment="env-other")
    put_foreign(aca, "adopted", {"synoscd-managed": "true"})
    for name in ("theirs", "parked", "adopted"):
        repo.write(f"apps/{name}.yaml", app_yaml(name))
    repo.commit()
    by_app = outcomes(sync(driftless())["default"])
    assert by_app["theirs"].action == "failed" and "another-target" in by_app["theirs"].reason
    assert by_app["parked"].action == "failed" and "env-other" in by_app["parked"].reason
    assert by_app["adopted"].action == "updated"
    assert aca.app(SUBSCRIPTION, GROUP, "adopted")["tags"][TAG_TARGET] == "default"


def test_target_manifests_route_paths_to_environments(repo, aca, driftless):
    repo.write("targets/prod.yaml", f"""\
        apiVersion: driftless.io/v1alpha1
        kind: Target
        metadata: {{name: prod}}
        spec: {{type: aca, path: envs/prod, resourceGroup: {GROUP}, environment: {ENVIRONMENT}}}
        ---
        apiVersion: driftless.io/v1alpha1
        kind: Target
        metadata: {{name: other}}
        spec: {{type: aca, path: envs/other, subscriptionId: {SUBSCRIPTION}, resourceGroup: {GROUP}, environment: env-other}}
        """)
    repo.write("envs/prod/a.yaml", app_yaml("prod-web"))
    repo.write("envs/other/a.yaml", app_yaml("other-web"))
    repo.commit()
    results = sync(driftless(DRIFTLESS_RESOURCE_GROUP="", DRIFTLESS_ACA_ENVIRONMENT=""))  # no default Target
    assert set(results) == {"prod", "other"}
    assert aca.app(SUBSCRIPTION, GROUP, "other-web")["properties"]["managedEnvironmentId"].endswith("/env-other")
    assert aca.app(SUBSCRIPTION, GROUP, "prod-web")["tags"][TAG_TARGET] == "prod"


# ------------------------------------------- an app whose operation still runs is waited for (issue 14)

WAITING = "operation in progress (provisioningState {}); left alone, the next pass looks again"


def test_a_pass_after_a_hung_apply_writes_nothing_says_why_and_the_next_one_converges(repo, aca, driftless):
    repo.write("apps/alpha.yaml", app_yaml("alpha"))
    repo.write("apps/bravo.yaml", app_yaml("bravo"))
    repo.commit()
    sync(driftless())
    repo.write("apps/alpha.yaml", app_yaml("alpha", image="nginx:1.28"))
    repo.commit()
    aca.set_faults(lro_hang_apps=["alpha"])
    hung = outcomes(sync(driftless(DRIFTLESS_APPLY_TIMEOUT="0.3"))["default"])["alpha"]
    assert hung.action == "failed" and "did not finish within 0.3s" in hung.reason
    aca.reset_calls()

    waiting = sync(driftless(DRIFTLESS_APPLY_TIMEOUT="0.3"))["default"]

    alpha = outcomes(waiting)["alpha"]
    assert alpha.action == "skipped" and alpha.reason == WAITING.format("InProgress")
    assert alpha.healthy is False and not waiting.ok
    assert outcomes(waiting)["bravo"].action == "unchanged"  # the others go on as usual
    assert writes(aca) == 0 and aca.calls() == {"GET list": 1, "GET jobs": 1}
    aca.release(SUBSCRIPTION, GROUP, "alpha")
    converged = sync(driftless())["default"]
    assert outcomes(converged)["alpha"].action == "unchanged" and outcomes(converged)["alpha"].healthy
    assert converged.ok and writes(aca) == 0
    assert aca.app(SUBSCRIPTION, GROUP, "alpha")["properties"]["template"]["containers"][0]["image"] == "nginx:1.28"


def test_a_hung_apply_that_ends_failed_is_applied_again_by_the_next_pass(repo, aca, driftless):
    repo.write("apps/alpha.yaml", app_yaml("alpha"))
    repo.commit()
    sync(driftless())
    repo.write("apps/alpha.yaml", app_yaml("alpha", image="nginx:1.28"))
    repo.commit()
    aca.set_faults(lro_hang_apps=["alpha"])
    sync(driftless(DRIFTLESS_APPLY_TIMEOUT="0.3"))
    aca.release(SUBSCRIPTION, GROUP, "alpha", status="Failed")  # ARM ends it Failed: the app is as it was
    assert aca.app(SUBSCRIPTION, GROUP, "alpha")["properties"]["template"]["containers"][0]["image"] == "nginx:1.27"

    again = outcomes(sync(driftless())["default"])["alpha"]

    assert again.action == "updated" and again.healthy
    assert [d["path"] for d in again.diff] == ["containers[alpha].image"]
    assert aca.app(SUBSCRIPTION, GROUP, "alpha")["properties"]["template"]["containers"][0]["image"] == "nginx:1.28"


def test_an_orphan_still_being_deleted_is_not_deleted_again(repo, aca, driftless):
    three_apps(repo)
    repo.write("apps/delta.yaml", app_yaml("delta"))
    repo.commit()
    sync(driftless())
    repo.remove("apps/delta.yaml")
    repo.commit()
    aca.set_faults(lro_hang_apps=["delta"])
    timed_out = outcomes(sync(driftless(DRIFTLESS_PRUNE="true", DRIFTLESS_APPLY_TIMEOUT="0.3"))["default"])["delta"]
    assert timed_out.action == "failed" and "did not finish" in timed_out.reason
    aca.reset_calls()

    waiting = outcomes(sync(driftless(DRIFTLESS_PRUNE="true"))["default"])["delta"]

    assert waiting.action == "skipped" and waiting.reason == WAITING.format("Deleting") and waiting.healthy is False
    assert writes(aca) == 0
    aca.release(SUBSCRIPTION, GROUP, "delta")
    after = sync(driftless(DRIFTLESS_PRUNE="true"))["default"]
    assert "delta" not in outcomes(after) and after.ok and aca.app(SUBSCRIPTION, GROUP, "delta") is None


def test_a_write_refused_409_because_an_operation_started_after_the_plan_is_a_wait_not_a_failure(
        repo, aca, driftless):
    three_apps(repo)
    repo.commit()
    sync(driftless())
    for name in ("alpha", "bravo"):
        repo.write(f"apps/{name}.yaml", app_yaml(name, image="nginx:1.28"))
    repo.commit()
    aca.set_faults(conflict_apps=["bravo"])  # another client's operation runs on bravo when Driftless writes

    result = sync(driftless())["default"]

    bravo = outcomes(result)["bravo"]
    assert outcomes(result)["alpha"].action == "updated"
    assert bravo.action == "skipped" and "ContainerAppOperationInProgress" in bravo.reason
    assert "left alone, the next pass looks again" in bravo.reason and bravo.healthy is False
    assert aca.app(SUBSCRIPTION, GROUP, "bravo")["properties"]["template"]["containers"][0]["image"] == "nginx:1.27"
    aca.set_faults(conflict_apps=[])
    assert outcomes(sync(driftless())["default"])["bravo"].action == "updated"


# ------------------------------------------------------ what ACA adds or spells its own way is not drift

INGRESS = "  ingress: {enabled: true, external: true, targetPort: 8080}\n"


def test_acas_default_probes_are_not_drift_and_follow_a_new_target_port(repo, aca, driftless):
    repo.write("apps/web.yaml", app_yaml("web", extra=INGRESS))
    repo.commit()
    sync(driftless())
    probes = aca.app(SUBSCRIPTION, GROUP, "web")["properties"]["template"]["containers"][0]["probes"]
    assert {p["type"] for p in probes} == {"Startup", "Liveness", "Readiness"}  # added by ACA, not by Git
    aca.reset_calls()

    steady = sync(driftless())["default"]

    assert outcomes(steady)["web"].action == "unchanged" and writes(aca) == 0
    repo.write("apps/web.yaml", app_yaml("web", extra=INGRESS.replace("8080", "9090")))
    repo.commit()
    assert outcomes(sync(driftless())["default"])["web"].action == "updated"
    probes = aca.app(SUBSCRIPTION, GROUP, "web")["properties"]["template"]["containers"][0]["probes"]
    assert sorted(p["tcpSocket"]["port"] for p in probes) == [9090, 9090, 9090]  # none left on the old port
    aca.reset_calls()
    assert outcomes(sync(driftless())["default"])["web"].action == "unchanged" and writes(aca) == 0


def test_both_identity_kinds_are_sent_as_arms_exact_enum_value(repo, aca, driftless):
    user = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}/providers/Microsoft.ManagedIdentity/"
            "userAssignedIdentities/web-identity")
    identity = f"  identity: {{type: 'SystemAssigned,UserAssigned', userAssignedIdentities: ['{user}']}}\n"
    repo.write("apps/web.yaml", app_yaml("web", extra=identity))
    repo.commit()

    created = outcomes(sync(driftless())["default"])["web"]

    assert created.action == "created" and created.healthy, created.reason  # ARM refuses "SystemAssigned, UserAssigned"
    live = aca.app(SUBSCRIPTION, GROUP, "web")["identity"]
    assert live["type"] == "SystemAssigned,UserAssigned" and list(live["userAssignedIdentities"]) == [user]
    repo.write("apps/web.yaml", app_yaml("web", image="nginx:1.28", extra=identity))
    repo.commit()
    assert outcomes(sync(driftless())["default"])["web"].action == "updated"  # the PATCH carries it too
    aca.reset_calls()
    assert outcomes(sync(driftless())["default"])["web"].action == "unchanged" and writes(aca) == 0


# ------------------------------------------------ Microsoft's published examples through the normaliser

EXAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "arm"
EXAMPLE_APP = """\
apiVersion: driftless.io/v1alpha1
kind: App
metadata: {name: testcontainerapp0}
spec:
  containers:
    - {name: testcontainerapp0, image: "repo/testcontainerapp0:v4", cpu: 0.5, memory: 1Gi}
  ingress: {enabled: true, external: true, targetPort: 3000, transport: auto}
  scale: {minReplicas: 1, maxReplicas: 5}
"""
EXAMPLE_IDENTITY = """\
  identity:
    type: SystemAssigned,UserAssigned
    userAssignedIdentities:
      - /subscriptions/34adfa4f-cedf-4dc0-ba29-b6d1a69ab345/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/myidentity
"""


def example_bodies() -> dict[str, dict]:
    def load(name: str) -> dict:
        return json.loads((EXAMPLES / f"ContainerApps_{name}.json").read_text())["responses"]
    return {"Get 200": load("Get")["200"]["body"],
            "ListByResourceGroup 200": load("ListByResourceGroup")["200"]["body"]["value"][0],
            "Patch 200": load("Patch")["200"]["body"],
            "CreateOrUpdate 200": load("CreateOrUpdate")["200"]["body"],
            "CreateOrUpdate 201": load("CreateOrUpdate")["201"]["body"]}


def test_microsofts_published_app_bodies_show_no_drift_and_their_health_through_the_normaliser():

    plain, problems = load_apps({"apps/example.yaml": EXAMPLE_APP.encode()})
    with_identity, more = load_apps({"apps/example.yaml": (EXAMPLE_APP + EXAMPLE_IDENTITY).encode()})
    assert problems == more == []
    for name, body in example_bodies().items():
        app = with_identity[0] if "identity" in body else plain[0]
        wanted = desired_view(app)
        assert diff(wanted, live_view(body, wanted), "") == [], name
    bodies = example_bodies()
    assert "identity" in bodies["CreateOrUpdate 200"]  # the combined type, as ARM spells it, read back equal
    for name in ("Get 200", "ListByResourceGroup 200", "Patch 200", "CreateOrUpdate 200"):
        assert health(bodies[name]).healthy, name
    assert health(bodies["CreateOrUpdate 201"]).reason == "provisioning state is InProgress"

    target = Target(name="default", path="apps", subscription_id="34adfa4f-cedf-4dc0-ba29-b6d1a69ab345",
                    resource_group="rg", environment="demokube")
    in_progress = dict(bodies["CreateOrUpdate 201"], tags={TAG_OWNER: "driftless", TAG_TARGET: "default"})
    step = make_plan(target=target, instance="driftless", apps=with_identity, problems=[], live=[in_progress]).steps[0]
    assert (step.kind, step.reason, step.writes) == ("skipped", WAITING.format("InProgress"), False)
