"""Part 3: the Git source. A repository of `files` manifests served over smart HTTP on loopback by each of
devtools/git_server.py's servers (dulwich's, and git's own `git http-backend` with protocol v2, which answers
an incremental shallow fetch with only the new objects), read the way the worker reads it: `GitSource.head()`,
`Reconciler.targets()`, `Reconciler.desired()`. Round trips are the server's `requests`, KB received its
`bytes_sent` (response bodies); parses are calls of `load_objects` (counted by wrapping it, instrumentation only).
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


def _kb(server: Any) -> float:
    """KB the server sent since its counters were last cleared (every response body: refs and packs)."""
    return sum(server.bytes_sent.values()) / 1024


def _measure(server: Any, folder: Path, repo: Any, settings: Any, target: Any, parses: _Parses, files: int,
             changes: int, first_runs: int, label: str) -> dict[str, Any]:
    """First fetch (empty cache), unchanged head, then `changes` one-file changes, against one server."""
    from shared.adapters.git import GitSource
    from shared.engines.reconciler import Reconciler

    firsts = []
    for attempt in range(first_runs):
        source = GitSource(server.url, cache_dir=str(folder / f"cache-{label}-{attempt}"))
        reconciler = Reconciler(settings, source=source)
        server.bytes_sent.clear()
        firsts.append({**_worker_read(reconciler, target, server, parses, files), "received_kb": _kb(server)})
    first = {k: median([f[k] for f in firsts]) for k in ("total_s", "head_s", "fetch_read_s", "parse_s", "received_kb")}
    print(f"[{label}] first fetch + parse (empty cache, median of {first_runs}): {ms(first['total_s'])} = "
          f"ref lookup {ms(first['head_s'])} + shallow fetch and read {ms(first['fetch_read_s'])} + "
          f"parse {ms(first['parse_s'])}; round trips {firsts[-1]['round_trips']}, received "
          f"{first['received_kb']:.0f} KB", flush=True)

    same = _worker_read(reconciler, target, server, parses, files)
    one_lookup = same["parses"] == 0 and reconciler.source.stats.fetches == 1
    print(f"[{label}] unchanged head: {ms(same['total_s'])}, round trips {same['round_trips']} "
          f"{same['requests']}, parses {same['parses']} (target: one ref lookup, no fetch, no parse: "
          f"{'met' if one_lookup else 'MISSED'})", flush=True)

    cache = folder / f"cache-{label}-{first_runs - 1}"
    changed = []
    for index in range(changes):
        before = _disk_kb(cache)
        repo.write_app(app_name(index), image=f"nginx:1.27-{label}-change{index}")
        head = repo.commit(f"change {app_name(index)} ({label})")
        misses = reconciler.files.misses
        server.bytes_sent.clear()
        read = _worker_read(reconciler, target, server, parses, files)
        check(read["revision"] == head, "the source did not see the new head")
        changed.append({**read, "fetched_kb": _disk_kb(cache) - before, "received_kb": _kb(server),
                        "files_parsed": reconciler.files.misses - misses})
    change = {k: median([c[k] for c in changed])
              for k in ("total_s", "head_s", "fetch_read_s", "parse_s", "fetched_kb", "received_kb")}
    kb_ratio = change["received_kb"] / first["received_kb"]
    time_ratio = change["fetch_read_s"] / first["fetch_read_s"]
    print(f"[{label}] one file changed (median of {changes}): {ms(change['total_s'])} = ref lookup "
          f"{ms(change['head_s'])} + fetch and read {ms(change['fetch_read_s'])} + load of {files} files "
          f"{ms(change['parse_s'])} ({changed[-1]['files_parsed']} parsed, the rest from the per-file "
          f"cache); round trips {changed[-1]['round_trips']}, received {change['received_kb']:.1f} KB = "
          f"{100 * kb_ratio:.1f}% of the first fetch's {first['received_kb']:.0f} KB (fetch and read: "
          f"{100 * time_ratio:.0f}% of the first's), cache grew {change['fetched_kb']:.0f} KB per change",
          flush=True)
    return {"first": first, "first_round_trips": firsts[-1]["round_trips"],
            "unchanged": {k: same[k] for k in ("total_s", "round_trips", "parses", "requests")},
            "unchanged_met": one_lookup, "changed": change, "changed_round_trips": changed[-1]["round_trips"],
            "changed_files_parsed": changed[-1]["files_parsed"], "changed_received_ratio": kb_ratio,
            "changed_fetch_read_ratio": time_ratio}


SERVERS = {"dulwich": "dulwich's smart HTTP", "git": "git http-backend, protocol v2"}


def run(files: int = 1000, changes: int = 5, first_runs: int = 3) -> dict[str, Any]:
    from devtools.git_server import GitBackendServer, GitServer
    from shared.config.settings import Settings

    print(f"\n=== Part 3: source ({files} manifests over smart HTTP on loopback: "
          f"{'; '.join(f'[{k}] {v}' for k, v in SERVERS.items())})", flush=True)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="driftless-bench-") as name:
        folder = Path(name)
        repo, _ = repo_with_apps(folder / "repo", files)
        for label in SERVERS:
            server = (GitServer(str(repo.path)) if label == "dulwich" else GitBackendServer(str(repo.path))).start()
            settings = Settings.from_env({"DRIFTLESS_REPO_URL": server.url, "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
                                          "DRIFTLESS_RESOURCE_GROUP": GROUP, "DRIFTLESS_ACA_ENVIRONMENT": ENVIRONMENT})
            try:
                with _Parses().installed() as parses:
                    results[label] = _measure(server, folder, repo, settings, settings.default_target(), parses,
                                              files, changes, first_runs, label)
            finally:
                server.stop()
    # The figures of the first version of this part (dulwich's server) stay at the top level.
    return {"files": files, **results["dulwich"], "servers": results}
