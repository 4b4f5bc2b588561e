"""AKS Targets (issue #6) through the real lightkube client against devtools/kube_stub.py over HTTPS,
from real Git repositories. Each test states one promise and fails if it is broken."""
from __future__ import annotations

import base64
import json
import textwrap

import pytest
import yaml

from devtools.kube_stub import APPLY, CLUSTER_ADMIN, KubeStub
from shared.adapters.kubernetes import _kubeconfig_from_arm
from shared.config.settings import Settings
from shared.engines.reconciler import Reconciler
from tests.conftest import SUBSCRIPTION, outcomes, sync

KUBE_TOKEN = "kube-test-token"
DEPLOY = "/apis/apps/v1/namespaces/default/deployments/web"
CONFIG = "/api/v1/namespaces/default/configmaps/settings"


@pytest.fixture(scope="session")
def kube_server(cert_dir):
    server = KubeStub(cert_dir=cert_dir, token=KUBE_TOKEN).start()
    yield server
    server.stop()


@pytest.fixture
def kube(kube_server):
    kube_server.reset()
    return kube_server


@pytest.fixture
def kubeconfig(kube, tmp_path) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "aks-prod",
        "clusters": [{"name": "aks-prod", "cluster": {"server": kube.url, "certificate-authority": kube.ca_path}}],
        "contexts": [{"name": "aks-prod", "context": {"cluster": "aks-prod", "user": "driftless"}}],
        "users": [{"name": "driftless", "user": {"token": KUBE_TOKEN}}]}))
    return str(path)


@pytest.fixture
def cluster(repo, kubeconfig):
    """Write and commit the aks Target (keyword args become spec fields); a Reconciler for it."""
    def build(**spec) -> Reconciler:
        fields = {"type": "aks", "path": "k8s", "resourceGroup": "rg-aks", "cluster": "aks-prod", **spec}
        repo.write("targets/aks.yaml", yaml.safe_dump({"apiVersion": "driftless.io/v1alpha1", "kind": "Target",
                                                       "metadata": {"name": "aks"}, "spec": fields}))
        repo.commit("target")
        return Reconciler(Settings.from_env({"DRIFTLESS_REPO_URL": str(repo.path), "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
                                             "DRIFTLESS_KUBECONFIG": kubeconfig}))
    return build


def deployment(name: str = "web", image: str = "nginx:1.27", replicas: int = 2, namespace: str = "") -> str:
    ns = f"\n          namespace: {namespace}" if namespace else ""
    return textwrap.dedent(f"""\
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: {name}{ns}
          labels: {{app: {name}}}
        spec:
          replicas: {replicas}
          selector: {{matchLabels: {{app: {name}}}}}
          template:
            metadata: {{labels: {{app: {name}}}}}
            spec:
              containers:
                - {{name: {name}, image: "{image}", ports: [{{containerPort: 8080}}]}}
        """)


def configmap(name: str = "settings", value: str = "info") -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{LOG_LEVEL: {value}}}\n"


def pass_of(reconciler: Reconciler, **kwargs):
    return sync(reconciler, **kwargs)["aks"]


def writes(kube: KubeStub) -> list[tuple[str, str]]:
    return [(c.method, c.path) for c in kube.writes()]


def test_first_pass_creates_objects_with_ssa_and_ownership_labels(repo, kube, cluster):
    repo.write("k8s/web.yaml", deployment() + "---\n" + configmap())
    repo.commit()
    result = pass_of(cluster())
    assert {o.app: o.action for o in result.outcomes} == {"Deployment/default/web": "created",
                                                         "ConfigMap/default/settings": "created"}
    assert result.ok and all(o.healthy for o in result.outcomes)
    live = kube.get(DEPLOY)
    assert live["metadata"]["labels"] == {"app": "web", "app.kubernetes.io/managed-by": "driftless",
                                          "driftless.io/target": "aks"}
    assert [m["manager"] for m in live["metadata"]["managedFields"]] == ["driftless"]
    applies = [c for c in kube.writes() if c.method == "PATCH"]
    assert len(applies) == 2 and all(c.content_type == APPLY and c.field_manager == "driftless" and not c.force
                                     for c in applies)
    assert json.loads(json.dumps(result.to_dict()))["summary"]["created"] == 2


