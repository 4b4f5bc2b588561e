"""The answer of an HTTP route, before function_app.py turns it into an HttpResponse."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Reply:
    """An HTTP answer: status and JSON body."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)


ECHO_LIMIT = 100
"""At most this many characters of a caller's input are echoed back in a reply (a 3 MB name is not)."""


def shown(value: object, limit: int = ECHO_LIMIT) -> str:
    """`value` quoted for a reply, cut to `limit` characters with a note of its full length."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"
