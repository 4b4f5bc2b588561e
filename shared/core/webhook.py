"""GitHub push webhooks: signature check and which Targets a push touches. No I/O."""
from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping
from urllib.parse import urlsplit

from shared.core.manifests import Target

MAX_BODY = 5 * 1024 * 1024
"""Larger bodies are refused with 413 (GitHub caps payloads at 25 MB; a push of ours is far smaller)."""
GITHUB_COMMIT_LIST_CAP = 20
"""GitHub lists at most 20 commits in a push payload; a full list may be truncated."""


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """Constant-time check of `X-Hub-Signature-256: sha256=<hex>` over the raw body."""
    if not header or not header.startswith("sha256="):
        return False
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().encode())


def sign(secret: str, body: bytes) -> str:
    """The `X-Hub-Signature-256` value GitHub would send for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class Push:
    """What matters of a push event."""

    ref: str
    after: str
    deleted: bool
    repository: set[str] = field(default_factory=set)
    paths: set[str] | None = None   # None: unknown (no or truncated commit list), so every Target is touched


def parse_push(payload: Mapping[str, Any]) -> Push:
    repo = payload.get("repository") or {}
    names = {str(repo.get(k)).lower().removesuffix(".git") for k in ("full_name", "clone_url", "html_url", "ssh_url")
             if repo.get(k)}
    commits = payload.get("commits")
    paths: set[str] | None = None
    if isinstance(commits, list) and commits and len(commits) < GITHUB_COMMIT_LIST_CAP:
        paths = {p for c in commits if isinstance(c, Mapping)
                 for key in ("added", "modified", "removed") for p in c.get(key) or [] if isinstance(p, str)}
    return Push(ref=str(payload.get("ref", "")), after=str(payload.get("after", "")),
                deleted=bool(payload.get("deleted")), repository=names, paths=paths)


def ignore_reason(push: Push, *, branch: str, repo_url: str) -> str | None:
    """Why this push is not ours to act on, or None."""
    if push.deleted:
        return f"ref {push.ref} was deleted"
    if push.ref.startswith("refs/tags/"):
        return f"tag push ({push.ref})"
    if push.ref != f"refs/heads/{branch}":
        return f"push to {push.ref}, not refs/heads/{branch}"
    wanted = repository_names(repo_url)
    if wanted and push.repository and not wanted & push.repository:
        return f"push to another repository ({', '.join(sorted(push.repository))})"
    return None


def repository_names(repo_url: str) -> set[str]:
    """Names a push's `repository` may carry for our repo: owner/name and its URLs; empty for local paths."""
    parts = urlsplit(repo_url)
    if parts.scheme not in ("http", "https") or not parts.path.strip("/"):
        return set()
    path = parts.path.strip("/").removesuffix(".git").lower()
    host = parts.netloc.rsplit("@", 1)[-1].lower()
    return {path, f"https://{host}/{path}", f"http://{host}/{path}"}


def touched(push: Push, targets: Iterable[Target], *, targets_path: str) -> list[Target]:
    """Targets whose path (or the Target manifests themselves) the push changed; all when unknown."""
    targets = list(targets)
    if push.paths is None or any(_under(p, targets_path) for p in push.paths):
        return targets
    return [t for t in targets if any(_under(p, t.path) for p in push.paths)]


def _under(path: str, folder: str) -> bool:
    folder = folder.strip("/")
    return not folder or path == folder or path.startswith(folder + "/")


def load_json(body: bytes) -> dict[str, Any]:
    """Parse a JSON object or raise ValueError with a short reason."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("body must be a JSON object")
    return data
