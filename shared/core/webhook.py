"""GitHub webhooks: signature check, the one JSON intake of every HTTP route, the shape of the events
Driftless reads, and which Targets a push touches. No I/O."""
from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping
from urllib.parse import urlsplit

from shared.core.manifests import Target
from shared.core.reply import shown

MAX_BODY = 5 * 1024 * 1024
"""Larger bodies are refused with 413 (GitHub caps payloads at 25 MB; a push of ours is far smaller)."""
GITHUB_COMMIT_LIST_CAP = 20
"""GitHub lists at most 20 commits in a push payload; a full list may be truncated."""
MAX_DEPTH = 64
"""JSON bodies nested deeper are refused with 400 (GitHub, Flux and Argo CD bodies are under 10 levels)."""
DELIVERY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
"""An `X-GitHub-Delivery` Driftless accepts: GitHub sends a GUID. Used as a Table RowKey as is, so it must
never hold what Azure Tables refuses (`/ \\ # ?`, control characters, more than 1 KiB)."""


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """Constant-time check of `X-Hub-Signature-256: sha256=<hex>` over the raw body."""
    if not header or not header.startswith("sha256="):
        return False
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().encode())


def sign(secret: str, body: bytes) -> str:
    """The `X-Hub-Signature-256` value GitHub would send for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class BadEvent(ValueError):
    """A signed event whose fields Driftless reads have the wrong type or shape; the message names the field."""


SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
"""A full commit id (SHA-1 or SHA-256), lower case."""
_TEXT_LIMIT = 1024
# field -> (JSON type, extra check); None is allowed for every field (GitHub sends null for e.g. head_commit).
_Spec = dict[str, tuple[type, str]]
_REPOSITORY: _Spec = {"full_name": (str, ""), "clone_url": (str, ""), "html_url": (str, ""), "ssh_url": (str, "")}
_PUSH: _Spec = {"ref": (str, ""), "before": (str, "sha"), "after": (str, "sha"), "created": (bool, ""),
                "deleted": (bool, ""), "forced": (bool, ""), "commits": (list, ""), "head_commit": (dict, ""),
                "pusher": (dict, ""), "sender": (dict, "")}
_COMMIT: _Spec = {"id": (str, ""), "added": (list, "paths"), "modified": (list, "paths"), "removed": (list, "paths")}
_WORKFLOW_RUN: _Spec = {"action": (str, ""), "workflow_run": (dict, "")}
_RUN: _Spec = {"head_branch": (str, ""), "head_sha": (str, "sha"), "conclusion": (str, ""), "status": (str, "")}
_JSON_TYPES = {str: "a string", bool: "true or false", list: "an array", dict: "an object"}


def _json_type(value: Any) -> str:
    return next((name for kind, name in _JSON_TYPES.items() if isinstance(value, kind) and
                 not (kind is not bool and isinstance(value, bool))), "null" if value is None else "a number")


def _check(data: Mapping[str, Any], spec: _Spec, where: str) -> None:
    for name, (kind, rule) in spec.items():
        value = data.get(name)
        if value is None:
            continue
        label = f"{where}{name}"
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise BadEvent(f"{label} must be {_JSON_TYPES[kind]}, not {_json_type(value)}")
        if kind is str and len(value) > _TEXT_LIMIT:
            raise BadEvent(f"{label} is longer than {_TEXT_LIMIT} characters")
        if rule == "sha" and not SHA.fullmatch(value):
            raise BadEvent(f"{label} must be a commit SHA (40 or 64 lowercase hex digits)")
        if rule == "paths" and not all(isinstance(p, str) for p in value):
            raise BadEvent(f"{label} must be an array of file paths (strings)")


def check_event(event: str, payload: Mapping[str, Any]) -> None:
    """Raise BadEvent when a field Driftless reads from a `push` or `workflow_run` (or any event's
    `repository`) has the wrong type; afterwards `parse_push` and the image update intake can trust them."""
    repository = payload.get("repository")
    if repository is not None:
        if not isinstance(repository, dict):
            raise BadEvent(f"repository must be an object, not {_json_type(repository)}")
        _check(repository, _REPOSITORY, "repository.")
    if event == "push":
        _check(payload, _PUSH, "")
        for number, commit in enumerate(payload.get("commits") or []):
            if not isinstance(commit, dict):
                raise BadEvent(f"commits[{number}] must be an object, not {_json_type(commit)}")
            _check(commit, _COMMIT, f"commits[{number}].")
    elif event == "workflow_run":
        _check(payload, _WORKFLOW_RUN, "")
        _check(payload.get("workflow_run") or {}, _RUN, "workflow_run.")


def check_delivery(delivery: str | None) -> None:
    """Raise BadEvent unless `delivery` (the X-GitHub-Delivery header) is absent, empty or a GUID-like id."""
    if delivery and not DELIVERY.fullmatch(delivery):
        raise BadEvent("X-GitHub-Delivery must be an id of at most 128 letters, digits, '.', '_', ':' or '-' "
                       "(GitHub sends a GUID)")


@dataclass
class Push:
    """What matters of a push event (after `check_event`)."""

    ref: str
    after: str | None
    deleted: bool
    repository: set[str] = field(default_factory=set)
    paths: set[str] | None = None   # None: unknown (no or truncated commit list), so every Target is touched


def parse_push(payload: Mapping[str, Any]) -> Push:
    """The push of a payload `check_event` accepted (fields of another type are read as absent)."""
    repo = payload.get("repository") if isinstance(payload.get("repository"), Mapping) else {}
    names = {repo[k].lower().removesuffix(".git") for k in ("full_name", "clone_url", "html_url", "ssh_url")
             if isinstance(repo.get(k), str) and repo[k]}
    commits = payload.get("commits")
    paths: set[str] | None = None
    if isinstance(commits, list) and commits and len(commits) < GITHUB_COMMIT_LIST_CAP:
        paths = {p for c in commits if isinstance(c, Mapping) for key in ("added", "modified", "removed")
                 for p in (c.get(key) if isinstance(c.get(key), list) else []) if isinstance(p, str)}
    ref, after = payload.get("ref"), payload.get("after")
    return Push(ref=ref if isinstance(ref, str) else "", after=after if isinstance(after, str) and after else None,
                deleted=payload.get("deleted") is True, repository=names, paths=paths)


def ignore_reason(push: Push, *, branch: str, repo_url: str) -> str | None:
    """Why this push is not ours to act on, or None."""
    if push.deleted:
        return f"ref {shown(push.ref)} was deleted"
    if push.ref.startswith("refs/tags/"):
        return f"tag push ({shown(push.ref)})"
    if push.ref != f"refs/heads/{branch}":
        return f"push to {shown(push.ref)}, not refs/heads/{branch}"
    wanted = repository_names(repo_url)
    if wanted and push.repository and not wanted & push.repository:
        return f"push to another repository ({shown(', '.join(sorted(push.repository)))})"
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
    """The one JSON intake of every HTTP route: parse a JSON object or raise ValueError with a short reason.
    Refused: invalid UTF-8 or JSON, NaN/Infinity, a top level other than an object, nesting deeper than
    MAX_DEPTH (checked without recursion, so a 100,000-deep body is a 400, never a RecursionError)."""
    try:
        data = json.loads(body, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError(f"body is nested more than {MAX_DEPTH} levels deep") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("body must be a JSON object")
    if _depth(data) > MAX_DEPTH:
        raise ValueError(f"body is nested more than {MAX_DEPTH} levels deep")
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _depth(value: Any) -> int:
    """How deeply arrays and objects nest in `value` (iteratively)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            if level <= MAX_DEPTH:
                stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest
