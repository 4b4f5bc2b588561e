"""Part 6: a full create limited by ARM's write budget, side by side with today's thread-per-write design.

One emulator with ARM's throttling model on (write bucket 200, refilled 10/s), create operations of 20-60 s
(40 s +/- 50 %, seeded) and everything scaled down in time by `--time-scale` (refill rates up, operation
durations down). Each design creates N apps into an empty resource group in its own subprocess
(bench/pass_child.py). The bound is what ARM's write bucket allows: (N - 200) / 10 s of writes after the burst,
plus one mean operation, in ARM time. The budget design must get no 429 that fails an app.

The mean-operation bound understates what is possible with jittered durations (the last writes' operations run up
to 60 s, not 40 s), so each run also reports the exact schedule bound: every write started at the earliest moment
the bucket allows (the i-th at max(0, i - 200) / 10 s) and lasting the duration the emulator gave that operation;
the bound is when the last of them ends.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from bench.common import ENVIRONMENT, GROUP, SUBSCRIPTION, TOKEN, check, engine_env, repo_with_apps
from bench.passes import child

BURST, REFILL, MEAN_LRO = 200, 10.0, 40.0


def _create(emulator: Any, env: dict[str, str], n: int, scale: float, design: str) -> dict[str, Any]:
    emulator.reset()
    emulator.add_environment(SUBSCRIPTION, GROUP, ENVIRONMENT)
    emulator.set_faults(throttling=1, time_scale=scale, lro_durations_s={"create": MEAN_LRO}, lro_jitter=0.5,
                        latency_s=0.01)
    report = child({**env, "BENCH_DESIGN": design}, passes=1, timeout=60 + n * MEAN_LRO / scale)
    run = report["passes"][0]
    check(run["summary"] == {"created": n}, f"full create of {n} ({design}): {run}")
    durations = emulator.operation_durations()
    schedule = max(max(0, i - BURST) / (REFILL * scale) + d for i, d in enumerate(durations))
    return {"wall_s": run["wall_s"], "throttled": report["throttled"], "calls": run["arm_calls"],
            "schedule_bound_s": schedule, "schedule_ratio": run["wall_s"] / schedule}


def run(n: int, scale: float, baseline_n: int) -> dict[str, Any]:
    from devtools.aca_emulator import AcaEmulator

    bound = (max(0, n - BURST) / REFILL + MEAN_LRO) / scale
    print(f"\n=== Part 6: full create under ARM's write budget (N={n}, time scale {scale:g}: bound {bound:.1f} s)",
          flush=True)
    figures: dict[str, Any] = {"n": n, "scale": scale, "bound_s": bound, "baseline_n": baseline_n}
    with tempfile.TemporaryDirectory(prefix="driftless-bench-") as folder:
        emulator = AcaEmulator(cert_dir=str(Path(folder) / "certs"), token=TOKEN, seed=16).start()
        try:
            for design, size in (("budget", n), ("threads", baseline_n)):
                repo, _ = repo_with_apps(Path(folder) / f"repo-{design}", size)
                env = engine_env(str(repo.path), emulator.url, emulator.ca_path,
                                 DRIFTLESS_ARM_POLL_INTERVAL=str(5 / scale),
                                 DRIFTLESS_DEV_ARM_TIME_SCALE=str(scale))
                got = _create(emulator, env, size, scale, design)
                size_bound = (max(0, size - BURST) / REFILL + MEAN_LRO) / scale
                got.update(bound_s=size_bound, ratio=got["wall_s"] / size_bound)
                figures[design] = got
                print(f"{design}: {size} apps in {got['wall_s']:.1f} s = {got['ratio']:.2f}x the bound "
                      f"({size_bound:.1f} s), {got['schedule_ratio']:.2f}x the exact schedule bound "
                      f"({got['schedule_bound_s']:.1f} s); 429s seen {got['throttled']}; ARM calls {got['calls']}",
                      flush=True)
        finally:
            emulator.stop()
    return figures
