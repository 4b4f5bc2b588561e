"""Part 5: phase events. Flux `ReconciliationSucceeded` callbacks POSTed to /api/gitopsphase on the local
Functions runner (host.json as is) -> Azurite `phase-events` -> forwarder -> the GitHub stub
(devtools/ci_stub.py): a commit status and a `repository_dispatch` per finished event.

1. Throughput: `events` distinct commits POSTed back to back from one client (accepted per second), then the
   queue drained by the runner (batches of host.json's batchSize, polled back to back; the runner ignores
   newBatchThreshold, so this is one instance's floor): forwarded events per second until the stub holds
   every status and dispatch.
2. Exactly once: 100 identical events for one commit must give 1 dispatch and 1 status.
"""
from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import requests

from bench.common import ROOT, Marks, check, environment, ms

PHASE_KEY = "bench-phase-key"
REPEATS = 100


def _sha(index: int) -> str:
    return hashlib.sha1(f"bench-commit-{index}".encode()).hexdigest()


def _event(sha: str) -> dict[str, Any]:
    return {"involvedObject": {"kind": "Kustomization", "namespace": "flux-system", "name": "apps"},
            "severity": "info", "timestamp": "2026-11-22T10:00:00Z", "message": "Reconciliation finished in 1s",
            "reason": "ReconciliationSucceeded", "metadata": {"revision": f"main@sha1:{sha}"},
            "reportingController": "kustomize-controller"}


def _post(session: requests.Session, url: str, sha: str) -> None:
    reply = session.post(f"{url}/api/gitopsphase", params={"code": PHASE_KEY}, json=_event(sha), timeout=30)
    check(reply.status_code == 202 and reply.json().get("finished") is True,
          f"gitopsphase answered {reply.status_code} {reply.text}")


def run(events: int = 200) -> dict[str, Any]:
    import function_app
    from devtools.azurite import Azurite
    from devtools.ci_stub import CiStub
    from devtools.local_runner import LocalRunner
    from shared.services.ci_feedback import Callbacks

    print(f"\n=== Part 5: phase events ({events} distinct finished events, then {REPEATS} identical ones; "
          "host.json as is)", flush=True)
    azurite, stub = Azurite().start(), CiStub().start()
    try:
        shas = [_sha(i) for i in range(events + 1)]
        for sha in shas:
            stub.commits[sha] = "Merged PR 1: bench\n\nRun-Id: 1"
        feedback = {"default": {"github": "contoso/gitops",
                                "githubDispatch": {"repo": "contoso/app", "eventType": "sync-success"}}}
        settings = {"AzureWebJobsStorage": azurite.connection_string, "DRIFTLESS_FEEDBACK": json.dumps(feedback),
                    "DRIFTLESS_GITHUB_API_URL": stub.url, "DRIFTLESS_PHASE_KEY": PHASE_KEY,
                    "DRIFTLESS_GIT_TOKEN": "bench-github-token", "DRIFTLESS_QUIET": "1"}
        marks = Marks()
        with environment(settings), marks.wrapped(Callbacks, "forward"):
            runner = LocalRunner(function_app.app, connection_string=azurite.connection_string,
                                 host_json=str(ROOT / "host.json")).start(port=0, pump=False)
            try:
                session = requests.Session()
                _post(session, runner.url, shas[events])           # warm: imports, clients, the queue exists
                runner.drain(timeout=60)
                stub.calls.clear()
                started = time.monotonic()
                for sha in shas[:events]:
                    _post(session, runner.url, sha)
                posted = time.monotonic()
                runner.drain(timeout=600)
                finished = time.monotonic()
                check(len(stub.of("github_status")) == events and len(stub.of("github_dispatch")) == events,
                      f"{len(stub.of('github_status'))} statuses and {len(stub.of('github_dispatch'))} dispatches "
                      f"for {events} events")
                repeated = _sha(events + 1)
                stub.commits[repeated] = "Merged PR 2: bench\n\nRun-Id: 2"
                before = marks.count("forward")
                for _ in range(REPEATS):
                    _post(session, runner.url, repeated)
                runner.drain(timeout=600)
                check(marks.count("forward") == before + REPEATS,
                      f"{marks.count('forward') - before} of {REPEATS} repeated events were forwarded")
                repeated_dispatches = sum(c.body["client_payload"]["sha"] == repeated
                                          for c in stub.of("github_dispatch"))
                repeated_statuses = sum(c.path.endswith(repeated) for c in stub.of("github_status"))
                check(not runner.errors, f"function errors: {runner.errors[:3]}")
            finally:
                runner.stop()
    finally:
        stub.stop()
        azurite.stop()
    check(repeated_dispatches == 1, f"{REPEATS} identical events gave {repeated_dispatches} dispatches (must be 1)")
    accept, drain = posted - started, finished - posted
    print(f"{events} events: accepted in {ms(accept)} ({events / accept:.0f}/s, {accept / events * 1000:.1f} ms per "
          f"POST); forwarded in {ms(drain)}: {events / drain:.1f} events/s ({3 * events / drain:.0f} GitHub "
          "calls/s: commit message, status, dispatch)")
    print(f"{REPEATS} identical ReconciliationSucceeded events: {repeated_dispatches} dispatch, "
          f"{repeated_statuses} status (target: exactly 1 dispatch: met)", flush=True)
    return {"events": events, "accept_s": accept, "forward_s": drain, "repeats": REPEATS,
            "repeated_dispatches": repeated_dispatches, "repeated_statuses": repeated_statuses}
