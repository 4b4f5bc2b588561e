"""LocalRunner hosts a FunctionApp the way the Functions host does, against a real Azurite."""
from __future__ import annotations

import base64
import sys
import threading
import time
from collections import defaultdict
from typing import Callable, Iterator

import azure.functions as func
import pytest
import requests
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient, QueueServiceClient, TextBase64EncodePolicy

from devtools.azurite import Azurite
from devtools.local_runner import LocalRunner

HOST_JSON = {"version": "2.0", "extensions": {"queues": {"maxDequeueCount": 3, "visibilityTimeout": "00:00:00"}}}
KEY = "test-function-key"
SEEN: defaultdict[str, list] = defaultdict(list)  # function name -> what each invocation received
FAILURES: dict[bytes, int] = {}  # queue message body -> attempts of `work` still to fail
HOLD: dict[bytes, threading.Event] = {}  # queue message body -> `held` returns once it is set


def build_app() -> func.FunctionApp:
    """A fresh app per runner: get_functions() may be called only once per FunctionApp."""
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

    @app.route(route="greet/{name:alpha}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    def greet(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(f"hello {req.route_params['name']}{req.params.get('punct', '')}")

    @app.route(route="secret")
    def secret(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse('{"ok": true}', mimetype="application/json")

    @app.route(route="boom", auth_level=func.AuthLevel.ANONYMOUS)
    def boom(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("boom")

    @app.route(route="jobs", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
    @app.queue_output(arg_name="jobs", queue_name="%TEST_JOBS_QUEUE%", connection="AzureWebJobsStorage")
    def enqueue(req: func.HttpRequest, jobs: func.Out[list[str]]) -> func.HttpResponse:
        jobs.set(req.get_body().decode().split())
        return func.HttpResponse(status_code=202)

    @app.queue_trigger(arg_name="msg", queue_name="%TEST_JOBS_QUEUE%", connection="AzureWebJobsStorage")
    def work(msg: func.QueueMessage, context) -> None:
        SEEN["work"].append((msg.get_body(), msg.dequeue_count, context.function_name))
        if FAILURES.get(msg.get_body(), 0) > 0:
            FAILURES[msg.get_body()] -= 1
            raise RuntimeError("transient")

    @app.queue_trigger(arg_name="msg", queue_name="held", connection="AzureWebJobsStorage")
    def held(msg: func.QueueMessage) -> None:
        SEEN["held"].append(msg.get_body())
        HOLD[msg.get_body()].wait(timeout=30)

    @app.queue_trigger(arg_name="msg", queue_name="doomed", connection="AzureWebJobsStorage")
    def doomed(msg: func.QueueMessage) -> None:
        SEEN["doomed"].append(msg.dequeue_count)
        raise RuntimeError("always")

    @app.timer_trigger(schedule="%TEST_SCHEDULE%", arg_name="timer")
    def tick(timer: func.TimerRequest) -> None:
        SEEN["tick"].append(timer.past_due)

    return app


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    server = Azurite().start()
    yield server
    server.stop()


@pytest.fixture
def make_runner(azurite, monkeypatch) -> Iterator[Callable[..., LocalRunner]]:
    """Start LocalRunners on a fresh app; storage holds just the (empty) trigger queues. Kwargs go to start()."""
    monkeypatch.setenv("TEST_JOBS_QUEUE", "jobs")
    monkeypatch.setenv("TEST_SCHEDULE", "0 0 3 * * *")
    service = QueueServiceClient.from_connection_string(azurite.connection_string)
    for queue in service.list_queues():
        service.delete_queue(queue.name)
    for name in ("jobs", "doomed", "held"):
        service.create_queue(name)
    SEEN.clear()
    FAILURES.clear()
    HOLD.clear()
    runners = []

    def make(**start: bool) -> LocalRunner:
        runner = LocalRunner(build_app(), connection_string=azurite.connection_string, host_json=HOST_JSON,
                             function_key=KEY)
        runners.append(runner.start(port=0, **start))
        return runner

    yield make
    for runner in runners:
        runner.stop()


@pytest.fixture
def runner(make_runner) -> LocalRunner:
    """A runner whose queues move only when the test pumps them."""
    return make_runner(pump=False)


def queue(azurite: Azurite, name: str, base64_text: bool = False) -> QueueClient:
    """A client for `name`: raw wire text, or with the SDK's base64 text encoding."""
    policy = {"message_encode_policy": TextBase64EncodePolicy()} if base64_text else {}
    return QueueClient.from_connection_string(azurite.connection_string, name, **policy)


def raw_messages(azurite: Azurite, name: str) -> list[str]:
    """Every message on queue `name`, as the text on the wire."""
    try:
        return [m.content for m in queue(azurite, name).peek_messages(max_messages=32)]
    except ResourceNotFoundError:
        return []


def test_route_params_and_query(runner):
    reply = requests.get(f"{runner.url}/api/greet/World", params={"punct": "!"}, timeout=5)
    assert (reply.status_code, reply.text) == (200, "hello World!")
    assert reply.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert requests.get(f"{runner.url}/api/GREET/Bob", timeout=5).text == "hello Bob"  # routes ignore case


def test_function_key_required(runner):
    url = f"{runner.url}/api/secret"
    for unauthorized in (requests.get(url, timeout=5), requests.get(url, params={"code": "wrong"}, timeout=5)):
        assert (unauthorized.status_code, unauthorized.content) == (401, b"")
    assert requests.get(url, headers={"x-functions-key": KEY}, timeout=5).json() == {"ok": True}
    by_code = requests.get(url, params={"code": KEY}, timeout=5)
    assert (by_code.status_code, by_code.headers["Content-Type"]) == (200, "application/json")
    assert runner.invocations["secret"] == 2


def test_unmatched_routes_are_404(runner):
    for path in ("/api/nope", "/api/greet/123", "/greet/World", "/api/greet/a/b"):
        assert requests.get(runner.url + path, timeout=5).status_code == 404, path
    assert requests.post(f"{runner.url}/api/greet/World", timeout=5).status_code == 404  # GET only
    assert not runner.invocations


def test_exception_is_500_and_recorded(runner):
    reply = requests.get(f"{runner.url}/api/boom", timeout=5)
    assert reply.status_code == 500
    assert runner.errors == [("boom", "RuntimeError('boom')")]
    assert requests.get(f"{runner.url}/api/greet/Still", timeout=5).status_code == 200


def test_output_binding_sends_base64_that_the_trigger_decodes(runner, azurite):
    assert requests.post(f"{runner.url}/api/jobs", data="alpha βeta", timeout=5).status_code == 202
    assert sorted(raw_messages(azurite, "jobs")) == sorted(
        base64.b64encode(text.encode()).decode() for text in ("alpha", "βeta"))
    assert runner.pump_once() == 2
    assert sorted(body for body, _, _ in SEEN["work"]) == [b"alpha", "βeta".encode()]
    assert {(count, name) for _, count, name in SEEN["work"]} == {(1, "work")}
    assert raw_messages(azurite, "jobs") == []


def test_transient_failure_is_retried_then_deleted(runner, azurite):
    FAILURES[b"flaky"] = 2
    queue(azurite, "jobs", base64_text=True).send_message("flaky")
    runner.drain(timeout=10)
    assert SEEN["work"] == [(b"flaky", 1, "work"), (b"flaky", 2, "work"), (b"flaky", 3, "work")]
    assert runner.errors == [("work", "RuntimeError('transient')")] * 2
    assert raw_messages(azurite, "jobs") == raw_messages(azurite, "jobs-poison") == []
    assert queue(azurite, "jobs").get_queue_properties().approximate_message_count == 0


def test_drain_waits_for_invisible_messages(runner, azurite):
    queue(azurite, "jobs", base64_text=True).send_message("late", visibility_timeout=1)
    runner.drain(timeout=10)
    assert SEEN["work"] == [(b"late", 1, "work")]


def test_always_failing_message_goes_to_poison_byte_identical(runner, azurite):
    original = base64.b64encode(b"\x00\xffnot utf-8 \xfe").decode()
    queue(azurite, "doomed").send_message(original)
    runner.drain(timeout=10)
    assert SEEN["doomed"] == [1, 2, 3]
    assert runner.invocations["doomed"] == 3
    assert raw_messages(azurite, "doomed-poison") == [original]
    assert raw_messages(azurite, "doomed") == []


def test_invalid_base64_goes_to_poison_without_invoking(runner, azurite):
    queue(azurite, "jobs").send_message("not base64!")
    runner.drain(timeout=10)
    assert not runner.invocations
    assert raw_messages(azurite, "jobs-poison") == ["not base64!"]
    assert raw_messages(azurite, "jobs") == []


def test_fire_timer_invokes_synchronously(runner):
    runner.fire_timer("tick")
    assert SEEN["tick"] == [False]
    assert runner.invocations == {"tick": 1}


def test_background_pump_and_timer_schedule(make_runner, azurite, monkeypatch):
    monkeypatch.setenv("TEST_SCHEDULE", "* * * * * *")  # every second
    make_runner(pump=True, timers=True)
    queue(azurite, "jobs", base64_text=True).send_message("background")
    deadline = time.monotonic() + 10
    while not (SEEN["work"] and len(SEEN["tick"]) >= 2) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert SEEN["work"] == [(b"background", 1, "work")]
    assert len(SEEN["tick"]) >= 2


def test_the_listener_fetches_a_new_batch_once_processing_is_down_to_new_batch_threshold(azurite, make_runner,
                                                                                        monkeypatch):
    """Like the host's queue listener (batchSize 4, newBatchThreshold 2): a new batch is fetched while the rest of
    the first one still runs, never more than batchSize + newBatchThreshold at once."""
    host = {"version": "2.0", "extensions": {"queues": {"batchSize": 4, "newBatchThreshold": 2,
                                                        "maxPollingInterval": "00:00:01"}}}
    monkeypatch.setattr(sys.modules[__name__], "HOST_JSON", host)
    bodies = [f"m{i}".encode() for i in range(8)]
    for body in bodies:
        HOLD[body] = threading.Event()
        queue(azurite, "held", base64_text=True).send_message(body.decode())
    make_runner(pump=True)

    def started(count: int) -> bool:
        deadline = time.monotonic() + 10
        while len(SEEN["held"]) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return len(SEEN["held"]) >= count

    assert started(4)                                      # the first batch: 4 running, none done
    first = list(SEEN["held"])
    for body in first[:2]:                                 # two finish: processing is down to newBatchThreshold
        HOLD[body].set()
    assert started(8)                                      # a new batch of 4 while 2 of the first still run
    assert len(SEEN["held"]) == 8 and set(first[2:]) <= set(SEEN["held"])
    assert not HOLD[first[2]].is_set() and not HOLD[first[3]].is_set()   # the first batch's last two never ended
    for event in HOLD.values():
        event.set()
