"""Offline checks of infra/: the Bicep parses, checkov finds nothing unexplained, and the template
provisions what the code expects (app settings, queue and table names, least-privilege roles).
Nothing here needs Azure, the Bicep CLI or the network."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml
from pycep import BicepParser

from shared.adapters import storage
from shared.config.settings import Settings, described
from shared.core.queues import PHASE_QUEUE, POISON_SUFFIX, RECONCILE_QUEUE

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))

# Settings the code reads that the template deliberately leaves unset (declared in shared/config/settings.py).
NOT_DEPLOYED = {setting.env: setting.description for _, setting in described() if not setting.deployed}
OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
USER_ACCESS_ADMINISTRATOR = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"
CONTAINER_APPS_CONTRIBUTOR = "358470bc-b998-42bd-ab17-a7e34c199c0f"

# Telemetry the workbook and alerts query (infra/README.md, "Telemetry contract").
CONTRACT_METRICS = ("driftless.pass.duration", "driftless.apps", "driftless.drift", "driftless.webhook_to_applied_ms")
CONTRACT_DIMENSIONS = ("target", "app", "revision", "job", "delivery", "action", "outcome", "reason")

GUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def _parse(path: Path) -> dict:
    return BicepParser().parse(file_path=path)


@pytest.fixture(scope="module")
def main() -> dict:
    return _parse(INFRA / "main.bicep")


@pytest.fixture(scope="module")
def app_settings(main) -> dict:
    return main["variables"]["appSettings"]["value"]


class RecordingEnv(Mapping):
    """An empty environment that remembers every name the code asks for."""

    def __init__(self):
        self.asked: list[str] = []

    def get(self, key, default=None):
        self.asked.append(key)
        return default

    def __getitem__(self, key):
        self.asked.append(key)
        raise KeyError(key)

    def __iter__(self):
        return iter(())

    def __len__(self):
        return 0


# --- the files are well-formed --------------------------------------------------------------

def test_infra_has_main_and_modules():
    names = {p.relative_to(INFRA).as_posix() for p in BICEP_FILES}
    assert "main.bicep" in names
    assert any(name.startswith("modules/") for name in names)


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.relative_to(INFRA).as_posix())
def test_bicep_parses(path):
    template = _parse(path)
    assert template.get("resources") or template.get("modules"), f"{path.name} declares nothing"


def test_checkov_reports_no_failed_checks():
    """checkov's Bicep policies, offline: no platform download (--skip-download, BC_SKIP_MAPPING), no
    PyPI version check, and a dead proxy so any request that slips through fails at once."""
    executable = Path(sys.executable).with_name("checkov")
    command = [str(executable) if executable.exists() else shutil.which("checkov") or "checkov",
               "--framework", "bicep", "-d", "infra", "--skip-download", "--quiet", "--compact", "-o", "json"]
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CKV_SKIP_PACKAGE_UPDATE_CHECK": "TRUE",
           "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""}
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    reports = json.loads(run.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    summary = next(r["summary"] for r in reports if r.get("check_type") == "bicep")
    failed = [f"{c['check_id']} {c['resource']} ({c['file_path']})"
              for r in reports for c in r.get("results", {}).get("failed_checks", [])]
    assert summary["failed"] == 0, failed
    assert summary["parsing_errors"] == 0, run.stderr[-2000:]
    assert summary["passed"] > 0 and summary["resource_count"] > 0, summary


def test_every_checkov_suppression_has_a_reason():
    for path in BICEP_FILES:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            skip = re.search(r"checkov:skip=([A-Z0-9_]+)(?::\s*(.*))?", line)
            if skip:
                assert line.lstrip().startswith("//"), f"{path.name}:{number}: a suppression must be a Bicep comment"
                reason = (skip.group(2) or "").strip()
                assert len(reason.split()) >= 5, f"{path.name}:{number}: {skip.group(1)} needs a written reason"


# --- the template sets what the code reads ----------------------------------------------------

def test_app_settings_cover_every_setting_the_code_reads(app_settings):
    env = RecordingEnv()
    Settings.from_env(env)
    read = set(env.asked)
    assert "DRIFTLESS_REPO_URL" in read and len(read) > 20, sorted(read)
    missing = sorted(read - set(app_settings) - set(NOT_DEPLOYED))
    assert not missing, f"settings the code reads but main.bicep does not set: {missing}"


def test_dev_only_settings_are_never_deployed(app_settings):
    assert not set(NOT_DEPLOYED) & set(app_settings)


def test_app_settings_hold_no_secret_values(app_settings):
    assert "DRIFTLESS_KEYVAULT_URL" in app_settings
    secret_names = {name for name in app_settings if name.endswith("_NAME") and name.startswith("DRIFTLESS_")}
    assert len(secret_names) >= 5
    # The env-var fallbacks (DRIFTLESS_WEBHOOK_SECRET, DRIFTLESS_GIT_TOKEN, ...) would carry values.
    assert not {name.removesuffix("_NAME") for name in secret_names} & set(app_settings)


def test_host_storage_is_identity_based(app_settings):
    identity = {k: v for k, v in app_settings.items() if k.startswith("AzureWebJobsStorage__")}
    assert "AzureWebJobsStorage" not in app_settings  # no connection string: shared keys are off
    assert identity["AzureWebJobsStorage__credential"] == "managedidentity"
    assert {"AzureWebJobsStorage__clientId", "AzureWebJobsStorage__queueServiceUri",
            "AzureWebJobsStorage__tableServiceUri", "AzureWebJobsStorage__blobServiceUri"} <= set(identity)
    assert storage.configured({name: "set" for name in identity})


def test_telemetry_uses_entra_ingestion(app_settings):
    assert "APPLICATIONINSIGHTS_CONNECTION_STRING" in app_settings
    assert app_settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == \
        "ClientId=${identity.properties.clientId};Authorization=AAD"
    assert app_settings["AZURE_CLIENT_ID"] == app_settings["AzureWebJobsStorage__clientId"]
    monitoring = (INFRA / "modules" / "monitoring.bicep").read_text()
    assert re.search(r"^\s*DisableLocalAuth: true$", monitoring, re.M | re.I)


def test_function_app_gets_the_settings_on_flex_consumption():
    site = _parse(INFRA / "modules" / "functionapp.bicep")["resources"]
    config = site["site"]["config"]["properties"]
    assert config["siteConfig"]["appSettings"]["loop_type"]["detail"]["object_name"] == "appSettings"
    assert site["plan"]["config"]["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    assert config["functionAppConfig"]["runtime"] == {"name": "python", "version": "3.11"}
    authentication = config["functionAppConfig"]["deployment"]["storage"]["authentication"]
    assert authentication["type"] == "UserAssignedIdentity"
    assert config["httpsOnly"] is True and config["siteConfig"]["minTlsVersion"] == "1.2"
    policies = {r["config"]["name"]: r["config"]["properties"]["allow"] for r in site.values()
                if r["type"] == "Microsoft.Web/sites/basicPublishingCredentialsPolicies"}
    assert policies == {"ftp": False, "scm": False}


def test_queue_and_table_names_match_the_code(main):
    queues = set(main["variables"]["queueNames"]["value"])
    for name in (RECONCILE_QUEUE, PHASE_QUEUE):
        assert {name, name + POISON_SUFFIX} <= queues
    assert main["variables"]["statusTable"]["value"] == storage.TABLE


def test_every_queue_the_code_declares_is_created(main):
    """Any `*_QUEUE = "..."` constant in shared/ or function_app.py (features in progress included,
    without importing them) needs its queue and its poison queue in the template."""
    declared = set()
    for path in [ROOT / "function_app.py", *sorted((ROOT / "shared").glob("*.py"))]:
        declared |= set(re.findall(r'^[A-Z_]+_QUEUE = "([a-z0-9-]+)"', path.read_text(), re.M))
    assert RECONCILE_QUEUE in declared
    expected = declared | {name + POISON_SUFFIX for name in declared}
    assert set(main["variables"]["queueNames"]["value"]) == expected


def test_storage_account_refuses_shared_keys_and_anonymous_access():
    account = _parse(INFRA / "modules" / "storage.bicep")["resources"]["account"]["config"]["properties"]
    assert account["allowSharedKeyAccess"] is False
    assert account["allowBlobPublicAccess"] is False
    assert account["supportsHttpsTrafficOnly"] is True
    assert account["minimumTlsVersion"] == "TLS1_2"


def test_key_vault_uses_rbac_soft_delete_and_purge_protection():
    vault = _parse(INFRA / "modules" / "keyvault.bicep")["resources"]["vault"]["config"]["properties"]
    assert vault["enableRbacAuthorization"] is True
    assert vault["enableSoftDelete"] is True and vault["enablePurgeProtection"] is True


# --- least privilege ------------------------------------------------------------------------------

def _role_assignments():
    """(file, resource block text) for every role assignment in infra/."""
    for path in BICEP_FILES:
        text = path.read_text()
        for match in re.finditer(r"^resource \w+ 'Microsoft\.Authorization/roleAssignments@[^']+' = \{\n(.*?)^\}",
                                 text, re.M | re.S):
            yield path, text, match


def test_no_owner_or_contributor_anywhere():
    for path in BICEP_FILES:
        text = path.read_text().lower()
        for guid in (OWNER, CONTRIBUTOR, USER_ACCESS_ADMINISTRATOR):
            assert guid not in text, f"{path.name} mentions role {guid}"


def test_every_role_assignment_names_its_role_and_guid():
    found = 0
    for path, text, match in _role_assignments():
        found += 1
        body = match.group(1)
        variable = re.search(r"roleDefinitions', (\w+)\)", body).group(1)
        guid = re.search(rf"^var {variable} = '({GUID})'$", text, re.M).group(1)
        assert guid not in (OWNER, CONTRIBUTOR, USER_ACCESS_ADMINISTRATOR)
        before = text[:match.start()].rstrip("\n").splitlines()[-1]
        assert before.startswith("//") and guid in before, f"{path.name}: comment the role name and {guid}"
        assert "principalType: 'ServicePrincipal'" in body
        assert "subscription()" not in body, f"{path.name}: no subscription-wide assignment"
    assert found >= 8


def test_container_apps_contributor_only_on_target_resource_groups(main):
    holders = [p.relative_to(INFRA).as_posix() for p in BICEP_FILES if CONTAINER_APPS_CONTRIBUTOR in p.read_text()]
    assert holders == ["modules/target-group-access.bicep"]
    module = _parse(INFRA / "modules" / "target-group-access.bicep")
    assert module["globals"].get("scope", {}).get("value", "resourceGroup") == "resourceGroup"
    roles = {name: r["config"]["properties"]["roleDefinitionId"] for name, r in module["resources"].items()}
    assert sorted(roles) == ["containerAppsContributor", "monitoringReader"], roles
    for assignment in module["resources"].values():
        assert "scope" not in assignment["config"], "assigned at the module's resource group, nothing wider"
    callers = [m for m in main["modules"].values() if m["detail"]["path"] == "modules/target-group-access.bicep"]
    assert len(callers) == 1
    scope = callers[0]["config"]["config"]["scope"]["function"]
    assert scope["type"] == "resource_group" and scope["parameters"]["subscription_id"] is None


def test_aks_roles_are_scoped_to_the_named_clusters():
    text = (INFRA / "modules" / "aks-access.bicep").read_text()
    assignments = [m.group(1) for path, _, m in _role_assignments() if path.name == "aks-access.bicep"]
    assert len(assignments) == 2 and all("scope: cluster" in body for body in assignments)
    assert "'4abbcc35-e782-43d8-92c5-2d3f1bd2253f'" in text and "'a7ffa36f-339b-4b5c-8bdf-e2c188b2c0eb'" in text


# --- deployment wiring -----------------------------------------------------------------------------

def test_parameters_file_matches_main(main):
    params = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    declared = main["parameters"]
    assert set(params) <= set(declared), set(params) - set(declared)
    required = {name for name, p in declared.items() if p.get("default") is None}
    assert required <= set(params), required - set(params)


def test_outputs(main):
    outputs = {name: o["value"] for name, o in main["outputs"].items()}
    assert outputs["WEBHOOK_URL"].endswith("/api/github/webhook")
    assert outputs["PHASE_CALLBACK_URL"].endswith("/api/gitopsphase")
    assert {"FUNCTION_APP_NAME", "KEY_VAULT_NAME", "AZURE_CLIENT_ID", "PRINCIPAL_ID"} <= set(outputs)


def test_azd_deploys_the_function_app():
    config = yaml.safe_load((ROOT / "azure.yaml").read_text())
    assert config["services"]["driftless"] == {"project": ".", "language": "python", "host": "function"}
    site = _parse(INFRA / "modules" / "functionapp.bicep")["resources"]["site"]["config"]
    assert site["tags"]["function"]["parameters"]["arg_2"] == {"'azd-service-name'": "driftless"}


def test_workbook_and_readme_follow_the_telemetry_contract():
    workbook = json.loads((INFRA / "modules" / "workbook.json").read_text())
    queries = "\n".join(item["content"]["query"] for item in workbook["items"] if item["type"] == 3)
    readme = (INFRA / "README.md").read_text()
    for metric in CONTRACT_METRICS:
        assert f'"{metric}"' in queries and f"`{metric}`" in readme, metric
    for dimension in CONTRACT_DIMENSIONS:
        assert f"`{dimension}`" in readme, dimension
    assert "loadTextContent('workbook.json')" in (INFRA / "modules" / "workbook.bicep").read_text()
