"""shared/adapters/monitor.py through the real `azure-monitor-querymetrics` SDK against the ACA emulator's Azure Monitor
metrics API (devtools/monitor_stub.py), with the token from the local managed identity like in a Function App.

Where the stub's contract comes from:
- request and response shape: the SDK's generated `build_metrics_query_resources_request` / `MetricResultsResponse`
  (azure-monitor-querymetrics 1.0.0) and Microsoft Learn "Migrate from the metrics API to the getBatch API" (POST
  /subscriptions/{sub}/metrics:getBatch, body {"resourceids": [...]}, at most 50 ids, dimension names answered in
  lower case in `metadatavalues`);
- the Requests metric and its dimensions (revisionName, podName, statusCodeCategory, statusCode; PT1M): Microsoft Learn
  "Supported metrics for Microsoft.App/containerapps" (the dimension is podName, not replica);
- `top` defaults to 10 series when a filter splits: the REST spec's `top` description and
  github.com/Azure/azure-sdk-for-go/issues/22757;
- unknown metric: 400 BadRequest "Failed to find metric configuration for provider: ..., Valid metrics: ..."
  (github.com/Azure/azure-sdk-for-net/issues/29584; the getBatch wrapping {"error": {...}} is the spec's ErrorResponse);
- unsupported time grain: "Commonly allowed time grains: ..." (digiaiiris/zabbix-azure-monitoring PR 45);
- retention: "Query startTime ... is out of the Max metrics retention period: 93.00:00:00"
  (github.com/Azure/azure-sdk-for-python/issues/13547), the 30-day range: Azure Monitor service limits.
Unconfirmed (our wording, the real status/code assumed): the 401 bodies (codes as ARM's), the >50 ids and >30 days
messages, an unknown dimension in the filter, the cross-region batch refusal.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone

import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError
from azure.monitor.querymetrics import MetricsClient

from devtools.identity import StaticToken
from shared.adapters.monitor import Metrics, MetricsError, RevisionTraffic
from shared.config.settings import Settings
from tests.conftest import GROUP, SUBSCRIPTION, TOKEN

APP_ID = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}/providers/Microsoft.App/containerApps/web"
LOCATION = "westeurope"


def at(clock, minutes: float) -> datetime:
    """The test clock's now plus `minutes`, as a datetime."""
    return datetime.fromtimestamp(clock.now, timezone.utc) + timedelta(minutes=minutes)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def metrics(aca) -> Metrics:
    return Metrics(Settings.from_env({"DRIFTLESS_METRICS_ENDPOINT": aca.metrics_url}))


def jwt(audience: str) -> str:
    """An unsigned JWT-shaped token for `audience` (the stub reads `aud`, as Entra ID's resource check would)."""
    part = lambda value: base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")  # noqa: E731
    return f"{part({'alg': 'none'})}.{part({'aud': audience})}.sig"


def batch(aca, query: str, ids: list[str], token: str | None = TOKEN) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(f"{aca.metrics_url}/subscriptions/{SUBSCRIPTION}/metrics:getBatch?{query}",
                         json={"resourceids": ids}, headers=headers, verify=aca.ca_path, timeout=10)


QUERY = "metricnamespace=Microsoft.App/containerApps&metricnames=Requests&aggregation=total&api-version=2024-02-01"


def test_a_canary_split_per_revision_through_the_managed_identity(aca, clock, metrics, identity) -> None:
    aca.set_requests("web", "web--v1", per_minute=90)
    aca.set_requests("web", "web--v2", per_minute=10, errors_5xx=2, errors_4xx=1)
    aca.set_requests("web", "web--idle", per_minute=0)
    aca.set_requests("other", "other--v1", per_minute=500)  # another app's requests are not this app's
    clock.advance(600)
    asked = len(identity.requests)

    traffic = metrics.requests_by_revision(APP_ID, LOCATION, at(clock, -10), at(clock, 0))

    assert traffic == {"web--v1": RevisionTraffic("web--v1", 900.0, 0.0),
                       "web--v2": RevisionTraffic("web--v2", 100.0, 20.0)}
    assert identity.requests[asked:] == [("https://metrics.monitor.azure.com", None)]  # the token is for Monitor
    assert aca.calls()["POST metrics:getBatch"] == 1


