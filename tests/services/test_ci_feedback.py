"""The CI feedback loop end to end: POST /api/gitopsphase -> phase-events (Azurite) -> forwarder ->
GitHub and Azure DevOps (devtools/ci_stub.py, recording every call; PyGithub talks to it)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime, timedelta, timezone

import pytest
import requests

from devtools.ci_stub import CiStub
from shared.adapters import storage
from shared.services.ci_feedback import MAX_ATTEMPTS
from tests.conftest import GIT_TOKEN, app_yaml

SHA = "42e2e5af9d49de268cd1fda3587788da4ace418a"
PHASE_KEY = "phase-key-never-log-me"
FLUX_HMAC = "flux-hmac-never-log-me"
AZDO_TOKEN = "azdo-token-never-log-me"


@pytest.fixture
def ci(stack, vault, monkeypatch):
    stub = CiStub(token=GIT_TOKEN, azdo_token=AZDO_TOKEN).start()      # both refuse any other token
    for name, value in (("driftless-phase-key", PHASE_KEY), ("driftless-flux-hmac", FLUX_HMAC),
                        ("driftless-azdo-token", AZDO_TOKEN)):
        vault.set_secret(name, value)
    feedback = {
        "default": {"github": "contoso/gitops", "targetUrl": "https://github.com/contoso/gitops/commit/{sha}",
                    "githubDispatch": {"repo": "contoso/app", "eventType": "sync-success"},
                    "azurePipelines": {"org": f"{stub.url}/contoso", "project": "ops", "prRepo": "manifests"},
                    "subscribers": [{"name": "spektate", "url": f"{stub.url}/subscribers/spektate"},
                                    {"name": "flaky", "url": f"{stub.url}/subscribers/flaky"}],
                    "allowHttp": True},
        "staging": {"azureRepos": {"org": f"{stub.url}/contoso", "project": "ops", "repo": "staging-manifests"}},
    }
    monkeypatch.setenv("DRIFTLESS_FEEDBACK", json.dumps(feedback))
    monkeypatch.setenv("DRIFTLESS_GITHUB_API_URL", stub.url)
    stub.commits[SHA] = "Merged PR 7: bump api to 1.4.2\n\nRun-Id: 5550001"
    yield stub
    stub.stop()
    assert not any(secret in json.dumps([c.body for c in stub.calls]) for secret in (PHASE_KEY, FLUX_HMAC, AZDO_TOKEN))


def flux(reason="ReconciliationSucceeded", message="Reconciliation finished in 1s", config=None, severity="info"):
    metadata = {"revision": f"main@sha1:{SHA}"}
    if config:
        metadata["config"] = config
    return {"involvedObject": {"kind": "Kustomization", "namespace": "flux-system", "name": "apps"},
            "severity": severity, "timestamp": "2026-11-22T10:00:00Z", "message": message, "reason": reason,
            "metadata": metadata, "reportingController": "kustomize-controller"}


def post(runner, body, *, key: str | None = PHASE_KEY, signature: str | None = None, raw: bytes | None = None):
    data = raw if raw is not None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if signature:
        headers["X-Signature"] = signature
    params = {"code": key} if key else {}
    return requests.post(f"{runner.url}/api/gitopsphase", data=data, headers=headers, params=params, timeout=10)


def statuses(stub):
    return [(c.body["state"], c.body["context"]) for c in stub.of("github_status")]


def test_a_finished_flux_deployment_sets_the_status_dispatches_and_notifies(stack, ci):
    reply = post(stack, flux())
    assert reply.status_code == 202 and reply.json()["finished"] is True
    stack.drain()
    assert statuses(ci) == [("success", "flux/flux-system/Kustomization/apps")]
    status = ci.of("github_status")[0]
    assert status.path == f"/repos/contoso/gitops/statuses/{SHA}"
    assert status.body["target_url"] == f"https://github.com/contoso/gitops/commit/{SHA}"
    dispatch = ci.of("github_dispatch")
    assert len(dispatch) == 1 and dispatch[0].path == "/repos/contoso/app/dispatches"
    assert dispatch[0].body["event_type"] == "sync-success"
    assert dispatch[0].body["client_payload"]["runid"] == "5550001"
    assert dispatch[0].body["client_payload"]["sha"] == SHA
    notified = [c.body for c in ci.of("subscriber") if c.path.endswith("spektate")]
    assert notified[0]["commit_id"] == SHA and notified[0]["gitops_operator"] == "flux"
    assert notified[0]["genre"] == "Kustomization" and notified[0]["state"] == "success"


def test_ten_identical_reconciliation_succeeded_events_dispatch_once(stack, ci):
    for _ in range(10):
        assert post(stack, flux()).status_code == 202
    stack.drain()
    assert len(ci.of("github_dispatch")) == 1
    assert len(ci.of("github_status")) == 1                  # unchanged statuses are not re-posted
    assert len(ci.of("azdo_plan_event")) == 0 or len(ci.of("azdo_plan_event")) == 1


def test_a_commit_that_went_red_can_go_green(stack, ci):
    post(stack, flux("HealthCheckFailed", "Health check failed after 5m0s: timeout waiting for: "
                                          "[Deployment/default/api status: 'Failed']", severity="error"))
    stack.drain()
    post(stack, flux())
    stack.drain()
    assert statuses(ci) == [("failure", "flux/flux-system/Kustomization/apps"),
                            ("success", "flux/flux-system/Kustomization/apps")]
    assert len(ci.of("github_dispatch")) == 1                # no failure event type configured


def test_authentication_and_bad_bodies(stack, ci):
    assert post(stack, flux(), key="wrong").status_code == 401
    assert post(stack, flux(), key=None).status_code == 401
    body = json.dumps(flux()).encode()
    good = "sha256=" + hmac.new(FLUX_HMAC.encode(), body, hashlib.sha256).hexdigest()
    assert post(stack, None, key=None, raw=body, signature="sha256=" + "0" * 64).status_code == 401
    assert post(stack, None, key=None, raw=body, signature=good).status_code == 202
    assert post(stack, None, raw=b"{not json").status_code == 400
    headers = {"x-functions-key": PHASE_KEY}
    assert requests.post(f"{stack.url}/api/gitopsphase", data=body, headers=headers, timeout=10).status_code == 202


def test_events_without_a_commit_or_with_an_unknown_config_are_acknowledged_and_ignored(stack, ci):
    argo = {"commitid": "<no value>", "phase": "Succeeded", "sync_status": "Synced", "health": "Healthy",
            "message": "<no value>", "resources": None}
    reply = post(stack, argo)
    assert reply.status_code == 202 and "no commit" in reply.json()["ignored"]
    other = post(stack, flux(config="production-eu"))
    assert other.status_code == 202 and "production-eu" in other.json()["ignored"]
    assert storage.queue("phase-events").peek_messages() == []


def test_config_routing_sends_staging_events_to_azure_repos(stack, ci):
    post(stack, flux(config="staging"))
    stack.drain()
    assert ci.of("github_status") == [] and ci.of("github_dispatch") == []
    status = ci.of("azdo_status")[0]
    assert status.path == f"/contoso/ops/_apis/git/repositories/staging-manifests/commits/{SHA}/statuses"
    assert status.body["state"] == "succeeded" and status.body["context"] == {
        "name": "flux-system/Kustomization/apps", "genre": "flux"}
    assert status.headers.get("Authorization", "").startswith("Basic ")


def _pull_request(stub, number: int, plan_state: str, **extra) -> None:
    task = {"taskid": "task-1", "jobid": "job-1", "planurl": f"{stub.url}/contoso/", "planid": f"plan-{number}",
            "projectid": "proj-1", "pr_num": str(number)}
    stub.pull_requests[number] = {"properties": {"callback-task-id": json.dumps(task)}, **extra}
    stub.plans[f"plan-{number}"] = plan_state


def test_azure_pipelines_task_is_completed_when_the_plan_still_waits(stack, ci):
    _pull_request(ci, 7, "inProgress")
    post(stack, flux())
    stack.drain()
    events = ci.of("azdo_plan_event")
    assert len(events) == 1 and events[0].path == "/contoso/proj-1/_apis/distributedtask/hubs/build/plans/plan-7/events"
    assert events[0].body == {"name": "TaskCompleted", "taskId": "task-1", "jobId": "job-1", "result": "succeeded"}


def test_azure_pipelines_task_already_completed_or_no_pr_is_left_alone(stack, ci, repo):
    _pull_request(ci, 7, "completed")
    post(stack, flux())
    stack.drain()
    assert ci.of("azdo_plan") and ci.of("azdo_plan_event") == []
    other = "a" * 40
    ci.commits[other] = "chore: edit by hand"
    body = flux()
    body["metadata"]["revision"] = other
    post(stack, body)
    stack.drain()
    assert [c.path for c in ci.of("azdo_pr_properties")] == ["/contoso/ops/_apis/git/repositories/manifests/pullRequests/7/properties"]


def test_abandoned_prs_within_72_hours_fail_their_task_once(stack, ci):
    recent = (datetime.now(timezone.utc) - timedelta(hours=5)).isoformat().replace("+00:00", "Z")
    old = (datetime.now(timezone.utc) - timedelta(hours=80)).isoformat().replace("+00:00", "Z")
    _pull_request(ci, 11, "inProgress", status="abandoned", closedDate=recent)
    _pull_request(ci, 12, "inProgress", status="abandoned", closedDate=old)
    stack.fire_timer("abandoned_pull_requests")
    stack.fire_timer("abandoned_pull_requests")
    events = ci.of("azdo_plan_event")
    assert len(events) == 1 and events[0].path.endswith("/plans/plan-11/events")
    assert events[0].body["result"] == "failed"


def test_abandoned_prs_are_asked_for_by_closing_time_and_read_page_by_page(stack, ci):
    now = datetime.now(timezone.utc)
    for number in range(300, 150, -1):                           # 150 abandoned just now: newest first
        ci.pull_requests[number] = {"status": "abandoned", "closedDate": now.isoformat().replace("+00:00", "Z")}
    _pull_request(ci, 11, "inProgress", status="abandoned",     # the oldest PR, abandoned an hour ago: page 2
                  closedDate=(now - timedelta(hours=1)).isoformat().replace("+00:00", "Z"))
    _pull_request(ci, 12, "inProgress", status="abandoned",
                  closedDate=(now - timedelta(hours=80)).isoformat().replace("+00:00", "Z"))
    stack.fire_timer("abandoned_pull_requests")
    listings = ci.of("azdo_pr_list")
    assert [c.query["$skip"] for c in listings] == [["0"], ["100"]] and all(c.query["$top"] == ["100"] for c in listings)
    assert listings[0].query["searchCriteria.queryTimeRangeType"] == ["closed"]
    events = ci.of("azdo_plan_event")
    assert len(events) == 1 and events[0].path.endswith("/plans/plan-11/events")


def test_azure_devops_gets_the_token_and_refuses_without_it(stack, ci, vault):
    _pull_request(ci, 7, "inProgress")
    post(stack, flux(config="staging"))
    stack.drain()
    [status] = ci.of("azdo_status")
    assert status.headers["Authorization"] == "Basic " + base64.b64encode(f":{AZDO_TOKEN}".encode()).decode()
    assert status.headers["X-TFS-FedAuthRedirect"] == "Suppress"
    url = f"{ci.url}/contoso/ops/_apis/git/repositories/manifests/pullrequests?api-version=7.1"
    browser = requests.get(url, timeout=10)
    assert browser.status_code == 203 and browser.headers["Content-Type"].startswith("text/html")
    suppressed = requests.get(url, headers={"X-TFS-FedAuthRedirect": "Suppress"}, auth=("", "wrong"), timeout=10)
    assert suppressed.status_code == 401 and "TF400813" in suppressed.json()["message"]
    vault.set_secret("driftless-azdo-token", "not-the-token")          # refused: the sink fails and is retried
    post(stack, flux(reason="ReconciliationFailed", severity="error", config="staging"))
    stack.drain()
    assert len(ci.of("azdo_status")) == 1 + MAX_ATTEMPTS and stack.errors == []
    assert storage.queue("phase-events-poison").peek_messages()                 # then parked, visibly


def test_a_failing_subscriber_never_blocks_the_others_and_is_retried_alone(stack, ci):
    ci.failing["subscriber"] = 503
    post(stack, flux())
    stack.pump_once()
    assert statuses(ci) == [("success", "flux/flux-system/Kustomization/apps")]
    assert len(ci.of("github_dispatch")) == 1
    del ci.failing["subscriber"]
    stack.drain()                                              # the retry comes back at once (retry_base_seconds 0)
    retried = [c.path for c in ci.calls if c.path.startswith("/subscribers/")]
    assert retried.count("/subscribers/spektate") == 2 and retried.count("/subscribers/flaky") == 2
    assert len(ci.of("github_status")) == 1 and len(ci.of("github_dispatch")) == 1


def test_driftless_own_passes_report_pending_then_success_or_failure(stack, ci, repo, aca):
    repo.write("apps/web.yaml", app_yaml("web"))
    repo.write("apps/api.yaml", app_yaml("api"))
    head = repo.commit()
    ci.commits[head] = "Merged PR 9: add web and api"
    aca.set_faults(lro_fail_apps=["api"])
    requests.post(f"{stack.url}/api/reconcile", headers={"x-functions-key": "local-dev-key"}, timeout=10)
    stack.drain()
    own = [c.body for c in ci.of("github_status") if c.body["context"] == "driftless/default"]
    # pending is posted first, or skipped when the final status overtook it in the queue; never after it
    states = [s["state"] for s in own]
    # the pass's two events are forwarded by two workers at once: the newest status (failure) always ends last,
    # posted again when the older one may have landed after it on the wire
    assert states[-1] == "failure" and states[0] in ("pending", "failure") and set(states) <= {"pending", "failure"}
    assert "api" in own[-1]["description"] and ci.of("github_status")[0].path.endswith(head)
    assert ci.of("github_dispatch") == []
    aca.set_faults(lro_fail_apps=[])
    requests.post(f"{stack.url}/api/reconcile", headers={"x-functions-key": "local-dev-key"}, timeout=10)
    stack.drain()
    own = [c.body["state"] for c in ci.of("github_status") if c.body["context"] == "driftless/default"]
    assert own[-1] == "success", requests.get(f"{stack.url}/api/status", headers={"x-functions-key": "local-dev-key"}).json()["apps"] or [(c.body["state"], c.body["context"], c.body["description"]) for c in ci.of("github_status")]
    dispatch = ci.of("github_dispatch")
    assert len(dispatch) == 1 and dispatch[0].body["client_payload"]["context"] == "driftless/default"
