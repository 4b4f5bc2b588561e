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
from dataclasses import replace
from typing import Any, Iterable, Mapping

from shared.adapters.git import GitSource
from shared.adapters.status_store import Store
from shared.config.settings import Settings
from shared.core.manifests import FileCache, Problem, Target, load_targets
from shared.core.outcome import PassResult
from shared.core.plan import Plan
from shared.engines import engine_for
from shared.engines.engine import Engine, Progress

log = logging.getLogger("driftless.reconcile")
problems_log = logging.getLogger("driftless.manifests")
"""One ERROR line per manifest problem per pass (file, line, field; the Target's name)."""

_PARSE_CACHE_SIZE = 32
LOGGED_PROBLEMS = 100
"""Problems logged per pass (the rest are counted in one more line; GET /api/status shows the first 50)."""


class Reconciler:
    """Reconciles the Targets of one repository. Holds the Git source, the parse caches and one engine per Target."""

    def __init__(self, settings: Settings, *, source: GitSource | None = None, store: Store | None = None):
        """`store`: the status store, for engines that keep what they own as an inventory (Dapr components);
        without it those engines write nothing and say why."""
        self.settings, self.store = settings, store
        self.source = source or GitSource(str(settings.repo_url), settings.branch)
        self.files = FileCache()
        self._parsed: OrderedDict[tuple[Any, ...], tuple[list, list[Problem]]] = OrderedDict()
        self._engines: dict[str, Engine] = {}
        self._lock = threading.Lock()

    def targets(self, revision: str) -> tuple[list[Target], list[Problem]]:
        """Targets declared under DRIFTLESS_TARGETS_PATH at `revision`, else the default Target from settings.

        When Targets are declared while the settings still name a default Target (DRIFTLESS_RESOURCE_GROUP
        and DRIFTLESS_ACA_ENVIRONMENT set) and none is declared as `default`, the default Target is kept,
        `retired`: its passes are read-only and list what it owns as orphans, under a loud problem, until
        a Target named `default` claims its apps or the settings are cleared."""
        files = self.source.read(self.settings.targets_path, revision)
        if not files:
            return [self.settings.default_target()], []
        targets, problems = load_targets(files, default_subscription=self.settings.subscription_id)
        retired = self._retired_default(targets)
        return targets + ([retired] if retired else []), problems

    def _retired_default(self, declared: list[Target]) -> Target | None:
        settings = self.settings
        if not (settings.subscription_id and settings.resource_group and settings.environment):
            return None
        if any(t.name == "default" for t in declared):
            return None
        return replace(settings.default_target(), prune=False, allow_empty=False, retired=True)

    def _retired_notice(self, target: Target) -> Problem:
        return Problem(
            f"{self.settings.targets_path}/",
            f"the default Target is retired: {self.settings.targets_path}/ declares Targets, so the settings' "
            f"default Target (resource group "
            f"{target.resource_group}, environment {target.environment}, path {target.path}/) is no longer "
            "reconciled. Its apps (tagged driftless-target=default) are listed as orphans and are never written or "
            "deleted. Declare a Target named 'default' to keep reconciling them (its prune rules then apply), or "
            "unset DRIFTLESS_RESOURCE_GROUP and DRIFTLESS_ACA_ENVIRONMENT once they are claimed or removed.")

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
                engine = self._engines[target.name] = engine_for(self.settings, target, files=self.files,
                                                                 store=self.store)
            return engine

    def desired(self, target: Target, revision: str) -> tuple[list, list[Problem]]:
        """The valid desired objects under the Target's path and the problems; parsed once per revision, path and
        Target definition (for Apps, only the files whose content is new are parsed)."""
        if target.retired:
            return [], [self._retired_notice(target)]
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
        """Plan and apply one Target; with `dry_run` nothing is written. Each manifest problem is logged at
        ERROR (at most LOGGED_PROBLEMS per pass)."""
        desired, problems = self.desired(target, revision)
        result = self.engine(target).reconcile(revision, desired, problems, dry_run=dry_run, only=only,
                                               suspended=suspended, backoff=backoff, progress=progress)
        _log_problems(target, revision, problems)
        return result


def _log_problems(target: Target, revision: str, problems: list[Problem]) -> None:
    for problem in problems[:LOGGED_PROBLEMS]:
        problems_log.error("target %s at %s: %s", target.name, revision[:12], problem,
                           extra={"target": target.name, "revision": revision, "file": problem.file,
                                  "line": problem.line, "field": problem.field})
    if len(problems) > LOGGED_PROBLEMS:
        problems_log.error("target %s at %s: %d more manifest problem(s) not logged (%d in all); see GET /api/status",
                           target.name, revision[:12], len(problems) - LOGGED_PROBLEMS, len(problems),
                           extra={"target": target.name, "revision": revision})