def test_the_window_is_honoured_and_minutes_not_over_yet_have_no_value(aca, clock, metrics) -> None:
    start = clock.now
    aca.set_requests("web", "web--v2", per_minute=100, errors_5xx=lambda minute: 20 if minute >= start + 300 else 0)
    clock.advance(480)  # 8 minutes over

    before = metrics.requests_by_revision(APP_ID, LOCATION, at(clock, -8), at(clock, -3))
    after = metrics.requests_by_revision(APP_ID, LOCATION, at(clock, -3), at(clock, 2))

    assert before == {"web--v2": RevisionTraffic("web--v2", 500.0, 0.0)}      # minutes 0-4: healthy
    assert after == {"web--v2": RevisionTraffic("web--v2", 300.0, 60.0)}      # minutes 5-7; 8 and 9 are not over
    clock.advance(120)
    assert metrics.requests_by_revision(APP_ID, LOCATION, at(clock, -5), at(clock, 0)) == {
        "web--v2": RevisionTraffic("web--v2", 500.0, 100.0)}  # a canary failing at 20%


def test_more_revisions_than_monitors_default_top_are_all_counted(aca, clock, metrics) -> None:
    names = [f"web--r{i}" for i in range(8)]  # 8 revisions x 2 status categories: 16 series > Monitor's default 10
    for name in names:
        aca.set_requests("web", name, per_minute=10, errors_5xx=1)
    clock.advance(60)

    traffic = metrics.requests_by_revision(APP_ID, LOCATION, at(clock, -1), at(clock, 0))

    assert traffic == {name: RevisionTraffic(name, 10.0, 1.0) for name in names}
    answer = batch(aca, QUERY + f"&filter=revisionName eq '*' and statusCodeCategory eq '*'"
                   f"&starttime={iso(at(clock, -1))}&endtime={iso(at(clock, 0))}", [APP_ID])
    assert len(answer.json()["values"][0]["value"][0]["timeseries"]) == 10  # what a query without `top` gets


def test_a_refused_token_is_a_metrics_error_without_the_token(aca, clock, identity, metrics) -> None:
    identity.token = "not-the-emulators-token"
    try:
        with pytest.raises(MetricsError) as caught:
            metrics.requests_by_revision(APP_ID, LOCATION, at(clock, -5), at(clock, 0))
    finally:
        identity.token = TOKEN
    assert "401" in str(caught.value) and "InvalidAuthenticationToken" in str(caught.value)
    assert "not-the-emulators-token" not in str(caught.value)


def test_no_token_or_another_audience_is_401(aca, clock) -> None:
    missing = batch(aca, QUERY, [APP_ID], token=None)
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "AuthenticationFailed"
    assert "WWW-Authenticate" in missing.headers

    client = MetricsClient(aca.metrics_url, StaticToken(jwt("https://management.azure.com/")), retry_total=0)
    with pytest.raises(ClientAuthenticationError, match="InvalidAuthenticationTokenAudience"):
        client.query_resources(resource_ids=[APP_ID], metric_namespace="Microsoft.App/containerApps",
                               metric_names=["Requests"], timespan=timedelta(minutes=5))
    right = MetricsClient(aca.metrics_url, StaticToken(jwt("https://metrics.monitor.azure.com")), retry_total=0)
    assert right.query_resources(resource_ids=[APP_ID], metric_namespace="Microsoft.App/containerApps",
                                 metric_names=["Requests"], timespan=(at(clock, -5), at(clock, 0)))


