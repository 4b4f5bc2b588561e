"""Decide what to do with every app of a Target: a pure function of Git and the live list.

Safety rules live here, in one place:
- an app whose manifest is invalid is `failed`, never written and never deleted;
- only apps tagged with this instance *and* this Target are ever deleted, only when the
  Target sets `prune`, never protected ones, never on a degraded pass, and never all owned
  apps (or more than half) unless the Target sets `allowEmpty`;
- an app of the same name owned by another Target or instance, or living in another
  environment, is refused rather than taken over;
- an app whose operation still runs (provisioningState InProgress / Deleting, e.g. after an
  apply that timed out) is waited for, never written: ACA would refuse the write (409), and the
  next pass looks again.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Mapping

from shared.core.container_app import (
    TAG_OWNER,
    TAG_SPEC_HASH,
    TAG_TARGET,
    Health,
    desired_view,
    environment_of,
    health,
    live_view,
    operation_in_progress,
    spec_hash,
)
from shared.core.diff import Change, diff
from shared.core.manifests import App, Problem, Target, names_in_problems

WRITES = ("create", "update", "reapply", "delete")

Verdict = Literal["orphan", "refused", "invalid"]
"""Why a step that writes nothing is worth a reviewer's attention: an `orphan` left in place (prune off, or
protected), a `refused` write or delete (ownership, another environment, prune safety), an `invalid` manifest."""


@dataclass
class Step:
    """One planned action. `kind` is a write (create/update/reapply/delete) or a verdict; `verdict` types the
    orphans, refusals and invalid manifests among the steps that write nothing (a `failed` step without one is a
    refusal; None on a skip means a plain no-op: a wait, not managed)."""

    app: str
    kind: str
    reason: str = ""
    changes: list[Change] = field(default_factory=list)
    desired: App | None = None
    live: dict[str, Any] | None = None
    health: Health | None = None
    verdict: Verdict | None = None
    rollout: dict[str, Any] | None = None
    """How a write of an App with `spec.rollout` treats traffic: starts a rollout (stable, canary, suffix, the canary
    it aborts), or applies at once with traffic back on the latest revision (`follow_latest`, `new_suffix`)."""

    @property
    def writes(self) -> bool:
        return self.kind in WRITES


@dataclass
class Plan:
    steps: list[Step]
    degraded: bool
    prune: str = ""

    def step(self, app: str) -> Step | None:
        return next((s for s in self.steps if s.app == app), None)


def is_owned(resource: dict[str, Any], target: Target, instance: str) -> bool:
    tags = resource.get("tags") or {}
    return tags.get(TAG_OWNER) == instance and tags.get(TAG_TARGET) == target.name


def foreign_owner(marks: Mapping[str, str], mine: Iterable[tuple[str, str]], *, said: str = "labelled") -> str:
    """Why an object is someone else's: the first of `mine` ((tag or label, our value)) that `marks` (its tags
    or labels) sets to another value, as "<said> key=value, not ours"; "" when none is (unmarked counts as ours)."""
    for key, ours in mine:
        if marks.get(key) not in (None, ours):
            return f"{said} {key}={marks[key]}, not {ours}"
    return ""


def invalid_steps(problems: list[Problem], valid: set[str], *, make: type[Step] = Step) -> list[Step]:
    """A `failed` step for each name that has problems and no valid manifest: never written, never deleted."""
    steps = []
    for name in sorted(names_in_problems(problems) - valid):
        reasons = "; ".join(f"{p.field}: {p.message}" if p.field else p.message for p in problems if p.app == name)
        steps.append(make(name, "failed", f"invalid manifest, not applied: {reasons}", verdict="invalid"))
    return steps


def make_plan(*, target: Target, instance: str, apps: Iterable[App], problems: list[Problem],
              live: Iterable[dict[str, Any]], suspended: Iterable[str] = (), only: str | None = None,
              backoff: Mapping[str, str] | None = None) -> Plan:
    """Plan one pass. `live` is every Container App in the Target's resource group; `backoff` maps
    unhealthy apps to the time their next re-apply is due (until then they are left alone)."""
    apps = list(apps)
    live_by_name = {r.get("name"): r for r in live}
    env_id = target.environment_id.lower()
    suspended = set(suspended)
    steps = [_plan_app(app, live_by_name.get(app.name), target, instance, env_id, suspended) for app in apps]
    for step in steps:
        if step.kind == "reapply" and step.app in (backoff or {}):
            step.kind, step.reason = "unchanged", f"{step.reason}; next re-apply after {backoff[step.app]}"
    steps += invalid_steps(problems, {a.name for a in apps})
    invalid = names_in_problems(problems)
    degraded = bool(problems)
    owned = {r["name"]: r for r in live_by_name.values()
             if is_owned(r, target, instance) and environment_of(r).lower() == env_id}
    prune_steps, prune = plan_prune(target, owned, {a.name for a in apps} | invalid, degraded, len(problems))
    steps += [wait_for(s.live, s) if s.kind == "delete" and operation_in_progress(s.live) else s
              for s in prune_steps]
    if only is not None:
        steps = [s for s in steps if s.app == only]
    return Plan(steps, degraded, prune)


def preflight(key: str, name: str, noun: str, desired: Any, resource: dict[str, Any] | None, *, target: Target,
              instance: str, env_id: str, suspended: set[str]) -> Step | None:
    """The verdict an ARM resource Driftless tags (an app, a job) gets before its fields are compared: suspended
    in Git or at runtime, missing (create), in another environment, owned by someone else, or busy with an
    operation; None when its fields are to be compared."""
    if getattr(desired, "suspend", False):
        return Step(key, "suspended", "spec.suspend is true in Git", desired=desired, live=resource)
    if key in suspended:
        return Step(key, "suspended", "suspended at runtime (driftless resume to lift)", desired=desired, live=resource)
    if resource is None:
        return Step(key, "create", "not found in Azure", desired=desired)
    if environment_of(resource).lower() != env_id:
        return Step(key, "failed", f"{noun} named {name} already exists in environment "
                                   f"{environment_of(resource).rsplit('/', 1)[-1]} of this resource group",
                    desired=desired, live=resource)
    owner = foreign_owner(resource.get("tags") or {}, ((TAG_OWNER, instance), (TAG_TARGET, target.name)),
                          said="owned by")
    if owner:
        return Step(key, "failed", f"{owner}; refusing to take it over", desired=desired, live=resource)
    if operation_in_progress(resource):
        return wait_for(resource, Step(key, "skipped", desired=desired))
    return None


def drift(wanted: dict[str, Any], live: dict[str, Any], resource: dict[str, Any], *, target: Target, instance: str,
          digest: str) -> list[Change]:
    """The field changes between the views, plus the ownership tags and the spec hash Driftless keeps on the
    resource (the hash only matters when nothing else changed: it records what Git owns now)."""
    tags = resource.get("tags") or {}
    changes = diff(wanted, live, "")
    for tag, mine in ((TAG_OWNER, instance), (TAG_TARGET, target.name)):
        if tags.get(tag) != mine:
            changes.append(Change(f"tags.{tag}", mine, tags.get(tag)))
    if not changes and tags.get(TAG_SPEC_HASH) != digest:
        changes.append(Change(f"tags.{TAG_SPEC_HASH}", digest, tags.get(TAG_SPEC_HASH)))
    return changes


def _plan_app(app: App, resource: dict[str, Any] | None, target: Target, instance: str, env_id: str,
              suspended: set[str]) -> Step:
    if not app.managed:
        return Step(app.name, "skipped", 'not managed: label synoscd.io/managed is not "true"', desired=app)
    verdict = preflight(app.name, app.name, "an app", app, resource, target=target, instance=instance, env_id=env_id,
                        suspended=suspended)
    if verdict is not None:
        return verdict
    assert resource is not None
    wanted = desired_view(app)
    changes = drift(wanted, live_view(resource, wanted), resource, target=target, instance=instance,
                    digest=spec_hash(app))
    state = health(resource)
    if changes:
        return Step(app.name, "update", "drifted: " + ", ".join(c.path for c in changes), changes, app, resource, state)
    if not state.healthy:
        if ("properties", "template", "revisionSuffix") in app.sections:
            return Step(app.name, "unchanged", f"unhealthy: {state.reason}; not re-applied because Git sets "
                                               "revisionSuffix (change it in Git to roll a new revision)",
                        [], app, resource, state)
        return Step(app.name, "reapply", f"unhealthy: {state.reason}", [], app, resource, state)
    return Step(app.name, "unchanged", "in sync", [], app, resource, state)


def wait_for(resource: dict[str, Any], step: Step) -> Step:
    """`step` turned into a wait: nothing is written while the app's operation runs, and it is not healthy."""
    why = operation_in_progress(resource)
    latest = (resource.get("properties") or {}).get("latestRevisionName")
    step.kind, step.reason, step.live, step.health = "skipped", why, resource, Health(False, why, latest)
    return step


