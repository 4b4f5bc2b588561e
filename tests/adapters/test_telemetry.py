"""Telemetry: spans and metrics of a real pass, captured by in-memory OpenTelemetry providers;
and nothing at all (not even an import) without a connection string."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.adapters import telemetry
from shared.core.webhook import sign
from tests.conftest import WEBHOOK_SECRET, app_yaml


@pytest.fixture
def captured():
    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
    tracing = TracerProvider()
    tracing.add_span_processor(SimpleSpanProcessor(spans))
    telemetry.use(tracer_provider=tracing, meter_provider=MeterProvider(metric_readers=[reader]))
    yield spans, reader
    telemetry.use()


def metric_points(reader) -> dict[str, list]:
    points: dict[str, list] = {}
    for resource in reader.get_metrics_data().resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points.setdefault(metric.name, []).extend(metric.data.data_points)
    return points


def test_a_pushed_pass_emits_job_and_app_spans_and_the_workbook_metrics(stack, repo, captured):
    spans, reader = captured
    repo.write("apps/web.yaml", app_yaml("web"))
    head = repo.commit()
    body = json.dumps({"ref": "refs/heads/main", "after": head,
                       "commits": [{"added": ["apps/web.yaml"], "modified": [], "removed": []}]}).encode()
    requests.post(f"{stack.url}/api/github/webhook", data=body, timeout=10, headers={
        "X-GitHub-Event": "push", "X-GitHub-Delivery": "d-telemetry", "X-Hub-Signature-256": sign(WEBHOOK_SECRET, body)})
    stack.drain()
    by_name = {s.name: s for s in spans.get_finished_spans()}
    job = by_name["reconcile job"]
    assert job.attributes["target"] == "default" and job.attributes["delivery"] == "d-telemetry"
    assert job.attributes["reason"] == "push" and job.attributes["outcome"] == "reconciled"
    app = by_name["apply app"]
    assert app.attributes["app"] == "web" and app.attributes["action"] == "created"
    # the span runs from the write to its outcome: the first look at the operation comes one poll interval
    # (DRIFTLESS_ARM_POLL_INTERVAL 0.02 s) after the write, so it cannot be shorter
    assert app.end_time - app.start_time >= 20_000_000
    assert app.attributes["revision"] == head
    points = metric_points(reader)
    assert {p.attributes["action"]: p.value for p in points["driftless.apps"]} == {"created": 1}
    assert points["driftless.pass.duration"][0].count == 1
    latency = points["driftless.webhook_to_applied_ms"][0]
    assert latency.count == 1 and latency.sum > 0


def test_without_a_connection_string_nothing_is_imported_or_sent():
    code = ("import os, sys; os.environ.pop('APPLICATIONINSIGHTS_CONNECTION_STRING', None)\n"
            "from shared.adapters import telemetry\n"
            "with telemetry.span('x', a=1) as s: assert s is None\n"
            "telemetry.phase_forwarded('status', True); telemetry.queue_retry('q')\n"
            "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry', 'azure.monitor'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
