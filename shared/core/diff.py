"""Field-level differences between two canonical views (see `container_app.desired_view`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Change:
    """One drifted field: where, what Git wants, what is live (None when absent)."""

    path: str
    desired: Any
    live: Any

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "desired": self.desired, "live": self.live}


def diff(desired: Any, live: Any, path: str = "") -> list[Change]:
    """Compare recursively; mappings by key (so order never drifts), everything else by value."""
    if isinstance(desired, dict) and isinstance(live, dict):
        changes: list[Change] = []
        for key in list(desired) + [k for k in live if k not in desired]:
            changes += diff(desired.get(key), live.get(key), _join(path, key))
        return changes
    return [] if desired == live else [Change(path, desired, live)]


def _join(path: str, key: Any) -> str:
    if not path:
        return str(key)
    if path.endswith(("containers", "initContainers", "env", "registries")):
        return f"{path}[{key}]"
    return f"{path}.{key}"
