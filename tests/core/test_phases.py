"""Flux and Argo CD events as they really arrive (shapes from notification-controller and the
gitops-connector's Argo CD template), understood without I/O."""
from __future__ import annotations

import pytest

from shared.core.feedback_config import (
    FeedbackConfigError,
    load_configs,
    merged_pr,
    run_id,
)
from shared.core.phases import (
    parse_argo,
    parse_event,
    parse_flux,
    parse_revision,
    resources_in,
)

SHA = "42e2e5af9d49de268cd1fda3587788da4ace418a"


def flux(kind="Kustomization", reason="ReconciliationSucceeded", message="", metadata=None, severity="info", **extra):
    body = {"involvedObject": {"kind": kind, "namespace": "flux-system", "name": "apps",
                               "uid": "8e1b0c7a", "apiVersion": "kustomize.toolkit.fluxcd.io/v1"},
            "severity": severity, "timestamp": "2026-11-22T10:00:00Z", "message": message, "reason": reason,
            "reportingController": "kustomize-controller", "reportingInstance": "kustomize-controller-7f9"}
    if metadata is not None:
        body["metadata"] = metadata
    body.update(extra)
    return body


@pytest.mark.parametrize("value", [f"main@sha1:{SHA}", f"sha1:{SHA}", f"main/{SHA}", SHA,
                                   f"refs/heads/main@sha1:{SHA}", f"feature/x@sha1:{SHA}"])
def test_every_revision_format_resolves_to_the_commit(value):
    assert parse_revision(value) == SHA
    assert parse_flux(flux(metadata={"revision": value})).commit == SHA


def test_revision_from_group_prefixed_keys_and_from_the_message():
    assert parse_flux(flux(metadata={"kustomize.toolkit.fluxcd.io/revision": f"main@sha1:{SHA}"})).commit == SHA
    assert parse_flux(flux(kind="GitRepository", metadata={"source.toolkit.fluxcd.io/revision": SHA})).commit == SHA
    old = parse_flux(flux(kind="GitRepository", reason="info", message=f"Fetched revision: main/{SHA}"))
    assert old.commit == SHA and old.state == "pending" and not old.finished   # old `info` event, no metadata


def test_an_event_without_a_commit_is_understood_but_has_none():
    event = parse_flux(flux(reason="ReconciliationSucceeded", message="Reconciliation finished", metadata={}))
    assert event.commit is None
    assert parse_revision("6.3.5") is None and parse_revision(None) is None


def test_current_new_artifact_is_pending():
    event = parse_flux(flux(kind="GitRepository", reason="NewArtifact",
                            message="stored artifact for commit 'Update podinfo'",
                            metadata={"revision": f"main@sha1:{SHA}"}))
    assert (event.state, event.finished, event.context) == ("pending", False, "flux/flux-system/GitRepository/apps")


def test_progressing_change_set_is_parsed():
    message = ("CustomResourceDefinition/alerts.notification.toolkit.fluxcd.io configured\n"
               "Deployment/default/podinfo configured\nService/default/podinfo created\nNamespace/apps unchanged")
    event = parse_flux(flux(reason="Progressing", message=message, metadata={"revision": f"main@sha1:{SHA}"}))
    assert event.state == "pending" and not event.finished
    assert event.resources == ["CustomResourceDefinition/alerts.notification.toolkit.fluxcd.io",
                               "Deployment/default/podinfo", "Service/default/podinfo", "Namespace/apps"]


def test_health_check_passed_finishes_successfully():
    event = parse_flux(flux(reason="ReconciliationSucceeded",
                            message="Reconciliation finished in 1.2s, next run in 10m0s\nHealth check passed in 5s",
                            metadata={"revision": f"main@sha1:{SHA}"}))
    assert event.succeeded and event.state == "success"


@pytest.mark.parametrize("message", [
    "Health check failed after 5m0s: timeout waiting for: [Deployment/default/podinfo status: 'InProgress', "
    "Deployment/default/backend status: 'Failed']",
    "health check failed after 30s: Deployment/default/podinfo not ready; Deployment/default/backend not ready",
])
def test_health_check_failed_with_and_without_brackets(message):
    event = parse_flux(flux(reason="HealthCheckFailed", message=message, severity="error",
                            metadata={"revision": f"main@sha1:{SHA}"}))
    assert event.finished and event.state == "failure" and event.status_name == "Health"
    assert event.resources == ["Deployment/default/podinfo", "Deployment/default/backend"]


@pytest.mark.parametrize("reason", ["ValidationFailed", "BuildFailed", "ReconciliationFailed", "ArtifactFailed",
                                    "PruneFailed"])
def test_deployment_failures_finish_as_failure(reason):
    event = parse_flux(flux(reason=reason, severity="error", message="x", metadata={"revision": SHA}))
    assert event.finished and event.state == "failure"


@pytest.mark.parametrize("reason", ["Progressing", "ProgressingWithRetry", "DependencyNotReady", "HealthCheckCanceled"])
def test_in_progress_reasons_are_not_finished(reason):
    event = parse_flux(flux(reason=reason, metadata={"revision": SHA}))
    assert not event.finished and event.state == "pending"


