"""Image update automation: write new builds back to Git as one-line commits.

Producers (app repository webhooks, the `DRIFTLESS_IMAGE_SCHEDULE` timer) put one versioned JSON job per
opted-in manifest on the `image-updates` queue; the worker resolves the wanted tag (the followed branch's
head SHA, or the highest registry tag in a semver range), checks the image exists in its registry, and
commits the changed image line through GitHub's contents API. The push that commit causes flows through
the normal webhook -> reconcile path. A build still running re-enqueues the job with a growing
visibility delay (never a sleep); outcomes are `patched | up_to_date | skipped | failed`, kept in the
status store (partition `image`) and optionally posted to a Slack-compatible webhook.
"""
from __future__ import annotations

import itertools
import json
import logging
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping
from urllib.parse import urlsplit

from shared.adapters import github
from shared.adapters.github import GitHubError
from shared.adapters.registry import (
    ImageRef,
    Registry,
    RegistryDenied,
    parse_image,
    secret_name,
)
from shared.adapters.status_store import row_key
from shared.config.settings import Settings
from shared.core import image_policy, semver
from shared.core.image_policy import Followed, ImagePolicy
from shared.core.jobs import BadJob, now_iso, read_message
from shared.core.queues import IMAGE_QUEUE
from shared.core.reply import Reply
from shared.core.webhook import parse_push, repository_names
from shared.core.yaml_patch import PatchError, set_image
from shared.services.context import Context

log = logging.getLogger("driftless.images")

SCHEMA = 1
REASONS = ("push", "workflow_run", "timer", "retry")
RETRY_BASE, RETRY_CAP, MAX_ATTEMPTS = 10, 600, 8
"""A job waiting for a build comes back after 10 s, 20 s, 40 s, ... at most 10 min, for 8 attempts in all."""
COMMIT_TRIES = 5
"""Conflicting commits (409/422 on the contents API) tolerated before giving up."""
STATUS_PARTITION = "image"
RUNNING = ("queued", "in_progress", "waiting", "requested", "pending")
BROKEN = ("failure", "cancelled", "timed_out", "startup_failure")
TIMEOUT = 10
_FIELDS = {"v", "id", "target", "app", "reason", "requested_at", "attempt", "sha", "delivery"}


# --- jobs --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageJob:
    """Update one opted-in manifest (`app`: an App name or Kind/namespace/name) of one Target."""

    target: str
    app: str
    reason: str
    requested_at: str
    id: str
    attempt: int = 1
    sha: str | None = None          # informational: the app commit the event named
    delivery: str | None = None
    v: int = SCHEMA

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None}, sort_keys=True)

    def retried(self) -> "ImageJob":
        """The next attempt of the same job."""
        return ImageJob(self.target, self.app, "retry", self.requested_at, self.id, self.attempt + 1, self.sha,
                        self.delivery)


def new_image_job(target: str, app: str, reason: str, *, sha: str | None = None,
                  delivery: str | None = None) -> ImageJob:
    if reason not in REASONS:
        raise ValueError(f"reason must be one of {', '.join(REASONS)}")
    return ImageJob(target, app, reason, now_iso(), uuid.uuid4().hex, 1, sha, delivery)


def parse_image_job(body: bytes | str) -> ImageJob:
    """Parse and validate a message body; raise BadJob saying what is wrong."""
    data = read_message(body, SCHEMA, _FIELDS, required=("id", "target", "app", "reason", "requested_at"),
                        optional=("sha", "delivery"), reasons=REASONS)
    attempt = data.get("attempt", 1)
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise BadJob(f"'attempt' must be a whole number >= 1, got {attempt!r}")
    return ImageJob(**data)


def retry_delay(attempt: int) -> int:
    """Seconds before attempt `attempt + 1`: 10, 20, 40, ... capped at 600."""
    return min(RETRY_CAP, RETRY_BASE * 2 ** (attempt - 1))


