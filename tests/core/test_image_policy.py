"""Image updates without I/O: the text patch, semver ranges, image references, annotation validation, jobs."""
from __future__ import annotations

import pytest

from shared.adapters.registry import is_acr, parse_image, secret_name
from shared.core import semver
from shared.core.image_policy import APP_CONTAINERS, WORKLOAD_CONTAINERS
from shared.core.jobs import BadJob
from shared.core.kube_manifests import load_objects
from shared.core.manifests import load_apps
from shared.core.yaml_patch import PatchError, set_image
from shared.services.image_updates import (
    ImageJob,
    new_image_job,
    parse_image_job,
    retry_delay,
)

APP = """\
# the web front end
apiVersion: driftless.io/v1alpha1
kind: App
metadata:
  name: web   # Container App name
  annotations:
    driftless.io/image-repo: contoso/web
    driftless.io/image-container: web
spec:
  containers:
    - name: sidecar
      image: "myacr.azurecr.io/sidecar:1.0"   # not ours
    - image: 'myacr.azurecr.io/web:0123456'  # quoted, image before name
      name: web
      cpu: 0.25
      memory: 0.5Gi
---
apiVersion: driftless.io/v1alpha1
kind: App
metadata: {name: api}
spec:
  containers: [{name: api, image: myacr.azurecr.io/web:0123456}]
"""


def is_app(name):
    return lambda d: isinstance(d, dict) and d.get("kind") == "App" and d["metadata"]["name"] == name


def test_the_patch_changes_one_line_and_keeps_comments_quotes_order_and_other_documents():
    patched, old = set_image(APP, is_app("web"), APP_CONTAINERS, "web", "myacr.azurecr.io/web:89abcde")
    assert old == "myacr.azurecr.io/web:0123456"
    before, after = APP.encode().splitlines(keepends=True), patched.encode().splitlines(keepends=True)
    changed = [i for i, (a, b) in enumerate(zip(before, after)) if a != b]
    assert len(before) == len(after) and changed == [12]
    assert after[12] == b"    - image: 'myacr.azurecr.io/web:89abcde'  # quoted, image before name\n"
    assert b"".join(before[:12] + before[13:]) == b"".join(after[:12] + after[13:])


def test_only_the_named_container_of_the_named_document_changes_even_in_flow_style():
    patched, _ = set_image(APP, is_app("api"), APP_CONTAINERS, "api", "myacr.azurecr.io/web:1.2.3")
    assert patched.count("0123456") == 1 and patched.endswith("[{name: api, image: myacr.azurecr.io/web:1.2.3}]\n")
    crlf = APP.replace("\n", "\r\n")
    patched, _ = set_image(crlf, is_app("web"), APP_CONTAINERS, "web", "myacr.azurecr.io/web:x")
    assert patched == crlf.replace("'myacr.azurecr.io/web:0123456'", "'myacr.azurecr.io/web:x'")


def test_no_matching_container_or_an_unsafe_edit_is_refused():
    with pytest.raises(PatchError, match=r"no container 'worker'.*sidecar \(myacr.azurecr.io/sidecar:1.0\)"):
        set_image(APP, is_app("web"), APP_CONTAINERS, "worker", "x:1")
    anchored = ("kind: App\nmetadata: {name: web}\nspec:\n  containers:\n    - {name: a, image: &img nginx:1}\n"
                "    - {name: b, image: *img}\n")
    with pytest.raises(PatchError, match="more than that image"):
        set_image(anchored, is_app("web"), APP_CONTAINERS, "b", "nginx:2")
    assert set_image(APP, is_app("web"), APP_CONTAINERS, "web", "myacr.azurecr.io/web:0123456")[0] == APP


def test_cronjob_containers_are_found_at_their_path():
    text = ("apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: nightly}\nspec:\n  schedule: '@daily'\n"
            "  jobTemplate:\n    spec:\n      template:\n        spec:\n          containers:\n"
            "          - name: job\n            image: ghcr.io/contoso/job:v1  # nightly\n")
    patched, _ = set_image(text, lambda d: d["kind"] == "CronJob", WORKLOAD_CONTAINERS["CronJob"], "job",
                           "ghcr.io/contoso/job:v2")
    assert patched == text.replace("job:v1", "job:v2")


@pytest.mark.parametrize("range_, prerelease, best", [
    ("^1.4", False, "v1.9.0"),
    ("^1.4", True, "1.10.0-rc.1"),
    (">=1.0.0 <2.0.0", False, "v1.9.0"),
    ("~1.4.2", False, "1.4.10"),
    ("1.x || >=3", False, "3.0.0"),
    ("^0.2", False, "0.2.5"),
    ("<1", False, "0.3.0"),
    ("<0.2", False, None),
])
def test_semver_picks_the_highest_matching_tag(range_, prerelease, best):
    tags = ["latest", "1.3.9", "1.4.1", "1.4.2", "1.4.10", "v1.9.0", "1.10.0-rc.1", "2.0.0-beta", "3.0.0",
            "0.2.5", "0.3.0", "sha-0123456"]
    assert semver.parse_range(range_).highest(tags, prerelease=prerelease) == best


def test_semver_precedence_and_bad_ranges():
    ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1",
               "1.0.0"]
    assert sorted(ordered[::-1], key=lambda t: semver.parse(t).key()) == ordered
    with pytest.raises(semver.RangeError, match="'banana' is not a version comparator"):
        semver.parse_range(">=1 banana")


