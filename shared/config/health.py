"""Health report for `GET /api/health`: liveness and configuration sanity, no secret values."""
from __future__ import annotations

from typing import Any

from shared import __version__
from shared.config.settings import Settings, SettingsError

REQUIRED = ("DRIFTLESS_REPO_URL",)
DEFAULT_TARGET = ("AZURE_SUBSCRIPTION_ID", "DRIFTLESS_RESOURCE_GROUP", "DRIFTLESS_ACA_ENVIRONMENT")


def report() -> dict[str, Any]:
    """`status` is ok when settings parse and the repository is configured; problems name settings only."""
    problems: list[str] = []
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        return {"status": "misconfigured", "version": __version__, "problems": exc.problems}
    for name in REQUIRED:
        try:
            settings.require(name)
        except SettingsError as exc:
            problems += exc.problems
    missing_default = [n for n in DEFAULT_TARGET if not _is_set(settings, n)]
    return {
        "status": "misconfigured" if problems else "ok",
        "version": __version__,
        "problems": problems,
        "defaultTarget": "configured" if not missing_default else f"not configured (unset: {', '.join(missing_default)}); "
                                                                   "Target manifests in Git are required",
        "instance": settings.instance,
        "branch": settings.branch,
    }


def _is_set(settings: Settings, name: str) -> bool:
    try:
        settings.require(name)
        return True
    except SettingsError:
        return False