@pytest.mark.parametrize(("query", "says"), [
    (QUERY.replace("Requests", "Requestz"), "Failed to find metric configuration for provider: Microsoft.App, "
                                            "resource Type: containerApps, metric: Requestz, Valid metrics: "),
    (QUERY.replace("Microsoft.App/containerApps", "Microsoft.Web/sites"), "is not a supported platform metric "
                                                                          "namespace"),
    (QUERY + "&interval=PT2M", "Commonly allowed time grains"),
    (QUERY + "&aggregation=median", "Invalid aggregation"),
    (QUERY + "&filter=version eq '*'", "is not a valid dimension"),
    (QUERY + "&filter=revisionName = 'x'", "Invalid filter"),
    (QUERY.replace("2024-02-01", "2019-01-01"), "api-version"),
], ids=["unknown metric", "other namespace", "unsupported time grain", "unknown aggregation", "unknown dimension",
        "malformed filter", "unsupported api-version"])
def test_monitor_refuses_what_it_cannot_answer(aca, clock, query: str, says: str) -> None:
    answer = batch(aca, query, [APP_ID])

    assert answer.status_code == 400, answer.text
    assert list(answer.json()) == ["error"] and answer.json()["error"]["code"] == "BadRequest"
    assert says in answer.json()["error"]["message"], answer.json()


def test_time_ranges_and_batch_size_are_limited(aca, clock) -> None:
    def span(start: datetime, end: datetime) -> str:
        return f"{QUERY}&starttime={iso(start)}&endtime={iso(end)}"

    too_wide = batch(aca, span(at(clock, -31 * 24 * 60), at(clock, 0)), [APP_ID])
    too_old = batch(aca, span(at(clock, -94 * 24 * 60), at(clock, -93.5 * 24 * 60)), [APP_ID])
    reversed_ = batch(aca, span(at(clock, 0), at(clock, -5)), [APP_ID])
    too_many = batch(aca, QUERY, [f"{APP_ID}{i}" for i in range(51)])
    fifty = batch(aca, QUERY, [f"{APP_ID}{i}" for i in range(50)])

    assert "maximum query range of 30 days" in too_wide.json()["error"]["message"]
    assert "Max metrics retention period: 93.00:00:00" in too_old.json()["error"]["message"]
    assert "start time must be before the end time" in reversed_.json()["error"]["message"]
    assert "exceeds the maximum of 50" in too_many.json()["error"]["message"]
    assert [a.status_code for a in (too_wide, too_old, reversed_, too_many, fifty)] == [400, 400, 400, 400, 200]
    assert len(fifty.json()["values"]) == 50


def test_the_answer_has_the_batch_shape(aca, clock, env_app) -> None:
    aca.set_requests("web", "web--v1", per_minute=3)
    clock.advance(120)
    answer = batch(aca, QUERY + f"&interval=PT1M&starttime={iso(at(clock, -2))}"
                   f"&endtime={iso(at(clock, 0))}&filter=revisionName eq '*'", [APP_ID])

    value = answer.json()["values"][0]
    assert set(value) == {"starttime", "endtime", "interval", "namespace", "resourceregion", "resourceid", "value"}
    assert (value["interval"], value["namespace"], value["resourceregion"], value["resourceid"]) == (
        "PT1M", "microsoft.app/containerapps", "westeurope", APP_ID)
    metric = value["value"][0]
    assert (metric["name"], metric["unit"], metric["type"], metric["errorCode"]) == (
        {"value": "Requests", "localizedValue": "Requests"}, "Count", "Microsoft.Insights/metrics", "Success")
    series = metric["timeseries"]
    assert series == [{"metadatavalues": [{"name": {"value": "revisionname", "localizedValue": "revisionname"},
                                           "value": "web--v1"}],
                       "data": [{"timeStamp": iso(at(clock, -2)), "total": 3.0},
                                {"timeStamp": iso(at(clock, -1)), "total": 3.0}]}]


