"""Part 3: the Git source. A repository of `files` manifests served over smart HTTP on loopback
(devtools/git_server.py), read the way the worker reads it: `GitSource.head()`, `Reconciler.targets()`,
`Reconciler.desired()`. Round trips are GitServer.requests; parses are calls of `load_apps` (counted by
wrapping it, instrumentation only).
"""
from __future__ import annotations

import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from bench.common import (
    ENVIRONMENT,
    GROUP,
    SUBSCRIPTION,
    app_name,
    check,
    median,
    ms,
    repo_with_apps,
)


class _Parses:
    """Counts and times the parse of an aca Target's files (`TargetEngine.load`'s `load_objects`) while installed."""

    def __init__(self) -> None:
        self.calls, self.seconds = 0, 0.0

    @contextmanager
    def installed(self) -> Iterator["_Parses"]:
        from shared.engines import target_engine as engine

        original = engine.load_objects

        def counted(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.calls += 1
                self.seconds += time.perf_counter() - started

        engine.load_objects = counted
        try:
            yield self
        finally:
            engine.load_objects = original


def _disk_kb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1024


def _worker_read(reconciler: Any, target: Any, server: Any, parses: _Parses, files: int) -> dict[str, Any]:
    """What a worker does with the source per pass: head, Targets, desired Apps; timed and counted."""
    server.requests.clear()
    parses.calls, parses.seconds = 0, 0.0
    started = time.perf_counter()
    revision = reconciler.source.head()
    after_head = time.perf_counter()
    reconciler.targets(revision)
    apps, problems = reconciler.desired(target, revision)
    total = time.perf_counter() - started
    check(len(apps) == files and not problems, f"{len(apps)} apps, problems {problems[:2]}")
    return {"revision": revision, "total_s": total, "head_s": after_head - started, "parse_s": parses.seconds,
            "fetch_read_s": total - (after_head - started) - parses.seconds, "parses": parses.calls,
            "round_trips": sum(server.requests.values()), "requests": dict(server.requests)}


def run(files: int = 1000, changes: int = 5, first_runs: int = 3) -> dict[str, Any]:
    from devtools.git_server import GitServer
    from shared.adapters.git import GitSource
    from shared.config.settings import Settings
    from shared.engines.reconciler import Reconciler

    print(f"\n=== Part 3: source ({files} manifests over smart HTTP on loopback)", flush=True)
    with tempfile.TemporaryDirectory(prefix="driftless-bench-") as name:
        folder = Path(name)
        repo, _ = repo_with_apps(folder / "repo", files)
        server = GitServer(str(repo.path)).start()
        settings = Settings.from_env({"DRIFTLESS_REPO_URL": server.url, "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
                                      "DRIFTLESS_RESOURCE_GROUP": GROUP, "DRIFTLESS_ACA_ENVIRONMENT": ENVIRONMENT})
        target = settings.default_target()
        try:
            with _Parses().installed() as parses:
                firsts = []
                for attempt in range(first_runs):
                    source = GitSource(server.url, cache_dir=str(folder / f"cache-{attempt}"))
                    reconciler = Reconciler(settings, source=source)
                    firsts.append(_worker_read(reconciler, target, server, parses, files))
                first = {k: median([f[k] for f in firsts]) for k in ("total_s", "head_s", "fetch_read_s", "parse_s")}
                print(f"first fetch + parse (empty cache, median of {first_runs}): {ms(first['total_s'])} = "
                      f"ref lookup {ms(first['head_s'])} + shallow fetch and read {ms(first['fetch_read_s'])} + "
                      f"parse {ms(first['parse_s'])}; round trips {firsts[-1]['round_trips']}", flush=True)

                same = _worker_read(reconciler, target, server, parses, files)
                one_trip = same["round_trips"] == 1 and same["parses"] == 0
                print(f"unchanged head: {ms(same['total_s'])}, round trips {same['round_trips']} "
                      f"{same['requests']}, parses {same['parses']} (target: 1 round trip, no parse: "
                      f"{'met' if one_trip else 'MISSED'})", flush=True)

                cache = folder / f"cache-{first_runs - 1}"
                changed = []
                for index in range(changes):
                    before = _disk_kb(cache)
                    repo.write_app(app_name(index), image=f"nginx:1.27-change{index}")
                    head = repo.commit(f"change {app_name(index)}")
                    misses = reconciler.files.misses
                    read = _worker_read(reconciler, target, server, parses, files)
                    check(read["revision"] == head, "the source did not see the new head")
                    changed.append({**read, "fetched_kb": _disk_kb(cache) - before,
                                    "files_parsed": reconciler.files.misses - misses})
                change = {k: median([c[k] for c in changed])
                          for k in ("total_s", "head_s", "fetch_read_s", "parse_s", "fetched_kb")}
                print(f"one file changed (median of {changes}): {ms(change['total_s'])} = ref lookup "
                      f"{ms(change['head_s'])} + fetch and read {ms(change['fetch_read_s'])} + load of {files} files "
                      f"{ms(change['parse_s'])} ({changed[-1]['files_parsed']} parsed, the rest from the per-file "
                      f"cache); round trips {changed[-1]['round_trips']}, cache grew {change['fetched_kb']:.0f} KB "
                      "per change", flush=True)
        finally:
            server.stop()
    return {"files": files, "first": first, "first_round_trips": firsts[-1]["round_trips"],
            "unchanged": {k: same[k] for k in ("total_s", "round_trips", "parses", "requests")},
            "unchanged_met": one_trip, "changed": change, "changed_round_trips": changed[-1]["round_trips"],
            "changed_files_parsed": changed[-1]["files_parsed"]}
