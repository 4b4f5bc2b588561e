"""SynosCD's `Project`: SynosCD's own example is accepted unchanged, `defaults` merge into the Apps it covers (the
App wins), `policy` is enforced at validation with located problems naming the Project and the rule, and the
per-file cache re-reads exactly the Apps a changed Project covers."""
from __future__ import annotations

from textwrap import dedent

import pytest

from shared.core.aca_kinds import ACA_READERS
from shared.core.container_app import TAG_OWNER, TAG_TARGET
from shared.core.manifests import FileCache, Target, load_objects
from shared.core.plan import make_plan
from tests.conftest import GROUP, SUBSCRIPTION, app_yaml, outcomes, sync
from tests.core.test_synoscd_dialect import EXAMPLE_APP, SEED_APP

EXAMPLE_PROJECT = """\
apiVersion: synoscd.io/v1alpha1
kind: Project
metadata:
  name: backend-services
  namespace: production
spec:
  apps:
    - my-api-service
    - worker-job
  defaults:
    ingress:
      enabled: false
    scale:
      minReplicas: 1
      maxReplicas: 5
  policy:
    allowedRegistries:
      - myacr.azurecr.io
    maxMemory: 4Gi
    maxCpu: 4.0
"""
"""SynosCD's examples/project-example.yaml, verbatim."""

EXAMPLE_WORKER = """\
apiVersion: synoscd.io/v1alpha1
kind: App
metadata:
  name: worker-job
  namespace: production
  labels:
    synoscd.io/managed: "true"
    team: backend
spec:
  containers:
    - name: worker
      image: myacr.azurecr.io/worker:latest
      cpu: 1.0
      memory: 2Gi
  environment:
    - name: QUEUE_NAME
      value: default-queue
    - name: MAX_WORKERS
      value: "5"
  scale:
    minReplicas: 1
    maxReplicas: 3
  suspend: false
"""
"""SynosCD's examples/worker-example.yaml, verbatim."""


def load(files: dict[str, str], cache: FileCache | None = None):
    return load_objects({name: dedent(text).encode() for name, text in files.items()}, ACA_READERS, cache)


def project(spec: str, name: str = "team", api: str = "driftless.io/v1alpha1") -> str:
    """A Project manifest; `spec` is its spec block, indented by two spaces."""
    return f"apiVersion: {api}\nkind: Project\nmetadata:\n  name: {name}\nspec:\n{spec}"


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


# --- SynosCD's own example ------------------------------------------------------------------------
def test_synoscd_example_project_and_apps_are_accepted_unchanged():
    apps, problems = load({"apps/project-example.yaml": EXAMPLE_PROJECT, "apps/app-example.yaml": EXAMPLE_APP,
                           "apps/worker-example.yaml": EXAMPLE_WORKER, "apps/demo.yaml": SEED_APP})
    assert problems == []
    by_name = {a.name: a for a in apps}
    assert sorted(by_name) == ["demo-app", "my-api-service", "worker-job"]     # the Project is not an app
    assert by_name["worker-job"].ingress.enabled is False                          # from the Project's defaults
    assert (by_name["worker-job"].scale.min_replicas, by_name["worker-job"].scale.max_replicas) == (1, 3)
    api = by_name["my-api-service"]                                                # the App's own values win
    assert api.ingress.enabled and api.ingress.target_port == 8080
    assert (api.scale.min_replicas, api.scale.max_replicas) == (2, 10)
    assert by_name["demo-app"].scale.max_replicas == 3                             # not listed: untouched


def test_driftless_api_version_has_the_same_kind():
    apps, problems = load({"apps/p.yaml": project("  defaults: {scale: {maxReplicas: 4}}\n"),
                           "apps/web.yaml": app_yaml("web")})
    assert problems == [] and apps[0].scale.max_replicas == 4


