"""Engines: one per kind of Target, behind the protocol in `shared.engines.engine`.

Adding a kind is one module in this package plus one line in `ENGINES`; nothing outside this
package asks what kind a Target is.
"""
from __future__ import annotations

from shared.config.settings import Settings
from shared.core.manifests import FileCache, Target
from shared.engines.aks import AksEngine
from shared.engines.container_apps import ContainerAppsEngine
from shared.engines.engine import Engine, EngineFactory

ENGINES: dict[str, EngineFactory] = {
    "aca": ContainerAppsEngine,
    "aks": AksEngine,
}
"""Target `type` -> the engine that reconciles it."""


def engine_for(settings: Settings, target: Target, *, files: FileCache | None = None) -> Engine:
    """A new engine for `target`; KeyError names the kinds there are when the type has none."""
    try:
        factory = ENGINES[target.type]
    except KeyError:
        raise KeyError(f"Target {target.name}: no engine for type {target.type!r}; "
                       f"known: {', '.join(sorted(ENGINES))}") from None
    return factory(settings, target, files=files)
