"""The sinks of the CI feedback loop: commit statuses (GitHub, Azure Repos), GitHub `repository_dispatch`,
Azure Pipelines agentless-task callbacks and custom subscribers.

Each sink call raises `SinkFailed` when it could not deliver now; the CI feedback worker retries
that sink on its own. Tokens come from the callables given; they never appear in a message.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, Callable
from urllib.parse import urlencode

from shared.adapters import github
from shared.adapters.azure_devops import AzureDevOps, AzureDevOpsError, repository_url
from shared.core.feedback_config import (
    AZDO_STATES,
    FeedbackConfig,
    SinkFailed,
    merged_pr,
    run_id,
)
from shared.core.phases import PhaseEvent

TIMEOUT = 10
PR_PAGE, PR_PAGES = 100, 10
"""Abandoned pull requests are listed 100 at a time (`$top`), at most 10 pages per timer run."""


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
                self._message = self._azdo("GET", f"{repository_url(self.config.azure_repos)}/commits/{sha}"
                                                  "?api-version=7.1").get("comment", "")
            else:
                self._message = ""
        return self._message

    # --- sinks ------------------------------------------------------------------------------
    def status(self, event: PhaseEvent) -> None:
        target_url = (self.config.target_url or "").format(sha=event.commit, context=event.context) or None
        if self.config.github_repo:
            repo = self._github().get_repo(self.config.github_repo, lazy=True)
            self._call(lambda: github.create_status(repo, event.commit, state=event.state, context=event.context,
                                                    description=event.description, target_url=target_url))
        if self.config.azure_repos:
            genre, _, name = event.context.partition("/")
            self._azdo("POST", f"{repository_url(self.config.azure_repos)}/commits/{event.commit}/statuses"
                               "?api-version=7.1",
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
        number = merged_pr(self.commit_message(event.commit))
        if number is None:
            return "no 'Merged PR N:' in the commit message; no pipeline to call back"
        return self.complete_task(number, "succeeded" if event.succeeded else "failed")

    def complete_task(self, number: int, result: str) -> str:
        pr_repo = self.config.pipelines[2]
        properties = self._azdo("GET", f"{repository_url(self.config.pipelines)}/pullRequests/{number}/properties"
                                       "?api-version=7.1-preview.1", missing_ok=True)
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
        """Numbers of PRs in the pipelines repository abandoned within the last `within_hours`: asked for by
        closing time and read page by page (`$top`/`$skip`, at most `PR_PAGES` pages of `PR_PAGE`)."""
        from datetime import datetime, timedelta, timezone

        since = datetime.now(timezone.utc) - timedelta(hours=within_hours)
        query = urlencode({"searchCriteria.status": "abandoned", "searchCriteria.queryTimeRangeType": "closed",
                           "searchCriteria.minTime": since.strftime("%Y-%m-%dT%H:%M:%SZ"), "$top": PR_PAGE,
                           "api-version": "7.1"})
        url = f"{repository_url(self.config.pipelines)}/pullrequests?{query}"
        numbers = []
        for page in range(PR_PAGES):
            listing = self._azdo("GET", f"{url}&$skip={page * PR_PAGE}").get("value", [])
            for pr in listing:
                try:
                    closed = datetime.fromisoformat(str(pr.get("closedDate", "")).replace("Z", "+00:00"))
                except ValueError:
                    continue
                if closed >= since:
                    numbers.append(int(pr["pullRequestId"]))
            if len(listing) < PR_PAGE:
                break
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
        return github.client(self._github_api, self._github_token())

    @staticmethod
    def _call(action: Callable[[], Any]) -> Any:
        try:
            return github.call(action)
        except github.GitHubError as exc:
            raise SinkFailed(str(exc)) from None

    def _azdo(self, method: str, url: str, body: dict | None = None, *, missing_ok: bool = False) -> dict[str, Any] | None:
        """Call Azure DevOps; None for a 404 when `missing_ok`."""
        try:
            return AzureDevOps(self._azdo_token).request(method, url, body, missing_ok=missing_ok)
        except AzureDevOpsError as exc:
            raise SinkFailed(str(exc)) from None
