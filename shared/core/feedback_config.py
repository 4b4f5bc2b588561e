"""Where phase events go: commit statuses (GitHub, Azure Repos), GitHub `repository_dispatch`,
Azure Pipelines agentless-task callbacks, and custom subscribers.

Configuration is the app setting `DRIFTLESS_FEEDBACK`, JSON keyed by config name (events
pick one with `config` in Flux's Alert `eventMetadata` or in the Argo CD body; "default"
otherwise). Tokens and keys come from Key Vault by name, never from the setting.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from shared.core.phases import ERROR, FAILURE, PENDING, SUCCESS, PhaseEvent

AZDO_STATES = {PENDING: "pending", SUCCESS: "succeeded", FAILURE: "failed", ERROR: "error"}
_RUN_ID = re.compile(r"^\s*run[-_ ]?id\s*[:=]\s*(\d+)\s*$", re.IGNORECASE | re.MULTILINE)
_MERGED_PR = re.compile(r"Merged PR (\d+):")
TIMEOUT = 10


class FeedbackConfigError(ValueError):
    """DRIFTLESS_FEEDBACK is malformed; the message names the config and field."""


class SinkFailed(RuntimeError):
    """A sink could not deliver now; it is retried later on its own."""


@dataclass(frozen=True)
class Subscriber:
    name: str
    url: str
    secret_name: str | None = None


@dataclass(frozen=True)
class FeedbackConfig:
    """One manifests repository / environment: where its events are reported."""

    name: str
    github_repo: str | None = None                      # owner/name for commit statuses
    azure_repos: tuple[str, str, str] | None = None      # (organization URL, project, repository)
    target_url: str | None = None                       # may contain {sha} and {context}
    dispatch_repo: str | None = None                    # owner/name receiving repository_dispatch
    dispatch_event: str = "sync-success"
    failure_event: str | None = None
    pipelines: tuple[str, str, str] | None = None       # (organization URL, project, PR repository)
    subscribers: tuple[Subscriber, ...] = field(default_factory=tuple)
    allow_http: bool = False

    def sinks(self, event: PhaseEvent) -> list[str]:
        """The sinks an event goes to: a status always, callbacks only when the deployment finished."""
        names = ["status"] if (self.github_repo or self.azure_repos) else []
        if event.finished and self.dispatch_repo and (event.succeeded or self.failure_event):
            names.append("dispatch")
        if event.finished and self.pipelines:
            names.append("pipelines")
        return names + [f"subscriber:{s.name}" for s in self.subscribers]


def load_configs(raw: str | None) -> dict[str, FeedbackConfig]:
    """Parse DRIFTLESS_FEEDBACK; an empty setting means no feedback at all."""
    if not raw or not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise FeedbackConfigError(f"DRIFTLESS_FEEDBACK is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise FeedbackConfigError("DRIFTLESS_FEEDBACK must be a JSON object of named configs")
    return {name: _config(name, spec) for name, spec in data.items()}


def _config(name: str, spec: Any) -> FeedbackConfig:
    where = f"DRIFTLESS_FEEDBACK.{name}"
    if not isinstance(spec, dict):
        raise FeedbackConfigError(f"{where} must be an object")
    allowed = {"github", "azureRepos", "targetUrl", "githubDispatch", "azurePipelines", "subscribers", "allowHttp"}
    unknown = set(spec) - allowed
    if unknown:
        raise FeedbackConfigError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}; allowed: "
                                  f"{', '.join(sorted(allowed))}")

    def triple(key: str, names: tuple[str, str, str]) -> tuple[str, str, str] | None:
        value = spec.get(key)
        if value is None:
            return None
        if not isinstance(value, dict) or not all(isinstance(value.get(n), str) and value[n] for n in names):
            raise FeedbackConfigError(f"{where}.{key} needs {', '.join(names)}")
        return (value[names[0]].rstrip("/"), value[names[1]], value[names[2]])

    dispatch = spec.get("githubDispatch") or {}
    subscribers = []
    for i, item in enumerate(spec.get("subscribers") or []):
        if not isinstance(item, dict) or not item.get("name") or not item.get("url"):
            raise FeedbackConfigError(f"{where}.subscribers[{i}] needs name and url")
        scheme = urlsplit(item["url"]).scheme
        if scheme != "https" and not (scheme == "http" and spec.get("allowHttp")):
            raise FeedbackConfigError(f"{where}.subscribers[{i}] ({item['name']}): {item['url']} is not HTTPS; "
                                      "set allowHttp: true to allow plain HTTP")
        subscribers.append(Subscriber(item["name"], item["url"], item.get("secretName")))
    return FeedbackConfig(
        name=name, github_repo=spec.get("github"), azure_repos=triple("azureRepos", ("org", "project", "repo")),
        target_url=spec.get("targetUrl"), dispatch_repo=dispatch.get("repo"),
        dispatch_event=dispatch.get("eventType", "sync-success"), failure_event=dispatch.get("failureEventType"),
        pipelines=triple("azurePipelines", ("org", "project", "prRepo")), subscribers=tuple(subscribers),
        allow_http=bool(spec.get("allowHttp")))


def run_id(message: str) -> str | None:
    """A GitHub Actions run id from a `Run-Id: <n>` trailer, if the commit message has one."""
    match = _RUN_ID.search(message or "")
    return match.group(1) if match else None


def merged_pr(message: str) -> int | None:
    match = _MERGED_PR.search(message or "")
    return int(match.group(1)) if match else None