@pytest.mark.parametrize("text, host, repository, tag, written", [
    ("nginx", "registry-1.docker.io", "library/nginx", None, "nginx:T"),
    ("nginx:1.27", "registry-1.docker.io", "library/nginx", "1.27", "nginx:T"),
    ("kainlite/gitops-operator:abc", "registry-1.docker.io", "kainlite/gitops-operator", "abc",
     "kainlite/gitops-operator:T"),
    ("docker.io/library/nginx:1", "registry-1.docker.io", "library/nginx", "1", "docker.io/library/nginx:T"),
    ("ghcr.io/kainlite/gitops-operator:abc", "ghcr.io", "kainlite/gitops-operator", "abc",
     "ghcr.io/kainlite/gitops-operator:T"),
    ("localhost:5000/team/web:1.0", "localhost:5000", "team/web", "1.0", "localhost:5000/team/web:T"),
    ("registry.example.com:8443/a/b/web@sha256:" + "a" * 64, "registry.example.com:8443", "a/b/web", None,
     "registry.example.com:8443/a/b/web:T"),
])
def test_image_references_name_the_right_registry_and_repository(text, host, repository, tag, written):
    ref = parse_image(text)
    assert (ref.api_host, ref.repository, ref.tag, ref.with_tag("T")) == (host, repository, tag, written)


def test_registry_helpers():
    assert parse_image("myacr.azurecr.io/web@sha256:" + "b" * 64).version == "sha256:" + "b" * 64
    assert is_acr("myacr.azurecr.io") and is_acr("contoso.azurecr.io:8443") and not is_acr("ghcr.io")
    assert secret_name("localhost:5000") == "driftless-registry-localhost-5000"
    assert secret_name("ghcr.io") == "driftless-registry-ghcr-io"
    with pytest.raises(ValueError, match="is not a valid image reference: the repository name must be lowercase"):
        parse_image("Bad/Upper:1")


def test_image_annotations_are_validated_with_file_line_and_field():
    text = APP.replace("driftless.io/image-container: web", "driftless.io/image-container: nope\n"
                       "    driftless.io/image-tag: semver:^banana\n    driftless.io/image-pin: 'yes'\n"
                       "    driftless.io/image-colour: blue")
    apps, problems = load_apps({"apps/web.yaml": text.encode()})
    assert [a.name for a in apps] == ["api"]
    shown = sorted(str(p) for p in problems)
    assert any(s.startswith("apps/web.yaml:8: metadata.annotations.driftless.io/image-container: "
                            "no container named 'nope'; containers: sidecar, web") for s in shown), shown
    assert any(":9: metadata.annotations.driftless.io/image-tag: '^banana' is not a version" in s
               for s in shown), shown
    assert any(":10: metadata.annotations.driftless.io/image-pin: must be \"true\" or \"false\"" in s
               for s in shown), shown
    assert any(":11: metadata.annotations.driftless.io/image-colour: unknown image annotation" in s
               for s in shown), shown
    several = APP.replace("    driftless.io/image-container: web\n", "")
    problems = load_apps({"a.yaml": several.encode()})[1]
    assert [p.message for p in problems] == ["is required when there are several containers (sidecar, web)"]
    valid, problems = load_apps({"a.yaml": APP.encode()})
    assert not problems and {a.name: a for a in valid}["web"].annotations == {"driftless.io/image-repo": "contoso/web",
                                                     "driftless.io/image-container": "web"}


def test_kubernetes_workload_annotations_are_validated_too():
    deployment = ("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  annotations:\n"
                  "    driftless.io/image-tag: sha-short\n    driftless.io/image-pin: true\n"
                  "spec:\n  template:\n    spec:\n      containers: [{name: web, image: nginx:1}]\n"
                  "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  annotations:\n"
                  "    driftless.io/image-repo: contoso/web\n")
    objects, problems = load_objects({"k8s/web.yaml": deployment.encode()}, namespace="default")
    assert objects == []
    assert [str(p) for p in sorted(problems, key=lambda p: p.line)] == [
        "k8s/web.yaml:5: metadata.annotations.driftless.io/image-repo: is required with "
        "driftless.io/image-tag: sha-short (the app repository whose commits name the images, as owner/name)",
        "k8s/web.yaml:7: metadata.annotations.driftless.io/image-pin: must be a non-empty string "
        "(quote it: 'true'), got bool True",
        "k8s/web.yaml:17: metadata.annotations: image annotations apply only to an App or a "
        "Deployment, StatefulSet, DaemonSet, Job or CronJob"]


def test_jobs_round_trip_and_bad_ones_are_refused():
    job = new_image_job("default", "Deployment/default/web", "push", sha="a" * 40, delivery="d1")
    assert parse_image_job(job.to_json()) == job
    again = parse_image_job(job.retried().to_json())
    assert (again.attempt, again.reason, again.id) == (2, "retry", job.id)
    for body, message in (('{"v": 2}', "schema"), (job.to_json().replace('"attempt": 1', '"attempt": 0'), "attempt"),
                          (job.to_json().replace('"push"', '"manual"'), "reason")):
        with pytest.raises(BadJob, match=message):
            parse_image_job(body)
    assert [retry_delay(n) for n in range(1, 9)] == [10, 20, 40, 80, 160, 320, 600, 600]
    assert isinstance(job, ImageJob)
