"""The CI feedback loop: Flux / Argo CD phase callbacks and Driftless's own passes, forwarded to CI.

`POST /api/gitopsphase` verifies and enqueues on `phase-events`; the queue worker forwards each
event to its sinks. Each sink is retried on its own (a failing subscriber never blocks the
rest), commit statuses are posted only when they change (so Flux's periodic
`ReconciliationSucceeded` does not spam), and dispatches / pipeline callbacks happen exactly
once per (commit, operator object, outcome), recorded in the status store.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import uuid
from typing import Any, Mapping

from shared.adapters import telemetry
from shared.core.feedback_config import (
    FeedbackConfig,
    FeedbackConfigError,
    SinkFailed,
    load_configs,
)
from shared.core.jobs import now_iso
from shared.core.phases import PhaseEvent, parse_event, template_hint
from shared.core.queues import PHASE_QUEUE
from shared.core.reply import Reply, shown
from shared.core.webhook import load_json
from shared.services.ci_sinks import Forwarder
from shared.services.context import Context

log = logging.getLogger("driftless.callbacks")

MAX_BODY = 1024 * 1024
MAX_CONTEXT = 600
"""Longest operator object (`flux/<namespace>/<kind>/<name>`, `argocd/<app>`) accepted; Kubernetes names fit."""
QUEUED_MESSAGE, QUEUED_RESOURCES = 4000, 50
"""What of an event's free text is queued and forwarded: a Storage queue message holds at most 64 KiB."""
MAX_QUEUED = 45_000
"""Largest queued envelope (JSON bytes); base64 makes it 60 KB, under the queue's 64 KiB."""
MAX_ATTEMPTS = 6
ABANDONED_WITHIN_HOURS = 72


def _queued(event: PhaseEvent) -> dict[str, Any]:
    """The event as queued for the forwarder: parsed once at intake, free text cut to fit a queue message."""
    cut = {"message": event.message[:QUEUED_MESSAGE], "reason": event.reason[:300],
           "resources": [r[:300] for r in event.resources[:QUEUED_RESOURCES]]}
    return {**event.to_dict(), **cut}


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:40]