def plan_prune(target: Target, owned: Mapping[str, Any], in_git: set[str], degraded: bool, problem_count: int,
               *, noun: str = "apps", protected_field: str = "protectedApps") -> tuple[list[Step], str]:
    """Prune steps for what this Target owns (`owned`: name -> live object) that left Git, and the verdict:
    "" (nothing to prune), "off", "on", or why nothing is deleted. Deletes only with `prune` on, never on a
    degraded pass, never a protected name, and never all or more than half of what is owned unless
    `allowEmpty`. `noun` and `protected_field` name things in the user's words in the reasons."""
    orphans = sorted(name for name in owned if name not in in_git)
    if not orphans:
        return [], ""
    if not target.prune:
        return [Step(n, "skipped", "orphan: owned by this Target but not in Git; prune is off", verdict="orphan")
                for n in orphans], "off"
    if degraded:
        why = f"prune skipped: the pass is degraded ({problem_count} manifest problem(s)); nothing is deleted"
        return [Step(n, "skipped", why, verdict="refused") for n in orphans], why
    steps = [Step(n, "skipped", f"orphan, but protected: listed in the Target's {protected_field}", verdict="orphan")
             for n in orphans if n in target.protected_apps]
    candidates = [n for n in orphans if n not in target.protected_apps]
    if candidates and not target.allow_empty and (len(candidates) == len(owned) or len(candidates) * 2 > len(owned)):
        share = "all" if len(candidates) == len(owned) else "more than half"
        why = (f"prune refused: it would delete {len(candidates)} of {len(owned)} owned {noun} ({share}); "
               "set allowEmpty: true on the Target to allow it")
        return steps + [Step(n, "skipped", why, live=owned[n], verdict="refused") for n in candidates], why
    steps += [Step(n, "delete", "owned by this Target and no longer in Git", live=owned[n]) for n in candidates]
    return sorted(steps, key=lambda s: s.app), "on"