@pytest.fixture
def env_app(aca, clock) -> str:
    """The app `web` in the test environment (its location is the answer's resourceregion)."""
    from tests.conftest import ENVIRONMENT

    env = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}/providers/Microsoft.App/managedEnvironments/{ENVIRONMENT}"
    answer = requests.put(f"{aca.url}{APP_ID}?api-version=2025-01-01", verify=aca.ca_path, timeout=10,
                          headers={"Authorization": f"Bearer {TOKEN}"},
                          json={"location": "West Europe", "properties": {
                              "managedEnvironmentId": env,
                              "template": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}})
    assert answer.status_code == 201, answer.text
    return APP_ID


def test_an_unreachable_or_refusing_monitor_is_a_metrics_error(aca, clock) -> None:
    closed = Metrics(Settings.from_env({"DRIFTLESS_METRICS_ENDPOINT": "https://127.0.0.1:9"}))
    with pytest.raises(MetricsError, match="could not be reached"):
        closed.requests_by_revision(APP_ID, LOCATION, at(clock, -5), at(clock, 0))

    metrics = Metrics(Settings.from_env({"DRIFTLESS_METRICS_ENDPOINT": aca.metrics_url}))
    with pytest.raises(MetricsError, match="refused the Requests query .* 400 BadRequest"):  # not a container app
        metrics.requests_by_revision(APP_ID.replace("Microsoft.App/containerApps", "Microsoft.Web/sites"), LOCATION,
                                     at(clock, -5), at(clock, 0))
    with pytest.raises(ValueError):
        metrics.requests_by_revision(APP_ID, LOCATION, at(clock, 0), at(clock, 0))


def test_the_endpoint_is_the_apps_region_unless_set() -> None:
    regional = Metrics(Settings.from_env({}))
    assert regional.endpoint("West Europe") == "https://westeurope.metrics.monitor.azure.com"
    assert Metrics(Settings.from_env({"DRIFTLESS_METRICS_ENDPOINT": "https://x.test/"})).endpoint("eastus") == (
        "https://x.test")
    with pytest.raises(MetricsError):
        regional.endpoint("")


def test_one_client_per_endpoint_is_reused(aca, clock, metrics) -> None:
    metrics.requests_by_revision(APP_ID, LOCATION, at(clock, -5), at(clock, 0))
    first = metrics._client(LOCATION)  # noqa: SLF001 - the client the query used
    metrics.requests_by_revision(APP_ID, "northeurope", at(clock, -5), at(clock, 0))

    assert metrics._client("eastus") is first  # noqa: SLF001 - one endpoint (the emulator), one client


def test_requests_are_injectable_over_the_control_endpoint_and_checked(aca, clock, metrics) -> None:
    answer = requests.post(f"{aca.url}/_emulator/requests/web/web--v1", json={"per_minute": 50, "errors_5xx": 5},
                           verify=aca.ca_path, timeout=10)
    refused = requests.post(f"{aca.url}/_emulator/requests/web/web--v1", json={"per_minute": "lots"},
                            verify=aca.ca_path, timeout=10)
    clock.advance(120)

    assert (answer.status_code, refused.status_code) == (200, 400)
    assert metrics.requests_by_revision(APP_ID, LOCATION, at(clock, -2), at(clock, 0)) == {
        "web--v1": RevisionTraffic("web--v1", 100.0, 10.0)}
    with pytest.raises(ValueError):
        aca.set_requests("web", "web--v1", per_minute=-1)
    aca.clear_requests("web", "web--v1")
    assert metrics.requests_by_revision(APP_ID, LOCATION, at(clock, -2), at(clock, 0)) == {}


