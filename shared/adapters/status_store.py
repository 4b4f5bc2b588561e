"""The status store: one Azure Table (`driftless`) on the Function App's storage account.

Partitions (PartitionKey / RowKey):
- `target` / target name: the last pass (revision, summary, the first `SHOWN_PROBLEMS` manifest
  problems and their count, when), and when the last
  *completed* pass started, which retires older jobs;
- `app.<target>` / app name: the last outcome, and the re-apply backoff of an unhealthy app;
- `pass.<target>` / inverted time: recent passes (the newest `KEEP_PASSES`);
- `delivery` / GitHub delivery id: webhook de-duplication, with an expiry;
- `suspension` / app name: runtime suspensions;
- `lease` / target name: at most one reconcile per Target (ETag-guarded).
- `inventory.<target>` / object key: what Driftless created where ARM keeps no tags (Dapr components),
  with the environment and spec hash; prune compares Git with it.
- `rollout.<target>` / app name: the app's progressive delivery (`shared.core.rollout.State` as JSON), updated
  only with the ETag it was read with, so two workers never both move one rollout.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from shared.adapters import storage
from shared.core.outcome import PassResult
from shared.core.queues import TABLE_KEY_FORBIDDEN
from shared.core.rollout import State as RolloutState

KEEP_PASSES = 20
MAX_TEXT = 16_000
SHOWN_PROBLEMS = 50
"""Manifest problems kept per Target's last pass (the first ones, by file); the total is kept too."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


def row_key(name: str) -> str:
    """A Table RowKey for an app or object name: '/' (Kubernetes `Kind/namespace/name`) is not allowed, '|' is."""
    return name.replace("/", "|")


def name_of(key: str) -> str:
    return key.replace("|", "/")




def check_row_key(key: str) -> str:
    """`key` if Azure Tables accepts it as a RowKey (no `/ \\ # ?` or control characters, at most 1 KiB in
    UTF-16, not empty); else ValueError, so a bad key is refused here rather than by the service as a 400."""
    if not key or TABLE_KEY_FORBIDDEN.search(key) or len(key.encode("utf-16-le")) > 1024:
        raise ValueError(f"not a valid Table row key: {key[:40]!r}{'...' if len(key) > 40 else ''}")
    return key


def _text(value: Any, limit: int = MAX_TEXT) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 20] + "...(truncated)"


def _problems(problems: list[dict[str, Any]], limit: int = MAX_TEXT) -> str:
    """The first `SHOWN_PROBLEMS` problems (file, line, field, message...) as JSON that always parses: long
    texts are cut, and problems that would not fit in `limit` characters (a Table property) are left out."""
    kept: list[dict[str, Any]] = []
    size = 2
    for problem in problems[:SHOWN_PROBLEMS]:
        item = {k: (_text(v, 600) if isinstance(v, str) else v) for k, v in problem.items()}
        size += len(json.dumps(item, default=str)) + 2
        if size > limit:
            break
        kept.append(item)
    return json.dumps(kept, default=str)


def _stored_problems(text: str | None) -> list[dict[str, Any]]:
    """What `_problems` stored (rows from older versions may hold cut JSON: shown as none)."""
    try:
        found = json.loads(text or "[]")
    except ValueError:
        return []
    return [{k: p.get(k) for k in ("file", "line", "column", "document", "field", "message", "app")}
            for p in found if isinstance(p, dict)] if isinstance(found, list) else []


