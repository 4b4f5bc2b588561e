"""Progressive delivery end to end on the local stack: the real function_app.py on the local host (Azurite queues and
table), the ACA emulator (revisions, traffic, Azure Monitor metrics) behind the real SDKs, real Git.

Time is injected: the rollouts service and the emulator share one clock that the tests advance; step jobs are
visible at once (`longest_delay` 0) and decided by that clock, so a five-step rollout runs in seconds and nothing
sleeps for a pause.
"""
from __future__ import annotations

import json
from dataclasses import replace

import pytest
import requests

from shared.adapters import storage
from shared.core import rollout as r
from shared.core.queues import POISON_SUFFIX, ROLLOUT_QUEUE
from shared.services.rollouts import Rollouts
from tests.conftest import GROUP, KEY, SUBSCRIPTION, writes
from tests.services import test_ci_feedback
from tests.services.test_pipeline import push

ci_stub = test_ci_feedback.ci
"""The CI stub fixture of the feedback loop's tests (`ci` there): the rollout's commit status goes through it."""

CANARY_STEPS = """\
    strategy: Canary
    steps:
      - setWeight: 10
      - pause: {duration: 5m}
      - setWeight: 50
      - pause: {duration: 10m}
      - setWeight: 80
"""


def manifest(image: str, rollout: str = CANARY_STEPS, analysis: str = "", extra: str = "") -> str:
    return (f"apiVersion: driftless.io/v1alpha1\nkind: App\nmetadata:\n  name: web\nspec:\n"
            f"  activeRevisionsMode: Multiple\n{extra}"
            f"  containers:\n    - {{name: web, image: {image}, cpu: 0.5, memory: 1Gi}}\n"
            f"  ingress: {{external: true, targetPort: 80}}\n  rollout:\n{rollout}{analysis}")


@pytest.fixture
def rollouts(stack, clock, monkeypatch):
    """The stack with the rollouts service on the test's clock, step jobs visible at once, and an empty queue."""
    monkeypatch.setattr(Rollouts, "clock", staticmethod(clock))
    monkeypatch.setattr(Rollouts, "longest_delay", 0)
    for name in (ROLLOUT_QUEUE, ROLLOUT_QUEUE + POISON_SUFFIX):
        storage.queue(name).clear_messages()
    return stack


def api(runner, method: str, path: str, **kwargs):
    return requests.request(method, f"{runner.url}/api/{path}", headers={"x-functions-key": KEY}, timeout=10, **kwargs)


def pump(runner, times: int = 3) -> None:
    """Let the host process what is visible now, `times` rounds (a waiting step job comes back each round)."""
    for _ in range(times):
        runner.pump_once()


def deploy(runner, repo, image: str, **kwargs) -> str:
    repo.write("apps/web.yaml", manifest(image, **kwargs))
    head = repo.commit(image)
    assert push(runner, repo).status_code == 202
    pump(runner, 2)
    return head


def stable_then_canary(runner, repo, aca, **kwargs) -> tuple[str, str, str]:
    """The app deployed at nginx:1.27, then at nginx:1.28 (with the same manifest `kwargs`): (the stable revision,
    the head commit, the new revision Driftless names after it)."""
    deploy(runner, repo, "nginx:1.27", **kwargs)
    stable = aca.app(SUBSCRIPTION, GROUP, "web")["properties"]["latestRevisionName"]
    head = deploy(runner, repo, "nginx:1.28", **kwargs)
    return stable, head, f"web--g{head[:12]}"


def traffic(aca) -> dict[str, int]:
    """The live weights by revision name (latestRevision resolved)."""
    app = aca.app(SUBSCRIPTION, GROUP, "web")
    props = app["properties"]
    found = {}
    for entry in props["configuration"]["ingress"]["traffic"]:
        name = entry.get("revisionName") or props["latestRevisionName"]
        found[name] = found.get(name, 0) + entry["weight"]
    return {k: v for k, v in found.items()}


def rollout_of(runner) -> dict:
    reply = api(runner, "GET", "rollouts/web")
    assert reply.status_code == 200, reply.text
    return reply.json()["rollouts"][0]


