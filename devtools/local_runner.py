"""A small local Functions host for a v2-model FunctionApp: HTTP, Storage-queue and timer triggers.

Dev-only stand-in for Azure Functions Core Tools. Everything comes from `app.get_functions()`
(names, bindings, user functions) and host.json; queues are real Azure Storage (Azurite)
reached with the real SDK, with the queue extension's base64 wire format, retries and poison queues.
`python -m devtools.local_runner [--port 7071] [--timers]` hosts ./function_app.py.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import collections
import inspect
import json
import logging
import os
import re
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qsl, unquote, urlsplit

import azure.functions as func
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.functions.http import HttpResponseConverter
from azure.functions.queue import QueueMessage, QueueMessageOutConverter
from azure.functions.timer import TimerRequest
from azure.storage.queue import BinaryBase64EncodePolicy, QueueClient

from devtools.azurite import wait_for_shutdown

log = logging.getLogger("driftless.localrunner")

SUPPORTED_BINDINGS = {"httpTrigger", "queueTrigger", "timerTrigger", "http", "queue"}
RECEIVE_LEASE = 600  # seconds a received message stays invisible while its invocation runs
BUSY_POLL = 0.1
_BASE64 = BinaryBase64EncodePolicy()  # str payloads are sent as their UTF-8 bytes: TextBase64EncodePolicy's output
_TIMESPAN = re.compile(r"(?:(\d+)\.)?(\d+):(\d+):(\d+(?:\.\d+)?)")
_QUEUE_NAME = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?!-)){1,61}[a-z0-9]")  # Azure Storage queue naming rules
_PARAM = re.compile(r"\{(\*{0,2})([A-Za-z_]\w*)((?::[^{}?]+)*)(\?)?\}")
_CONSTRAINTS = {
    "alpha": r"[a-z]+", "int": r"-?\d+", "long": r"-?\d+", "bool": r"true|false",
    "guid": r"\{?[0-9a-f]{8}-?(?:[0-9a-f]{4}-?){3}[0-9a-f]{12}\}?",
    **dict.fromkeys(("decimal", "double", "float"), r"[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?"),
}
_CRON_RANGES = ((0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 6))  # sec min hour day month day-of-week


@dataclass(frozen=True)
class _Function:
    name: str
    call: Callable[..., Any]
    trigger: dict[str, Any]
    outputs: tuple[dict[str, Any], ...]
    wants_context: bool


@dataclass(frozen=True)
class _Context:
    """What the worker passes as `context`, reduced to the two fields Driftless reads."""
    invocation_id: str
    function_name: str


class _Out(func.Out):
    """The value holder the worker passes for an output-binding parameter."""

    def __init__(self) -> None:
        self._value: Any = None

    def set(self, val: Any) -> None:
        self._value = val

    def get(self) -> Any:
        return self._value


@dataclass(frozen=True)
class _Route:
    function: _Function
    methods: frozenset[str]  # empty: any method
    pattern: re.Pattern[str]
    constraints: dict[str, list[str]]
    rank: tuple[int, ...]  # ASP.NET-style precedence, per segment: literal first, catch-all last

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """Route parameters (URL-decoded) if `method path` is this route, else None."""
        found = self.pattern.fullmatch(path)
        if not found or (self.methods and method not in self.methods):
            return None
        params = {name: unquote(value) for name, value in found.groupdict().items() if value is not None}
        ok = all(re.fullmatch(c, params[name], re.IGNORECASE) for name, cs in self.constraints.items()
                 if name in params for c in cs)
        return params if ok else None


def _mask_key(text: str) -> str:
    return re.sub(r"([?&]code=)[^&\s]*", r"\1***", text)


def _seconds(timespan: str) -> float:
    """Seconds in a host.json timespan "[d.]hh:mm:ss[.fff]"."""
    found = _TIMESPAN.fullmatch(timespan.strip())
    if not found:
        raise ValueError(f"not a timespan (hh:mm:ss): {timespan!r}")
    days, hours, minutes, seconds = found.groups()
    return int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _resolve(value: str) -> str:
    """Replace each %NAME% with app setting NAME from os.environ, as the host does for binding values."""
    def setting(found: re.Match[str]) -> str:
        if found[1] not in os.environ:
            raise ValueError(f"app setting {found[1]!r} (used as %{found[1]}%) is not set")
        return os.environ[found[1]]
    return re.sub(r"%([^%]+)%", setting, value)


def _compile_route(template: str) -> tuple[re.Pattern[str], dict[str, list[str]], tuple[int, ...]]:
    """Regex, constraints and precedence for an ASP.NET route template ({name}, {name:alpha}, {name?}, {*rest})."""
    pattern, constraints, rank = "", {}, []
    for segment in template.strip("/").split("/"):
        piece, position, params = "", 0, list(_PARAM.finditer(segment))
        for param in params:
            catch_all, name, spec, _ = param.groups()
            names = spec.split(":")[1:]
            unknown = [c for c in names if c.lower() not in _CONSTRAINTS]
            if unknown:
                raise ValueError(f"route {template!r}: constraint {unknown[0]!r} is not supported by the local runner")
            constraints[name] = [_CONSTRAINTS[c.lower()] for c in names]
            piece += re.escape(segment[position:param.start()]) + f"(?P<{name}>{'.*' if catch_all else '[^/]+'})"
            position = param.end()
        piece += re.escape(segment[position:])
        whole = _PARAM.fullmatch(segment)
        pattern += f"(?:/{piece})?" if whole and (whole[1] or whole[4]) else f"/{piece}"
        rank.append(1 if not params else 2 if not whole else 5 if whole[1] else 3 if whole[3] else 4)
    return re.compile(pattern + "/?", re.IGNORECASE), constraints, tuple(rank)


def _parse_cron(schedule: str) -> list[set[int]]:
    """Allowed values of each field of a 6-field NCRONTAB expression (*, n, a,b, a-b, */n, a-b/n)."""
    fields = schedule.split()
    if len(fields) != 6:
        raise ValueError(f"NCRONTAB needs 6 fields (sec min hour day month day-of-week): {schedule!r}")
    allowed = []
    for text, (low, high) in zip(fields, _CRON_RANGES):
        values: set[int] = set()
        for part in text.split(","):
            span, _, step = part.partition("/")
            start, _, end = (f"{low}-{high}" if span == "*" else span).partition("-")
            values.update(range(int(start), int(end or (high if step else start)) + 1, int(step or 1)))
        if not values or min(values) < low or max(values) > high:
            raise ValueError(f"NCRONTAB field {text!r} is outside {low}-{high} in {schedule!r}")
        allowed.append(values)
    return allowed


def _next_occurrence(fields: list[set[int]], after: datetime) -> datetime:
    """The first time strictly after `after` that matches every field (day AND day-of-week, as NCRONTAB)."""
    seconds, minutes, hours, days, months, weekdays = fields
    moment = after.replace(microsecond=0) + timedelta(seconds=1)
    while moment < after + timedelta(days=5 * 366):
        if moment.month not in months:
            moment = (moment.replace(day=1, hour=0, minute=0, second=0) + timedelta(days=32)).replace(day=1)
        elif moment.day not in days or moment.isoweekday() % 7 not in weekdays:
            moment = moment.replace(hour=0, minute=0, second=0) + timedelta(days=1)
        elif moment.hour not in hours:
            moment = moment.replace(minute=0, second=0) + timedelta(hours=1)
        elif moment.minute not in minutes:
            moment = moment.replace(second=0) + timedelta(minutes=1)
        elif moment.second not in seconds:
            moment += timedelta(seconds=1)
        else:
            return moment
    raise ValueError("the schedule never fires")


def _queue_payloads(datum: Any) -> list[bytes]:
    """The messages the host enqueues for a queue output, from the worker's encoding of the value."""
    if datum.type == "string":
        return [datum.value.encode()]
    if datum.type == "bytes":
        return [datum.value]
    items = json.loads(datum.value)
    return [item.encode() if isinstance(item, str) else json.dumps(item, separators=(",", ":")).encode()
            for item in (items if isinstance(items, list) else [items])]


