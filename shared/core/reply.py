"""The answer of an HTTP route, before function_app.py turns it into an HttpResponse."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Reply:
    """An HTTP answer: status and JSON body."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)
