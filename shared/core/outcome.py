"""What a reconcile pass did, per app and in total. Everything is JSON-serialisable."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

ACTIONS = ("created", "updated", "unchanged", "deleted", "suspended", "skipped", "failed")


@dataclass
class Outcome:
    """One app's result. `healthy` is None when health was not observed (skipped, failed early)."""

    app: str
    action: str
    reason: str = ""
    diff: list[dict[str, Any]] = field(default_factory=list)
    revision: str | None = None
    duration_ms: int = 0
    healthy: bool | None = None
    health_reason: str = ""

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown action {self.action!r}; allowed: {', '.join(ACTIONS)}")

    @property
    def ok(self) -> bool:
        return self.action != "failed" and self.healthy is not False


@dataclass
class PassResult:
    """A whole pass over one Target."""

    target: str
    revision: str | None
    dry_run: bool
    started_at: str
    duration_ms: int = 0
    degraded: bool = False
    problems: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    prune: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and not self.problems and all(o.ok for o in self.outcomes)

    @property
    def unreadable_files(self) -> list[str]:
        """Files with a problem that names no app (a YAML syntax error, not a manifest, a missing path):
        nothing in them was applied, and no app outcome says so."""
        return sorted({p["file"] for p in self.problems if not p.get("app")})

    def summary(self) -> dict[str, int]:
        """Outcomes per action, plus `unhealthy`; `failed` also counts each unreadable file."""
        counts = {action: 0 for action in ACTIONS}
        for outcome in self.outcomes:
            counts[outcome.action] += 1
        counts["failed"] += len(self.unreadable_files)
        counts["unhealthy"] = sum(1 for o in self.outcomes if o.healthy is False)
        return counts

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["summary"] = self.summary()
        data["unreadable_files"] = self.unreadable_files
        data["ok"] = self.ok
        return data
