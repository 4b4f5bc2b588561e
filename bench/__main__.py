"""`make bench`: run every benchmark part in its own subprocess (bounded in time), then print a Markdown summary of
figures against the targets of issues #8 and #16, each with its ratio to the bound or to the previous design.
Exits 0 unless something is functionally broken; never on time. The default run takes under 15 min on 2 cores.

    python -m bench [--quick] [--parts cold,pass,source,push,phases,budget,fleet] [--fleet-apps 2000] ...
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from bench.common import ROOT, BenchFailure, child_env, machine, ms, python

PARTS = ("cold", "pass", "source", "push", "phases", "budget", "fleet")
TIMEOUTS = {"cold": 300, "pass": 1500, "source": 300, "push": 600, "phases": 600, "budget": 900, "fleet": 2400}
"""Seconds each part may run (a part that takes longer is reported FAILED); the default run takes under 15 min."""


QUICK: dict[str, Any] = {"runs": 3, "sizes": [100], "sequential_sizes": [], "files": 200, "pushes": 10, "events": 50,
                         "budget_apps": 400, "baseline_apps": 100, "time_scale": 20.0, "fleet_apps": 250,
                         "fleet_workers": [4], "fleet_time_scale": 20.0}
"""`--quick`: the defaults for development runs (every part, small sizes, no sequential baseline)."""


def _sizes(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset of " + ",".join(PARTS))
    parser.add_argument("--runs", type=int, default=10, help="cold-start subprocess runs (median)")
    parser.add_argument("--sizes", type=_sizes, default=[100, 2000], help="apps per pass-cost scenario")
    parser.add_argument("--sequential-sizes", type=_sizes, default=[100],
                        help="sizes that also get the DRIFTLESS_CONCURRENCY=1 baseline")
    parser.add_argument("--probe-concurrency", type=int, default=0,
                        help="what-if full create at the largest sequential size (0: skip)")
    parser.add_argument("--files", type=int, default=1000, help="manifests in the source benchmark")
    parser.add_argument("--pushes", type=int, default=30)
    parser.add_argument("--events", type=int, default=200, help="distinct phase events in the throughput run")
    parser.add_argument("--budget-apps", type=int, default=2000, help="apps of the write-budget full create")
    parser.add_argument("--baseline-apps", type=int, default=100,
                        help="apps of the thread-per-write full create it is compared with")
    parser.add_argument("--time-scale", type=float, default=10.0,
                        help="ARM time per second of the write-budget part")
    parser.add_argument("--fleet-apps", type=int, default=10000,
                        help="apps of the fleet part, over 50 Targets (about 7 min at 10000 with 1 and 4 workers)")
    parser.add_argument("--fleet-workers", type=_sizes, default=[1, 4],
                        help="worker processes sharing the queue and leases, one fleet run each")
    parser.add_argument("--fleet-time-scale", type=float, default=10.0, help="ARM time per second of the fleet part")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes for development (a few minutes); explicit options still win")
    parser.add_argument("--part", choices=PARTS, help=argparse.SUPPRESS)
    parser.add_argument("--result-file", help=argparse.SUPPRESS)
    if parser.parse_known_args(argv)[0].quick:
        parser.set_defaults(**QUICK)
    return parser.parse_args(argv)


def _run_part(args: argparse.Namespace) -> Any:
    """One part, in this process."""
    if args.part == "cold":
        from bench import cold_start
        return cold_start.run(args.runs)
    if args.part == "pass":
        from bench import passes
        return passes.run(args.sizes, args.sequential_sizes, args.probe_concurrency)
    if args.part == "source":
        from bench import source
        return source.run(args.files)
    if args.part == "push":
        from bench import push
        return push.run(args.pushes)
    if args.part == "budget":
        from bench import budget
        return budget.run(args.budget_apps, args.time_scale, args.baseline_apps)
    if args.part == "fleet":
        from bench import fleet
        return fleet.run(args.fleet_apps, args.fleet_workers, args.fleet_time_scale)
    from bench import phases
    return phases.run(args.events)


def _spawn(part: str, argv: list[str], folder: Path) -> tuple[Any, str | None]:
    """Run one part in a subprocess; (its figures, None) or (None, why it failed)."""
    result = folder / f"{part}.json"
    command = [python(), "-m", "bench", *argv, "--part", part, "--result-file", str(result)]
    try:
        done = subprocess.run(command, cwd=ROOT, env=child_env({}), timeout=TIMEOUTS[part])
    except subprocess.TimeoutExpired:
        return None, f"did not finish within {TIMEOUTS[part]} s"
    if done.returncode != 0 or not result.exists():
        return None, f"exited {done.returncode}"
    return json.loads(result.read_text()), None


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def _cold_rows(cold: dict[str, Any]) -> list[str]:
    return [f"cold start: function_app indexing adds {cold['added_s'] * 1000:.1f} ms over azure.functions "
            f"({ms(cold['index_s'])} vs {ms(cold['bare_s'])}; {cold['direct_s'] * 1000:.1f} ms timed directly); "
            f"target <= 30 ms: {_verdict(cold['added_s'] <= 0.03)}",
            f"first reconcile of a 1-app Target {ms(cold['first_s'])} vs second {ms(cold['second_s'])} "
            f"(first-invocation cost {ms(cold['first_s'] - cold['second_s'])}); shared.services.pipeline import "
            f"{ms(cold['pipeline_import_s'])}"]


def _pass_rows(runs: list[dict[str, Any]]) -> list[str]:
    from bench.passes import DEFAULT_CONCURRENCY, LIST_CALLS

    rows = []
    for f in runs:
        n = f["n"]
        rows.append(
            f"N={n}: steady pass warm {ms(f['steady_warm_s'])} / cold process {ms(f['steady_cold_s'])}"
            + (f" (target < 2 s: {_verdict(f['steady_warm_s'] < 2)})" if n == 2000 else "")
            + f"; ARM {json.dumps(f['steady_calls'])} <= {f['pages_allowed']} pages: "
            f"{_verdict(f['list_pages'] <= f['pages_allowed'] and set(f['steady_calls']) <= set(LIST_CALLS))}; "
            f"writes 0; GitHub REST {f['other_connections']}; peak RSS {f['rss_peak_mb']:.0f} MB "
            f"(< 150 MB: {_verdict(f['rss_peak_mb'] < 150)})")
        create = f"N={n}: full create {f['create_s']:.1f} s at the default concurrency {DEFAULT_CONCURRENCY}"
        if "speedup" in f:
            create += (f", {f['create_seq_s']:.1f} s sequential: {f['speedup']:.2f}x"
                       + (f" (target >= 8x: {_verdict(f['speedup'] >= 8)})" if n == 500 else ""))
        if "create_probe_s" in f:
            create += f"; concurrency {f['probe_concurrency']}: {f['create_probe_s']:.1f} s"
        rows.append(create)
        rows.append(f"N={n}: one drifted app healed in {ms(f['heal_s'])} with writes {json.dumps(f['heal_writes'])}")
    return rows


def _source_rows(s: dict[str, Any]) -> list[str]:
    return [f"source ({s['files']} manifests): first fetch + parse {ms(s['first']['total_s'])} "
            f"({s['first_round_trips']} round trips); unchanged head {ms(s['unchanged']['total_s'])}, "
            f"{s['unchanged']['round_trips']} round trip, {s['unchanged']['parses']} parses "
            f"(target: {_verdict(s['unchanged_met'])}); one file changed {ms(s['changed']['total_s'])} "
            f"(fetch+read {ms(s['changed']['fetch_read_s'])}, load {ms(s['changed']['parse_s'])}, "
            f"{s['changed_files_parsed']} file parsed)"] + [
        f"source, one file changed, {label} server: {ms(r['changed']['total_s'])}, received "
        f"{r['changed']['received_kb']:.1f} KB = {100 * r['changed_received_ratio']:.1f}% of the first fetch's "
        f"{r['first']['received_kb']:.0f} KB (fetch+read {ms(r['changed']['fetch_read_s'])} = "
        f"{100 * r['changed_fetch_read_ratio']:.0f}% of the first's)" for label, r in s.get("servers", {}).items()]


def _push_rows(p: dict[str, Any]) -> list[str]:
    latency, wait = p["stats"]["latency_s"], p["stats"]["queue_wait_s"]
    return [f"push -> applied over {p['pushes']} pushes: p50 {ms(latency['p50'])}, p95 {ms(latency['p95'])} "
            f"(target p50 < 1.5 s: {_verdict(latency['p50'] < 1.5)}); of which queue polling wait p50 "
            f"{ms(wait['p50'])}; work alone p50 {ms(p['work_p50_s'])}, p95 {ms(p['work_p95_s'])}"]


def _phase_rows(p: dict[str, Any]) -> list[str]:
    return [f"phase events: {p['events'] / p['forward_s']:.1f} events/s forwarded through the queue to the GitHub "
            f"stub ({p['events']} events, status + dispatch each, {ms(p['forward_s'])}); accepted at "
            f"{p['events'] / p['accept_s']:.0f}/s; {p['repeats']} identical ReconciliationSucceeded: "
            f"{p['repeated_dispatches']} dispatch (must be 1: {_verdict(p['repeated_dispatches'] == 1)}), "
            f"{p['repeated_statuses']} status"]


def _budget_rows(b: dict[str, Any]) -> list[str]:
    rows = []
    for design in ("budget", "threads"):
        f = b[design]
        n = b["n"] if design == "budget" else b["baseline_n"]
        rows.append(f"full create under ARM's write budget, {design} design: {n} apps in {f['wall_s']:.1f} s at time "
                    f"scale {b['scale']:g} = {f['ratio']:.2f}x the bound {f['bound_s']:.1f} s (mean operation), "
                    f"{f['schedule_ratio']:.2f}x the exact schedule bound {f['schedule_bound_s']:.1f} s, 429s "
                    f"{f['throttled']}" + (f" (target <= 1.15x, no failed app: {_verdict(f['ratio'] <= 1.15)})"
                                           if design == "budget" else ""))
    budget, threads = b["n"] / b["budget"]["wall_s"], b["baseline_n"] / b["threads"]["wall_s"]
    rows.append(f"full create throughput: budget design {budget:.1f} apps/s vs thread per write {threads:.1f} apps/s: "
                f"{budget / threads:.1f}x the previous design")
    return rows


def _fleet_rows(f: dict[str, Any]) -> list[str]:
    rows = []
    one = next((r for r in f["rounds"] if r["workers"] == 1), None)

    def vs_one(r: dict[str, Any], key: str) -> str:
        """Speed-up over the same figure with 1 worker (scale-out), when both ran."""
        return f" ({one[key] / r[key]:.2f}x faster than 1 worker)" if one and r is not one and r[key] else ""

    for r in f["rounds"]:
        k = f"{f['apps']} apps / {f['targets']} Targets / {f['subscriptions']} subscriptions, {r['workers']} worker" \
            + ("s" if r["workers"] > 1 else "")
        rows.append(f"fleet ({k}): converge from empty {r['converge_s']:.1f} s = {r['ratio']:.2f}x the bound "
                    f"{r['bound_s']:.1f} s ARM's write buckets allow (time scale {f['scale']:g})"
                    f"{vs_one(r, 'converge_s')}; "
                    f"PUTs {r['puts']}, apps written twice {r['double_writes']} (timer fired twice: {r['deferred']} "
                    f"jobs deferred by a lease, {r['superseded']} superseded); 429s {r['throttled']}; CPU of the "
                    f"emulator process {r['cpu_emulator_share']:.0%} of a core, of the workers "
                    f"{r['cpu_workers_share']:.0%}; queue empty after {r['drained_s']:.1f} s")
        rows.append(f"fleet ({k}): one push to a converged Target while the others converge "
                    f"({r['push_queue_depth']} jobs queued): applied in {ms(r['push_s'])}{vs_one(r, 'push_s')}, of "
                    f"which {ms(r['push_wait_s'])} waiting for its pass to start (behind the lease of its Target, and the workers busy with other passes)")
        reads = r["steady_reads"]
        rows.append(f"fleet ({k}): timer's steady pass {ms(r['steady_s'])}{vs_one(r, 'steady_s')} (the first after "
                    f"converge, which rewrites every app's status row: {ms(r['first_timer_s'])}); ARM reads "
                    f"{r['steady_reads_total']} (max {max(reads.values())} per subscription = "
                    f"{max(reads.values()) / 250:.2f}x the 250-read bucket); writes {r['steady_writes']}; peak RSS of "
                    f"one worker {r['rss_peak_mb']:.0f} MB")
    return rows


ROWS: dict[str, Callable[[Any], list[str]]] = {"cold": _cold_rows, "pass": _pass_rows, "source": _source_rows,
                                               "push": _push_rows, "phases": _phase_rows, "budget": _budget_rows,
                                               "fleet": _fleet_rows}


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    if args.part:
        try:
            figures = _run_part(args)
        except BenchFailure as exc:
            print(f"FUNCTIONAL FAILURE in part {args.part}: {exc}", file=sys.stderr, flush=True)
            return 1
        Path(args.result_file).write_text(json.dumps(figures))
        return 0
    argv = list(sys.argv[1:] if argv is None else argv)
    facts = machine()
    command = f"python -m bench {' '.join(argv)}".rstrip()
    print(f"Driftless benchmarks: nproc {facts['nproc']}, CPU {facts['cpu']}, Python {facts['python']}, "
          f"{facts['os']}\ncommand: {command}", flush=True)
    load_before = _load()
    started, summary, failures, durations = time.monotonic(), [], [], []
    with tempfile.TemporaryDirectory(prefix="driftless-bench-") as folder:
        for part in [p for p in PARTS if p in args.parts.split(",")]:
            part_started = time.monotonic()
            figures, failure = _spawn(part, argv, Path(folder))
            durations.append(f"{part} {(time.monotonic() - part_started) / 60:.1f}")
            if failure:
                failures.append(f"{part}: {failure}")
            else:
                summary += ROWS[part](figures)
    minutes = (time.monotonic() - started) / 60
    print(f"\n=== Summary (Markdown, for bench/RESULTS.md)\n\n"
          f"### `{command}`: {minutes:.1f} min, {'exit 1 (functional failure)' if failures else 'exit 0'}\n\n"
          f"Machine: nproc {facts['nproc']}, CPU \"{facts['cpu']}\", Python {facts['python']}, {facts['os']}; "
          f"1-minute load average {load_before} at the start, {_load()} at the end (other work on the machine "
          f"distorts every figure). Minutes per part: {', '.join(durations)}.\n")
    for row in summary:
        print(f"- {row}")
    for failure in failures:
        print(f"- FAILED {failure}")
    return 1 if failures else 0


def _load() -> str:
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "unknown"

if __name__ == "__main__":
    sys.exit(main())
