"""GitHub's REST API (PyGithub): one client factory, one error mapping, App installation tokens,
and the registration of Driftless's webhook.

Every call that can fail goes through `call`: a network failure or a 5xx becomes `GitHubError`
with `retryable=True` (the caller's queue retries it), any other refusal a `GitHubError` with
the HTTP status. Tokens are never part of an error message.
"""
from __future__ import annotations

import secrets as tokens
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Mapping, TypeVar

if TYPE_CHECKING:
    from shared.adapters.key_vault import Secrets
    from shared.config.settings import Settings

TIMEOUT = 10
DEFAULT_EVENTS = ("push", "pull_request", "check_run")
"""What `driftless webhook register` subscribes to: pushes reconcile, pull requests and check re-runs preview."""
T = TypeVar("T")
TokenProvider = Callable[[], "str | None"]


class GitHubError(RuntimeError):
    """GitHub refused a request (`status`) or could not be reached (`status` None); `retryable` when a
    later try may succeed (network, 5xx, a rate limit: then `retry_after` holds GitHub's wait in seconds)."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False,
                 retry_after: int | None = None):
        super().__init__(message)
        self.status, self.retryable, self.retry_after = status, retryable, retry_after


def rate_limited(status: int, headers: Mapping[str, str] | None) -> int | None:
    """Seconds to wait when a 403 or 429 is one of GitHub's rate limits (primary: `x-ratelimit-remaining: 0`
    until `x-ratelimit-reset`; secondary: `retry-after`), else None. A secondary limit without `retry-after`
    asks for at least a minute."""
    if status not in (403, 429):
        return None
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    try:
        if headers.get("retry-after"):
            return max(int(headers["retry-after"]), 0)
        if headers.get("x-ratelimit-remaining") == "0":
            return max(int(headers.get("x-ratelimit-reset", "0")) - int(time.time()), 0)
    except ValueError:
        return 60
    return 60 if status == 429 else None


def client(api_url: str, token: str | None):
    """A PyGithub client: lazy objects, a 10 s timeout, no retries of its own (queues retry)."""
    from github import Auth, Github

    return Github(auth=Auth.Token(token) if token else None, base_url=api_url, timeout=TIMEOUT, retry=0, lazy=True)


def call(action: Callable[[], T], what: str = "") -> T:
    """Run one GitHub call, mapping its failures to GitHubError (see the module docstring)."""
    from github import GithubException

    suffix = f" for {what}" if what else ""
    try:
        return action()
    except GithubException as exc:
        wait = rate_limited(exc.status, exc.headers)
        if wait is not None:
            raise GitHubError(f"GitHub rate limit{suffix}: retry after {wait} s", status=exc.status,
                              retryable=True, retry_after=wait) from None
        raise GitHubError(f"GitHub answered {exc.status}{suffix}", status=exc.status,
                          retryable=exc.status >= 500) from None
    except OSError as exc:
        raise GitHubError(f"GitHub unreachable{suffix}: {type(exc).__name__}", retryable=True) from None


class InstallationToken:
    """Callable returning a valid installation token, renewed five minutes before it expires."""

    def __init__(self, app_id: str, private_key: str, installation_id: str, api_url: str = "https://api.github.com"):
        self._app_id, self._key, self._installation = app_id, private_key, int(installation_id)
        self._api_url = api_url
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"InstallationToken(app_id={self._app_id!r}, installation_id={self._installation})"

    def __call__(self) -> str:
        with self._lock:
            if self._token is None or time.time() > self._expires - 300:
                from github import Auth, GithubIntegration

                integration = GithubIntegration(auth=Auth.AppAuth(self._app_id, self._key), base_url=self._api_url)
                grant = integration.get_access_token(self._installation)
                self._token, self._expires = grant.token, grant.expires_at.timestamp()
            return self._token


class TokenUnavailable(RuntimeError):
    """The configured GitHub App has no private key in Key Vault."""


_installations: dict[tuple[str, str, str], InstallationToken] = {}
_installations_lock = threading.Lock()


def token_provider(settings: "Settings", secrets: "Secrets") -> TokenProvider:
    """A GitHub App installation token when an app is configured, else the Git token secret
    (PAT or Azure DevOps token), else None. Used for Git over HTTPS and for GitHub's REST API."""
    if not (settings.github_app_id and settings.github_app_installation_id):
        return secrets.git_token

    def app_token() -> str | None:
        key = secrets.github_app_private_key()
        if not key:
            raise TokenUnavailable(f"GitHub App {settings.github_app_id} is configured but the private key secret "
                                   f"{settings.github_app_key_name} is empty")
        ident = (str(settings.github_app_id), str(settings.github_app_installation_id), settings.github_api_url)
        with _installations_lock:
            if ident not in _installations:
                _installations[ident] = InstallationToken(ident[0], key, ident[1], ident[2])
            installation = _installations[ident]
        return installation()

    return app_token
def _matches(hook: Any, url: str, events: list[str]) -> bool:
    config = hook.config or {}
    return (config.get("url") == url and sorted(hook.events or []) == sorted(events) and hook.active
            and config.get("content_type") == "json" and str(config.get("insecure_ssl", "0")) == "0")