class Store:
    """Status, deliveries, suspensions, backoff and leases. Methods raise azure errors on I/O failure."""

    def __init__(self, *, backoff_base: float = 60.0, backoff_cap: float = 3600.0, env=None):
        self.env = env
        self.backoff_base, self.backoff_cap = backoff_base, backoff_cap

    @property
    def table(self):
        return storage.table(storage.TABLE, self.env)

    def _get(self, partition: str, row: str) -> dict[str, Any] | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return dict(self.table.get_entity(partition, row))
        except ResourceNotFoundError:
            return None

    def _query(self, partition: str) -> list[dict[str, Any]]:
        return [dict(e) for e in self.table.query_entities("PartitionKey eq @p", parameters={"p": partition})]

    # --- passes and outcomes -------------------------------------------------------------
    def record_pass(self, result: PassResult, *, started_at: str, complete: bool = True) -> None:
        """Store the pass, every app's outcome and backoff, and the Target's last pass.
        A `complete` pass (all apps, not a dry run) retires jobs requested before it started."""
        now = _now()
        previous = {name_of(e["RowKey"]): e for e in self._query(f"app.{result.target}")}
        changed = []
        for outcome in result.outcomes:
            old = previous.get(outcome.app, {})
            attempts, next_at = self._backoff_after(outcome, int(old.get("reapply_attempts", 0) or 0), now)
            row = {
                "PartitionKey": f"app.{result.target}", "RowKey": row_key(outcome.app),
                "action": outcome.action, "reason": _text(outcome.reason, 4000),
                "revision": outcome.revision or "", "healthy": "" if outcome.healthy is None else outcome.healthy,
                "health_reason": _text(outcome.health_reason, 4000), "diff": _text(outcome.diff),
                "reapply_attempts": attempts, "next_reapply_at": next_at,
            }
            if any(old.get(key) != value for key, value in row.items()):   # steady state writes no app row
                changed.append(("upsert", {**row, "duration_ms": outcome.duration_ms, "updated_at": _iso(now)}))
        for start in range(0, len(changed), 100):                            # a Table batch holds 100 operations
            self.table.submit_transaction(changed[start:start + 100])
        summary = result.summary()
        entity = {
            "PartitionKey": "target", "RowKey": result.target, "revision": result.revision or "",
            "ok": result.ok, "degraded": result.degraded, "dry_run": result.dry_run, "prune": _text(result.prune, 2000),
            "summary": json.dumps(summary), "problems": _problems(result.problems),
            "problem_count": len(result.problems), "started_at": started_at,
            "finished_at": _iso(now), "duration_ms": result.duration_ms,
        }
        if complete and not result.dry_run:
            entity["completed_started_at"] = started_at
            entity["applied_revision"] = result.revision or ""
        self.table.upsert_entity(entity)
        inverted = f"{10**13 - int(now.timestamp() * 1000):013d}"
        self.table.upsert_entity({"PartitionKey": f"pass.{result.target}", "RowKey": inverted,
                                  "revision": result.revision or "", "ok": result.ok, "degraded": result.degraded,
                                  "summary": json.dumps(summary), "started_at": started_at, "finished_at": _iso(now),
                                  "duration_ms": result.duration_ms})
        for old_pass in sorted(self._query(f"pass.{result.target}"), key=lambda e: e["RowKey"])[KEEP_PASSES:]:
            self.table.delete_entity(old_pass["PartitionKey"], old_pass["RowKey"])

    def _backoff_after(self, outcome, attempts: int, now: datetime) -> tuple[int, str]:
        """Capped exponential backoff for apps still unhealthy after a write; reset once healthy."""
        if outcome.healthy is True:
            return 0, ""
        if outcome.healthy is False and outcome.action in ("created", "updated"):
            delay = min(self.backoff_cap, self.backoff_base * 2 ** attempts)
            return attempts + 1, _iso(now + timedelta(seconds=delay))
        return attempts, ""

    def backoff(self, target: str) -> dict[str, str]:
        """Apps of `target` whose next re-apply is still in the future -> when it is due."""
        now = _iso(_now())
        return {name_of(e["RowKey"]): e["next_reapply_at"] for e in self._query(f"app.{target}")
                if e.get("next_reapply_at") and e["next_reapply_at"] > now}

    def last_completed_start(self, target: str) -> str | None:
        row = self._get("target", target)
        return (row or {}).get("completed_started_at") or None

    def status(self, target: str | None = None) -> dict[str, Any]:
        """Last pass per Target and last outcome per app, newest data only."""
        targets = [t for t in self._query("target") if target is None or t["RowKey"] == target]
        suspended = self.suspended()
        result: dict[str, list] = {"targets": [], "apps": []}
        for row in sorted(targets, key=lambda t: t["RowKey"]):
            result["targets"].append({
                "target": row["RowKey"], "revision": row.get("revision"), "ok": row.get("ok"),
                "degraded": row.get("degraded"), "summary": json.loads(row.get("summary") or "{}"),
                "prune": row.get("prune"), "startedAt": row.get("started_at"), "finishedAt": row.get("finished_at"),
                "appliedRevision": row.get("applied_revision"),
                "problems": _stored_problems(row.get("problems")), "problemCount": row.get("problem_count") or 0,
                "recentPasses": [{"revision": p.get("revision"), "ok": p.get("ok"), "finishedAt": p.get("finished_at"),
                                  "summary": json.loads(p.get("summary") or "{}")}
                                 for p in sorted(self._query(f"pass.{row['RowKey']}"), key=lambda e: e["RowKey"])[:5]],
            })
            rollouts = {e["RowKey"]: RolloutState.from_json(e["state"]) for e in self._query(f"rollout.{row['RowKey']}")}
            for app in sorted(self._query(f"app.{row['RowKey']}"), key=lambda e: e["RowKey"]):
                result["apps"].append({
                    "target": row["RowKey"], "app": name_of(app["RowKey"]), "action": app.get("action"),
                    "reason": app.get("reason"), "revision": app.get("revision"),
                    "healthy": None if app.get("healthy") == "" else app.get("healthy"),
                    "healthReason": app.get("health_reason"), "updatedAt": app.get("updated_at"),
                    "nextReapplyAt": app.get("next_reapply_at") or None,
                    "suspended": name_of(app["RowKey"]) in suspended,
                })
                if app["RowKey"] in rollouts:
                    result["apps"][-1]["rollout"] = rollouts[app["RowKey"]].view()
        return result

    def targets_of_app(self, app: str) -> list[str]:
        return sorted(t["RowKey"] for t in self._query("target") if self._get(f"app.{t['RowKey']}", row_key(app)))

    # --- claims: exactly-once records (webhook deliveries, CI callbacks) -----------------
    def claim(self, partition: str, key: str, *, ttl: timedelta | None = None) -> bool:
        """True for the first caller of (partition, key), or once an earlier claim expired; ETag-guarded."""
        expires = _iso(_now() + ttl) if ttl else ""
        return self._take({"PartitionKey": partition, "RowKey": check_row_key(key), "expires_at": expires},
                          lambda held: bool(held.get("expires_at")) and held["expires_at"] <= _iso(_now()))

    def release(self, partition: str, key: str) -> None:
        """Undo a claim whose work could not be done, so a retry may claim it again."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            self.table.delete_entity(partition, key)
        except ResourceNotFoundError:
            pass

    def claim_delivery(self, delivery: str, *, ttl: timedelta = timedelta(days=3)) -> bool:
        """True the first time a GitHub delivery id is seen (or after its record expired)."""
        return self.claim("delivery", delivery, ttl=ttl)

    def release_delivery(self, delivery: str) -> None:
        """Forget a delivery whose jobs could not be enqueued, so GitHub's redelivery is accepted."""
        self.release("delivery", delivery)

    def advance(self, partition: str, key: str, *, order: str, value: str, detail: str = "") -> tuple[bool, str | None]:
        """Record `value` if it differs from the remembered one and `order` is newer; atomic (ETag).

        Returns (changed, previous raw record) so a caller whose work then fails can `restore` it.
        Used for commit statuses: out-of-order or repeated events never re-post or roll back a status.
        """
        for _ in range(8):
            previous = self.recall(partition, key)
            held_order, _, held_value = (previous or "").partition("\t")
            if previous is not None and held_order >= order:
                return False, previous
            entity = {"PartitionKey": partition, "RowKey": key, "value": f"{order}\t{value}", "at": _iso(_now()),
                      "detail": detail}
            if self._take(entity, lambda held: held.get("value") == previous):
                return previous is None or held_value != value, previous   # same value: only the order moved
        return False, self.recall(partition, key)

    def newest(self, partition: str, key: str) -> tuple[str, str, str]:
        """(order, value, detail) of the record `advance` keeps for `key` (empty strings when there is none)."""
        row = self._get(partition, key) or {}
        order, _, value = str(row.get("value") or "").partition("\t")
        return order, value, str(row.get("detail") or "")

    def recall(self, partition: str, key: str) -> str | None:
        row = self._get(partition, key)
        return None if row is None else row.get("value")

    def recall_all(self, partition: str) -> dict[str, str]:
        """Every remembered raw record of `partition` (row key -> what `recall` returns)."""
        return {e["RowKey"]: e["value"] for e in self._query(partition) if e.get("value") is not None}

    def restore(self, partition: str, key: str, previous: str | None) -> None:
        """Undo a swap whose work failed."""
        if previous is None:
            self.release(partition, key)
        else:
            self.table.upsert_entity({"PartitionKey": partition, "RowKey": key, "value": previous, "at": _iso(_now())})

    def _take(self, entity: dict[str, Any], takeable: Callable[[dict[str, Any]], bool]) -> bool:
        """Create `entity`, or replace the existing row when `takeable(row)`; False if someone else holds it."""
        from azure.core import MatchConditions
        from azure.core.exceptions import (
            ResourceExistsError,
            ResourceModifiedError,
            ResourceNotFoundError,
        )
        from azure.data.tables import UpdateMode

        try:
            self.table.create_entity(entity)
            return True
        except ResourceExistsError:
            try:
                held = self.table.get_entity(entity["PartitionKey"], entity["RowKey"])
            except ResourceNotFoundError:
                return self._take(entity, takeable)
            if not takeable(dict(held)):
                return False
            try:
                self.table.update_entity(entity, mode=UpdateMode.REPLACE, etag=held.metadata["etag"],
                                         match_condition=MatchConditions.IfNotModified)
                return True
            except ResourceModifiedError:
                return False

    # --- runtime suspensions -------------------------------------------------------------
    def suspend(self, app: str, *, by: str = "api") -> None:
        self.table.upsert_entity({"PartitionKey": "suspension", "RowKey": row_key(app), "at": _iso(_now()), "by": by})

    def resume(self, app: str) -> bool:
        """Lift a suspension; False when the app was not suspended."""
        if not self._get("suspension", row_key(app)):
            return False
        self.table.delete_entity("suspension", row_key(app))
        return True

    def suspended(self) -> set[str]:
        return {name_of(e["RowKey"]) for e in self._query("suspension")}

    def last_action(self, target: str, app: str) -> str | None:
        """The action of the app's last outcome in `target` (`suspended` when its last pass left it alone because
        it is suspended in Git or at runtime); None before its first pass."""
        row = self._get(f"app.{target}", row_key(app))
        return None if row is None else str(row.get("action") or "")

    # --- inventory: what Driftless created where ARM keeps no tags (Dapr components) -------
    def inventory(self, target: str) -> dict[str, dict[str, Any]]:
        """`inventory.<target>`: object key (e.g. `DaprComponent/<name>`) -> its row (environment, spec_hash,
        revision, recorded_at)."""
        return {name_of(e["RowKey"]): e for e in self._query(f"inventory.{target}")}

    def record_owned(self, target: str, key: str, *, environment: str, spec_hash: str, revision: str) -> None:
        """Record that Driftless created (or adopted) `key` for `target` in `environment`, at `revision`."""
        self.table.upsert_entity({"PartitionKey": f"inventory.{target}", "RowKey": check_row_key(row_key(key)),
                                  "environment": environment, "spec_hash": spec_hash, "revision": revision[:40],
                                  "recorded_at": _iso(_now())})

    def forget_owned(self, target: str, key: str) -> None:
        """Drop `key` from `target`'s inventory (after it was deleted); absent already is fine."""
        self.release(f"inventory.{target}", row_key(key))

    def inventory_owners(self, key: str) -> list[str]:
        """The Targets whose inventory holds `key` (one query on the row key)."""
        rows = self.table.query_entities("RowKey eq @k and PartitionKey ge @lo and PartitionKey lt @hi",
                                         parameters={"k": row_key(key), "lo": "inventory.", "hi": "inventory/"})
        return sorted(str(e["PartitionKey"])[len("inventory."):] for e in rows)

    # --- leases --------------------------------------------------------------------------
    def acquire_lease(self, target: str, holder: str, *, ttl: timedelta) -> bool:
        """Take the Target's lease if free, expired or already ours; ETag-guarded so two workers never both win."""
        entity = {"PartitionKey": "lease", "RowKey": target, "holder": holder, "until": _iso(_now() + ttl)}
        return self._take(entity, lambda held: held.get("holder") == holder or held.get("until", "") <= _iso(_now()))

    def renew_lease(self, target: str, holder: str, *, ttl: timedelta) -> bool:
        """Extend `holder`'s lease to now + `ttl`. False when another worker holds it or it is gone; ETag-guarded,
        so a renewal never overwrites a lease another worker has just taken."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
        from azure.data.tables import UpdateMode

        try:
            current = self.table.get_entity("lease", target)
            if current.get("holder") != holder:
                return False
            self.table.update_entity({"PartitionKey": "lease", "RowKey": target, "holder": holder,
                                      "until": _iso(_now() + ttl)}, mode=UpdateMode.REPLACE,
                                     etag=current.metadata["etag"], match_condition=MatchConditions.IfNotModified)
            return True
        except (ResourceNotFoundError, ResourceModifiedError):
            return False

    def release_lease(self, target: str, holder: str) -> None:
        """Release the lease if `holder` still has it."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

        try:
            current = self.table.get_entity("lease", target)
            if current.get("holder") == holder:
                self.table.delete_entity("lease", target, etag=current.metadata["etag"],
                                         match_condition=MatchConditions.IfNotModified)
        except (ResourceNotFoundError, ResourceModifiedError):
            pass


    # --- rollouts ------------------------------------------------------------------------
    def rollout(self, target: str, app: str) -> tuple[RolloutState, str] | None:
        """The app's rollout in `target` and the ETag to update it with; None when it never had one."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            row = self.table.get_entity(f"rollout.{target}", check_row_key(row_key(app)))
        except ResourceNotFoundError:
            return None
        return RolloutState.from_json(row["state"]), row.metadata["etag"]

    def rollouts_of(self, app: str, target: str | None = None) -> list[tuple[RolloutState, str]]:
        """The app's rollout in `target` (one read), or in every Target (one query on the row key), each with the
        ETag to update it with; by Target. A name no Table key can hold has none."""
        try:
            key = check_row_key(row_key(app))
            if target is not None:
                check_row_key(f"rollout.{target}")
        except ValueError:
            return []
        if target is not None:
            found = self.rollout(target, app)
            return [found] if found else []
        rows = self.table.query_entities("RowKey eq @k and PartitionKey ge @lo and PartitionKey lt @hi",
                                         parameters={"k": key, "lo": "rollout.", "hi": "rollout/"})
        found = [(RolloutState.from_json(e["state"]), e.metadata["etag"]) for e in rows]
        return sorted(found, key=lambda pair: pair[0].target)

    def rollouts(self, target: str | None = None) -> list[RolloutState]:
        """Every rollout (of `target`, or of all Targets), by Target and app."""
        if target is not None:
            rows = self._query(f"rollout.{target}")
        else:
            rows = [dict(e) for e in self.table.query_entities("PartitionKey ge @lo and PartitionKey lt @hi",
                                                               parameters={"lo": "rollout.", "hi": "rollout/"})]
        states = [RolloutState.from_json(r["state"]) for r in rows]
        return sorted(states, key=lambda s: (s.target, s.app))

    def put_rollout(self, state: RolloutState, etag: str | None = None) -> bool:
        """Write `state`: unconditionally without `etag` (a new rollout replaces the app's last one), else only if
        the row still has that ETag (False when another worker moved the rollout first)."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
        from azure.data.tables import UpdateMode

        entity = {"PartitionKey": f"rollout.{state.target}", "RowKey": check_row_key(row_key(state.app)),
                  "state": state.to_json(), "phase": state.phase, "revision": state.revision[:40]}
        if etag is None:
            self.table.upsert_entity(entity, mode=UpdateMode.REPLACE)
            return True
        try:
            self.table.update_entity(entity, mode=UpdateMode.REPLACE, etag=etag,
                                     match_condition=MatchConditions.IfNotModified)
            return True
        except (ResourceModifiedError, ResourceNotFoundError):
            return False
