"""Part 2: pass cost and scaling against the ACA emulator (30 ms per ARM call, 1 s per long-running operation).

For each N: full create one app at a time, each write waiting out its operation (the thread-per-write design
at DRIFTLESS_CONCURRENCY=1, SynosCD's sequential strategy; only for the sizes in `sequential`) and with the
product's design and default concurrency (Settings.concurrency); then the steady state (no drift: a cold pass in
a fresh process, then a warm one); then one app drifted out of band, healed with exactly one write.
Each pass runs in its own subprocess (bench/pass_child.py) so the emulator does not share its GIL
and RSS is the pass's own.
"""
from __future__ import annotations

import json
import math
import subprocess
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from bench.common import (
    ENVIRONMENT,
    GROUP,
    POLL_INTERVAL,
    SUBSCRIPTION,
    TOKEN,
    BenchFailure,
    app_name,
    check,
    child_env,
    engine_env,
    identity_env,
    ms,
    python,
    repo_with_apps,
    wait_until,
)
from shared.config.settings import Settings

LATENCY_S = 0.03
LRO_S = 1.0
API_VERSION = "2024-03-01"
WRITE_METHODS = ("PUT", "PATCH", "DELETE")
LIST_CALLS = ("GET list", "GET jobs")
"""The list pages a steady pass of an aca Target reads: its apps and its (empty) jobs."""


