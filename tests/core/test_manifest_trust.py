"""What a reviewer reads is what is applied: keys given twice, image references, env lists, clean
YAML error messages and failed counts. Pure core: manifests in, Apps/objects/Targets and Problems out."""
from __future__ import annotations

import textwrap

import pytest

from shared.core import image_reference
from shared.core.kube_manifests import load_objects
from shared.core.manifests import MAX_ENV, Problem, load_apps, load_targets
from shared.core.outcome import Outcome, PassResult
from tests.conftest import app_yaml


def dedent(text: str) -> bytes:
    return textwrap.dedent(text).encode()


def test_an_app_with_a_key_given_twice_is_refused_naming_both_lines_and_the_key_path():
    apps, problems = load_apps({"apps/web.yaml": dedent("""\
        apiVersion: driftless.io/v1alpha1
        kind: App
        metadata:
          name: web
        spec:
          containers:
            - name: web
              image: contoso.azurecr.io/web:1.0
              cpu: 0.5
              memory: 1Gi
              image: contoso.azurecr.io/web:evil
        """)})
    assert apps == []
    [problem] = problems
    assert (problem.field, problem.line, problem.document, problem.app) == ("spec.containers[0].image", 11, 1, "web")
    assert "first at apps/web.yaml:8, again at apps/web.yaml:11" in problem.message
    assert str(problem).startswith("apps/web.yaml:11:7: spec.containers[0].image: key 'image' is given twice")


def test_a_key_given_twice_refuses_only_its_own_document():
    text = app_yaml("good") + "---\n" + app_yaml("twice").replace("metadata:\n", "metadata:\n  labels: {}\n  labels: {a: b}\n")
    apps, problems = load_apps({"apps/two.yaml": text.encode()})
    assert [a.name for a in apps] == ["good"]
    assert [(p.field, p.document, p.app) for p in problems] == [("metadata.labels", 2, "twice")]


def test_targets_and_kubernetes_objects_refuse_keys_given_twice_too():
    targets, problems = load_targets({"targets/prod.yaml": dedent("""\
        apiVersion: driftless.io/v1alpha1
        kind: Target
        metadata: {name: prod}
        spec:
          type: aca
          path: envs/prod
          resourceGroup: rg-apps
          environment: env-prod
          path: envs/other
        """)}, default_subscription="00000000-0000-0000-0000-000000000000")
    assert targets == [] and [(p.field, p.line) for p in problems] == [("spec.path", 9)]
    assert "first at targets/prod.yaml:6" in problems[0].message
    objects, problems = load_objects({"k8s/web.yaml": dedent("""\
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: web}
        data:
          mode: safe
          mode: unsafe
        """)}, namespace="default")
    assert objects == [] and [(p.field, p.line, p.app) for p in problems] == [("data.mode", 6, "ConfigMap/default/web")]


def test_merge_keys_and_the_same_key_in_different_mappings_are_fine():
    apps, problems = load_apps({"apps/a.yaml": (app_yaml("api") + "  scale: &s {minReplicas: 1}\n").encode(),
                                "apps/b.yaml": dedent("""\
        apiVersion: driftless.io/v1alpha1
        kind: App
        metadata: {name: bb}
        spec:
          containers:
            - {name: one, image: nginx:1.27, cpu: 0.25, memory: 0.5Gi}
            - {name: two, image: nginx:1.27, cpu: 0.25, memory: 0.5Gi}
          scale:
            <<: {minReplicas: 0, maxReplicas: 3}
            maxReplicas: 5
        """)})
    assert problems == [] and {a.name: a.scale.max_replicas for a in apps} == {"api": 10, "bb": 5}


@pytest.mark.parametrize("image", [
    "nginx", "nginx:1.27", "library/nginx:latest", "docker.io/library/nginx:1.27-alpine",
    "mcr.microsoft.com/k8se/quickstart:latest", "contoso.azurecr.io:5000/team/web_api:v1.2.3",
    "localhost:5000/web@sha256:" + "a" * 64, "contoso.azurecr.io/web:1.0@sha512:" + "b" * 128,
    "[::1]:5000/web:1", "a" * 255,
], ids=lambda value: value[:40])
def test_valid_image_references_are_accepted(image):
    assert image_reference.problem(image) is None
    apps, problems = load_apps({"apps/a.yaml": app_yaml("api", image=f'"{image}"').encode()})
    assert problems == [] and apps[0].containers[0].image == image


@pytest.mark.parametrize("image, says", [
    ("nginx\n", "surrounding spaces or line breaks"),
    ("nginx:1.27 ", "surrounding spaces or line breaks"),
    ("ngi nx:1", "[registry[:port]/]path[:tag][@digest]"),
    ("nginx;rm -rf /", "[registry[:port]/]path[:tag][@digest]"),
    ("Contoso/Web:1", "must be lowercase"),
    ("web:-tag", "[registry[:port]/]path[:tag][@digest]"),
    ("web:" + "t" * 129, "[registry[:port]/]path[:tag][@digest]"),
    ("a" * 256, "the name has 256 characters, at most 255"),
    ("web@sha256:" + "A" * 64, "must be lowercase"),
    ("web@sha256:" + "a" * 63, "a sha256 digest has 64 hex digits, this one has 63"),
    ("web@md5:" + "a" * 32, "digest algorithm 'md5' is not supported"),
    ("x" * 10_000_000, "10000000 characters, at most 520"),
], ids=lambda value: repr(value[:24]) if len(value) > 24 else None)
def test_invalid_image_references_are_refused_with_the_reason(image, says):
    apps, problems = load_apps({"apps/a.yaml": app_yaml("api", image=repr(image).replace("'", '"')).encode()})
    assert apps == []
    [problem] = problems
    assert problem.field == "spec.containers[0].image" and problem.line == 8 and says in problem.message
    assert len(problem.message) < 600                       # a 10 MB value is never echoed whole