def test_a_canary_walks_every_step_to_promotion_with_no_write_while_a_pause_is_pending(rollouts, repo, aca, clock):
    stable, head, canary = stable_then_canary(rollouts, repo, aca)
    state = rollout_of(rollouts)
    assert (state["phase"], state["stableRevision"], state["canaryRevision"]) == ("Progressing", stable, canary)
    assert traffic(aca) == {stable: 90, canary: 10} and state["step"] == 1
    before = writes(aca)
    pump(rollouts, 3)
    clock.advance(299)
    pump(rollouts, 3)
    assert writes(aca) == before, "a pending pause writes nothing to ARM"
    assert traffic(aca) == {stable: 90, canary: 10}
    clock.advance(1)
    pump(rollouts, 2)
    assert traffic(aca) == {stable: 50, canary: 50} and rollout_of(rollouts)["step"] == 3
    clock.advance(600)
    pump(rollouts, 2)
    state = rollout_of(rollouts)
    assert state["phase"] == "Promoted" and state["weights"] == {canary: 100}
    assert traffic(aca) == {canary: 100}
    live = aca.app(SUBSCRIPTION, GROUP, "web")
    revision_state = {rev["name"]: rev["properties"]["active"] for rev in _revisions(aca)}
    assert revision_state[canary] is True and revision_state[stable] is False       # the old one deactivated
    assert live["properties"]["latestRevisionName"] == canary
    status = api(rollouts, "GET", "status").json()
    assert [a["rollout"]["phase"] for a in status["apps"] if a["app"] == "web"] == ["Promoted"]
    deploy(rollouts, repo, "nginx:1.28", extra="  scale: {minReplicas: 1, maxReplicas: 4}\n")
    live = aca.app(SUBSCRIPTION, GROUP, "web")["properties"]          # after a promotion a scale change (a new
    assert live["latestRevisionName"] != canary and live["template"]["scale"]["maxReplicas"] == 4   # revision in
    assert live["configuration"]["ingress"]["traffic"] == [{"latestRevision": True, "weight": 100}]   # ACA) goes
    assert rollout_of(rollouts)["revision"] == head                    # to 100% at once: no new rollout


def _revisions(aca) -> list[dict]:
    reply = requests.get(f"{aca.url}/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}/providers/Microsoft.App/"
                         f"containerApps/web/revisions?api-version=2024-03-01",
                         headers={"Authorization": "Bearer test-token"}, timeout=10, verify=aca.ca_path)
    assert reply.status_code == 200, reply.text
    return reply.json()["value"]


def test_a_manual_pause_waits_for_promote_and_bad_requests_are_refused(rollouts, repo, aca, clock):
    steps = "    strategy: Canary\n    steps:\n      - setWeight: 20\n      - pause: {}\n      - setWeight: 60\n"
    stable, head, canary = stable_then_canary(rollouts, repo, aca, rollout=steps)
    assert rollout_of(rollouts)["phase"] == "Paused" and traffic(aca) == {stable: 80, canary: 20}
    clock.advance(86400)
    before = writes(aca)
    pump(rollouts, 3)
    assert writes(aca) == before and rollout_of(rollouts)["phase"] == "Paused"
    assert api(rollouts, "GET", "rollouts/nope").status_code == 404
    assert api(rollouts, "POST", "rollouts/web/restart").status_code == 400
    assert api(rollouts, "POST", "rollouts/web/promote", params={"target": "nope"}).status_code == 404
    reply = api(rollouts, "POST", "rollouts/web/promote")
    assert reply.status_code == 202, reply.text
    pump(rollouts, 2)
    assert rollout_of(rollouts)["phase"] == "Promoted" and traffic(aca) == {canary: 100}
    again = api(rollouts, "POST", "rollouts/web/promote")
    assert again.status_code == 409 and "not Paused" in again.json()["error"]
    assert requests.post(f"{rollouts.url}/api/rollouts/web/promote", timeout=10).status_code == 401


