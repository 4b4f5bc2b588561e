"""Plan previews on pull requests: what merging a PR would do to Azure, as a check run and one PR comment
(GitHub), or a pull request status and one PR thread (Azure Repos).

Intake (`webhook`): a verified `pull_request` (opened, synchronize, reopened, ready_for_review) to the
configured branch, or a `check_run` `rerequested` on `driftless/plan`, becomes one job on the
`plan-previews` queue: its own queue, so a preview never waits behind a reconcile, and it never takes a
Target's lease. A repeated delivery, or another event for a head already planned, enqueues nothing.
`azure_devops_webhook` does the same for an Azure DevOps `git.pullrequest.created` / `updated` service hook,
authenticated by the secret set on the subscription (basic-auth password or `X-Driftless-Hook-Secret`).

With a token that may not create check runs (a personal access token: GitHub answers 403), the GitHub result
is a commit status `driftless/plan` on the head plus the PR comment.

Worker (`run`): reads the PR head (`refs/pull/N/head`, forks included) from Git, validates it, and plans,
reads only, every Target whose path the head changes compared with its merge base with the branch (else the
branch head), against the live
state; then completes the check run `driftless/plan` on the head (annotations in batches of 50) and
updates the PR comment in place. Targets are those declared on the branch: a PR's own Target manifests
are validated but never planned, so a PR cannot point Driftless's credentials at other resources. Nothing
from the PR is executed. A failure to read or to post raises: the host retries the message and parks it
after maxDequeueCount.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from shared.adapters import github
from shared.adapters.azure_devops import AzureDevOps, AzureDevOpsError, PullRequest
from shared.adapters.git import SourceError
from shared.core.jobs import BadJob
from shared.core.manifests import Target
from shared.core.preview import (
    AZURE_GENRE,
    AZURE_STATES,
    AZURE_STATUS_NAME,
    AZURE_THREAD_PROPERTY,
    CHECK_NAME,
    MARKER,
    AzureRepo,
    Preview,
    PreviewJob,
    TargetPreview,
    annotations,
    azure_repo,
    batches,
    conclusion,
    hook_authenticated,
    job_from_check_run,
    job_from_pull_request,
    job_from_service_hook,
    ours,
    parse_preview_job,
    status_description,
    summary,
    superseded,
)
from shared.core.queues import PREVIEW_QUEUE
from shared.core.reply import Reply
from shared.core.webhook import DELIVERY, MAX_BODY, SHA, load_json
from shared.services.context import Context

log = logging.getLogger("driftless.previews")

CLAIMS = "preview"
"""Status-store partition of (repository, PR, head) claims: one check run per head."""
HEADS = "preview-head"
"""Status-store partition remembering the last head planned per PR (whose check run a newer head supersedes)."""


class Previews:
    """The intake and the worker of the `plan-previews` queue."""

    def __init__(self, context: Context):
        self.context = context
        self.settings, self.store = context.settings, context.store

    @property
    def comment(self) -> bool:
        return self.settings.preview_comment

    # --- intake ----------------------------------------------------------------------------
    @staticmethod
    def handles(event: str) -> bool:
        return event in ("pull_request", "check_run")

    def webhook(self, event: str, payload: Mapping[str, Any], delivery: str | None) -> Reply:
        """Enqueue a preview for a verified event (BadEvent, a ValueError, for a field of the wrong shape)."""
        if event == "pull_request":
            job, why = job_from_pull_request(payload, branch=self.settings.branch, delivery=delivery)
        else:
            job, why = job_from_check_run(payload, delivery=delivery)
        if job is None:
            return Reply(202, {"ignored": why})
        if not ours(payload, self.settings.repo_url or "", self.settings.manifests_github_repo):
            return Reply(202, {"ignored": f"event of another repository ({job.repo})"})
        return self._enqueue(job, delivery)

    @property
    def azure_repo(self) -> AzureRepo | None:
        """The manifests repository on Azure Repos (`DRIFTLESS_MANIFESTS_AZURE_REPO`, else `DRIFTLESS_REPO_URL`
        when it is an Azure Repos URL), or None."""
        return azure_repo(self.settings.manifests_azure_repo or self.settings.repo_url)

    def azure_devops_webhook(self, headers: Mapping[str, str], body: bytes) -> Reply:
        """`POST /api/azure-devops/webhook`: an Azure DevOps service hook (Web Hooks consumer) for
        `git.pullrequest.created` / `git.pullrequest.updated`. Authenticated by the Key Vault secret
        `DRIFTLESS_AZDO_HOOK_SECRET_NAME`, sent as the subscription's basic-auth password (any user name) or
        as the header `X-Driftless-Hook-Secret` (compared in constant time): 401 without it. A malformed
        body is a 400 naming the field; an event not planned a 202 saying why."""
        headers = {k.lower(): v for k, v in headers.items()}
        if len(body) > MAX_BODY:
            return Reply(413, {"error": f"body larger than {MAX_BODY} bytes"})
        name = self.settings.azdo_hook_secret_name
        secret = self.context.secrets.get(name)                 # SecretsUnavailable: wiring.answer's 503
        if not secret:
            log.error("Azure DevOps service hook refused: the Key Vault secret %s is not set", name)
            return Reply(503, {"error": f"the service hook secret is not configured (Key Vault secret {name}); "
                                        "unauthenticated events are never accepted"})
        if not hook_authenticated(secret, headers):
            return Reply(401, {"error": "the service hook's basic-auth password (or X-Driftless-Hook-Secret) is "
                                        "missing or wrong"})
        repo = self.azure_repo
        if repo is None:
            log.error("Azure DevOps service hook refused: the manifests repository is not on Azure Repos")
            return Reply(503, {"error": "the manifests repository is not on Azure Repos: set DRIFTLESS_REPO_URL "
                                        "or DRIFTLESS_MANIFESTS_AZURE_REPO to https://dev.azure.com/{org}/"
                                        "{project}/_git/{repo}"})
        try:
            payload = load_json(body)
            event_id = payload.get("id")
            delivery = f"azdo:{event_id}" if isinstance(event_id, str) and DELIVERY.fullmatch(f"azdo:{event_id}") \
                else None
            job, why = job_from_service_hook(payload, branch=self.settings.branch, repo=repo, delivery=delivery)
        except ValueError as exc:                                   # BadEvent included
            return Reply(400, {"error": str(exc)})
        if job is None:
            return Reply(202, {"ignored": why})
        return self._enqueue(job, delivery)

    def _enqueue(self, job: PreviewJob, delivery: str | None) -> Reply:
        """Put `job` on the queue once per delivery and once per (PR, head); a re-run always."""

        def enqueue() -> Reply:
            if not job.rerun and not self.store.claim(CLAIMS, job.claim_key):
                return Reply(200, {"duplicate": f"{job.repo}#{job.number} at {job.head[:12]} is already planned"})
            try:
                self.context.send(PREVIEW_QUEUE, job.to_json())
            except Exception:
                if not job.rerun:
                    self.store.release(CLAIMS, job.claim_key)
                raise
            log.info("enqueued plan preview %s of %s#%d at %s (%s)", job.id, job.repo, job.number, job.head[:12],
                     job.reason, extra={"job": job.id, "pr": job.number, "revision": job.head})
            return Reply(202, {"preview": {"id": job.id, "host": job.host, "repo": job.repo, "number": job.number,
                                           "head": job.head}})

        return self.context.once_per_delivery(delivery, enqueue)

    # --- worker ----------------------------------------------------------------------------
    def run(self, body: bytes | str, *, dequeue_count: int = 1) -> str:
        """Plan one PR head and post the result. Returns what happened; raises on a transient failure."""
        try:
            job = parse_preview_job(body)
        except BadJob as exc:
            return self.context.park(PREVIEW_QUEUE, body, str(exc))
        context = {"job": job.id, "pr": job.number, "revision": job.head, "dequeue_count": dequeue_count}
        if job.azure:
            return self._run_azure(job, context)
        repo = github.client(self.settings.github_api_url, self.context.github_token()).get_repo(job.repo, lazy=True)
        run = self._check_run(repo, job)                        # None: this token may not create check runs
        source = self.context.reconciler.source
        newest = source.resolve(job.ref)
        if newest and newest != job.head:                       # a newer head was pushed meanwhile
            if run is not None and (run.status != "completed" or not (run.output.title or "").startswith("Superseded")):
                github.complete_check_run(run, conclusion="neutral", output=superseded(newest))
            log.info("preview of %s#%d at %s superseded by %s", job.repo, job.number, job.head[:12], newest[:12],
                     extra=context)
            return "superseded"
        if run is not None:
            self._supersede_older(repo, job)
        if run is not None and run.status == "completed":      # posted already (an earlier try or a repeat)
            if (run.output.title or "").startswith("Superseded"):
                return "superseded"
            text = run.output.summary or ""
        else:
            preview = self.preview(job.head, lambda: github.merge_base(repo, self.settings.branch, job.head))
            result, title = conclusion(preview)
            text = summary(preview)
            notes = annotations(preview.problems)
            if run is None:                                     # a commit status instead of the check run
                github.create_status(repo, job.head, state=result, context=CHECK_NAME,
                                     description=status_description(title), target_url=job.url or None)
            for batch in batches(notes) if run is not None else []:   # GitHub appends each batch to the run's
                github.complete_check_run(run, conclusion=result,
                                          output={"title": title, "summary": text, "annotations": batch})
            log.info("plan preview of %s#%d at %s: %s (%s; %d annotation(s)%s)", job.repo, job.number,
                     job.head[:12], title, result, len(notes), "" if run else "; commit status: no Checks access",
                     extra=context)
        if self.comment and text:
            github.upsert_comment(repo, job.number, MARKER, text)
        return "planned"

    def _check_run(self, repo, job: PreviewJob):
        """The check run this job completes: the newest `driftless/plan` run on the head, created `in_progress`
        when there is none. A re-run gets a new check run (as GitHub asks of a `rerequested` check), unless an
        earlier try of the same job created it. None when GitHub refuses the Checks API with a 403 that is not a
        rate limit (a personal access token): the caller posts a commit status instead."""
        try:
            runs = github.check_runs(repo, job.head, CHECK_NAME)
            if runs and (not job.rerun or runs[0].external_id == job.external_id):
                return runs[0]
            return github.create_check_run(repo, name=CHECK_NAME, head_sha=job.head, external_id=job.external_id)
        except github.GitHubError as exc:
            if exc.status != 403 or exc.retryable:              # a rate limit is retried through the queue
                raise
            log.warning("GitHub refused the Checks API for %s#%d (403: only a GitHub App may create check runs); "
                        "posting a commit status %s instead", job.repo, job.number, CHECK_NAME)
            return None

    def _run_azure(self, job: PreviewJob, context: dict[str, Any]) -> str:
        """Plan an Azure Repos PR head: a pull request status driftless/plan on the head's iteration (pending,
        then succeeded or failed) and the one PR thread updated in place. Skipped when the PR moved on or
        closed."""
        repo = self.azure_repo
        if repo is None:
            return self.context.park(PREVIEW_QUEUE, job.to_json(), "the manifests repository is no longer on "
                                                                   "Azure Repos (DRIFTLESS_MANIFESTS_AZURE_REPO)")
        client = AzureDevOps(lambda: self.context.secrets.azdo_token() or self.context.secrets.git_token())
        pr = PullRequest(client, (repo.org_url, repo.project, repo.name), job.number)
        current = pr.get()
        if current is None:
            log.warning("preview of %s!%d: Azure Repos has no such pull request", job.repo, job.number, extra=context)
            return "pull request not found"
        newest = (current.get("lastMergeSourceCommit") or {}).get("commitId")
        if current.get("status") != "active" or (newest and newest != job.head):
            log.info("preview of %s!%d at %s skipped: the pull request is %s at %s", job.repo, job.number,
                     job.head[:12], current.get("status"), str(newest)[:12], extra=context)
            return "superseded"
        iteration = pr.iteration_of(job.head) or {}
        status = {"genre": AZURE_GENRE, "name": AZURE_STATUS_NAME, "iteration": iteration.get("id")}
        pr.post_status(state="pending", description=f"Planning {job.head[:12]} against the live state", **status)
        preview = self.preview(job.head, lambda: (iteration.get("commonRefCommit") or {}).get("commitId"))
        result, title = conclusion(preview)
        text = summary(preview)
        if self.comment:
            pr.upsert_thread(MARKER, AZURE_THREAD_PROPERTY, text)
        pr.post_status(state=AZURE_STATES[result], description=status_description(title), **status)
        log.info("plan preview of %s!%d at %s: %s (%s)", job.repo, job.number, job.head[:12], title, result,
                 extra=context)
        return "planned"

    def _supersede_older(self, repo, job: PreviewJob) -> None:
        """Complete the check runs of this PR's earlier heads as `neutral` ("superseded by <head>")."""
        _, previous = self.store.advance(HEADS, job.pr_key, order=job.requested_at, value=job.head)
        older = {job.before, (previous or "").partition("\t")[2] or None} - {None, job.head}
        for sha in sorted(s for s in older if s):
            for run in github.check_runs(repo, sha, CHECK_NAME):
                if not (run.output.title or "").startswith("Superseded"):
                    github.complete_check_run(run, conclusion="neutral", output=superseded(job.head))

    def preview(self, head: str, merge_base: Callable[[], str | None] | None = None) -> Preview:
        """The plan of `head` for every Target (declared on the branch) whose path `head` changes compared with its
        merge base with the branch (asked of `merge_base`, the host, when the Git cache lacks the history; else
        the branch head), against the live state (reads only)."""
        return plan_preview(self.context.reconciler, head, suspended=self.store.suspended(), merge_base=merge_base)


