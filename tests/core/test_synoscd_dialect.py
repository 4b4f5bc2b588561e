"""SynosCD's App dialect: its own manifests pass unchanged, and a problem is reported at the path and line the
user wrote (spec.environment[...], the secrets map key), with the fix written in the dialect the user wrote."""
from __future__ import annotations

from textwrap import dedent

from shared.core.manifests import load_apps

SEED_APP = """\
apiVersion: synoscd.io/v1alpha1
kind: App
metadata:
  name: demo-app
  labels:
    synoscd.io/managed: "true"
spec:
  containers:
    - name: app
      image: mcr.microsoft.com/azuredocs/containerapps-helloworld:latest
      cpu: 0.25
      memory: 0.5Gi
  ingress:
    enabled: true
    external: true
    targetPort: 80
  scale:
    minReplicas: 1
    maxReplicas: 3
  suspend: false
"""
"""The App manifest of SynosCD's README (the seed), verbatim."""

VAULT_ID = "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/corpvault/secrets/api-key"
EXAMPLE_APP = f"""\
apiVersion: synoscd.io/v1alpha1
kind: App
metadata:
  name: my-api-service
  namespace: production
  labels:
    synoscd.io/managed: "true"
    team: backend
  annotations:
    description: "Main REST API service"
spec:
  containers:
    - name: api
      image: myacr.azurecr.io/api:v1.2.3
      cpu: 0.5
      memory: 1Gi
  environment:
    - name: LOG_LEVEL
      value: INFO
    - name: DATABASE_HOST
      value: my-db.postgres.database.azure.com
    - name: API_KEY
      valueFrom:
        secretRef: api-key-secret
  ingress:
    enabled: true
    external: true
    targetPort: 8080
    allowedOrigins:
      - "https://app.example.com"
      - "https://api.example.com"
  scale:
    minReplicas: 2
    maxReplicas: 10
  secrets:
    api-key-secret: {VAULT_ID}
  suspend: false
"""
"""SynosCD's examples/app-example.yaml with its `{{sub}}/{{rg}}/{{vault}}` placeholders filled in."""


def load(text: str, name: str = "apps/a.yaml"):
    return load_apps({name: text.encode()})


def test_synoscd_own_manifests_pass_unchanged():
    apps, problems = load_apps({"apps/demo.yaml": SEED_APP.encode(), "apps/api.yaml": EXAMPLE_APP.encode()})
    assert problems == []
    by_name = {a.name: a for a in apps}
    api = by_name["my-api-service"]
    assert [(e.name, e.value, e.secret_ref) for e in api.containers[0].env] == [
        ("LOG_LEVEL", "INFO", None), ("DATABASE_HOST", "my-db.postgres.database.azure.com", None),
        ("API_KEY", None, "api-key-secret")]
    assert api.secrets[0].key_vault_url == "https://corpvault.vault.azure.net/secrets/api-key"
    assert by_name["demo-app"].ingress.external and by_name["demo-app"].scale.max_replicas == 3


def test_a_bad_shared_environment_secret_ref_is_reported_where_the_user_wrote_it():
    text = EXAMPLE_APP.replace("secretRef: api-key-secret", "secretRef: api-key-secrets")
    text = text.replace("      memory: 1Gi\n", "      memory: 1Gi\n    - {name: side, image: myacr.azurecr.io/side:1, cpu: 0.5,"
                                              " memory: 1Gi}\n", 1)
    apps, problems = load(text)
    assert apps == [] and len(problems) == 1                 # once, not once per container
    problem = problems[0]
    assert problem.field == "spec.environment[2].valueFrom.secretRef"
    assert problem.line == text.splitlines().index("        secretRef: api-key-secrets") + 1
    assert "secret 'api-key-secrets' is not declared in spec.secrets (declared: api-key-secret)" in problem.message
    assert "secrets: {api-key-secrets: https://<vault>.vault.azure.net/secrets/<name>}" in problem.message
    assert "keyVaultUrl" not in problem.message


def test_the_issue_example_line_24_is_reported_at_line_24():
    _, problems = load(EXAMPLE_APP.replace("secretRef: api-key-secret", "secretRef: missing"))
    assert [(p.field, p.line) for p in problems] == [("spec.environment[2].valueFrom.secretRef", 24)]


def test_a_plaintext_value_in_the_secrets_map_is_reported_at_its_key_with_the_map_form_fix():
    text = EXAMPLE_APP.replace(f"    api-key-secret: {VAULT_ID}\n",
                               f"    api-key-secret: {VAULT_ID}\n    db-password: hunter2-plaintext\n")
    apps, problems = load(text)
    assert apps == [] and len(problems) == 1
    problem = problems[0]
    assert problem.field == "spec.secrets.db-password"
    assert problem.line == text.splitlines().index("    db-password: hunter2-plaintext") + 1
    assert problem.message.endswith("store the value in Key Vault and reference it: "
                                    "secrets: {db-password: https://<vault>.vault.azure.net/secrets/<name>}")
    assert "hunter2" not in str(problem)


def test_a_placeholder_reference_is_not_called_plaintext_and_a_bad_key_is_named():
    text = EXAMPLE_APP.replace(VAULT_ID, "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/"
                                         "vaults/{vault}/secrets/api-key")
    text = text.replace("  suspend: false\n", "    Bad_Name: https://corpvault.vault.azure.net/secrets/x\n"
                                              "  suspend: false\n")
    apps, problems = load(text)
    by_field = {p.field: p for p in problems}
    assert apps == [] and set(by_field) == {"spec.secrets.api-key-secret", "spec.secrets.Bad_Name"}
    assert "is not a Key Vault secret reference" in by_field["spec.secrets.api-key-secret"].message
    assert "plaintext" not in by_field["spec.secrets.api-key-secret"].message
    assert by_field["spec.secrets.Bad_Name"].line == text.splitlines().index(
        "    Bad_Name: https://corpvault.vault.azure.net/secrets/x") + 1


def test_driftless_manifests_keep_the_list_form_fix_and_their_own_value_from_path():
    apps, problems = load(dedent("""\
        apiVersion: driftless.io/v1alpha1
        kind: App
        metadata: {name: web}
        spec:
          containers:
            - name: web
              image: nginx
              env:
                - name: A
                  valueFrom: {secretRef: missing}
          secrets:
            - {name: db, value: hunter2-plaintext}
        """))
    by_field = {p.field: p for p in problems}
    assert apps == [] and set(by_field) == {"spec.containers[0].env[0].valueFrom.secretRef", "spec.secrets[0].value"}
    assert by_field["spec.containers[0].env[0].valueFrom.secretRef"].line == 10
    assert "{name: missing, keyVaultUrl: https://<vault>.vault.azure.net/secrets/<name>, identity: system}" in \
        by_field["spec.containers[0].env[0].valueFrom.secretRef"].message
    assert "{name: <secret>, keyVaultUrl:" in by_field["spec.secrets[0].value"].message


def test_a_reference_to_a_declared_but_invalid_secret_is_only_the_secrets_problem():
    text = EXAMPLE_APP.replace(VAULT_ID, "not-a-reference")
    _, problems = load(text)
    assert [p.field for p in problems] == ["spec.secrets.api-key-secret"]
