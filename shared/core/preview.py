"""Plan previews on pull requests, the pure part: the preview job, reading GitHub `pull_request` and `check_run`
events and Azure DevOps `git.pullrequest.*` service-hook events, the check run's title, conclusion and Markdown
summary (also the Azure Repos PR status and thread), and annotations in GitHub's batches.

A preview is data about a pull request: nothing from the PR is ever executed. The summary names secret
references only (Container App views hold secret *names* and `secretRef`s, never values). No I/O.
"""
from __future__ import annotations

import json
import re
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping, Sequence
from urllib.parse import unquote, urlsplit

from shared.core.jobs import BadJob, now_iso, versioned
from shared.core.manifests import Problem
from shared.core.phases import DESCRIPTION_LIMIT
from shared.core.plan import Plan, Step
from shared.core.queues import TABLE_KEY_FORBIDDEN
from shared.core.reply import shown
from shared.core.webhook import SHA, BadEvent, repository_names

CHECK_NAME = "driftless/plan"
"""The check run's name on the PR's head commit (and what `check_run` `rerequested` must name)."""
MARKER = "<!-- driftless:plan -->"
"""The hidden first line of Driftless's one PR comment: how the comment is found to be updated in place."""
ANNOTATIONS_PER_REQUEST = 50
"""GitHub's cap on annotations in one create or update request of a check run."""
SUMMARY_LIMIT = 65535
"""GitHub's cap on `output.summary` (characters)."""
PLANNED_ACTIONS = ("opened", "synchronize", "reopened", "ready_for_review")
"""`pull_request` actions that plan the PR's head."""
COLLAPSE_AFTER = 10
"""Field changes of one app shown inline; more are folded into a <details> block."""
VALUE_LIMIT = 120
"""Characters of one live or desired value shown in a summary cell."""

AZURE_EVENTS = ("git.pullrequest.created", "git.pullrequest.updated")
"""Azure DevOps service-hook events that plan a pull request's head (publisher `tfs`)."""
AZURE_GENRE, AZURE_STATUS_NAME = "driftless", "plan"
"""The Azure Repos pull request status's context: genre `driftless`, name `plan` (shown as driftless/plan)."""
AZURE_STATES = {"success": "succeeded", "failure": "failed", "neutral": "notApplicable"}
"""Check run conclusion -> Azure Repos GitStatusState."""
AZURE_THREAD_PROPERTY = "driftless.plan"
"""The property Driftless sets on its one pull request thread (found by it, or by MARKER on the first comment)."""
GITHUB, AZURE_REPOS = "github", "azure-repos"
"""Where a pull request lives (`PreviewJob.host`)."""

_REPO = re.compile(r"[A-Za-z0-9._-]{1,100}/[A-Za-z0-9._-]{1,100}")
_AZURE_NAME = re.compile(r"[^/\\\x00-\x1f]{1,256}")
"""An Azure DevOps project or repository name (they may hold spaces; never a slash or a control character)."""


@dataclass(frozen=True)
class AzureRepo:
    """A repository on Azure Repos: organization URL (`https://dev.azure.com/{org}`), project and repository."""

    org_url: str
    project: str
    name: str

    @property
    def full_name(self) -> str:
        return f"{self.project}/{self.name}"


def azure_repo(url: str | None) -> AzureRepo | None:
    """The Azure Repos repository of a clone URL (`https://[user@]dev.azure.com/{org}/{project}/_git/{repo}`,
    `https://{org}.visualstudio.com/[DefaultCollection/]{project}/_git/{repo}`, or any host with that
    `/{project}/_git/{repo}` path, such as a local stand-in); None for any other URL."""
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or "/_git/" not in parts.path:
        return None
    left, _, repo = parts.path.rstrip("/").partition("/_git/")
    org_path, _, project = left.rpartition("/")
    project, repo = unquote(project), unquote(repo).removesuffix(".git")
    if not _AZURE_NAME.fullmatch(project) or not _AZURE_NAME.fullmatch(repo):
        return None
    host = parts.netloc.rsplit("@", 1)[-1]
    return AzureRepo(f"{parts.scheme}://{host}{org_path}", project, repo)


