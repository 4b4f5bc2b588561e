"""Part 7: a fleet, measured (issue 16 §4). N apps over 50 Targets in 5 subscriptions, as Functions runs them.

Real parts: Azurite (the `reconcile-jobs` and `reconcile-pushes` queues, Target leases, the status table), a real Git repository
served over smart HTTP (devtools/git_server.py), and the product's own function_app hosted by
devtools/local_runner.py: one "front door" host in this process (the timer function and the push webhook, no
queue polling) and K worker processes (`python -m devtools.local_runner`, each polling the queue with
host.json's batch size, as Functions instances scaled out). ARM is the ACA emulator with its throttling model
on (per-subscription and per-caller token buckets, 429 + Retry-After, `x-ms-ratelimit-remaining-*`), create
operations of 40 s +/- 50 % and everything scaled down in time by `--time-scale`.

For each K (`--fleet-workers`, 1 and 4 by default), on an empty emulator and fresh Azurite:
1. converge: the timer fires twice (as when the next timer comes while a long converge runs: two jobs per
   Target, so workers contend for the Targets' leases); time until every Target's first pass has finished (the
   status table), against the bound ARM's write buckets allow (each subscription's writes run in parallel with
   the others'), and until the queue is empty. While it runs, as soon
   as the first Target has a completed pass, one push changes one app of that Target: time until the emulator
   shows the new image (the rest of the fleet is still converging).
2. the timer twice more: the first pass after converge (it also rewrites every app's status row, "created" ->
   "unchanged") and the steady pass; time until the queue is empty, ARM reads per subscription against the read
   bucket, writes (must be 0), peak RSS of each worker process (VmHWM).
Every PUT/PATCH the emulator accepts is counted per app: converge must write each app exactly once (plus the
pushed app's one PATCH), the steady pass nothing. Any other count is a functional failure.
"""
from __future__ import annotations

import importlib
import os
import re
import subprocess
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


from bench.budget import BURST, MEAN_LRO, REFILL
from bench.common import (FUNCTION_KEY, ROOT, SECRET, TOKEN, GitRepo, check, child_env, environment, identity_env,
                          live_image, ms, post_push, python, wait_until)

SUBSCRIPTIONS = [f"{i:08d}-aaaa-4bbb-8ccc-{i:012d}" for i in range(1, 6)]
TARGETS = 50
READ_BUCKET, READ_REFILL = 250, 25.0
_APP_PATH = re.compile(r"^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/Microsoft\.App/containerApps/"
                       r"([^/]+)$", re.IGNORECASE)


def target_name(index: int) -> str:
    return f"t{index:02d}"


