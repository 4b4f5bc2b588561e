"""Telemetry for Application Insights: a span per job and per app apply, and custom metrics.

Configured lazily and only when `APPLICATIONINSIGHTS_CONNECTION_STRING` is set: locally and in
tests without it, nothing is imported and every call is a no-op (no cold-start cost). Ingestion
is Entra-authenticated when `APPLICATIONINSIGHTS_AUTHENTICATION_STRING` names a client id.

Metric names and dimensions are a contract with the workbook and alerts in infra/:
`driftless.pass.duration` (ms; target, ok, reason), `driftless.apps` (count; target, action),
`driftless.drift` (count; target), `driftless.webhook_to_applied_ms` (ms; target),
`driftless.phase_events` (count; sink, ok), `driftless.queue_retries` (count; queue).
"""
from __future__ import annotations

import contextlib
import os
import threading
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    from shared.core.outcome import PassResult

_lock = threading.Lock()
_state: dict[str, Any] = {}


def use(*, tracer_provider: Any = None, meter_provider: Any = None) -> None:
    """Send telemetry to these OpenTelemetry providers (tests use in-memory ones); None resets."""
    with _lock:
        _state.clear()
        if tracer_provider is not None or meter_provider is not None:
            _state.update(tracer=tracer_provider.get_tracer("driftless") if tracer_provider else None,
                          meter=meter_provider.get_meter("driftless") if meter_provider else None)


def _instruments() -> dict[str, Any]:
    """Tracer and meter, configuring Azure Monitor on first use when a connection string is set."""
    with _lock:
        if "tracer" not in _state:
            if not os.environ.get("APPLICATIONINSIGHTS_CONNECTION_STRING"):
                _state.update(tracer=None, meter=None)
            else:
                from azure.monitor.opentelemetry import configure_azure_monitor
                from opentelemetry import metrics, trace

                configure_azure_monitor(logger_name="driftless", credential=_ingestion_credential())
                _state.update(tracer=trace.get_tracer("driftless"), meter=metrics.get_meter("driftless"))
        return _state


def _ingestion_credential():
    auth = os.environ.get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING", "")
    parts = dict(p.split("=", 1) for p in auth.split(";") if "=" in p)
    if parts.get("Authorization") != "AAD":
        return None
    from azure.identity import ManagedIdentityCredential

    return ManagedIdentityCredential(client_id=parts.get("ClientId"))


@contextlib.contextmanager
def span(name: str, *, start_time_ns: int | None = None, **attributes: Any) -> Iterator[Any]:
    """A span carrying `attributes` (None values dropped), from `start_time_ns` (epoch nanoseconds, for work that
    began before the span is opened; default now) to the end of the block; a no-op without telemetry."""
    tracer = _instruments().get("tracer")
    if tracer is None:
        yield None
        return
    clean = {k: v for k, v in attributes.items() if v is not None}
    with tracer.start_as_current_span(name, attributes=clean, start_time=start_time_ns) as current:
        yield current


def _add(kind: str, name: str, value: float, unit: str, attributes: dict[str, Any]) -> None:
    meter = _instruments().get("meter")
    if meter is None:
        return
    key = f"{kind}:{name}"
    with _lock:
        if key not in _state:
            make = meter.create_counter if kind == "counter" else meter.create_histogram
            _state[key] = make(name, unit=unit)
    instrument = _state[key]
    (instrument.add if kind == "counter" else instrument.record)(value, attributes)


def record_pass(result: "PassResult", *, reason: str, requested_at: str | None = None) -> None:
    """Metrics of one finished pass; webhook-to-applied latency for pushes."""
    target = result.target
    _add("histogram", "driftless.pass.duration", result.duration_ms, "ms",
         {"target": target, "ok": result.ok, "reason": reason})
    for action, count in result.summary().items():
        if count and action != "unhealthy":
            _add("counter", "driftless.apps", count, "1", {"target": target, "action": action})
    drifted = sum(1 for o in result.outcomes if o.action == "updated" and o.reason.startswith("drifted"))
    if drifted:
        _add("counter", "driftless.drift", drifted, "1", {"target": target})
    if reason == "push" and requested_at:
        waited = datetime.now(timezone.utc) - datetime.fromisoformat(requested_at)
        _add("histogram", "driftless.webhook_to_applied_ms", waited.total_seconds() * 1000, "ms", {"target": target})


def phase_forwarded(sink: str, ok: bool) -> None:
    _add("counter", "driftless.phase_events", 1, "1", {"sink": sink.split(":", 1)[0], "ok": ok})


def queue_retry(queue: str) -> None:
    _add("counter", "driftless.queue_retries", 1, "1", {"queue": queue})
