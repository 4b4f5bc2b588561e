"""The ARM write budget: Driftless paces its requests by ARM's token buckets (mirrored per subscription,
corrected by ARM's remaining-requests headers, stopped by Retry-After) and a pass starts writes of apps, jobs and
Dapr components without a thread per operation. The budget's clock is injected in its own tests; the pass runs against the emulator with ARM's
throttling model on."""
from __future__ import annotations

import copy

import pytest
import requests
import yaml

from shared.adapters import arm_budget
from shared.adapters.arm_budget import ArmBudget
from shared.engines.reconciler import Reconciler
from tests.conftest import ENVIRONMENT, GROUP, SUBSCRIPTION, TOKEN, app_yaml, make_settings, outcomes, sync, writes
from tests.core.test_dapr_component_manifests import STATESTORE
from tests.core.test_job_manifests import EVENT


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


def _apps(repo, n: int) -> list[str]:
    """`n` apps committed to Git; their names."""
    names = [f"app-{i:02d}" for i in range(n)]
    for name in names:
        repo.write(f"apps/{name}.yaml", app_yaml(name))
    repo.commit(f"{n} apps")
    return names


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
    names = _apps(repo, 20)
    result = sync(driftless())["default"]
    got = outcomes(result)
    assert {got[n].action for n in names} == {"created"}
    assert all(got[n].healthy for n in names)
    assert [o.app for o in result.outcomes] == sorted(names)  # plan order, as before
    assert budget.throttled == 0  # it slowed itself: ARM never refused a write
    assert budget.waited_s > 0.5
    assert all(aca.app(SUBSCRIPTION, GROUP, n)["properties"]["provisioningState"] == "Succeeded" for n in names)


def _on_two_threads(driftless, started):
    """A pass at DRIFTLESS_CONCURRENCY 2: its result, and `[started()]` taken when its first outcome came."""
    when_the_first_ended: list[int] = []

    def progress(done: int, total: int, outcome) -> None:
        if not when_the_first_ended:
            when_the_first_ended.append(started())

    return sync(driftless(DRIFTLESS_CONCURRENCY="2"), progress=progress)["default"], when_the_first_ended


def test_a_pass_keeps_more_operations_pending_than_it_has_threads(repo, aca, driftless):
    aca.set_faults(lro_duration_s=1.0)
    names = _apps(repo, 12)
    result, started_when_the_first_ended = _on_two_threads(driftless, lambda: sum(
        aca.app(SUBSCRIPTION, GROUP, n) is not None for n in names))
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


class _Op:
    """A stand-in operation handle for the apply loop's own tests."""

    def __init__(self, name: str) -> None:
        self.name, self.listed, self.alone = name, False, 0


def _sweeping_pass(names: list[str], sweep, *, alone_needed: int = 2, start_due: float = 0.0,
                   alone_due: float = 0.0, on_start=lambda name: None):
    """Run `apply_started` over creates of `names`: every operation stays pending until it is looked at; a look
    the sweep made finishes it, and so do `alone_needed` looks alone. Every operation is first due at the
    instant `start_due` and due again after a look alone at `alone_due` (0: at once; the same instant for all)."""

    from shared.core.manifests import Target
    from shared.core.outcome import Outcome
    from shared.core.plan import Plan, Step
    from shared.engines.engine import Pending, apply_started

    handles = {name: _Op(name) for name in names}
    finished_by: dict[str, str] = {}

    def start(step):
        on_start(step.app)
        return Pending(handles[step.app], start_due, 0.0)

    def poll(step, op):
        if op.listed:
            op.listed = False
            finished_by[op.name] = "sweep"
            return Outcome(op.name, "created")
        op.alone += 1
        if op.alone >= alone_needed:
            finished_by[op.name] = "alone"
            return Outcome(op.name, "created")
        return Pending(op, alone_due, 0.0)

    target = Target("t", "apps", "sub", "rg", "env")
    result = apply_started(target, "r" * 40, Plan([Step(n, "create") for n in names], False), [], start, poll,
                           dry_run=False, concurrency=4, progress=None, span="apply app", sweep=sweep)
    return result, handles, finished_by