@dataclass(frozen=True)
class PreviewJob:
    """One plan preview of a PR head: a message of the `plan-previews` queue."""

    repo: str
    number: int
    head: str
    reason: str
    base: str = ""
    fork: bool = False
    before: str | None = None
    rerun: bool = False
    delivery: str | None = None
    host: str = GITHUB
    url: str = ""
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    requested_at: str = field(default_factory=now_iso)
    v: int = 1

    @property
    def ref(self) -> str:
        """The ref GitHub keeps the PR's head under in the base repository (forks included)."""
        return f"refs/pull/{self.number}/head"

    @property
    def azure(self) -> bool:
        return self.host == AZURE_REPOS

    @property
    def claim_key(self) -> str:
        """(repository, PR, head) as a status-store row key: a repeated event for this head plans nothing new."""
        return f"{self.pr_key}:{self.head}"

    @property
    def pr_key(self) -> str:
        """(host, repository, PR) as a status-store row key (Azure Tables refuses `/ \\ # ?` in keys)."""
        prefix = "azure:" if self.azure else ""
        return prefix + TABLE_KEY_FORBIDDEN.sub(":", self.repo) + f":{self.number}"

    @property
    def external_id(self) -> str:
        """Stored on the check run: the PR number (a fork PR's check run has an empty `pull_requests`) and the job."""
        return f"pr:{self.number}:{self.id}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def parse_preview_job(body: bytes | str) -> PreviewJob:
    """The job in a queue message, or BadJob naming what is wrong (such a message can never succeed)."""
    data = versioned(body, 1, "preview job")
    azure = data.get("host") == AZURE_REPOS
    if data.get("host", GITHUB) not in (GITHUB, AZURE_REPOS):
        raise BadJob(f"preview job field 'host' must be {GITHUB} or {AZURE_REPOS}")
    checks = {"repo": lambda v: isinstance(v, str) and (_azure_full_name(v) if azure else _REPO.fullmatch(v)),
              "number": lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
              "head": lambda v: isinstance(v, str) and SHA.fullmatch(v),
              "reason": lambda v: isinstance(v, str) and v,
              "id": lambda v: isinstance(v, str) and v, "requested_at": lambda v: isinstance(v, str)}
    for name, ok in checks.items():
        if not ok(data.get(name)):
            raise BadJob(f"preview job field {name!r} is missing or invalid")
    known = {f for f in PreviewJob.__dataclass_fields__}
    return PreviewJob(**{k: v for k, v in data.items() if k in known})


def _azure_full_name(value: str) -> bool:
    project, _, name = value.partition("/")
    return bool(_AZURE_NAME.fullmatch(project) and _AZURE_NAME.fullmatch(name))


# --- events ------------------------------------------------------------------------------------
def _get(data: Any, path: str, kind: type, *, required: bool = True) -> Any:
    """`data` at the dotted `path` when it has JSON type `kind`; BadEvent naming the field otherwise."""
    value = data
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if value is None and not required:
        return None
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise BadEvent(f"{path} is missing or not {_TYPE_NAMES.get(kind, kind.__name__)}")
    return value


_TYPE_NAMES = {str: "a string", int: "a number", bool: "true or false", dict: "an object", list: "an array"}


def ours(payload: Mapping[str, Any], repo_url: str, github_repo: str | None) -> bool:
    """Whether the event's `repository` is the manifests repository (always, when its URL is not on a host)."""
    repo = payload.get("repository") or {}
    names = {repo[k].lower().removesuffix(".git") for k in ("full_name", "clone_url", "html_url")
             if isinstance(repo.get(k), str)}
    wanted = repository_names(repo_url) | ({github_repo.lower()} if github_repo else set())
    return not wanted or bool(wanted & names)


def job_from_pull_request(payload: Mapping[str, Any], *, branch: str,
                          delivery: str | None = None) -> tuple[PreviewJob | None, str]:
    """(the preview job of a `pull_request` event, "") or (None, why it is not previewed). BadEvent when a field
    read has the wrong shape."""
    action = _get(payload, "action", str)
    number = _get(payload, "number", int)
    head = _get(payload, "pull_request.head.sha", str)
    base = _get(payload, "pull_request.base.ref", str)
    repo = _get(payload, "repository.full_name", str)
    if not SHA.fullmatch(head):
        raise BadEvent("pull_request.head.sha must be a commit SHA (40 or 64 lowercase hex digits)")
    if not _REPO.fullmatch(repo):
        raise BadEvent("repository.full_name must be owner/name")
    if action not in PLANNED_ACTIONS:
        return None, f"pull_request action {shown(action)} is not planned (planned: {', '.join(PLANNED_ACTIONS)})"
    if _get(payload, "pull_request.state", str, required=False) == "closed":
        return None, f"pull request #{number} is closed"
    if base != branch:
        return None, f"pull request #{number} is to {shown(base)}, not {branch}"
    before = _get(payload, "before", str, required=False) if action == "synchronize" else None
    url = _get(payload, "pull_request.html_url", str, required=False) or ""
    head_repo = _get(payload, "pull_request.head.repo.full_name", str, required=False)
    fork = _get(payload, "pull_request.head.repo.fork", bool, required=False)
    fork = bool(fork) or (head_repo is not None and head_repo.lower() != repo.lower())
    return PreviewJob(repo=repo, number=number, head=head, reason=action, base=base, fork=fork,
                      before=before if before and SHA.fullmatch(before) else None, delivery=delivery,
                      url=url if url.startswith("https://") else ""), ""


