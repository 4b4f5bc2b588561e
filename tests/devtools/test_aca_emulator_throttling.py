"""The ACA emulator's model of ARM's throttling (token buckets per subscription and caller, remaining-requests
headers, 429 SubscriptionRequestsThrottled with Retry-After) and of operation timing (per call type, jitter,
time scale). Time is an injected clock: nothing here sleeps."""

from __future__ import annotations

import json
from typing import Any, Iterator

import pytest
import requests

from devtools.aca_emulator import ARM_BUCKETS, AcaEmulator

SUB = "8f2a4c1e-0000-4000-8000-00000000000a"
OTHER_SUB = "8f2a4c1e-0000-4000-8000-00000000000b"
RG = "rg-throttle"
API = "2025-01-01"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def served(cert_dir) -> Iterator[tuple[AcaEmulator, Clock]]:
    clock = Clock()
    emulator = AcaEmulator(cert_dir=cert_dir, clock=clock).start()
    yield emulator, clock
    emulator.stop()


@pytest.fixture
def emu(served) -> tuple[AcaEmulator, Clock]:
    emulator, clock = served
    emulator.reset()
    emulator.add_environment(SUB, RG, "env")
    emulator.add_environment(OTHER_SUB, RG, "env")
    return emulator, clock


def _call(emulator: AcaEmulator, method: str, path: str, *, token: str = "caller-a", body: Any = None,
          sub: str = SUB) -> requests.Response:
    url = f"{emulator.url}/subscriptions/{sub}/resourceGroups/{RG}/providers/Microsoft.App/{path}?api-version={API}"
    return requests.request(method, url, json=body, headers={"Authorization": f"Bearer {token}"},
                            verify=emulator.ca_path, timeout=30)


def _app(emulator: AcaEmulator, name: str, sub: str = SUB) -> dict[str, Any]:
    env = f"/subscriptions/{sub}/resourceGroups/{RG}/providers/Microsoft.App/managedEnvironments/env"
    return {"location": "westeurope", "properties": {"environmentId": env, "template": {
        "containers": [{"name": name, "image": "nginx:1.27"}]}}}


def test_off_by_default_no_headers_and_no_limit(emu):
    emulator, _ = emu
    for _ in range(ARM_BUCKETS["writes"][0] + 5):
        reply = _call(emulator, "GET", "containerApps")
        assert reply.status_code == 200
    assert not [h for h in reply.headers if h.lower().startswith("x-ms-ratelimit")]


def test_every_answer_carries_the_remaining_requests_of_its_type(emu):
    emulator, _ = emu
    emulator.set_faults(throttling=1)
    read = _call(emulator, "GET", "containerApps")
    assert read.headers["x-ms-ratelimit-remaining-subscription-reads"] == "249"
    assert read.headers["x-ms-ratelimit-remaining-subscription-global-reads"] == str(250 * 15 - 1)
    assert "x-ms-ratelimit-remaining-subscription-writes" not in read.headers
    write = _call(emulator, "PUT", "containerApps/app-1", body=_app(emulator, "app-1"))
    assert write.status_code == 201
    assert write.headers["x-ms-ratelimit-remaining-subscription-writes"] == "199"
    assert write.headers["x-ms-ratelimit-remaining-subscription-global-writes"] == "2999"
    missing = _call(emulator, "GET", "containerApps/nope")  # an error answer spends a token and says so
    assert missing.status_code == 404
    assert missing.headers["x-ms-ratelimit-remaining-subscription-reads"] == "248"
    gone = _call(emulator, "DELETE", "containerApps/nope")
    assert gone.status_code == 204
    assert gone.headers["x-ms-ratelimit-remaining-subscription-deletes"] == "199"


def test_an_empty_write_bucket_answers_429_with_retry_after_and_refills_at_the_rate(emu):
    emulator, clock = emu
    emulator.set_faults(throttling=1)
    for i in range(200):
        assert _call(emulator, "PATCH", "containerApps/none", body={}).status_code == 404
    refused = _call(emulator, "PUT", "containerApps/app-x", body=_app(emulator, "app-x"))
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"  # 1 token at 10 per second: 0.1 s, rounded up to whole seconds
    assert refused.headers["x-ms-ratelimit-remaining-subscription-writes"] == "0"
    error = refused.json()["error"]
    assert error["code"] == "SubscriptionRequestsThrottled"
    assert error["message"].startswith(f"Number of 'write' requests for subscription '{SUB}' actor ")
    assert "Please try again after '1' seconds" in error["message"]
    assert emulator.app(SUB, RG, "app-x") is None  # a throttled write writes nothing
    assert _call(emulator, "GET", "containerApps").status_code == 200  # reads have their own bucket
    clock.now += 0.5  # 5 tokens back
    codes = [_call(emulator, "PATCH", "containerApps/none", body={}).status_code for _ in range(6)]
    assert codes == [404] * 5 + [429]