def test_a_repository_with_synoscd_example_project_is_not_degraded_and_prunes(repo, aca, driftless):
    repo.write("apps/project-example.yaml", EXAMPLE_PROJECT)
    repo.write("apps/worker-example.yaml", EXAMPLE_WORKER)
    for name in ("alpha", "bravo", "charlie"):
        repo.write(f"apps/{name}.yaml", app_yaml(name))
    repo.write("apps/app-example.yaml", EXAMPLE_APP)
    repo.commit()
    first = sync(driftless(DRIFTLESS_PRUNE="true"))["default"]
    assert not first.degraded and first.problems == []
    assert outcomes(first)["worker-job"].action == "created"
    repo.remove("apps/charlie.yaml")
    repo.commit()
    second = sync(driftless(DRIFTLESS_PRUNE="true"))["default"]
    assert not second.degraded and second.prune == "on"
    assert outcomes(second)["charlie"].action == "deleted" and aca.app(SUBSCRIPTION, GROUP, "charlie") is None


# --- defaults --------------------------------------------------------------------------------------
def test_defaults_reach_listed_apps_only():
    apps, problems = load({"apps/p.yaml": project("  apps: [web]\n  defaults: {scale: {maxReplicas: 4}}\n"),
                           "apps/web.yaml": app_yaml("web"), "apps/api.yaml": app_yaml("api")})
    assert problems == []
    assert {a.name: a.scale for a in apps}["api"] is None
    assert {a.name: a.scale for a in apps}["web"].max_replicas == 4


def test_a_project_listing_none_covers_every_app_of_its_folder_but_not_subfolders():
    apps, problems = load({"apps/p.yaml": project("  defaults: {scale: {maxReplicas: 4}}\n"),
                           "apps/web.yaml": app_yaml("web"), "apps/api.yaml": app_yaml("api"),
                           "apps/team/deep.yaml": app_yaml("deep"), "other/far.yaml": app_yaml("far")})
    assert problems == []
    scales = {a.name: a.scale.max_replicas if a.scale else None for a in apps}
    assert scales == {"web": 4, "api": 4, "deep": None, "far": None}


def test_mappings_merge_at_every_depth_and_the_app_wins():
    defaults = "  defaults:\n    scale: {minReplicas: 1, maxReplicas: 5}\n    ingress: {external: false, targetPort: 8080}\n"
    apps, problems = load({"apps/p.yaml": project(defaults),
                           "apps/web.yaml": app_yaml("web", extra="  scale: {maxReplicas: 3}\n  ingress: {external: true}\n")})
    assert problems == []
    web = apps[0]
    assert (web.scale.min_replicas, web.scale.max_replicas) == (1, 3)
    assert (web.ingress.external, web.ingress.target_port) == (True, 8080)


def test_a_list_is_taken_whole_from_the_app_and_null_counts_as_not_set():
    defaults = ("  defaults:\n    environment:\n      - {name: REGION, value: weu}\n      - {name: TIER, value: gold}\n"
                "    scale: {maxReplicas: 2}\n")
    synos = ("apiVersion: synoscd.io/v1alpha1\nkind: App\nmetadata: {name: NAME, labels: {synoscd.io/managed: 'true'}}\n"
             "spec:\n  containers: [{name: c, image: nginx}]\n")
    apps, problems = load({"apps/p.yaml": project(defaults, api="synoscd.io/v1alpha1"),
                           "apps/own.yaml": synos.replace("NAME", "own") + "  environment: [{name: ONLY, value: x}]\n",
                           "apps/bare.yaml": synos.replace("NAME", "bare") + "  scale:\n"})
    assert problems == []
    env = {a.name: [e.name for e in a.containers[0].env] for a in apps}
    assert env == {"own": ["ONLY"], "bare": ["REGION", "TIER"]}
    assert {a.name: a.scale.max_replicas for a in apps}["bare"] == 2


def test_a_bad_default_is_reported_at_the_project_line_and_the_app_is_not_applied():
    text = project("  defaults:\n    scale:\n      maxReplicas: lots\n")
    apps, problems = load({"apps/p.yaml": text, "apps/web.yaml": app_yaml("web"),
                           "apps/api.yaml": app_yaml("api", extra="  scale: {maxReplicas: 2}\n")})
    assert [a.name for a in apps] == ["api"]                              # api sets its own value
    [problem] = problems
    assert (problem.file, problem.line, problem.field) == ("apps/p.yaml", line_of(text, "maxReplicas: lots"),
                                                           "spec.defaults.scale.maxReplicas")
    assert problem.app == "web" and "Project 'team'" in problem.message and "apps/web.yaml" in problem.message


