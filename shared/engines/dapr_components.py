"""The Dapr components engine: `DaprComponent` manifests of one `aca` Target into its environment (ARM).

ARM keeps no tags on a Dapr component, so ownership is the Target's inventory in the status store
(`Store.inventory`): a component is recorded after each successful write and dropped after its
delete; prune compares Git with the inventory only. plan = the environment's components (one GET,
made only when Git declares a component or the inventory holds one) compared with Git by
`shared.core.dapr_component.plan_components`; reconcile = that plan applied, one PUT (ARM replaces a
component whole) or DELETE per component, started under the subscription's ARM budget as apps' writes are
(`ArmKindEngine.apply`; ARM answers them synchronously: an operation that has already ended). Without a status store nothing is written or pruned and
each component Git declares is `failed` with the reason. The Apps of the same Target are read (not
written) to warn about scopes that name no Dapr app id.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from shared.adapters.container_apps import Operation, dapr_components
from shared.core import dapr_component
from shared.core.dapr_component import DaprComponent
from shared.core.image_policy import Followed
from shared.core.manifests import Problem
from shared.core.outcome import Outcome
from shared.core.plan import Plan, Step
from shared.engines.engine import ArmKindEngine, VERDICTS

DAPR = ("properties", "configuration", "dapr")
"""Where an App keeps its Dapr settings (`App.sections`)."""


class DaprComponentsEngine(ArmKindEngine):
    """Plans and reconciles the `DaprComponent` manifests of one Target of kind `aca`."""

    kind = DaprComponent
    span = "apply dapr component"

    reads = ("App",)
    """Besides its own kind, the Apps of the Target (their Dapr app ids, for the scope warning)."""

    def plan(self, revision: str, desired: list[Any], problems: list[Problem], *, only: str | None = None,
             suspended: Iterable[str] = (), backoff: Mapping[str, str] | None = None) -> Plan:
        components = [o for o in desired if isinstance(o, DaprComponent)]
        app_ids = {str(app.sections[DAPR].get("appId")) for app in desired
                   if not isinstance(app, DaprComponent) and isinstance(getattr(app, "sections", {}).get(DAPR), dict)
                   and app.sections[DAPR].get("enabled")}
        inventory = self._inventory()
        live: list[dict[str, Any]] = []
        if components or inventory:
            live = self.aca.list_dapr_components(self.target.environment_id)
        elsewhere = self._owners_elsewhere(components, live, inventory)
        return dapr_component.plan_components(target=self.target, components=components, problems=problems,
                                              live=live, inventory=inventory, owners_elsewhere=elsewhere,
                                              app_ids=app_ids, suspended=suspended, only=only)

    def _inventory(self) -> dict[str, dict[str, Any]] | None:
        """This Target's inventory rows for its environment (None without a status store)."""
        if self.store is None:
            return None
        environment = self.target.environment_id.lower()
        return {key: row for key, row in self.store.inventory(self.target.name).items()
                if dapr_component.is_component_key(key) and str(row.get("environment", "")).lower() == environment}

    def _owners_elsewhere(self, components: list[DaprComponent], live: list[dict[str, Any]],
                          inventory: Mapping[str, Any] | None) -> dict[str, str]:
        """Other Targets whose inventory holds a component Git declares that exists but is not ours (rare: one
        query each)."""
        if self.store is None or inventory is None:
            return {}
        present = {str(r.get("name", "")).lower() for r in live}
        found = {}
        for component in components:
            if component.key not in inventory and component.name in present:
                others = [t for t in self.store.inventory_owners(component.key) if t != self.target.name]
                if others:
                    found[component.key] = ", ".join(others)
        return found

    def followed(self, desired: list[Any]) -> list[Followed]:
        """Dapr components have no images."""
        return []

    # --- one step ----------------------------------------------------------------------------
    def _begin(self, step: Step, revision: str) -> Operation:
        assert self.store is not None                      # plan writes nothing without a store
        group, resource = dapr_components(self.target.environment_id)
        name = step.app.split("/", 1)[1]
        if step.kind == "delete":
            return self.aca.begin("delete", group, name, resource=resource)
        component: DaprComponent = step.desired  # type: ignore[assignment]
        return self.aca.begin("create", group, name, dapr_component.put_body(component, step.live),  # PUT replaces
                              resource=resource)

    def _finished(self, step: Step, revision: str, live: dict[str, Any]) -> Outcome:
        """The outcome of an ended write, once the inventory records it (the inventory failing makes it `failed`)."""
        assert self.store is not None
        diff = [c.to_dict() for c in step.changes]
        if step.kind == "delete":
            self.store.forget_owned(self.target.name, step.app)
            return Outcome(step.app, "deleted", step.reason, diff, revision)
        component: DaprComponent = step.desired  # type: ignore[assignment]
        environment = self.target.environment_id
        self.store.record_owned(self.target.name, step.app, environment=environment,
                                spec_hash=dapr_component.spec_hash(component), revision=revision)
        health = dapr_component.health(live)
        return Outcome(step.app, VERDICTS[step.kind], step.reason, diff, revision, healthy=health.healthy,
                       health_reason=health.reason)