def job_from_check_run(payload: Mapping[str, Any], *, delivery: str | None = None) -> tuple[PreviewJob | None, str]:
    """(a re-plan job for a `check_run` `rerequested` on Driftless's check, "") or (None, why not)."""
    action = _get(payload, "action", str)
    name = _get(payload, "check_run.name", str)
    if action != "rerequested" or name != CHECK_NAME:
        return None, f"check_run {shown(action)} of {shown(name)} is not a re-run of {CHECK_NAME}"
    head = _get(payload, "check_run.head_sha", str)
    repo = _get(payload, "repository.full_name", str)
    if not SHA.fullmatch(head) or not _REPO.fullmatch(repo):
        raise BadEvent("check_run.head_sha must be a commit SHA and repository.full_name owner/name")
    number = pr_number(payload)
    if number is None:
        return None, f"check run on {head[:12]} names no pull request"
    return PreviewJob(repo=repo, number=number, head=head, reason="rerequested", rerun=True, delivery=delivery), ""


def job_from_service_hook(payload: Mapping[str, Any], *, branch: str, repo: AzureRepo,
                          delivery: str | None = None) -> tuple[PreviewJob | None, str]:
    """(the preview job of an Azure DevOps `git.pullrequest.created` / `git.pullrequest.updated` service-hook
    event, "") or (None, why it is not previewed). The head is `resource.lastMergeSourceCommit.commitId`, the
    PR's source commit (Azure Repos keeps no `refs/pull/N/head`; `refs/pull/N/merge` is a merge commit). An
    event of another repository (the "Test" button sends Microsoft's sample, repository "Fabrikam") is
    ignored before its commit is checked. BadEvent when a field read has the wrong shape."""
    event = _get(payload, "eventType", str)
    if event not in AZURE_EVENTS:
        return None, f"event {shown(event)} is not planned (planned: {', '.join(AZURE_EVENTS)})"
    number = _get(payload, "resource.pullRequestId", int)
    name = _get(payload, "resource.repository.name", str)
    project = _get(payload, "resource.repository.project.name", str)
    if (project.lower(), name.lower()) != (repo.project.lower(), repo.name.lower()):
        return None, f"event of another repository ({shown(project + '/' + name)}, not {repo.full_name})"
    status = _get(payload, "resource.status", str)
    target = _get(payload, "resource.targetRefName", str)
    head = _get(payload, "resource.lastMergeSourceCommit.commitId", str)
    if not SHA.fullmatch(head):
        raise BadEvent("resource.lastMergeSourceCommit.commitId must be a commit SHA (40 or 64 lowercase hex digits)")
    if number <= 0:
        raise BadEvent("resource.pullRequestId must be a positive number")
    if status != "active":
        return None, f"pull request {number} is {shown(status)}, not active"
    if target != f"refs/heads/{branch}":
        return None, f"pull request {number} is to {shown(target)}, not refs/heads/{branch}"
    fork = _get(payload, "resource.forkSource", dict, required=False) is not None
    return PreviewJob(repo=repo.full_name, number=number, head=head, reason=event.rpartition(".")[2],
                      base=branch, fork=fork, delivery=delivery, host=AZURE_REPOS), ""


def hook_authenticated(secret: str, headers: Mapping[str, str]) -> bool:
    """Whether a service-hook request carries `secret`: as the basic-auth password (any user name; what the Web
    Hooks consumer's "Basic authentication" sends) or as the header `X-Driftless-Hook-Secret` (its "HTTP
    headers"). `headers` have lower-case names. Constant-time comparisons."""
    import base64
    import hmac

    wanted = secret.encode()
    scheme, _, encoded = str(headers.get("authorization", "")).strip().partition(" ")
    password = b""
    if scheme.lower() == "basic":
        try:
            password = base64.b64decode(encoded.strip(), validate=True).partition(b":")[2]
        except ValueError:
            password = b""
    by_basic = hmac.compare_digest(password, wanted)
    by_header = hmac.compare_digest(str(headers.get("x-driftless-hook-secret", "")).encode(), wanted)
    return by_basic or by_header


