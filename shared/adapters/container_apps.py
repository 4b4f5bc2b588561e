"""Azure Container Apps through the real SDK (`azure-mgmt-appcontainers`).

The SDK client is built on first use and reused. ARM's retry policy (429 honouring
`Retry-After`, 5xx with backoff) comes from azure-core. Long-running operations follow
`Azure-AsyncOperation`; an operation that does not finish within the apply timeout raises
`ApplyTimeout`, and one that ends `Failed` raises `ApplyFailed`: neither is ever success. A write
ARM refuses because an earlier operation on the app still runs (409 `ContainerAppOperationInProgress`)
raises `OperationInProgress`: nothing was written, the next pass looks again.
"""
from __future__ import annotations

import io
import json
import threading
import time
from typing import Any

from shared.config.credentials import credential
from shared.config.settings import Settings


class ApplyFailed(RuntimeError):
    """ARM refused a write or its operation ended Failed."""


class ApplyTimeout(ApplyFailed):
    """The operation was still running when the apply timeout ran out."""


class OperationInProgress(ApplyFailed):
    """ARM refused the write (409) because an earlier operation on the app has not finished."""


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

    @property
    def client(self):
        with self._lock:
            if self._client is None:
                from azure.mgmt.appcontainers import ContainerAppsAPIClient

                self._client = ContainerAppsAPIClient(
                    credential(self._settings), self._subscription_id,
                    base_url=self._settings.arm_endpoint or None,
                    polling_interval=self._settings.arm_poll_interval,
                    connection_timeout=10, read_timeout=60)
            return self._client

    def list_apps(self, resource_group: str) -> list[dict[str, Any]]:
        """Every Container App in the resource group: one paged list, no per-app GET.

        The pages go through the SDK client's pipeline (auth, retries) but are read as plain JSON,
        the shape `as_dict()` gives, without building models: at 2,000 apps that halves a steady pass."""
        return self._list(f"resourceGroups/{resource_group}/providers/Microsoft.App/containerApps")

    def _list(self, path: str) -> list[dict[str, Any]]:
        """Every item of an ARM list under the subscription (`path` after /subscriptions/<id>/), page by page, as
        plain JSON through the SDK client's pipeline."""
        from azure.core.rest import HttpRequest

        endpoint = (self._settings.arm_endpoint or "https://management.azure.com").rstrip("/")
        url: str | None = (f"{endpoint}/subscriptions/{self._subscription_id}/{path}"
                           f"?api-version={self.client._config.api_version}")
        items: list[dict[str, Any]] = []
        while url:
            response = self.client.send_request(HttpRequest("GET", url))
            response.raise_for_status()
            page = response.json()
            items += page.get("value") or []
            url = page.get("nextLink")
        return items

    def environment(self, environment_id: str) -> dict[str, Any]:
        """The managed environment as ARM JSON (location, properties.workloadProfiles, ...)."""
        parts = environment_id.strip("/").split("/")
        return self.client.managed_environments.get(parts[3], parts[-1]).as_dict()

    def create(self, resource_group: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._wait(name, lambda polling: self.client.container_apps.begin_create_or_update(
            resource_group, name, _json(body), content_type="application/json", polling=polling))

    def update(self, resource_group: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """Apply a JSON merge patch (ARM's PATCH for Container Apps)."""
        return self._wait(name, lambda polling: self.client.container_apps.begin_update(
            resource_group, name, _json(patch), content_type="application/json", polling=polling))

    def delete(self, resource_group: str, name: str) -> None:
        self._wait(name, lambda polling: self.client.container_apps.begin_delete(
            resource_group, name, polling=polling))

    def revision_problem(self, resource_group: str, app: str, revision: str) -> str:
        """Why a revision is not ready, from its provisioning error and running state details."""
        try:
            props = self.client.container_apps_revisions.get_revision(resource_group, app, revision).as_dict()
        except Exception as exc:
            return f"revision {revision}: details unavailable ({_error_text(exc)})"
        props = props.get("properties") or {}
        details = [props.get("provisioningError"), props.get("runningStateDetails")]
        state = f"{props.get('provisioningState')}/{props.get('runningState')}"
        return f"revision {revision} {state}: " + "; ".join(dict.fromkeys(d for d in details if d))

    # --- jobs (Microsoft.App/jobs) ---------------------------------------------------------------
    def list_jobs(self, resource_group: str) -> list[dict[str, Any]]:
        """Every Container Apps job in the resource group (one paged list, plain JSON as `list_apps`)."""
        return self._list(f"resourceGroups/{resource_group}/providers/Microsoft.App/jobs")

    def create_job(self, resource_group: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._wait(name, lambda polling: self.client.jobs.begin_create_or_update(
            resource_group, name, _json(body), content_type="application/json", polling=polling))

    def update_job(self, resource_group: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """Apply a JSON merge patch to a job."""
        return self._wait(name, lambda polling: self.client.jobs.begin_update(
            resource_group, name, _json(patch), content_type="application/json", polling=polling))

    def delete_job(self, resource_group: str, name: str) -> None:
        self._wait(name, lambda polling: self.client.jobs.begin_delete(resource_group, name, polling=polling))

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
        return self._list(f"resourceGroups/{resource_group}/providers/Microsoft.App/jobs/{job}/executions")

    # --- Dapr components (managedEnvironments/{env}/daprComponents) -----------------------------
    def list_dapr_components(self, environment_id: str) -> list[dict[str, Any]]:
        """Every Dapr component of the environment (plain JSON, every page)."""
        group, env = _group_and_name(environment_id)
        return self._list(f"resourceGroups/{group}/providers/Microsoft.App/managedEnvironments/{env}/daprComponents")

    def put_dapr_component(self, environment_id: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create or replace a Dapr component (ARM answers at once: no operation to wait for)."""
        group, env = _group_and_name(environment_id)
        return self._call(lambda: self.client.dapr_components.create_or_update(
            group, env, name, _json(body), content_type="application/json").as_dict())

    def delete_dapr_component(self, environment_id: str, name: str) -> None:
        """Delete a Dapr component (gone already is fine)."""
        group, env = _group_and_name(environment_id)
        self._call(lambda: self.client.dapr_components.delete(group, env, name))

    @staticmethod
    def _call(call):
        """A synchronous write; ARM refusing it raises ApplyFailed with ARM's code and message."""
        from azure.core.exceptions import HttpResponseError

        try:
            return call()
        except HttpResponseError as exc:
            raise ApplyFailed(_error_text(exc)) from None

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


def _deadline_polling(interval: float, deadline: float, message: str):
    """ARM polling (Azure-AsyncOperation, then Location) that raises ApplyTimeout instead of sleeping past `deadline`."""
    from azure.mgmt.core.polling.arm_polling import ARMPolling

    class DeadlinePolling(ARMPolling):
        def _sleep(self, delay: float) -> None:
            if time.monotonic() + delay > deadline:
                raise ApplyTimeout(message)
            time.sleep(delay)

    return DeadlinePolling(interval)


def _group_and_name(resource_id: str) -> tuple[str, str]:
    """(resource group, name) of an ARM resource id."""
    parts = resource_id.strip("/").split("/")
    return parts[3], parts[-1]


def _json(body: dict[str, Any]) -> io.BytesIO:
    return io.BytesIO(json.dumps(body).encode())


_by_subscription: dict[tuple[Settings, str], ContainerApps] = {}
_by_subscription_lock = threading.Lock()


def for_subscription(settings: Settings, subscription_id: str) -> ContainerApps:
    """The process's ContainerApps for this subscription and settings (SDK client built once, reused)."""
    with _by_subscription_lock:
        key = (settings, subscription_id)
        if key not in _by_subscription:
            _by_subscription[key] = ContainerApps(settings, subscription_id)
        return _by_subscription[key]
