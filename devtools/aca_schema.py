"""Generate shared/core/aca_schema.json from the `azure-mgmt-appcontainers` models.

The product's core may not import the SDK (import contract), yet manifest validation should use
the property names, types and enums the SDK carries rather than hand-written lists. This script
walks the writable properties of ContainerApp, Job and DaprComponent and writes them as plain
JSON; tests/core/test_aca_schema.py fails when the committed file differs from what the installed
SDK gives (run `python -m devtools.aca_schema` to refresh it after an SDK upgrade).
"""
from __future__ import annotations

import json
import sys
import typing
from pathlib import Path
from typing import Any

ROOT_MODELS = ("ContainerApp", "Job", "DaprComponent")
OUTPUT = Path(__file__).resolve().parents[1] / "shared" / "core" / "aca_schema.json"


def _hints(cls: type) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        out.update(klass.__dict__.get("__annotations__", {}))
    return out


def _resolve(annotation: Any, models: Any) -> Any:
    if isinstance(annotation, typing.ForwardRef):
        return eval(annotation.__forward_arg__, {"_models": models})  # noqa: S307 (the SDK's own annotations)
    return annotation


def _type(annotation: Any, models: Any, pending: list[str]) -> Any:
    """A JSON description of one annotation: "str" | "int" | "float" | "bool" | "any" | {"model": N} |
    {"enum": [...]} | {"list": T} | {"map": T}."""
    import enum

    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Union:
        concrete = [_resolve(a, models) for a in args if a is not type(None)]
        enums = [a for a in concrete if isinstance(a, type) and issubclass(a, enum.Enum)]
        if enums:
            return {"enum": sorted(str(v.value) for v in enums[0])}
        if len(concrete) == 1:
            return _type(concrete[0], models, pending)
        return "any"
    if origin is list:
        return {"list": _type(args[0], models, pending)}
    if origin is dict:
        return {"map": _type(args[1], models, pending)}
    if isinstance(annotation, typing.ForwardRef):
        return _type(_resolve(annotation, models), models, pending)
    if isinstance(annotation, str):
        return _type(eval(annotation, {"_models": models, **vars(typing)}), models, pending)  # noqa: S307
    if isinstance(annotation, type):
        import enum as _enum

        if issubclass(annotation, _enum.Enum):
            return {"enum": sorted(str(v.value) for v in annotation)}
        if annotation in (str, int, float, bool):
            return annotation.__name__
        if annotation.__module__.startswith("azure.mgmt.appcontainers"):
            pending.append(annotation.__name__)
            return {"model": annotation.__name__}
    return "any"


def _ranges(doc: str) -> dict[str, list[int | None]]:
    """[minimum, maximum] of integer properties whose description states them ("Minimum value is 1. Maximum
    value is 10.", "Value must be non-negative integer.")."""
    import re

    found: dict[str, list[int | None]] = {}
    for attr, text in re.findall(r":ivar (\w+):(.*?)(?=\n\s*:ivar |\n\s*:vartype |\Z)", doc, re.S):
        text = " ".join(text.split())
        low = re.search(r"Minimum value is (\d+)", text)
        high = re.search(r"Maximum value is (\d+)", text)
        if "must be non-negative integer" in text and not low:
            low = re.match(r"(0)", "0")
        if low or high:
            found[attr] = [int(low.group(1)) if low else None, int(high.group(1)) if high else None]
    return found


def generate() -> dict[str, Any]:
    """{"sdk": version, "models": {Model: {restName: type}}} for every model reachable from the roots."""
    import azure.mgmt.appcontainers as package
    from azure.mgmt.appcontainers import models

    schema: dict[str, dict[str, Any]] = {}
    pending = list(ROOT_MODELS)
    while pending:
        name = pending.pop()
        if name in schema:
            continue
        cls = getattr(models, name)
        cls()                                       # the SDK fills _attr_to_rest_field on first use
        hints, fields, ranges = _hints(cls), {}, _ranges(cls.__doc__ or "")
        for attr, rest in cls._attr_to_rest_field.items():
            if rest._visibility == ["read"]:
                continue                            # read-only: never in a manifest
            kind = _type(hints[attr], models, pending)
            if kind == "int" and attr in ranges:
                kind = {"int": ranges[attr]}
            fields[rest._rest_name] = kind
        schema[name] = dict(sorted(fields.items()))
    return {"sdk": f"azure-mgmt-appcontainers {package.VERSION}", "models": dict(sorted(schema.items()))}


def main() -> int:
    OUTPUT.write_text(json.dumps(generate(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUTPUT.relative_to(Path.cwd()) if OUTPUT.is_relative_to(Path.cwd()) else OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