def _http_reply(datum: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body the host sends for the worker's encoding of an http output."""
    if datum.type == "string":
        return 200, [("Content-Type", "text/plain; charset=utf-8")], datum.value.encode()
    value = datum.value
    headers = [(name, header.value) for name, header in value["headers"].items()]
    headers += [("Set-Cookie", morsel.OutputString()) for cookie in value["cookies"] or [] for morsel in cookie.values()]
    return int(value["status_code"].value), headers, value["body"].value


def _joined(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Repeated keys joined with ",", as the host flattens query strings and headers."""
    joined: dict[str, str] = {}
    for key, value in pairs:
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    return joined


def _load(app: func.FunctionApp) -> list[_Function]:
    """The app's functions as the worker indexes them (get_functions(), once), with %settings% resolved."""
    functions = []
    for function in app.get_functions():
        name = function.get_function_name()
        bindings = json.loads(function.get_function_json())["bindings"]
        for binding in bindings:
            direction_ok = binding["type"].endswith("Trigger") or binding["direction"].lower() == "out"
            if binding["type"] not in SUPPORTED_BINDINGS or not direction_ok:
                raise ValueError(f"{name}: {binding['type']} binding is not supported by the local runner")
            for key in ("queueName", "schedule"):
                if key in binding:
                    binding[key] = _resolve(binding[key])
            if "queueName" in binding and not _QUEUE_NAME.fullmatch(binding["queueName"]):
                raise ValueError(f"{name}: invalid queue name {binding['queueName']!r}")
        call = function.get_user_function()
        functions.append(_Function(
            name=name, call=call, trigger=next(b for b in bindings if b["type"].endswith("Trigger")),
            outputs=tuple(b for b in bindings if b["direction"].lower() == "out"),
            wants_context="context" in inspect.signature(call).parameters))
    return functions


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    runner: "LocalRunner"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stall
    server: _Server

    def _serve(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        url = f"http://{self.headers.get('Host', '%s:%s' % self.server.server_address[:2])}{self.path}"
        status, headers, payload = self.server.runner._http(self.command, url, list(self.headers.items()), body)
        self.send_response(status)
        for name, value in headers:
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_TRACE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature fixed by the stdlib
        """Access log at DEBUG, with `code=` (a function key) masked as the Functions host does."""
        log.debug("%s " + format, self.client_address[0], *(_mask_key(str(a)) for a in args))


class LocalRunner:
    """Hosts `app` locally: HTTP triggers on a loopback server, queue triggers on real Storage, timers."""

    def __init__(self, app: func.FunctionApp, *, connection_string: str, host_json: str | dict = "host.json",
                 function_key: str = "local-dev-key"):
        host = json.loads(Path(host_json).read_text()) if isinstance(host_json, str) else host_json
        extensions = host.get("extensions", {})
        queues, http = extensions.get("queues", {}), extensions.get("http", {})
        if queues.get("messageEncoding", "base64").lower() != "base64":
            raise ValueError("host.json extensions.queues.messageEncoding: only base64 is supported locally")
        self._batch_size = int(queues.get("batchSize", 16))
        # the host fetches a new batch once the messages a queue's listener is processing are down to this
        # (default batchSize / 2 on one vCPU), so up to batchSize + newBatchThreshold run at once per queue
        self._new_batch_threshold = int(queues.get("newBatchThreshold", self._batch_size // 2))
        self._max_dequeue = int(queues.get("maxDequeueCount", 5))
        self._retry_delay = round(_seconds(queues.get("visibilityTimeout", "00:00:00")))
        self._idle_poll = min(_seconds(queues.get("maxPollingInterval", "00:01:00")), 1.0)
        self._connection_string = connection_string
        self._function_key = function_key
        functions = _load(app)
        self.function_names = [f.name for f in functions]
        self._queue_functions = [f for f in functions if f.trigger["type"] == "queueTrigger"]
        self._timers = {f.name: (f, _parse_cron(f.trigger["schedule"]))
                        for f in functions if f.trigger["type"] == "timerTrigger"}
        self._routes = sorted((self._route(f, http.get("routePrefix", "api")) for f in functions
                               if f.trigger["type"] == "httpTrigger"), key=lambda r: r.rank)
        self.invocations: collections.Counter[str] = collections.Counter()
        self.errors: list[tuple[str, str]] = []
        self.url = ""
        self._clients: dict[str, QueueClient] = {}
        self._lock = threading.Lock()
        self._pump_lock = threading.Lock()
        self._stopping = threading.Event()
        per_queue = self._batch_size + self._new_batch_threshold
        self._pool = ThreadPoolExecutor(max_workers=max(4, per_queue * len(self._queue_functions) + 2),
                                        thread_name_prefix="localrunner")
        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []

    @staticmethod
    def _route(function: _Function, prefix: str) -> _Route:
        pattern, constraints, rank = _compile_route(f"{prefix}/{function.trigger.get('route') or function.name}")
        methods = frozenset(m.upper() for m in function.trigger.get("methods") or ())
        return _Route(function, methods, pattern, constraints, rank)

    def start(self, host: str = "127.0.0.1", port: int = 7071, *, pump: bool = True,
              timers: bool = False) -> "LocalRunner":
        """Serve HTTP triggers (port 0: any free port); poll queue triggers if `pump`; run timers if `timers`."""
        self._server = _Server((host, port), _Handler)
        self._server.runner = self
        self.url = f"http://{host}:{self._server.server_port}"
        targets: list[Callable[[], None]] = [self._server.serve_forever]
        if pump:
            targets.append(self._pump_forever)
        if timers:
            targets += [lambda name=name: self._timer_forever(name) for name in self._timers]
        self._threads = [threading.Thread(target=t, daemon=True, name="localrunner-host") for t in targets]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, polling and timers; wait for running invocations to finish."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join()
        self._pool.shutdown(wait=True)

    # invocation

    def _invoke(self, function: _Function, inputs: dict[str, Any]) -> dict[str, Any] | None:
        """Run one invocation in the calling thread; its http outputs by binding name, or None if it failed."""
        with self._lock:
            self.invocations[function.name] += 1
        try:
            return self._call(function, inputs)
        except Exception as error:  # noqa: BLE001 - a failed invocation must never take the host down
            log.exception("Function %s failed", function.name)
            with self._lock:
                self.errors.append((function.name, repr(error)))
            return None

    def _call(self, function: _Function, inputs: dict[str, Any]) -> dict[str, Any]:
        """Call the user function with its bindings by parameter name; then deliver queue outputs."""
        outs = {b["name"]: _Out() for b in function.outputs if b["name"] != "$return"}
        kwargs = {**inputs, **outs}
        if function.wants_context:
            kwargs["context"] = _Context(invocation_id=str(uuid.uuid4()), function_name=function.name)
        result = function.call(**kwargs)
        if inspect.iscoroutine(result):
            result = asyncio.run(result)
        http, messages = {}, []
        for binding in function.outputs:
            value = result if binding["name"] == "$return" else outs[binding["name"]].get()
            if binding["type"] == "http":
                http[binding["name"]] = HttpResponseConverter.encode(value, expected_type=None)
            elif value is not None:
                datum = QueueMessageOutConverter.encode(value, expected_type=None)
                messages += [(binding["queueName"], payload) for payload in _queue_payloads(datum)]
        for queue, payload in messages:
            self._send(queue, _BASE64.encode(payload))
        return http

    # HTTP triggers

    def _http(self, method: str, url: str, headers: list[tuple[str, str]], body: bytes,
              ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Status, headers and body for one HTTP request, routed as the host routes it."""
        parts = urlsplit(url)
        params = _joined(parse_qsl(parts.query, keep_blank_values=True))
        found = next(((r, p) for r in self._routes if (p := r.match(method, parts.path)) is not None), None)
        if found is None:
            return 404, [], b""
        route, route_params = found
        request_headers = _joined(headers)
        if route.function.trigger.get("authLevel", "function").lower() != "anonymous":
            keys = {params.get("code"), *(v for k, v in request_headers.items() if k.lower() == "x-functions-key")}
            if self._function_key not in keys:
                return 401, [], b""
        request = func.HttpRequest(method=method, url=url, headers=request_headers, params=params,
                                   route_params=route_params, body=body)
        outputs = self._pool.submit(self._invoke, route.function, {route.function.trigger["name"]: request}).result()
        if outputs is None:
            return 500, [], b""
        return _http_reply(next(iter(outputs.values())))

    # queue triggers

    def _client(self, queue: str) -> QueueClient:
        """A raw (no message encoding) client for `queue`; message text passes through unchanged."""
        with self._lock:
            if queue not in self._clients:
                self._clients[queue] = QueueClient.from_connection_string(self._connection_string, queue)
            return self._clients[queue]

    def _send(self, queue: str, text: str) -> None:
        """Add `text` to `queue` verbatim, creating the queue if it does not exist."""
        client = self._client(queue)
        try:
            client.send_message(text)
        except ResourceNotFoundError:
            try:
                client.create_queue()
            except ResourceExistsError:
                pass
            client.send_message(text)

    def _receive(self, function: _Function) -> list[Any]:
        try:
            return list(self._client(function.trigger["queueName"]).receive_messages(
                max_messages=self._batch_size, messages_per_page=self._batch_size, visibility_timeout=RECEIVE_LEASE))
        except ResourceNotFoundError:
            return []

    def _process(self, function: _Function, message: Any) -> int:
        """Bind, invoke and settle one message (delete, retry later, or poison); 1 if the function ran."""
        queue = function.trigger["queueName"]
        client = self._client(queue)
        try:
            body = base64.b64decode("".join((message.content or "").split()), validate=True)
        except binascii.Error:
            log.error("Message %s on %s is not base64: moved to %s-poison", message.id, queue, queue)
            self._poison(queue, message)
            return 0
        trigger = QueueMessage(id=message.id, body=body, dequeue_count=message.dequeue_count,
                               expiration_time=message.expires_on, insertion_time=message.inserted_on,
                               time_next_visible=message.next_visible_on, pop_receipt=message.pop_receipt)
        if self._invoke(function, {function.trigger["name"]: trigger}) is not None:
            client.delete_message(message.id, message.pop_receipt)
        elif message.dequeue_count >= self._max_dequeue:
            log.error("Message %s on %s failed %d times: moved to %s-poison", message.id, queue,
                      message.dequeue_count, queue)
            self._poison(queue, message)
        else:
            client.update_message(message.id, message.pop_receipt, visibility_timeout=self._retry_delay)
        return 1

    def _poison(self, queue: str, message: Any) -> None:
        self._send(f"{queue}-poison", message.content)
        self._client(queue).delete_message(message.id, message.pop_receipt)

    def _pump(self) -> tuple[int, int]:
        """One receive per queue trigger, processed in the pool; (messages received, invocations run)."""
        futures = [self._pool.submit(self._process, function, message)
                   for function in self._queue_functions for message in self._receive(function)]
        return len(futures), sum(future.result() for future in futures)

    def pump_once(self) -> int:
        """Receive and process up to batchSize messages from each queue trigger; how many invocations ran."""
        with self._pump_lock:
            return self._pump()[1]

    def _queues_empty(self) -> bool:
        """Every trigger queue holds no message, visible or not (missing queues count as empty)."""
        def count(function: _Function) -> int:
            try:
                return self._client(function.trigger["queueName"]).get_queue_properties().approximate_message_count
            except ResourceNotFoundError:
                return 0
        return all(count(function) == 0 for function in self._queue_functions)

    def drain(self, timeout: float = 30.0) -> None:
        """Pump until every trigger queue is empty, waiting out invisible messages; TimeoutError after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            with self._pump_lock:
                received, _ = self._pump()
                if not received and self._queues_empty():
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"trigger queues still hold messages after {timeout} s")
            if not received:
                time.sleep(BUSY_POLL)

    def _pump_forever(self) -> None:
        """Poll like the queue listener: per queue trigger, a new batch (up to batchSize) whenever the messages it
        is processing are down to newBatchThreshold, without waiting for the rest of the batch; again soon while
        busy, backing off to the idle interval."""
        processing = {function.name: 0 for function in self._queue_functions}
        counts = threading.Lock()

        def settled(name: str, future: Any) -> None:
            with counts:
                processing[name] -= 1
            if future.exception() is not None:    # _process itself failed (e.g. Storage unreachable)
                log.error("Settling a message of %s failed: %s", name, future.exception())

        delay = BUSY_POLL
        while not self._stopping.wait(delay):
            received = 0
            for function in self._queue_functions:
                with counts:
                    if processing[function.name] > self._new_batch_threshold:
                        continue
                try:
                    messages = self._receive(function)
                except Exception:  # noqa: BLE001 - e.g. Storage unreachable; keep polling
                    log.exception("Polling queue %s failed", function.trigger["queueName"])
                    continue
                for message in messages:
                    with counts:
                        processing[function.name] += 1
                    future = self._pool.submit(self._process, function, message)
                    future.add_done_callback(lambda done, name=function.name: settled(name, done))
                received += len(messages)
            delay = BUSY_POLL if received else min(delay * 2, self._idle_poll)

    # timer triggers

    def fire_timer(self, function_name: str) -> None:
        """Invoke timer function `function_name` once now and wait for it (failures land in `errors`)."""
        function, _ = self._timers[function_name]
        self._pool.submit(self._invoke, function, {function.trigger["name"]: TimerRequest(past_due=False)}).result()

    def _timer_forever(self, function_name: str) -> None:
        """Fire on the NCRONTAB schedule (UTC), after a first run if runOnStartup; never overlapping itself."""
        function, fields = self._timers[function_name]
        if function.trigger.get("runOnStartup"):
            self.fire_timer(function_name)
        while True:
            now = datetime.now(timezone.utc)
            if self._stopping.wait((_next_occurrence(fields, now) - now).total_seconds()):
                return
            self.fire_timer(function_name)


def _find_app(module: Any) -> func.FunctionApp:
    """The one FunctionApp (FunctionRegister) instance in `module`, as the worker finds it."""
    apps = [value for value in vars(module).values() if isinstance(value, func.FunctionRegister)]
    if len(apps) != 1:
        raise SystemExit(f"function_app.py must define exactly one FunctionApp, found {len(apps)}")
    return apps[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Host ./function_app.py locally against AzureWebJobsStorage.")
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--timers", action="store_true", help="fire timer triggers on their schedules")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)
    if "AzureWebJobsStorage" not in os.environ:
        sys.exit("Set AzureWebJobsStorage (e.g. UseDevelopmentStorage=true, or `python -m devtools.azurite`'s)")
    from devtools.aca_emulator import scale_arm_budget

    scale_arm_budget()              # DRIFTLESS_DEV_ARM_TIME_SCALE: an emulator running ARM's time faster (benches)
    import function_app

    runner = LocalRunner(_find_app(function_app), connection_string=os.environ["AzureWebJobsStorage"])
    runner.start(port=args.port, timers=args.timers)
    print(f"Local Functions host on {runner.url} (functions: {', '.join(runner.function_names)})", flush=True)
    try:
        wait_for_shutdown()
    finally:
        runner.stop()


if __name__ == "__main__":
    main()