# --- policy ----------------------------------------------------------------------------------------
PROBES = "      probes:\n        - {type: Liveness, httpGet: {path: /healthz, port: 80}}\n"
VIOLATIONS = [
    # rule, policy, App extra (under spec) or container change, field, needle in the App file
    ("allowedRegistries", "allowedRegistries: [myacr.azurecr.io]", "", "spec.containers[0].image", "image: nginx"),
    ("maxCpu", "maxCpu: 0.25", "", "spec.containers[0].cpu", "cpu: 0.5"),
    ("maxMemory", "maxMemory: 512Mi", "", "spec.containers[0].memory", "memory: 1Gi"),
    ("requiredProbes", "requiredProbes: [Liveness, Readiness]", PROBES, "spec.containers[0].probes", "probes:"),
    ("maxReplicas", "maxReplicas: 5", "  scale: {maxReplicas: 8}\n", "spec.scale.maxReplicas", "maxReplicas: 8"),
    ("maxReplicas", "maxReplicas: 5", "", "spec.scale.maxReplicas", "spec:"),
    ("externalIngress", "externalIngress: false", "  ingress: {external: true, targetPort: 80}\n",
     "spec.ingress.external", "external: true"),
    ("allowedWorkloadProfiles", "allowedWorkloadProfiles: [dedicated-d4]", "", "spec.workloadProfileName", "spec:"),
]


@pytest.mark.parametrize("rule, policy, extra, field, needle", VIOLATIONS,
                         ids=[f"{v[0]}-{i}" for i, v in enumerate(VIOLATIONS)])
def test_each_policy_rule_broken_is_a_located_problem_naming_the_project_and_rule(rule, policy, extra, field, needle):
    text = project(f"  policy:\n    {policy}\n", name="guarded")
    app = app_yaml("web")
    app = app.replace("memory: 1Gi\n", "memory: 1Gi\n" + extra) if extra.startswith("      probes") else app + extra
    apps, problems = load({"apps/p.yaml": text, "apps/web.yaml": app})
    assert apps == [] and len(problems) == 1, [str(p) for p in problems]
    [problem] = problems
    assert (problem.file, problem.field, problem.app) == ("apps/web.yaml", field, "web")
    assert problem.line == line_of(app, needle)
    assert f"Project 'guarded' policy {rule} (apps/p.yaml:{line_of(text, rule)})" in problem.message


def test_apps_keeping_the_policy_pass():
    policy = ("  policy:\n    allowedRegistries: [docker.io, myacr.azurecr.io]\n    maxCpu: 0.5\n    maxMemory: 1Gi\n"
              "    requiredProbes: [liveness]\n    maxReplicas: 5\n    externalIngress: false\n"
              "    allowedWorkloadProfiles: [Consumption]\n")
    app = app_yaml("web").replace("memory: 1Gi\n", "memory: 1Gi\n" + PROBES) + "  scale: {maxReplicas: 5}\n" \
        "  ingress: {targetPort: 80}\n"
    apps, problems = load({"apps/p.yaml": project(policy), "apps/web.yaml": app,
                           "apps/acr.yaml": app.replace("web", "acr").replace("image: nginx:1.27", "image: MyAcr.azurecr.io/x:1")})
    assert problems == [] and sorted(a.name for a in apps) == ["acr", "web"]


def test_a_default_that_breaks_the_policy_is_reported_at_the_default():
    text = project("  defaults:\n    ingress: {external: true, targetPort: 80}\n  policy:\n    externalIngress: false\n")
    apps, problems = load({"apps/p.yaml": text, "apps/web.yaml": app_yaml("web")})
    [problem] = problems
    assert apps == [] and (problem.file, problem.field) == ("apps/p.yaml", "spec.defaults.ingress.external")
    assert problem.line == line_of(text, "ingress:") and problem.app == "web"
    assert "policy externalIngress" in problem.message


