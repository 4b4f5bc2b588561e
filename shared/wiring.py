"""Wiring: one Context and one of each service per process, and GitHub webhook routing.

`current()` is what every function in function_app.py calls; `answer()` is how every HTTP route is
answered: bad input is a 4xx with a JSON reason (the services return it), an outage of what Driftless
depends on (the Function App's storage, Key Vault, the manifests repository, GitHub) or a misconfiguration
is a 503 with a JSON reason, and nothing is a 500 by design. The webhook is verified once here (size, HMAC
signature, delivery id, JSON, the types of the fields read) and routed by event: pushes to the manifests
repository go to the reconcile pipeline, app repository pushes and `workflow_run` to image updates,
`pull_request` and `check_run` (re-run of `driftless/plan`) to plan previews. Rollout controls
(`/api/rollouts/{app}[/promote|/abort]`) go to the rollouts service.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Callable, Mapping

from shared.adapters import github, storage
from shared.adapters.git import GitSource, SourceError
from shared.adapters.key_vault import Secrets, SecretsUnavailable
from shared.adapters.status_store import Store
from shared.adapters.storage import StorageNotConfigured
from shared.config.settings import Settings, SettingsError
from shared.core.feedback_config import FeedbackConfigError
from shared.core.reply import Reply, shown
from shared.core.webhook import (
    MAX_BODY,
    BadEvent,
    check_delivery,
    check_event,
    ignore_reason,
    load_json,
    parse_push,
    signature_ok,
)
from shared.engines.reconciler import Reconciler
from shared.services.ci_feedback import Callbacks
from shared.services.context import Context
from shared.services.image_updates import ImageUpdates
from shared.services.pipeline import Pipeline
from shared.services.previews import Previews
from shared.services.rollouts import Rollouts

log = logging.getLogger("driftless.webhook")


def git_source(settings: Settings, token: github.TokenProvider) -> GitSource:
    """The manifests repository, authenticated with `token` (GitHub App, PAT or Azure DevOps token)."""
    settings.require("DRIFTLESS_REPO_URL")
    return GitSource(str(settings.repo_url), settings.branch, username=settings.git_username, password=token)


def build_context(settings: Settings, *, env: Mapping[str, str] | None = None) -> Context:
    """The Context of one process: Key Vault secrets, the status store, the GitHub token and, on first use,
    the Reconciler with its Git cache."""
    secrets = Secrets(settings, env=env)
    token = github.token_provider(settings, secrets)
    store = Store(backoff_base=settings.reapply_backoff, env=env)
    inventory = store if storage.configured(env) else None     # engines that keep an inventory need a real store
    return Context(settings, secrets=secrets, store=store, github_token=token, env=env,
                   reconciler=lambda: Reconciler(settings, source=git_source(settings, token), store=inventory))


class Driftless:
    """The services of one process over one Context; what function_app.py and the CLI call."""

    def __init__(self, settings: Settings, *, env: Mapping[str, str] | None = None):
        self.settings = settings
        self.context = build_context(settings, env=env)
        self.pipeline = Pipeline(self.context)
        self.callbacks = Callbacks(self.context)
        self.images = ImageUpdates(self.context)
        self.previews = Previews(self.context)
        self.rollouts = Rollouts(self.context)

    def github_webhook(self, headers: Mapping[str, str], body: bytes) -> Reply:
        """Verify, then route a GitHub event. Never acts on an unsigned body."""
        headers = {k.lower(): v for k, v in headers.items()}
        if len(body) > MAX_BODY:
            return Reply(413, {"error": f"body larger than {MAX_BODY} bytes"})
        try:
            secret = self.context.secrets.webhook_secret()
        except SecretsUnavailable as exc:
            log.error("webhook refused: %s", exc)
            return Reply(503, {"error": "the webhook secret cannot be read right now; GitHub may redeliver"})
        if not secret:
            log.error("webhook refused: no webhook secret is configured (Key Vault secret %s); "
                      "unsigned events are never accepted", self.settings.webhook_secret_name)
            return Reply(503, {"error": "the webhook secret is not configured (Key Vault secret "
                                        f"{self.settings.webhook_secret_name}); unsigned events are never accepted"})
        if not signature_ok(secret, body, headers.get("x-hub-signature-256")):
            return Reply(401, {"error": "X-Hub-Signature-256 missing or wrong"})
        event, delivery = headers.get("x-github-event", ""), headers.get("x-github-delivery") or None
        try:
            check_delivery(delivery)
            payload = load_json(body)
            check_event(event, payload)
        except ValueError as exc:                                   # BadEvent included
            return Reply(400, {"error": str(exc)})
        if event == "ping":
            return Reply(200, {"ok": "pong"})
        if self.images.handles(event, payload):
            return self.images.webhook(event, payload, delivery)
        if self.previews.handles(event):
            try:
                return self.previews.webhook(event, payload, delivery)
            except BadEvent as exc:
                return Reply(400, {"error": str(exc)})
        if event != "push":
            return Reply(202, {"ignored": f"event {shown(event)} is not handled"})
        push = parse_push(payload)
        reason = ignore_reason(push, branch=self.settings.branch, repo_url=self.settings.repo_url or "")
        if reason:
            return Reply(202, {"ignored": reason})
        return self.pipeline.push(push, delivery)

    def rollout(self, action: str, app: str, target: str | None = None) -> Reply:
        """`POST /api/rollouts/{app}/promote|abort` (`target` narrows it to one Target): unknown app 404, promote
        when nothing is paused or abort when nothing runs 409, another action 400."""
        if action not in ("promote", "abort"):
            return Reply(400, {"error": f"{shown(action)} is not a rollout action; allowed: promote, abort"})
        return getattr(self.rollouts, action)(app, target)

    def status(self, target: str | None = None) -> Reply:
        """`GET /api/status`: passes and apps, and the image update outcomes."""
        return Reply(200, {**self.pipeline.status(target), "images": self.images.status(target)})


def answer(route: Callable[[Driftless], Reply]) -> Reply:
    """Answer one HTTP request with `route` over the process's Driftless. A misconfiguration or an outage of
    a service Driftless depends on is a 503 whose JSON reason names it (details in the log, never a secret);
    any other exception is a bug and propagates (the host answers 500)."""
    try:
        return route(current())
    except (SettingsError, StorageNotConfigured, FeedbackConfigError) as exc:
        log.error("request refused: Driftless is misconfigured: %s", exc)
        return Reply(503, {"error": "Driftless is misconfigured; GET /api/health and the log name the setting"})
    except Exception as exc:
        unavailable = outage(exc)
        if unavailable is None:
            raise
        log.error("request not served: %s is unavailable: %s: %s", unavailable, type(exc).__name__, exc)
        return Reply(503, {"error": f"{unavailable} cannot be reached right now; try again later"})


def outage(exc: BaseException) -> str | None:
    """What is unavailable when `exc` is an outage of a service Driftless depends on, else None."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    if isinstance(exc, SecretsUnavailable):
        return "Key Vault"
    if isinstance(exc, SourceError):
        return "the manifests repository"
    if isinstance(exc, (github.GitHubError, github.TokenUnavailable)):
        return "GitHub"
    if isinstance(exc, ClientAuthenticationError):      # the managed identity could not get a token
        return "the Function App's storage (queues and status table)"
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        return "the Function App's storage (queues and status table)"
    if isinstance(exc, HttpResponseError) and (exc.status_code or 0) in (401, 403, 408, 429, 500, 502, 503, 504):
        return "the Function App's storage (queues and status table)"
    return None


_current: tuple[Settings, dict[str, str], Driftless] | None = None
_current_lock = threading.Lock()


def current() -> Driftless:
    """The process's Driftless, rebuilt only when settings or the storage connection change."""
    global _current
    settings = Settings.from_env()
    storage_env = {k: v for k, v in os.environ.items() if k.startswith("AzureWebJobsStorage")}
    with _current_lock:
        if _current is None or _current[0] != settings or _current[1] != storage_env:
            _current = (settings, storage_env, Driftless(settings))
        return _current[2]


