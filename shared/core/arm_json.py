"""Comparing and writing ARM JSON that Git owns only in part. No I/O.

Three rules make drift honest:
- Lists of named things (volumes, scale rules, probes, traffic, ...) are compared by their key, so
  order never drifts; a list Git declares is Git's whole (an item only Azure has is drift), except
  probes, which Git owns per type (ACA adds a default probe for each type Git leaves out).
- Inside an item or object, only the fields Git declares are compared: a default ARM fills in for a
  field Git does not set is never drift.
- Enum values are compared in ARM's casing (`app_sections.canonical` puts both sides in it).
Writes overlay Git's fields onto the live JSON, so what Git does not declare survives a PATCH.
"""
from __future__ import annotations

from typing import Any, Callable

KEYS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "volumes": lambda v: v.get("name"),
    "serviceBinds": lambda v: v.get("name"),
    "rules": lambda v: v.get("name"),
    "customDomains": lambda v: v.get("name"),
    "ipSecurityRestrictions": lambda v: v.get("name"),
    "httpHeaders": lambda v: v.get("name"),
    "additionalPortMappings": lambda v: v.get("targetPort"),
    "identitySettings": lambda v: str(v.get("identity", "")).lower(),
    "probes": lambda v: str(v.get("type", "")).lower(),
    "volumeMounts": lambda v: v.get("mountPath"),
    "auth": lambda v: v.get("triggerParameter"),
    "traffic": lambda v: v.get("label") or ("latest" if v.get("latestRevision") else v.get("revisionName")),
}
"""The identity of an item in each named list, by the list's ARM property name."""
PER_ITEM = ("probes",)
"""Named lists Git owns item by item rather than whole."""


class Named(dict):
    """A named list as a mapping key -> item; `whole` when Git owns the entire list."""

    def __init__(self, items: dict[Any, Any], *, whole: bool):
        super().__init__(items)
        self.whole = whole


def view(value: Any, name: str = "") -> Any:
    """A canonical view of ARM JSON: named lists (by their property `name`) become `Named` mappings."""
    if isinstance(value, dict):
        return {k: view(v, k) for k, v in value.items()}
    if isinstance(value, list) and name in KEYS and all(isinstance(i, dict) for i in value):
        return Named({KEYS[name](i): view(i) for i in value}, whole=name not in PER_ITEM)
    if isinstance(value, list):
        return [view(v) for v in value]
    return value


def project(live: Any, desired: Any) -> Any:
    """`live` (a view) restricted to what `desired` (a view) declares; items only `live` has stay in a `Named`
    that Git owns whole."""
    if isinstance(desired, Named):
        live = live if isinstance(live, dict) else {}
        keys = list(desired) + [k for k in live if k not in desired and desired.whole]
        return {k: project(live.get(k), desired.get(k)) if k in desired else live[k] for k in keys}
    if isinstance(desired, dict):
        live = live if isinstance(live, dict) else {}
        return {k: project(live.get(k), v) for k, v in desired.items()}
    return live


def overlay(live: Any, desired: Any, name: str = "") -> Any:
    """ARM JSON to send: `desired` laid over `live`, keeping live fields Git does not declare; named lists are
    merged by key (items Git does not list are dropped, except for lists Git owns per item)."""
    if isinstance(desired, dict):
        base = dict(live) if isinstance(live, dict) else {}
        for key, value in desired.items():
            base[key] = overlay(base.get(key), value, key)
        return base
    if isinstance(desired, list) and name in KEYS and all(isinstance(i, dict) for i in desired):
        key = KEYS[name]
        current = {key(i): i for i in live or [] if isinstance(i, dict)} if isinstance(live, list) else {}
        merged = [overlay(current.get(key(item)), item) for item in desired]
        if name in PER_ITEM:
            wanted = {key(i) for i in desired}
            merged += [i for k, i in current.items() if k not in wanted]
        return merged
    return desired


def at(resource: dict[str, Any], path: tuple[str, ...]) -> Any:
    """The value at `path` in `resource` (None when any step is missing)."""
    node: Any = resource
    for step in path:
        if not isinstance(node, dict):
            return None
        node = node.get(step)
    return node


def put(body: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """Set `value` at `path` in `body`, creating the mappings on the way."""
    node = body
    for step in path[:-1]:
        node = node.setdefault(step, {})
    node[path[-1]] = value
