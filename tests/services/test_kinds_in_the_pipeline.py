"""Jobs and Dapr components through the real Function App (devtools/local_runner.py) on Azurite: the worker's
engines get the status store from the wiring, so a Dapr component is created and recorded in the inventory, and
GET /api/status shows every kind's outcome by its key."""
from __future__ import annotations

import yaml

from shared.adapters.status_store import Store
from tests.conftest import ENVIRONMENT, GROUP, SUBSCRIPTION, app_yaml
from tests.core.test_dapr_component_manifests import STATESTORE
from tests.core.test_job_manifests import SCHEDULED
from tests.services.test_pipeline import api, push


def test_a_push_creates_apps_jobs_and_dapr_components_and_status_shows_them(stack, repo, aca):
    repo.write("apps/web.yaml", app_yaml("web", extra="  dapr: {enabled: true, appId: container-app-1}\n"))
    repo.write("apps/job.yaml", yaml.safe_dump(SCHEDULED, sort_keys=False))
    repo.write("apps/dapr.yaml", yaml.safe_dump(STATESTORE, sort_keys=False))
    repo.commit()
    assert push(stack, repo, paths=("apps/web.yaml", "apps/job.yaml", "apps/dapr.yaml")).status_code == 202
    stack.drain()
    status = api(stack, "GET", "status").json()
    assert {(a["app"], a["action"]) for a in status["apps"]} == {
        ("web", "created"), ("Job/nightly-report", "created"), ("DaprComponent/reddog", "created")}
    reddog = next(a for a in status["apps"] if a["app"] == "DaprComponent/reddog")
    assert "warning: scope 'container-app-2' names no App" in reddog["reason"]
    assert status["targets"][0]["ok"] is True and status["targets"][0]["degraded"] is False
    assert aca.job(SUBSCRIPTION, GROUP, "nightly-report") and aca.dapr_component(SUBSCRIPTION, GROUP, ENVIRONMENT,
                                                                                  "reddog")
    assert list(Store().inventory("default")) == ["DaprComponent/reddog"]
