"""What every service receives: settings, secrets, the status store, queues and the reconciler.

A narrow object instead of the services themselves: services never call each other (an
import-linter contract keeps them independent); `shared.wiring` builds one Context per process
and hands it to each.
"""
from __future__ import annotations

import json
import logging
import threading
import uuid
from typing import TYPE_CHECKING, Callable, Mapping

from shared.adapters import storage
from shared.config.settings import Settings
from shared.core.feedback_config import load_configs
from shared.core.jobs import now_iso
from shared.core.queues import PHASE_QUEUE
from shared.core.reply import Reply

if TYPE_CHECKING:
    from shared.adapters.github import TokenProvider
    from shared.adapters.key_vault import Secrets
    from shared.adapters.status_store import Store
    from shared.core.phases import PhaseEvent
    from shared.engines.reconciler import Reconciler

log = logging.getLogger("driftless")


class Context:
    """Settings, secrets, store, the GitHub token and a lazily built Reconciler (Git cache, engines)."""

    def __init__(self, settings: Settings, *, secrets: "Secrets", store: "Store", github_token: "TokenProvider",
                 reconciler: Callable[[], "Reconciler"], env: Mapping[str, str] | None = None):
        self.settings, self.secrets, self.store, self.env = settings, secrets, store, env
        self.github_token = github_token
        self._make_reconciler = reconciler
        self._reconciler: "Reconciler | None" = None
        self._lock = threading.Lock()

    @property
    def reconciler(self) -> "Reconciler":
        with self._lock:
            if self._reconciler is None:
                self._reconciler = self._make_reconciler()
            return self._reconciler

    def send(self, queue: str, text: str, *, delay: int = 0) -> None:
        """Put a message on one of Driftless's queues (on the Function App's storage account)."""
        storage.send(queue, text, self.env, delay=delay)

    def report(self, event: "PhaseEvent") -> None:
        """Queue Driftless's own phase event (a pass, a rollout) for the CI feedback forwarder when a `default`
        feedback config exists; never raises (CI feedback must not break a pass or a rollout, a bad
        DRIFTLESS_FEEDBACK included)."""
        try:
            if "default" not in load_configs(self.settings.feedback):
                return
            self.send(PHASE_QUEUE, json.dumps({"v": 1, "id": uuid.uuid4().hex, "received_at": now_iso(),
                                               "event": {"driftless": event.to_dict()}}))
        except Exception as exc:
            log.error("could not queue the commit status %s: %s: %s", event.context, type(exc).__name__, exc)

    def park(self, queue: str, body: bytes | str, why: str) -> str:
        """Park a message that can never succeed in `<queue>-poison`, logged at ERROR; returns "parked"."""
        poison = storage.park(queue, body, self.env)
        log.error("parked a malformed message of %s (%s); see queue %s", queue, why, poison)
        return "parked"

    def once_per_delivery(self, delivery: str | None, enqueue: Callable[[], Reply]) -> Reply:
        """Run `enqueue` once per GitHub delivery id: a repeat answers 200 duplicate. When enqueueing fails the
        claim is released (GitHub's redelivery is then accepted) and the error propagates: `wiring.answer`
        turns an outage into a 503 with a reason."""
        if delivery and not self.store.claim_delivery(delivery):
            return Reply(200, {"duplicate": delivery})
        try:
            return enqueue()
        except Exception as exc:
            log.error("event %s not enqueued: %s: %s", delivery, type(exc).__name__, exc)
            if delivery:
                try:
                    self.store.release_delivery(delivery)
                except Exception as release_error:  # storage down too: the claim expires on its own
                    log.error("the claim of delivery %s could not be released (%s); a redelivery within its "
                              "expiry is answered as a duplicate", delivery, type(release_error).__name__)
            raise