def test_second_pass_is_steady_state_with_only_gets_and_dry_runs(repo, kube, cluster):
    repo.write("k8s/web.yaml", deployment() + "---\n" + configmap())
    repo.commit()
    reconciler = cluster()
    pass_of(reconciler)
    kube.requests.clear()
    result = pass_of(reconciler)
    assert {o.action for o in result.outcomes} == {"unchanged"} and result.ok
    assert kube.writes() == []
    patches = [c for c in kube.requests if c.method == "PATCH"]
    assert len(patches) == 2 and all(c.dry_run for c in patches)
    assert {c.method for c in kube.requests} == {"GET", "PATCH"}
    lists = [c for c in kube.requests if c.label_selector]
    assert lists and all(c.label_selector == "app.kubernetes.io/managed-by=driftless,driftless.io/target=aks"
                         for c in lists)


def test_drift_is_shown_as_path_desired_live_then_healed(repo, kube, cluster):
    repo.write("k8s/web.yaml", configmap())
    repo.commit()
    reconciler = cluster()
    pass_of(reconciler)
    kube.edit(CONFIG, {"data": {"LOG_LEVEL": None}, "metadata": {"labels": {"team": "platform"}}})
    revision = reconciler.source.head()
    target = reconciler.targets(revision)[0][0]
    step = reconciler.plan(target, revision).steps[0]
    assert (step.kind, [(c.path, c.desired, c.live) for c in step.changes]) == (
        "update", [("data.LOG_LEVEL", "info", None)])
    healed = outcomes(pass_of(reconciler))["ConfigMap/default/settings"]
    assert healed.action == "updated" and healed.reason == "drifted: data.LOG_LEVEL"
    live = kube.get(CONFIG)
    assert live["data"] == {"LOG_LEVEL": "info"} and live["metadata"]["labels"]["team"] == "platform"


def test_field_removed_from_git_is_removed_from_the_cluster(repo, kube, cluster):
    repo.write("k8s/settings.yaml", configmap().replace("data: {LOG_LEVEL: info}", "data: {LOG_LEVEL: info, A: b}"))
    repo.commit()
    reconciler = cluster()
    pass_of(reconciler)
    repo.write("k8s/settings.yaml", configmap())
    repo.commit()
    assert outcomes(pass_of(reconciler))["ConfigMap/default/settings"].action == "updated"
    assert kube.get(CONFIG)["data"] == {"LOG_LEVEL": "info"}


def test_conflict_with_another_manager_is_reported_and_forced_only_when_the_target_says_so(repo, kube, cluster):
    repo.write("k8s/web.yaml", deployment())
    repo.commit()
    pass_of(cluster())
    kube.edit(DEPLOY, {"spec": {"replicas": 5}}, manager="kubectl-scale")
    kube.requests.clear()
    refused = outcomes(pass_of(cluster()))["Deployment/default/web"]
    assert refused.action == "failed" and 'conflict with "kubectl-scale"' in refused.reason
    assert ".spec.replicas" in refused.reason and "force: true" in refused.reason
    assert refused.diff == [{"path": "spec.replicas", "desired": 2, "live": 5}]
    assert kube.get(DEPLOY)["spec"]["replicas"] == 5 and kube.writes() == []
    forced = outcomes(pass_of(cluster(force=True)))["Deployment/default/web"]
    assert forced.action == "updated" and kube.get(DEPLOY)["spec"]["replicas"] == 2
    assert [c.force for c in kube.writes()] == [True]