def status_description(title: str) -> str:
    """A check title as a status description: at most `phases.DESCRIPTION_LIMIT` characters (GitHub's cap on a
    commit status; Azure Repos shows it on one line)."""
    if len(title) <= DESCRIPTION_LIMIT:
        return title
    return title[:DESCRIPTION_LIMIT - 1] + "…"


def pr_number(payload: Mapping[str, Any]) -> int | None:
    """The PR of a check run: `pull_requests[0].number`, else our `external_id` (fork PRs list none)."""
    run = payload.get("check_run") or {}
    pulls = run.get("pull_requests") if isinstance(run, Mapping) else None
    if isinstance(pulls, list) and pulls and isinstance(pulls[0], Mapping) and isinstance(pulls[0].get("number"), int):
        return pulls[0]["number"]
    found = re.fullmatch(r"pr:(\d{1,9}):[0-9a-f]{1,64}", str(run.get("external_id") or ""))
    return int(found.group(1)) if found else None


# --- what the summary says ---------------------------------------------------------------------
@dataclass
class TargetPreview:
    """One Target's plan at the PR head, or why it has none."""

    target: str
    kind: str
    plan: Plan | None
    problems: list[Problem] = field(default_factory=list)


@dataclass
class Preview:
    """Everything one check run and comment say."""

    head: str
    base_revision: str
    live_at: str
    targets: list[TargetPreview] = field(default_factory=list)
    target_problems: list[Problem] = field(default_factory=list)   # Target manifests at the PR head
    untouched: bool = False
    targets_changed: bool = False
    compared_with: str = ""            # the revision the PR's changes were found against
    merge_base: bool = True            # compared_with is the merge base (False: the branch head, history lacking)

    @property
    def problems(self) -> list[Problem]:
        return self.target_problems + [p for t in self.targets for p in t.problems]


CATEGORIES = ("create", "update", "delete", "orphan", "refused", "invalid")
_HEADINGS = {"create": "To create", "update": "To update", "delete": "To delete", "orphan": "Left as orphans",
             "refused": "Refused", "invalid": "Invalid, not applied"}


def category(step: Step) -> str | None:
    """Which line of the summary a step belongs on, from its kind and typed `verdict` (never its reason text);
    None for in sync, suspended and other no-ops."""
    if step.kind == "create":
        return "create"
    if step.kind in ("update", "reapply"):
        return "update"
    if step.kind == "delete":
        return "delete"
    if step.kind == "failed":
        return step.verdict or "refused"
    if step.kind == "skipped":
        return step.verdict
    return None


def counts(preview: Preview) -> dict[str, int]:
    total = dict.fromkeys(CATEGORIES, 0)
    for target in preview.targets:
        for step in target.plan.steps if target.plan else []:
            kind = category(step)
            if kind:
                total[kind] += 1
    return total


def conclusion(preview: Preview) -> tuple[str, str]:
    """(check run conclusion, title): `failure` when any manifest is invalid, else `success` (a plan that
    deletes says so in the title)."""
    if preview.untouched:
        return "success", "No Target path touched: nothing to plan"
    problems = preview.problems
    found = counts(preview)
    parts = [f"{found[k]} to {k}" for k in ("create", "update", "delete") if found[k]]
    if found["refused"]:
        parts.append(f"{found['refused']} refused")
    if problems:
        return "failure", f"{len(problems)} manifest problem(s)" + (f"; {', '.join(parts)}" if parts else "")
    if found["delete"]:
        return "success", f"Deletes {found['delete']}: " + ", ".join(parts)
    return "success", ", ".join(parts) if parts else "No changes"


def superseded(newer: str) -> dict[str, str]:
    """The output of an older head's check run once a newer head was pushed."""
    return {"title": f"Superseded by {newer[:12]}",
            "summary": f"{MARKER}\nA newer commit ({newer}) was pushed to this pull request; its check run has the "
                       "current plan."}


def annotations(problems: Iterable[Problem]) -> list[dict[str, Any]]:
    """One `failure` annotation per problem, at its file and line (line 1 when the problem has none)."""
    found = []
    for problem in problems:
        line = problem.line or 1
        note: dict[str, Any] = {"path": problem.file.strip("/") or problem.file, "start_line": line,
                                "end_line": line, "annotation_level": "failure",
                                "message": problem.message[:64000], "title": (problem.field or "manifest")[:255]}
        if problem.line and problem.column:
            note["start_column"] = note["end_column"] = problem.column
        found.append(note)
    return found