@pytest.mark.parametrize("delay", [0, 120])
def test_a_rising_error_rate_rolls_back_within_one_interval(rollouts, repo, aca, clock, ci_stub, monkeypatch, delay):
    """With DRIFTLESS_METRICS_DELAY (Azure Monitor's ingestion delay; the emulator has none) the analysis reads the
    interval that ended that long ago, so the rollback comes one interval plus the delay after the errors."""
    monkeypatch.setenv("DRIFTLESS_METRICS_DELAY", str(delay))
    analysis = ("    analysis:\n      interval: 1m\n      failureLimit: 0\n      metrics:\n"
                "        - {name: error-rate, source: requests, maxPercent5xx: 5}\n")
    steps = "    strategy: Canary\n    steps:\n      - setWeight: 20\n      - pause: {duration: 1h}\n"
    stable, head, canary = stable_then_canary(rollouts, repo, aca, rollout=steps, analysis=analysis)
    started = clock.now
    failing_from = started + 120
    aca.set_requests("web", stable, per_minute=400)
    aca.set_requests("web", canary, per_minute=100, errors_5xx=lambda t: 30 if t >= failing_from else 0)
    for _ in range(2 + delay // 60):                # healthy intervals (as read after the delay): it goes on
        clock.advance(60)
        pump(rollouts, 2)
        assert rollout_of(rollouts)["phase"] == "Progressing"
    assert rollout_of(rollouts)["lastAnalysis"]["verdict"] == "pass"
    clock.advance(60)                               # the first failing minute is readable: this analysis sees it
    pump(rollouts, 2)
    state = rollout_of(rollouts)
    assert state["phase"] == "RolledBack", state
    assert clock.now - failing_from == 60 + delay   # one interval (plus the ingestion delay) after the errors began
    assert "error-rate" in state["reason"] and "30.0%" in state["reason"]
    assert traffic(aca) == {stable: 100}
    active = {rev["name"]: rev["properties"]["active"] for rev in _revisions(aca)}
    assert active[canary] is False and active[stable] is True
    pump(rollouts, 2)                               # the phase forwarder posts the rollout's commit status
    posted = [c for c in ci_stub.of("github_status") if c.body["context"] == "driftless/rollout/default/web"]
    assert [c.body["state"] for c in posted] == ["failure"]
    assert "error-rate" in posted[0].body["description"] and posted[0].path.endswith(head)


def test_blue_green_keeps_the_preview_at_zero_then_switches_at_once(rollouts, repo, aca, clock):
    steps = "    strategy: BlueGreen\n    steps:\n      - pause: {}\n"
    stable, head, green = stable_then_canary(rollouts, repo, aca, rollout=steps)
    live = aca.app(SUBSCRIPTION, GROUP, "web")["properties"]["configuration"]["ingress"]["traffic"]
    assert {"revisionName": green, "weight": 0, "label": "preview"} in live
    assert traffic(aca) == {stable: 100, green: 0}
    assert api(rollouts, "POST", "rollouts/web/promote").status_code == 202
    pump(rollouts, 2)
    assert traffic(aca) == {green: 100} and rollout_of(rollouts)["phase"] == "Promoted"


def test_a_new_commit_mid_rollout_aborts_it_and_starts_from_the_stable_revision(rollouts, repo, aca, clock):
    deploy(rollouts, repo, "nginx:1.27")
    stable = aca.app(SUBSCRIPTION, GROUP, "web")["properties"]["latestRevisionName"]
    first = deploy(rollouts, repo, "nginx:1.28")
    old_canary = f"web--g{first[:12]}"
    assert traffic(aca) == {stable: 90, old_canary: 10}
    second = deploy(rollouts, repo, "nginx:1.29")
    canary = f"web--g{second[:12]}"
    state = rollout_of(rollouts)
    assert (state["revision"], state["stableRevision"], state["canaryRevision"]) == (second, stable, canary)
    assert traffic(aca) == {stable: 90, canary: 10}
    active = {rev["name"]: rev["properties"]["active"] for rev in _revisions(aca)}
    assert active[old_canary] is False
    for pause in (300, 600):
        clock.advance(pause)
        pump(rollouts, 2)
    assert traffic(aca) == {canary: 100}


def test_a_worker_killed_after_storing_a_step_resumes_and_a_redelivered_job_is_a_no_op(rollouts, repo, aca, clock,
                                                                                       monkeypatch):
    deploy(rollouts, repo, "nginx:1.27")
    stable = aca.app(SUBSCRIPTION, GROUP, "web")["properties"]["latestRevisionName"]
    repo.write("apps/web.yaml", manifest("nginx:1.28"))
    head = repo.commit("1.28")
    assert push(rollouts, repo).status_code == 202
    rollouts.pump_once()                                # the reconcile: canary at 0%, first step job queued
    canary = f"web--g{head[:12]}"
    live = aca.app(SUBSCRIPTION, GROUP, "web")["properties"]
    assert live["latestRevisionName"] == canary and live["template"]["revisionSuffix"] == f"g{head[:12]}"
    assert live["configuration"]["ingress"]["traffic"] == [{"revisionName": stable, "weight": 100},
                                                           {"revisionName": canary, "weight": 0, "label": "canary"}]
    from shared.services.context import Context
    real_send = Context.send
    calls = {"n": 0}

    def dies_once(self, queue, text, *, delay=0):       # the worker dies after storing the step, before its follow-up
        if queue == ROLLOUT_QUEUE and calls["n"] == 0:
            calls["n"] += 1
            raise RuntimeError("worker killed")
        return real_send(self, queue, text, delay=delay)

    monkeypatch.setattr(Context, "send", dies_once)
    rollouts.pump_once()
    state, _ = _stored(head)
    assert state.step == 1 and state.tick == 1 and traffic(aca) == {stable: 90, canary: 10}
    rollouts.pump_once()                                # the host re-delivers the job: it only re-sends the follow-up
    assert _stored(head)[0].tick == 1
    stale = r.Job("default", "web", head, 0, "someone-else").to_json()
    storage.send(ROLLOUT_QUEUE, stale)                  # a stale copy is a no-op
    for pause in (300, 600):
        clock.advance(pause)
        pump(rollouts, 2)
    assert traffic(aca) == {canary: 100} and _stored(head)[0].phase == "Promoted"
    assert storage.queue(ROLLOUT_QUEUE + POISON_SUFFIX).peek_messages() == []


def _stored(head: str):
    from shared.adapters.status_store import Store

    for state in Store().rollouts():
        if state.revision == head:
            return state, None
    raise AssertionError("no rollout stored")


def test_a_new_app_and_a_scale_change_apply_at_once_and_drift_healing_does_not_fight_the_weights(rollouts, repo,
                                                                                                 aca, clock):
    deploy(rollouts, repo, "nginx:1.27")
    assert api(rollouts, "GET", "rollouts/web").status_code == 404       # a new app needs no rollout
    assert traffic(aca) == {aca.app(SUBSCRIPTION, GROUP, "web")["properties"]["latestRevisionName"]: 100}
    deploy(rollouts, repo, "nginx:1.27", extra="  scale: {minReplicas: 1, maxReplicas: 3}\n")
    assert api(rollouts, "GET", "rollouts/web").status_code == 404       # scale creates no rollout: applied at once
    assert aca.app(SUBSCRIPTION, GROUP, "web")["properties"]["template"]["scale"]["maxReplicas"] == 3
    assert list(traffic(aca).values()) == [100]
    stable, head, canary = stable_then_canary(rollouts, repo, aca)
    rollouts.fire_timer("scheduled_reconcile")          # drift healing mid-rollout leaves the weights alone
    pump(rollouts, 2)
    assert traffic(aca) == {stable: 90, canary: 10}
    assert json.loads(json.dumps(rollout_of(rollouts)))["phase"] == "Progressing"


def test_a_manual_pause_promoted_with_the_cli(rollouts, repo, aca, clock, capsys):
    from shared.cli import main

    steps = "    strategy: Canary\n    steps:\n      - setWeight: 30\n      - pause: {}\n"
    stable, head, canary = stable_then_canary(rollouts, repo, aca, rollout=steps)
    capsys.readouterr()
    assert main(["rollout", "status", "web"]) == 0
    shown = capsys.readouterr().out
    assert "Paused" in shown and "1/2" in shown and f"{canary} 30%" in shown          # one of two steps done
    assert main(["get", "apps"]) == 0
    assert f"Paused 1/2 ({stable} 70%, {canary} 30%)" in capsys.readouterr().out
    assert main(["rollout", "promote", "nope"]) != 0
    assert main(["rollout", "promote", "web", "-o", "json"]) == 0
    assert '"promoted": "web"' in capsys.readouterr().out
    pump(rollouts, 2)
    assert traffic(aca) == {canary: 100}
    assert main(["rollout", "abort", "web"]) != 0                       # promoted: nothing to abort (409)


def test_abort_sends_everything_back_to_stable(rollouts, repo, aca, clock):
    deploy(rollouts, repo, "nginx:1.27")
    stable = aca.app(SUBSCRIPTION, GROUP, "web")["properties"]["latestRevisionName"]
    head = deploy(rollouts, repo, "nginx:1.28")
    reply = api(rollouts, "POST", "rollouts/web/abort")
    assert reply.status_code == 200 and reply.json()["rollout"]["phase"] == "Aborted"
    assert traffic(aca) == {stable: 100}
    active = {rev["name"]: rev["properties"]["active"] for rev in _revisions(aca)}
    assert active[f"web--g{head[:12]}"] is False
    clock.advance(3600)
    before = writes(aca)
    pump(rollouts, 3)                                                    # its queued jobs are stale now
    assert writes(aca) == before and traffic(aca) == {stable: 100}


def test_a_runtime_suspension_holds_the_rollout_where_it_is(rollouts, repo, aca, clock):
    stable, head, canary = stable_then_canary(rollouts, repo, aca)
    assert api(rollouts, "POST", "apps/web/suspend").status_code == 200
    clock.advance(3600)
    before = writes(aca)
    pump(rollouts, 3)
    assert writes(aca) == before and traffic(aca) == {stable: 90, canary: 10}
    assert rollout_of(rollouts)["step"] == 1
    assert api(rollouts, "POST", "apps/web/resume").status_code == 202
    for pause in (0, 600):
        clock.advance(pause)
        pump(rollouts, 2)
    assert traffic(aca) == {canary: 100}


def test_a_canary_whose_rollout_the_store_missed_gets_it_started_by_the_next_pass(rollouts, repo, aca, clock):
    deploy(rollouts, repo, "nginx:1.27")
    stable = aca.app(SUBSCRIPTION, GROUP, "web")["properties"]["latestRevisionName"]
    repo.write("apps/web.yaml", manifest("nginx:1.28"))
    head = repo.commit("nginx:1.28")
    assert push(rollouts, repo).status_code == 202
    pump(rollouts, 1)                           # the pass only: the canary at 0%, its rollout stored, a job queued
    canary = f"web--g{head[:12]}"
    assert traffic(aca) == {stable: 100, canary: 0}
    # The status store lost the rollout's start (its row and its first job): the canary waits at 0% with no rollout.
    storage.table().delete_entity("rollout.default", "web")
    storage.queue(ROLLOUT_QUEUE).clear_messages()
    assert api(rollouts, "GET", "rollouts/web").status_code == 404
    before = writes(aca)
    assert api(rollouts, "POST", "reconcile", json={"target": "default"}).status_code == 202
    pump(rollouts, 1)                           # the next pass: no write, the rollout started from that canary
    assert writes(aca) == before
    state = rollout_of(rollouts)
    assert (state["stableRevision"], state["canaryRevision"], state["revision"]) == (stable, canary, head)
    for pause in (0, 300, 600):
        clock.advance(pause)
        pump(rollouts, 2)
    assert traffic(aca) == {canary: 100} and rollout_of(rollouts)["phase"] == "Promoted"
    assert api(rollouts, "POST", "reconcile", json={"target": "default"}).status_code == 202
    pump(rollouts, 1)                           # a promoted canary is not started again
    assert rollout_of(rollouts)["phase"] == "Promoted"


def test_spec_suspend_in_git_holds_the_rollout_until_a_pass_sees_it_removed(rollouts, repo, aca, clock):
    stable, head, canary = stable_then_canary(rollouts, repo, aca)
    deploy(rollouts, repo, "nginx:1.28", extra="  suspend: true\n")        # same template, suspended in Git
    clock.advance(3600)
    before = writes(aca)
    pump(rollouts, 3)
    assert writes(aca) == before and traffic(aca) == {stable: 90, canary: 10}
    assert rollout_of(rollouts)["step"] == 1 and rollout_of(rollouts)["revision"] == head
    deploy(rollouts, repo, "nginx:1.28")                                   # suspend removed: the pass sees it
    for pause in (300, 600):
        clock.advance(pause)
        pump(rollouts, 2)
    assert traffic(aca) == {canary: 100} and rollout_of(rollouts)["phase"] == "Promoted"


def test_odd_names_targets_and_actions_are_4xx_with_a_reason_never_5xx(rollouts):
    names = ["web", "a'b", "x" * 300, "%00", "Job%2Fnightly", "..", "' or 1 eq 1 or '"]
    targets = [None, "", "x" * 3000, "' or PartitionKey ge '", "%00", "default"]
    seen = set()
    for name in names:
        for target in targets:
            params = {} if target is None else {"target": target}
            for method, path in (("GET", f"rollouts/{name}"), ("POST", f"rollouts/{name}/promote"),
                                 ("POST", f"rollouts/{name}/abort"), ("POST", f"rollouts/{name}/restart")):
                reply = api(rollouts, method, path, params=params)
                assert reply.status_code < 500, (method, path, target, reply.text)
                if reply.status_code != 404 or reply.text:
                    assert "error" in reply.json(), reply.text
                seen.add(reply.status_code)
    assert {400, 404} <= seen


def test_two_workers_never_both_move_one_rollout(rollouts, repo, aca, clock):
    from shared.adapters.status_store import Store

    deploy(rollouts, repo, "nginx:1.27")
    head = deploy(rollouts, repo, "nginx:1.28")
    store = Store()
    state, etag = store.rollout("default", "web")
    first, second = replace(state, reason="worker one"), replace(state, reason="worker two")
    assert store.put_rollout(first, etag) is True
    assert store.put_rollout(second, etag) is False                 # read the same ETag: refused
    assert store.rollout("default", "web")[0].reason == "worker one" and state.revision == head


def test_which_changes_start_a_rollout_and_which_revision_is_stable():
    from shared.engines.container_apps import _creates_revision, stable_revision

    assert _creates_revision("containers[web].image", False) and _creates_revision("template.volumes", False)
    assert not _creates_revision("scale.maxReplicas", False) and not _creates_revision("tags.team", False)
    assert not _creates_revision("template.scale.rules", False) and _creates_revision("scale.maxReplicas", True)
    assert not _creates_revision("secrets", True) and not _creates_revision("ingress.external", True)

    def app(traffic, ready="web--b"):
        return {"properties": {"latestReadyRevisionName": ready, "configuration": {"ingress": {"traffic": traffic}}}}
    assert stable_revision(app([{"latestRevision": True, "weight": 100}])) == "web--b"
    assert stable_revision(app([{"revisionName": "web--a", "weight": 90},
                                {"revisionName": "web--b", "weight": 10}])) == "web--a"
    assert stable_revision(app([], ready="")) == ""


AI = "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-apps/providers/Microsoft.Insights/components/web-ai"


def test_an_app_insights_metric_above_its_limit_rolls_back_and_one_without_a_value_pauses(rollouts, repo, aca, clock):
    analysis = ("    analysis:\n      interval: 1m\n      failureLimit: 1\n      metrics:\n"
                "        - name: latency\n          source: appInsights\n          maxValue: 800\n"
                f"          resource: {AI}\n"
                "          query: \"requests | where cloud_RoleInstance startswith '{revision}' | summarize avg(duration)\"\n")
    steps = "    strategy: Canary\n    steps:\n      - setWeight: 20\n      - pause: {duration: 1h}\n"
    stable, head, canary = stable_then_canary(rollouts, repo, aca, rollout=steps, analysis=analysis)
    query = f"requests | where cloud_RoleInstance startswith '{canary}' | summarize avg(duration)"
    slow_from = clock.now + 60
    aca.set_query_result(AI, query, lambda start, end: 1200.0 if end > slow_from else 300.0)
    clock.advance(60)
    pump(rollouts, 2)
    last = rollout_of(rollouts)["lastAnalysis"]
    assert last["verdict"] == "pass" and [m["value"] for m in last["results"] if m["name"] == "latency"] == [300.0]
    for _ in range(2):                                   # failureLimit 1: the second bad interval rolls back
        clock.advance(60)
        pump(rollouts, 2)
    state = rollout_of(rollouts)
    assert state["phase"] == "RolledBack" and "latency: 1200 (> 800)" in state["reason"], state
    assert traffic(aca) == {stable: 100}

    head = deploy(rollouts, repo, "nginx:1.29", rollout=steps, analysis=analysis)   # a query with no row: paused
    aca.set_query_result(AI, query.replace(canary, f"web--g{head[:12]}"), None)
    clock.advance(60)
    pump(rollouts, 2)
    state = rollout_of(rollouts)
    assert state["phase"] == "Paused" and "inconclusive" in state["reason"] and "no value" in state["reason"]


def test_an_abort_arm_refuses_is_stored_answered_202_and_carried_out_by_a_queued_job(rollouts, repo, aca, clock):
    stable, head, canary = stable_then_canary(rollouts, repo, aca)
    aca.set_faults(conflict_apps=["web"])               # another client's operation runs on the app: 409
    reply = api(rollouts, "POST", "rollouts/web/abort")
    assert reply.status_code == 202, reply.text         # never a 500
    assert "ContainerAppOperationInProgress" in reply.json()["pending"]
    assert rollout_of(rollouts)["phase"] == "Aborted" and traffic(aca) == {stable: 90, canary: 10}
    aca.set_faults(conflict_apps=[])
    pump(rollouts, 2)                                   # the queued job moves the traffic back
    assert traffic(aca) == {stable: 100}
    active = {rev["name"]: rev["properties"]["active"] for rev in _revisions(aca)}
    assert active[canary] is False


def test_the_timer_requeues_a_rollout_whose_step_job_was_lost(rollouts, repo, aca, clock):
    deploy(rollouts, repo, "nginx:1.27")
    head = deploy(rollouts, repo, "nginx:1.28")
    canary = f"web--g{head[:12]}"
    storage.queue(ROLLOUT_QUEUE).clear_messages()      # its next job parked or lost
    clock.advance(300 + 60)                             # the 5m pause ended a minute ago: not yet overdue
    rollouts.fire_timer("scheduled_reconcile")
    assert storage.queue(ROLLOUT_QUEUE).peek_messages(max_messages=5) == []
    clock.advance(600)                                  # now more than 10 minutes overdue
    rollouts.fire_timer("scheduled_reconcile")
    for pause in (0, 600):
        clock.advance(pause)
        pump(rollouts, 3)
    assert traffic(aca) == {canary: 100} and rollout_of(rollouts)["phase"] == "Promoted"


def test_after_a_canary_that_failed_to_provision_the_fixing_commit_is_rolled_out_from_the_stable_revision(
        rollouts, repo, aca, clock):
    analysis = ("    analysis:\n      interval: 1m\n      failureLimit: 0\n      metrics:\n"
                "        - {name: error-rate, source: requests, maxPercent5xx: 5}\n")
    deploy(rollouts, repo, "nginx:1.27", analysis=analysis)
    stable = aca.app(SUBSCRIPTION, GROUP, "web")["properties"]["latestRevisionName"]
    deploy(rollouts, repo, "nginx:broken", analysis=analysis)    # the emulator fails to provision this image
    clock.advance(60)
    pump(rollouts, 2)
    assert rollout_of(rollouts)["phase"] == "RolledBack" and traffic(aca) == {stable: 100}
    head = deploy(rollouts, repo, "nginx:1.29", analysis=analysis)
    fixed = f"web--g{head[:12]}"
    state = rollout_of(rollouts)                        # judged on the stable revision, not the failed latest one
    assert (state["revision"], state["stableRevision"], state["canaryRevision"]) == (head, stable, fixed)
    assert traffic(aca) == {stable: 90, fixed: 10}