def test_namespaces_and_crds_are_applied_before_everything_else(repo, kube, cluster):
    kube.grant(CLUSTER_ADMIN)                        # Namespaces and CRDs need more than the default RBAC Writer
    repo.write("k8s/a-widgets.yaml", textwrap.dedent("""\
        apiVersion: example.com/v1
        kind: Widget
        metadata: {name: first, namespace: team}
        spec: {size: 3}
        """))
    repo.write("k8s/b-app.yaml", deployment(namespace="team") + "---\n" + configmap())
    repo.write("k8s/z-platform.yaml", textwrap.dedent("""\
        apiVersion: apiextensions.k8s.io/v1
        kind: CustomResourceDefinition
        metadata: {name: widgets.example.com}
        spec:
          group: example.com
          scope: Namespaced
          names: {kind: Widget, plural: widgets, singular: widget}
          versions: [{name: v1, served: true, storage: true}]
        ---
        apiVersion: v1
        kind: Namespace
        metadata: {name: team}
        """))
    repo.commit()
    result = pass_of(cluster())
    assert result.ok, [(o.app, o.reason) for o in result.outcomes]
    order = [c.path.split("/")[-2] for c in kube.writes()]
    assert sorted(order[:2]) == ["customresourcedefinitions", "namespaces"]
    assert sorted(order[2:]) == ["configmaps", "deployments", "widgets"]
    assert kube.get("/apis/example.com/v1/namespaces/team/widgets/first")["spec"] == {"size": 3}


def test_rollout_health_comes_from_status_fields(repo, kube, cluster):
    repo.write("k8s/web.yaml", deployment())
    repo.write("k8s/job.yaml", "apiVersion: batch/v1\nkind: Job\nmetadata: {name: migrate}\n"
                               "spec: {template: {spec: {containers: [{name: m, image: busybox}]}}}\n")
    repo.commit()
    kube.rollouts = False
    created = outcomes(pass_of(cluster()))
    assert created["Deployment/default/web"].healthy is False
    assert "rollout not observed yet" in created["Deployment/default/web"].health_reason
    assert created["Job/default/migrate"].healthy is False and "not complete" in created["Job/default/migrate"].health_reason
    kube.set_status(DEPLOY, {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 1})
    halfway = outcomes(pass_of(cluster()))["Deployment/default/web"]
    assert halfway.action == "unchanged" and halfway.healthy is False
    assert halfway.health_reason == "rollout in progress: 2 of 2 updated, 1 available"
    kube.set_status(DEPLOY, {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2})
    kube.set_status("/apis/batch/v1/namespaces/default/jobs/migrate",
                    {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]})
    assert all(o.healthy for o in pass_of(cluster()).outcomes)


def prune_setup(repo, cluster, names=("a", "b", "c", "d")) -> None:
    for name in names:
        repo.write(f"k8s/{name}.yaml", configmap(name))
    repo.commit()
    pass_of(cluster())


def test_orphan_is_reported_with_prune_off_and_deleted_with_prune_on(repo, kube, cluster):
    prune_setup(repo, cluster)
    repo.remove("k8s/d.yaml")
    repo.commit()
    kept = outcomes(pass_of(cluster()))["ConfigMap/default/d"]
    assert kept.action == "skipped" and "orphan" in kept.reason and "prune is off" in kept.reason
    assert kube.get("/api/v1/namespaces/default/configmaps/d") is not None
    deleted = outcomes(pass_of(cluster(prune=True)))["ConfigMap/default/d"]
    assert deleted.action == "deleted" and kube.get("/api/v1/namespaces/default/configmaps/d") is None
    assert [c.method for c in kube.writes()].count("DELETE") == 1


def test_prune_keeps_protected_and_unowned_objects(repo, kube, cluster):
    prune_setup(repo, cluster)
    kube.edit(CONFIG.replace("settings", "a"), {"metadata": {"labels": {"driftless.io/target": "other"}}})
    repo.remove("k8s/c.yaml")
    repo.remove("k8s/d.yaml")
    repo.commit()
    result = outcomes(pass_of(cluster(prune=True, protected=["ConfigMap/default/d"])))
    assert result["ConfigMap/default/c"].action == "deleted"
    assert result["ConfigMap/default/d"].action == "skipped" and "listed in the Target's protected" in result["ConfigMap/default/d"].reason
    assert result["ConfigMap/default/a"].action == "failed" and "driftless.io/target=other" in result["ConfigMap/default/a"].reason
    assert kube.get("/api/v1/namespaces/default/configmaps/d") is not None


