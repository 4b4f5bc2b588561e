"""A Target's lease: short, renewed by a heartbeat while its pass runs, so a worker that dies mid-pass frees its
Target within one lease (Pipeline.lease_seconds, 60 s in production) while a long healthy pass keeps it.

Real parts: Azurite (the lease rows, the queues), the ACA emulator (an apply that hangs until the test ends it),
the real function_app.py in the local runner, and, for the crash, a second Python process running the real
worker that is killed with SIGKILL mid-pass. Lease times are shortened through Pipeline's class attributes;
waits are bounded polls on observable state, never fixed sleeps.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import pytest

from shared.adapters.status_store import Store
from shared.core.jobs import new_job
from shared.services.pipeline import Heartbeat, Pipeline
from tests.conftest import GROUP, KEY, SUBSCRIPTION, WEBHOOK_SECRET, app_yaml, writes

ROOT = Path(__file__).resolve().parents[2]
WORKER = """
import socket, sys
from devtools.keyvault_stub import VAULT_HOST
resolve = socket.getaddrinfo
socket.getaddrinfo = lambda host, *a, **kw: resolve("127.0.0.1" if host == VAULT_HOST else host, *a, **kw)
from shared.services.pipeline import Pipeline
Pipeline.lease_seconds, Pipeline.heartbeat_seconds = float(sys.argv[2]), float(sys.argv[3])
from shared.wiring import current
current().pipeline.run_job(sys.argv[1].encode())
"""
"""A reconcile worker in its own process, as a Functions worker is: the real pipeline, short lease times."""


def wait_for(condition: Callable[[], object], what: str, timeout: float = 60.0) -> object:
    """Poll `condition` until it is truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)
    return value


def lease(store: Store, target: str) -> dict | None:
    return store._get("lease", target)


def until(row: dict) -> datetime:
    return datetime.fromisoformat(row["until"])


def creating(aca, name: str) -> bool:
    """The emulator holds `name`, its create still in progress (it hangs)."""
    app = aca.app(SUBSCRIPTION, GROUP, name)
    return bool(app) and app["properties"]["provisioningState"] == "InProgress"


@pytest.fixture
def store(azurite) -> Store:
    return Store(env={"AzureWebJobsStorage": azurite.connection_string})


def test_only_the_holder_renews_and_a_lease_taken_after_it_lapsed_stays_taken(store):
    target = f"t-{uuid.uuid4().hex[:8]}"
    assert store.acquire_lease(target, "a", ttl=timedelta(seconds=60))
    assert not store.acquire_lease(target, "b", ttl=timedelta(seconds=60))
    first = until(lease(store, target))
    assert store.renew_lease(target, "a", ttl=timedelta(seconds=120)) and until(lease(store, target)) > first
    assert not store.renew_lease(target, "b", ttl=timedelta(seconds=60))
    assert lease(store, target)["holder"] == "a"
    assert store.acquire_lease(target, "a", ttl=timedelta(seconds=-1))         # a's lease lapses (no renewal)
    assert store.acquire_lease(target, "b", ttl=timedelta(seconds=60))         # ... and b takes the Target
    assert not store.renew_lease(target, "a", ttl=timedelta(seconds=60))       # a late renewal never steals it back
    assert lease(store, target)["holder"] == "b"
    store.release_lease(target, "a")
    assert lease(store, target)["holder"] == "b"
    assert not store.renew_lease(f"t-{uuid.uuid4().hex[:8]}", "a", ttl=timedelta(seconds=60))   # no lease at all


def test_the_heartbeat_renews_until_the_pass_ends_and_stops_for_good_once_another_worker_holds_it(store, caplog):
    caplog.set_level(logging.WARNING, logger="driftless.pipeline")
    target = f"t-{uuid.uuid4().hex[:8]}"
    ttl = timedelta(seconds=0.5)
    assert store.acquire_lease(target, "a", ttl=ttl)
    start = until(lease(store, target))
    with Heartbeat(store, target, "a", ttl=ttl, every=0.05) as beat:
        wait_for(lambda: until(lease(store, target)) > start + 3 * ttl, "the lease to be renewed past 3 lifetimes")
        store.table.upsert_entity({"PartitionKey": "lease", "RowKey": target, "holder": "b",
                                   "until": (datetime.now(timezone.utc) + timedelta(minutes=5)).isoformat()})
        wait_for(lambda: beat.lost, "the heartbeat to notice the lease is taken")
        renewals = beat.renewals
    assert beat.renewals == renewals >= 3                  # nothing renewed after the loss (the thread has ended)
    assert lease(store, target)["holder"] == "b"
    assert f"the lease of Target {target} is held by another worker now" in caplog.text
    with Heartbeat(store, target, "b", ttl=ttl, every=60) as idle:            # a short pass ends without waiting
        pass
    assert idle.renewals == 0 and not idle.lost


