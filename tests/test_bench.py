"""The benchmark harness itself: `--quick` sizes, the fleet's layout, and the per-app write ledger that proves
"no double writes" (it must see a second write of one app, and must not count a throttled one)."""
from __future__ import annotations

from collections import Counter
from typing import Any

import requests

from bench.__main__ import QUICK, _arguments
from bench.fleet import SUBSCRIPTIONS, TARGETS, Ledger, _layout
from tests.conftest import ENVIRONMENT, GROUP, SUBSCRIPTION, TOKEN

API = "2025-01-01"


def test_quick_mode_uses_small_sizes_and_explicit_options_win():
    assert _arguments([]).fleet_apps == 10000 and _arguments([]).fleet_workers == [1, 4]
    quick = _arguments(["--quick"])
    assert {name: getattr(quick, name) for name in QUICK} == QUICK
    assert _arguments(["--quick", "--fleet-apps", "2000"]).fleet_apps == 2000


def test_fleet_layout_spreads_every_app_once_over_50_targets_in_5_subscriptions():
    layout = _layout(10_001, TARGETS)
    names = [app for target in layout for app in target["apps"]]
    assert len(layout) == 50 and len(names) == len(set(names)) == 10_001
    assert Counter(t["subscription"] for t in layout) == {sub: 10 for sub in SUBSCRIPTIONS}
    assert sorted({len(t["apps"]) for t in layout}) == [200, 201]
    assert len({(t["subscription"], t["group"]) for t in layout}) == 50


def _put(aca: Any, name: str) -> requests.Response:
    env = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}/providers/Microsoft.App/managedEnvironments/"
           f"{ENVIRONMENT}")
    body = {"location": "westeurope", "properties": {"environmentId": env, "template": {
        "containers": [{"name": name, "image": "nginx:1.27"}]}}}
    url = (f"{aca.url}/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}/providers/Microsoft.App/containerApps/"
           f"{name}?api-version={API}")
    return requests.put(url, json=body, headers={"Authorization": f"Bearer {TOKEN}"}, verify=aca.ca_path, timeout=30)


def test_ledger_counts_each_accepted_write_per_app_and_not_a_throttled_one(aca):
    ledger = Ledger(aca)
    try:
        assert _put(aca, "web").status_code == 201
        assert _put(aca, "web").status_code == 200
        aca.set_faults(throttle_next=1)
        assert _put(aca, "api").status_code == 429
        assert ledger.app_writes == {("PUT", "web"): 2}
        assert ledger.throttled == 1 and ledger.writes[SUBSCRIPTION] == 2
    finally:
        ledger.detach()
    assert _put(aca, "web").status_code == 200 and ledger.app_writes == {("PUT", "web"): 2}
