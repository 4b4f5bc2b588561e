"""Declaring the first Target retires the settings' default Target loudly and safely.

Real parts: a real Git repository, the ACA emulator behind the real ARM SDK. Asserted: what the
retired default Target's pass reports, that it writes and deletes nothing (even with prune and
allowEmpty set for it), and that a Target named `default` claims its apps again.
"""
from __future__ import annotations

import logging

from shared.core.container_app import TAG_TARGET
from tests.conftest import ENVIRONMENT, GROUP, SUBSCRIPTION, app_yaml, outcomes, sync, writes

PRUNE_EVERYTHING = {"DRIFTLESS_PRUNE": "true", "DRIFTLESS_ALLOW_EMPTY": "true"}


def prod_target(repo) -> None:
    repo.write("targets/prod.yaml", f"""\
        apiVersion: driftless.io/v1alpha1
        kind: Target
        metadata: {{name: prod}}
        spec: {{type: aca, path: envs/prod, resourceGroup: {GROUP}, environment: {ENVIRONMENT}, prune: true}}
        """)
    repo.write("envs/prod/api.yaml", app_yaml("api"))


def test_the_first_target_retires_the_default_one_loudly_and_its_apps_stay_untouched(repo, aca, driftless, caplog):
    repo.write("apps/web.yaml", app_yaml("web"))
    repo.write("apps/worker.yaml", app_yaml("worker"))
    repo.commit()
    assert {o.action for o in sync(driftless(**PRUNE_EVERYTHING))["default"].outcomes} == {"created"}
    prod_target(repo)
    repo.commit("declare the first Target")
    reconciler = driftless(**PRUNE_EVERYTHING)
    targets, problems = reconciler.targets(reconciler.source.head())
    assert problems == [] and [(t.name, t.retired, t.prune) for t in targets] == [("prod", False, True),
                                                                                  ("default", True, False)]
    aca.reset_calls()
    caplog.set_level(logging.ERROR, logger="driftless.manifests")
    results = sync(reconciler)
    retired = results["default"]
    assert {name: (o.action, o.reason) for name, o in outcomes(retired).items()} == {
        "web": ("skipped", "orphan: owned by this Target but not in Git; prune is off"),
        "worker": ("skipped", "orphan: owned by this Target but not in Git; prune is off")}
    assert retired.degraded and not retired.ok and retired.prune == "off"
    [notice] = retired.problems
    assert notice["file"] == "targets/" and "the default Target is retired" in notice["message"]
    assert "Declare a Target named 'default'" in notice["message"]
    assert [r.getMessage() for r in caplog.records if "retired" in r.getMessage()] == [
        f"target default at {retired.revision[:12]}: targets/: {notice['message']}"]
    assert outcomes(results["prod"])["api"].action == "created"
    assert writes(aca) == 1                                       # the create of api; nothing of default's
    for name in ("web", "worker"):
        assert aca.app(SUBSCRIPTION, GROUP, name)["tags"][TAG_TARGET] == "default"


def test_a_declared_target_named_default_claims_the_apps_and_no_settings_means_no_retired_target(repo, aca, driftless):
    repo.write("apps/web.yaml", app_yaml("web"))
    repo.commit()
    sync(driftless())
    prod_target(repo)
    repo.write("targets/default.yaml", f"""\
        apiVersion: driftless.io/v1alpha1
        kind: Target
        metadata: {{name: default}}
        spec: {{type: aca, path: apps, resourceGroup: {GROUP}, environment: {ENVIRONMENT}}}
        """)
    repo.commit()
    results = sync(driftless())
    assert set(results) == {"prod", "default"} and not results["default"].problems
    assert outcomes(results["default"])["web"].action == "unchanged"
    repo.remove("targets/default.yaml")
    repo.commit()
    assert set(sync(driftless(DRIFTLESS_RESOURCE_GROUP="", DRIFTLESS_ACA_ENVIRONMENT=""))) == {"prod"}