def test_a_full_interval_answers_one_point_per_series(aca, clock) -> None:
    aca.set_requests("web", "web--v1", per_minute=7, pods=2)
    clock.advance(300)

    answer = batch(aca, QUERY + f"&interval=FULL&aggregation=total,count,maximum&starttime={iso(at(clock, -5))}"
                   f"&endtime={iso(at(clock, 0))}&filter=podName eq '*'", [APP_ID])

    value = answer.json()["values"][0]
    assert value["interval"] == "PT5M"
    points = {s["metadatavalues"][0]["value"]: s["data"] for s in value["value"][0]["timeseries"]}
    assert points == {f"web--v1-{pod}": [{"timeStamp": iso(at(clock, -5)), "total": 17.5, "count": 5.0,
                                          "maximum": 3.5}] for pod in (0, 1)}


# ---------------------------------------------------------------- Application Insights queries (source: appInsights)

INSIGHTS_ID = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}/providers/Microsoft.Insights/components/web-ai"
LATENCY = "requests | where cloud_RoleName == 'web' | summarize percentile(duration, 95)"


def test_an_app_insights_query_value_through_the_managed_identity(aca, clock, metrics, identity) -> None:
    windows = []

    def p95(start: float, end: float) -> float:
        windows.append((start, end))
        return 812.5

    aca.set_query_result(INSIGHTS_ID, LATENCY, p95)
    aca.set_query_result(INSIGHTS_ID, "requests | count", None)
    asked = len(identity.requests)

    assert metrics.query_value(INSIGHTS_ID, LATENCY, at(clock, -5), at(clock, 0)) == 812.5
    assert windows == [(clock.now - 300, clock.now)]  # the window reaches the service as the query's timespan
    assert metrics.query_value(INSIGHTS_ID, "requests | count", at(clock, -5), at(clock, 0)) is None  # no row
    assert identity.requests[asked:] == [("https://api.loganalytics.io", None)]  # not the endpoint's own audience
    assert aca.calls()["POST logs query"] == 2


def test_a_query_the_service_cannot_answer_is_a_metrics_error(aca, clock, metrics, identity) -> None:
    with pytest.raises(MetricsError, match="refused the query .* 400 BadArgumentError"):
        metrics.query_value(INSIGHTS_ID, "requests | nonsense", at(clock, -5), at(clock, 0))

    identity.token = "not-the-emulators-token"
    try:
        with pytest.raises(MetricsError, match="401 InvalidTokenError") as caught:
            Metrics(metrics._settings).query_value(INSIGHTS_ID, LATENCY, at(clock, -5), at(clock, 0))  # noqa: SLF001
    finally:
        identity.token = TOKEN
    assert "not-the-emulators-token" not in str(caught.value)


def test_the_logs_api_refuses_like_the_service(aca, clock) -> None:
    url = f"{aca.metrics_url}/v1{INSIGHTS_ID}/query"
    aca.set_query_result(INSIGHTS_ID, LATENCY, 1.0)

    def post(body: dict, token: str | None = TOKEN) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.post(url, json=body, headers=headers, verify=aca.ca_path, timeout=10)

    span = f"{iso(at(clock, -5))}/{iso(at(clock, 0))}"
    no_token = post({"query": LATENCY, "timespan": span}, token=None)
    wrong_audience = post({"query": LATENCY, "timespan": span}, token=jwt("https://metrics.monitor.azure.com"))
    unknown = post({"query": "requests | nonsense", "timespan": span})
    ok = post({"query": LATENCY, "timespan": span}, token=jwt("https://api.loganalytics.io"))

    assert (no_token.status_code, no_token.json()["error"]["code"]) == (401, "AuthorizationRequiredError")
    assert (wrong_audience.status_code, wrong_audience.json()["error"]["code"]) == (401, "InvalidTokenError")
    assert unknown.status_code == 400
    assert unknown.json()["error"]["message"] == "The request had some invalid properties"
    assert unknown.json()["error"]["innererror"]["code"] == "SemanticError"
    assert ok.json() == {"tables": [{"name": "PrimaryResult", "columns": [{"name": "value", "type": "real"}],
                                     "rows": [[1.0]]}]}
