"""Dapr components through the real SDK, the ACA emulator and the status store on Azurite: what Driftless creates
is recorded in the Target's inventory (ARM keeps no tags on components), a steady pass writes nothing, one changed
field is one PUT, prune deletes only what the inventory holds and never on a degraded pass, a component Driftless
did not create is refused unless it already equals Git (then adopted), and a scope no App has is only a warning."""
from __future__ import annotations

import copy

import pytest
import yaml

from shared.core.dapr_component import NO_STORE
from shared.engines.reconciler import Reconciler
from tests.conftest import ENVIRONMENT, GROUP, SUBSCRIPTION, app_yaml, make_settings, outcomes, sync, writes
from tests.core.test_dapr_component_manifests import STATESTORE
from tests.engines.test_jobs import by_hand

KEY = "DaprComponent/reddog"
SCOPED_APPS = "".join(app_yaml(name, extra=f"  dapr: {{enabled: true, appId: {name}}}\n") + "---\n"
                      for name in ("container-app-1", "container-app-2"))


@pytest.fixture
def build(repo, aca, store):
    def reconciler(**env: str) -> Reconciler:
        return Reconciler(make_settings(str(repo.path), aca, **env), store=store)
    return reconciler


def write(repo, manifest: dict, name: str = "reddog") -> None:
    repo.write(f"apps/{name}.yaml", yaml.safe_dump(manifest, sort_keys=False))


def component(aca, name: str = "reddog") -> dict | None:
    return aca.dapr_component(SUBSCRIPTION, GROUP, ENVIRONMENT, name)


def named(name: str, **spec) -> dict:
    manifest = copy.deepcopy(STATESTORE)
    manifest["metadata"]["name"] = name
    manifest["spec"].update(spec)
    return manifest


@pytest.fixture
def created(repo, aca, store, build):
    repo.write("apps/apps.yaml", SCOPED_APPS)
    write(repo, STATESTORE)
    repo.commit()
    reconciler = build()
    result = sync(reconciler)["default"]
    outcome = outcomes(result)[KEY]
    assert outcome.action == "created" and outcome.healthy, outcome.reason
    assert result.ok, [(o.app, o.reason) for o in result.outcomes]
    return reconciler


def test_a_created_component_is_arms_shape_and_recorded_in_the_inventory(created, aca, store):
    props = component(aca)["properties"]
    assert props["componentType"] == "state.azure.cosmosdb" and props["initTimeout"] == "50s"
    assert props["metadata"] == STATESTORE["spec"]["metadata"] and props["scopes"] == STATESTORE["spec"]["scopes"]
    assert props["secrets"] == [{"name": "masterkey", "keyVaultUrl": STATESTORE["spec"]["secrets"][0]["keyVaultUrl"],
                                 "identity": "system"}]
    row = store.inventory("default")[KEY]
    assert row["environment"].endswith(f"/managedEnvironments/{ENVIRONMENT}") and row["spec_hash"]


def test_the_next_pass_makes_zero_writes(created, aca):
    aca.reset_calls()
    outcome = outcomes(sync(created)["default"])[KEY]
    assert outcome.action == "unchanged" and outcome.reason == "in sync" and outcome.healthy
    assert writes(aca) == 0 and aca.calls()["GET dapr components"] == 1


@pytest.mark.parametrize("what, change, path, applied", [
    ("metadata value", lambda s: s["metadata"][1].update(value="ordersDB"), "metadata.database.value",
     lambda p: p["metadata"][1] == {"name": "database", "value": "ordersDB"}),
    ("init timeout", lambda s: s.update(initTimeout="1m"), "initTimeout", lambda p: p["initTimeout"] == "1m"),
    ("a scope less", lambda s: s["scopes"].pop(), "scopes", lambda p: p["scopes"] == ["container-app-1"]),
    ("a Key Vault URL ARM never returns", lambda s: s["secrets"][0].update(
        keyVaultUrl="https://kv-shop-prod.vault.azure.net/secrets/cosmos-masterkey-2"), "inventory.specHash",
     lambda p: p["secrets"][0]["keyVaultUrl"].endswith("cosmos-masterkey-2")),
])
def test_one_changed_field_is_one_put(created, aca, repo, store, what, change, path, applied):
    before = store.inventory("default")[KEY]["spec_hash"]
    manifest = copy.deepcopy(STATESTORE)
    change(manifest["spec"])
    write(repo, manifest)
    repo.commit()
    aca.reset_calls()
    outcome = outcomes(sync(created)["default"])[KEY]
    assert outcome.action == "updated", outcome.reason
    assert [c["path"] for c in outcome.diff] == [path]
    assert {k: n for k, n in aca.calls().items() if k.split()[0] in ("PUT", "PATCH", "DELETE")} == {
        "PUT dapr component": 1}
    assert applied(component(aca)["properties"])
    assert store.inventory("default")[KEY]["spec_hash"] != before
    aca.reset_calls()
    assert outcomes(sync(created)["default"])[KEY].action == "unchanged" and writes(aca) == 0


