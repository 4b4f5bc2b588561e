"""Where phase events go: commit statuses (GitHub, Azure Repos), GitHub `repository_dispatch`,
Azure Pipelines agentless-task callbacks, and custom subscribers.

Configuration is the app setting `DRIFTLESS_FEEDBACK`, JSON keyed by config name (events
pick one with `config` in Flux's Alert `eventMetadata` or in the Argo CD body; "default"
otherwise). Tokens and keys come from Key Vault by name, never from the setting.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import quote, urlsplit

from shared.phases import ERROR, FAILURE, PENDING, SUCCESS, PhaseEvent

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


class Forwarder:
    """Delivers one event to one sink. Raises SinkFailed on a retryable failure."""

    def __init__(self, config: FeedbackConfig, *, github_api: str, github_token: Callable[[], str | None],
                 azdo_token: Callable[[], str | None], secret: Callable[[str], str | None]):
        self.config = config
        self._github_api, self._github_token = github_api, github_token
        self._azdo_token, self._secret = azdo_token, secret
        self._message: str | None = None

    # --- commit messages -------------------------------------------------------------------
    def commit_message(self, sha: str) -> str:
        """The manifests commit's message (from GitHub or Azure Repos), fetched once per event."""
        if self._message is None:
            if self.config.github_repo:
                repo = self._github().get_repo(self.config.github_repo, lazy=True)
                self._message = self._call(lambda: repo.get_commit(sha).commit.message)
            elif self.config.azure_repos:
                org, project, repo = self.config.azure_repos
                self._message = self._azdo("GET", f"{org}/{quote(project)}/_apis/git/repositories/{quote(repo)}"
                                                  f"/commits/{sha}?api-version=7.1").get("comment", "")
            else:
                self._message = ""
        return self._message

    # --- sinks ------------------------------------------------------------------------------
    def status(self, event: PhaseEvent) -> None:
        target_url = (self.config.target_url or "").format(sha=event.commit, context=event.context) or None
        if self.config.github_repo:
            commit = self._github().get_repo(self.config.github_repo, lazy=True).get_commit(event.commit)
            self._call(lambda: commit.create_status(event.state, target_url or "", event.description, event.context))
        if self.config.azure_repos:
            org, project, repo = self.config.azure_repos
            genre, _, name = event.context.partition("/")
            self._azdo("POST", f"{org}/{quote(project)}/_apis/git/repositories/{quote(repo)}/commits/"
                               f"{event.commit}/statuses?api-version=7.1",
                       {"state": AZDO_STATES[event.state], "description": event.description,
                        "targetUrl": target_url, "context": {"name": name, "genre": genre}})

    def dispatch(self, event: PhaseEvent) -> None:
        event_type = self.config.dispatch_event if event.succeeded else self.config.failure_event
        message = self.commit_message(event.commit)
        payload = {"sha": event.commit, "commitmessage": message, "runid": run_id(message),
                   "state": event.state, "operator": event.operator, "kind": event.kind, "name": event.name,
                   "context": event.context}
        repo = self._github().get_repo(self.config.dispatch_repo, lazy=True)
        self._call(lambda: repo.create_repository_dispatch(event_type, payload))

    def pipelines(self, event: PhaseEvent) -> str:
        """Complete the agentless task of the PR that produced the commit; returns what happened."""
        org, project, pr_repo = self.config.pipelines
        number = merged_pr(self.commit_message(event.commit))
        if number is None:
            return "no 'Merged PR N:' in the commit message; no pipeline to call back"
        return self.complete_task(number, "succeeded" if event.succeeded else "failed")

    def complete_task(self, number: int, result: str) -> str:
        org, project, pr_repo = self.config.pipelines
        properties = self._azdo("GET", f"{org}/{quote(project)}/_apis/git/repositories/{quote(pr_repo)}/pullRequests/"
                                       f"{number}/properties?api-version=7.1-preview.1", missing_ok=True)
        if properties is None:
            return f"PR {number} not found in {pr_repo}"
        properties = properties.get("value", {})
        raw = (properties.get("callback-task-id") or {}).get("$value")
        if not raw:
            return f"PR {number} has no callback-task-id property"
        try:
            task = json.loads(raw)
            plan = f"{task['planurl'].rstrip('/')}/{task['projectid']}/_apis/distributedtask/hubs/build/plans/{task['planid']}"
        except (ValueError, KeyError, TypeError, AttributeError):
            return f"PR {number}: callback-task-id is not the expected JSON"
        state = self._azdo("GET", f"{plan}?api-version=7.1-preview.1")
        if str(state.get("state", "")).lower() == "completed":
            return f"PR {number}: plan {task['planid']} already completed"
        self._azdo("POST", f"{plan}/events?api-version=2.0-preview.1",
                   {"name": "TaskCompleted", "taskId": task.get("taskid"), "jobId": task.get("jobid"), "result": result})
        return f"PR {number}: task {task.get('taskid')} completed as {result}"

    def abandoned_prs(self, within_hours: float) -> list[int]:
        """Numbers of PRs in the pipelines repository abandoned within the last `within_hours`."""
        from datetime import datetime, timedelta, timezone

        org, project, pr_repo = self.config.pipelines
        listing = self._azdo("GET", f"{org}/{quote(project)}/_apis/git/repositories/{quote(pr_repo)}/pullrequests"
                                    f"?searchCriteria.status=abandoned&$top=100&api-version=7.1")
        since = datetime.now(timezone.utc) - timedelta(hours=within_hours)
        numbers = []
        for pr in listing.get("value", []):
            try:
                closed = datetime.fromisoformat(str(pr.get("closedDate", "")).replace("Z", "+00:00"))
            except ValueError:
                continue
            if closed >= since:
                numbers.append(int(pr["pullRequestId"]))
        return numbers

    def subscriber(self, event: PhaseEvent, name: str) -> None:
        import requests

        subscriber = next(s for s in self.config.subscribers if s.name == name)
        body = json.dumps({"commit_id": event.commit, "status_name": event.status_name, "state": event.state,
                           "message": event.message, "callback_url": (self.config.target_url or "").format(
                               sha=event.commit, context=event.context), "gitops_operator": event.operator,
                           "genre": event.kind}).encode()
        headers = {"Content-Type": "application/json"}
        key = self._secret(subscriber.secret_name) if subscriber.secret_name else None
        if key:
            headers["X-Driftless-Signature"] = "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
        try:
            reply = requests.post(subscriber.url, data=body, headers=headers, timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise SinkFailed(f"subscriber {name}: {type(exc).__name__}") from None
        if reply.status_code >= 300:
            raise SinkFailed(f"subscriber {name}: HTTP {reply.status_code}")

    # --- transports -------------------------------------------------------------------------
    def _github(self):
        from github import Auth, Github

        token = self._github_token()
        return Github(auth=Auth.Token(token) if token else None, base_url=self._github_api, timeout=TIMEOUT,
                      retry=0, lazy=True)

    @staticmethod
    def _call(action: Callable[[], Any]) -> Any:
        from github import GithubException

        try:
            return action()
        except GithubException as exc:
            raise SinkFailed(f"GitHub answered {exc.status}") from None
        except OSError as exc:
            raise SinkFailed(f"GitHub unreachable: {type(exc).__name__}") from None

    def _azdo(self, method: str, url: str, body: dict | None = None, *, missing_ok: bool = False) -> dict[str, Any] | None:
        """Call Azure DevOps with the token as basic-auth password; None for a 404 when `missing_ok`."""
        import requests

        token = self._azdo_token() or ""
        try:
            reply = requests.request(method, url, json=body, auth=("", token), timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise SinkFailed(f"Azure DevOps unreachable: {type(exc).__name__}") from None
        if reply.status_code == 404 and missing_ok:
            return None
        if reply.status_code >= 300:
            raise SinkFailed(f"Azure DevOps answered {reply.status_code} for {method} {urlsplit(url).path}")
        return reply.json() if reply.content else {}
