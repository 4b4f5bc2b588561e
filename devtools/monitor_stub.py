"""Azure Monitor's metrics data plane for Container Apps, as `azure-monitor-querymetrics` calls it, and the
Application Insights (Log Analytics) query API as `azure-monitor-query` calls it (dev only; the second is at the end).

`MetricsClient(endpoint).query_resources(...)` sends
``POST {endpoint}/subscriptions/{sub}/metrics:getBatch?starttime=&endtime=&interval=&metricnamespace=
&metricnames=&aggregation=&top=&orderby=&filter=&rollupby=&api-version=2024-02-01`` with the body
``{"resourceids": [...]}`` and reads ``{"values": [{starttime, endtime, interval, namespace, resourceregion,
resourceid, value: [metric]}]}`` (azure-rest-api-specs, monitor data-plane ``metricBatch.json``; Microsoft Learn
"Migrate from the metrics API to the getBatch API"). The ACA emulator serves it on its own HTTPS port
(``DRIFTLESS_METRICS_ENDPOINT`` points there instead of ``https://<region>.metrics.monitor.azure.com``).

Only ``Microsoft.App/containerApps`` is known. Its ``Requests`` metric (unit Count, dimensions ``revisionName``,
``podName``, ``statusCodeCategory``, ``statusCode``, time grain PT1M; Microsoft Learn "Supported metrics for
Microsoft.App/containerapps") comes from what tests inject with `RequestMetrics.set_requests`: per app and
revision, requests per minute and how many of them are 4xx / 5xx, each a number or a function of the minute
(seconds since the epoch, on the emulator's clock). A minute has data once it is over on that clock; later
minutes are data points without values, as Monitor answers before ingestion. The other documented metric names
answer no time series.

Refusals as the real service answers them (sources and which messages are unconfirmed: tests/adapters/
test_monitor.py): no bearer token or a token for another audience (401),
an unknown metric or namespace, an unsupported time grain or aggregation, a time range outside retention or
reversed, a malformed filter, more than 50 resource ids (400).
"""
from __future__ import annotations

import base64
import binascii
import json
import math
import re
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping

NAMESPACE = "microsoft.app/containerapps"
AUDIENCE = "https://metrics.monitor.azure.com"
API_VERSIONS = ("2023-03-01-preview", "2023-05-01-preview", "2023-10-01", "2024-02-01")
MAX_RESOURCES = 50
RETENTION = timedelta(days=93)
MAX_RANGE = timedelta(days=30)
"""One query covers at most 30 days (Azure Monitor service limits, metrics queries); older data than 93 days is
gone (metrics retention)."""
DEFAULT_TOP = 10
"""Time series per resource when a filter splits by a dimension and `top` is not given (REST spec: `top`)."""
TIME_GRAINS = {"PT1M": 60, "PT5M": 300, "PT15M": 900, "PT30M": 1800, "PT1H": 3600, "PT6H": 21600,
               "PT12H": 43200, "P1D": 86400}
AGGREGATIONS = ("average", "count", "maximum", "minimum", "total")
DIMENSIONS = {"revisionname": "revisionName", "podname": "podName", "statuscodecategory": "statusCodeCategory",
              "statuscode": "statusCode"}
METRICS = {
    "Requests": "Requests processed",
    "Replicas": "Number of replicas count of container app",
    "RestartCount": "Restart count of container app replicas",
    "RxBytes": "Network received bytes",
    "TxBytes": "Network transmitted bytes",
    "UsageNanoCores": "CPU consumed by the container app, in nano cores. 1,000,000,000 nano cores = 1 core",
    "WorkingSetBytes": "Container App working set memory used in bytes.",
    "CpuPercentage": "Percentage of CPU limit used, in percentage points.",
    "MemoryPercentage": "Percentage of memory limit used, in percentage points.",
    "CoresQuotaUsed": "Number of reserved cores for container app revisions",
}
"""The documented metric names of Microsoft.App/containerApps this stub knows (only Requests carries data)."""
STATUS_CODES = {"2xx": "200", "4xx": "404", "5xx": "500"}
"""The statusCode each category's injected requests report."""