class Callbacks:
    """Intake, forwarding and Driftless's own statuses; shares the Pipeline's secrets and store."""

    retry_base_seconds = 5
    """A failed sink is retried after 10, 20, 40, ... s (this x 2^attempt, at most 300 s); tests shorten it."""

    def __init__(self, context: Context):
        self.context = context
        self.settings, self.secrets, self.store = context.settings, context.secrets, context.store

    @property
    def configs(self) -> dict[str, FeedbackConfig]:
        return load_configs(self.settings.feedback)

    def _enqueue(self, envelope: dict[str, Any], *, delay: int = 0) -> None:
        self.context.send(PHASE_QUEUE, json.dumps(envelope), delay=delay)

    # --- intake --------------------------------------------------------------------------
    def accept(self, headers: Mapping[str, str], params: Mapping[str, str], body: bytes) -> Reply:
        """Authenticate (phase key or Flux generic-hmac), validate, enqueue; answer at once."""
        from shared.adapters.key_vault import SecretsUnavailable

        headers = {k.lower(): v for k, v in headers.items()}
        if len(body) > MAX_BODY:
            return Reply(413, {"error": f"body larger than {MAX_BODY} bytes"})
        try:
            authorized = self._authorized(headers, params, body)
        except SecretsUnavailable as exc:
            log.error("phase event refused: %s", exc)
            return Reply(503, {"error": "the phase key cannot be read right now"})
        if not authorized:
            return Reply(401, {"error": "a valid X-Signature (generic-hmac) or phase key (?code= / x-functions-key) is required"})
        try:
            data = load_json(body)
        except ValueError as exc:
            hint = template_hint(body)
            return Reply(400, {"error": f"{exc}; {hint}" if hint else str(exc)})
        event = parse_event(data)
        if not event.commit:
            return Reply(202, {"ignored": "no commit revision in the event", "context": event.context[:200]})
        try:
            configs = self.configs
        except FeedbackConfigError as exc:
            log.error("phase event not forwarded: %s", exc)
            return Reply(503, {"error": "DRIFTLESS_FEEDBACK is invalid (a misconfiguration); see the logs"})
        if event.config not in configs:
            return Reply(202, {"ignored": f"no feedback config named {shown(event.config)}"})
        if len(event.context) > MAX_CONTEXT:
            return Reply(400, {"error": f"the event's object (kind, namespace, name or app) is longer than "
                                        f"{MAX_CONTEXT} characters: {shown(event.context)}"})
        envelope = {"v": 1, "id": uuid.uuid4().hex, "received_at": now_iso(), "event": {"phase": _queued(event)}}
        if len(json.dumps(envelope).encode()) > MAX_QUEUED:
            return Reply(413, {"error": "the event is too large to queue, even with its message cut"})
        self._enqueue(envelope)
        return Reply(202, {"accepted": envelope["id"], "context": event.context[:200], "commit": event.commit,
                           "state": event.state, "finished": event.finished})

    def _authorized(self, headers: Mapping[str, str], params: Mapping[str, str], body: bytes) -> bool:
        signature = headers.get("x-signature")
        if signature:
            secret = self.secrets.flux_hmac()
            expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest() if secret else ""
            return bool(secret) and hmac.compare_digest(expected.encode(), signature.strip().encode())
        key = params.get("code") or headers.get("x-functions-key")
        if key:
            wanted = self.secrets.get(self.settings.phase_key_name)
            return bool(wanted) and hmac.compare_digest(wanted.encode(), key.encode())
        return False

    # --- the worker ----------------------------------------------------------------------
    def forward(self, body: bytes) -> str:
        """Deliver one queued event to each of its sinks; failed sinks are re-queued alone."""
        try:
            envelope = json.loads(body)
            data = envelope["event"]
            parsed = data.get("phase") or data.get("driftless")     # parsed at intake / Driftless's own
            event = PhaseEvent(**parsed) if parsed else parse_event(data)   # else: queued by an older version
        except (ValueError, KeyError, TypeError) as exc:
            return self.context.park(PHASE_QUEUE, body, f"not a phase event: {exc}")
        config = self.configs.get(event.config)
        if config is None or not event.commit:
            log.warning("phase event %s dropped: no feedback config %r", envelope.get("id"), event.config)
            return "dropped"
        forwarder = Forwarder(config, github_api=self.settings.github_api_url,
                              github_token=self.context.github_token, azdo_token=self.secrets.azdo_token,
                              secret=self.secrets.get)
        failed = []
        for sink in envelope.get("sinks") or config.sinks(event):
            try:
                self._deliver(forwarder, event, sink, str(envelope.get("received_at", "")))
                telemetry.phase_forwarded(sink, True)
            except SinkFailed as exc:
                telemetry.phase_forwarded(sink, False)
                log.warning("%s for %s@%s not delivered: %s", sink, event.context, event.commit[:12], exc)
                failed.append(sink)
        if not failed:
            return "forwarded"
        attempt = int(envelope.get("attempt", 0)) + 1
        retry = {**envelope, "sinks": failed, "attempt": attempt}
        if attempt >= MAX_ATTEMPTS:
            log.error("phase event %s parked after %d attempts; failed sinks: %s", envelope.get("id"), attempt,
                      ", ".join(failed))
            return self.context.park(PHASE_QUEUE, json.dumps(retry), f"sinks still failing: {', '.join(failed)}")
        self._enqueue(retry, delay=min(300, self.retry_base_seconds * 2 ** attempt))
        return "retrying"

    def _deliver(self, forwarder: Forwarder, event: PhaseEvent, sink: str, received_at: str) -> None:
        key = f"{event.config}|{event.commit}|{event.context}"
        if sink == "status":
            changed, previous = self.store.advance("status", _digest(key), order=received_at,
                                                   value=f"{event.state}|{event.description}",
                                                   detail=json.dumps(event.to_dict()))
            if not changed:
                return
            value = f"{event.state}|{event.description}"
            if self.store.newest("status", _digest(key))[0] > received_at:
                return                                  # a newer status was recorded meanwhile; its worker posts it
            try:
                forwarder.status(event)
            except Exception:
                self.store.restore("status", _digest(key), previous)
                raise
            # Two workers may post statuses of one commit at once: if a newer one was recorded while this one
            # was on the wire, this post may have landed after it, so the newest is posted once more.
            newest, newest_value, detail = self.store.newest("status", _digest(key))
            if newest > received_at and newest_value != value and detail:
                forwarder.status(PhaseEvent(**json.loads(detail)))
        elif sink in ("dispatch", "pipelines"):
            claim = _digest(f"{key}|{event.state}|{sink}")
            if not self.store.claim(sink, claim):
                return
            try:
                outcome = forwarder.dispatch(event) if sink == "dispatch" else forwarder.pipelines(event)
                log.info("%s for %s@%s: %s", sink, event.context, event.commit[:12], outcome or "sent")
            except Exception:
                self.store.release(sink, claim)
                raise
        elif sink.startswith("subscriber:"):
            forwarder.subscriber(event, sink.split(":", 1)[1])

    # --- abandoned PRs ---------------------------------------------------------------------
    def complete_abandoned(self) -> list[str]:
        """Fail the waiting agentless tasks of PRs abandoned within 72 h (each PR once)."""
        done = []
        for config in self.configs.values():
            if not config.pipelines:
                continue
            forwarder = Forwarder(config, github_api=self.settings.github_api_url,
                                  github_token=self.context.github_token, azdo_token=self.secrets.azdo_token,
                                  secret=self.secrets.get)
            for number in forwarder.abandoned_prs(ABANDONED_WITHIN_HOURS):
                claim = _digest(f"{config.name}|abandoned|{number}")
                if not self.store.claim("abandoned", claim):
                    continue
                try:
                    done.append(forwarder.complete_task(number, "failed"))
                except SinkFailed:
                    self.store.release("abandoned", claim)
                    raise
        return done