def test_a_policy_violation_is_failed_and_never_deleted():
    apps, problems = load({"apps/p.yaml": project("  policy: {maxCpu: 0.25}\n"), "apps/web.yaml": app_yaml("web")})
    target = Target(name="default", path="apps", subscription_id=SUBSCRIPTION, resource_group="rg",
                    environment="env", prune=True, allow_empty=True)
    live = [{"name": "web", "tags": {TAG_OWNER: "driftless", TAG_TARGET: "default"},
             "properties": {"managedEnvironmentId": target.environment_id}}]
    plan = make_plan(target=target, instance="driftless", apps=apps, problems=problems, live=live)
    assert [(s.app, s.kind) for s in plan.steps] == [("web", "failed")]
    assert "policy maxCpu" in plan.steps[0].reason and plan.degraded


def test_a_bad_policy_is_a_problem_of_the_project_and_holds_its_apps():
    text = project("  policy:\n    maxCpu: lots\n    allowedRegistries: [https://myacr.azurecr.io]\n    maxPods: 3\n")
    apps, problems = load({"apps/p.yaml": text, "apps/web.yaml": app_yaml("web")})
    assert apps == []
    by_field = {p.field: p for p in problems}
    assert set(by_field) == {"spec.policy.maxCpu", "spec.policy.allowedRegistries[0]", "spec.policy.maxPods",
                             "metadata.name"}
    assert all(by_field[f].app == "Project/team" for f in by_field if f.startswith("spec."))
    held = by_field["metadata.name"]
    assert (held.file, held.app, held.line) == ("apps/web.yaml", "web", 4) and "Project 'team'" in held.message


# --- which Apps a Project claims -------------------------------------------------------------------
def test_a_listed_app_that_does_not_exist_is_a_problem_of_the_project():
    text = project("  apps: [web, ghost, deep]\n")
    apps, problems = load({"apps/p.yaml": text, "apps/web.yaml": app_yaml("web"),
                           "apps/sub/deep.yaml": app_yaml("deep")})
    assert sorted(a.name for a in apps) == ["deep", "web"]
    by_field = {p.field: p for p in problems}
    assert set(by_field) == {"spec.apps[1]", "spec.apps[2]"}
    assert by_field["spec.apps[1]"].app == "Project/team" and by_field["spec.apps[1]"].line == line_of(text, "apps:")
    assert "App 'ghost' is listed, but no App of that name is in apps/" in by_field["spec.apps[1]"].message
    assert "apps/sub/deep.yaml" in by_field["spec.apps[2]"].message


def test_two_projects_claiming_one_app_is_a_problem_and_the_app_is_not_applied():
    apps, problems = load({"apps/a.yaml": project("  apps: [web]\n", name="one"),
                           "apps/b.yaml": project("", name="two").replace("spec:\n", "spec: {}\n"),
                           "apps/web.yaml": app_yaml("web")})
    assert apps == []
    assert sorted((p.file, p.field) for p in problems) == [("apps/a.yaml", "spec.apps[0]"), ("apps/b.yaml", "metadata.name")]
    assert all(p.app == "web" and "claimed by Project 'one'" in p.message and "Project 'two'" in p.message
               for p in problems)


def test_an_unreadable_file_that_may_hold_a_project_holds_the_apps_of_its_folder():
    apps, problems = load({"apps/p.yaml": "apiVersion: synoscd.io/v1alpha1\nkind: Project\nspec: {apps: [web\n",
                           "apps/web.yaml": app_yaml("web"), "other/api.yaml": app_yaml("api")})
    assert [a.name for a in apps] == ["api"]
    held = next(p for p in problems if p.app == "web")
    assert held.file == "apps/web.yaml" and "apps/p.yaml cannot be read" in held.message