def test_a_sweep_looks_at_every_pending_operation_at_once_and_one_missing_from_it_is_polled_alone():
    names = [f"app-{i}" for i in range(8)]
    offers: list[list[str]] = []

    def sweep(ops):
        offers.append([op.name for op in ops])
        read = [op for op in ops if op.name != "app-3"]         # app-3 is not in the list
        for op in read:
            op.listed = True
        return read, [op for op in ops if op.name == "app-3"]

    result, handles, finished_by = _sweeping_pass(names, sweep)
    assert [o.app for o in result.outcomes] == names and {o.action for o in result.outcomes} == {"created"}
    assert offers and all(len(offer) >= 3 for offer in offers)            # never a sweep for fewer than 3
    assert finished_by["app-3"] == "alone"
    first = next(i for i, offer in enumerate(offers) if "app-3" in offer)
    assert not any("app-3" in offer for offer in offers[first + 1:])       # missing once: never offered again
    # every operation a sweep read was finished by that look, with no look of its own after it
    swept = {name for offer in offers for name in offer if name != "app-3"}
    assert all(finished_by[name] == "sweep" for name in swept)
    assert all(handles[name].alone <= 1 for name in swept)


def test_operations_a_sweep_did_not_look_at_are_polled_alone_and_offered_again():
    names = [f"app-{i}" for i in range(8)]
    offers: list[list[str]] = []

    def sweep(ops):
        offers.append([op.name for op in ops])
        if len(offers) == 1:
            return [], []                       # the list would cost more than these GETs: nothing looked at
        for op in ops:
            op.listed = True
        return ops, []

    # every operation is started before it is due (all at one instant, 50 ms on), so the first sweep is offered
    # all 8; a look alone never ends one here (50 needed): looked at alone once after the first sweep, they are
    # due again together at a second instant and go to the next sweep
    import time

    now = time.monotonic()
    result, handles, finished_by = _sweeping_pass(names, sweep, alone_needed=50, start_due=now + 0.05,
                                                  alone_due=now + 0.1)
    assert [o.app for o in result.outcomes] == names and {o.action for o in result.outcomes} == {"created"}
    assert offers[0] == names and offers[1] == names
    assert all(handles[name].alone == 1 for name in names)                # due: looked at alone at once
    assert all(finished_by[name] == "sweep" for name in names)            # then offered again, and read


def test_a_sweep_that_fails_is_logged_and_for_a_while_every_operation_is_polled_alone(caplog):
    import threading

    names = [f"app-{i}" for i in range(6)]
    offers: list[int] = []
    all_started = threading.Event()

    def sweep(ops):
        offers.append(len(ops))
        all_started.wait(5)                 # a slow list: the other operations come due meanwhile
        raise RuntimeError("the list failed")

    starts: list[str] = []

    def on_start(name: str) -> None:       # the last operation started releases the failing list
        starts.append(name)
        if len(starts) == len(names):
            all_started.set()

    with caplog.at_level("WARNING"):
        result, handles, finished_by = _sweeping_pass(names, sweep, on_start=on_start)
    assert [o.app for o in result.outcomes] == names and {o.action for o in result.outcomes} == {"created"}
    assert set(finished_by.values()) == {"alone"}
    assert len(offers) == 1                 # no second list right after the failed one: each polled alone
    assert "reading pending operations with one list failed (RuntimeError: the list failed)" in caplog.text


def test_a_large_create_looks_at_its_operations_with_the_app_list_not_a_get_each(repo, aca, driftless):
    aca.set_faults(lro_duration_s=0.3)
    names = _apps(repo, 40)
    aca.reset_calls()
    result = sync(driftless(DRIFTLESS_ARM_POLL_INTERVAL="0.1"))["default"]
    got = outcomes(result)
    assert {got[n].action for n in names} == {"created"} and all(got[n].healthy for n in names)
    calls = aca.calls()
    assert calls["PUT app"] == 40 and "GET operation" not in calls
    # each operation lasts three poll intervals: looked at one by one that is at least 120 reads; the list (one
    # page, the plan's and each sweep's) looks at all pending creates at once
    reads = calls["GET list"] + calls.get("GET app", 0)
    assert calls["GET list"] >= 2 and reads < len(names), calls


