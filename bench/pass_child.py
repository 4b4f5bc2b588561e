"""One process, fresh interpreter: build a Reconciler from the environment and run `--passes` passes of the
default Target. Prints one JSON line: per pass wall time, outcome summary, phase times; peak RSS
(getrusage ru_maxrss) before and after the passes; every address a socket connected to; whether
PyGithub was ever imported. Run by bench/passes.py and bench/cold_start.py, never by hand."""
from __future__ import annotations

import argparse
import io
import json
import os
import resource
import socket
import ssl
import sys
import time
import urllib.request
from collections import Counter
from typing import Any, Callable

_connections: Counter[str] = Counter()
_phases: Counter[str] = Counter()


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _watch_connections() -> None:
    """Record the peer of every socket connect (IP, port) made by this process."""
    connect = socket.socket.connect

    def recorded(sock: socket.socket, address: Any) -> Any:
        _connections[f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address)] += 1
        return connect(sock, address)

    socket.socket.connect = recorded  # type: ignore[method-assign]


def _timed(owner: Any, name: str, phase: str) -> None:
    """Wrap `owner.name` so its time accumulates under `phase` (instrumentation only)."""
    original: Callable[..., Any] = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            _phases[phase] += time.perf_counter() - started

    setattr(owner, name, wrapper)


def _emulator(path: str, method: str = "GET") -> dict[str, int]:
    """The emulator's control endpoint (not an ARM call, never counted): call counters, or reset them."""
    context = ssl.create_default_context(cafile=os.environ["REQUESTS_CA_BUNDLE"])
    request = urllib.request.Request(os.environ["DRIFTLESS_ARM_ENDPOINT"] + path, method=method)
    with urllib.request.urlopen(request, timeout=30, context=context) as response:
        return json.loads(response.read() or b"{}")


def _instrument() -> None:
    from shared.adapters.container_apps import ContainerApps
    from shared.engines import container_apps
    from shared.engines.reconciler import Reconciler

    _timed(ContainerApps, "list_apps", "list_s")
    _timed(Reconciler, "desired", "desired_s")
    _timed(container_apps, "make_plan", "plan_s")
    if os.environ.get("BENCH_DESIGN") == "threads":
        _thread_per_write()


def _thread_per_write() -> None:
    """The design before the write budget, for bench/budget.py: one thread per write (up to DRIFTLESS_CONCURRENCY)
    waits out its operation through the SDK's poller; creates only, which is all a full create does."""
    from concurrent.futures import ThreadPoolExecutor

    from shared.core import container_app
    from shared.core.outcome import Outcome
    from shared.engines.container_apps import ContainerAppsEngine
    from shared.engines.engine import finish, new_result, verdict

    def apply(self, revision, plan, problems, *, dry_run=False, progress=None):
        def one(step):
            if step.kind != "create":
                return verdict(step, revision)
            tags = container_app.ownership_tags(step.desired, self.target, self.settings.instance, revision)
            body = io.BytesIO(json.dumps(container_app.create_body(
                step.desired, location=self._environment_location(), environment_id=self.target.environment_id,
                tags=tags)).encode())
            live = self.aca._wait(step.app, lambda polling: self.aca.client.container_apps.begin_create_or_update(
                self.target.resource_group, step.app, body, content_type="application/json", polling=polling))
            return Outcome(step.app, "created", step.reason, [], revision,
                           healthy=container_app.health(live).healthy)

        started = time.monotonic()
        result = new_result(self.target, revision, dry_run)
        with ThreadPoolExecutor(max_workers=self.settings.concurrency, thread_name_prefix="apply") as pool:
            result.outcomes = list(pool.map(one, plan.steps))
        return finish(result, started)

    ContainerAppsEngine.apply = apply


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--passes", type=int, default=1)
    parser.add_argument("--marker", action="store_true", help="print pass markers on stderr (for -X importtime)")
    args = parser.parse_args(argv)
    _watch_connections()
    from devtools.aca_emulator import scale_arm_budget

    scale_arm_budget()              # the emulator's time scale, so the budget mirror refills on ARM's time
    from shared.config.settings import Settings
    from shared.engines.reconciler import Reconciler

    _instrument()
    reconciler = Reconciler(Settings.from_env())
    revision = reconciler.source.head()
    target = reconciler.settings.default_target()
    report: dict[str, Any] = {"rss_before_mb": _rss_mb(), "passes": []}
    for number in range(1, args.passes + 1):
        if args.marker:
            print(f"### pass {number} start", file=sys.stderr, flush=True)
        _phases.clear()
        _emulator("/_emulator/reset-calls", "POST")
        started = time.perf_counter()
        result = reconciler.reconcile(target, revision)
        wall = time.perf_counter() - started
        if args.marker:
            print(f"### pass {number} end", file=sys.stderr, flush=True)
        report["passes"].append({
            "wall_s": wall, "arm_calls": _emulator("/_emulator/calls"), "ok": result.ok,
            "summary": {k: v for k, v in result.summary().items() if v},
            "phases": {k: round(v, 4) for k, v in _phases.items()},
            "failed": [o.reason for o in result.outcomes if o.action == "failed"][:3]})
    from shared.adapters import arm_budget

    report["throttled"] = sum(b.throttled for b in arm_budget._budgets.values())
    report.update(rss_peak_mb=_rss_mb(), connections=dict(_connections), pygithub_imported="github" in sys.modules)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
