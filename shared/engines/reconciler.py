"""One reconcile pass of a Target: Git at a revision -> the Target's engine -> plan -> apply.

The Reconciler reads the repository (Targets, then each Target's manifests, parsed once per
revision and path) and hands the rest to the engine of the Target's kind. A pass is idempotent
and safe to run again at any time. Reading the source or the live state failing raises (the
caller retries the whole pass); anything that goes wrong with one app becomes that app's
`failed` outcome and never stops the others.
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Any, Iterable, Mapping

from shared.adapters.git import GitSource
from shared.config.settings import Settings
from shared.core.manifests import FileCache, Problem, Target, load_targets
from shared.core.outcome import PassResult
from shared.core.plan import Plan
from shared.engines import engine_for
from shared.engines.engine import Engine, Progress

log = logging.getLogger("driftless.reconcile")

_PARSE_CACHE_SIZE = 32


class Reconciler:
    """Reconciles the Targets of one repository. Holds the Git source, the parse caches and one engine per Target."""

    def __init__(self, settings: Settings, *, source: GitSource | None = None):
        self.settings = settings
        self.source = source or GitSource(str(settings.repo_url), settings.branch)
        self.files = FileCache()
        self._parsed: OrderedDict[tuple[Any, ...], tuple[list, list[Problem]]] = OrderedDict()
        self._engines: dict[str, Engine] = {}
        self._lock = threading.Lock()

    def targets(self, revision: str) -> tuple[list[Target], list[Problem]]:
        """Targets declared under DRIFTLESS_TARGETS_PATH at `revision`, else the default Target from settings."""
        files = self.source.read(self.settings.targets_path, revision)
        if not files:
            return [self.settings.default_target()], []
        return load_targets(files, default_subscription=self.settings.subscription_id)

    def targets_at_head(self) -> tuple[str, list[Target]]:
        """The branch head and the valid Targets declared there; invalid Target manifests are logged."""
        revision = self.source.head()
        targets, problems = self.targets(revision)
        for problem in problems:
            log.error("invalid Target manifest: %s", problem)
        return revision, targets

    def engine(self, target: Target) -> Engine:
        """The engine of `target`, kept while the Target's definition is unchanged."""
        with self._lock:
            engine = self._engines.get(target.name)
            if engine is None or engine.target != target:
                engine = self._engines[target.name] = engine_for(self.settings, target, files=self.files)
            return engine

    def desired(self, target: Target, revision: str) -> tuple[list, list[Problem]]:
        """The valid desired objects under the Target's path and the problems; parsed once per revision, path and
        Target definition (for Apps, only the files whose content is new are parsed)."""
        key = (revision, target.path, target.type, target.namespace)
        with self._lock:
            if key in self._parsed:
                self._parsed.move_to_end(key)
                return self._parsed[key]
        files = self.source.read(target.path, revision)
        if files is None and not target.allow_empty:
            parsed: tuple[list, list[Problem]] = ([], [Problem(
                target.path, f"path '{target.path}' does not exist at {revision[:12]}; treated as unreadable, "
                             "so nothing is pruned (set allowEmpty: true on the Target to allow an empty path)")])
        else:
            parsed = self.engine(target).load(files or {})
        with self._lock:
            self._parsed[key] = parsed
            while len(self._parsed) > _PARSE_CACHE_SIZE:
                self._parsed.popitem(last=False)
        return parsed

    def plan(self, target: Target, revision: str, *, only: str | None = None, suspended: Iterable[str] = (),
             backoff: Mapping[str, str] | None = None) -> Plan:
        """Plan one Target at `revision` against the live state (reads only)."""
        desired, problems = self.desired(target, revision)
        return self.engine(target).plan(revision, desired, problems, only=only, suspended=suspended, backoff=backoff)

    def reconcile(self, target: Target, revision: str, *, dry_run: bool = False, only: str | None = None,
                  suspended: Iterable[str] = (), backoff: Mapping[str, str] | None = None,
                  progress: Progress | None = None) -> PassResult:
        """Plan and apply one Target; with `dry_run` nothing is written."""
        desired, problems = self.desired(target, revision)
        return self.engine(target).reconcile(revision, desired, problems, dry_run=dry_run, only=only,
                                             suspended=suspended, backoff=backoff, progress=progress)
