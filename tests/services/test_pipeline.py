"""The event pipeline end to end, through the real function_app.py hosted by devtools/local_runner.py.

Real parts: Azurite (queues and the status table), the ACA emulator behind the real ARM SDK,
the Key Vault stub behind the real SecretClient, real Git repositories. HTTP requests go
over loopback to the local host; queue messages are base64 on Azurite and are retried and
poisoned by the runner as the Functions host does. Only host.json's visibilityTimeout is set
to zero here so retries do not wait 30 seconds.
"""
from __future__ import annotations

import json
import uuid

import pytest
import requests

from devtools.git_server import GitServer
from shared.adapters import storage
from shared.core.jobs import new_job
from shared.core.queues import POISON_SUFFIX, PUSH_QUEUE, RECONCILE_QUEUE
from shared.core.webhook import sign
from tests.conftest import GROUP, KEY, SUBSCRIPTION, WEBHOOK_SECRET, app_yaml, writes


def queued(name: str | None = None) -> list[str]:
    """Messages on queue `name`; by default the reconcile jobs on both queues (the timer's, then pushes' and
    manual requests')."""
    names = [name] if name else [RECONCILE_QUEUE, PUSH_QUEUE]
    return [m.content for queue in names for m in storage.queue(queue).peek_messages(max_messages=32)]


def push(runner, repo, *, ref="refs/heads/main", paths=("apps/web.yaml",), delivery=None, secret=WEBHOOK_SECRET,
         signed=True, extra=None):
    payload = {"ref": ref, "before": "0" * 40, "after": repo._git("rev-parse", "HEAD"),
               "repository": {"full_name": "contoso/gitops"},
               "commits": [{"id": "c1", "added": [], "modified": list(paths), "removed": []}], **(extra or {})}
    body = json.dumps(payload).encode()
    headers = {"X-GitHub-Event": "push", "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
               "Content-Type": "application/json"}
    if signed:
        headers["X-Hub-Signature-256"] = sign(secret, body)
    return requests.post(f"{runner.url}/api/github/webhook", data=body, headers=headers, timeout=10)


def api(runner, method: str, path: str, **kwargs):
    return requests.request(method, f"{runner.url}/api/{path}", headers={"x-functions-key": KEY}, timeout=10, **kwargs)


def test_signed_push_applies_the_touched_target_and_status_shows_the_revision(stack, repo, aca):
    repo.write("apps/web.yaml", app_yaml("web"))
    head = repo.commit()
    reply = push(stack, repo)
    assert reply.status_code == 202 and reply.json()["revision"] == head
    assert len(queued()) == 1
    stack.drain()
    assert aca.app(SUBSCRIPTION, GROUP, "web")["tags"]["driftless-revision"] == head
    status = api(stack, "GET", "status").json()
    assert status["targets"][0]["revision"] == head and status["targets"][0]["ok"] is True
    assert {(a["app"], a["action"]) for a in status["apps"]} == {("web", "created")}
    assert api(stack, "GET", "status", params={"target": "nope"}).json() == {"targets": [], "apps": [], "images": []}
    assert requests.get(f"{stack.url}/api/status", timeout=10).status_code == 401


def test_bad_missing_or_unconfigured_signatures_enqueue_nothing(stack, repo, vault):
    repo.write("apps/web.yaml", app_yaml("web"))
    repo.commit()
    assert push(stack, repo, secret="wrong-secret").status_code == 401
    assert push(stack, repo, signed=False).status_code == 401
    vault.reset()                                      # no webhook secret in the vault at all: a misconfiguration
    assert push(stack, repo).status_code == 503
    assert queued() == []


def test_a_redelivered_event_enqueues_nothing_new(stack, repo):
    repo.write("apps/web.yaml", app_yaml("web"))
    repo.commit()
    assert push(stack, repo, delivery="delivery-1").status_code == 202
    again = push(stack, repo, delivery="delivery-1")
    assert again.status_code == 200 and again.json() == {"duplicate": "delivery-1"}
    assert len(queued()) == 1