def test_degraded_pass_deletes_nothing(repo, kube, cluster):
    prune_setup(repo, cluster)
    repo.remove("k8s/d.yaml")
    repo.write("k8s/broken.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {labels: {}}\n")
    repo.commit()
    result = pass_of(cluster(prune=True))
    assert result.degraded and "degraded" in result.prune
    assert result.problems[0]["field"] == "metadata.name" and result.problems[0]["line"] == 3
    assert outcomes(result)["ConfigMap/default/d"].action == "skipped"
    assert kube.get("/api/v1/namespaces/default/configmaps/d") is not None


def test_removing_everything_is_refused_unless_allow_empty(repo, kube, cluster):
    repo.write("k8s/README.md", "manifests live here")
    prune_setup(repo, cluster, names=("a", "b"))
    for name in ("a.yaml", "b.yaml"):
        repo.remove(f"k8s/{name}")
    repo.commit()
    refused = pass_of(cluster(prune=True))
    assert "prune refused" in refused.prune and "2 of 2 owned objects" in refused.prune and "allowEmpty" in refused.prune
    assert "DELETE" not in [c.method for c in kube.writes()]
    allowed = outcomes(pass_of(cluster(prune=True, allowEmpty=True)))
    assert allowed["ConfigMap/default/a"].action == "deleted" and allowed["ConfigMap/default/b"].action == "deleted"
    assert kube.get("/api/v1/namespaces/default/configmaps/a") is None


def test_plaintext_secret_is_rejected_without_echoing_it_and_nothing_of_it_is_written(repo, kube, cluster):
    repo.write("k8s/secret.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\n"
                                  "stringData: {password: hunter2-plaintext}\n")
    repo.write("k8s/settings.yaml", configmap())
    repo.commit()
    result = pass_of(cluster())
    secret = outcomes(result)["Secret/default/db"]
    assert secret.action == "failed" and "SOPS" in secret.reason and "Secrets Store CSI driver" in secret.reason
    assert result.problems[0]["file"] == "k8s/secret.yaml" and result.problems[0]["field"] == "stringData"
    assert "hunter2" not in json.dumps(result.to_dict())
    assert all(not c.path.endswith("/secrets/db") for c in kube.requests)
    assert outcomes(result)["ConfigMap/default/settings"].action == "created"


def test_kustomization_folder_is_refused_as_a_whole(repo, kube, cluster):
    repo.write("k8s/base/kustomization.yaml", "resources: [web.yaml]\n")
    repo.write("k8s/base/web.yaml", deployment())
    repo.write("k8s/settings.yaml", configmap())
    repo.commit()
    result = pass_of(cluster())
    assert result.degraded and len(result.problems) == 1
    assert result.problems[0]["file"] == "k8s/base/kustomization.yaml"
    assert "Kustomize is not supported yet" in result.problems[0]["message"]
    assert kube.get(DEPLOY) is None and set(outcomes(result)) == {"ConfigMap/default/settings"}


def test_duplicates_across_files_name_both_and_apply_neither(repo, kube, cluster):
    repo.write("k8s/one.yaml", configmap())
    repo.write("k8s/two.yaml", configmap().replace("metadata: {name: settings}",
                                                   "metadata: {name: settings, namespace: default}"))
    repo.commit()
    result = pass_of(cluster())
    assert [(p["file"], p["line"]) for p in result.problems] == [("k8s/one.yaml", 3), ("k8s/two.yaml", 3)]
    assert "k8s/one.yaml (document 1), k8s/two.yaml (document 1)" in result.problems[0]["message"]
    assert outcomes(result)["ConfigMap/default/settings"].action == "failed" and kube.writes() == []


