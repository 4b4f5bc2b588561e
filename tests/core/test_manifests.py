"""The Git contract, without I/O: every problem is reported with file, document, line and field."""
from __future__ import annotations

import textwrap

from shared.core import sizes
from shared.core.manifests import load_apps, load_targets


def load(text: str, name: str = "apps/a.yaml"):
    return load_apps({name: textwrap.dedent(text).encode()})


def messages(problems) -> list[str]:
    return [str(p) for p in problems]


def test_sizes_table_is_quarter_steps_with_two_gib_per_vcpu():
    assert sizes.CONSUMPTION_SIZES[0] == (0.25, 0.5) and sizes.CONSUMPTION_SIZES[-1] == (4.0, 8.0)
    assert len(sizes.CONSUMPTION_SIZES) == 16
    assert sizes.is_allowed(2.25, 4.5) and not sizes.is_allowed(0.5, 2.0)
    assert sizes.parse_memory("512Mi") == 0.5 and sizes.format_memory(1.0) == "1Gi"


def test_every_problem_of_a_file_is_reported_at_once_with_lines():
    apps, problems = load("""\
        apiVersion: driftless.io/v1alpha1
        kind: App
        metadata:
          name: Web_1
        spec:
          containers:
            - name: web
              image: nginx
              cpu: 0.5
              memory: 1Gi
              env:
                - {name: A, secretRef: missing}
          ingress: {enabled: true, transport: quic}
          replicas: 3
        """)
    assert apps == []
    by_field = {p.field: p for p in problems}
    assert by_field["metadata.name"].line == 4 and "lowercase letters" in by_field["metadata.name"].message
    assert by_field["spec.containers[0].env[0].secretRef"].line == 12
    assert by_field["spec.ingress.transport"].line == 13 and "auto, http, http2, tcp" in by_field["spec.ingress.transport"].message
    assert by_field["spec.ingress.targetPort"].message == "is required when ingress is enabled"
    assert by_field["spec.replicas"].line == 14 and "unknown field" in by_field["spec.replicas"].message
    assert all(p.file == "apps/a.yaml" and p.document == 1 for p in problems)


def test_yaml_syntax_error_names_file_document_and_line():
    apps, problems = load("---\nkind: App\n---\nmetadata: {name: [x\n")
    assert apps == []
    syntax = [p for p in problems if "YAML syntax error" in p.message]
    assert len(syntax) == 1 and syntax[0].line == 5 and syntax[0].document == 2


def test_unknown_kind_lists_what_is_allowed():
    _, problems = load("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n")
    assert "allowed: apiVersion driftless.io/v1alpha1 or synoscd.io/v1alpha1 with kind App" in problems[0].message


def test_duplicate_names_across_files_name_both_files():
    app = "apiVersion: driftless.io/v1alpha1\nkind: App\nmetadata: {name: web}\nspec: {containers: [{name: w, image: nginx}]}\n"
    apps, problems = load_apps({"apps/one.yaml": app.encode(), "apps/two.yaml": app.encode()})
    assert apps == [] and len(problems) == 2
    assert all("apps/one.yaml" in p.message and "apps/two.yaml" in p.message for p in problems)


def test_name_rules():
    def name_problem(name):
        _, problems = load(f"apiVersion: driftless.io/v1alpha1\nkind: App\nmetadata: {{name: '{name}'}}\n"
                           "spec: {containers: [{name: w, image: nginx}]}\n")
        return [p for p in problems if p.field == "metadata.name"]
    assert not name_problem("ab") and not name_problem("a" + "b" * 31)
    for bad in ("a", "a" + "b" * 32, "1abc", "web-", "we--b", "Web"):
        assert name_problem(bad), bad


def test_plaintext_secret_is_rejected_without_echoing_the_value():
    _, problems = load("""\
        apiVersion: driftless.io/v1alpha1
        kind: App
        metadata: {name: web}
        spec:
          containers: [{name: w, image: nginx}]
          secrets:
            - {name: db, value: s3cr3t-value}
        """)
    assert len(problems) == 1 and "plaintext" in problems[0].message and "keyVaultUrl" in problems[0].message
    assert "s3cr3t" not in str(problems[0])


def test_synoscd_secret_map_accepts_key_vault_references():
    apps, problems = load("""\
        apiVersion: synoscd.io/v1alpha1
        kind: App
        metadata: {name: api, labels: {synoscd.io/managed: "true"}}
        spec:
          containers: [{name: api, image: nginx}]
          environment:
            - name: API_KEY
              valueFrom: {secretRef: api-key}
          secrets:
            api-key: /subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/corpvault/secrets/api-key
        """)
    assert problems == []
    assert apps[0].secrets[0].key_vault_url == "https://corpvault.vault.azure.net/secrets/api-key"
    assert apps[0].containers[0].env[0].secret_ref == "api-key"
    assert (apps[0].containers[0].cpu, apps[0].containers[0].memory_gib) == (0.25, 0.5)


def test_targets_are_validated_and_default_their_subscription():
    targets, problems = load_targets({"targets/t.yaml": textwrap.dedent("""\
        apiVersion: driftless.io/v1alpha1
        kind: Target
        metadata: {name: prod}
        spec: {type: aca, path: /apps/prod/, resourceGroup: rg, environment: env, prune: true, protectedApps: [keep]}
        ---
        apiVersion: driftless.io/v1alpha1
        kind: Target
        metadata: {name: aks}
        spec: {type: aks, path: k8s, resourceGroup: rg, environment: env}
        """).encode()}, default_subscription="11111111-2222-3333-4444-555555555555")
    assert [t.name for t in targets] == ["prod"]
    assert targets[0].path == "apps/prod" and targets[0].protected_apps == {"keep"} and targets[0].prune
    assert targets[0].environment_id.endswith("/resourceGroups/rg/providers/Microsoft.App/managedEnvironments/env")
    assert len(problems) == 1 and problems[0].field == "spec.type" and problems[0].document == 2
