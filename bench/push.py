"""Part 4: push to applied. A signed GitHub push webhook through the local Functions runner (pump=True)
-> Azurite queue -> worker -> ACA emulator, with the emulator's latency and LRO duration at 0 so only
Driftless, Git, Storage and the runner's polling are measured.

Each push: commit a new image for one app, POST the signed webhook, wait until the emulator shows the
image. Between pushes the runner is left idle long enough (>= 1.5 s plus a seeded random 0-1 s) for its
queue polling to back off to its 1 s cap, as between real pushes, so the polling phase is sampled.
Phases come from wrapping Pipeline.run_job and Reconciler.reconcile (instrumentation only).
"""
from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path
from typing import Any


from bench.common import (
    ENVIRONMENT,
    FUNCTION_KEY,
    GROUP,
    POLL_INTERVAL,
    ROOT,
    SECRET,
    SUBSCRIPTION,
    TOKEN,
    Marks,
    app_name,
    check,
    environment,
    identity_env,
    live_image,
    median,
    ms,
    percentile,
    post_push,
    repo_with_apps,
    wait_until,
)

APPS = 100
P50_TARGET_S = 1.5


def _one_push(index: int, repo: Any, git_url: str, runner: Any, emulator: Any, marks: Marks) -> dict[str, float]:
    name, image = app_name(index % APPS), f"nginx:push-{index}"
    repo.write_app(name, image)
    head = repo.commit(f"{name} -> {image}")
    jobs_before = marks.count("run_job")
    started = time.monotonic()
    reply = post_push(runner.url, git_url, head, f"apps/{name}.yaml")
    replied = time.monotonic()
    check(reply.status_code == 202, f"push {index}: webhook answered {reply.status_code} {reply.text}")
    check(wait_until(lambda: live_image(emulator, SUBSCRIPTION, GROUP, name) == image, timeout=30, interval=0.002),
          f"push {index}: {image} not applied within 30 s")
    applied = time.monotonic()
    check(wait_until(lambda: marks.count("run_job") > jobs_before, timeout=30), f"push {index}: the job never ended")
    job_start, job_end = marks.last("run_job")
    reconcile_start, _ = marks.last("reconcile")
    return {"latency_s": applied - started, "webhook_s": replied - started, "queue_wait_s": job_start - replied,
            "worker_pre_s": reconcile_start - job_start, "reconcile_to_applied_s": applied - reconcile_start,
            "after_applied_s": job_end - applied}


def _summary(samples: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    return {key: {"p50": median([s[key] for s in samples]), "p95": percentile([s[key] for s in samples], 95)}
            for key in samples[0]}


def run(pushes: int = 50, seed: int = 8) -> dict[str, Any]:
    import function_app
    from devtools.aca_emulator import AcaEmulator
    from devtools.azurite import Azurite
    from devtools.git_server import GitServer
    from devtools.local_runner import LocalRunner
    from shared.engines.reconciler import Reconciler
    from shared.services.pipeline import Pipeline

    print(f"\n=== Part 4: push to applied ({pushes} signed pushes, {APPS} apps in the repository; emulator "
          f"latency 0 and LRO 0; DRIFTLESS_ARM_POLL_INTERVAL={POLL_INTERVAL}; runner pump=True, host.json as is)",
          flush=True)
    jitter = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="driftless-bench-") as name:
        folder = Path(name)
        azurite = Azurite().start()
        emulator = AcaEmulator(cert_dir=str(folder / "certs"), token=TOKEN).start()
        git = None
        try:
            emulator.add_environment(SUBSCRIPTION, GROUP, ENVIRONMENT)
            repo, head = repo_with_apps(folder / "repo", APPS)
            git = GitServer(str(repo.path)).start()
            settings = {
                "AzureWebJobsStorage": azurite.connection_string, "DRIFTLESS_REPO_URL": git.url,
                "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION, "DRIFTLESS_RESOURCE_GROUP": GROUP,
                "DRIFTLESS_ACA_ENVIRONMENT": ENVIRONMENT, "DRIFTLESS_ARM_ENDPOINT": emulator.url,
                **identity_env(), "DRIFTLESS_ARM_POLL_INTERVAL": POLL_INTERVAL,
                "DRIFTLESS_WEBHOOK_SECRET": SECRET, "REQUESTS_CA_BUNDLE": emulator.ca_path, "DRIFTLESS_QUIET": "1",
            }
            marks = Marks()
            with environment(settings), marks.wrapped(Pipeline, "run_job"), marks.wrapped(Reconciler, "reconcile"):
                runner = LocalRunner(function_app.app, connection_string=azurite.connection_string,
                                     host_json=str(ROOT / "host.json"), function_key=FUNCTION_KEY).start(port=0)
                try:
                    started = time.monotonic()
                    reply = post_push(runner.url, git.url, head, f"apps/{app_name(0)}.yaml")
                    check(reply.status_code == 202, f"first push: {reply.status_code} {reply.text}")
                    check(wait_until(lambda: marks.count("run_job") == 1, timeout=120), "first push never ran")
                    created = sum(live_image(emulator, SUBSCRIPTION, GROUP, app_name(i)) is not None
                                  for i in range(APPS))
                    check(created == APPS, f"first push created {created} of {APPS} apps")
                    first = marks.last("run_job")[1] - started
                    print(f"first push (cold worker, creates {APPS} apps): {ms(first)} to the end of the job",
                          flush=True)
                    samples = []
                    for index in range(pushes):
                        time.sleep(1.5 + jitter.random())
                        samples.append(_one_push(index, repo, git.url, runner, emulator, marks))
                    check(not runner.errors, f"function errors: {runner.errors[:3]}")
                finally:
                    runner.stop()
        finally:
            if git is not None:
                git.stop()
            emulator.stop()
            azurite.stop()
    stats = _summary(samples)
    latency = stats["latency_s"]
    print(f"push -> applied: p50 {ms(latency['p50'])}, p95 {ms(latency['p95'])} over {pushes} pushes "
          f"(target p50 < {P50_TARGET_S:g} s: {'met' if latency['p50'] < P50_TARGET_S else 'MISSED'})")
    labels = {"webhook_s": "webhook handler (verify, de-duplicate, Git ref lookup + fetch, enqueue), HTTP included",
              "queue_wait_s": "queue wait: the runner's polling (capped at 1 s) until the worker starts",
              "worker_pre_s": "worker before the pass (Git head, status lookups, lease)",
              "reconcile_to_applied_s": "pass until the PATCH lands (parse, list, plan, PATCH)",
              "after_applied_s": "after it is applied (LRO poll, status table writes, lease release)"}
    for key, label in labels.items():
        print(f"  {label}: p50 {ms(stats[key]['p50'])}, p95 {ms(stats[key]['p95'])}")
    work = [s["latency_s"] - s["queue_wait_s"] for s in samples]
    print(f"  work alone (latency minus queue wait): p50 {ms(median(work))}, p95 {ms(percentile(work, 95))}",
          flush=True)
    return {"pushes": pushes, "apps": APPS, "first_push_s": first, "stats": stats,
            "work_p50_s": median(work), "work_p95_s": percentile(work, 95)}