def _layout(apps: int, targets: int) -> list[dict[str, Any]]:
    """Targets (name, subscription, group, environment, path, apps); Target i is in subscription i % 5."""
    per = [apps // targets + (1 if i < apps % targets else 0) for i in range(targets)]
    first = [sum(per[:i]) for i in range(targets)]
    return [{"name": target_name(i), "subscription": SUBSCRIPTIONS[i % len(SUBSCRIPTIONS)],
             "group": f"rg-fleet-{i:02d}", "environment": f"env-fleet-{i:02d}", "path": f"envs/{target_name(i)}",
             "apps": [f"app-{n:05d}" for n in range(first[i], first[i] + per[i])]} for i in range(targets)]


def _repository(path: Path, layout: list[dict[str, Any]]) -> tuple[GitRepo, str]:
    repo = GitRepo(path)
    documents = [f"apiVersion: driftless.io/v1alpha1\nkind: Target\nmetadata: {{name: {t['name']}}}\n"
                 f"spec: {{type: aca, path: {t['path']}, subscriptionId: {t['subscription']}, "
                 f"resourceGroup: {t['group']}, environment: {t['environment']}}}\n" for t in layout]
    (path / "targets").mkdir(parents=True, exist_ok=True)
    (path / "targets" / "fleet.yaml").write_text("---\n".join(documents))
    for target in layout:
        for app in target["apps"]:
            _write_app(repo, target, app, "nginx:1.27")
    return repo, repo.commit(f"{sum(len(t['apps']) for t in layout)} apps over {len(layout)} Targets")


def _write_app(repo: GitRepo, target: dict[str, Any], app: str, image: str) -> None:
    from bench.common import app_yaml

    file = repo.path / target["path"] / f"{app}.yaml"
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(app_yaml(app, image))


class Ledger:
    """Counts, from inside the emulator, every ARM request per subscription and type, every 429, and every
    write (PUT/PATCH of an app) the emulator accepted, per app. Instrumentation of the dev tool only."""

    def __init__(self, emulator: Any):
        self.reads: Counter[str] = Counter()
        self.writes: Counter[str] = Counter()
        self.throttled = 0
        self.app_writes: Counter[tuple[str, str]] = Counter()
        original = emulator._arm

        def counted(req: Any, path: str) -> Any:
            response = original(req, path)
            sub = path.split("/")[2].lower() if path.lower().startswith("/subscriptions/") else ""
            if response.status == 429:
                self.throttled += 1
            elif req.method in ("GET", "HEAD"):
                self.reads[sub] += 1
            else:
                self.writes[sub] += 1
                found = _APP_PATH.match(path)
                if found and req.method in ("PUT", "PATCH") and response.status < 300:
                    self.app_writes[(req.method, found.group(3).lower())] += 1
            return response

        self._emulator = emulator
        emulator._arm = counted

    def detach(self) -> None:
        """Stop counting (the emulator answers as before)."""
        del self._emulator._arm

    def reset(self) -> None:
        self.reads.clear()
        self.writes.clear()
        self.app_writes.clear()
        self.throttled = 0


def _worker(index: int, env: dict[str, str], folder: Path) -> subprocess.Popen:
    """One Functions instance: the real function_app hosted by devtools/local_runner polling the queue."""
    log = open(folder / f"worker-{index}.log", "w")  # noqa: SIM115 - closed with the process in _stop
    return subprocess.Popen([python(), "-m", "devtools.local_runner", "--port", "0"], cwd=ROOT,
                            env=child_env(env), stdout=log, stderr=subprocess.STDOUT)


def _peak_rss_mb(pid: int) -> float:
    """VmHWM (peak resident set) of a live process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _cpu_s(workers: list[subprocess.Popen]) -> tuple[float, float]:
    """CPU seconds (user + system) so far of this process (the emulator and the front door) and of the workers."""
    own = os.times()
    ticks = os.sysconf("SC_CLK_TCK")
    spent = 0.0
    for worker in workers:
        fields = Path(f"/proc/{worker.pid}/stat").read_text().rsplit(")", 1)[1].split()
        spent += (int(fields[11]) + int(fields[12])) / ticks
    return own.user + own.system, spent


def _stop(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        worker.terminate()
    for worker in workers:
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def _queue_count(queue: Any) -> int:
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return queue.get_queue_properties().approximate_message_count
    except ResourceNotFoundError:
        return 0


def _wait_empty(queues: list[Any], workers: list[subprocess.Popen], timeout: float, what: str) -> float:
    """Seconds until every queue holds no message (visible or not); a worker that dies is a failure."""
    started = time.monotonic()
    done = wait_until(lambda: all(w.poll() is None for w in workers) and not any(_queue_count(q) for q in queues),
                      timeout=timeout, interval=0.2)
    elapsed = time.monotonic() - started
    check(all(w.poll() is None for w in workers), f"{what}: a worker process exited")
    check(done, f"{what}: the queue still holds jobs after {timeout:.0f} s")
    return elapsed


def _round(k: int, *, emulator: Any, ledger: Ledger, layout: list[dict[str, Any]], repo: GitRepo, git: Any,
           settings: dict[str, str], folder: Path, scale: float, runner_factory: Any) -> dict[str, Any]:
    """Converge from empty (with one push on the way) and a steady pass, with `k` worker processes."""
    from devtools.azurite import Azurite
    from shared.adapters import storage
    from shared.adapters.status_store import Store
    from shared.core.queues import PUSH_QUEUE, RECONCILE_QUEUE

    apps = sum(len(t["apps"]) for t in layout)
    emulator.reset()
    for target in layout:
        emulator.add_environment(target["subscription"], target["group"], target["environment"])
    emulator.set_faults(throttling=1, time_scale=scale, lro_durations_s={"create": MEAN_LRO, "update": MEAN_LRO},
                        lro_jitter=0.5, latency_s=0.005)
    ledger.reset()
    figures: dict[str, Any] = {"workers": k}
    with ExitStack() as stack:
        azurite = Azurite().start()
        stack.callback(azurite.stop)
        env = {**settings, "AzureWebJobsStorage": azurite.connection_string}
        stack.enter_context(environment(env))
        runner = runner_factory(azurite.connection_string)
        stack.callback(runner.stop)
        queues = [storage.queue(RECONCILE_QUEUE), storage.queue(PUSH_QUEUE)]   # the timer's jobs; pushes
        store = Store()
        workers = [_worker(i, env, folder) for i in range(k)]
        stack.callback(_stop, workers)
        check(wait_until(lambda: all((folder / f"worker-{i}.log").stat().st_size for i in range(k)), 60),
              "the worker processes did not start")

        # 1. converge from empty; one push to the first Target once its first pass is complete
        timeout = 300 + apps * 0.2
        first, pushed = layout[0], layout[0]["apps"][0]
        image = f"nginx:push-{k}"
        started, started_wall, cpu = time.monotonic(), datetime.now(timezone.utc), _cpu_s(workers)
        runner.fire_timer("scheduled_reconcile")
        runner.fire_timer("scheduled_reconcile")  # the next timer fires while the converge runs: 2 jobs per Target
        check(wait_until(lambda: store.last_completed_start(first["name"]) is not None, timeout, interval=0.25),
              f"Target {first['name']} never completed a pass")
        first_pass = store.last_completed_start(first["name"])
        _write_app(repo, first, pushed, image)
        head = repo.commit(f"{pushed} -> {image}")
        push_at, push_wall = time.monotonic(), datetime.now(timezone.utc)
        waiting = _queue_count(queues[0])
        reply = post_push(runner.url, git.url, head, f"{first['path']}/{pushed}.yaml", timeout=60)
        check(reply.status_code == 202, f"push: webhook answered {reply.status_code} {reply.text}")
        check(wait_until(lambda: live_image(emulator, first["subscription"], first["group"], pushed) == image,
                         timeout, interval=0.05),
              f"push: {image} not applied within {timeout:.0f} s")
        applied = time.monotonic()
        still_busy = _queue_count(queues[0]) > 0
        check(wait_until(lambda: store.last_completed_start(first["name"]) != first_pass, timeout, interval=0.25),
              "push: its pass was never recorded")
        push_wait = (datetime.fromisoformat(store.last_completed_start(first["name"])) - push_wall).total_seconds()
        _wait_empty(queues, workers, timeout, "converge")
        drained = time.monotonic() - started
        cpu = [after - before for after, before in zip(_cpu_s(workers), cpu)]
        firsts = [min(row["recentPasses"], key=lambda p: p["finishedAt"]) for row in store.status()["targets"]]
        check(len(firsts) == len(layout) and all(p["ok"] and p["summary"].get("created") for p in firsts),
              f"converge: not every Target's first pass created its apps: {firsts[:2]}")
        converge = max((datetime.fromisoformat(p["finishedAt"]) - started_wall).total_seconds() for p in firsts)
        jobs: Counter[str] = Counter()
        for i in range(k):
            text = (folder / f"worker-{i}.log").read_text()
            jobs.update(deferred=text.count(" deferred: Target "), superseded=text.count(" superseded: "))
        check(not runner.errors, f"front door errors: {runner.errors[:3]}")
        poisoned = sum(_queue_count(storage.queue(name + "-poison")) for name in (RECONCILE_QUEUE, PUSH_QUEUE))
        check(poisoned == 0, "converge: jobs were poisoned")
        created = {n: c for (method, n), c in ledger.app_writes.items() if method == "PUT"}
        names = [a for t in layout for a in t["apps"]]
        missing = [n for n in names if created.get(n, 0) == 0]
        doubled = {n: c for n, c in created.items() if c != 1}
        patches = {n: c for (method, n), c in ledger.app_writes.items() if method == "PATCH"}
        check(not missing, f"converge: {len(missing)} apps never created, e.g. {missing[:3]}")
        check(not doubled, f"converge: apps written more than once: {dict(list(doubled.items())[:5])}")
        check(patches == {pushed: 1}, f"converge: PATCHes {dict(list(patches.items())[:5])}, expected {{{pushed}: 1}}")
        per_sub = max(Counter(t["subscription"] for t in layout for _ in t["apps"]).values())
        bound = (max(0, per_sub - BURST) / REFILL + MEAN_LRO) / scale
        figures.update(converge_s=converge, bound_s=bound, ratio=converge / bound, throttled=ledger.throttled,
                       puts=sum(created.values()), double_writes=len(doubled), push_s=applied - push_at,
                       push_wait_s=push_wait, push_queue_depth=waiting, push_while_busy=still_busy,
                       rss_converge_mb=max(_peak_rss_mb(w.pid) for w in workers),
                       converge_writes=sum(ledger.writes.values()), converge_reads=sum(ledger.reads.values()),
                       cpu_emulator_share=cpu[0] / drained, cpu_workers_share=cpu[1] / drained,
                       drained_s=drained, deferred=jobs["deferred"], superseded=jobs["superseded"])
        print(f"K={k}: converge of {apps} apps {converge:.1f} s = {figures['ratio']:.2f}x the bound {bound:.1f} s "
              f"({per_sub} writes per subscription); PUTs {figures['puts']} (each app once), PATCHes {patches}, "
              f"429s {ledger.throttled}; ARM requests: reads {figures['converge_reads']}, writes "
              f"{figures['converge_writes']}; CPU until the queue was empty ({drained:.1f} s): emulator + front door "
              f"{cpu[0]:.0f} s ({cpu[0] / drained:.0%} of one core), workers {cpu[1]:.0f} s; the timer's second "
              f"jobs: {jobs['deferred']} deferred by a Target's lease, {jobs['superseded']} superseded", flush=True)
        print(f"K={k}: push to {first['name']} while the fleet converges ({waiting} jobs queued): applied in "
              f"{ms(figures['push_s'])}, of which {ms(push_wait)} before its pass started; the fleet was "
              f"{'still' if still_busy else 'no longer'} busy then", flush=True)

        # 2. the timer twice: the first pass after converge also rewrites every app's status row ("created" ->
        # "unchanged"); the second is the steady pass a fleet runs every 5 minutes. Reads only, both.
        for label in ("after converge", "steady"):
            ledger.reset()
            started = time.monotonic()
            runner.fire_timer("scheduled_reconcile")
            elapsed = _wait_empty(queues, workers, timeout, f"timer pass ({label})")
            reads = {sub: ledger.reads.get(sub.lower(), 0) for sub in SUBSCRIPTIONS}
            check(not ledger.app_writes and not ledger.writes, f"timer pass ({label}) wrote: {dict(ledger.writes)}")
            status = store.status()
            summaries: Counter[str] = Counter()
            for row in status["targets"]:
                summaries.update({k: v for k, v in row["summary"].items() if v})
            check(len(status["targets"]) == len(layout) and all(row["ok"] for row in status["targets"])
                  and summaries == {"unchanged": apps},
                  f"timer pass ({label}): not every app unchanged and every Target ok: {dict(summaries)}")
            rss = [_peak_rss_mb(w.pid) for w in workers]
            key = "steady" if label == "steady" else "first_timer"
            figures.update({f"{key}_s": elapsed, f"{key}_reads": reads, f"{key}_reads_total": sum(reads.values()),
                            f"{key}_throttled": ledger.throttled, "rss_peak_mb": max(rss), "steady_writes": 0})
            print(f"K={k}: timer pass ({label}) {elapsed:.1f} s, {dict(summaries)}; ARM reads {sum(reads.values())}, "
                  f"per subscription max {max(reads.values())} (bucket {READ_BUCKET}, refill {READ_REFILL:g}/s); "
                  f"writes 0; 429s {ledger.throttled}; peak RSS per worker {', '.join(f'{r:.0f}' for r in rss)} MB",
                  flush=True)
    return figures


def run(apps: int, workers: list[int], scale: float) -> dict[str, Any]:
    import function_app
    from devtools.aca_emulator import AcaEmulator
    from devtools.git_server import GitServer
    from devtools.local_runner import LocalRunner

    layout = _layout(apps, TARGETS)
    per_sub = max(Counter(t["subscription"] for t in layout for _ in t["apps"]).values())
    print(f"\n=== Part 7: a fleet of {apps} apps over {TARGETS} Targets in {len(SUBSCRIPTIONS)} subscriptions "
          f"(ARM throttling on, create operations {MEAN_LRO:g} s +/- 50 %, time scale {scale:g}; worker processes "
          f"{', '.join(map(str, workers))}; bound per subscription ({per_sub} writes): "
          f"{(max(0, per_sub - BURST) / REFILL + MEAN_LRO) / scale:.1f} s)", flush=True)
    figures: dict[str, Any] = {"apps": apps, "targets": TARGETS, "subscriptions": len(SUBSCRIPTIONS), "scale": scale,
                               "rounds": []}
    with tempfile.TemporaryDirectory(prefix="driftless-bench-") as name, ExitStack() as stack:
        folder = Path(name)
        started = time.monotonic()
        repo, _ = _repository(folder / "repo", layout)
        print(f"repository of {apps} manifests committed in {time.monotonic() - started:.1f} s", flush=True)
        emulator = AcaEmulator(cert_dir=str(folder / "certs"), token=TOKEN, seed=16).start()
        stack.callback(emulator.stop)
        ledger = Ledger(emulator)
        git = GitServer(str(repo.path)).start()
        stack.callback(git.stop)
        settings = {
            "DRIFTLESS_REPO_URL": git.url, "DRIFTLESS_ARM_ENDPOINT": emulator.url, **identity_env(),
            "DRIFTLESS_ARM_POLL_INTERVAL": str(5 / scale), "DRIFTLESS_DEV_ARM_TIME_SCALE": str(scale),
            "DRIFTLESS_APPLY_TIMEOUT": str(600 / scale + 60),
            "DRIFTLESS_WEBHOOK_SECRET": SECRET, "REQUESTS_CA_BUNDLE": emulator.ca_path, "DRIFTLESS_QUIET": "1",
            "PYTHONUNBUFFERED": "1",
        }
        host = str(ROOT / "host.json")

        def front_door(connection_string: str) -> Any:
            return LocalRunner(importlib.reload(function_app).app, connection_string=connection_string, host_json=host,
                               function_key=FUNCTION_KEY).start(port=0, pump=False)

        for k in workers:
            figures["rounds"].append(_round(k, emulator=emulator, ledger=ledger, layout=layout, repo=repo, git=git,
                                            settings=settings, folder=folder, scale=scale,
                                            runner_factory=front_door))
    return figures