def test_the_app_list_is_read_for_pending_operations_only_when_it_costs_fewer_reads(repo, aca, driftless):
    from shared.adapters.container_apps import ContainerApps

    settings = make_settings(str(repo.path), aca)
    client = ContainerApps(settings, SUBSCRIPTION)
    body = {"location": "westeurope", "properties": {
        "environmentId": settings.default_target().environment_id,
        "template": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}
    aca.set_faults(lro_hang_apps=[f"app-{i}" for i in range(4)])
    ops = [client.begin("create", GROUP, f"app-{i}", body) for i in range(4)]
    assert client.look_listed(ops) == ([], [])      # the list's size is not known yet: one GET each
    assert len(client.list_apps(GROUP)) == 4        # one page
    aca.reset_calls()
    assert client.look_listed(ops[:2]) == ([], [])  # 2 GETs cost no more than the list of 1 page (twice over)
    assert client.look_listed(ops) == (ops, []) and aca.calls() == {"GET list": 1}
    assert all(client.poll(op) is None for op in ops) and aca.calls() == {"GET list": 1}   # InProgress, no request
    ghost = copy.copy(ops[0])
    ghost.name = "not-listed"
    assert client.look_listed([*ops[1:], ghost]) == (ops[1:], [ghost])   # not in the list: a GET of its own
    deleting = copy.copy(ops[0])
    deleting.kind = "delete"
    assert client.look_listed([*ops[1:], deleting]) == (ops[1:], [deleting])   # a list cannot show a delete end


def test_a_read_that_shows_an_earlier_operations_failure_does_not_fail_the_running_one(repo, aca):
    """A list (or GET) that lags behind ARM can still show the Failed state an earlier operation left; the
    operation status of this write decides: still running -> look again later; succeeded -> read it again."""
    from shared.adapters.container_apps import ContainerApps

    settings = make_settings(str(repo.path), aca)
    client = ContainerApps(settings, SUBSCRIPTION)
    body = {"location": "westeurope", "properties": {
        "environmentId": settings.default_target().environment_id,
        "template": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}
    stale = {"name": "slow", "properties": {"provisioningState": "Failed"}}
    aca.set_faults(lro_hang_apps=["slow"])
    running = client.begin("create", GROUP, "slow", body)
    running.listed = stale
    assert client.poll(running) is None                               # its operation still runs
    aca.set_faults(lro_hang_apps=[])
    done = client.begin("create", GROUP, "quick", body)
    assert aca.app(SUBSCRIPTION, GROUP, "quick")["properties"]["provisioningState"] == "Succeeded"  # 0 s operation
    done.listed = {**stale, "name": "quick"}
    assert client.poll(done)["properties"]["provisioningState"] == "Succeeded"


# --- jobs and Dapr components: the same begin/poll path under the same budget ------------------------------------
@pytest.fixture
def budget(monkeypatch) -> ArmBudget:
    """A fresh mirror of the subscription's buckets for this test (the process's one is shared by other tests)."""
    fresh = ArmBudget()
    monkeypatch.setitem(arm_budget._budgets, SUBSCRIPTION.lower(), fresh)
    return fresh


def jobs_and_components(repo, n: int) -> tuple[list[str], list[str]]:
    """`n` event jobs and `n` Dapr components in Git; their keys."""
    jobs, components = [], []
    for i in range(n):
        job = copy.deepcopy(EVENT)
        job["metadata"]["name"] = f"worker-{i}"
        repo.write(f"apps/worker-{i}.yaml", yaml.safe_dump(job, sort_keys=False))
        component = copy.deepcopy(STATESTORE)
        component["metadata"]["name"] = f"store-{i}"
        repo.write(f"apps/store-{i}.yaml", yaml.safe_dump(component, sort_keys=False))
        jobs.append(f"Job/worker-{i}")
        components.append(f"DaprComponent/store-{i}")
    repo.commit(f"{n} jobs and {n} Dapr components")
    return jobs, components


def created_writes(emulator) -> dict[str, int]:
    return {k: n for k, n in emulator.calls().items() if k.split()[0] in ("PUT", "PATCH", "DELETE")}


def test_jobs_and_components_on_a_drained_bucket_slow_themselves_and_write_each_item_once(repo, aca, store, budget):
    aca.set_faults(throttling=1, lro_duration_s=0.2)
    jobs, components = jobs_and_components(repo, 10)
    reconciler = Reconciler(make_settings(str(repo.path), aca), store=store)
    _drain(aca, leave=3)                                  # another tool of the same identity spent ARM's bucket
    aca.reset_calls()
    result = sync(reconciler)["default"]
    got = outcomes(result)
    assert {got[k].action for k in jobs + components} == {"created"}, [(o.app, o.reason) for o in result.outcomes]
    assert all(got[k].healthy for k in jobs + components) and result.ok
    assert budget.throttled == 0                          # it slowed itself: ARM never refused a write
    assert budget.waited_s > 0.5                          # 20 writes on a few tokens: paced at the refill rate
    assert created_writes(aca) == {"PUT job": 10, "PUT dapr component": 10}  # each item written once
    assert all(aca.job(SUBSCRIPTION, GROUP, k.split("/")[1])["properties"]["provisioningState"] == "Succeeded"
               for k in jobs)
    assert set(store.inventory("default")) == set(components)


def test_a_429_on_a_job_or_component_write_is_waited_out_and_sent_once_more(repo, aca, budget):
    from shared.adapters.container_apps import JOBS, ContainerApps, dapr_components
    from shared.core import container_app_job, dapr_component
    from shared.core.aca_kinds import ACA_READERS
    from shared.core.manifests import FileCache, load_objects

    settings = make_settings(str(repo.path), aca)
    target = settings.default_target()
    client = ContainerApps(settings, SUBSCRIPTION)
    objects, problems = load_objects({"apps/job.yaml": yaml.safe_dump(EVENT).encode(),
                                      "apps/dapr.yaml": yaml.safe_dump(STATESTORE).encode()}, ACA_READERS, FileCache())
    assert not problems
    job, component = (next(o for o in objects if o.file == f"apps/{name}.yaml") for name in ("job", "dapr"))
    aca.reset_calls()
    aca.set_faults(throttle_next=1, retry_after_s=1)
    op = client.begin("create", GROUP, "orders-worker", container_app_job.create_body(
        job, location="westeurope", environment_id=target.environment_id, tags={}), resource=JOBS)
    while client.poll(op) is None:
        pass                                                 # the emulator's operation ends on the next look
    assert aca.job(SUBSCRIPTION, GROUP, "orders-worker")["properties"]["provisioningState"] == "Succeeded"
    aca.set_faults(throttle_next=1, retry_after_s=1)
    group, resource = dapr_components(target.environment_id)
    done = client.begin("create", group, "reddog", dapr_component.put_body(component, None), resource=resource)
    assert done.result is not None and client.poll(done)["name"] == "reddog"   # synchronous: already ended
    assert budget.throttled == 2
    assert created_writes(aca) == {"PUT job": 2, "PUT dapr component": 2}      # each refused write sent once more


def test_jobs_keep_more_operations_pending_than_the_pass_has_threads(repo, aca, driftless):
    aca.set_faults(lro_duration_s=1.0)
    names = [f"worker-{i}" for i in range(6)]
    for name in names:
        job = copy.deepcopy(EVENT)
        job["metadata"]["name"] = name
        repo.write(f"apps/{name}.yaml", yaml.safe_dump(job, sort_keys=False))
    repo.commit("six jobs")
    result, started_when_the_first_ended = _on_two_threads(driftless, lambda: sum(
        aca.job(SUBSCRIPTION, GROUP, n) is not None for n in names))
    assert {o.action for o in result.outcomes} == {"created"}
    # a thread per operation would have sent 2 writes when the first 1 s operation ended; all 6 were started
    assert started_when_the_first_ended == [6]


def test_a_failed_or_endless_job_operation_never_stops_the_others(repo, aca, driftless):
    names = ["alpha", "bravo", "charlie", "delta"]
    for name in names:
        job = copy.deepcopy(EVENT)
        job["metadata"]["name"] = name
        repo.write(f"apps/{name}.yaml", yaml.safe_dump(job, sort_keys=False))
    repo.commit("four jobs")
    aca.set_faults(lro_fail_jobs=["alpha"], lro_hang_jobs=["bravo"])
    result = sync(driftless(DRIFTLESS_APPLY_TIMEOUT="0.5"))["default"]
    got = outcomes(result)
    assert got["Job/alpha"].action == "failed" and "ContainerAppOperationError" in got["Job/alpha"].reason
    assert got["Job/bravo"].action == "failed" and "did not finish within 0.5s" in got["Job/bravo"].reason
    assert got["Job/charlie"].action == got["Job/delta"].action == "created" and not result.ok
    assert [o.app for o in result.outcomes] == sorted(o.app for o in result.outcomes)  # plan order, as before


def test_a_dry_run_of_jobs_and_components_writes_nothing(repo, aca, store):
    jobs, components = jobs_and_components(repo, 2)
    aca.reset_calls()
    result = sync(Reconciler(make_settings(str(repo.path), aca), store=store), dry_run=True)["default"]
    got = outcomes(result)
    assert {got[k].action for k in jobs + components} == {"created"}
    assert all(got[k].reason.startswith("dry run, not applied") for k in jobs + components)
    assert writes(aca) == 0 and store.inventory("default") == {}
    assert aca.job(SUBSCRIPTION, GROUP, "worker-0") is None
    assert aca.dapr_component(SUBSCRIPTION, GROUP, ENVIRONMENT, "store-0") is None
