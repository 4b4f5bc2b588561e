"""The real decorated functions of function_app.py, called the way the Functions host calls them."""
from __future__ import annotations

import inspect
import json
import subprocess
import sys

import azure.functions as func
from azure.functions.decorators.core import BindingDirection

import function_app

FUNCTIONS = {f.get_function_name(): f for f in function_app.app.get_functions()}  # indexed once, as the host does


def functions() -> dict:
    return FUNCTIONS


def call_http(name: str, method: str = "GET", url: str = "/api/x", body: bytes = b"") -> func.HttpResponse:
    request = func.HttpRequest(method=method, url=url, headers={}, params={}, body=body)
    return functions()[name].get_user_function()(request)


def test_every_binding_matches_its_function_signature():
    for name, function in functions().items():
        parameters = inspect.signature(function.get_user_function()).parameters
        for binding in function.get_bindings():
            if binding.direction == BindingDirection.IN or binding.type.endswith("Trigger"):
                assert binding.name in parameters, f"{name}: binding {binding.name} has no parameter"
        assert set(parameters) <= {b.name for b in function.get_bindings()}, name


def test_health_is_anonymous_and_reports_missing_settings_without_values(monkeypatch):
    monkeypatch.delenv("DRIFTLESS_REPO_URL", raising=False)
    monkeypatch.setenv("DRIFTLESS_GIT_TOKEN", "ghp_DoNotShowThis")
    health = functions()["health"]
    trigger = next(b for b in health.get_bindings() if b.type == "httpTrigger")
    assert trigger.route == "health" and str(trigger.auth_level).lower().endswith("anonymous")
    response = call_http("health")
    body = json.loads(response.get_body())
    assert response.status_code == 503 and body["problems"] == ["DRIFTLESS_REPO_URL is not set"]
    assert "ghp_DoNotShowThis" not in response.get_body().decode()
    monkeypatch.setenv("DRIFTLESS_REPO_URL", "https://github.com/contoso/gitops.git")
    assert call_http("health").status_code == 200


def test_function_app_imports_only_stdlib_and_azure_functions_at_module_level():
    code = ("import sys, function_app; function_app.app.get_functions(); "
            "print(','.join(sorted(m for m in sys.modules if m.startswith(('shared', 'yaml', 'dulwich', 'azure.mgmt', 'azure.identity', 'github')))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == ""


def test_the_triggers_the_issue_promises_exist_with_their_queue_and_routes():
    from shared.core.queues import IMAGE_QUEUE, PHASE_QUEUE, PREVIEW_QUEUE, PUSH_QUEUE, RECONCILE_QUEUE, ROLLOUT_QUEUE

    assert set(FUNCTIONS) == {"scheduled_reconcile", "github_webhook", "reconcile_worker", "manual_reconcile",
                              "status", "suspend_app", "resume_app", "health", "gitops_phase", "phase_forwarder",
                              "abandoned_pull_requests", "scheduled_image_updates", "image_update_worker",
                              "plan_preview_worker", "azure_devops_webhook", "rollout_worker", "rollout_status",
                              "rollout_control", "push_worker"}
    pushes = next(b for b in FUNCTIONS["push_worker"].get_bindings() if b.type == "queueTrigger")
    assert pushes.queue_name == PUSH_QUEUE == function_app.PUSH_QUEUE
    rollouts = next(b for b in FUNCTIONS["rollout_worker"].get_bindings() if b.type == "queueTrigger")
    assert rollouts.queue_name == ROLLOUT_QUEUE == function_app.ROLLOUT_QUEUE
    previews = next(b for b in FUNCTIONS["plan_preview_worker"].get_bindings() if b.type == "queueTrigger")
    assert previews.queue_name == PREVIEW_QUEUE == function_app.PREVIEW_QUEUE
    phases = next(b for b in FUNCTIONS["phase_forwarder"].get_bindings() if b.type == "queueTrigger")
    assert phases.queue_name == PHASE_QUEUE == function_app.PHASE_QUEUE
    queue = next(b for b in FUNCTIONS["reconcile_worker"].get_bindings() if b.type == "queueTrigger")
    assert queue.queue_name == RECONCILE_QUEUE == function_app.RECONCILE_QUEUE
    images = next(b for b in FUNCTIONS["image_update_worker"].get_bindings() if b.type == "queueTrigger")
    assert images.queue_name == IMAGE_QUEUE == function_app.IMAGE_QUEUE
    routes = {b.route: str(b.auth_level) for f in FUNCTIONS.values() for b in f.get_bindings() if b.type == "httpTrigger"}
    assert routes["github/webhook"].lower().endswith("anonymous")
    assert routes["gitopsphase"].lower().endswith("anonymous")   # phase key or HMAC, checked in shared.services.ci_feedback
    assert all(level.lower().endswith("function") for route, level in routes.items()
               if route not in ("github/webhook", "health", "gitopsphase"))