def test_a_scope_no_app_has_is_a_warning_in_the_reason_and_the_pass_stays_ok(repo, aca, build):
    repo.write("apps/apps.yaml", app_yaml("container-app-1", extra="  dapr: {enabled: true, appId: container-app-1}\n"))
    write(repo, STATESTORE)
    repo.commit()
    result = sync(build())["default"]
    outcome = outcomes(result)[KEY]
    assert outcome.action == "created" and "warning: scope 'container-app-2' names no App" in outcome.reason
    assert result.ok and not result.degraded and result.problems == []


def test_prune_deletes_only_what_the_inventory_holds(created, aca, repo, store, build):
    write(repo, named("pubsub", componentType="pubsub.azure.servicebus.queues"), "pubsub")
    write(repo, named("bindings", componentType="bindings.cron"), "bindings")
    repo.commit()
    sync(created)
    by_hand(aca, f"managedEnvironments/{ENVIRONMENT}/daprComponents/handmade",    # a component made by hand
            {"properties": {"componentType": "state.redis", "version": "v1"}})
    repo.remove("apps/bindings.yaml")
    repo.commit()

    kept = outcomes(sync(created)["default"])["DaprComponent/bindings"]
    assert kept.action == "skipped" and "prune is off" in kept.reason and component(aca, "bindings")

    result = sync(build(DRIFTLESS_PRUNE="true"))["default"]
    assert outcomes(result)["DaprComponent/bindings"].action == "deleted" and result.prune == "on"
    assert component(aca, "bindings") is None and "DaprComponent/bindings" not in store.inventory("default")
    assert "DaprComponent/handmade" not in outcomes(result) and component(aca, "handmade")   # never ours


def test_prune_never_runs_on_a_degraded_pass(created, aca, repo, build):
    write(repo, named("pubsub", componentType="pubsub.azure.servicebus.queues"), "pubsub")
    write(repo, named("bindings", componentType="bindings.cron"), "bindings")
    repo.commit()
    sync(created)
    repo.remove("apps/bindings.yaml")
    broken = named("broken", version="1")                                     # an invalid component
    write(repo, broken, "broken")
    repo.commit()
    result = sync(build(DRIFTLESS_PRUNE="true"))["default"]
    assert result.degraded and "the pass is degraded" in outcomes(result)["DaprComponent/bindings"].reason
    assert outcomes(result)["DaprComponent/broken"].action == "failed" and component(aca, "bindings")


def test_a_component_driftless_did_not_create_is_refused_unless_it_equals_git(repo, aca, store, build):
    reddog = f"managedEnvironments/{ENVIRONMENT}/daprComponents/reddog"
    body = {"properties": {k: v for k, v in STATESTORE["spec"].items() if k != "secrets"}}
    body["properties"]["secrets"] = [dict(STATESTORE["spec"]["secrets"][0])]
    by_hand(aca, reddog, {"properties": {**body["properties"], "initTimeout": "5s"}})
    repo.write("apps/apps.yaml", SCOPED_APPS)
    write(repo, STATESTORE)
    repo.commit()
    aca.reset_calls()
    refused = outcomes(sync(build())["default"])[KEY]
    assert refused.action == "failed" and "Driftless did not create it" in refused.reason and "initTimeout" in refused.reason
    assert "PUT dapr component" not in aca.calls() and KEY not in store.inventory("default")

    by_hand(aca, reddog, body)                                               # now it equals Git: adopted
    adopted = outcomes(sync(build())["default"])[KEY]
    assert adopted.action == "updated" and adopted.reason.startswith("adopted")
    assert KEY in store.inventory("default")
    assert outcomes(sync(build())["default"])[KEY].action == "unchanged"


def test_a_component_in_another_targets_inventory_is_refused(created, aca, store, build):
    store.forget_owned("default", KEY)
    store.record_owned("other", KEY, environment=created.settings.default_target().environment_id,
                       spec_hash="x", revision="r")
    outcome = outcomes(sync(build())["default"])[KEY]
    assert outcome.action == "failed" and "in the inventory of Target other" in outcome.reason


def test_without_a_status_store_nothing_is_written_and_the_apps_go_on(repo, aca, driftless):
    repo.write("apps/apps.yaml", SCOPED_APPS)
    write(repo, STATESTORE)
    repo.commit()
    result = sync(driftless())["default"]                                      # no store given
    by_key = outcomes(result)
    assert by_key[KEY].action == "failed" and by_key[KEY].reason.startswith(NO_STORE)
    assert by_key["container-app-1"].action == "created" and component(aca) is None
