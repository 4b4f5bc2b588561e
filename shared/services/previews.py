"""Plan previews on pull requests: what merging a PR would do to Azure, as a check run and one PR comment.

Intake (`webhook`): a verified `pull_request` (opened, synchronize, reopened, ready_for_review) to the
configured branch, or a `check_run` `rerequested` on `driftless/plan`, becomes one job on the
`plan-previews` queue: its own queue, so a preview never waits behind a reconcile, and it never takes a
Target's lease. A repeated delivery, or another event for a head already planned, enqueues nothing.

Worker (`run`): reads the PR head (`refs/pull/N/head`, forks included) from Git, validates it, and plans,
reads only, every Target whose path the head changes compared with the branch head, against the live
state; then completes the check run `driftless/plan` on the head (annotations in batches of 50) and
updates the PR comment in place. Targets are those declared on the branch: a PR's own Target manifests
are validated but never planned, so a PR cannot point Driftless's credentials at other resources. Nothing
from the PR is executed. A failure to read or to post raises: the host retries the message and parks it
after maxDequeueCount.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any, Mapping

from shared.adapters import github
from shared.core.jobs import BadJob
from shared.core.manifests import Target
from shared.core.preview import (
    CHECK_NAME,
    MARKER,
    Preview,
    PreviewJob,
    TargetPreview,
    annotations,
    batches,
    conclusion,
    job_from_check_run,
    job_from_pull_request,
    ours,
    parse_preview_job,
    summary,
    superseded,
)
from shared.core.queues import PREVIEW_QUEUE
from shared.core.reply import Reply
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
            return Reply(202, {"preview": {"id": job.id, "repo": job.repo, "number": job.number, "head": job.head}})

        return self.context.once_per_delivery(delivery, enqueue)

    # --- worker ----------------------------------------------------------------------------
    def run(self, body: bytes | str, *, dequeue_count: int = 1) -> str:
        """Plan one PR head and post the result. Returns what happened; raises on a transient failure."""
        try:
            job = parse_preview_job(body)
        except BadJob as exc:
            return self.context.park(PREVIEW_QUEUE, body, str(exc))
        context = {"job": job.id, "pr": job.number, "revision": job.head, "dequeue_count": dequeue_count}
        repo = github.client(self.settings.github_api_url, self.context.github_token()).get_repo(job.repo, lazy=True)
        run = self._check_run(repo, job)
        source = self.context.reconciler.source
        newest = source.resolve(job.ref)
        if newest and newest != job.head:                       # a newer head was pushed meanwhile
            if run.status != "completed" or not (run.output.title or "").startswith("Superseded"):
                github.complete_check_run(run, conclusion="neutral", output=superseded(newest))
            log.info("preview of %s#%d at %s superseded by %s", job.repo, job.number, job.head[:12], newest[:12],
                     extra=context)
            return "superseded"
        self._supersede_older(repo, job)
        if run.status == "completed":                           # posted already (an earlier try or a repeat)
            if (run.output.title or "").startswith("Superseded"):
                return "superseded"
            text = run.output.summary or ""
        else:
            preview = self.preview(job.head)
            result, title = conclusion(preview)
            text = summary(preview)
            notes = annotations(preview.problems)
            for batch in batches(notes):                        # GitHub appends each batch to the run's
                github.complete_check_run(run, conclusion=result,
                                          output={"title": title, "summary": text, "annotations": batch})
            log.info("plan preview of %s#%d at %s: %s (%s; %d annotation(s))", job.repo, job.number, job.head[:12],
                     title, result, len(notes), extra=context)
        if self.comment and text:
            github.upsert_comment(repo, job.number, MARKER, text)
        return "planned"

    def _check_run(self, repo, job: PreviewJob):
        """The check run this job completes: the newest `driftless/plan` run on the head, created `in_progress`
        when there is none. A re-run gets a new check run (as GitHub asks of a `rerequested` check), unless an
        earlier try of the same job created it."""
        runs = github.check_runs(repo, job.head, CHECK_NAME)
        if runs and (not job.rerun or runs[0].external_id == job.external_id):
            return runs[0]
        return github.create_check_run(repo, name=CHECK_NAME, head_sha=job.head, external_id=job.external_id)

    def _supersede_older(self, repo, job: PreviewJob) -> None:
        """Complete the check runs of this PR's earlier heads as `neutral` ("superseded by <head>")."""
        _, previous = self.store.advance(HEADS, job.pr_key, order=job.requested_at, value=job.head)
        older = {job.before, (previous or "").partition("\t")[2] or None} - {None, job.head}
        for sha in sorted(s for s in older if s):
            for run in github.check_runs(repo, sha, CHECK_NAME):
                if not (run.output.title or "").startswith("Superseded"):
                    github.complete_check_run(run, conclusion="neutral", output=superseded(job.head))

    def preview(self, head: str) -> Preview:
        """The plan of `head` for every Target (declared on the branch) whose path `head` changes compared with the
        branch head, against the live state (reads only)."""
        return plan_preview(self.context.reconciler, head, suspended=self.store.suspended())


def plan_preview(reconciler, head: str, *, suspended: set[str] | frozenset[str] = frozenset(),
                 only: str | None = None) -> Preview:
    """What `driftless diff --revision` and the check run show: Targets are those declared at the branch head;
    each one whose manifests differ between the branch head and `head` is planned at `head` (reads only)."""
    source, settings = reconciler.source, reconciler.settings
    base = source.head()
    targets, _ = reconciler.targets(base)
    _, head_target_problems = reconciler.targets(head)
    targets_changed = source.read(settings.targets_path, base) != source.read(settings.targets_path, head)
    chosen = [t for t in targets if _changed(source, t, base, head)] if not targets_changed else list(targets)
    live_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    preview = Preview(head=head, base_revision=base, live_at=live_at, target_problems=head_target_problems,
                      untouched=not chosen and not targets_changed and not head_target_problems,
                      targets_changed=targets_changed)
    for target in chosen:
        problems = reconciler.desired(target, head)[1]
        plan = reconciler.plan(target, head, suspended=suspended, only=only)
        preview.targets.append(TargetPreview(target.name, target.type, plan, list(problems)))
    return preview


def _changed(source, target: Target, base: str, head: str) -> bool:
    return source.read(target.path, base) != source.read(target.path, head)
