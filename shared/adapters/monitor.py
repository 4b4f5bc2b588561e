"""Azure Monitor metrics of Container Apps through the real SDK (`azure-monitor-querymetrics`).

`Metrics.requests_by_revision` reads the app's `Requests` metric (namespace `Microsoft.App/containerApps`,
aggregation Total, one-minute grain) split by the `revisionName` and `statusCodeCategory` dimensions, with
`MetricsClient.query_resources` (`POST /subscriptions/{sub}/metrics:getBatch`) on the regional endpoint
`https://<region>.metrics.monitor.azure.com`, or `DRIFTLESS_METRICS_ENDPOINT` (the local ACA emulator).

`Metrics.query_value` runs an Application Insights (Log Analytics) query on a resource with `azure-monitor-query`'s
`LogsQueryClient.query_resource` (`POST https://api.loganalytics.io/v1/{resource id}/query`, or the same
`DRIFTLESS_METRICS_ENDPOINT`).

One client per endpoint, built on first use and reused; tokens (audiences `https://metrics.monitor.azure.com`,
`https://api.loganalytics.io`) come from `DefaultAzureCredential` like every other Azure call.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from shared.config.credentials import credential
from shared.config.settings import Settings

NAMESPACE = "Microsoft.App/containerApps"
METRIC = "Requests"
SPLIT = "revisionName eq '*' and statusCodeCategory eq '*'"
MAX_SERIES = 1000
"""Time series asked for (`top`): Monitor returns only 10 split series unless told more; one per revision and
status code category."""
_CLIENT_OPTIONS: dict[str, Any] = {"retry_total": 2, "retry_backoff_factor": 0.25, "retry_backoff_max": 2,
                                   "connection_timeout": 5, "read_timeout": 30}
"""An analysis step fails within seconds when Monitor is down; its queue job is retried."""
_REASON_LIMIT = 300
LOGS_ENDPOINT = LOGS_AUDIENCE = "https://api.loganalytics.io"


class MetricsError(RuntimeError):
    """Azure Monitor could not answer (refused, unreachable, or an answer without the metric). The message names
    the app and Monitor's error code and message, never a token."""


@dataclass(frozen=True)
class RevisionTraffic:
    """Requests one revision served in a window."""

    revision: str
    requests: float
    """All requests in the window."""
    errors_5xx: float
    """Requests with statusCodeCategory 5xx."""


