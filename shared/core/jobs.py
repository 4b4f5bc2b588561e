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
    data = read_message(body, SCHEMA, _FIELDS, required=("id", "target", "reason", "requested_at"),
                        optional=("revision", "delivery", "app"), reasons=REASONS)
    return Job(**data)


def versioned(body: bytes | str, schema: int, what: str = "job") -> dict[str, Any]:
    """The JSON object of a queue message of version `schema` (field `v`); BadJob naming `what` otherwise."""
    try:
        data: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadJob(f"{what} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadJob(f"{what} must be a JSON object")
    if data.get("v") != schema:
        raise BadJob(f"{what}: unsupported schema version {data.get('v')!r}; this worker reads v{schema}")
    return data


def read_message(body: bytes | str, schema: int, fields: set[str], *, required: tuple[str, ...],
                 optional: tuple[str, ...], reasons: tuple[str, ...]) -> dict[str, Any]:
    """The JSON object of a versioned queue message, checked: schema version, no unknown field, the
    `required` strings present and non-empty, the `optional` ones strings when present, `reason` one of
    `reasons`, `requested_at` ISO 8601. Raises BadJob saying what is wrong."""
    data = versioned(body, schema)
    unknown = set(data) - fields
    if unknown:
        raise BadJob(f"unknown field(s): {', '.join(sorted(unknown))}")
    for name in required:
        if not isinstance(data.get(name), str) or not data[name]:
            raise BadJob(f"'{name}' is required and must be a string")
    if data["reason"] not in reasons:
        raise BadJob(f"reason {data['reason']!r} is not one of {', '.join(reasons)}")
    try:
        datetime.fromisoformat(data["requested_at"])
    except ValueError:
        raise BadJob(f"requested_at {data['requested_at']!r} is not an ISO 8601 time") from None
    for name in optional:
        if data.get(name) is not None and not isinstance(data[name], str):
            raise BadJob(f"'{name}' must be a string")
    return data
