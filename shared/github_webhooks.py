"""Register Driftless's push webhook on a GitHub repository (PyGithub), idempotently.

The hook is found by its URL and created or updated with `content_type: json`, `insecure_ssl: 0`
and the wanted events. Its secret comes from Key Vault; when the vault has none, a strong one is
generated and stored there first (never printed). GitHub never returns a hook's secret, so an
existing hook whose URL, events and settings already match is left unchanged.
"""
from __future__ import annotations

import secrets as tokens
from typing import Any

from shared.secrets import Secrets

DEFAULT_EVENTS = ("push",)


def _github(api_url: str, token: str | None):
    from github import Auth, Github

    return Github(auth=Auth.Token(token) if token else None, base_url=api_url, timeout=10, retry=0)


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
    repo = _github(api_url, token).get_repo(repo_name)
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
    repo = _github(api_url, token).get_repo(repo_name)
    return [{"id": h.id, "url": (h.config or {}).get("url"), "events": h.events, "active": h.active,
             "lastResponse": (h.last_response.status if h.last_response else None)} for h in repo.get_hooks()]


def ping(*, repo_name: str, url: str, api_url: str, token: str | None) -> int:
    """Ask GitHub to send a ping to the hook registered for `url`; returns its id."""
    repo = _github(api_url, token).get_repo(repo_name)
    hook = find(repo, url)
    if hook is None:
        raise LookupError(f"no webhook for {url} on {repo_name}; run `driftless webhook register` first")
    hook.ping()
    return hook.id
