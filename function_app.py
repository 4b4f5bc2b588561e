"""Driftless Function App: the front door. Each function parses its trigger, calls one
function in `shared/`, and shapes the response. Only the standard library and
`azure.functions` are imported at module level (cold start); everything else lazily."""
import json
import os

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

RECONCILE_QUEUE = "reconcile-jobs"  # the names in shared/core/queues.py; a test keeps them equal
PUSH_QUEUE = "reconcile-pushes"
PHASE_QUEUE = "phase-events"
IMAGE_QUEUE = "image-updates"
PREVIEW_QUEUE = "plan-previews"
ROLLOUT_QUEUE = "rollout-steps"


def _driftless():
    from shared.wiring import current

    return current()


def _http(route) -> func.HttpResponse:
    """Answer with `route(driftless)`: bad input 4xx, an outage or a misconfiguration 503, always JSON."""
    from shared.wiring import answer

    reply = answer(route)
    return func.HttpResponse(json.dumps(reply.body), status_code=reply.status, mimetype="application/json")


@app.timer_trigger(arg_name="timer", schedule=os.environ.get("DRIFTLESS_SCHEDULE") or "0 */5 * * * *",
                   run_on_startup=False)
def scheduled_reconcile(timer: func.TimerRequest) -> None:
    """Enqueue one reconcile job per Target (drift healing); re-queue rollout steps that are overdue."""
    driftless = _driftless()
    driftless.pipeline.schedule()
    driftless.rollouts.sweep()


@app.route(route="github/webhook", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def github_webhook(req: func.HttpRequest) -> func.HttpResponse:
    """GitHub push webhook; the HMAC signature is the authentication."""
    return _http(lambda driftless: driftless.github_webhook(req.headers, req.get_body()))


@app.route(route="azure-devops/webhook", methods=["POST"])
def azure_devops_webhook(req: func.HttpRequest) -> func.HttpResponse:
    """Azure DevOps service hook (pull request created / updated): a plan preview; function key plus the hook secret."""
    return _http(lambda driftless: driftless.previews.azure_devops_webhook(req.headers, req.get_body()))


@app.queue_trigger(arg_name="msg", queue_name=RECONCILE_QUEUE, connection="AzureWebJobsStorage")
def reconcile_worker(msg: func.QueueMessage) -> None:
    """Run one reconcile job of the timer; raising hands the message back to the host for a retry."""
    _driftless().pipeline.run_job(msg.get_body(), dequeue_count=msg.dequeue_count or 1, queue=RECONCILE_QUEUE)


@app.queue_trigger(arg_name="msg", queue_name=PUSH_QUEUE, connection="AzureWebJobsStorage")
def push_worker(msg: func.QueueMessage) -> None:
    """Run one reconcile job of a push or a manual request (never behind the timer's backlog)."""
    _driftless().pipeline.run_job(msg.get_body(), dequeue_count=msg.dequeue_count or 1, queue=PUSH_QUEUE)


@app.route(route="reconcile", methods=["POST"])
def manual_reconcile(req: func.HttpRequest) -> func.HttpResponse:
    """Enqueue a reconcile for every Target, one Target or one app: 202 with the job ids."""
    return _http(lambda driftless: driftless.pipeline.request_reconcile(req.get_body()))


@app.route(route="status", methods=["GET"])
def status(req: func.HttpRequest) -> func.HttpResponse:
    """Last outcome per Target and per app (`?target=` narrows it)."""
    return _http(lambda driftless: driftless.status(req.params.get("target")))


@app.route(route="apps/{name}/suspend", methods=["POST"])
def suspend_app(req: func.HttpRequest) -> func.HttpResponse:
    """Stop writing to one app at runtime, without editing Git."""
    return _http(lambda driftless: driftless.pipeline.suspend(req.route_params["name"]))


@app.route(route="apps/{name}/resume", methods=["POST"])
def resume_app(req: func.HttpRequest) -> func.HttpResponse:
    """Lift a runtime suspension and reconcile the app's Targets now."""
    return _http(lambda driftless: driftless.pipeline.resume(req.route_params["name"]))


@app.route(route="gitopsphase", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def gitops_phase(req: func.HttpRequest) -> func.HttpResponse:
    """Flux / Argo CD phase callback (the gitops-connector path); phase key or generic-hmac."""
    return _http(lambda driftless: driftless.callbacks.accept(req.headers, req.params, req.get_body()))


@app.queue_trigger(arg_name="msg", queue_name=PHASE_QUEUE, connection="AzureWebJobsStorage")
def phase_forwarder(msg: func.QueueMessage) -> None:
    """Forward one phase event to commit statuses, dispatches, pipeline callbacks and subscribers."""
    _driftless().callbacks.forward(msg.get_body())


@app.timer_trigger(arg_name="timer", schedule="0 */15 * * * *", run_on_startup=False)
def abandoned_pull_requests(timer: func.TimerRequest) -> None:
    """Fail the waiting Azure Pipelines tasks of PRs abandoned within 72 hours."""
    _driftless().callbacks.complete_abandoned()


@app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    """Liveness plus configuration sanity; names missing settings, never shows a value."""
    from shared.config.health import report

    body = report()
    return func.HttpResponse(json.dumps(body), status_code=200 if body["status"] == "ok" else 503,
                             mimetype="application/json")


@app.timer_trigger(arg_name="timer", schedule=os.environ.get("DRIFTLESS_IMAGE_SCHEDULE") or "0 */30 * * * *",
                   run_on_startup=False)
def scheduled_image_updates(timer: func.TimerRequest) -> None:
    """Enqueue one image update job per opted-in manifest (fallback for missed webhooks)."""
    _driftless().images.schedule()


@app.queue_trigger(arg_name="msg", queue_name=IMAGE_QUEUE, connection="AzureWebJobsStorage")
def image_update_worker(msg: func.QueueMessage) -> None:
    """Run one image update job; raising hands the message back to the host for a retry."""
    _driftless().images.run(msg.get_body(), dequeue_count=msg.dequeue_count or 1)


@app.queue_trigger(arg_name="msg", queue_name=PREVIEW_QUEUE, connection="AzureWebJobsStorage")
def plan_preview_worker(msg: func.QueueMessage) -> None:
    """Plan one pull request head and post the check run and comment; raising hands the message back for a retry."""
    _driftless().previews.run(msg.get_body(), dequeue_count=msg.dequeue_count or 1)


@app.queue_trigger(arg_name="msg", queue_name=ROLLOUT_QUEUE, connection="AzureWebJobsStorage")
def rollout_worker(msg: func.QueueMessage) -> None:
    """Carry out one rollout step job (weights, pause, analysis, promotion or roll back); raising hands it back."""
    _driftless().rollouts.run(msg.get_body(), dequeue_count=msg.dequeue_count or 1)


@app.route(route="rollouts/{name}", methods=["GET"])
def rollout_status(req: func.HttpRequest) -> func.HttpResponse:
    """One app's rollout: phase, step, weights and the last analysis (`?target=` narrows it)."""
    return _http(lambda driftless: driftless.rollouts.status(req.route_params["name"], req.params.get("target")))


@app.route(route="rollouts/{name}/{action}", methods=["POST"])
def rollout_control(req: func.HttpRequest) -> func.HttpResponse:
    """Promote a paused rollout or abort a running one (`?target=` names the Target)."""
    return _http(lambda driftless: driftless.rollout(req.route_params["action"], req.route_params["name"],
                                                     req.params.get("target")))
