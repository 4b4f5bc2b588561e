"""CPU and memory sizes that Azure Container Apps accepts.

On the Consumption profile (workload-profiles environments and, since 2024, Consumption-only
environments) a replica may use 0.25 to 4 vCPU in steps of 0.25, with exactly 2 GiB of
memory per vCPU. The *total over all containers of the app* must be one of these pairs.
"""
from __future__ import annotations

import re

CONSUMPTION_SIZES: tuple[tuple[float, float], ...] = tuple(
    (step / 4, step / 2) for step in range(1, 17)
)
"""(vCPU, GiB) pairs allowed for an app's total on the Consumption profile."""

_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(Gi|Mi|G|M)?\s*$")


def parse_memory(value: object) -> float | None:
    """Return memory in GiB for '1Gi', '512Mi', '1.5G' or a bare number of GiB; None if unreadable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str):
        return None
    match = _MEMORY.match(value)
    if not match:
        return None
    number, unit = float(match.group(1)), match.group(2) or "Gi"
    return number / 1024 if unit in ("Mi", "M") else number


def format_memory(gib: float) -> str:
    """Format GiB the way ARM returns it: 0.5 -> '0.5Gi', 1.0 -> '1Gi'."""
    return f"{round(gib, 4):g}Gi"


def format_cpu(cpu: float) -> str:
    return f"{round(cpu, 4):g}"


def is_allowed(cpu: float, memory_gib: float) -> bool:
    """True when (cpu, memory) is an allowed app total on the Consumption profile."""
    return any(abs(cpu - c) < 1e-6 and abs(memory_gib - m) < 1e-6 for c, m in CONSUMPTION_SIZES)


def allowed_text() -> str:
    """The allowed pairs as one line, for error messages."""
    return ", ".join(f"{format_cpu(c)}/{format_memory(m)}" for c, m in CONSUMPTION_SIZES)


DEDICATED_SIZES: dict[str, tuple[float, float]] = {
    "D4": (4, 16), "D8": (8, 32), "D16": (16, 64), "D32": (32, 128),
    "E4": (4, 32), "E8": (8, 64), "E16": (16, 128), "E32": (32, 256),
    "NC24-A100": (24, 220), "NC48-A100": (48, 440), "NC96-A100": (96, 880),
}
"""(vCPU, GiB) of one node of each Dedicated workload profile type: an app's replica must fit on one node."""


def workload_profile_problem(cpu: float, memory_gib: float, profile: str,
                             profiles: dict[str, str]) -> str:
    """Why an app total of (cpu, memory) cannot run on workload profile `profile` of an environment whose
    profiles are `profiles` (name -> workloadProfileType); "" when it can."""
    kind = next((k for name, k in profiles.items() if name.lower() == profile.lower()), None)
    if kind is None:
        return (f"workload profile '{profile}' is not in the environment (it has: "
                f"{', '.join(sorted(profiles)) or 'no workload profiles'})")
    if kind.lower() == "consumption":
        if is_allowed(cpu, memory_gib):
            return ""
        return (f"{format_cpu(cpu)} vCPU with {format_memory(memory_gib)} is not an allowed combination on the "
                f"Consumption profile '{profile}': {allowed_text()}")
    size = DEDICATED_SIZES.get(kind.upper())
    if size is None:
        return ""                                   # a type this table does not know: ARM decides
    if cpu > size[0] or memory_gib > size[1]:
        return (f"{format_cpu(cpu)} vCPU with {format_memory(memory_gib)} does not fit one node of profile "
                f"'{profile}' ({kind}: {format_cpu(size[0])} vCPU, {format_memory(size[1])})")
    return ""
