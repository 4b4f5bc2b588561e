"""The ARM write budget: Driftless paces its requests by ARM's token buckets (mirrored per subscription,
corrected by ARM's remaining-requests headers, stopped by Retry-After) and a pass starts writes without a thread
per operation. The budget's clock is injected in its own tests; the pass runs against the emulator with ARM's
throttling model on."""
from __future__ import annotations

import requests

from shared.adapters import arm_budget
from shared.adapters.arm_budget import ArmBudget
from tests.conftest import GROUP, SUBSCRIPTION, TOKEN, app_yaml, outcomes, sync


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _counted(budget: ArmBudget, kind: str, remaining: int) -> None:
    budget.acquire(kind)
    budget.observe(kind, 201, {f"x-ms-ratelimit-remaining-subscription-{kind}": str(remaining)})


def test_after_the_burst_writes_are_paced_at_the_refill_rate():
    clock = Clock()
    budget = ArmBudget(clock=clock, sleep=clock.sleep)
    _counted(budget, "writes", 199)
    for _ in range(188):  # 200 - the reserve (10) - the first one
        budget.acquire("writes")
    assert clock.slept == []
    for _ in range(10):
        budget.acquire("writes")
    assert 0.85 <= sum(clock.slept) <= 0.95  # the one token left, then 9 more at 10 per second


def test_arm_remaining_count_corrects_the_mirror_down():
    clock = Clock()
    budget = ArmBudget(clock=clock, sleep=clock.sleep)
    _counted(budget, "writes", 15)  # another process of the same identity spent most of the bucket
    assert budget.tokens("writes") == 5  # 15 less the reserve of 10
    for _ in range(5):
        budget.acquire("writes")
    assert clock.slept == []
    budget.acquire("writes")
    assert clock.slept and abs(sum(clock.slept) - 0.1) < 0.01
    assert budget.tokens("reads") == 250  # other types are counted apart


def test_a_429_stops_that_type_until_retry_after():
    clock = Clock()
    budget = ArmBudget(clock=clock, sleep=clock.sleep)
    _counted(budget, "writes", 150)
    budget.acquire("writes")
    budget.observe("writes", 429, {"Retry-After": "7", "x-ms-ratelimit-remaining-subscription-writes": "0"})
    assert budget.throttled == 1
    budget.acquire("reads")
    assert clock.slept == []  # reads go on
    budget.acquire("writes")
    assert sum(clock.slept) >= 7


def test_an_endpoint_without_the_headers_is_never_paced():
    clock = Clock()
    budget = ArmBudget(clock=clock, sleep=clock.sleep)
    budget.acquire("writes")
    budget.observe("writes", 200, {})
    for _ in range(500):
        budget.acquire("writes")
    assert clock.slept == []


def _drain(emulator, leave: int) -> None:
    """Another tool of the same identity spends ARM's write bucket down to `leave` tokens."""
    url = (f"{emulator.url}/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}/providers/Microsoft.App/"
           f"containerApps/not-there?api-version=2025-01-01")
    with requests.Session() as session:
        for _ in range(200 - leave):
            reply = session.patch(url, json={}, headers={"Authorization": f"Bearer {TOKEN}"},
                                  verify=emulator.ca_path, timeout=30)
            assert reply.status_code == 404


def test_a_full_create_on_a_drained_bucket_slows_itself_and_gets_no_429(repo, aca, driftless, monkeypatch):
    budget = ArmBudget()
    monkeypatch.setitem(arm_budget._budgets, SUBSCRIPTION.lower(), budget)
    aca.set_faults(throttling=1, lro_duration_s=0.2)
    _drain(aca, leave=12)
    names = [f"app-{i:02d}" for i in range(20)]
    for name in names:
        repo.write(f"apps/{name}.yaml", app_yaml(name))
    repo.commit("twenty apps")
    result = sync(driftless())["default"]
    got = outcomes(result)
    assert {got[n].action for n in names} == {"created"}
    assert all(got[n].healthy for n in names)
    assert [o.app for o in result.outcomes] == sorted(names)  # plan order, as before
    assert budget.throttled == 0  # it slowed itself: ARM never refused a write
    assert budget.waited_s > 0.5
    assert all(aca.app(SUBSCRIPTION, GROUP, n)["properties"]["provisioningState"] == "Succeeded" for n in names)


def test_a_pass_keeps_more_operations_pending_than_it_has_threads(repo, aca, driftless):
    aca.set_faults(lro_duration_s=1.0)
    names = [f"app-{i:02d}" for i in range(12)]
    for name in names:
        repo.write(f"apps/{name}.yaml", app_yaml(name))
    repo.commit("twelve apps")
    started_when_the_first_ended: list[int] = []

    def progress(done: int, total: int, outcome) -> None:
        if not started_when_the_first_ended:
            started_when_the_first_ended.append(sum(aca.app(SUBSCRIPTION, GROUP, n) is not None for n in names))

    result = sync(driftless(DRIFTLESS_CONCURRENCY="2"), progress=progress)["default"]
    assert {o.action for o in result.outcomes} == {"created"}
    # a thread per operation would have sent 2 writes when the first 1 s operation ended; all 12 were started
    assert started_when_the_first_ended == [12]


def test_the_apply_loop_waits_instead_of_spinning_while_every_poll_thread_is_busy(monkeypatch):
    """With all poll threads busy and more operations due, the loop blocks on a future (no busy loop)."""
    import concurrent.futures
    import threading

    from shared.core.manifests import Target
    from shared.core.outcome import Outcome
    from shared.core.plan import Plan, Step
    from shared.engines.engine import Pending, apply_started

    calls = {"wait": 0}
    real_wait = concurrent.futures.wait

    def counted(*args, **kwargs):
        calls["wait"] += 1
        return real_wait(*args, **kwargs)

    monkeypatch.setattr(concurrent.futures, "wait", counted)
    release = threading.Event()
    steps = [Step(f"app-{i}", "create") for i in range(4)]

    def start(step):
        return Pending(step.app, 0.0)                    # due at once

    def poll(step, handle):
        release.wait(0.2)                                # a slow look at the operation
        return Outcome(step.app, "created")

    target = Target("t", "apps", "sub", "rg", "env")
    result = apply_started(target, "r" * 40, Plan(steps, False), [], start, poll, dry_run=False, concurrency=1,
                           progress=None, span="apply app")
    assert [o.app for o in result.outcomes] == [s.app for s in steps]
    assert calls["wait"] < 40, calls
