"""The writable properties of Microsoft.App resources, as `azure-mgmt-appcontainers` describes them.

`aca_schema.json` beside this module is generated from the SDK's models by
`python -m devtools.aca_schema` (a test keeps it equal to the installed SDK), so the core can
check manifest sections against ARM's own property names, types and enums without importing
the SDK. `check` reports unknown fields (with what is allowed), wrong types and values outside
an enum; rules that span fields (ranges, cross-references) live with the manifest readers.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Callable

Path_ = tuple[Any, ...]
Report = Callable[[Path_, str], None]


CORRECTIONS: dict[tuple[str, str], Any] = {
    ("ContainerAppProbe", "failureThreshold"): {"int": [1, 240]},
}
"""Where ARM accepts more than the SDK's description says: ACA's own default probes use failureThreshold 48
(Readiness) and 240 (Startup); the per-type limits (Liveness 30, Readiness 48, Startup 240) are checked by
`app_sections`."""


@functools.cache
def models() -> dict[str, dict[str, Any]]:
    """Model name -> {ARM property name: type description} (with CORRECTIONS applied)."""
    loaded = json.loads((Path(__file__).with_name("aca_schema.json")).read_text())["models"]
    for (model, name), kind in CORRECTIONS.items():
        loaded[model][name] = kind
    return loaded


def fields(model: str) -> dict[str, Any]:
    return models()[model]


def enum_values(model: str, name: str) -> tuple[str, ...]:
    """The allowed values of an enum property ('' tuple when it is not an enum)."""
    kind = fields(model).get(name)
    return tuple(kind["enum"]) if isinstance(kind, dict) and "enum" in kind else ()


def _kind(node: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "true/false", int: "a number",
            float: "a number", type(None): "null"}.get(type(node), type(node).__name__)


def check(node: Any, kind: Any, path: Path_, report: Report, *, skip: tuple[str, ...] = ()) -> None:
    """Report every place where `node` does not fit `kind` (a model name or a type description).
    Fields in `skip` are left to the caller (Driftless's own shape of them)."""
    if isinstance(kind, str) and kind in models():
        kind = {"model": kind}
    if kind == "any":
        return
    if isinstance(kind, dict) and "model" in kind:
        allowed = fields(kind["model"])
        if not isinstance(node, dict):
            report(path, f"must be a mapping, got {_kind(node)}")
            return
        for key, value in node.items():
            if key in skip:
                continue
            if key not in allowed:
                names = ", ".join(sorted(set(allowed) - set(skip)))
                report(path + (key,), f"unknown field '{key}'; allowed here: {names}")
                continue
            if value is not None:
                check(value, allowed[key], path + (key,), report)
        return
    if isinstance(kind, dict) and "list" in kind:
        if not isinstance(node, list):
            report(path, f"must be a list, got {_kind(node)}")
            return
        for index, item in enumerate(node):
            check(item, kind["list"], path + (index,), report)
        return
    if isinstance(kind, dict) and "map" in kind:
        if not isinstance(node, dict):
            report(path, f"must be a mapping, got {_kind(node)}")
            return
        for key, value in node.items():
            check(value, kind["map"], path + (key,), report)
        return
    if isinstance(kind, dict) and "enum" in kind:
        if not isinstance(node, str) or node.lower() not in {v.lower() for v in kind["enum"]}:
            report(path, f"{node!r} is not allowed; allowed: {', '.join(kind['enum'])}")
        return
    if isinstance(kind, dict) and "int" in kind:
        low, high = kind["int"]
        if isinstance(node, bool) or not isinstance(node, int):
            report(path, f"must be a whole number, got {node!r}")
        elif (low is not None and node < low) or (high is not None and node > high):
            bounds = (f"from {low} to {high}" if low is not None and high is not None else
                      f"at least {low}" if low is not None else f"at most {high}")
            report(path, f"must be a whole number {bounds} (ARM's range), got {node}")
        return
    if kind == "bool" and not isinstance(node, bool):
        report(path, f"must be true or false, got {_kind(node)}")
    elif kind == "int" and (isinstance(node, bool) or not isinstance(node, int)):
        report(path, f"must be a whole number, got {node!r}")
    elif kind == "float" and (isinstance(node, bool) or not isinstance(node, (int, float))):
        report(path, f"must be a number, got {node!r}")
    elif kind == "str" and not isinstance(node, str):
        report(path, f"must be a string, got {_kind(node)}")


def canonical_enum(model: str, name: str, value: str) -> str:
    """`value` in the casing ARM documents (ARM compares enums case-insensitively)."""
    for allowed in enum_values(model, name):
        if allowed.lower() == str(value).lower():
            return allowed
    return value
