"""One Target's engines, one per kind of object, run as one `Engine`.

An `aca` Target holds Apps, Jobs and Dapr components side by side in one Git path. The Target's
manifests are parsed once (one reader per kind, `load_objects`); each kind engine is handed its own
objects (plus the kinds it `reads`, never writes), plans and applies them; the results merge into
one plan and one pass: the pass is degraded when any manifest has a problem (so no kind prunes), one
kind's failures never stop another, outcomes are keyed by each object's key (App name, `Job/<name>`,
`DaprComponent/<name>`), and progress counts across every kind. Problems of another kind's objects
reach a kind engine without their object key: they still make its plan degraded, but only the owning
kind reports them as a `failed` step. Kind engines run in the registry's order (Dapr components
before the apps that load them).
"""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Iterable, Mapping, Protocol

from shared.core.image_policy import Followed
from shared.core.manifests import FileCache, Problem, Reader, Target, load_objects
from shared.core.outcome import Outcome, PassResult
from shared.core.plan import Plan, Step, invalid_steps
from shared.engines.engine import Engine, Progress, finish, new_result, verdict


class KindEngine(Engine, Protocol):
    """The engine of one kind of object within a Target, able to apply a plan it made. It may name other kinds it
    `reads` (an optional tuple attribute): it is handed those objects too, and never writes them."""

    def apply(self, revision: str, plan: Plan, problems: list[Problem], *, dry_run: bool = False,
              progress: Progress | None = None) -> PassResult:
        """Apply `plan` (from this engine's `plan`)."""


def kind_of(key: str | None) -> str:
    """The kind an object key names: `Job/nightly` -> Job; an App's key is its bare name."""
    return str(key).split("/", 1)[0] if key and "/" in key else "App"


class TargetEngine:
    """The kind engines of one Target as one Engine."""

    def __init__(self, target: Target, engines: Mapping[str, KindEngine], readers: Mapping[str, Reader],
                 files: FileCache | None = None):
        """`engines`: kind -> its engine, in the order they run; `readers`: kind -> manifest reader."""
        self.target = target
        self.engines = dict(engines)
        self.readers = readers
        self.files = files or FileCache()

    def load(self, files: Mapping[str, bytes]) -> tuple[list[Any], list[Problem]]:
        """Every manifest of the Target's path, parsed once with the reader of its kind."""
        return load_objects(files, self.readers, self.files)

    def _objects(self, kind: str, desired: list[Any]) -> list[Any]:
        kinds = (kind, *getattr(self.engines[kind], "reads", ()))
        return [o for o in desired if kind_of(o.key) in kinds]

    def _unowned(self, problems: list[Problem], only: str | None) -> list[Step]:
        """A `failed` step for each object of a kind no engine of this Target handles (say `kind: Foo`)."""
        steps = invalid_steps([p for p in problems if p.app and kind_of(p.app) not in self.engines], set())
        return [s for s in steps if only is None or s.app == only]

    def _plans(self, revision: str, desired: list[Any], problems: list[Problem], only: str | None,
               suspended: Iterable[str], backoff: Mapping[str, str] | None) -> dict[str, Plan]:
        """Each kind engine's plan of its own objects (reads only), in the order the engines run."""
        suspended = tuple(suspended)
        return {kind: engine.plan(revision, self._objects(kind, desired), self._problems(kind, problems), only=only,
                                  suspended=suspended, backoff=backoff) for kind, engine in self.engines.items()}

    @staticmethod
    def _problems(kind: str, problems: list[Problem]) -> list[Problem]:
        """All problems (any one degrades the pass); another kind's keep their place but lose their object key."""
        return [p if p.app is None or kind_of(p.app) == kind else replace(p, app=None) for p in problems]

    def plan(self, revision: str, desired: list[Any], problems: list[Problem], *, only: str | None = None,
             suspended: Iterable[str] = (), backoff: Mapping[str, str] | None = None) -> Plan:
        plans = self._plans(revision, desired, problems, only, suspended, backoff)
        steps = [s for p in plans.values() for s in p.steps] + self._unowned(problems, only)
        return Plan(steps, any(p.degraded for p in plans.values()) or bool(problems),
                    merge_prune({kind: p.prune for kind, p in plans.items()}))

    def reconcile(self, revision: str, desired: list[Any], problems: list[Problem], *, dry_run: bool = False,
                  only: str | None = None, suspended: Iterable[str] = (), backoff: Mapping[str, str] | None = None,
                  progress: Progress | None = None) -> PassResult:
        """Plan every kind first (reads only), then apply kind by kind; progress counts across all of them."""
        started = time.monotonic()
        plans = self._plans(revision, desired, problems, only, suspended, backoff)
        unowned = self._unowned(problems, only)
        total = sum(len(p.steps) for p in plans.values()) + len(unowned)
        result = new_result(self.target, revision, dry_run)
        result.problems = [p.to_dict() for p in problems]
        done = 0
        for kind, plan in plans.items():
            def counted(step_done: int, _: int, outcome: Outcome, offset: int = done) -> None:
                if progress:
                    progress(offset + step_done, total, outcome)
            part = self.engines[kind].apply(revision, plan, self._problems(kind, problems), dry_run=dry_run,
                                            progress=counted)
            done += len(part.outcomes)
            result.outcomes += part.outcomes
            result.degraded = result.degraded or part.degraded
        for step in unowned:
            result.outcomes.append(verdict(step, revision))
            if progress:
                progress(len(result.outcomes), total, result.outcomes[-1])
        result.degraded = result.degraded or bool(problems)
        result.prune = merge_prune({kind: p.prune for kind, p in plans.items()})
        return finish(result, started)

    def followed(self, desired: list[Any]) -> list[Followed]:
        return [f for kind, engine in self.engines.items()
                for f in engine.followed([o for o in desired if kind_of(o.key) == kind])]


def merge_prune(verdicts: Mapping[str, str]) -> str:
    """One prune verdict for the pass: the kinds' verdict when they agree (or only one kind has one), else each
    kind's, e.g. "App: on; Job: prune refused: ..."."""
    said = {kind: v for kind, v in verdicts.items() if v}
    if len(set(said.values())) <= 1:
        return next(iter(said.values()), "")
    return "; ".join(f"{kind}: {v}" for kind, v in said.items())