def test_reasons_the_connector_crashes_on_and_unknown_ones_have_safe_states():
    assert parse_flux(flux(kind="HelmRelease", reason="Succeeded", metadata={"revision": SHA})).succeeded
    git = parse_flux(flux(kind="GitRepository", reason="GitOperationFailed", severity="error",
                          message="failed to checkout: auth", metadata={"revision": SHA}))
    assert git.state == "error" and not git.finished
    unknown = parse_flux(flux(reason="SomethingNew", metadata={"revision": SHA}))
    assert unknown.state == "pending" and not unknown.finished
    unknown_error = parse_flux(flux(reason="SomethingNew", severity="error", metadata={"revision": SHA}))
    assert unknown_error.state == "error" and not unknown_error.finished


def test_helm_release_upgrade_with_origin_revision():
    event = parse_flux(flux(kind="HelmRelease", reason="UpgradeSucceeded",
                            message="Helm upgrade succeeded for release default/podinfo.v3 with chart podinfo@6.5.4",
                            metadata={"revision": "6.5.4", "originRevision": f"main@sha1:{SHA}"}))
    assert event.commit == SHA and event.succeeded


def test_missing_metadata_and_odd_shapes_never_crash():
    for body in [{"involvedObject": {}}, {"involvedObject": {"kind": 3}, "message": None, "metadata": "x"},
                 {"involvedObject": {"kind": "Kustomization"}, "message": ["not", "text"]}]:
        parse_event(body)
    assert resources_in("no resources here") == []


@pytest.mark.parametrize("phase, health, state, finished", [
    ("Running", "Progressing", "pending", False),
    ("Succeeded", "Healthy", "success", True),
    ("Succeeded", "Progressing", "pending", False),
    ("Succeeded", "Degraded", "failure", True),
    ("Failed", "Missing", "failure", True),
    ("<no value>", "Healthy", "pending", False),
])
def test_argo_phases(phase, health, state, finished):
    event = parse_argo({"commitid": SHA, "phase": phase, "sync_status": "Synced", "health": health,
                        "message": "successfully synced (all tasks run)", "resources": None})
    assert (event.state, event.finished) == (state, finished)


def test_argo_no_value_commit_and_resources():
    event = parse_argo({"commitid": "<no value>", "phase": "Succeeded", "sync_status": "Synced",
                        "health": "Healthy", "message": "<no value>", "resources": None, "app": "guestbook"})
    assert event.commit is None and event.context == "argocd/guestbook" and event.message == ""
    degraded = parse_argo({"commitid": SHA, "phase": "Succeeded", "health": "Degraded", "resources": [
        {"kind": "Deployment", "namespace": "default", "name": "guestbook-ui", "health": {"status": "Degraded"}},
        {"kind": "Service", "namespace": "default", "name": "guestbook-ui", "health": {"status": "Healthy"}}]})
    assert degraded.resources == ["Deployment/default/guestbook-ui"]


def test_description_stays_under_140_characters():
    event = parse_flux(flux(reason="HealthCheckFailed", message="x" * 500, metadata={"revision": SHA}))
    assert len(event.description) <= 140 and event.description.endswith("...")


def test_run_id_and_merged_pr_come_from_the_commit_message_in_any_shape():
    assert run_id("Deploy api\n\nRun-Id: 987654") == "987654"
    assert run_id("no trailer") is None and run_id("") is None
    assert merged_pr("Merged PR 42: bump image") == 42 and merged_pr("fix typo") is None


def test_feedback_configuration_errors_name_the_field():
    with pytest.raises(FeedbackConfigError, match="not HTTPS"):
        load_configs('{"default": {"subscribers": [{"name": "s", "url": "http://x"}]}}')
    with pytest.raises(FeedbackConfigError, match="azureRepos needs org, project, repo"):
        load_configs('{"default": {"azureRepos": {"org": "https://dev.azure.com/x"}}}')
    with pytest.raises(FeedbackConfigError, match="unknown field"):
        load_configs('{"default": {"gitHub": "a/b"}}')
    assert load_configs(None) == {}


def test_the_bundled_feedback_and_operator_examples_are_valid():
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[2] / "examples"
    configs = load_configs((root / "feedback.json").read_text())
    assert set(configs) == {"default", "staging"} and configs["default"].subscribers[0].name == "spektate"
    flux_docs = list(yaml.safe_load_all((root / "flux" / "driftless-provider.yaml").read_text()))
    assert [d["kind"] for d in flux_docs] == ["Secret", "Provider", "Alert"]
    assert flux_docs[1]["spec"]["type"] == "generic-hmac" and flux_docs[1]["spec"]["address"].endswith("/api/gitopsphase")
    argo = yaml.safe_load((root / "argocd" / "argocd-notifications-cm.yaml").read_text())
    body = argo["data"]["template.driftless-phase"]
    assert all(field in body for field in ('"commitid"', '"phase"', '"health"', '"app"', '"config"'))


# --- Flux's Event.GetRevision() order and Argo CD's escaping -----------------------------------------
DIGEST = "3b6cdcc7adcc9a84d3214ee1c029543789d90b5ae69debe9efa3f66e982875de"
OTHER = "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"


