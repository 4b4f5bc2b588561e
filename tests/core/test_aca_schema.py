"""The ARM property schema the core validates against: generated from the installed SDK, and used as such."""
from __future__ import annotations

import json
from pathlib import Path

from devtools.aca_schema import OUTPUT, generate
from shared.core import aca_schema


def test_the_committed_schema_is_what_the_installed_sdk_describes():
    committed = json.loads(Path(OUTPUT).read_text())
    assert committed == generate(), "run `python -m devtools.aca_schema` after upgrading azure-mgmt-appcontainers"


def test_the_schema_knows_the_sections_teams_use_and_their_enums():
    template = aca_schema.fields("Template")
    assert {"containers", "initContainers", "volumes", "scale", "serviceBinds", "revisionSuffix",
            "terminationGracePeriodSeconds"} <= set(template)
    assert aca_schema.enum_values("ContainerAppProbe", "type") == ("Liveness", "Readiness", "Startup")
    assert aca_schema.enum_values("Configuration", "activeRevisionsMode") == ("Multiple", "Single")
    assert "provisioningState" not in aca_schema.fields("ContainerAppProperties")      # read-only: never in Git


def test_check_reports_unknown_fields_wrong_types_and_enums_with_what_is_allowed():
    found: list[tuple[tuple, str]] = []
    probe = {"type": "liveness", "httpGet": {"path": "/healthz", "port": "8080"}, "periodSecond": 10}
    aca_schema.check(probe, "ContainerAppProbe", ("spec", "containers", 0, "probes", 0),
                     lambda path, message: found.append((path, message)))
    paths = {path: message for path, message in found}
    assert paths[("spec", "containers", 0, "probes", 0, "httpGet", "port")] == "must be a whole number, got '8080'"
    assert "unknown field 'periodSecond'" in paths[("spec", "containers", 0, "probes", 0, "periodSecond")]
    assert "periodSeconds" in paths[("spec", "containers", 0, "probes", 0, "periodSecond")]
    assert len(found) == 2                                  # 'liveness' is fine: ARM enums ignore case
    found.clear()
    aca_schema.check({"type": "Sometimes"}, "ContainerAppProbe", (), lambda p, m: found.append((p, m)))
    assert found == [(("type",), "'Sometimes' is not allowed; allowed: Liveness, Readiness, Startup")]
    assert aca_schema.canonical_enum("ContainerAppProbe", "type", "readiness") == "Readiness"
