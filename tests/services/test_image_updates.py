"""Image updates end to end: signed GitHub events -> `image-updates` (Azurite) -> worker -> registry check ->
one-line commit through the GitHub contents API, with the real function_app.py in the local runner.

GitHub (branches, Actions runs, contents) is devtools/ci_stub.py behind PyGithub; registries are
devtools/registry_stub.py over HTTPS (bearer challenge, or ACR's token exchange); the manifests repository
is a real Git repository read by dulwich, and its GitHub copy lives in the stub."""
from __future__ import annotations

import json
import socket
import uuid

import pytest
import requests

from devtools.ci_stub import CiStub, blob_sha
from devtools.registry_stub import RegistryStub
from shared.adapters import storage
from shared.adapters.registry import MANIFEST_TYPES, secret_name
from shared.core.jobs import now_iso
from shared.core.queues import IMAGE_QUEUE, POISON_SUFFIX, PUSH_QUEUE, RECONCILE_QUEUE
from shared.core.webhook import sign
from shared.services.image_updates import ImageJob
from tests.conftest import GIT_TOKEN, KEY, TOKEN, WEBHOOK_SECRET

APP_REPO, MANIFESTS = "contoso/web", "contoso/gitops"
OLD, NEW = "0" * 39 + "1", "2" * 40
REGISTRY_LOGIN = "robot:registry-pw-never-log-me"
PATH = "apps/web.yaml"


@pytest.fixture
def ci(stack, vault, monkeypatch):
    stub = CiStub(token=GIT_TOKEN).start()                 # refuses any other token than the Git token secret
    monkeypatch.setenv("DRIFTLESS_GITHUB_API_URL", stub.url)
    monkeypatch.setenv("DRIFTLESS_MANIFESTS_GITHUB_REPO", MANIFESTS)
    vault.set_secret("driftless-image-notify-url", f"{stub.url}/subscribers/slack")
    for name in (IMAGE_QUEUE, IMAGE_QUEUE + POISON_SUFFIX):
        storage.queue(name).clear_messages()
    stub.branches[(APP_REPO, "main")] = NEW
    yield stub
    stub.stop()


@pytest.fixture
def registry(stack, cert_dir, vault):
    stub = RegistryStub(cert_dir=cert_dir, credentials=REGISTRY_LOGIN).start()
    vault.set_secret(secret_name(stub.host), REGISTRY_LOGIN)
    yield stub
    stub.stop()


def web(image: str, annotations: str = "", sidecar: bool = False) -> str:
    side = "    - name: proxy\n      image: nginx:1.27\n      cpu: 0.25\n      memory: 0.5Gi\n" if sidecar else ""
    return ("# web: the storefront\napiVersion: driftless.io/v1alpha1\nkind: App\nmetadata:\n  name: web\n"
            "  annotations:\n    driftless.io/image-repo: contoso/web   # follow main\n" + annotations +
            "spec:\n  containers:\n" + side +
            f"    - name: web\n      image: \"{image}\"  # bumped by Driftless\n      cpu: 0.25\n      memory: 0.5Gi\n")


def publish(repo, ci, text: str, path: str = PATH) -> bytes:
    """Commit `text` to the manifests repository and mirror it into the GitHub stub."""
    repo.write(path, text)
    repo.commit()
    ci.files[(MANIFESTS, path)] = (repo.path / path).read_bytes()
    return ci.files[(MANIFESTS, path)]


def event(runner, name: str, payload: dict) -> requests.Response:
    body = json.dumps(payload).encode()
    headers = {"X-GitHub-Event": name, "X-GitHub-Delivery": str(uuid.uuid4()), "Content-Type": "application/json",
               "X-Hub-Signature-256": sign(WEBHOOK_SECRET, body)}
    return requests.post(f"{runner.url}/api/github/webhook", data=body, headers=headers, timeout=10)


