"""Engines: one per kind of Target, behind the protocol in `shared.engines.engine`.

A Target type maps to the engines of the kinds of objects it holds: an `aca` Target runs the
engines of Apps, Jobs and Dapr components as one (`TargetEngine`: one parse, one merged pass); an
`aks` Target has one engine for every Kubernetes kind. Adding a kind is one module in this package
plus one line in `ENGINES` (and its manifest reader in `shared.core.aca_kinds`); nothing outside this
package asks what kind a Target or an object is.
"""
from __future__ import annotations

from typing import Any, Mapping

from shared.config.settings import Settings
from shared.core.aca_kinds import ACA_READERS
from shared.core.manifests import FileCache, Reader, Target
from shared.engines.aks import AksEngine
from shared.engines.container_app_jobs import ContainerAppJobsEngine
from shared.engines.container_apps import ContainerAppsEngine
from shared.engines.dapr_components import DaprComponentsEngine
from shared.engines.engine import Engine, EngineFactory
from shared.engines.target_engine import TargetEngine

EVERY_KIND = "*"
ENGINES: dict[str, Mapping[str, EngineFactory]] = {
    "aca": {                                   # in the order they run: Dapr components before the apps that load them
        "DaprComponent": DaprComponentsEngine,
        "App": ContainerAppsEngine,
        "Job": ContainerAppJobsEngine,
    },
    "aks": {EVERY_KIND: AksEngine},            # one engine for every Kubernetes kind
}
"""Target `type` -> kind of manifest -> the engine that reconciles the objects of that kind."""
READERS: dict[str, Mapping[str, Reader]] = {"aca": ACA_READERS}
"""Target `type` -> the manifest reader of each kind (for types with an engine per kind)."""


def engine_for(settings: Settings, target: Target, *, files: FileCache | None = None, store: Any = None) -> Engine:
    """A new engine for `target`: its type's single engine, or the engines of its kinds as one `TargetEngine`, each
    built with the status store (`store`: what engines that keep an inventory need; None without one). KeyError
    names the types there are when the type has none."""
    try:
        kinds = ENGINES[target.type]
    except KeyError:
        raise KeyError(f"Target {target.name}: no engine for type {target.type!r}; "
                       f"known: {', '.join(sorted(ENGINES))}") from None
    if EVERY_KIND in kinds:
        return kinds[EVERY_KIND](settings, target, files=files)
    files = files or FileCache()
    return TargetEngine(target, {kind: factory(settings, target, files=files, store=store)
                                 for kind, factory in kinds.items()}, READERS[target.type], files)