def manifests_repo(settings: Settings) -> str | None:
    """owner/name of the manifests repository on GitHub: from DRIFTLESS_REPO_URL when it is a GitHub
    (Enterprise) URL, else DRIFTLESS_MANIFESTS_GITHUB_REPO."""
    parts = urlsplit(settings.repo_url or "")
    github_hosts = {"github.com", "www.github.com", (urlsplit(settings.github_api_url).hostname or "").removeprefix("api.")}
    path = parts.path.strip("/").removesuffix(".git")
    if parts.scheme in ("http", "https") and parts.hostname in github_hosts and path.count("/") == 1:
        return path
    return settings.manifests_github_repo


# --- outcomes ----------------------------------------------------------------------------------
@dataclass
class ImageOutcome:
    """What one job did. `from_`/`to` are tags (or a digest), `image` the reference written or wanted."""

    target: str
    app: str
    action: str
    message: str
    from_: str | None = None
    to: str | None = None
    image: str | None = None
    commit: str | None = None
    at: str = field(default_factory=now_iso)

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "app": self.app, "action": self.action, "from": self.from_, "to": self.to,
                "message": self.message, "image": self.image, "commit": self.commit, "at": self.at}


class Deferred(Exception):
    """The image is not there yet but its build is running: the job comes back later."""


