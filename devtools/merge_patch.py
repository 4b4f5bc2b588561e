"""RFC 7386 JSON merge patch, as ARM (Container Apps PATCH) and the Kubernetes API (merge-patch+json) apply it."""
from __future__ import annotations

import copy
from typing import Any


def merge_patch(target: Any, patch: Any) -> Any:
    """`patch` merged onto `target`: mappings merge key by key, null deletes a key, anything else (a list too)
    replaces. Neither input is modified."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result
