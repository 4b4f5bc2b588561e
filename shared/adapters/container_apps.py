"""Azure Container Apps through the real SDK (`azure-mgmt-appcontainers`).

The SDK client is built on first use and reused. ARM's retry policy (429 honouring
`Retry-After`, 5xx with backoff) comes from azure-core. Long-running operations follow
`Azure-AsyncOperation`; an operation that does not finish within the apply timeout raises
`ApplyTimeout`, and one that ends `Failed` raises `ApplyFailed`: neither is ever success. A write
ARM refuses because an earlier operation on the app still runs (409 `ContainerAppOperationInProgress`)
raises `OperationInProgress`: nothing was written, the next pass looks again.

Every request spends this process's ARM budget of the subscription (`shared.adapters.arm_budget`). Writes of
apps, jobs and Dapr components are started without waiting (`begin`) and then looked at once per `poll`, so one
loop can keep many operations pending without a thread each (`look_listed` reads many of them with one list); a
write ARM answers synchronously (a Dapr component's PUT and DELETE) is an operation that has already ended.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from shared.adapters import arm_budget

from shared.config.credentials import credential
from shared.config.settings import Settings


class ApplyFailed(RuntimeError):
    """ARM refused a write or its operation ended Failed."""


class ApplyTimeout(ApplyFailed):
    """The operation was still running when the apply timeout ran out."""


class OperationInProgress(ApplyFailed):
    """ARM refused the write (409) because an earlier operation on the app has not finished."""


APPS, JOBS = "containerApps", "jobs"
"""The resource types `ContainerApps.begin` writes (with `dapr_components(environment_id)`)."""

OPERATION_IN_PROGRESS = "ContainerAppOperationInProgress"
OPERATION_IN_PROGRESS_CODES = (OPERATION_IN_PROGRESS, "ContainerAppJobOperationInProgress")
"""409 codes of a write refused because an earlier operation on the app (or job) still runs."""


def _error_text(exc: Exception) -> str:
    error = getattr(exc, "error", None)
    if error is not None and getattr(error, "code", None):
        return f"{error.code}: {error.message}"
    message = getattr(exc, "message", None) or str(exc)
    return message.splitlines()[0][:500] if message else type(exc).__name__


class ContainerApps:
    """Container Apps of one subscription. Methods return ARM JSON as plain dicts."""

    def __init__(self, settings: Settings, subscription_id: str):
        self._settings = settings
        self._subscription_id = subscription_id
        self._client = None
        self._lock = threading.Lock()
        self._pages: dict[str, int] = {}
        """Pages each list (by its path) took the last time it was read: what `look_listed` weighs."""

    @property
    def client(self):
        with self._lock:
            if self._client is None:
                from azure.mgmt.appcontainers import ContainerAppsAPIClient

                import requests
                from azure.core.pipeline.transport import RequestsTransport

                # One connection per request in flight: a pass starts and checks up to 2 x concurrency at once,
                # and requests' default pool of 10 would make the rest open and drop connections.
                session = requests.Session()
                pool = max(10, 2 * self._settings.concurrency)
                session.mount("https://", requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=pool))
                self._client = ContainerAppsAPIClient(
                    credential(self._settings), self._subscription_id,
                    base_url=self._settings.arm_endpoint or None,
                    polling_interval=self._settings.arm_poll_interval,
                    transport=RequestsTransport(session=session, session_owner=False,
                                                connection_timeout=10, read_timeout=60),
                    per_retry_policies=[arm_budget.policy(arm_budget.for_subscription(self._subscription_id))])
            return self._client

    def list_apps(self, resource_group: str) -> list[dict[str, Any]]:
        """Every Container App in the resource group: one paged list, no per-app GET.

        The pages go through the SDK client's pipeline (auth, retries) but are read as plain JSON,
        the shape `as_dict()` gives, without building models: at 2,000 apps that halves a steady pass."""
        return self._list(_collection(resource_group, APPS))

    def begin(self, kind: str, resource_group: str, name: str, body: dict[str, Any] | None = None, *,
              resource: str = APPS) -> Operation:
        """Send one write (`create`: PUT of `body`, which creates or replaces; `update`: merge-patch `body`;
        `delete`) of the resource `name` of type `resource` (`APPS`, `JOBS`, or `dapr_components(environment_id)`
        with the environment's resource group) and return at once with its operation; `poll` it until it ends.
        An answer without operation headers (200/201 with the resource, 200/204 to a delete) is an operation that
        has already ended. The apply timeout runs from ARM's answer. Raises OperationInProgress (409) or
        ApplyFailed when ARM refuses the write."""
        from azure.core.rest import HttpRequest

        collection = _collection(resource_group, resource)
        url = self._url(f"{collection}/{name}")
        method = {"create": "PUT", "update": "PATCH", "delete": "DELETE"}[kind]
        timeout = self._settings.apply_timeout
        op = Operation(name, kind, url, deadline=0.0, timeout=timeout, collection=collection)
        response = self.client.send_request(HttpRequest(method, url, json=body) if body is not None
                                            else HttpRequest(method, url))
        op.deadline = time.monotonic() + timeout          # from ARM's answer: waiting for the budget does not count
        if response.status_code == 204 or (kind == "delete" and response.status_code == 200):
            op.result = {}
            return op
        _raise_for(response)
        op.status_url = response.headers.get("Azure-AsyncOperation")
        op.location_url = response.headers.get("Location")
        if not op.status_url and not op.location_url:
            op.result = response.json() if kind != "delete" else {}
            return op
        op.every = self._poll_delay(response)            # ARM's Retry-After, kept for looks at the resource
        op.next_poll = time.monotonic() + op.every
        return op

    def poll(self, op: Operation) -> dict[str, Any] | None:
        """One look at a pending operation: None while it runs (`op.next_poll` says when to look again); once it
        succeeded the resource as ARM JSON (`{}` for a delete; an operation that already ended costs no request).
        Raises ApplyFailed when it failed and ApplyTimeout when the apply timeout would pass before the next look
        (never success).

        A create or update is looked at by reading the resource itself (one read a look: its provisioningState is
        InProgress until the operation ends, and the last look is the result, with no final GET); its operation
        status is read only when the resource says Failed or Canceled, for ARM's error (a status still running
        means the read showed an earlier operation's end: looked at again later; a status Succeeded means the read
        was older than the end: the resource is read again and is the result). ARM's read budget (25 a
        second) is what bounds a large create, so this saves about a third of its reads. Deletes, and resources
        without a provisioningState, follow the operation status."""
        from azure.core.rest import HttpRequest

        if op.result is not None:
            return op.result
        if op.status_url and op.kind != "delete" and not op.by_status:
            response = None
            if op.listed is not None:                     # `look_listed` read it with its collection
                body, op.listed = op.listed, None
            else:
                response = self.client.send_request(HttpRequest("GET", op.url))
                _raise_for(response)
                body = response.json() or {}
            state = str((body.get("properties") or {}).get("provisioningState") or "").lower()
            if state == "succeeded":
                op.result = body
                return body
            if state in ("failed", "canceled", "cancelled"):
                status = self.client.send_request(HttpRequest("GET", op.status_url))
                _raise_for(status)
                answer = status.json() or {}
                ended = str(answer.get("status") or "").lower()
                if ended == "succeeded":          # the read was older than the operation's end: read it again
                    final = self.client.send_request(HttpRequest("GET", op.url))
                    _raise_for(final)
                    op.result = final.json()
                    return op.result
                if ended and ended not in ("failed", "canceled", "cancelled"):
                    return self._later(op, status)  # an earlier operation's end: this one still runs
                if not (answer.get("error") or {}).get("code"):
                    raise ApplyFailed(f"operation on {op.name} ended {state.capitalize()}")
                _raise_for(status, failed=True)
            if state:
                return self._later(op, response)
            if response is None:                  # listed without a provisioningState: read it once more
                return self.poll(op)
            op.by_status = True                   # no provisioningState: the operation status says when it ends
        if op.status_url:
            response = self.client.send_request(HttpRequest("GET", op.status_url))
            _raise_for(response)
            answer = response.json() or {}
            status = str(answer.get("status") or "").lower()
            if status in ("failed", "canceled", "cancelled"):
                if not (answer.get("error") or {}).get("code"):
                    raise ApplyFailed(f"operation on {op.name} ended {answer.get('status')}")
                _raise_for(response, failed=True)
            done = status == "succeeded"
        else:
            response = self.client.send_request(HttpRequest("GET", op.location_url))
            _raise_for(response)
            done = response.status_code != 202
        if not done:
            return self._later(op, response)
        if op.kind == "delete":
            op.result = {}
        elif not op.status_url and response.status_code == 200 and response.content:
            op.result = response.json()
        else:                                              # ARM's final state of a PUT/PATCH: GET the resource
            final = self.client.send_request(HttpRequest("GET", op.url))
            _raise_for(final)
            op.result = final.json()
        return op.result

    def look_listed(self, ops: list[Operation]) -> tuple[list[Operation], list[Operation]]:
        """Read the pending creates and updates among `ops` with their collection's list instead of one GET each,
        where the list costs fewer reads than the GETs: more operations than twice the pages the list took the
        last time it was read (a collection not listed yet is not). Returns (read, missing): the operations the
        list showed (their next `poll` sends no request unless the list shows Failed or Canceled) and those a list
        cannot answer (not in it; deletes, operations followed by their status, and those already ended), which
        need a look of their own. Operations in neither were not looked at. ARM's read budget (25 a second) bounds
        how often a large create can look at its operations: a group of 2,000 apps listed 100 a page costs 20
        reads for up to 1,000 pending operations, instead of a GET each."""
        by_collection: dict[str, list[Operation]] = {}
        missing: list[Operation] = []
        for op in ops:
            if op.result is None and op.status_url and op.kind != "delete" and not op.by_status and op.collection:
                by_collection.setdefault(op.collection, []).append(op)
            else:
                missing.append(op)
        listings = {collection: {str(item.get("name") or "").lower(): item for item in self._list(collection)}
                    for collection, pending in by_collection.items()
                    if len(pending) > 2 * self._pages.get(collection, len(pending))}
        read: list[Operation] = []
        for collection, listed in listings.items():         # attached only once every list was read
            for op in by_collection[collection]:
                op.listed = listed.get(op.name.lower())
                (read if op.listed is not None else missing).append(op)
        return read, missing

    def _later(self, op: Operation, response) -> None:
        """Schedule the next look at a running operation (ARM's `Retry-After` on this answer, else the one its
        operation came with, else the poll interval); ApplyTimeout when it would come after the deadline."""
        every = op.every or self._settings.arm_poll_interval
        delay = self._poll_delay(response, every) if response is not None else every
        if time.monotonic() + delay > op.deadline:
            raise ApplyTimeout(f"operation on {op.name} did not finish within {op.timeout:g}s; not counted as "
                               "success")
        op.next_poll = time.monotonic() + delay
        return None

    def _poll_delay(self, response, default: float | None = None) -> float:
        """ARM's `Retry-After` on an operation's answer, else `default` (the configured poll interval)."""
        default = self._settings.arm_poll_interval if default is None else default
        try:
            delay = float(response.headers.get("Retry-After") or default)
        except ValueError:
            return default
        return max(0.0, delay) if math.isfinite(delay) else default

    def _url(self, path: str) -> str:
        endpoint = (self._settings.arm_endpoint or "https://management.azure.com").rstrip("/")
        return (f"{endpoint}/subscriptions/{self._subscription_id}/{path}"
                f"?api-version={self.client._config.api_version}")

    def _list(self, path: str, *, remember: bool = True) -> list[dict[str, Any]]:
        """Every item of an ARM list under the subscription (`path` after /subscriptions/<id>/), page by page, as
        plain JSON through the SDK client's pipeline; with `remember`, how many pages it took (`look_listed`)."""
        from azure.core.rest import HttpRequest

        url: str | None = self._url(path)
        items: list[dict[str, Any]] = []
        pages = 0
        while url:
            response = self.client.send_request(HttpRequest("GET", url))
            response.raise_for_status()
            page = response.json()
            items += page.get("value") or []
            url = page.get("nextLink")
            pages += 1
        if remember:
            self._pages[path] = pages
        return items

    def environment(self, environment_id: str) -> dict[str, Any]:
        """The managed environment as ARM JSON (location, properties.workloadProfiles, ...)."""
        parts = environment_id.strip("/").split("/")
        return self.client.managed_environments.get(parts[3], parts[-1]).as_dict()

    def revision_problem(self, resource_group: str, app: str, revision: str) -> str:
        """Why a revision is not ready, from its provisioning error and running state details."""
        try:
            found = self.revisions(resource_group, app).get(revision)
        except Exception as exc:
            return f"revision {revision}: details unavailable ({_error_text(exc)})"
        props = (found or {}).get("properties") or {}
        details = [props.get("provisioningError"), props.get("runningStateDetails")]
        state = f"{props.get('provisioningState')}/{props.get('runningState')}"
        return f"revision {revision} {state}: " + "; ".join(dict.fromkeys(d for d in details if d))

    def revisions(self, resource_group: str, app: str) -> "AppRevisions":
        """The revision and traffic calls of one app (progressive delivery)."""
        return AppRevisions(self, resource_group, app)

    # --- jobs (Microsoft.App/jobs) ---------------------------------------------------------------
    def list_jobs(self, resource_group: str) -> list[dict[str, Any]]:
        """Every Container Apps job in the resource group (one paged list, plain JSON as `list_apps`)."""
        return self._list(_collection(resource_group, JOBS))

    def job(self, resource_group: str, name: str) -> dict[str, Any] | None:
        """The job as ARM JSON, or None when it does not exist."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return self.client.jobs.get(resource_group, name).as_dict()
        except ResourceNotFoundError:
            return None

    def start_job(self, resource_group: str, name: str) -> str:
        """Start an execution of the job with its own template; the execution's name."""
        return str(self._wait(name, lambda polling: self.client.jobs.begin_start(
            resource_group, name, polling=polling)).get("name") or "")

    def executions(self, resource_group: str, job: str) -> list[dict[str, Any]]:
        """The job's recent executions as ARM keeps them (plain JSON, every page)."""
        return self._list(f"{_collection(resource_group, JOBS)}/{job}/executions",
                          remember=False)

    # --- Dapr components (managedEnvironments/{env}/daprComponents) -----------------------------
    def list_dapr_components(self, environment_id: str) -> list[dict[str, Any]]:
        """Every Dapr component of the environment (plain JSON, every page)."""
        return self._list(_collection(*dapr_components(environment_id)))

    def _wait(self, name: str, begin) -> dict[str, Any]:
        """Start an operation and wait for it; polling stops at the apply timeout (no thread is left behind)."""
        from azure.core.exceptions import HttpResponseError

        timeout = self._settings.apply_timeout
        polling = _deadline_polling(self._settings.arm_poll_interval, time.monotonic() + timeout,
                                    f"operation on {name} did not finish within {timeout:g}s; not counted as success")
        try:
            result = begin(polling).result()
        except ApplyFailed:
            raise
        except HttpResponseError as exc:
            if exc.status_code == 409 and getattr(exc.error, "code", None) in OPERATION_IN_PROGRESS_CODES:
                raise OperationInProgress(_error_text(exc)) from None
            raise ApplyFailed(_error_text(exc)) from None
        return result.as_dict() if result is not None else {}


