"""Flux and Argo CD phase events, understood: which commit, which operator object, what state,
finished or not. Pure functions; nothing here raises on a payload of an unexpected shape.

Flux: the notification-controller generic webhook body (`involvedObject`, `severity`,
`timestamp`, `message`, `reason`, `metadata`, `reportingController`). Argo CD: the
gitops-connector template (`commitid`, `phase`, `sync_status`, `health`, `message`,
`resources`), plus optional `app` and `config` fields.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from shared.core.outcome import PassResult

PENDING, SUCCESS, FAILURE, ERROR = "pending", "success", "failure", "error"
NO_VALUE = "<no value>"
DESCRIPTION_LIMIT = 140

_SHA = r"(?:[0-9a-f]{40}|[0-9a-f]{64})"
_REVISION = re.compile(rf"^(?:(?P<ref>.+?)[@/])?(?:sha1:|sha256:)?(?P<sha>{_SHA})$")
_MESSAGE_REVISION = re.compile(rf"(?:revision|Revision)[:\s]+(?:[^\s'\"]*?[@/])?(?:sha1:|sha256:)?({_SHA})\b")
_RESOURCE = re.compile(r"\b([A-Z][A-Za-z0-9]+)/([a-z0-9][a-z0-9.-]*)(?:/([a-z0-9][a-z0-9.-]*))?")
_REVISION_KEYS = ("commit", "originRevision", "revision")
"""Flux's Event.GetRevision() order (fluxcd/pkg apis/event): the Git `commit`, then the source's
`originRevision` (the commit an OCI artifact or Helm chart was built from), then the artifact `revision`
(for an OCIRepository a digest, not a commit). notification-controller strips the `<group>/` prefix of
the keys; older controllers sent them prefixed (`kustomize.toolkit.fluxcd.io/revision`): each key is read
bare first, then with any prefix."""

FLUX_SUCCEEDED = {"ReconciliationSucceeded", "Succeeded", "InstallSucceeded", "UpgradeSucceeded",
                  "TestSucceeded", "RollbackSucceeded"}
FLUX_FAILED = {"HealthCheckFailed", "ReconciliationFailed", "BuildFailed", "ValidationFailed", "ArtifactFailed",
               "PruneFailed", "InstallFailed", "UpgradeFailed", "TestFailed", "RollbackFailed", "UninstallFailed",
               "DriftDetectionFailed"}
FLUX_IN_PROGRESS = {"Progressing", "ProgressingWithRetry", "DependencyNotReady", "HealthCheckCanceled",
                    "ArtifactUpToDate", "NewArtifact", "GitOperationSucceeded", "ArtifactInStorage"}
FLUX_SOURCE_FAILED = {"GitOperationFailed", "AuthenticationFailed", "StorageOperationFailed", "URLInvalid",
                      "VerificationError", "IllegalPath", "InvalidSTSConfiguration", "InvalidProviderConfiguration"}
DEPLOYERS = {"Kustomization", "HelmRelease"}
SOURCES = {"GitRepository", "OCIRepository", "Bucket", "HelmRepository", "HelmChart"}


@dataclass
class PhaseEvent:
    """One operator event in the terms CI understands (GitHub commit status states)."""

    operator: str                  # "flux" | "argocd" | "driftless"
    commit: str | None
    context: str                   # flux/<namespace>/<kind>/<name>, argocd/<app>, driftless/<target>
    kind: str
    name: str
    state: str                     # pending | success | failure | error
    finished: bool
    reason: str = ""
    message: str = ""
    resources: list[str] = field(default_factory=list)
    config: str = "default"
    status_name: str = ""

    @property
    def succeeded(self) -> bool:
        return self.finished and self.state == SUCCESS

    @property
    def description(self) -> str:
        """A commit-status description under 140 characters."""
        text = f"{self.reason}: {first_line(self.message)}" if self.reason else first_line(self.message)
        return text if len(text) <= DESCRIPTION_LIMIT else text[: DESCRIPTION_LIMIT - 3] + "..."

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def first_line(text: str) -> str:
    return (text or "").strip().splitlines()[0].strip() if (text or "").strip() else ""


def parse_revision(value: Any) -> str | None:
    """`main@sha1:<sha>`, `sha1:<sha>`, `main/<sha>`, `<sha>` (and sha256) -> the hex SHA; else None."""
    if not isinstance(value, str):
        return None
    match = _REVISION.match(value.strip().lower())
    return match.group("sha") if match else None


def _text(value: Any) -> str:
    if value is None or value == NO_VALUE:
        return ""
    return value if isinstance(value, str) else str(value)


def resources_in(message: str) -> list[str]:
    """Kubernetes objects named in a message (`Kind/namespace/name` or `Kind/name`), in order, no repeats."""
    found = ["/".join(p for p in match.groups() if p) for match in _RESOURCE.finditer(message or "")]
    return list(dict.fromkeys(found))


def is_flux(body: Mapping[str, Any]) -> bool:
    return isinstance(body.get("involvedObject"), Mapping)


def parse_flux(body: Mapping[str, Any]) -> PhaseEvent:
    """A Flux notification-controller event. Unknown reasons are pending and unfinished (never a callback)."""
    obj = body.get("involvedObject") if isinstance(body.get("involvedObject"), Mapping) else {}
    metadata = body.get("metadata") if isinstance(body.get("metadata"), Mapping) else {}
    kind, name, namespace = _text(obj.get("kind")), _text(obj.get("name")), _text(obj.get("namespace"))
    reason, message = _text(body.get("reason")), _text(body.get("message"))
    severity = _text(body.get("severity")).lower()
    commit = _flux_commit(metadata)
    if commit is None:
        match = _MESSAGE_REVISION.search(message)
        commit = match.group(1) if match else None
    state, finished = _flux_state(kind, reason, severity, message)
    config = _text(metadata.get("config")) or "default"
    return PhaseEvent("flux", commit, f"flux/{namespace}/{kind}/{name}".replace("//", "/"), kind, name, state,
                      finished, reason, message, resources_in(message), config,
                      "Health" if "health" in reason.lower() else "Sync")


def _flux_commit(metadata: Mapping[str, Any]) -> str | None:
    """The commit of a Flux event's metadata in GetRevision() order; a key whose value is no commit (a chart
    version, an OCI digest of a non-Git artifact) is passed over for the next."""
    for key in _REVISION_KEYS:
        values = [metadata.get(key)] + [v for k, v in metadata.items() if str(k).endswith("/" + key)]
        sha = next((sha for value in values if (sha := parse_revision(value))), None)
        if sha:
            return sha
    return None


def _flux_state(kind: str, reason: str, severity: str, message: str) -> tuple[str, bool]:
    deployer = kind in DEPLOYERS
    if reason in FLUX_SUCCEEDED or (reason == "" and "health check passed" in message.lower()):
        return SUCCESS, deployer
    if reason in FLUX_FAILED:
        return FAILURE, deployer
    if reason in FLUX_SOURCE_FAILED:
        return ERROR, False
    if reason in FLUX_IN_PROGRESS:
        return PENDING, False
    return (ERROR if severity == "error" else PENDING), False


def parse_argo(body: Mapping[str, Any]) -> PhaseEvent:
    """An Argo CD notification in the gitops-connector template; `<no value>` means absent."""
    phase, health = _text(body.get("phase")), _text(body.get("health"))
    sync, message = _text(body.get("sync_status")), _text(body.get("message"))
    app = _text(body.get("app")) or "application"
    resources = body.get("resources") if isinstance(body.get("resources"), list) else []
    unhealthy = [f"{r.get('kind')}/{r.get('namespace')}/{r.get('name')}".replace("//", "/")
                 for r in resources if isinstance(r, Mapping)
                 and isinstance(r.get("health"), Mapping) and r["health"].get("status") not in (None, "Healthy")]
    terminal = phase in ("Succeeded", "Failed", "Error")
    finished = terminal and health not in ("Progressing", "")
    if phase == "Succeeded" and health == "Healthy":
        state = SUCCESS
    elif phase in ("Failed", "Error") or (phase == "Succeeded" and health in ("Degraded", "Missing")):
        state = FAILURE
    else:
        state = PENDING
    reason = " ".join(p for p in (phase, health, sync) if p)
    return PhaseEvent("argocd", parse_revision(body.get("commitid")), f"argocd/{app}", "Application", app, state,
                      finished and state in (SUCCESS, FAILURE), reason, message, unhealthy,
                      _text(body.get("config")) or "default", "Health" if health else "Sync")


_CONNECTOR_FIELDS = ('"commitid"', '"sync_status"', '"operationState')


def template_hint(body: bytes) -> str | None:
    """For a body that is not valid JSON and looks like the gitops-connector style Argo CD template (a value
    pasted between quotes unescaped, so a quote or newline in the sync message broke the JSON): the fix."""
    text = body[:65536].decode("utf-8", "replace")
    if not any(field in text for field in _CONNECTOR_FIELDS):
        return None
    return ("an Argo CD notification template pasted a value into the JSON unescaped (a quote, newline or "
            "backslash in the sync message breaks it): write \"message\": {{toJson .app.status.operationState."
            "message}} instead of \"message\": \"{{.app.status.operationState.message}}\" (toJson escapes "
            "the value; see examples/argocd/argocd-notifications-cm.yaml)")


def parse_event(body: Mapping[str, Any]) -> PhaseEvent:
    """Flux when the body has `involvedObject`, else Argo CD."""
    return parse_flux(body) if is_flux(body) else parse_argo(body)


def pass_started(target: str, revision: str) -> PhaseEvent:
    """Driftless's own event when a pass starts applying `revision` to `target`: a pending status."""
    return PhaseEvent("driftless", revision, f"driftless/{target}", "Target", target, PENDING, False,
                      "Applying", f"Driftless is applying {revision[:12]} to {target}")


def pass_finished(result: "PassResult") -> PhaseEvent:
    """Driftless's own event for a finished pass: success when every app is applied and healthy, else a
    failure naming the failing apps (or the number of invalid manifests)."""
    failing = [o.app for o in result.outcomes if not o.ok]
    if result.ok:
        state, message = SUCCESS, f"{len(result.outcomes)} app(s) in sync and healthy"
    else:
        state, message = FAILURE, ("failing: " + ", ".join(failing[:10]) if failing else
                                   f"{len(result.problems)} invalid manifest(s)")
    return PhaseEvent("driftless", result.revision, f"driftless/{result.target}", "Target", result.target,
                      state, True, "Succeeded" if result.ok else "Failed", message, failing)