def batches(items: Sequence[Any], size: int = ANNOTATIONS_PER_REQUEST) -> list[list[Any]]:
    """`items` cut into lists of at most `size` (one empty list when there are none)."""
    return [list(items[i:i + size]) for i in range(0, len(items), size)] or [[]]


def _value(value: Any) -> str:
    if value is None:
        return "_(absent)_"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    text = text if len(text) <= VALUE_LIMIT else text[:VALUE_LIMIT - 1] + "…"
    return "`" + text.replace("`", "'").replace("|", "\\|").replace("\n", " ") + "`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")


def _changes(step: Step) -> list[str]:
    rows = ["| path | live | desired |", "|---|---|---|"]
    rows += [f"| `{_cell(c.path)}` | {_value(c.live)} | {_value(c.desired)} |" for c in step.changes]
    if len(step.changes) <= COLLAPSE_AFTER:
        return rows
    return ["<details><summary>" + f"{len(step.changes)} field changes</summary>", "", *rows, "", "</details>"]


def summary(preview: Preview) -> str:
    """The check run's Markdown summary (also the body of the PR comment): per Target, what would be created,
    updated (with field diffs: path, live, desired), deleted, left as orphan, refused or is invalid; the Git
    revision and the time of the live state. At most SUMMARY_LIMIT characters."""
    lines = [MARKER, f"### Driftless plan for `{preview.head[:12]}`", ""]
    if preview.untouched:
        lines += ["This pull request touches no Target path: nothing to plan.", ""]
    elif not preview.targets and not preview.target_problems:
        lines += ["No Target is declared for the paths this pull request touches.", ""]
    if not preview.merge_base and not preview.untouched:
        head = (preview.compared_with or preview.base_revision)[:12]
        lines += [f"> Compared with the branch head `{head}`: the merge base could not be found (not in the "
                  "fetched Git history, and the host did not name it), so a Target changed only on the branch is "
                  "planned too.", ""]
    if preview.targets_changed:
        lines += ["> Target definitions changed in this pull request. Targets are planned as declared on "
                  f"the branch (`{preview.base_revision[:12]}`); the new definitions take effect after the merge.",
                  ""]
    if preview.target_problems:
        lines += ["#### Target manifests", ""]
        lines += [f"- :x: {_cell(str(p))}" for p in preview.target_problems] + [""]
    for target in preview.targets:
        lines += _target_section(target)
    footer = ("\n---\nPlanned at Git revision `" + preview.head + "` against the live state read at "
              f"{preview.live_at} (reads only; nothing was written).")
    text = "\n".join(lines)
    if len(text) + len(footer) > SUMMARY_LIMIT:
        note = "\n\n_(summary cut to GitHub's limit; `driftless diff --revision " + preview.head + "` shows it all)_\n"
        text = text[:SUMMARY_LIMIT - len(note) - len(footer)].rsplit("\n", 1)[0] + note
    return text + footer


def _target_section(target: TargetPreview) -> list[str]:
    lines = [f"#### Target `{target.target}` ({target.kind})", ""]
    plan = target.plan
    if plan is None:
        return lines + ["Not planned."] + [""]
    if plan.prune and plan.prune not in ("on", "off"):
        lines += [f"> :warning: {_cell(plan.prune)}", ""]
    grouped: dict[str, list[Step]] = {k: [] for k in CATEGORIES}
    for step in plan.steps:
        kind = category(step)
        if kind:
            grouped[kind].append(step)
    if not any(grouped.values()):
        lines += ["No changes: the live state matches Git.", ""]
    for kind in CATEGORIES:
        if not grouped[kind]:
            continue
        lines += [f"**{_HEADINGS[kind]}** ({len(grouped[kind])})", ""]
        for step in grouped[kind]:
            reason = "" if kind in ("create", "update") else f": {_cell(step.reason)}"
            lines.append(f"- `{_cell(step.app)}`{reason}")
            if kind == "update" and step.changes:
                lines += [""] + ["  " + row for row in _changes(step)] + [""]
            elif kind == "update":
                lines[-1] += f": {_cell(step.reason)}"
        lines.append("")
    if target.problems:
        lines += [f"**Manifest problems** ({len(target.problems)})", ""]
        lines += [f"- {_cell(str(p))}" for p in target.problems[:100]]
        if len(target.problems) > 100:
            lines.append(f"- … and {len(target.problems) - 100} more (see the annotations)")
        lines.append("")
    return lines