def child(env: dict[str, str], *, passes: int, timeout: float) -> dict[str, Any]:
    """Run bench.pass_child in a fresh interpreter; its JSON report."""
    done = subprocess.run([python(), "-m", "bench.pass_child", "--passes", str(passes)], env=child_env(env),
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise BenchFailure(f"pass subprocess failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _writes(calls: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in calls.items() if k.split()[0] in WRITE_METHODS}


def _fresh(emulator: Any) -> None:
    emulator.reset()
    emulator.add_environment(SUBSCRIPTION, GROUP, ENVIRONMENT)
    emulator.set_faults(latency_s=LATENCY_S, lro_duration_s=LRO_S)


def _full_create(emulator: Any, env: dict[str, str], n: int, concurrency: int) -> float:
    """Wall time of one pass creating all `n` apps into an empty resource group."""
    _fresh(emulator)
    design = {"BENCH_DESIGN": "threads"} if concurrency == 1 else {}  # sequential: one write waits out its operation
    report = child({**env, "DRIFTLESS_CONCURRENCY": str(concurrency), **design}, passes=1,
                    timeout=120 + n * (2.0 if concurrency == 1 else 0.6))
    run = report["passes"][0]
    check(run["summary"] == {"created": n}, f"full create of {n} (concurrency {concurrency}): {run}")
    return run["wall_s"]


def _drift(emulator: Any, name: str) -> None:
    """What a colleague does in the portal: another image on one app (PATCH over HTTPS), settled."""
    url = (f"{emulator.url}/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}/providers/Microsoft.App/"
           f"containerApps/{name}?api-version={API_VERSION}")
    live = emulator.app(SUBSCRIPTION, GROUP, name)
    containers = live["properties"]["template"]["containers"]
    containers[0]["image"] = "nginx:hotfix-from-portal"
    reply = requests.patch(url, json={"properties": {"template": {"containers": containers}}},
                           headers={"Authorization": f"Bearer {TOKEN}"}, verify=emulator.ca_path, timeout=30)
    check(reply.status_code == 202, f"portal PATCH answered {reply.status_code}")
    settled = wait_until(lambda: emulator.app(SUBSCRIPTION, GROUP, name)["properties"]["provisioningState"]
                         == "Succeeded", timeout=LRO_S + 10)
    check(settled, "the portal change did not settle")


DEFAULT_CONCURRENCY = Settings.concurrency
"""The product's default, so the figure follows it."""


def scenario(emulator: Any, root: Path, n: int, *, sequential: bool, probe: int = 0) -> dict[str, Any]:
    """All of part 2 for one N; prints as it goes and returns the figures."""
    repo, _ = repo_with_apps(root / f"repo-{n}", n)
    env = engine_env(str(repo.path), emulator.url, emulator.ca_path)
    figures: dict[str, Any] = {"n": n}
    print(f"\n--- N = {n} apps", flush=True)
    if sequential:
        figures["create_seq_s"] = _full_create(emulator, env, n, 1)
        print(f"full create, one write at a time (sequential): {figures['create_seq_s']:.1f} s", flush=True)
    figures["create_s"] = _full_create(emulator, env, n, DEFAULT_CONCURRENCY)
    print(f"full create, DRIFTLESS_CONCURRENCY={DEFAULT_CONCURRENCY} (default):   {figures['create_s']:.1f} s",
          flush=True)
    if sequential:
        figures["speedup"] = figures["create_seq_s"] / figures["create_s"]
        print(f"speed-up over sequential: {figures['speedup']:.2f}x (target >= 8x)", flush=True)
    if probe:
        figures["probe_concurrency"] = probe
        figures["create_probe_s"] = _full_create(emulator, env, n, probe)
        print(f"full create, DRIFTLESS_CONCURRENCY={probe} (what-if): {figures['create_probe_s']:.1f} s"
              + (f", {figures['create_seq_s'] / figures['create_probe_s']:.2f}x sequential" if sequential else ""),
              flush=True)

    steady = child(env, passes=2, timeout=120 + n * 0.1)
    cold, warm = steady["passes"]
    for run in (cold, warm):
        check(run["summary"] == {"unchanged": n} and not _writes(run["arm_calls"]), f"steady state wrote: {run}")
    peers = sorted(steady["connections"])
    ours = {emulator.url.split("//")[1], urlsplit(identity_env()["IDENTITY_ENDPOINT"]).netloc}  # ARM + managed identity
    elsewhere = sum(n for peer, n in steady["connections"].items() if peer not in ours)
    figures.update(steady_cold_s=cold["wall_s"], steady_warm_s=warm["wall_s"], steady_calls=warm["arm_calls"],
                   list_pages=sum(warm["arm_calls"].get(k, 0) for k in LIST_CALLS),
                   pages_allowed=math.ceil(n / 100) + 1,
                   rss_before_mb=steady["rss_before_mb"], rss_peak_mb=steady["rss_peak_mb"],
                   warm_phases=warm["phases"], cold_phases=cold["phases"], peers=peers,
                   pygithub=steady["pygithub_imported"], other_connections=elsewhere)
    print(f"steady state: warm pass {ms(warm['wall_s'])} (list {ms(warm['phases'].get('list_s', 0))}, "
          f"plan {ms(warm['phases'].get('plan_s', 0))}); cold pass in a fresh process {ms(cold['wall_s'])} "
          f"(parse+read {ms(cold['phases'].get('desired_s', 0))})", flush=True)
    print(f"  ARM calls per pass: {json.dumps(warm['arm_calls'])} (list pages allowed: {figures['pages_allowed']}: "
          f"the apps' and one of jobs), "
          f"writes 0", flush=True)
    print(f"  connections to anything but the emulator and the managed identity endpoint (GitHub REST included): "
          f"{elsewhere} (peers {peers}; "
          f"PyGithub imported: {steady['pygithub_imported']})", flush=True)
    print(f"  peak RSS (ru_maxrss of the pass process): {steady['rss_peak_mb']:.0f} MB "
          f"({steady['rss_before_mb']:.0f} MB after imports, before the first pass)", flush=True)

    drifted = app_name(n // 2)
    _drift(emulator, drifted)
    heal = child(env, passes=1, timeout=120 + n * 0.1)["passes"][0]
    writes = _writes(heal["arm_calls"])
    check(writes == {"PATCH app": 1} and heal["summary"] == {"updated": 1, "unchanged": n - 1},
          f"one drifted app among {n}: expected exactly one PATCH, got {writes} {heal['summary']}")
    figures.update(heal_s=heal["wall_s"], heal_writes=writes)
    print(f"one app drifted ({drifted}): {ms(heal['wall_s'])}, writes {json.dumps(writes)}, "
          f"summary {json.dumps(heal['summary'])}", flush=True)
    return figures


def run(sizes: list[int], sequential_sizes: list[int], probe: int = 0) -> list[dict[str, Any]]:
    """Every N in `sizes`; the sequential baseline only for `sequential_sizes`; a what-if run with
    DRIFTLESS_CONCURRENCY=`probe` at the largest sequential size (0: none)."""
    from devtools.aca_emulator import AcaEmulator

    print(f"\n=== Part 2: pass cost and scaling (emulator latency {LATENCY_S * 1000:.0f} ms per ARM call, "
          f"LRO {LRO_S:g} s, page size 100, DRIFTLESS_ARM_POLL_INTERVAL={POLL_INTERVAL})", flush=True)
    with tempfile.TemporaryDirectory(prefix="driftless-bench-") as folder:
        emulator = AcaEmulator(cert_dir=str(Path(folder) / "certs"), token=TOKEN).start()
        try:
            probe_at = max(sequential_sizes, default=None) if probe else None
            return [scenario(emulator, Path(folder), n, sequential=n in sequential_sizes,
                             probe=probe if n == probe_at else 0) for n in sizes]
        finally:
            emulator.stop()