class Metrics:
    """Azure Monitor metrics reads; one SDK client per metrics endpoint, built on first use and reused."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}
        self._logs_client: Any = None

    def endpoint(self, location: str) -> str:
        """`DRIFTLESS_METRICS_ENDPOINT`, else the regional endpoint of `location` ("West Europe" -> westeurope)."""
        if self._settings.metrics_endpoint:
            return self._settings.metrics_endpoint.rstrip("/")
        region = location.replace(" ", "").lower()
        if not region:
            raise MetricsError("the app has no location, so its Azure Monitor metrics endpoint is unknown")
        return f"https://{region}.metrics.monitor.azure.com"

    def _client(self, location: str) -> Any:
        endpoint = self.endpoint(location)
        with self._lock:
            client = self._clients.get(endpoint)
            if client is None:
                from azure.monitor.querymetrics import MetricsClient

                client = MetricsClient(endpoint, credential(self._settings), **_CLIENT_OPTIONS)
                self._clients[endpoint] = client
            return client

    def requests_by_revision(self, app_id: str, location: str, start: datetime, end: datetime
                             ) -> dict[str, RevisionTraffic]:
        """Requests per revision of the container app `app_id` (ARM id) in [start, end), from Azure Monitor; a
        revision with no requests is absent. Naive datetimes are UTC. Minutes Monitor has no value for yet count
        as none. Raises MetricsError (message without secrets) when Monitor cannot answer."""
        from azure.core.exceptions import AzureError, HttpResponseError

        start, end = _window(start, end)
        try:
            results = self._client(location).query_resources(
                resource_ids=[app_id], metric_namespace=NAMESPACE, metric_names=[METRIC], timespan=(start, end),
                granularity=timedelta(minutes=1), aggregations=["Total"], filter=SPLIT, max_results=MAX_SERIES)
        except HttpResponseError as exc:
            raise MetricsError(f"Azure Monitor refused the {METRIC} query of {app_id}: {_reason(exc)}") from None
        except AzureError as exc:
            raise MetricsError(f"Azure Monitor could not be reached for {app_id}: "
                               f"{type(exc).__name__}: {_first_line(exc)}") from None
        if len(results) != 1:
            raise MetricsError(f"Azure Monitor answered {len(results)} results for one resource ({app_id})")
        totals: dict[str, list[float]] = {}
        names: dict[str, str] = {}
        for metric in results[0].metrics:
            if metric.name != METRIC:
                continue
            for series in metric.timeseries:
                dims = {str(k).lower(): v for k, v in (series.metadata_values or {}).items()}
                revision = dims.get("revisionname")
                if not revision:
                    raise MetricsError(f"Azure Monitor's {METRIC} of {app_id} is not split by revisionName")
                count = sum(point.total or 0.0 for point in series.data or [])
                entry = totals.setdefault(revision.lower(), [0.0, 0.0])
                names.setdefault(revision.lower(), revision)
                entry[0] += count
                if str(dims.get("statuscodecategory", "")).lower() == "5xx":
                    entry[1] += count
        return {names[key]: RevisionTraffic(names[key], requests, errors)
                for key, (requests, errors) in totals.items() if requests > 0}


    def _logs(self) -> Any:
        with self._lock:
            if self._logs_client is None:
                from azure.monitor.query import LogsQueryClient

                # The audience stays Log Analytics' even when the endpoint is the local emulator (the SDK would
                # otherwise ask for a token for the endpoint itself).
                self._logs_client = LogsQueryClient(
                    credential(self._settings), endpoint=(self._settings.metrics_endpoint or LOGS_ENDPOINT).rstrip("/"),
                    audience=LOGS_AUDIENCE, **_CLIENT_OPTIONS)
            return self._logs_client

    def query_value(self, app_insights_id: str, query: str, start: datetime, end: datetime) -> float | None:
        """The value an Application Insights (Log Analytics) `query` on the resource `app_insights_id` (ARM id)
        returns over [start, end): the last column of its first row; None when it returns no row or a null.
        Naive datetimes are UTC. Raises MetricsError when the service refuses the query (its error code and
        message), cannot be reached, answers partially, or the value is not a number."""
        from azure.core.exceptions import AzureError, HttpResponseError
        from azure.monitor.query import LogsQueryStatus

        start, end = _window(start, end)
        try:
            result = self._logs().query_resource(app_insights_id, query, timespan=(start, end))
        except HttpResponseError as exc:
            raise MetricsError(f"Application Insights refused the query on {app_insights_id}: "
                               f"{_reason(exc)}") from None
        except AzureError as exc:
            raise MetricsError(f"Application Insights could not be reached for {app_insights_id}: "
                               f"{type(exc).__name__}: {_first_line(exc)}") from None
        if result.status != LogsQueryStatus.SUCCESS:
            error = getattr(result, "partial_error", None)
            raise MetricsError(f"Application Insights answered the query on {app_insights_id} only partially: "
                               f"{getattr(error, 'code', '')}: {getattr(error, 'message', '')}"[:_REASON_LIMIT])
        rows = result.tables[0].rows if result.tables else []
        if not rows or not len(rows[0]) or rows[0][-1] is None:
            return None
        value = rows[0][-1]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise MetricsError(f"the query on {app_insights_id} returned {type(value).__name__} "
                               f"{str(value)[:50]!r}, not a number")
        return float(value)


def _window(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """[start, end) in UTC (naive datetimes are UTC); ValueError when it does not end after it starts."""
    start, end = (m.replace(tzinfo=timezone.utc) if m.tzinfo is None else m.astimezone(timezone.utc)
                  for m in (start, end))
    if end <= start:
        raise ValueError(f"the window must end after it starts: {start.isoformat()} .. {end.isoformat()}")
    return start, end


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:_REASON_LIMIT] if text else ""


def _reason(exc: Exception) -> str:
    """`<status> <code>: <message>` of a refused query (Monitor's error body), bounded."""
    status = getattr(exc, "status_code", None)
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None)
    message = getattr(error, "message", None)
    text = f"{code}: {message}" if code else _first_line(exc)
    return f"{status} {text}"[:_REASON_LIMIT] if status else text[:_REASON_LIMIT]