@pytest.mark.parametrize("kwargs, reason", [
    ({"ref": "refs/heads/feature"}, "not refs/heads/main"),
    ({"ref": "refs/tags/v1.0"}, "tag push"),
    ({"extra": {"deleted": True}}, "was deleted"),
    ({"paths": ("docs/readme.md",)}, "touches no Target path"),
])
def test_pushes_that_are_not_for_us_enqueue_nothing(stack, repo, kwargs, reason):
    repo.write("apps/web.yaml", app_yaml("web"))
    repo.commit()
    reply = push(stack, repo, **kwargs)
    assert reply.status_code in (200, 202) and reason in reply.json()["ignored"]
    assert queued() == []


def test_ping_and_malformed_json_and_other_events(stack, repo):
    body = b'{"zen": "Design for failure."}'
    ping = requests.post(f"{stack.url}/api/github/webhook", data=body, timeout=10,
                         headers={"X-GitHub-Event": "ping", "X-Hub-Signature-256": sign(WEBHOOK_SECRET, body)})
    assert ping.status_code == 200
    broken = b"{not json"
    assert requests.post(f"{stack.url}/api/github/webhook", data=broken, timeout=10, headers={
        "X-GitHub-Event": "push", "X-Hub-Signature-256": sign(WEBHOOK_SECRET, broken)}).status_code == 400
    issue = requests.post(f"{stack.url}/api/github/webhook", data=body, timeout=10, headers={
        "X-GitHub-Event": "issues", "X-Hub-Signature-256": sign(WEBHOOK_SECRET, body)})
    assert issue.status_code == 202 and "issues" in issue.json()["ignored"]
    assert queued() == []


def test_a_job_failing_every_time_ends_in_poison_with_its_body_and_a_malformed_one_is_parked_at_once(
        stack, repo, monkeypatch):
    repo.write("apps/web.yaml", app_yaml("web"))
    repo.commit()
    monkeypatch.setenv("DRIFTLESS_REPO_URL", "http://127.0.0.1:9/unreachable.git")   # every attempt fails
    job = new_job("default", "manual").to_json()
    storage.queue(RECONCILE_QUEUE).send_message(job)
    stack.drain()
    assert stack.invocations["reconcile_worker"] == 5                                 # host.json maxDequeueCount
    assert queued(RECONCILE_QUEUE + POISON_SUFFIX) == [job]
    storage.queue(RECONCILE_QUEUE + POISON_SUFFIX).clear_messages()
    storage.queue(RECONCILE_QUEUE).send_message('{"v": 1, "target": 42}')
    stack.drain()
    assert stack.invocations["reconcile_worker"] == 6
    assert queued(RECONCILE_QUEUE + POISON_SUFFIX) == ['{"v": 1, "target": 42}']


def test_a_crash_after_the_arm_write_converges_on_retry_without_duplicate_writes(stack, repo, aca, monkeypatch):
    from shared.adapters.status_store import Store

    for name in ("alpha", "bravo"):
        repo.write(f"apps/{name}.yaml", app_yaml(name))
    repo.commit()
    real, crashes = Store.record_pass, []

    def crash_once(self, *args, **kwargs):       # the process dies between the ARM writes and the status write
        if not crashes:
            crashes.append(1)
            raise ConnectionError("worker lost")
        return real(self, *args, **kwargs)
    monkeypatch.setattr(Store, "record_pass", crash_once)
    assert api(stack, "POST", "reconcile").status_code == 202
    stack.drain()
    assert stack.invocations["push_worker"] == 2 and crashes == [1]
    assert writes(aca) == 2                                        # two creates, nothing written twice
    status = api(stack, "GET", "status").json()
    assert {a["app"]: a["action"] for a in status["apps"]} == {"alpha": "unchanged", "bravo": "unchanged"}


