"""Driftless Function App: the front door. Each function parses its trigger, calls one
function in `shared/`, and shapes the response. Only the standard library and
`azure.functions` are imported at module level (cold start); everything else lazily."""
import json

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    """Liveness plus configuration sanity; names missing settings, never shows a value."""
    from shared.health import report

    body = report()
    return func.HttpResponse(json.dumps(body), status_code=200 if body["status"] == "ok" else 503,
                             mimetype="application/json")
