"""One `aca` Target runs the engines of its kinds as one: one parse, each kind engine sees only its objects, problems
degrade the whole pass but are reported once by the owning kind, prune verdicts merge per kind, and progress counts
across every kind. Real engines against the ACA emulator (and the status store on Azurite for Dapr components)."""
from __future__ import annotations

import copy

import yaml

from shared.core.manifests import Target
from shared.engines import ENGINES, engine_for
from shared.engines.aks import AksEngine
from shared.engines.container_apps import ContainerAppsEngine
from shared.engines.target_engine import TargetEngine, merge_prune
from tests.conftest import app_yaml, make_settings, outcomes, sync
from tests.core.test_dapr_component_manifests import STATESTORE
from tests.core.test_job_manifests import SCHEDULED
from tests.engines.test_dapr_components import SCOPED_APPS, build  # noqa: F401  (fixtures)


def test_an_aca_target_runs_one_engine_per_kind_and_aks_keeps_its_own(aca, repo):
    settings = make_settings(str(repo.path), aca)
    engine = engine_for(settings, settings.default_target())
    assert isinstance(engine, TargetEngine) and list(engine.engines) == list(ENGINES["aca"])
    assert isinstance(engine.engines["App"], ContainerAppsEngine)
    aks = Target(name="k", path="k", subscription_id="s", resource_group="g", type="aks", cluster="c")
    assert isinstance(engine_for(settings, aks), AksEngine)


def test_each_kind_engine_gets_only_its_objects_and_progress_counts_across_all(repo, aca, build):  # noqa: F811
    repo.write("apps/apps.yaml", SCOPED_APPS)
    repo.write("apps/job.yaml", yaml.safe_dump(SCHEDULED, sort_keys=False))
    repo.write("apps/dapr.yaml", yaml.safe_dump(STATESTORE, sort_keys=False))
    repo.commit()
    reconciler = build()
    target = reconciler.targets(reconciler.source.head())[0][0]
    engine = reconciler.engine(target)
    seen: dict[str, list[str]] = {}
    for kind, kind_engine in engine.engines.items():
        original = kind_engine.plan

        def spy(revision, desired, problems, *, _kind=kind, _plan=original, **kw):
            seen[_kind] = sorted(o.key for o in desired)
            return _plan(revision, desired, problems, **kw)
        kind_engine.plan = spy
    calls: list[tuple[int, int, str]] = []
    result = reconciler.reconcile(target, reconciler.source.head(),
                                  progress=lambda done, total, outcome: calls.append((done, total, outcome.app)))
    assert seen == {"App": ["container-app-1", "container-app-2"], "Job": ["Job/nightly-report"],
                    "DaprComponent": ["DaprComponent/reddog", "container-app-1", "container-app-2"]}
    assert [c[:2] for c in calls] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert calls[0][2] == "DaprComponent/reddog"                            # components before the apps that load them
    assert {o.app: o.action for o in result.outcomes} == {"DaprComponent/reddog": "created", "container-app-1": "created",
                                                          "container-app-2": "created", "Job/nightly-report": "created"}
    assert result.ok and result.prune == ""


def test_a_problem_degrades_every_kind_but_is_one_failed_outcome(repo, aca, driftless):
    bad = copy.deepcopy(SCHEDULED)
    bad["spec"]["replicaTimeout"] = 0
    repo.write("apps/job.yaml", yaml.safe_dump(bad, sort_keys=False))
    repo.write("apps/web.yaml", app_yaml("web"))
    repo.commit()
    result = sync(driftless(DRIFTLESS_PRUNE="true"))["default"]
    assert [o.app for o in result.outcomes if o.action == "failed"] == ["Job/nightly-report"]
    assert outcomes(result)["web"].action == "created" and result.degraded
    assert len(result.problems) == 1 and result.problems[0]["app"] == "Job/nightly-report"


def test_prune_verdicts_merge_per_kind():
    assert merge_prune({"App": "", "Job": "", "DaprComponent": ""}) == ""
    assert merge_prune({"App": "on", "Job": "", "DaprComponent": "on"}) == "on"
    assert merge_prune({"App": "on", "Job": "prune refused: it would delete 1 of 1 owned jobs (all)"}) == (
        "App: on; Job: prune refused: it would delete 1 of 1 owned jobs (all)")


def test_an_opted_in_job_follows_its_image_like_an_app(repo, aca):
    from shared.core.image_policy import REPO

    followed_job = copy.deepcopy(SCHEDULED)
    followed_job["metadata"]["annotations"] = {REPO: "contoso/report"}
    settings = make_settings(str(repo.path), aca)
    engine = engine_for(settings, settings.default_target())
    objects, problems = engine.load({"apps/job.yaml": yaml.safe_dump(followed_job).encode(),
                                     "apps/web.yaml": app_yaml("web").encode()})
    assert problems == []
    [item] = engine.followed(objects)
    assert (item.app, item.kind, item.name, item.image) == ("Job/nightly-report", "Job", "nightly-report",
                                                            "myacr.azurecr.io/report:1.2.0")


def test_a_kind_no_engine_handles_is_one_failed_outcome_that_names_the_kinds(repo, aca, driftless):
    repo.write("apps/web.yaml", app_yaml("web"))
    repo.write("apps/odd.yaml", "apiVersion: driftless.io/v1alpha1\nkind: CronTab\nmetadata:\n  name: odd\n")
    repo.commit()
    result = sync(driftless())["default"]
    odd = outcomes(result)["CronTab/odd"]
    assert odd.action == "failed" and "unsupported kind 'CronTab'; allowed here: App, DaprComponent, Job" in \
        odd.reason.replace("Job, Project", "Job")                              # (SynosCD's Project, when read)
    assert outcomes(result)["web"].action == "created" and result.degraded
