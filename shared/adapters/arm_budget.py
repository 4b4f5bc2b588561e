"""ARM's request budget as this process sees it: one mirror of ARM's token buckets per subscription.

ARM throttles each caller per subscription and operation type with token buckets (reads 250 refilled 25/s,
writes 200 refilled 10/s, deletes 200 refilled 10/s; "Understand how Azure Resource Manager throttles
requests"). Every request of a subscription's SDK client passes `ArmBudgetPolicy` (after the retry policy, so a
retry waits too): before sending it takes a token of its type from the subscription's `ArmBudget`, waiting
while the mirror is empty; after the answer the mirror is set to ARM's own count
(`x-ms-ratelimit-remaining-subscription-<type>` minus a small reserve left for people and other tools), and a
429 stops that type until its `Retry-After` has passed (the SDK's retry policy then retries it). So Driftless
slows itself before ARM throttles it, and the workers of one process share one budget per subscription.
A type is paced only once ARM has sent its count (an endpoint without these headers is never slowed; a 429 is
always honoured).
Across processes, ARM's remaining-requests header is the shared truth: each process's mirror is corrected to it
on every answer, so processes that write at once see the bucket drain and slow down.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable

BUCKETS: dict[str, tuple[float, float]] = {"reads": (250, 25.0), "writes": (200, 10.0), "deletes": (200, 10.0)}
"""ARM's buckets per subscription and caller: (size, refill per second)."""
RESERVE: dict[str, float] = {"reads": 25, "writes": 10, "deletes": 10}
"""Tokens of ARM's count Driftless leaves unspent (for people in the portal, pipelines, other tools)."""
_HEADER = "x-ms-ratelimit-remaining-subscription-"


def request_kind(method: str) -> str:
    """The ARM operation type a request counts against: reads, writes or deletes."""
    method = method.upper()
    return "reads" if method in ("GET", "HEAD") else "deletes" if method == "DELETE" else "writes"


class ArmBudget:
    """A mirror of ARM's buckets of one subscription for this process (thread-safe). `clock` and `sleep` are
    injectable (tests never sleep)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 buckets: dict[str, tuple[float, float]] | None = None) -> None:
        self._clock, self._sleep = clock, sleep
        self._sizes = dict(buckets or BUCKETS)
        now = clock()
        self._tokens = {kind: size for kind, (size, _) in self._sizes.items()}
        self._at = {kind: now for kind in self._sizes}
        self._closed_until = {kind: 0.0 for kind in self._sizes}
        self._counted: set[str] = set()
        self._uncounted: set[str] = set()
        self._in_flight = {kind: 0 for kind in self._sizes}
        self._lock = threading.Lock()
        self.waited_s = 0.0
        self.throttled = 0

    def tokens(self, kind: str) -> float:
        """Tokens of `kind` this process may spend now."""
        with self._lock:
            return self._refill(kind, self._clock())

    def acquire(self, kind: str) -> None:
        """Take one token of `kind`, waiting until there is one and any `Retry-After` has passed. Until ARM's first
        answer says whether it counts this type, one request of it is in flight at a time."""
        while True:
            with self._lock:
                now = self._clock()
                tokens = self._refill(kind, now)
                wait = max(self._closed_until[kind] - now, 0.0)
                probing = kind not in self._counted and kind not in self._uncounted
                if wait == 0 and probing and self._in_flight[kind]:
                    wait = 0.02
                elif wait == 0 and (tokens >= 1 or kind in self._uncounted):
                    self._tokens[kind] = tokens - 1
                    self._in_flight[kind] += 1
                    return
                elif wait == 0 and probing:
                    self._tokens[kind] = tokens - 1
                    self._in_flight[kind] += 1
                    return
                elif wait == 0:
                    wait = max((1 - tokens) / self._sizes[kind][1], 0.001)
                self.waited_s += wait
            self._sleep(wait)

    def abandon(self, kind: str) -> None:
        """A request of `kind` got no answer (connection error): it is no longer in flight."""
        with self._lock:
            self._in_flight[kind] = max(0, self._in_flight[kind] - 1)

    def observe(self, kind: str, status: int, headers: Any) -> None:
        """Correct the mirror from one ARM answer: to ARM's remaining count (less the reserve); on 429, no
        token of `kind` until `Retry-After` seconds have passed."""
        remaining = _number(headers.get(_HEADER + kind))
        shared = _number(headers.get(f"{_HEADER}global-{kind}"))
        with self._lock:
            now = self._clock()
            self._in_flight[kind] = max(0, self._in_flight[kind] - 1)
            tokens = self._refill(kind, now)
            if remaining is None and shared is None and kind not in self._counted and status < 400:
                self._uncounted.add(kind)  # an endpoint that does not count (not ARM): never paced
            counts = [c for c in (remaining, shared) if c is not None]
            if counts:
                self._counted.add(kind)
                self._uncounted.discard(kind)
                # ARM's count is the truth, up or down (other processes spend it too, and ARM refills at its own
                # rate); requests still in flight may not be in it yet: they will be
                tokens = min(counts) - RESERVE.get(kind, 0) - self._in_flight[kind]
            self._tokens[kind] = tokens
            if status == 429:
                self.throttled += 1
                retry_after = _number(headers.get("Retry-After")) or 1.0
                self._closed_until[kind] = max(self._closed_until[kind], now + retry_after)
                self._tokens[kind] = min(self._tokens[kind], 0.0)

    def _refill(self, kind: str, now: float) -> float:
        size, rate = self._sizes[kind]
        self._tokens[kind] = min(size, self._tokens[kind] + max(0.0, now - self._at[kind]) * rate)
        self._at[kind] = now
        return self._tokens[kind]


def _number(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def policy(budget: ArmBudget):
    """An azure-core pipeline policy (use it in `per_retry_policies`) that spends `budget` on every request."""
    from azure.core.pipeline.policies import SansIOHTTPPolicy

    class ArmBudgetPolicy(SansIOHTTPPolicy):
        def on_request(self, request) -> None:
            budget.acquire(request_kind(request.http_request.method))

        def on_response(self, request, response) -> None:
            http = response.http_response
            budget.observe(request_kind(request.http_request.method), http.status_code, http.headers)

        def on_exception(self, request) -> None:
            budget.abandon(request_kind(request.http_request.method))

    return ArmBudgetPolicy()


_budgets: dict[str, ArmBudget] = {}
_budgets_lock = threading.Lock()


def for_subscription(subscription_id: str) -> ArmBudget:
    """The process's budget of one subscription (shared by every Target and worker thread in it)."""
    with _budgets_lock:
        key = subscription_id.lower()
        if key not in _budgets:
            _budgets[key] = ArmBudget()
        return _budgets[key]