def find(repo, url: str):
    return next((hook for hook in repo.get_hooks() if (hook.config or {}).get("url") == url), None)


def register(*, repo_name: str, url: str, events: list[str], secrets: Secrets, secret_name: str,
             api_url: str, token: str | None, dry_run: bool = False) -> dict[str, Any]:
    """Create or update the hook; returns {repo, url, events, action, id} (action: create|update|unchanged)."""
    if not url.startswith("https://"):
        raise ValueError(f"the webhook URL must be HTTPS, got {url}")
    repo = client(api_url, token).get_repo(repo_name, lazy=False)
    hook = find(repo, url)
    secret = secrets.get(secret_name)
    generate = secret is None
    if hook is not None and _matches(hook, url, events) and not generate:
        action = "unchanged"
    else:
        action = "create" if hook is None else "update"
    result = {"repo": repo_name, "url": url, "events": sorted(events), "action": action,
              "id": getattr(hook, "id", None), "secret": "generated and stored in Key Vault" if generate else
              f"from Key Vault secret {secret_name}", "dryRun": dry_run}
    if dry_run or action == "unchanged":
        return result
    if generate:
        secret = tokens.token_urlsafe(32)
        secrets.put(secret_name, secret)
    config = {"url": url, "content_type": "json", "insecure_ssl": "0", "secret": secret}
    if hook is None:
        hook = repo.create_hook("web", config, events=list(events), active=True)
    else:
        hook.edit("web", config, events=list(events), active=True)
    result["id"] = hook.id
    return result


def list_hooks(*, repo_name: str, api_url: str, token: str | None) -> list[dict[str, Any]]:
    repo = client(api_url, token).get_repo(repo_name, lazy=False)
    return [{"id": h.id, "url": (h.config or {}).get("url"), "events": h.events, "active": h.active,
             "lastResponse": (h.last_response.status if h.last_response else None)} for h in repo.get_hooks()]


def ping(*, repo_name: str, url: str, api_url: str, token: str | None) -> int:
    """Ask GitHub to send a ping to the hook registered for `url`; returns its id."""
    repo = client(api_url, token).get_repo(repo_name, lazy=False)
    hook = find(repo, url)
    if hook is None:
        raise LookupError(f"no webhook for {url} on {repo_name}; run `driftless webhook register` first")
    hook.ping()
    return hook.id


# --- Checks API and PR comments (plan previews) ------------------------------------------------
def check_runs(repo, sha: str, name: str) -> list[Any]:
    """Check runs named `name` on commit `sha` (every page), newest first."""
    runs = call(lambda: list(repo.get_commit(sha).get_check_runs(check_name=name, filter="all")),
                f"check runs of {sha[:12]}")
    return sorted(runs, key=lambda r: r.id, reverse=True)


def create_check_run(repo, *, name: str, head_sha: str, external_id: str, output: Mapping[str, Any] | None = None,
                     conclusion: str | None = None):
    """A new check run on `head_sha`: `in_progress`, or `completed` with `conclusion` and `output`."""
    from datetime import datetime, timezone

    fields: dict[str, Any] = {"external_id": external_id, "started_at": datetime.now(timezone.utc)}
    if conclusion:
        fields.update(status="completed", conclusion=conclusion, completed_at=datetime.now(timezone.utc))
    else:
        fields["status"] = "in_progress"
    if output is not None:
        fields["output"] = dict(output)
    return call(lambda: repo.create_check_run(name=name, head_sha=head_sha, **fields), f"a check run on {head_sha[:12]}")


def complete_check_run(run, *, conclusion: str, output: Mapping[str, Any]) -> None:
    """Complete `run` with `conclusion` and `output` (its `annotations`, at most 50, are appended to the run's)."""
    from datetime import datetime, timezone

    call(lambda: run.edit(status="completed", conclusion=conclusion, completed_at=datetime.now(timezone.utc),
                          output=dict(output)), f"check run {run.id}")


def create_status(repo, sha: str, *, state: str, context: str, description: str,
                  target_url: str | None = None) -> None:
    """A commit status on `sha` (state error, failure, pending or success; description at most 140 characters):
    what a plan preview posts when the token may not create check runs."""
    commit = repo.get_commit(sha)
    call(lambda: commit.create_status(state, target_url or "", description[:140], context),
         f"a commit status on {sha[:12]}")


def merge_base(repo, base: str, head: str) -> str:
    """The merge base of `base` (a branch) and `head` (a commit), from GitHub's compare API."""
    return call(lambda: repo.compare(base, head).merge_base_commit.sha, f"the merge base of {base} and {head[:12]}")


def upsert_comment(repo, number: int, marker: str, body: str) -> str:
    """The one issue comment of `number` whose body starts with `marker`: created, updated in place, or left as it
    is; returns "created", "updated" or "unchanged"."""
    issue = repo.get_issue(number)
    mine = call(lambda: next((c for c in issue.get_comments() if (c.body or "").startswith(marker)), None),
                f"comments of #{number}")
    if mine is None:
        call(lambda: issue.create_comment(body), f"a comment on #{number}")
        return "created"
    if mine.body == body:
        return "unchanged"
    call(lambda: mine.edit(body), f"comment {mine.id}")
    return "updated"
