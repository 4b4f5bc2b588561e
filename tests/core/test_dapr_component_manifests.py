"""`kind: DaprComponent` manifests: Microsoft's published component shapes read as they are (secrets as Key Vault
references), and each invalid use is one clear problem naming file, line and field, with nothing to apply."""
from __future__ import annotations

import copy

import pytest
import yaml

from shared.core.aca_kinds import ACA_READERS
from shared.core.dapr_component import DaprComponent, put_body, scope_notice
from shared.core.manifests import load_file
from tests.core.test_job_manifests import deepest_key

KV = "https://kv-shop-prod.vault.azure.net/secrets/"

# Microsoft's DaprComponents_CreateOrUpdate_Secrets.json example (2025-01-01) with its plaintext secret stored in Key
# Vault instead: the only change Git needs.
STATESTORE = {
    "apiVersion": "driftless.io/v1alpha1",
    "kind": "DaprComponent",
    "metadata": {"name": "reddog"},
    "spec": {
        "componentType": "state.azure.cosmosdb",
        "version": "v1",
        "ignoreErrors": False,
        "initTimeout": "50s",
        "secrets": [{"name": "masterkey", "keyVaultUrl": KV + "cosmos-masterkey", "identity": "system"}],
        "metadata": [{"name": "url", "value": "<COSMOS-URL>"}, {"name": "database", "value": "itemsDB"},
                     {"name": "collection", "value": "items"}, {"name": "masterkey", "secretRef": "masterkey"}],
        "scopes": ["container-app-1", "container-app-2"],
    },
}

# DaprComponents_CreateOrUpdate_SecretStoreComponent.json: secretRefs resolved by a Dapr secret store, no secrets.
SECRET_STORE = """\
apiVersion: driftless.io/v1alpha1
kind: DaprComponent
metadata:
  name: reddog
spec:
  componentType: state.azure.cosmosdb
  version: v1
  ignoreErrors: false
  initTimeout: 50s
  secretStoreComponent: my-secret-store
  metadata:
    - name: url
      value: <COSMOS-URL>
    - name: database
      value: itemsDB
    - name: collection
      value: items
    - name: masterkey
      secretRef: masterkey
  scopes:
    - container-app-1
    - container-app-2
"""


def read(text: str):
    return load_file("apps/dapr.yaml", text.encode(), ACA_READERS)


def test_microsofts_published_components_read_as_manifests():
    for text in (yaml.safe_dump(STATESTORE, sort_keys=False), SECRET_STORE):
        components, problems = read(text)
        assert problems == () and len(components) == 1
        component = components[0]
        assert isinstance(component, DaprComponent) and component.key == "DaprComponent/reddog"
        assert component.properties["componentType"] == "state.azure.cosmosdb"
        assert component.scopes == ("container-app-1", "container-app-2")


def test_the_put_body_is_arms_shape_with_key_vault_references_only():
    component = read(yaml.safe_dump(STATESTORE, sort_keys=False))[0][0]
    body = put_body(component, None)
    assert body == {"properties": {**{k: v for k, v in STATESTORE["spec"].items() if k != "secrets"},
                                   "secrets": [{"name": "masterkey", "keyVaultUrl": KV + "cosmos-masterkey",
                                                "identity": "system"}]}}
    assert all(set(secret) == {"name", "keyVaultUrl", "identity"} for secret in body["properties"]["secrets"])


def test_a_scope_no_app_has_is_a_warning_not_a_problem():
    component = read(yaml.safe_dump(STATESTORE, sort_keys=False))[0][0]
    assert scope_notice(component, {"container-app-1", "container-app-2"}) == ""
    notice = scope_notice(component, {"container-app-1"})
    assert notice.startswith("warning: scope 'container-app-2' names no App") and "dapr.appId" in notice


def changed(change):
    manifest = copy.deepcopy(STATESTORE)
    change(manifest["spec"])
    return manifest


CASES = [
    ("plaintext secret", changed(lambda s: s["secrets"].append({"name": "token", "value": "hunter2"})),
     "spec.secrets[1].value", "plaintext value, which is never allowed in Git; store the value in Key Vault"),
    ("no component type", changed(lambda s: s.pop("componentType")), "spec.componentType", "is required"),
    ("component type without its building block", changed(lambda s: s.update(componentType="cosmosdb")),
     "spec.componentType", "e.g. state.azure.cosmosdb"),
    ("no version", changed(lambda s: s.pop("version")), "spec.version", "is required"),
    ("version without its v", changed(lambda s: s.update(version="1")), "spec.version", "e.g. v1"),
    ("init timeout not a duration", changed(lambda s: s.update(initTimeout="50 seconds")), "spec.initTimeout",
     "a duration such as 5s"),
    ("ignore errors as text", changed(lambda s: s.update(ignoreErrors="yes")), "spec.ignoreErrors",
     "must be true or false"),
    ("metadata with value and secretRef", changed(lambda s: s["metadata"][0].update(secretRef="masterkey")),
     "spec.metadata[0]", "needs exactly one of 'value' or 'secretRef'"),
    ("metadata with neither", changed(lambda s: s["metadata"][1].pop("value")), "spec.metadata[1]",
     "needs exactly one of 'value' or 'secretRef'"),
    ("metadata value as a number", changed(lambda s: s["metadata"][1].update(value=5)), "spec.metadata[1].value",
     "must be a string"),
    ("metadata naming an undeclared secret", changed(lambda s: s["metadata"][3].update(secretRef="nope")),
     "spec.metadata[3].secretRef", "secret 'nope' is not declared in spec.secrets"),
    ("metadata set twice", changed(lambda s: s["metadata"].append({"name": "url", "value": "x"})),
     "spec.metadata[4].name", "'url' is already set at spec.metadata[0]"),
    ("scope that is no app id", changed(lambda s: s["scopes"].append("Orders_App")), "spec.scopes[2]",
     "is not a Dapr app id"),
    ("scope listed twice", changed(lambda s: s["scopes"].append("container-app-1")), "spec.scopes[2]",
     "already listed at spec.scopes[0]"),
    ("a field of Dapr's own YAML", changed(lambda s: s.update(type="state.redis")), "spec.type",
     "unknown field; allowed here: componentType, version"),
    ("secret store that is no component name", changed(lambda s: s.update(secretStoreComponent="My Store")),
     "spec.secretStoreComponent", "the name of a Dapr secret store component"),
]


@pytest.mark.parametrize("what, manifest, field, message", CASES, ids=[c[0] for c in CASES])
def test_each_invalid_use_is_one_problem_at_its_line_and_nothing_to_apply(what, manifest, field, message):
    text = yaml.safe_dump(manifest, sort_keys=False)
    components, problems = read(text)
    assert not components, "an invalid component must never be applied"
    matching = [p for p in problems if p.field == field]
    assert matching, [str(p) for p in problems]
    problem = matching[0]
    assert message in problem.message, str(problem)
    assert problem.file == "apps/dapr.yaml" and problem.app == "DaprComponent/reddog"
    assert problem.line and deepest_key(manifest, field) in text.splitlines()[problem.line - 1]


def test_a_component_name_follows_arms_rule():
    manifest = copy.deepcopy(STATESTORE)
    manifest["metadata"]["name"] = "Red--Dog"
    components, problems = read(yaml.safe_dump(manifest, sort_keys=False))
    assert not components and [(p.field, p.line) for p in problems] == [("metadata.name", 4)]