def plan_preview(reconciler, head: str, *, suspended: set[str] | frozenset[str] = frozenset(),
                 only: str | None = None, merge_base: Callable[[], str | None] | None = None) -> Preview:
    """What `driftless diff --revision` and the check run show: Targets are those declared at the branch head;
    each one whose manifests differ between the merge base of the branch head and `head` (what the PR changed)
    and `head` is planned at `head` (reads only). When the Git history at hand does not reach the merge base (a
    shallow Git cache), `merge_base()` (the host's answer: GitHub's compare, an Azure Repos iteration) names it;
    without either, the comparison is with the branch head, and the summary says so."""
    source, settings = reconciler.source, reconciler.settings
    branch = source.head()
    targets, _ = reconciler.targets(branch)
    _, head_target_problems = reconciler.targets(head)
    found = source.merge_base(branch, head)
    if found is None and merge_base is not None:
        found = _named_merge_base(source, settings.targets_path, merge_base)
    base = found or branch               # what the PR itself changed; the branch head when history is lacking
    targets_changed = source.read(settings.targets_path, base) != source.read(settings.targets_path, head)
    chosen = [t for t in targets if _changed(source, t, base, head)] if not targets_changed else list(targets)
    live_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    preview = Preview(head=head, base_revision=branch, live_at=live_at, target_problems=head_target_problems,
                      untouched=not chosen and not targets_changed and not head_target_problems,
                      targets_changed=targets_changed, compared_with=base, merge_base=found is not None)
    for target in chosen:
        problems = reconciler.desired(target, head)[1]
        plan = reconciler.plan(target, head, suspended=suspended, only=only)
        preview.targets.append(TargetPreview(target.name, target.type, plan, list(problems)))
    return preview


def _named_merge_base(source, targets_path: str, ask: Callable[[], str | None]) -> str | None:
    """The merge base the host names, once its commit could be fetched; None (logged) when the host cannot say
    or the commit cannot be read: the caller then compares with the branch head."""
    try:
        sha = ask()
        if not sha or not SHA.fullmatch(sha):
            return None
        source.read(targets_path, sha)                       # fetched by SHA, as a head is
        return sha
    except (github.GitHubError, AzureDevOpsError, SourceError) as exc:
        log.warning("the merge base could not be found (%s: %s); comparing with the branch head",
                    type(exc).__name__, exc)
        return None


def _changed(source, target: Target, base: str, head: str) -> bool:
    return source.read(target.path, base) != source.read(target.path, head)