def test_an_env_name_set_twice_in_one_container_is_refused():
    apps, problems = load_apps({"apps/a.yaml": app_yaml("api", extra="").replace(
        "memory: 1Gi\n", "memory: 1Gi\n      env:\n        - {name: MODE, value: safe}\n"
                         "        - {name: OTHER, value: x}\n        - {name: MODE, value: unsafe}\n").encode()})
    assert apps == []
    assert [(p.field, p.line) for p in problems] == [("spec.containers[0].env[2].name", 14)]
    assert "'MODE' is already set at spec.containers[0].env[0]" in problems[0].message


def test_an_absurd_number_of_env_vars_is_refused_in_one_problem():
    env = "".join(f"        - {{name: V{i}, value: x}}\n" for i in range(10_000))
    apps, problems = load_apps({"apps/a.yaml": app_yaml("api").replace("memory: 1Gi\n", "memory: 1Gi\n      env:\n" + env)
                                .encode()})
    assert apps == []
    assert [(p.field, p.message.split(";")[0]) for p in problems] == [
        ("spec.containers[0].env", "has 10000 variables")]
    assert f"at most {MAX_ENV} per list" in problems[0].message
    fine = "".join(f"        - {{name: V{i}, value: x}}\n" for i in range(MAX_ENV))
    apps, problems = load_apps({"apps/a.yaml": app_yaml("api").replace("memory: 1Gi\n", "memory: 1Gi\n      env:\n" + fine)
                                .encode()})
    assert problems == [] and len(apps[0].containers[0].env) == MAX_ENV


def test_a_synoscd_app_with_a_shared_env_set_twice_is_refused():
    apps, problems = load_apps({"apps/legacy.yaml": dedent("""\
        apiVersion: synoscd.io/v1alpha1
        kind: App
        metadata:
          name: legacy
          labels: {synoscd.io/managed: "true"}
        spec:
          environment:
            - {name: MODE, value: a}
            - {name: MODE, value: b}
          containers:
            - {name: api, image: contoso.azurecr.io/legacy:2.1}
        """)})
    assert apps == [] and [p.field for p in problems] == ["spec.environment[1].name"]


def test_a_name_with_a_trailing_line_break_is_refused():
    apps, problems = load_apps({"apps/a.yaml": app_yaml("api").replace("name: api\n", 'name: "api\\n"\n', 1).encode()})
    assert apps == [] and [p.field for p in problems] == ["metadata.name"]


@pytest.mark.parametrize("text, shown", [
    ("apiVersion: driftless.io/v1alpha1\nkind: App\nmetadata:\n  name: p-01\nspec:\n   containers: []\n  scale: {}\n",
     "apps/p-01.yaml:7:3: YAML syntax error: did not find expected key (while parsing a block mapping from line 1)"),
    ("metadata:\n  name: p-01\n  labels: a: b\n",
     "apps/p-01.yaml:3:12: YAML syntax error: mapping values are not allowed in this context"),
    ("spec:\n  containers:\n    - name: web\n      image:\n     cpu: 1\n",
     "apps/p-01.yaml:5:6: YAML syntax error: did not find expected '-' indicator "
     "(while parsing a block collection from line 3)"),
    ("a: \x07\n", "apps/p-01.yaml:1:4: YAML syntax error: control characters are not allowed"),
])
def test_a_yaml_syntax_error_reads_file_line_column_problem_and_context(text, shown):
    apps, problems = load_apps({"apps/p-01.yaml": text.encode()})
    assert apps == [] and [str(p) for p in problems] == [shown]


def test_a_value_yaml_cannot_build_is_a_problem_of_its_file_not_a_crash():
    apps, problems = load_apps({"apps/date.yaml": (app_yaml("api") + "  suspend: 2001-13-45\n").encode(),
                                "apps/good.yaml": app_yaml("good").encode()})
    assert [a.name for a in apps] == ["good"]
    assert [(p.file, p.document) for p in problems] == [("apps/date.yaml", 1)]
    assert problems[0].message.startswith("YAML value cannot be read: month must be in 1..12 (quote it")


def test_unreadable_files_count_as_failed_and_are_named():
    result = PassResult("default", "abc", False, "now",
                        outcomes=[Outcome("a", "unchanged"), Outcome("b", "failed", "invalid manifest")],
                        problems=[Problem("apps/p-01.yaml", "YAML syntax error: x", line=6).to_dict(),
                                  Problem("apps/b.yaml", "is required", "spec.containers", app="b").to_dict(),
                                  Problem("apps/p-01.yaml", "second problem", line=9).to_dict()])
    assert result.summary()["failed"] == 2 and result.summary()["unchanged"] == 1
    assert result.unreadable_files == ["apps/p-01.yaml"] and result.to_dict()["unreadable_files"] == ["apps/p-01.yaml"]


def test_a_problem_round_trips_through_its_dict_and_reads_cleanly():
    problem = Problem("apps/a.yaml", "is required", "spec.containers", document=2, line=5, app="a", column=3)
    assert Problem.from_dict(problem.to_dict()) == problem
    assert str(problem) == "apps/a.yaml:5:3: spec.containers: is required"
    assert str(Problem("apps/a.yaml", "duplicate app name", "metadata.name", document=2)) == \
        "apps/a.yaml (document 2): metadata.name: duplicate app name"
    assert str(Problem("apps/a.yaml", "is not UTF-8 text")) == "apps/a.yaml: is not UTF-8 text"