def test_flux_assist_annotates_once_per_new_revision(repo, kube, cluster):
    kube.grant(CLUSTER_ADMIN)                        # Flux's kinds are custom resources: not in RBAC Writer
    repo.write("k8s/flux.yaml", textwrap.dedent("""\
        apiVersion: v1
        kind: Namespace
        metadata: {name: flux-system}
        ---
        apiVersion: apiextensions.k8s.io/v1
        kind: CustomResourceDefinition
        metadata: {name: gitrepositories.source.toolkit.fluxcd.io}
        spec:
          group: source.toolkit.fluxcd.io
          scope: Namespaced
          names: {kind: GitRepository, plural: gitrepositories}
          versions: [{name: v1, served: true, storage: true}]
        ---
        apiVersion: source.toolkit.fluxcd.io/v1
        kind: GitRepository
        metadata: {name: apps, namespace: flux-system}
        spec: {interval: 10m, url: "https://github.com/contoso/apps"}
        """))
    repo.commit()
    reconciler = cluster(fluxAssist=[{"kind": "GitRepository", "name": "apps"}])
    result = outcomes(pass_of(reconciler))
    nudge = result["GitRepository/flux-system/apps"]
    assert nudge.action == "updated" and "reconcile.fluxcd.io/requestedAt" in nudge.reason
    path = "/apis/source.toolkit.fluxcd.io/v1/namespaces/flux-system/gitrepositories/apps"
    stamp = kube.get(path)["metadata"]["annotations"]["reconcile.fluxcd.io/requestedAt"]
    assert stamp.endswith("Z") and "T" in stamp
    merges = [c for c in kube.writes() if c.content_type == "application/merge-patch+json"]
    assert [c.path for c in merges] == [path]
    kube.requests.clear()
    pass_of(reconciler)
    assert kube.writes() == []


ROLE = textwrap.dedent("""\
    apiVersion: rbac.authorization.k8s.io/v1
    kind: Role
    metadata: {name: reader}
    rules: [{apiGroups: [""], resources: [pods], verbs: [get]}]
    """)


def test_the_stub_refuses_what_rbac_writer_may_not_do_with_a_kubernetes_status(kube):
    import requests

    def call(method: str, path: str, **kwargs):
        return requests.request(method, kube.url + path, headers={"Authorization": f"Bearer {KUBE_TOKEN}",
                                                                  **kwargs.pop("headers", {})},
                                verify=kube.ca_path, timeout=10, **kwargs)

    refused = call("GET", "/apis/rbac.authorization.k8s.io/v1/roles")
    assert refused.status_code == 403 and refused.json() == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": f'roles.rbac.authorization.k8s.io is forbidden: User "{kube.user}" cannot list resource "roles" '
                   'in API group "rbac.authorization.k8s.io" at the cluster scope: User does not have access to the '
                   'resource in Azure. Update role assignment to allow access.',
        "reason": "Forbidden", "details": {"group": "rbac.authorization.k8s.io", "kind": "roles"}, "code": 403}
    named = call("GET", "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings/x").json()
    assert named["message"].startswith('rolebindings.rbac.authorization.k8s.io "x" is forbidden: User ')
    assert 'cannot get resource "rolebindings"' in named["message"] and 'in the namespace "default"' in named["message"]
    assert named["details"] == {"name": "x", "group": "rbac.authorization.k8s.io", "kind": "rolebindings"}
    assert call("GET", "/api/v1/namespaces/default").status_code == 200            # namespaces: read only
    patch = call("PATCH", "/api/v1/namespaces/team?fieldManager=x", data="apiVersion: v1\nkind: Namespace\n"
                 "metadata: {name: team}\n", headers={"Content-Type": APPLY})
    assert patch.status_code == 403 and 'cannot patch resource "namespaces" in API group ""' in patch.json()["message"]
    assert call("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions").status_code == 403
    assert call("GET", "/apis/example.com/v1/widgets").status_code == 403        # refused before it is looked up
    assert call("GET", "/apis/apps/v1/deployments").status_code == 200
    kube.grant(CLUSTER_ADMIN)
    assert call("GET", "/apis/rbac.authorization.k8s.io/v1/roles").status_code == 200
    assert call("GET", "/apis/example.com/v1/widgets").status_code == 404