def test_buckets_are_per_caller_and_subscription_and_the_global_one_is_shared(emu, monkeypatch):
    from devtools import aca_emulator

    emulator, clock = emu
    monkeypatch.setitem(aca_emulator.ARM_BUCKETS, "writes", (5, 10.0))     # ARM's shape, 40x smaller: 80 requests
    emulator.set_faults(throttling=1)
    for _ in range(5):
        _call(emulator, "PATCH", "containerApps/none", body={})
    assert _call(emulator, "PATCH", "containerApps/none", body={}).status_code == 429
    assert _call(emulator, "PATCH", "containerApps/none", body={}, token="caller-b").status_code == 404
    assert _call(emulator, "PATCH", "containerApps/none", body={}, sub=OTHER_SUB).status_code == 404
    # 15 callers empty the global bucket of the subscription (15 x 5); the 16th caller is refused too
    for caller in range(2, 16):
        for _ in range(5):
            _call(emulator, "PATCH", "containerApps/none", body={}, token=f"caller-{caller}")
    fresh = _call(emulator, "PATCH", "containerApps/none", body={}, token="caller-new")
    assert fresh.status_code == 429
    assert fresh.headers["x-ms-ratelimit-remaining-subscription-global-writes"] == "0"
    assert fresh.headers["x-ms-ratelimit-remaining-subscription-writes"] == "5"


def test_time_scale_speeds_up_the_refill(emu):
    emulator, clock = emu
    emulator.set_faults(throttling=1, time_scale=10)
    for _ in range(200):
        _call(emulator, "PATCH", "containerApps/none", body={})
    assert _call(emulator, "PATCH", "containerApps/none", body={}).status_code == 429
    clock.now += 0.125  # 12.5 tokens at 100 per second
    codes = [_call(emulator, "PATCH", "containerApps/none", body={}).status_code for _ in range(13)]
    assert codes == [404] * 12 + [429]


def _status(emulator: AcaEmulator, reply: requests.Response) -> str:
    url = reply.headers["Azure-AsyncOperation"]
    answer = requests.get(url, headers={"Authorization": "Bearer caller-a"}, verify=emulator.ca_path, timeout=30)
    return answer.json()["status"]


def test_operation_durations_per_call_type_with_jitter_and_time_scale(emu):
    emulator, clock = emu
    emulator.set_faults(lro_durations_s={"create": 40, "update": 20}, time_scale=10)
    created = _call(emulator, "PUT", "containerApps/app-1", body=_app(emulator, "app-1"))
    clock.now += 3.9
    assert _status(emulator, created) == "InProgress"
    clock.now += 0.2  # 40 s of ARM time at scale 10: 4 s of the clock
    assert _status(emulator, created) == "Succeeded"
    updated = _call(emulator, "PATCH", "containerApps/app-1", body={"tags": {"a": "b"}})
    clock.now += 2.05
    assert _status(emulator, updated) == "Succeeded"

    emulator.set_faults(lro_durations_s={"create": 40}, lro_jitter=0.5, time_scale=1)
    replies = [_call(emulator, "PUT", f"containerApps/j-{i}", body=_app(emulator, f"j-{i}")) for i in range(20)]
    done_at = []
    for step in range(0, 61):
        still = [r for r in replies if r not in [d for d, _ in done_at]]
        for reply in still:
            if _status(emulator, reply) == "Succeeded":
                done_at.append((reply, step))
        clock.now += 1
    ends = [step for _, step in done_at]
    assert len(ends) == 20 and min(ends) >= 20 and max(ends) <= 61
    assert len(set(ends)) > 3  # jitter spreads them


def test_bad_timing_settings_are_refused(emu):
    emulator, _ = emu
    with pytest.raises(ValueError, match="seconds per call type"):
        emulator.set_faults(lro_durations_s={"build": 3})
    with pytest.raises(ValueError, match="positive"):
        emulator.set_faults(time_scale=0)
    with pytest.raises(ValueError, match="fraction"):
        emulator.set_faults(lro_jitter=2)
    reply = requests.post(f"{emulator.url}/_emulator/faults", data=json.dumps({"throttling": 1, "time_scale": 5}),
                          verify=emulator.ca_path, timeout=30)
    assert reply.status_code == 200 and reply.json()["time_scale"] == 5.0