class AppRevisions:
    """The revision and traffic calls of one Container App: set the traffic weights (a merge patch of
    `ingress.traffic` only, which makes no revision; waits for its operation, bounded by the apply timeout),
    deactivate a revision, read a revision."""

    def __init__(self, aca: ContainerApps, resource_group: str, app: str):
        self.aca, self.resource_group, self.app = aca, resource_group, app

    def set_traffic(self, traffic: list[dict[str, Any]]) -> dict[str, Any]:
        """Send `traffic` as the app's `configuration.ingress.traffic`; the app as ARM ended with it. Raises
        OperationInProgress, ApplyFailed or ApplyTimeout like `begin`/`poll`."""
        op = self.aca.begin("update", self.resource_group, self.app,
                            {"properties": {"configuration": {"ingress": {"traffic": traffic}}}})
        while True:
            live = self.aca.poll(op)
            if live is not None:
                return live
            time.sleep(max(0.0, op.next_poll - time.monotonic()))

    def deactivate(self, revision: str) -> None:
        """Deactivate `revision` (ARM keeps it, inactive, for `maxInactiveRevisions`)."""
        self.aca.client.container_apps_revisions.deactivate_revision(self.resource_group, self.app, revision)

    def get(self, revision: str) -> dict[str, Any] | None:
        """The revision as ARM JSON (provisioningState, healthState, runningState, replicas, ...), or None."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return self.aca.client.container_apps_revisions.get_revision(self.resource_group, self.app,
                                                                         revision).as_dict()
        except ResourceNotFoundError:
            return None


@dataclass
class Operation:
    """A write of one app, job or Dapr component that ARM accepted and that may still run (see
    `ContainerApps.begin`); `result` is set once it ended."""

    name: str
    kind: str
    url: str
    deadline: float
    timeout: float
    status_url: str | None = None
    location_url: str | None = None
    next_poll: float = 0.0
    every: float = 0.0
    """Seconds between looks ARM asked for when it accepted the write (`Retry-After`), else the poll interval."""
    by_status: bool = False
    """Looked at through its operation status (the resource has no provisioningState), not the resource."""
    collection: str = ""
    """The path of the list the resource is in (after /subscriptions/<id>/)."""
    listed: dict[str, Any] | None = field(default=None, repr=False)
    """The resource as `look_listed` read it, for the next `poll` (which then sends no request)."""
    result: dict[str, Any] | None = field(default=None, repr=False)


def _raise_for(response, *, failed: bool = False) -> None:
    """ARM's error answer (or a failed operation's status) as the errors `_wait` raises, with the same text."""
    if response.status_code < 400 and not failed:
        return
    from azure.core.exceptions import HttpResponseError
    from azure.mgmt.core.exceptions import ARMErrorFormat

    exc = HttpResponseError(response=response, error_format=ARMErrorFormat)
    if response.status_code == 409 and getattr(exc.error, "code", None) in OPERATION_IN_PROGRESS_CODES:
        raise OperationInProgress(_error_text(exc))
    raise ApplyFailed(_error_text(exc))


def _deadline_polling(interval: float, deadline: float, message: str):
    """ARM polling (Azure-AsyncOperation, then Location) that raises ApplyTimeout instead of sleeping past `deadline`."""
    from azure.mgmt.core.polling.arm_polling import ARMPolling

    class DeadlinePolling(ARMPolling):
        def _sleep(self, delay: float) -> None:
            if time.monotonic() + delay > deadline:
                raise ApplyTimeout(message)
            time.sleep(delay)

    return DeadlinePolling(interval)


def _collection(resource_group: str, resource: str) -> str:
    """The path (after /subscriptions/<id>/) of the list of `resource` in the group: what `begin` files an operation
    under and what `look_listed` reads."""
    return f"resourceGroups/{resource_group}/providers/Microsoft.App/{resource}"


def dapr_components(environment_id: str) -> tuple[str, str]:
    """(resource group, resource type) that `ContainerApps.begin` takes for a Dapr component of the environment."""
    group, env = _group_and_name(environment_id)
    return group, f"managedEnvironments/{env}/daprComponents"


def _group_and_name(resource_id: str) -> tuple[str, str]:
    """(resource group, name) of an ARM resource id."""
    parts = resource_id.strip("/").split("/")
    return parts[3], parts[-1]


_by_subscription: dict[tuple[Settings, str], ContainerApps] = {}
_by_subscription_lock = threading.Lock()


def for_subscription(settings: Settings, subscription_id: str) -> ContainerApps:
    """The process's ContainerApps for this subscription and settings (SDK client built once, reused)."""
    with _by_subscription_lock:
        key = (settings, subscription_id)
        if key not in _by_subscription:
            _by_subscription[key] = ContainerApps(settings, subscription_id)
        return _by_subscription[key]