def test_a_healthy_pass_longer_than_its_lease_keeps_the_target(stack, repo, aca, monkeypatch):
    from shared.wiring import current

    monkeypatch.setattr(Pipeline, "lease_seconds", 0.5)
    monkeypatch.setattr(Pipeline, "heartbeat_seconds", 0.1)
    repo.write("apps/alpha.yaml", app_yaml("alpha"))
    head = repo.commit()
    aca.set_faults(lro_hang_apps=["alpha"])                # the create hangs until the test ends it
    pipeline, store = current().pipeline, Store()
    job = new_job("default", "manual", revision=head)
    outcome: list[str] = []
    worker = threading.Thread(target=lambda: outcome.append(pipeline.run_job(job.to_json().encode())))
    worker.start()
    try:
        held = wait_for(lambda: (row := lease(store, "default")) and row["holder"] == job.id and creating(aca, "alpha")
                        and row, "the pass to take the lease and start creating alpha")
        wait_for(lambda: until(lease(store, "default")) > until(held) + timedelta(seconds=3 * 0.5),
                 "the running pass to outlive its first lease three times over")
        assert pipeline.run_job(new_job("default", "manual", revision=head).to_json().encode()) == "deferred"
    finally:
        aca.release(SUBSCRIPTION, GROUP, "alpha")
        worker.join(timeout=60)
    assert outcome == ["reconciled"] and lease(store, "default") is None and writes(aca) == 1


def test_a_worker_killed_mid_pass_frees_its_target_within_one_lease_and_the_next_push_applies_once(
        stack, repo, aca, monkeypatch, tmp_path):
    import requests

    from shared.core.webhook import sign

    seconds, beat = 2.0, 0.5
    monkeypatch.setattr(Pipeline, "lease_seconds", seconds)
    monkeypatch.setattr(Pipeline, "heartbeat_seconds", beat)
    repo.write("apps/alpha.yaml", app_yaml("alpha"))
    head = repo.commit()
    aca.set_faults(lro_hang_apps=["alpha"])
    job = new_job("default", "manual", revision=head)
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen([sys.executable, "-c", WORKER, job.to_json(), str(seconds), str(beat)], cwd=ROOT,
                              env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT)
    store = Store()
    try:
        wait_for(lambda: (row := lease(store, "default")) and row["holder"] == job.id and creating(aca, "alpha"),
                 "the worker process to take the lease and start creating alpha")
        wait_for(lambda: until(lease(store, "default")) > datetime.now(timezone.utc) + timedelta(seconds=seconds - 1),
                 "a heartbeat of the worker process")
    finally:
        worker.kill()                                      # SIGKILL mid-pass: no `finally`, no release
        worker.wait(timeout=30)
        log.close()
    killed_at = datetime.now(timezone.utc)
    left = lease(store, "default")
    assert left["holder"] == job.id, (tmp_path / "worker.log").read_text()[-2000:]
    assert until(left) <= killed_at + timedelta(seconds=seconds)     # frees itself within one lease of the crash
    aca.release(SUBSCRIPTION, GROUP, "alpha")              # the operation the dead worker started ends on its own
    assert writes(aca) == 1

    repo.write("apps/bravo.yaml", app_yaml("bravo"))
    head = repo.commit()
    payload = {"ref": "refs/heads/main", "before": "0" * 40, "after": head, "repository": {"full_name": "contoso/g"},
               "commits": [{"id": "c1", "added": ["apps/bravo.yaml"], "modified": [], "removed": []}]}
    body = json.dumps(payload).encode()
    reply = requests.post(f"{stack.url}/api/github/webhook", data=body, timeout=10, headers={
        "X-GitHub-Event": "push", "X-GitHub-Delivery": str(uuid.uuid4()), "Content-Type": "application/json",
        "X-Hub-Signature-256": sign(WEBHOOK_SECRET, body)})
    assert reply.status_code == 202
    stack.drain(timeout=30)                                # with the old 10-minute lease this times out
    assert stack.invocations["push_worker"] >= 2          # deferred while the dead worker's lease lasted
    assert aca.app(SUBSCRIPTION, GROUP, "bravo")["tags"]["driftless-revision"] == head
    assert writes(aca) == 2                                # alpha once (the dead worker), bravo once: no duplicate
    status = requests.get(f"{stack.url}/api/status", headers={"x-functions-key": KEY}, timeout=10).json()
    assert {a["app"]: a["action"] for a in status["apps"]} == {"alpha": "unchanged", "bravo": "created"}
    assert lease(store, "default") is None