Rate = float | Callable[[float], float]


class MonitorError(Exception):
    """An error answer of the metrics API: ``{"error": {"code", "message"}}``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None,
                 inner: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers, self.inner = status, code, message, headers or {}, inner

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


def _bad(message: str) -> MonitorError:
    return MonitorError(400, "BadRequest", message)


@dataclass(frozen=True)
class _Traffic:
    per_minute: Rate
    errors_5xx: Rate
    errors_4xx: Rate
    pods: int


def _at(rate: Rate, minute: float) -> float:
    value = rate(minute) if callable(rate) else rate
    return max(0.0, float(value))


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(name: str, value: str) -> float:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _bad(f"Detected invalid time interval input: {value}, supported Iso 8601 time interval format: "
                   "(Datetime/Datetime, Datetime/Duration, Duration/Datetime, Duration)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def _audience(token: str) -> str | None:
    """The ``aud`` claim of a JWT-shaped token; None for an opaque token (the local identity's fixed one)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    return str(payload.get("aud")) if isinstance(payload, dict) else None


class RequestMetrics:
    """Injected request rates per (app name, revision name) and the getBatch query over them."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._traffic: dict[tuple[str, str], tuple[str, _Traffic]] = {}

    def reset(self) -> None:
        with self._lock:
            self._traffic.clear()

    def set_requests(self, app: str, revision: str, *, per_minute: Rate = 0.0, errors_5xx: Rate = 0.0,
                     errors_4xx: Rate = 0.0, pods: int = 1) -> None:
        """From now on the app's `revision` serves `per_minute` requests a minute, `errors_5xx` and `errors_4xx` of
        them failing (the rest 2xx), spread over `pods` pods. Each rate is a number or a function of the minute's
        start (seconds since the epoch on the emulator's clock); a revision with no request in a window has no time
        series in it. ValueError for a negative number, a rate that is neither a number nor a function, or pods < 1."""
        for name, rate in (("per_minute", per_minute), ("errors_5xx", errors_5xx), ("errors_4xx", errors_4xx)):
            if not callable(rate) and (isinstance(rate, bool) or not isinstance(rate, (int, float))
                                       or not math.isfinite(rate) or rate < 0):
                raise ValueError(f"{name} must be a non-negative number or a function of the minute, not {rate!r}")
        if isinstance(pods, bool) or not isinstance(pods, int) or pods < 1:
            raise ValueError("pods must be a whole number of at least 1")
        with self._lock:
            self._traffic[(app.lower(), revision.lower())] = (revision, _Traffic(per_minute, errors_5xx, errors_4xx,
                                                                                 pods))

    def clear_requests(self, app: str, revision: str | None = None) -> None:
        """Forget the app's injected requests (of one revision, or all)."""
        with self._lock:
            for key in [k for k in self._traffic
                        if k[0] == app.lower() and (revision is None or k[1] == revision.lower())]:
                del self._traffic[key]

    # ------------------------------------------------------------ the API

    def authenticate(self, authorization: str | None, token: str | None) -> None:
        """401 without a bearer token, with a JWT for another audience, or (an opaque token) other than `token`."""
        scheme, _, value = (authorization or "").partition(" ")
        value = value.strip()
        if scheme.lower() != "bearer" or not value:
            raise MonitorError(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is "
                               "missing.", {"WWW-Authenticate": f'Bearer authorization="https://login.microsoftonline'
                                            f'.com/", resource_id="{AUDIENCE}", realm="{AUDIENCE}"'})
        audience = _audience(value)
        if audience is not None and audience.rstrip("/") != AUDIENCE:
            raise MonitorError(401, "InvalidAuthenticationTokenAudience",
                               f"The access token has been obtained for wrong audience or resource '{audience}'. It "
                               f"should exactly match with one of the allowed audiences '{AUDIENCE}','{AUDIENCE}/'.")
        if audience is None and token is not None and value != token:
            raise MonitorError(401, "InvalidAuthenticationToken", "The access token is invalid.")

    def get_batch(self, subscription: str, query: Mapping[str, str], body: bytes,
                  region_of: Callable[[str], str | None]) -> dict[str, Any]:
        """The getBatch answer for query parameters `query` (keys lower-cased) and the JSON `body`;
        `region_of(resource id)` is the resource's location (None: not a known resource). Raises MonitorError."""
        if query.get("api-version") not in API_VERSIONS:
            raise _bad(f"The api-version '{query.get('api-version', '')}' is invalid. The supported versions are "
                       f"'{', '.join(API_VERSIONS)}'.")
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            raise _bad("The request body is not valid JSON.") from None
        ids = request.get("resourceids") if isinstance(request, dict) else None
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
            raise _bad("The request body must contain a non-empty 'resourceids' list.")
        if len(set(i.lower() for i in ids)) > MAX_RESOURCES:
            raise _bad(f"The number of resource ids ({len(ids)}) exceeds the maximum of {MAX_RESOURCES} per "
                       "request.")
        namespace = query.get("metricnamespace", "")
        if not namespace:
            raise _bad("The metricnamespace query parameter is required.")
        if namespace.lower() != NAMESPACE:
            raise _bad(f"{namespace} is not a supported platform metric namespace, supported ones are "
                       "Microsoft.App/containerApps")
        for resource_id in ids:
            parts = resource_id.strip("/").split("/")
            if len(parts) < 8 or parts[0].lower() != "subscriptions" or parts[1].lower() != subscription.lower():
                raise _bad(f"Resource id '{resource_id}' is not in subscription '{subscription}'.")
            if f"{parts[5]}/{parts[6]}".lower() != NAMESPACE:
                raise _bad(f"Resource id '{resource_id}' is not of the type of namespace '{namespace}'; all resources "
                           "of a batch must be of the same type.")
        regions = {(region_of(i) or "").lower() for i in ids} - {""}
        if len(regions) > 1:
            raise _bad(f"All resources of a batch must be in the same region; found {', '.join(sorted(regions))}.")
        names = [n.replace("%2", ",") for n in query.get("metricnames", "").split(",") if n]
        if not names:
            raise _bad("The metricnames query parameter is required.")
        known = {n.lower(): n for n in METRICS}
        for name in names:
            if name.lower() not in known:
                raise _bad(f"Failed to find metric configuration for provider: Microsoft.App, resource Type: "
                           f"containerApps, metric: {name}, Valid metrics: {','.join(METRICS)}")
        now = self._clock()
        start, end = self._timespan(query, now)
        grain_name = (query.get("interval") or "PT1M").upper()
        if grain_name != "FULL" and grain_name not in TIME_GRAINS:
            raise _bad(f"Commonly allowed time grains: {','.join(TIME_GRAINS)},FULL between metrics: "
                       f"{','.join(names)}, can not support requested time grain: {query.get('interval')} please "
                       "adjust your interval parameter to use one of the common grains")
        aggregations = [a.strip().lower() for a in (query.get("aggregation") or "total").split(",") if a.strip()]
        for aggregation in aggregations:
            if aggregation not in AGGREGATIONS:
                raise _bad(f"Invalid aggregation '{aggregation}'. Valid aggregations: "
                           f"{', '.join(a.capitalize() for a in AGGREGATIONS)}")
        split, only = _parse_filter(query.get("filter"))
        top = query.get("top")
        try:
            limit = int(top) if top is not None else DEFAULT_TOP
        except ValueError:
            raise _bad(f"Invalid top value '{top}'.") from None
        values = []
        for resource_id in ids:
            metrics = []
            for name in names:
                series = self._series(resource_id, start, end, now, grain_name, split, only,
                                      aggregations) if known[name.lower()] == "Requests" else []
                if split:
                    series = _top(series, query.get("orderby"), limit)
                metrics.append({
                    "id": f"{resource_id}/providers/Microsoft.Insights/metrics/{known[name.lower()]}",
                    "type": "Microsoft.Insights/metrics",
                    "name": {"value": known[name.lower()], "localizedValue": known[name.lower()]},
                    "displayDescription": METRICS[known[name.lower()]],
                    "unit": "Count" if known[name.lower()] in ("Requests", "Replicas", "RestartCount", "CoresQuotaUsed")
                    else "Bytes" if "Bytes" in known[name.lower()] else "Percent",
                    "timeseries": [item for item, _ in series],
                    "errorCode": "Success",
                })
            interval = _duration(end - start) if grain_name == "FULL" else grain_name
            values.append({"starttime": _iso(start), "endtime": _iso(end), "interval": interval,
                           "namespace": NAMESPACE, "resourceregion": region_of(resource_id) or "",
                           "resourceid": resource_id, "value": metrics})
        return {"values": values}

    @staticmethod
    def _timespan(query: Mapping[str, str], now: float) -> tuple[float, float]:
        """[starttime, endtime): both given, only start (end = now) or neither (the last hour)."""
        raw_start, raw_end = query.get("starttime"), query.get("endtime")
        if raw_end and not raw_start:
            raise _bad("starttime is required when endtime is specified.")
        end = _parse_time("endtime", raw_end) if raw_end else now
        start = _parse_time("starttime", raw_start) if raw_start else end - 3600
        if start >= end:
            raise _bad(f"Detected invalid time interval input: {raw_start}/{raw_end}: the start time must be before "
                       "the end time.")
        if end - start > MAX_RANGE.total_seconds():
            raise _bad(f"The time range {_iso(start)}/{_iso(end)} exceeds the maximum query range of "
                       f"{MAX_RANGE.days} days.")
        if start < now - RETENTION.total_seconds():
            raise _bad(f"Query startTime: {_iso(start)} is out of the Max metrics retention period: 93.00:00:00")
        return start, end

    def _series(self, resource_id: str, start: float, end: float, now: float, grain_name: str,
                split: list[str], only: dict[str, set[str]], aggregations: list[str]
                ) -> list[tuple[dict[str, Any], float]]:
        """The app's Requests time series split by `split` (filter `only`), with the sum of each for ordering."""
        app = resource_id.rstrip("/").rsplit("/", 1)[1].lower()
        grain = (end - start) if grain_name == "FULL" else TIME_GRAINS[grain_name]
        minutes = [float(m) for m in range(int(math.ceil(start / 60) * 60), int(math.ceil(end)), 60)]
        with self._lock:
            traffic = [(name, t) for (a, _), (name, t) in self._traffic.items() if a == app]
        # (dimension values) -> {bucket start: {minute: requests}}
        samples: dict[tuple[str, ...], dict[float, dict[float, float]]] = {}
        buckets = [start] if grain_name == "FULL" else _buckets(start, end, grain)
        for minute in minutes:
            if minute + 60 > now:
                continue  # not over yet on the emulator's clock: Monitor has no value for it
            bucket = max(b for b in buckets if b <= minute)
            for revision, rates in traffic:
                total = _at(rates.per_minute, minute)
                errors5 = min(total, _at(rates.errors_5xx, minute))
                errors4 = min(total - errors5, _at(rates.errors_4xx, minute))
                for category, count in (("2xx", total - errors5 - errors4), ("4xx", errors4), ("5xx", errors5)):
                    for pod in range(rates.pods):
                        dims = {"revisionname": revision, "podname": f"{revision}-{pod}",
                                "statuscodecategory": category, "statuscode": STATUS_CODES[category]}
                        if any(dims[d].lower() not in values for d, values in only.items()):
                            continue
                        per_minute = samples.setdefault(tuple(dims[d] for d in split), {}).setdefault(bucket, {})
                        per_minute[minute] = per_minute.get(minute, 0.0) + count / rates.pods
        series = []
        for key, per_bucket in samples.items():
            data = []
            total_sum = 0.0
            for bucket in buckets:
                point: dict[str, Any] = {"timeStamp": _iso(bucket)}
                values = list(per_bucket.get(bucket, {}).values())
                if values:
                    total_sum += sum(values)
                    point.update(_aggregate(values, aggregations))
                data.append(point)
            if total_sum <= 0 and split:
                continue
            metadata = [{"name": {"value": d, "localizedValue": d}, "value": v} for d, v in zip(split, key)]
            series.append(({"metadatavalues": metadata, "data": data}, total_sum))
        if not split and not series:
            data = [{"timeStamp": _iso(b)} for b in buckets]
            series.append(({"metadatavalues": [], "data": data}, 0.0))
        return series


def _duration(seconds: float) -> str:
    """ISO 8601 duration of whole seconds (the interval a FULL query answers; the SDK parses it as a duration)."""
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    time = "".join(f"{n}{u}" for n, u in ((hours, "H"), (minutes, "M"), (secs, "S")) if n)
    return f"P{f'{days}D' if days else ''}{'T' + time if time else ''}" if whole else "PT0S"


def _aggregate(values: list[float], aggregations: list[str]) -> dict[str, float]:
    """The requested aggregations of one bucket's per-minute values (count: the minutes with a value)."""
    computed = {"total": sum(values), "count": float(len(values)), "minimum": min(values),
                "maximum": max(values), "average": sum(values) / len(values)}
    return {name: computed[name] for name in aggregations}


def _buckets(start: float, end: float, grain: float) -> list[float]:
    """Bucket starts: `start` rounded down to the grain, then every grain while before `end`."""
    first = math.floor(start / grain) * grain
    return [first + i * grain for i in range(int(math.ceil((end - first) / grain)))]


_CLAUSE = re.compile(r"^\s*(?P<name>[A-Za-z][\w ]*?)\s+eq\s+'(?P<value>[^']*)'\s*$", re.I)


def _parse_filter(text: str | None) -> tuple[list[str], dict[str, set[str]]]:
    """``A eq 'a1' and B eq 'b1' or B eq 'b2' and C eq '*'``: the dimensions to split by (lower-cased, in order)
    and the values each is restricted to ('*': any). Clauses of one dimension are joined by `or`, different
    dimensions by `and`."""
    if not text:
        return [], {}
    split: list[str] = []
    only: dict[str, set[str]] = {}
    for clause in re.split(r"\s+(?:and|or)\s+", text.strip(), flags=re.I):
        match = _CLAUSE.match(clause)
        if match is None:
            raise _bad(f"Invalid filter: '{text}'. Expected clauses like \"dimension eq 'value'\" joined by and/or.")
        name = match["name"].strip().lower()
        if name not in DIMENSIONS:
            raise _bad(f"Dimension '{match['name'].strip()}' is not a valid dimension of metric Requests. Valid "
                       f"dimensions: {', '.join(DIMENSIONS.values())}")
        if name not in split:
            split.append(name)
        if match["value"] != "*":
            only.setdefault(name, set()).add(match["value"].lower())
    return split, only


def _top(series: list[tuple[dict[str, Any], float]], order_by: str | None, limit: int
         ) -> list[tuple[dict[str, Any], float]]:
    """At most `limit` series, largest total first unless ``orderby`` says ``asc``."""
    ascending = bool(order_by) and order_by.strip().lower().endswith("asc")
    return sorted(series, key=lambda s: s[1], reverse=not ascending)[:limit]


# ----------------------------------------------------------------------------------------------------------------
# Application Insights / Log Analytics query API, as `azure-monitor-query`'s LogsQueryClient.query_resource calls it:
# POST {endpoint}/v1/{resource id}/query with {"query", "timespan": "start/end", "workspaces"} answering
# {"tables": [{"name": "PrimaryResult", "columns": [{"name", "type"}], "rows": [[...]]}]}. The stub cannot run KQL:
# tests inject each query's answer per resource; any other query is refused the way the service refuses a query it
# cannot resolve (400 BadArgumentError / SemanticError, github.com/Azure/azure-cli-extensions/issues/3002).

LOGS_AUDIENCE = "https://api.loganalytics.io"
_LOGS_PATH = re.compile(r"/v1/+(?P<resource>subscriptions/.+)/query", re.I)

Answer = float | None | Callable[[float, float], float | None]


def logs_resource(path: str) -> str | None:
    """The resource id of a ``/v1/{resource id}/query`` path (with its leading '/'), or None for another path."""
    match = _LOGS_PATH.fullmatch(path)
    return f"/{match['resource']}" if match else None


def _logs_error(status: int, code: str, message: str, inner: dict[str, Any] | None = None) -> MonitorError:
    return MonitorError(status, code, message, inner=inner)


def logs_body(error: MonitorError) -> dict[str, Any]:
    """The Log Analytics error shape: ``{"error": {"message", "code", "correlationId"[, "innererror"]}}``."""
    body: dict[str, Any] = {"message": error.message, "code": error.code,
                            "correlationId": "00000000-0000-4000-8000-00000000c0de"}
    if error.inner:
        body["innererror"] = error.inner
    return {"error": body}


class LogQueries:
    """Injected answers of Application Insights (Log Analytics) queries per (resource id, query text)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answers: dict[tuple[str, str], tuple[str, Answer]] = {}

    def reset(self) -> None:
        with self._lock:
            self._answers.clear()

    def set_query_result(self, resource_id: str, query: str, value: Answer, column: str = "value") -> None:
        """`query` (exact text, surrounding blanks ignored) on `resource_id` answers one row with `value` in a real
        column named `column`: a number, None (no row), or a function of (start, end) seconds since the epoch."""
        with self._lock:
            self._answers[(resource_id.rstrip("/").lower(), query.strip())] = (column, value)

    def authenticate(self, authorization: str | None, token: str | None) -> None:
        """401 as the Log Analytics API answers: no token, another audience's JWT, or an unknown opaque token."""
        scheme, _, value = (authorization or "").partition(" ")
        value = value.strip()
        if scheme.lower() != "bearer" or not value:
            raise _logs_error(401, "AuthorizationRequiredError", "Valid authentication was not provided")
        audience = _audience(value)
        if (audience is not None and audience.rstrip("/") != LOGS_AUDIENCE) or (
                audience is None and token is not None and value != token):
            raise _logs_error(401, "InvalidTokenError", "The provided authentication is not valid for this resource")

    def query(self, resource_id: str, body: bytes) -> dict[str, Any]:
        """The answer to ``POST /v1{resource_id}/query`` with this JSON body; MonitorError as the service refuses."""
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            request = None
        query = request.get("query") if isinstance(request, dict) else None
        if not isinstance(query, str) or not query.strip():
            raise _logs_error(400, "BadArgumentError", "The request had some invalid properties",
                              {"code": "SyntaxError", "message": "A query is required."})
        start, end = _logs_timespan(request.get("timespan"))
        with self._lock:
            answer = self._answers.get((resource_id.rstrip("/").lower(), query.strip()))
        if answer is None:
            raise _logs_error(400, "BadArgumentError", "The request had some invalid properties",
                              {"code": "SemanticError", "message": "A semantic error occurred.",
                               "innererror": {"code": "SEM0100", "message": "No answer was injected for this query "
                                                                            "on this resource (the stub runs no KQL)."}})
        column, value = answer
        if callable(value):
            value = value(start, end)
        rows = [] if value is None else [[float(value)]]
        return {"tables": [{"name": "PrimaryResult", "columns": [{"name": column, "type": "real"}], "rows": rows}]}


def _logs_timespan(value: Any) -> tuple[float, float]:
    """(start, end) of an ISO 8601 ``start/end`` timespan; 400 for another form (the adapter always sends one)."""
    parts = str(value or "").split("/")
    if len(parts) != 2:
        raise _logs_error(400, "BadArgumentError", "The request had some invalid properties",
                          {"code": "InvalidTimespan", "message": f"'{value}' is not a start/end timespan."})
    try:
        return _parse_time("timespan", parts[0]), _parse_time("timespan", parts[1])
    except MonitorError:
        raise _logs_error(400, "BadArgumentError", "The request had some invalid properties",
                          {"code": "InvalidTimespan", "message": f"'{value}' is not a start/end timespan."}) from None
