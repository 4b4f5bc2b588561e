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
