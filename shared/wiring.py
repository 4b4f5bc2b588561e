"""Wiring: one Context and one of each service per process, and GitHub webhook routing.

`current()` is what every function in function_app.py calls. The webhook is verified once here
(size, HMAC signature, JSON) and routed by event: pushes to the manifests repository go to the
reconcile pipeline, app repository pushes and `workflow_run` to image updates.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Mapping

from shared.adapters import github
from shared.adapters.git import GitSource
from shared.adapters.key_vault import Secrets, SecretsUnavailable
from shared.adapters.status_store import Store
from shared.config.settings import Settings
from shared.core.reply import Reply
from shared.core.webhook import (
    MAX_BODY,
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
    return Context(settings, secrets=secrets, store=Store(backoff_base=settings.reapply_backoff, env=env),
                   github_token=token, env=env,
                   reconciler=lambda: Reconciler(settings, source=git_source(settings, token)))


class Driftless:
    """The services of one process over one Context; what function_app.py and the CLI call."""

    def __init__(self, settings: Settings, *, env: Mapping[str, str] | None = None):
        self.settings = settings
        self.context = build_context(settings, env=env)
        self.pipeline = Pipeline(self.context)
        self.callbacks = Callbacks(self.context)
        self.images = ImageUpdates(self.context)

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
            return Reply(500, {"error": "webhook secret not configured"})
        if not signature_ok(secret, body, headers.get("x-hub-signature-256")):
            return Reply(401, {"error": "X-Hub-Signature-256 missing or wrong"})
        event, delivery = headers.get("x-github-event", ""), headers.get("x-github-delivery")
        try:
            payload = load_json(body)
        except ValueError as exc:
            return Reply(400, {"error": str(exc)})
        if event == "ping":
            return Reply(200, {"ok": "pong"})
        if self.images.handles(event, payload):
            return self.images.webhook(event, payload, delivery)
        if event != "push":
            return Reply(202, {"ignored": f"event '{event}' is not handled"})
        push = parse_push(payload)
        reason = ignore_reason(push, branch=self.settings.branch, repo_url=self.settings.repo_url or "")
        if reason:
            return Reply(202, {"ignored": reason})
        return self.pipeline.push(push, delivery)

    def status(self, target: str | None = None) -> Reply:
        """`GET /api/status`: passes and apps, and the image update outcomes."""
        return Reply(200, {**self.pipeline.status(target), "images": self.images.status(target)})


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