def test_timer_and_push_jobs_for_one_target_are_serialized_and_end_at_the_branch_head(stack, repo, aca):
    repo.write("apps/web.yaml", app_yaml("web", image="nginx:1.0"))
    repo.commit()
    stack.fire_timer("scheduled_reconcile")
    repo.write("apps/web.yaml", app_yaml("web", image="nginx:2.0"))
    head = repo.commit()
    assert push(stack, repo).status_code == 202
    assert len(queued()) == 2
    aca.set_faults(latency_s=0.05)
    stack.drain()
    live = aca.app(SUBSCRIPTION, GROUP, "web")
    assert live["properties"]["template"]["containers"][0]["image"] == "nginx:2.0"
    assert live["tags"]["driftless-revision"] == head
    passes = storage.table().query_entities("PartitionKey eq 'pass.default'")
    spans = sorted((p["started_at"], p["finished_at"]) for p in passes)
    assert all(earlier[1] <= later[0] for earlier, later in zip(spans, spans[1:])), spans


def test_key_vault_down_fails_the_job_which_succeeds_once_it_is_back(stack, repo, vault, aca, monkeypatch):
    repo.write("apps/web.yaml", app_yaml("web"))
    repo.commit()
    git = GitServer(str(repo.path)).start()
    monkeypatch.setenv("DRIFTLESS_REPO_URL", git.url)                   # remote: needs the Git token secret
    try:
        storage.queue(RECONCILE_QUEUE).send_message(new_job("default", "manual").to_json())
        vault.down = True
        assert stack.pump_once() == 1
        assert stack.errors and "SecretsUnavailable" in stack.errors[-1][1]
        assert aca.app(SUBSCRIPTION, GROUP, "web") is None and len(queued()) == 1
        vault.down = False
        stack.drain()
        assert aca.app(SUBSCRIPTION, GROUP, "web") is not None
    finally:
        git.stop()


def test_suspend_stops_writes_and_resume_heals(stack, repo, aca):
    from tests.engines.test_container_apps import patch_live

    repo.write("apps/web.yaml", app_yaml("web"))
    repo.commit()
    api(stack, "POST", "reconcile")
    stack.drain()
    live = aca.app(SUBSCRIPTION, GROUP, "web")["properties"]["template"]["containers"]
    live[0]["image"] = "nginx:from-portal"
    patch_live(aca, "web", {"properties": {"template": {"containers": live}}})
    assert api(stack, "POST", "apps/web/suspend").json() == {"app": "web", "suspended": True}
    aca.reset_calls()
    api(stack, "POST", "reconcile", json={"app": "web"})
    stack.drain()
    assert writes(aca) == 0
    status = api(stack, "GET", "status").json()["apps"][0]
    assert status["action"] == "suspended" and status["suspended"] is True
    resumed = api(stack, "POST", "apps/web/resume")
    assert resumed.status_code == 202 and resumed.json()["jobs"][0]["target"] == "default"
    stack.drain()
    assert aca.app(SUBSCRIPTION, GROUP, "web")["properties"]["template"]["containers"][0]["image"] == "nginx:1.27"
    assert api(stack, "POST", "apps/Not_An_App/suspend").status_code == 400


def test_manual_reconcile_validates_its_request(stack, repo):
    repo.write("apps/web.yaml", app_yaml("web"))
    repo.commit()
    assert api(stack, "POST", "reconcile", data=b"{oops").status_code == 400
    assert api(stack, "POST", "reconcile", json={"target": "nope"}).status_code == 404
    assert api(stack, "POST", "reconcile", json={"app": "ghost"}).status_code == 404
    reply = api(stack, "POST", "reconcile", json={"app": "web"})
    assert reply.status_code == 202 and reply.json()["jobs"][0]["app"] == "web"
    assert json.loads(queued()[0])["app"] == "web"


