"""Reconcile jobs: the versioned JSON messages on the `reconcile-jobs` queue."""
from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

SCHEMA = 1
REASONS = ("timer", "push", "manual", "retry")
_FIELDS = {"v", "id", "target", "reason", "requested_at", "revision", "delivery", "app"}


class BadJob(ValueError):
    """A message that can never succeed; it is parked, not retried."""


@dataclass(frozen=True)
class Job:
    """Reconcile one Target (or one app of it). `revision` and `delivery` are informational."""

    target: str
    reason: str
    requested_at: str
    id: str
    revision: str | None = None
    delivery: str | None = None
    app: str | None = None
    v: int = SCHEMA

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None}, sort_keys=True)

    def retried(self) -> "Job":
        """The same work, asked again later (lease busy)."""
        return Job(self.target, "retry", self.requested_at, self.id, self.revision, self.delivery, self.app)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def new_job(target: str, reason: str, *, revision: str | None = None, delivery: str | None = None,
            app: str | None = None) -> Job:
    if reason not in REASONS:
        raise ValueError(f"reason must be one of {', '.join(REASONS)}")
    return Job(target, reason, now_iso(), uuid.uuid4().hex, revision, delivery, app)


def parse_job(body: bytes | str) -> Job:
    """Parse and validate a message body; raise BadJob saying what is wrong."""
    try:
        data: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadJob(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadJob("must be a JSON object")
    if data.get("v") != SCHEMA:
        raise BadJob(f"unsupported schema version {data.get('v')!r}; this worker reads v{SCHEMA}")
    unknown = set(data) - _FIELDS
    if unknown:
        raise BadJob(f"unknown field(s): {', '.join(sorted(unknown))}")
    for name in ("id", "target", "reason", "requested_at"):
        if not isinstance(data.get(name), str) or not data[name]:
            raise BadJob(f"'{name}' is required and must be a string")
    if data["reason"] not in REASONS:
        raise BadJob(f"reason {data['reason']!r} is not one of {', '.join(REASONS)}")
    try:
        datetime.fromisoformat(data["requested_at"])
    except ValueError:
        raise BadJob(f"requested_at {data['requested_at']!r} is not an ISO 8601 time") from None
    for name in ("revision", "delivery", "app"):
        if data.get(name) is not None and not isinstance(data[name], str):
            raise BadJob(f"'{name}' must be a string")
    return Job(**data)