def test_with_the_granted_role_a_pass_lists_only_kinds_it_may_prune_and_succeeds(repo, kube, cluster):
    repo.write("k8s/web.yaml", deployment() + "---\n" + configmap())
    repo.commit()
    result = pass_of(cluster(prune=True))
    assert result.ok and not result.error, [(o.app, o.action, o.reason) for o in result.outcomes]
    listed = {c.path for c in kube.requests if c.method == "GET" and c.label_selector}
    assert not any("rbac.authorization.k8s.io" in path or path.endswith("/namespaces") for path in listed)
    assert "/apis/apps/v1/deployments" in listed and "/api/v1/configmaps" in listed


def test_a_kind_the_role_may_not_touch_fails_alone_and_names_the_missing_permission(repo, kube, cluster):
    prune_setup(repo, cluster, names=("a", "b", "c"))
    kube.requests.clear()
    repo.remove("k8s/c.yaml")
    repo.write("k8s/role.yaml", ROLE)
    repo.write("k8s/team.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n")
    repo.write("k8s/web.yaml", deployment())
    repo.commit()
    result = outcomes(pass_of(cluster(prune=True)))
    role, kind, namespace = result["Role/default/reader"], result["Role/*"], result["Namespace/team"]
    assert role.action == "failed" and "is forbidden" in role.reason
    assert "Microsoft.ContainerService/managedClusters/rbac.authorization.k8s.io/roles/read" in role.reason
    assert "docs/aks.md" in role.reason
    assert kind.action == "failed" and "prune cannot list Role objects" in kind.reason
    assert "rbac.authorization.k8s.io/roles/read" in kind.reason
    assert namespace.action == "failed" and "Microsoft.ContainerService/managedClusters/namespaces/write" in namespace.reason
    assert result["Deployment/default/web"].action == "created" and kube.get(DEPLOY) is not None
    assert result["ConfigMap/default/c"].action == "deleted"                 # prune of the other kinds goes on
    tried = [c.path for c in kube.writes()]
    assert tried[0] == "/api/v1/namespaces/team"                             # tried first, refused
    assert sorted(tried[1:]) == ["/api/v1/namespaces/default/configmaps/c",  # in parallel
                                 "/apis/apps/v1/namespaces/default/deployments/web"]
    assert kube.get("/api/v1/namespaces/team") is None


def test_kubeconfig_from_arm_takes_only_server_and_ca():
    ca = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").decode()
    document = textwrap.dedent(f"""\
        apiVersion: v1
        kind: Config
        clusters:
        - cluster:
            certificate-authority-data: {ca}
            server: https://aks-prod-dns-4f2a1c.hcp.westeurope.azmk8s.io:443
          name: aks-prod
        contexts:
        - context:
            cluster: aks-prod
            user: clusterUser_rg-aks_aks-prod
          name: aks-prod
        current-context: aks-prod
        preferences: {{}}
        users:
        - name: clusterUser_rg-aks_aks-prod
          user:
            exec:
              apiVersion: client.authentication.k8s.io/v1beta1
              command: kubelogin
              args: [get-token, --login, devicecode, --server-id, 6dae42f8-4368-4678-94ff-3960e28e3630]
        """).encode()
    assert _kubeconfig_from_arm(document) == ("https://aks-prod-dns-4f2a1c.hcp.westeurope.azmk8s.io:443", ca)
    with pytest.raises(ValueError):
        _kubeconfig_from_arm(b"apiVersion: v1\nkind: Config\nclusters: []\n")


def test_aks_target_fields_are_validated(repo):
    from shared.core.manifests import load_targets

    targets, problems = load_targets({"targets/t.yaml": textwrap.dedent("""\
        apiVersion: driftless.io/v1alpha1
        kind: Target
        metadata: {name: aks}
        spec:
          type: aks
          path: k8s
          resourceGroup: rg
          cluster: aks-prod
          protected: [ConfigMap/default/keep, Namespace/team, bad]
          fluxAssist: [{kind: HelmRelease, name: x}]
        """).encode()}, default_subscription=SUBSCRIPTION)
    assert targets == []
    assert {p.field for p in problems} == {"spec.protected[2]", "spec.fluxAssist[0].kind"}