def generic_hmac_body(kind: str, reason: str, message: str, metadata: dict, *, controller="kustomize-controller"):
    """A notification-controller generic / generic-hmac POST body as it arrives (Event JSON, group prefix of
    the metadata keys already stripped by notification-controller)."""
    group = {"Kustomization": "kustomize.toolkit.fluxcd.io/v1", "HelmRelease": "helm.toolkit.fluxcd.io/v2",
             "OCIRepository": "source.toolkit.fluxcd.io/v1beta2"}[kind]
    return {"involvedObject": {"kind": kind, "namespace": "flux-system", "name": "podinfo",
                               "uid": "3e5a3c52-8d6a-4c3a-9a0e-0f1c9a2b7d11", "apiVersion": group,
                               "resourceVersion": "93745"},
            "severity": "info", "timestamp": "2026-11-22T10:00:00Z", "message": message, "reason": reason,
            "metadata": metadata, "reportingController": controller, "reportingInstance": f"{controller}-7f9c"}


def test_flux_reads_the_commit_in_get_revision_order_commit_then_origin_then_revision():
    oci = generic_hmac_body("Kustomization", "ReconciliationSucceeded", "Reconciliation finished in 2s",
                            {"revision": f"latest@sha256:{DIGEST}", "originRevision": f"main@sha1:{SHA}",
                             "token": "a1b2c3"})
    assert parse_flux(oci).commit == SHA                            # not the artifact digest
    committed = generic_hmac_body("Kustomization", "ReconciliationSucceeded", "ok",
                                  {"commit": SHA, "originRevision": f"main@sha1:{OTHER}", "revision": f"main@sha1:{OTHER}"})
    assert parse_flux(committed).commit == SHA
    git = generic_hmac_body("Kustomization", "Progressing", "Deployment/default/podinfo configured",
                            {"revision": f"main@sha1:{SHA}"})
    assert parse_flux(git).commit == SHA
    helm = generic_hmac_body("HelmRelease", "UpgradeSucceeded", "Helm upgrade succeeded", {
        "revision": "6.5.4", "originRevision": f"main@sha1:{SHA}"}, controller="helm-controller")
    assert parse_flux(helm).commit == SHA


def test_flux_prefixed_keys_from_older_controllers_follow_the_same_order():
    old = generic_hmac_body("Kustomization", "ReconciliationSucceeded", "ok", {
        "kustomize.toolkit.fluxcd.io/revision": f"latest@sha256:{DIGEST}",
        "kustomize.toolkit.fluxcd.io/originRevision": f"main@sha1:{SHA}"})
    assert parse_flux(old).commit == SHA


def render_argo(template: str, app: dict) -> str:
    """Go text/template as Argo CD renders the two forms the example uses: {{.a.b}} prints the value as is
    (a missing one as <no value>), {{toJson .a.b}} prints it as JSON (Sprig's toJson; missing: null)."""
    import json
    import re

    def lookup(path: str):
        value = {"app": app}
        for part in path.strip(".").split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return value

    def one(match: re.Match) -> str:
        value = lookup(match.group(2))
        if match.group(1):
            return json.dumps(value)
        return "<no value>" if value is None else str(value)

    return re.sub(r"\{\{\s*(toJson\s+)?(\.[\w.]+)\s*\}\}", one, template)


def test_the_argo_cd_example_escapes_a_sync_message_with_quotes_and_newlines():
    import json
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[2] / "examples"
    config = yaml.safe_load((root / "argocd" / "argocd-notifications-cm.yaml").read_text())
    body = yaml.safe_load(config["data"]["template.driftless-phase"])["webhook"]["driftless"]["body"]
    message = 'one or more objects failed to apply, reason: Deployment.apps "guestbook-ui" is invalid:\n' \
              'spec.template.spec.containers[0].image: Required value \\ "quoted"'
    app = {"metadata": {"name": "guestbook"},
           "status": {"operationState": {"phase": "Failed", "message": message,
                                         "operation": {"sync": {"revision": SHA}}},
                      "sync": {"status": "OutOfSync"}, "health": {"status": "Degraded"},
                      "resources": [{"kind": "Deployment", "namespace": "default", "name": "guestbook-ui",
                                     "health": {"status": "Degraded"}}]}}
    event = parse_argo(json.loads(render_argo(body, app)))
    assert event.message == message and (event.state, event.finished, event.commit) == ("failure", True, SHA)
    assert event.resources == ["Deployment/default/guestbook-ui"]
    running = {**app, "status": {**app["status"], "operationState": {"phase": "Running"}}}   # no message yet
    assert parse_argo(json.loads(render_argo(body, running))).message == ""


def test_a_body_broken_by_a_connector_style_template_gets_a_hint_naming_toJson():
    from shared.core.phases import template_hint

    broken = b'{"commitid": "%s", "phase": "Failed", "message": "reason: "web" is invalid"}' % SHA.encode()
    assert "toJson" in template_hint(broken) and "operationState.message" in template_hint(broken)
    assert template_hint(b"{not json at all") is None