def test_duplicate_project_names_and_unsupported_kinds_are_named():
    _, problems = load({"apps/a/p.yaml": project(""), "apps/b/p.yaml": project(""),
                           "apps/x.yaml": "apiVersion: driftless.io/v1alpha1\nkind: Projekt\nmetadata: {name: x}\n"})
    messages = [p.message for p in problems]
    assert sum("duplicate Project name 'team'" in m for m in messages) == 2
    assert any("allowed here:" in m and "Project" in m for m in messages)


# --- caching ---------------------------------------------------------------------------------------
def test_a_changed_project_re_reads_the_apps_it_covers_and_only_those():
    files = {f"apps/app-{i:03d}.yaml": app_yaml(f"app-{i:03d}") for i in range(300)}
    files["apps/other/elsewhere.yaml"] = app_yaml("elsewhere")
    files["apps/p.yaml"] = project("  apps: [app-000, app-001]\n  defaults: {scale: {maxReplicas: 4}}\n")
    cache = FileCache()
    apps, problems = load(files, cache)
    assert problems == [] and len(apps) == 301 and cache.misses == 302
    assert {a.name: a.scale for a in apps}["app-001"].max_replicas == 4

    load(files, cache)
    assert cache.misses == 302                                            # nothing new: nothing parsed

    files["apps/app-200.yaml"] = app_yaml("app-200", image="nginx:1.28")
    apps, _ = load(files, cache)
    assert cache.misses == 303                                            # one App file changed: one file parsed

    files["apps/p.yaml"] = project("  apps: [app-000, app-001]\n  defaults: {scale: {maxReplicas: 6}}\n")
    apps, problems = load(files, cache)
    assert problems == [] and {a.name: a.scale for a in apps}["app-001"].max_replicas == 6
    assert cache.misses == 303 + 3                                        # the Project and the two Apps it covers

    files["apps/p.yaml"] = project("  apps: [app-000, app-001]\n  policy: {maxCpu: 0.25}\n")
    apps, problems = load(files, cache)
    assert sorted(p.app for p in problems) == ["app-000", "app-001"] and len(apps) == 299


def test_a_held_app_still_counts_as_a_duplicate_of_its_namesake_elsewhere():
    apps, problems = load({"apps/p.yaml": project("  policy: {maxPods: 3}\n"), "apps/web.yaml": app_yaml("web"),
                           "other/web.yaml": app_yaml("web")})
    assert apps == [] and sum("duplicate app name 'web'" in p.message for p in problems) == 2


def test_a_problem_of_an_app_value_merged_with_a_default_names_the_project():
    text = project("  defaults:\n    scale: {minReplicas: 5}\n")
    app = app_yaml("web", extra="  scale: {maxReplicas: 3}\n")
    apps, problems = load({"apps/p.yaml": text, "apps/web.yaml": app})
    [problem] = problems
    assert apps == [] and (problem.file, problem.field, problem.line) == ("apps/web.yaml", "spec.scale", line_of(app, "scale"))
    assert "minReplicas (5) is greater than maxReplicas (3)" in problem.message
    assert f"merged with the defaults of Project 'team', apps/p.yaml:{line_of(text, 'scale')}" in problem.message


def test_a_policy_rule_names_its_line_even_when_a_later_document_of_the_file_is_broken():
    from shared.core.aca_kinds import ACA_READERS
    from shared.core.manifests import load_objects

    app = (b"apiVersion: driftless.io/v1alpha1\nkind: App\nmetadata: {name: api}\nspec:\n  containers:\n"
           b"  - name: api\n    image: nginx:1.25\n    cpu: 0.5\n    memory: 1Gi\n")
    project = (b"apiVersion: driftless.io/v1alpha1\nkind: Project\nmetadata: {name: p}\nspec:\n"
               b"  policy: {allowedRegistries: [myacr.azurecr.io]}\n---\nkind: App\nmetadata: {name: x\n  bad: [\n")
    objects, problems = load_objects({"a/api.yaml": app, "a/p.yaml": project}, ACA_READERS)
    assert objects == []
    assert any("allowedRegistries (a/p.yaml:5)" in p.message for p in problems), [p.message for p in problems]
