"""Part 1: cold start.

(a) A fresh interpreter importing `function_app` and indexing its functions (`app.get_functions()`), against a
fresh interpreter importing only `azure.functions`: medians of `runs` subprocesses each, interleaved.
Timed inside the child with perf_counter around the imports, so interpreter start-up is excluded from both.
(b) First invocation of a reconcile: `Reconciler.reconcile` of a 1-app Target (already live, so no write)
in a fresh process, first call vs second; medians of `runs` subprocesses.
(c) `python -X importtime` for both, to show what costs.
"""
from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench import passes
from bench.common import (
    ENVIRONMENT,
    GROUP,
    ROOT,
    SUBSCRIPTION,
    TOKEN,
    check,
    child_env,
    engine_env,
    median,
    ms,
    python,
    repo_with_apps,
)

INDEX_TARGET_S = 0.030
_BARE = "import time; t = time.perf_counter(); import azure.functions; print(time.perf_counter() - t)"
_INDEX = ("import time; t = time.perf_counter(); import azure.functions; a = time.perf_counter(); "
          "import function_app; function_app.app.get_functions(); b = time.perf_counter(); print(b - t, b - a)")
_PIPELINE = "import time; t = time.perf_counter(); import shared.services.pipeline; print(time.perf_counter() - t)"
_INDEX_ONLY = "import azure.functions; import function_app; function_app.app.get_functions()"
_IMPORTTIME = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def _seconds(code: str, env: dict[str, str]) -> list[float]:
    done = subprocess.run([python(), "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    check(done.returncode == 0, f"cold-start child failed: {done.stderr[-1000:]}")
    return [float(v) for v in done.stdout.split()]


def importtime(args: list[str], env: dict[str, str], *, after: str | None = None,
               until: str | None = None) -> list[tuple[str, int, int]]:
    """(module, self us, cumulative us) of top-level imports from `python -X importtime args`, optionally
    only those logged between the stderr lines `after` and `until`."""
    done = subprocess.run([python(), "-X", "importtime", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    check(done.returncode == 0, f"importtime child failed: {done.stderr[-1000:]}")
    lines = done.stderr.splitlines()
    if after:
        lines = lines[lines.index(after) + 1:]
    if until:
        lines = lines[:lines.index(until)]
    found = [(m[4], int(m[1]), int(m[2]), len(m[3])) for m in map(_IMPORTTIME.match, lines) if m]
    return [(name, own, total) for name, own, total, indent in found if indent == 1]


def _show(title: str, modules: list[tuple[str, int, int]], top: int = 8) -> list[dict[str, Any]]:
    total = sum(t for _, _, t in modules)
    print(f"  {title}: {len(modules)} top-level imports, {total / 1000:.0f} ms cumulative; largest:")
    ranked = sorted(modules, key=lambda m: -m[2])[:top]
    for name, _, cumulative in ranked:
        print(f"    {cumulative / 1000:7.1f} ms  {name}")
    return [{"module": n, "ms": round(c / 1000, 1)} for n, _, c in ranked]


def indexing(runs: int) -> dict[str, Any]:
    env = child_env({})
    _seconds(_BARE, env), _seconds(_INDEX, env)          # warm the .pyc caches; not counted
    bare, index, direct = [], [], []
    for _ in range(runs):
        bare += _seconds(_BARE, env)
        total, after = _seconds(_INDEX, env)
        index.append(total)
        direct.append(after)
    added = median(index) - median(bare)
    print(f"import azure.functions alone: median {ms(median(bare))} of {runs} fresh interpreters")
    print(f"import function_app + app.get_functions(): median {ms(median(index))} of {runs}")
    print(f"indexing adds {added * 1000:.1f} ms over azure.functions (difference of medians; target <= 30 ms: "
          f"{'met' if added <= INDEX_TARGET_S else 'MISSED'}); timed directly after azure.functions is loaded: "
          f"median {median(direct) * 1000:.1f} ms", flush=True)
    modules = importtime(["-c", _INDEX_ONLY], env)
    tail = modules[[m[0] for m in modules].index("azure.functions") + 1:]
    figures = {"bare_s": median(bare), "index_s": median(index), "added_s": added, "direct_s": median(direct),
               "imports": _show("imported by function_app beyond azure.functions", tail)}
    figures["pipeline_import_s"] = median([_seconds(_PIPELINE, env)[0] for _ in range(runs)])
    print(f"the first invocation of any function then imports shared.services.pipeline: median "
          f"{ms(figures['pipeline_import_s'])} (lazy, paid once per worker)", flush=True)
    return figures


def first_reconcile(runs: int) -> dict[str, Any]:
    """First vs second `Reconciler.reconcile` of a live 1-app Target, each in a fresh process."""
    from devtools.aca_emulator import AcaEmulator

    with tempfile.TemporaryDirectory(prefix="driftless-bench-") as folder:
        emulator = AcaEmulator(cert_dir=str(Path(folder) / "certs"), token=TOKEN).start()
        try:
            emulator.add_environment(SUBSCRIPTION, GROUP, ENVIRONMENT)
            repo, _ = repo_with_apps(Path(folder) / "repo", 1)
            env = engine_env(str(repo.path), emulator.url, emulator.ca_path)
            seeded = passes.child(env, passes=1, timeout=60)["passes"][0]["summary"]
            check(seeded == {"created": 1}, f"seeding the 1-app Target: {seeded}")
            reports = [passes.child(env, passes=2, timeout=60) for _ in range(runs)]
            for report in reports:
                check(all(p["summary"] == {"unchanged": 1} for p in report["passes"]), f"1-app pass: {report}")
            first = median([r["passes"][0]["wall_s"] for r in reports])
            second = median([r["passes"][1]["wall_s"] for r in reports])
            print(f"first Reconciler.reconcile of a 1-app Target: median {ms(first)}; second {ms(second)}; "
                  f"first-invocation cost {ms(first - second)} ({runs} fresh processes)", flush=True)
            modules = importtime(["-m", "bench.pass_child", "--passes", "1", "--marker"], child_env(env),
                                 after="### pass 1 start", until="### pass 1 end")
            lazy = _show("imported lazily during the first reconcile", modules)
        finally:
            emulator.stop()
    return {"first_s": first, "second_s": second, "lazy_imports": lazy}


def run(runs: int) -> dict[str, Any]:
    print("\n=== Part 1: cold start", flush=True)
    figures = indexing(runs)
    figures.update(first_reconcile(max(3, runs // 2)))
    return figures