class ImageUpdates:
    """The image update producers and worker; one per Pipeline (shares its settings, secrets and store)."""

    def __init__(self, context: Context):
        self.context = context
        self.settings = context.settings

    # --- producers -------------------------------------------------------------------------
    def enqueue(self, job: ImageJob, *, delay: int = 0) -> None:
        self.context.send(IMAGE_QUEUE, job.to_json(), delay=delay)
        log.info("enqueued image job %s for %s/%s (%s, attempt %d, delay %d s)", job.id, job.target, job.app,
                 job.reason, job.attempt, delay, extra={"job": job.id, "target": job.target, "app": job.app})

    def followed(self) -> list[Followed]:
        """Every opted-in manifest of every Target at the manifests head."""
        reconciler = self.context.reconciler
        revision, targets = reconciler.targets_at_head()
        return [f for t in targets for f in reconciler.engine(t).followed(reconciler.desired(t, revision)[0])]

    def schedule(self) -> list[ImageJob]:
        """Timer fallback: one job per opted-in manifest."""
        jobs = [new_image_job(f.target, f.app, "timer") for f in self.followed()]
        for job in jobs:
            self.enqueue(job)
        return jobs

    def handles(self, event: str, payload: Mapping[str, Any]) -> bool:
        """True for events from app repositories: `workflow_run`, and pushes to a repository that is known
        not to be the manifests repository (those stay with the reconcile path)."""
        if event == "workflow_run":
            return True
        if event != "push":
            return False
        ours = repository_names(self.settings.repo_url or "") | {(manifests_repo(self.settings) or "").lower()}
        ours.discard("")
        names = parse_push(payload).repository
        return bool(ours and names) and not ours & names

    def webhook(self, event: str, payload: Mapping[str, Any], delivery: str | None) -> Reply:
        """An app repository's push on a followed branch, or its successful `workflow_run`: one job per
        manifest following that repository and branch. Called after the signature was verified."""
        repo = str((payload.get("repository") or {}).get("full_name") or "")
        if event == "workflow_run":
            run = payload.get("workflow_run") or {}
            if payload.get("action") != "completed" or run.get("conclusion") != "success":
                return Reply(202, {"ignored": f"workflow_run {payload.get('action')}/{run.get('conclusion')}: "
                                              "only completed runs that succeeded are handled"})
            branch, sha = str(run.get("head_branch") or ""), str(run.get("head_sha") or "")
        else:
            push = parse_push(payload)
            if push.deleted or not push.ref.startswith("refs/heads/"):
                return Reply(202, {"ignored": f"{push.ref} is not a branch update"})
            branch, sha = push.ref[len("refs/heads/"):], push.after
        if not repo or not branch:
            return Reply(202, {"ignored": "the event names no repository or branch"})
        def enqueue() -> Reply:
            chosen = [f for f in self.followed() if f.policy.repo and f.policy.repo.lower() == repo.lower()
                      and f.policy.branch == branch]
            jobs = [new_image_job(f.target, f.app, event, sha=sha or None, delivery=delivery) for f in chosen]
            for job in jobs:
                self.enqueue(job)
            if not jobs:
                return Reply(200, {"ignored": f"no manifest follows {repo}@{branch}"})
            return Reply(202, {"repository": repo, "branch": branch, "sha": sha, "queue": IMAGE_QUEUE,
                               "jobs": [{"target": j.target, "app": j.app, "id": j.id} for j in jobs]})

        return self.context.once_per_delivery(delivery, enqueue)

    # --- the worker ------------------------------------------------------------------------
    def run(self, body: bytes, *, dequeue_count: int = 1) -> str:
        """Run one job: the outcome's action, `deferred` or `parked`. Raises on a transient failure
        (GitHub, a registry or Key Vault unreachable) so the host retries it."""
        try:
            job = parse_image_job(body)
        except BadJob as exc:
            return self.context.park(IMAGE_QUEUE, body, str(exc))
        context = {"job": job.id, "target": job.target, "app": job.app, "attempt": job.attempt,
                   "dequeue_count": dequeue_count}
        try:
            outcome = self._update(job)
        except Deferred as waiting:
            self.enqueue(job.retried(), delay=retry_delay(job.attempt))
            log.info("image job %s deferred: %s", job.id, waiting, extra=context)
            return "deferred"
        self.record(outcome)
        level = logging.WARNING if outcome.action == "failed" else logging.INFO
        log.log(level, "image %s/%s: %s %s", job.target, job.app, outcome.action, outcome.message, extra=context)
        return outcome.action

    def _update(self, job: ImageJob) -> ImageOutcome:
        def done(action: str, message: str, **details: Any) -> ImageOutcome:
            return ImageOutcome(job.target, job.app, action, message, **details)

        reconciler = self.context.reconciler
        revision, targets = reconciler.targets_at_head()
        target = next((t for t in targets if t.name == job.target), None)
        if target is None:
            return done("skipped", f"Target {job.target} is not declared at {revision[:12]}")
        objects, problems = reconciler.desired(target, revision)
        invalid = [str(p) for p in problems if p.app == job.app]
        if invalid:
            return done("failed", "the manifest is invalid: " + "; ".join(invalid))
        found = next((f for f in reconciler.engine(target).followed(objects) if f.app == job.app), None)
        if found is None:
            return done("skipped", f"{job.app} does not opt in to image updates at {revision[:12]}")
        policy = found.policy
        if policy.pin:
            return done("skipped", f"pinned ({image_policy.PIN}: \"true\"); {found.image} is left as it is")
        try:
            current = parse_image(found.image)
        except ValueError as exc:
            return done("failed", str(exc))
        registry = self._registry(current)
        sha = None
        try:
            if policy.range is not None:
                wanted = policy.range.highest(registry.tags(current.repository), prerelease=policy.prerelease)
                if wanted is None:
                    return done("failed", f"no tag of {current.registry}/{current.repository} matches "
                                          f"{policy.tag}" + ("" if policy.prerelease else " (pre-releases ignored)"),
                                from_=current.version)
            else:
                sha = self._branch_head(str(policy.repo), policy.branch)
                wanted = sha if policy.tag == image_policy.SHA_LONG else sha[:7]
            details = {"from_": current.version, "to": wanted, "image": current.with_tag(wanted)}
            if _satisfied(current, wanted, policy):
                return done("up_to_date", f"{found.image} is already the wanted image", **{**details, "to": current.version})
            if not registry.exists(current.repository, wanted):
                return done("failed", self._missing(job, current, wanted, policy, sha), **details)
        except RegistryDenied as exc:
            return done("failed", str(exc), from_=current.version)
        except GitHubError as exc:
            _retry_if_transient(exc)
            return done("failed", f"GitHub answered {exc.status} for {policy.repo}"
                                  f"{f' (commit {sha[:12]})' if sha else f' (branch {policy.branch})'}",
                        from_=current.version)
        return self._commit(found, current, wanted, done)

    def _missing(self, job: ImageJob, current: ImageRef, wanted: str, policy: ImagePolicy, sha: str | None) -> str:
        """Why a missing image fails the job; raises Deferred while its build is still running."""
        image = current.with_tag(wanted)
        if sha is None:
            return f"{image} is not in the registry"
        runs = self._runs(str(policy.repo), sha)
        if any(r.status in RUNNING for r in runs):
            if job.attempt >= MAX_ATTEMPTS:
                return f"image never appeared: {image} still missing after {MAX_ATTEMPTS} attempts while the " \
                       f"build of {sha[:12]} kept running"
            raise Deferred(f"{image} not in the registry yet; build of {sha[:12]} is running (attempt "
                           f"{job.attempt} of {MAX_ATTEMPTS}, next in {retry_delay(job.attempt)} s)")
        broken = [r for r in runs if r.conclusion in BROKEN]
        if broken:
            return f"the build of {sha[:12]} in {policy.repo} failed ({', '.join(f'{r.name}: {r.conclusion}' for r in broken)}); " \
                   f"{image} is not in the registry"
        if runs:
            return f"{image} is not in the registry although the GitHub Actions runs of {sha[:12]} finished"
        return f"{image} is not in the registry and no GitHub Actions run exists for {sha[:12]} in {policy.repo}"

    def _commit(self, found: Followed, current: ImageRef, wanted: str, done) -> ImageOutcome:
        """Patch the image line and commit it with the file's blob SHA as precondition; re-read on conflict."""
        owner_repo = manifests_repo(self.settings)
        image = current.with_tag(wanted)
        details = {"from_": current.version, "to": wanted, "image": image}
        if not owner_repo:
            return done("failed", "the manifests repository on GitHub is unknown: DRIFTLESS_REPO_URL is not a "
                                  "GitHub URL and DRIFTLESS_MANIFESTS_GITHUB_REPO is not set", **details)
        repo = self._github().get_repo(owner_repo, lazy=True)
        message = f"chore(image): {found.app} {current.version} -> {wanted}"
        for _ in range(COMMIT_TRIES):
            try:
                contents = _github_call(lambda: repo.get_contents(found.file, ref=self.settings.branch))
                text = contents.decoded_content.decode("utf-8")
                patched, old = set_image(text, found.selects, found.containers, str(found.policy.container), image)
            except PatchError as exc:
                return done("failed", f"{found.file}: {exc} (wanted {image}); file untouched", **details)
            except GitHubError as exc:
                _retry_if_transient(exc)
                return done("failed", f"GitHub answered {exc.status} reading {owner_repo}/{found.file}", **details)
            if old == image:
                return done("up_to_date", f"{image} is already in {found.file}", **{**details, "from_": wanted})
            try:
                result = _github_call(lambda: repo.update_file(found.file, message, patched, contents.sha,
                                                               branch=self.settings.branch))
            except GitHubError as exc:
                _retry_if_transient(exc)
                if exc.status in (409, 422):
                    log.info("commit to %s conflicted (%s); re-reading", found.file, exc.status)
                    continue
                return done("failed", f"GitHub answered {exc.status} committing {owner_repo}/{found.file}", **details)
            commit = getattr(result.get("commit"), "sha", None)
            return done("patched", f"{found.file}: {old} -> {image}", commit=commit, **details)
        return done("failed", f"{found.file} kept changing: {COMMIT_TRIES} commits conflicted; file untouched",
                    **details)

    # --- adapters --------------------------------------------------------------------------
    def _github(self):
        return github.client(self.settings.github_api_url, self.context.github_token())

    def _branch_head(self, repo: str, branch: str) -> str:
        return _github_call(lambda: self._github().get_repo(repo, lazy=True).get_branch(branch).commit.sha)

    def _runs(self, repo: str, sha: str) -> list:
        runs = self._github().get_repo(repo, lazy=True).get_workflow_runs(head_sha=sha)
        return _github_call(lambda: list(itertools.islice(runs, 100)))

    def _registry(self, image: ImageRef) -> Registry:
        from shared.config.credentials import credential

        name = secret_name(image.registry)
        return Registry(image.api_host, credentials=lambda: self.context.secrets.get(name), credentials_name=name,
                        entra_token=lambda scope: credential(self.settings).get_token(scope).token)

    # --- status and notification -----------------------------------------------------------
    def record(self, outcome: ImageOutcome) -> None:
        """Store the outcome (newest wins) and notify when a patch or a new failure happened."""
        key = row_key(f"{outcome.target}/{outcome.app}")
        _, previous = self.context.store.advance(STATUS_PARTITION, key, order=outcome.at,
                                                  value=json.dumps(outcome.to_dict()))
        before = json.loads(previous.partition("\t")[2]) if previous else {}
        if outcome.action == "patched" or (outcome.action == "failed" and (before.get("action"), before.get("message"))
                                           != ("failed", outcome.message)):
            self._notify(outcome)

    def status(self, target: str | None = None) -> list[dict[str, Any]]:
        """The last outcome per opted-in manifest (what `GET /api/status` shows under `images`)."""
        rows = [json.loads(value.partition("\t")[2])
                for value in self.context.store.recall_all(STATUS_PARTITION).values()]
        return sorted((r for r in rows if target is None or r["target"] == target),
                      key=lambda r: (r["target"], r["app"]))

    def _notify(self, outcome: ImageOutcome) -> None:
        """POST `{"text": ...}` to the URL in secret settings.image_notify_url_name (none: no notification);
        the answer is checked and logged, never raised."""
        import requests

        from shared.adapters.key_vault import SecretsUnavailable

        try:
            url = (self.context.secrets.get(self.settings.image_notify_url_name) or "").strip()
        except SecretsUnavailable as exc:
            log.warning("image notification not sent: %s", exc)
            return
        if not url:
            return
        text = (f"Driftless image update {outcome.action}: {outcome.target}/{outcome.app} "
                f"{outcome.from_ or '?'} -> {outcome.to or '?'}: {outcome.message}")
        host = urlsplit(url).hostname
        try:
            reply = requests.post(url, json={"text": text}, timeout=TIMEOUT)
        except requests.RequestException as exc:
            log.warning("image notification to %s failed: %s", host, type(exc).__name__)
            return
        if reply.status_code >= 300:
            log.warning("image notification to %s answered HTTP %d", host, reply.status_code)
        else:
            log.info("image notification to %s answered HTTP %d", host, reply.status_code)


def _satisfied(current: ImageRef, wanted: str, policy: ImagePolicy) -> bool:
    """The manifest already has the wanted tag (or, for semver, a matching version at least as high)."""
    if current.tag == wanted:
        return True
    version, best = semver.parse(current.tag or ""), semver.parse(wanted)
    return bool(policy.range and version and best and best <= version
                and policy.range.matches(version, prerelease=policy.prerelease))


def _github_call(action):
    """One GitHub call; a transient failure (network, 5xx) raises so the host retries the job."""
    return github.call(action)


def _retry_if_transient(exc: GitHubError) -> None:
    """Re-raise a transient GitHub failure (the host retries the job); a refusal becomes the outcome."""
    if exc.retryable:
        raise exc
