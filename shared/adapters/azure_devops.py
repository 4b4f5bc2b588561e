"""Azure DevOps REST (Azure Repos statuses and commits, PR properties, statuses and threads, Azure Pipelines plan
events).

The token (PAT or Entra token from Key Vault) goes as the basic-auth password, as Azure DevOps
expects, with `X-TFS-FedAuthRedirect: Suppress` so a refused token is a 401 rather than a 203 sign-in page
(a 203 is treated as a 401 all the same). Every refusal becomes `AzureDevOpsError`; the token never appears
in a message.
"""
from __future__ import annotations

from typing import Any, Callable
from urllib.parse import quote, urlsplit

TIMEOUT = 10
HEADERS = {"Accept": "application/json", "X-TFS-FedAuthRedirect": "Suppress"}


class AzureDevOpsError(RuntimeError):
    """Azure DevOps refused a request (`status`) or could not be reached (`status` None)."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status


class AzureDevOps:
    """Calls one organization's REST API with the token from `token()`."""

    def __init__(self, token: Callable[[], str | None]):
        self._token = token

    def request(self, method: str, url: str, body: dict | None = None, *,
                missing_ok: bool = False) -> dict[str, Any] | None:
        """The JSON answer ({} when empty); None for a 404 when `missing_ok`."""
        import requests

        try:
            reply = requests.request(method, url, json=body, auth=("", self._token() or ""), timeout=TIMEOUT,
                                     headers=HEADERS, allow_redirects=False)
        except requests.RequestException as exc:
            raise AzureDevOpsError(f"Azure DevOps unreachable: {type(exc).__name__}") from None
        if reply.status_code == 404 and missing_ok:
            return None
        if reply.status_code == 203 or (200 <= reply.status_code < 300 and "json" not in
                                        reply.headers.get("Content-Type", "json")):
            raise AzureDevOpsError(f"Azure DevOps answered {reply.status_code} with a sign-in page for {method} "
                                   f"{urlsplit(url).path}: the token was not accepted", status=401)
        if reply.status_code >= 300:
            raise AzureDevOpsError(f"Azure DevOps answered {reply.status_code} for {method} {urlsplit(url).path}",
                                   status=reply.status_code)
        return reply.json() if reply.content else {}


def repository_url(repo: tuple[str, str, str]) -> str:
    """The REST URL of an Azure Repos repository, from (organization URL, project, repository name or id)."""
    org, project, name = repo
    return f"{org.rstrip('/')}/{quote(project)}/_apis/git/repositories/{quote(name)}"


class PullRequest:
    """One Azure Repos pull request's REST resources (api-version 7.1): the PR itself, its iterations, statuses
    and comment threads. `repo` is (organization URL, project, repository name or id)."""

    API = "api-version=7.1"

    def __init__(self, client: AzureDevOps, repo: tuple[str, str, str], number: int):
        self.client, self.number = client, number
        self.url = f"{repository_url(repo)}/pullRequests/{number}"

    def get(self) -> dict[str, Any] | None:
        """The pull request (GitPullRequest), or None when Azure Repos has no such PR (404)."""
        return self.client.request("GET", f"{self.url}?{self.API}", missing_ok=True)

    def iteration_of(self, commit: str) -> dict[str, Any] | None:
        """The newest iteration (push) whose source commit is `commit` (GitPullRequestIteration: `id`,
        `commonRefCommit`, the merge base of source and target), or None."""
        listing = self.client.request("GET", f"{self.url}/iterations?{self.API}") or {}
        found = [i for i in listing.get("value") or [] if isinstance(i, dict) and isinstance(i.get("id"), int)
                 and (i.get("sourceRefCommit") or {}).get("commitId") == commit]
        return max(found, key=lambda i: i["id"], default=None)

    def post_status(self, *, state: str, description: str, genre: str, name: str, iteration: int | None = None,
                    target_url: str | None = None) -> dict[str, Any]:
        """Create a pull request status (on `iteration` when given; the newest status of a context is shown)."""
        body: dict[str, Any] = {"state": state, "description": description, "context": {"genre": genre, "name": name}}
        if iteration is not None:
            body["iterationId"] = iteration
        if target_url:
            body["targetUrl"] = target_url
        return self.client.request("POST", f"{self.url}/statuses?{self.API}", body) or {}

    def upsert_thread(self, marker: str, prop: str, content: str) -> str:
        """The one comment thread Driftless keeps on the PR, found by the thread property `prop` or by a first
        comment starting with `marker`: created, its first comment updated in place, or left as it is.
        Returns "created", "updated" or "unchanged"."""
        listing = self.client.request("GET", f"{self.url}/threads?{self.API}") or {}
        mine = None
        for thread in listing.get("value") or []:
            if not isinstance(thread, dict):
                continue
            comments = thread.get("comments") or []
            first = comments[0] if comments and isinstance(comments[0], dict) else {}
            if thread.get("isDeleted") or first.get("isDeleted") or not first:
                continue
            if prop in (thread.get("properties") or {}) or str(first.get("content") or "").startswith(marker):
                mine = (thread, first)
                break
        if mine is None:
            self.client.request("POST", f"{self.url}/threads?{self.API}", {
                "comments": [{"parentCommentId": 0, "content": content, "commentType": "text"}],
                "status": "active", "properties": {prop: {"$type": "System.String", "$value": "1"}}})
            return "created"
        thread, first = mine
        if first.get("content") == content:
            return "unchanged"
        self.client.request("PATCH", f"{self.url}/threads/{thread['id']}/comments/{first['id']}?{self.API}",
                            {"content": content})
        return "updated"