def test_the_cli_reads_and_drives_the_same_stores(stack, repo, aca, capsys):
    from shared.cli import main

    repo.write("apps/web.yaml", app_yaml("web"))
    repo.commit()
    assert main(["reconcile", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["jobs"][0]["target"] == "default"
    stack.drain()
    assert main(["suspend", "web"]) == 0 and "web suspended" in capsys.readouterr().out
    assert main(["get", "status", "-o", "json"]) == 0
    apps = json.loads(capsys.readouterr().out)["apps"]
    assert apps[0]["app"] == "web" and apps[0]["action"] == "created" and apps[0]["suspended"] is True
    assert main(["resume", "web"]) == 0 and "reconcile enqueued for default" in capsys.readouterr().out
    assert main(["reconcile", "--target", "nope"]) == 2


def test_kubernetes_object_names_work_in_the_status_store(stack, repo):
    """AKS outcomes and suspensions are keyed Kind/namespace/name, which Table keys cannot hold as is."""
    repo.write("apps/web.yaml", app_yaml("web"))
    repo.commit()
    from shared.adapters.status_store import Store
    from shared.core.outcome import Outcome, PassResult

    store = Store()
    result = PassResult(target="aks-prod", revision="a" * 40, dry_run=False, started_at="2026-11-22T00:00:00+00:00",
                        outcomes=[Outcome("Deployment/default/web", "created", healthy=True)])
    store.record_pass(result, started_at=result.started_at)
    from shared.wiring import current

    assert current().pipeline.suspend("Deployment/default/web").status == 404    # declared by no Target at head
    assert current().pipeline.suspend("Deployment/default/../x").status == 400
    store.suspend("Deployment/default/web")
    status = api(stack, "GET", "status").json()
    assert status["apps"] == [{**status["apps"][0], "app": "Deployment/default/web", "suspended": True}]
    assert store.targets_of_app("Deployment/default/web") == ["aks-prod"]
    assert store.resume("Deployment/default/web") and store.suspended() == set()


def test_a_steady_state_pass_rewrites_no_app_row(stack, repo):
    repo.write("apps/web.yaml", app_yaml("web"))
    repo.commit()
    for _ in range(2):                                     # created, then unchanged
        api(stack, "POST", "reconcile")
        stack.drain()
    first = api(stack, "GET", "status").json()
    api(stack, "POST", "reconcile")
    stack.drain()
    second = api(stack, "GET", "status").json()
    assert second["targets"][0]["finishedAt"] > first["targets"][0]["finishedAt"]
    assert second["apps"][0]["action"] == "unchanged"
    assert second["apps"][0]["updatedAt"] == first["apps"][0]["updatedAt"]


def test_a_push_never_waits_behind_the_timers_backlog(stack, repo, aca):
    """Pushes and manual requests have their own queue and trigger: one round of the host's listeners applies a
    push to one Target while more than a batch of the timer's jobs for another is still queued ahead of it."""
    from tests.conftest import ENVIRONMENT

    aca.add_environment(SUBSCRIPTION, GROUP, "env-other")
    repo.write("targets/targets.yaml",
               f"apiVersion: driftless.io/v1alpha1\nkind: Target\nmetadata: {{name: default}}\n"
               f"spec: {{type: aca, path: apps, resourceGroup: {GROUP}, environment: {ENVIRONMENT}}}\n"
               "---\napiVersion: driftless.io/v1alpha1\nkind: Target\nmetadata: {name: other}\n"
               f"spec: {{type: aca, path: other, resourceGroup: {GROUP}, environment: env-other}}\n")
    repo.write("apps/web.yaml", app_yaml("web"))
    repo.commit()
    for _ in range(10):                                  # the timer's backlog for `default`: batchSize is 4
        storage.queue(RECONCILE_QUEUE).send_message(new_job("default", "timer").to_json())
    repo.write("other/api.yaml", app_yaml("api", image="nginx:2.0"))
    repo.commit()
    assert push(stack, repo, paths=("other/api.yaml",)).status_code == 202
    stack.pump_once()                                    # one round: a batch of each queue
    assert stack.invocations["push_worker"] == 1
    assert aca.app(SUBSCRIPTION, GROUP, "api")["properties"]["template"]["containers"][0]["image"] == "nginx:2.0"
    assert len(queued(RECONCILE_QUEUE)) >= 6             # the timer's backlog is still there