def app_push(runner, *, repo: str = APP_REPO, ref: str = "refs/heads/main", path: str = "src/app.py"):
    return event(runner, "push", {"ref": ref, "after": NEW, "repository": {"full_name": repo},
                                  "commits": [{"id": NEW, "added": [], "modified": [path], "removed": []}]})


def queued(name: str) -> list[dict]:
    return [json.loads(m.content) for m in storage.queue(name).peek_messages(max_messages=32)]


def images(runner) -> list[dict]:
    reply = requests.get(f"{runner.url}/api/status", headers={"x-functions-key": KEY}, timeout=10)
    return reply.json()["images"]


def changed_lines(before: bytes, after: bytes) -> list[tuple[bytes, bytes]]:
    old, new = before.splitlines(keepends=True), after.splitlines(keepends=True)
    assert len(old) == len(new)
    return [(a, b) for a, b in zip(old, new) if a != b]


def test_an_app_push_enqueues_an_image_job_only_and_the_build_is_committed_as_one_line(
        stack, repo, ci, registry, capsys):
    before = publish(repo, ci, web(f"{registry.host}/contoso/web:{OLD}"))
    registry.push("contoso/web", OLD, NEW)
    reply = app_push(stack)
    assert reply.status_code == 202, reply.text
    assert [(j["target"], j["app"]) for j in reply.json()["jobs"]] == [("default", "web")]
    assert queued(RECONCILE_QUEUE) == queued(PUSH_QUEUE) == []
    assert [(j["app"], j["reason"], j["attempt"]) for j in queued(IMAGE_QUEUE)] == [("web", "push", 1)]
    stack.drain()
    [put] = ci.of("github_contents_put")
    assert put.path == f"/repos/{MANIFESTS}/contents/{PATH}"
    assert put.body["message"] == f"chore(image): web {OLD} -> {NEW}"
    assert put.body["branch"] == "main" and put.body["sha"] == blob_sha(before)
    after = ci.files[(MANIFESTS, PATH)]
    assert changed_lines(before, after) == [
        (f'      image: "{registry.host}/contoso/web:{OLD}"  # bumped by Driftless\n'.encode(),
         f'      image: "{registry.host}/contoso/web:{NEW}"  # bumped by Driftless\n'.encode())]
    [token] = registry.of("token")                     # the bearer challenge was answered once, with the login
    assert token.query["scope"] == ["repository:contoso/web:pull"] and token.headers["Authorization"].startswith("Basic")
    heads = [c for c in registry.of("manifest") if c.method == "HEAD"]
    assert heads[-1].path == f"/v2/contoso/web/manifests/{NEW}" and heads[-1].headers["Accept"] == MANIFEST_TYPES
    assert heads[-1].headers["Authorization"].startswith("Bearer stub-token-")
    [state] = images(stack)
    assert (state["app"], state["action"], state["from"], state["to"]) == ("web", "patched", OLD, NEW)
    assert state["commit"] and len(ci.of("subscriber")) == 1
    assert ci.of("subscriber")[0].body["text"].startswith(f"Driftless image update patched: default/web {OLD} -> {NEW}")
    from shared.cli import main

    capsys.readouterr()
    assert main(["get", "images", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["images"][0]["action"] == "patched"


def test_events_are_routed_by_repository_and_only_finished_successful_runs_count(stack, repo, ci, registry):
    publish(repo, ci, web(f"{registry.host}/contoso/web:{OLD}"))
    running = {"action": "in_progress", "repository": {"full_name": APP_REPO},
               "workflow_run": {"head_branch": "main", "head_sha": NEW, "status": "in_progress", "conclusion": None}}
    assert "ignored" in event(stack, "workflow_run", running).json()
    done = {**running, "action": "completed", "workflow_run": {**running["workflow_run"], "status": "completed",
                                                               "conclusion": "success"}}
    reply = event(stack, "workflow_run", done)
    assert reply.status_code == 202 and [j["reason"] for j in queued(IMAGE_QUEUE)] == ["workflow_run"]
    assert app_push(stack, ref="refs/heads/feature").json() == {"ignored": "no manifest follows contoso/web@feature"}
    assert app_push(stack, repo="contoso/other").status_code == 200
    manifests = app_push(stack, repo=MANIFESTS, path=PATH)   # the manifests repository still means reconcile
    assert manifests.status_code == 202 and len(queued(PUSH_QUEUE)) == 1
    assert len(queued(IMAGE_QUEUE)) == 1


def test_an_image_already_in_git_makes_no_commit(stack, repo, ci, registry):
    publish(repo, ci, web(f"{registry.host}/contoso/web:{NEW}"))
    app_push(stack)
    stack.drain()
    assert ci.of("github_contents_put") == [] and ci.of("github_contents_get") == []
    assert [(s["action"], s["from"], s["to"]) for s in images(stack)] == [("up_to_date", NEW, NEW)]


def test_a_container_missing_from_the_committed_file_fails_and_leaves_it_untouched(stack, repo, ci, registry):
    publish(repo, ci, web(f"{registry.host}/contoso/web:{OLD}"))
    renamed = ci.files[(MANIFESTS, PATH)].replace(b"- name: web", b"- name: storefront")
    ci.files[(MANIFESTS, PATH)] = renamed             # GitHub is ahead of the head the job read
    registry.push("contoso/web", NEW)
    app_push(stack)
    stack.drain()
    assert ci.of("github_contents_put") == [] and ci.files[(MANIFESTS, PATH)] == renamed
    [state] = images(stack)
    assert state["action"] == "failed" and "no container 'web'" in state["message"]
    assert f"storefront ({registry.host}/contoso/web:{OLD})" in state["message"]
    assert f"{registry.host}/contoso/web:{NEW}" in state["message"]


def test_a_running_build_defers_the_job_with_a_growing_delay_until_the_image_appears(
        stack, repo, ci, registry, monkeypatch):
    before = publish(repo, ci, web(f"{registry.host}/contoso/web:{OLD}"))
    ci.runs[NEW] = [{"name": "build", "status": "in_progress"}]
    client, sent = storage.queue(IMAGE_QUEUE), []
    original = client.send_message

    def spy(content, **kwargs):
        message = original(content, **kwargs)
        sent.append((json.loads(content), kwargs.get("visibility_timeout"), message))
        return message

    monkeypatch.setattr(client, "send_message", spy)
    app_push(stack)
    assert stack.pump_once() == 1
    (first, _, _), (retry, delay, message) = sent
    assert (first["attempt"], retry["attempt"], retry["id"], retry["reason"], delay) == (1, 2, first["id"], "retry", 10)
    assert client.get_queue_properties().approximate_message_count == 1 and queued(IMAGE_QUEUE) == []  # invisible
    assert ci.of("github_runs")[0].query["head_sha"] == [NEW] and ci.of("github_contents_put") == []
    client.update_message(message.id, message.pop_receipt, visibility_timeout=0)   # ... 10 s later
    assert stack.pump_once() == 1
    assert [(m["attempt"], d) for m, d, _ in sent[2:]] == [(3, 20)]
    registry.push("contoso/web", NEW)                  # the build pushed its image
    client.update_message(sent[-1][2].id, sent[-1][2].pop_receipt, visibility_timeout=0)
    stack.drain()
    assert len(sent) == 3 and images(stack)[0]["action"] == "patched"
    assert len(changed_lines(before, ci.files[(MANIFESTS, PATH)])) == 1


def test_a_build_that_keeps_running_fails_after_the_last_attempt(stack, repo, ci, registry):
    publish(repo, ci, web(f"{registry.host}/contoso/web:{OLD}"))
    ci.runs[NEW] = [{"name": "build", "status": "queued"}]
    storage.queue(IMAGE_QUEUE).send_message(ImageJob("default", "web", "retry", now_iso(), "j8", attempt=8).to_json())
    stack.drain()
    [state] = images(stack)
    assert state["action"] == "failed" and state["message"].startswith("image never appeared")
    assert queued(IMAGE_QUEUE) == []


@pytest.mark.parametrize("runs, reason", [
    ([{"name": "build", "status": "completed", "conclusion": "failure"}], "failed (build: failure)"),
    ([{"name": "build", "status": "completed", "conclusion": "cancelled"}], "failed (build: cancelled)"),
    ([], "no GitHub Actions run exists for 222222222222 in contoso/web"),
])
def test_a_failed_or_missing_build_fails_without_a_commit(stack, repo, ci, registry, runs, reason):
    publish(repo, ci, web(f"{registry.host}/contoso/web:{OLD}"))
    ci.runs[NEW] = runs
    app_push(stack)
    stack.drain()
    [state] = images(stack)
    assert state["action"] == "failed" and reason in state["message"], state
    assert ci.of("github_contents_put") == [] and queued(IMAGE_QUEUE) == []


def test_a_failed_run_on_the_second_page_of_runs_is_found_with_the_token_sent(stack, repo, ci, registry):
    publish(repo, ci, web(f"{registry.host}/contoso/web:{OLD}"))
    ci.runs[NEW] = [{"name": f"lint-{i}", "status": "completed", "conclusion": "success"} for i in range(34)]
    ci.runs[NEW].append({"name": "build", "status": "completed", "conclusion": "failure"})    # run 35: page 2
    app_push(stack)
    stack.drain()
    [state] = images(stack)
    assert state["action"] == "failed" and "failed (build: failure)" in state["message"]
    assert [c.query.get("page", ["1"])[0] for c in ci.of("github_runs")] == ["1", "2"]
    assert {c.headers.get("Authorization") for c in ci.calls if c.path.startswith("/repos/")} == {f"token {GIT_TOKEN}"}
    assert ci.of("github_contents_put") == []


def test_a_conflicting_commit_is_re_read_and_retried_and_a_failing_notification_does_not_matter(
        stack, repo, ci, registry, caplog):
    publish(repo, ci, web(f"{registry.host}/contoso/web:{OLD}"))
    registry.push("contoso/web", NEW)
    theirs = ci.files[(MANIFESTS, PATH)].replace(b"# web: the storefront", b"# web: the storefront (owned by team-a)")
    ci.interleave[(MANIFESTS, PATH)] = [theirs]         # someone commits just before our first PUT lands
    ci.failing["subscriber"] = 500
    app_push(stack)
    stack.drain()
    first, second = ci.of("github_contents_put")
    assert first.body["sha"] != second.body["sha"] == blob_sha(theirs)
    assert len(ci.of("github_contents_get")) == 2
    assert ci.files[(MANIFESTS, PATH)] == theirs.replace(OLD.encode(), NEW.encode())
    assert images(stack)[0]["action"] == "patched"
    assert "image notification to 127.0.0.1 answered HTTP 500" in caplog.text


def test_a_pinned_app_is_skipped_without_asking_anyone(stack, repo, ci, registry):
    publish(repo, ci, web(f"{registry.host}/contoso/web:{OLD}", '    driftless.io/image-pin: "true"\n'))
    registry.push("contoso/web", NEW)
    app_push(stack)
    stack.drain()
    assert [s["action"] for s in images(stack)] == ["skipped"] and "pinned" in images(stack)[0]["message"]
    assert registry.calls == [] and ci.of("github_branch") == [] and ci.of("github_contents_put") == []


@pytest.mark.parametrize("prerelease, wanted", [("false", "1.5.0"), ("true", "1.6.0-rc.1")])
def test_semver_takes_the_highest_matching_tag_across_pages(stack, repo, ci, cert_dir, vault, prerelease, wanted):
    registry = RegistryStub(cert_dir=cert_dir, auth="none", page_size=2).start()
    try:
        registry.push("team/web", "1.4.2", "1.5.0", "1.6.0-rc.1", "2.0.0", "latest")
        annotations = (f"    driftless.io/image-tag: semver:^1.4\n    driftless.io/image-prerelease: \"{prerelease}\"\n"
                       "    driftless.io/image-container: web\n")
        publish(repo, ci, web(f"{registry.host}/team/web:1.4.2", annotations, sidecar=True))
        stack.fire_timer("scheduled_image_updates")
        assert [j["reason"] for j in queued(IMAGE_QUEUE)] == ["timer"]
        stack.drain()
        assert len(registry.of("tags")) == 3
        [put] = ci.of("github_contents_put")
        assert put.body["message"] == f"chore(image): web 1.4.2 -> {wanted}"
        text = ci.files[(MANIFESTS, PATH)].decode()
        assert f"team/web:{wanted}\"" in text and "image: nginx:1.27" in text   # the sidecar is left alone
        assert ci.of("github_branch") == []
    finally:
        registry.stop()


def test_acr_is_reached_through_the_managed_identity_token_exchange(stack, repo, ci, cert_dir, monkeypatch):
    resolve = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **kw: resolve(
        "127.0.0.1" if host == "contoso.azurecr.io" else host, *a, **kw))
    registry = RegistryStub(cert_dir=cert_dir, auth="acr", entra_token=TOKEN, service="contoso.azurecr.io").start()
    try:
        registry.push("web", NEW)
        image = f"contoso.azurecr.io:{registry.port}/web"
        publish(repo, ci, web(f"{image}:{OLD}"))
        app_push(stack)
        stack.drain()
        [exchange], [token] = registry.of("exchange"), registry.of("oauth_token")
        assert exchange.form == {"grant_type": ["access_token"], "service": ["contoso.azurecr.io"],
                                 "access_token": [TOKEN]}
        assert token.form["grant_type"] == ["refresh_token"] and token.form["scope"] == ["repository:web:pull"]
        assert token.form["refresh_token"][0].startswith("acr-refresh-")
        assert [s["action"] for s in images(stack)] == ["patched"]
        assert f"{image}:{NEW}".encode() in ci.files[(MANIFESTS, PATH)]
    finally:
        registry.stop()


def test_a_deployment_under_an_aks_target_gets_only_its_named_container_updated(stack, repo, ci, registry):
    repo.write("targets/aks.yaml", "apiVersion: driftless.io/v1alpha1\nkind: Target\nmetadata: {name: aks}\n"
                                   "spec: {type: aks, path: k8s, resourceGroup: rg-aks, cluster: aks-prod}\n")
    deployment = ("apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\n"
                  "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\n  annotations:\n"
                  "    driftless.io/image-repo: contoso/web\n    driftless.io/image-tag: sha-short\n"
                  "    driftless.io/image-container: app\n"
                  "spec:\n  template:\n    spec:\n      containers:\n"
                  f"      - {{name: app, image: {registry.host}/contoso/web:{OLD[:7]}}}\n"
                  f"      - {{name: log, image: {registry.host}/contoso/web:{OLD[:7]}}}  # same image, not followed\n")
    before = publish(repo, ci, deployment, "k8s/web.yaml")
    registry.push("contoso/web", NEW[:7])
    app_push(stack)
    stack.drain()
    [put] = ci.of("github_contents_put")
    assert put.body["message"] == f"chore(image): Deployment/shop/web {OLD[:7]} -> {NEW[:7]}"
    assert changed_lines(before, ci.files[(MANIFESTS, "k8s/web.yaml")]) == [
        (f"      - {{name: app, image: {registry.host}/contoso/web:{OLD[:7]}}}\n".encode(),
         f"      - {{name: app, image: {registry.host}/contoso/web:{NEW[:7]}}}\n".encode())]
    [state] = images(stack)
    assert (state["target"], state["app"], state["action"]) == ("aks", "Deployment/shop/web", "patched")


def test_a_malformed_image_job_is_parked_at_once(stack, ci):
    storage.queue(IMAGE_QUEUE).send_message('{"v": 1, "id": "x"}')
    stack.drain()
    assert [m.content for m in storage.queue(IMAGE_QUEUE + POISON_SUFFIX).peek_messages()] == [
        '{"v": 1, "id": "x"}']
