"""Plan previews end to end: a signed `pull_request` webhook -> `plan-previews` (Azurite) -> worker -> a check run
`driftless/plan` and one PR comment on the GitHub stand-in, with the real function_app.py in the local runner.

Faked: GitHub (devtools/ci_stub.py: Checks API and issue comments with GitHub's shapes and refusals, behind
PyGithub). Real: the manifests repository (a Git repository whose pull request heads live under
`refs/pull/N/head`, as on GitHub, forks included), ARM (the ACA emulator: every test asserts it saw no write),
queues and the status table (Azurite). Payloads follow GitHub's `pull_request` and `check_run` webhook shapes.
"""
from __future__ import annotations

import json
import uuid

import pytest
import requests

from devtools.ci_stub import CiStub
from shared.adapters import storage
from shared.core.preview import CHECK_NAME, MARKER
from shared.core.queues import POISON_SUFFIX, PREVIEW_QUEUE, RECONCILE_QUEUE
from shared.core.webhook import sign
from shared.engines.reconciler import Reconciler
from tests.conftest import ENVIRONMENT, GIT_TOKEN, GROUP, WEBHOOK_SECRET, app_yaml, make_settings, sync, writes

REPO = "contoso/gitops"


@pytest.fixture
def github(stack, monkeypatch):
    stub = CiStub(token=GIT_TOKEN).start()
    monkeypatch.setenv("DRIFTLESS_GITHUB_API_URL", stub.url)
    for name in (PREVIEW_QUEUE, PREVIEW_QUEUE + POISON_SUFFIX):
        storage.queue(name).clear_messages()
    yield stub
    stub.stop()


def deploy(repo, aca, files: dict[str, str]) -> str:
    """Commit `files` to main and reconcile them into the emulator (the live state a preview is planned against);
    the emulator's call counters start from zero afterwards."""
    for name, text in files.items():
        repo.write(name, text)
    sha = repo.commit("base")
    sync(Reconciler(make_settings(str(repo.path), aca)))
    aca.reset_calls()
    return sha


def push_pr(repo, number: int, files: dict[str, str] | None = None, removed: tuple[str, ...] = ()) -> str:
    """Commit to the PR's branch and point `refs/pull/<number>/head` at it (what GitHub does on every push, for
    forks too); main is left as it is."""
    branch = f"pr-{number}"
    exists = repo._git("branch", "--list", branch)
    repo._git("checkout", "-q", *(() if exists else ("-b",)), branch)
    for name, text in (files or {}).items():
        repo.write(name, text)
    for name in removed:
        repo.remove(name)
    sha = repo.commit(f"PR {number}")
    repo._git("update-ref", f"refs/pull/{number}/head", sha)
    repo._git("checkout", "-q", "main")
    return sha


def pull_request(action: str, number: int, head: str, *, before: str | None = None, fork: bool = False,
                 base: str = "main") -> dict:
    """A `pull_request` webhook payload with the fields GitHub sends (trimmed of those nobody reads)."""
    head_repo = "mallory/gitops" if fork else REPO
    payload = {
        "action": action, "number": number,
        "pull_request": {
            "url": f"https://api.github.com/repos/{REPO}/pulls/{number}", "id": 1000 + number, "number": number,
            "state": "open", "locked": False, "title": "Change apps", "draft": False,
            "user": {"login": "mallory" if fork else "alice", "type": "User"},
            "head": {"label": f"{head_repo.split('/')[0]}:feature", "ref": "feature", "sha": head,
                     "repo": {"full_name": head_repo, "fork": fork, "clone_url": f"https://github.com/{head_repo}.git"}},
            "base": {"label": "contoso:main", "ref": base, "sha": "b" * 40,
                     "repo": {"full_name": REPO, "fork": False, "clone_url": f"https://github.com/{REPO}.git"}},
            "merged": False, "mergeable": None, "commits": 1, "changed_files": 1},
        "repository": {"id": 1, "name": "gitops", "full_name": REPO, "private": False, "fork": False,
                       "clone_url": f"https://github.com/{REPO}.git", "html_url": f"https://github.com/{REPO}",
                       "default_branch": "main"},
        "sender": {"login": "alice", "type": "User"},
    }
    if action == "synchronize":
        payload.update(before=before or "0" * 40, after=head)
    return payload


def send(runner, event: str, payload: dict, delivery: str | None = None) -> requests.Response:
    body = json.dumps(payload).encode()
    headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
               "Content-Type": "application/json", "X-Hub-Signature-256": sign(WEBHOOK_SECRET, body)}
    return requests.post(f"{runner.url}/api/github/webhook", data=body, headers=headers, timeout=10)


def runs_on(github: CiStub, sha: str) -> list[dict]:
    return [r for r in github.check_runs.values() if r["head_sha"] == sha and r["name"] == CHECK_NAME]


def comments(github: CiStub, number: int) -> list[dict]:
    return [c for c in github.comments.values() if c["issue"] == (REPO, number)]


def test_a_pull_request_gets_a_check_run_and_one_comment_updated_in_place_with_zero_writes(stack, repo, aca, github):
    deploy(repo, aca, {"apps/web.yaml": app_yaml("web")})
    first = push_pr(repo, 7, {"apps/web.yaml": app_yaml("web", image="nginx:1.28"), "apps/api.yaml": app_yaml("api")})
    reply = send(stack, "pull_request", pull_request("opened", 7, first))
    assert reply.status_code == 202, reply.text
    assert reply.json()["preview"]["head"] == first
    assert storage.queue(RECONCILE_QUEUE).peek_messages() == []          # never a reconcile job
    stack.drain()
    [run] = runs_on(github, first)
    assert run["status"] == "completed" and run["conclusion"] == "success"
    assert run["output"]["title"] == "1 to create, 1 to update"
    text = run["output"]["summary"]
    assert text.startswith(MARKER)
    assert "**To create** (1)" in text and "- `api`" in text
    assert "| path | live | desired |" in text and "`nginx:1.27`" in text and "`nginx:1.28`" in text
    assert f"Planned at Git revision `{first}`" in text and "live state read at" in text
    assert run["external_id"].startswith("pr:7:")
    [comment] = comments(github, 7)
    assert comment["body"] == text

    second = push_pr(repo, 7, {"apps/web.yaml": app_yaml("web", image="nginx:1.29")})
    assert send(stack, "pull_request", pull_request("synchronize", 7, second, before=first)).status_code == 202
    stack.drain()
    [old] = runs_on(github, first)
    assert old["conclusion"] == "neutral" and old["output"]["title"] == f"Superseded by {second[:12]}"
    [new] = runs_on(github, second)
    assert new["conclusion"] == "success" and "`nginx:1.29`" in new["output"]["summary"]
    [comment] = comments(github, 7)                                       # the same comment, updated in place
    assert comment["body"] == new["output"]["summary"] and second in comment["body"]
    assert [c.method for c in github.of("github_comment_create")] == ["POST"]
    assert len(github.of("github_comment_edit")) == 1
    assert writes(aca) == 0 and aca.calls()                               # read the live state, wrote nothing


def test_an_invalid_manifest_fails_the_check_with_an_annotation_at_its_line(stack, repo, aca, github):
    deploy(repo, aca, {"apps/web.yaml": app_yaml("web")})
    head = push_pr(repo, 8, {"apps/bad.yaml": app_yaml("bad").replace("cpu: 0.5", "cpu: lots")})
    send(stack, "pull_request", pull_request("opened", 8, head))
    stack.drain()
    [run] = runs_on(github, head)
    assert run["conclusion"] == "failure" and run["output"]["title"].startswith("1 manifest problem(s)")
    [note] = github.annotations[run["id"]]
    assert (note["path"], note["start_line"], note["end_line"], note["annotation_level"]) == \
        ("apps/bad.yaml", 9, 9, "failure")
    assert note["title"] == "spec.containers[0].cpu" and "lots" in note["message"]
    assert "**Invalid, not applied** (1)" in run["output"]["summary"]
    assert writes(aca) == 0


def test_more_than_50_problems_are_sent_in_batches_of_at_most_50(stack, repo, aca, github):
    deploy(repo, aca, {"apps/web.yaml": app_yaml("web")})
    bad = {f"apps/bad{n:02d}.yaml": app_yaml(f"bad{n:02d}").replace("cpu: 0.5", "cpu: lots") for n in range(120)}
    head = push_pr(repo, 9, bad)
    send(stack, "pull_request", pull_request("opened", 9, head))
    stack.drain()
    [run] = runs_on(github, head)
    assert run["conclusion"] == "failure" and run["output"]["annotations_count"] == 120
    sent = [len(((c.body or {}).get("output") or {}).get("annotations") or [])
            for c in github.calls if c.method in ("POST", "PATCH") and "/check-runs" in c.path]
    assert sum(sent) == 120 and max(sent) <= 50 and len([n for n in sent if n]) == 3
    assert sorted(n["path"] for n in github.annotations[run["id"]]) == sorted(bad)
    assert writes(aca) == 0


def test_a_plan_with_a_delete_and_a_refused_prune_says_so(stack, repo, aca, github):
    targets = (f"apiVersion: driftless.io/v1alpha1\nkind: Target\nmetadata: {{name: default}}\n"
               f"spec: {{type: aca, path: apps, resourceGroup: {GROUP}, environment: {ENVIRONMENT}, prune: true}}\n"
               "---\napiVersion: driftless.io/v1alpha1\nkind: Target\nmetadata: {name: other}\n"
               f"spec: {{type: aca, path: other, resourceGroup: {GROUP}, environment: env-other, prune: true}}\n")
    deploy(repo, aca, {"targets/targets.yaml": targets, "apps/web.yaml": app_yaml("web"),
                       "apps/api.yaml": app_yaml("api"), "apps/old.yaml": app_yaml("old"),
                       "other/lone.yaml": app_yaml("lone"), "other/keep.yaml": app_yaml("keep"),
                       "other/README.md": "apps of the other environment\n"})
    head = push_pr(repo, 10, removed=("apps/old.yaml", "other/lone.yaml", "other/keep.yaml"))
    send(stack, "pull_request", pull_request("opened", 10, head))
    stack.drain()
    [run] = runs_on(github, head)
    assert run["conclusion"] == "success", run["output"]
    assert run["output"]["title"] == "Deletes 1: 1 to delete, 2 refused"
    text = run["output"]["summary"]
    default, other = text.split("#### Target `other`")
    assert "**To delete** (1)" in default and "- `old`: owned by this Target and no longer in Git" in default
    assert "**Refused** (2)" in other and "prune refused: it would delete 2 of 2 owned apps (all)" in other
    assert writes(aca) == 0


def test_a_newer_head_supersedes_an_older_job_still_in_the_queue(stack, repo, aca, github):
    deploy(repo, aca, {"apps/web.yaml": app_yaml("web")})
    first = push_pr(repo, 11, {"apps/web.yaml": app_yaml("web", image="nginx:1.28")})
    send(stack, "pull_request", pull_request("opened", 11, first))
    second = push_pr(repo, 11, {"apps/web.yaml": app_yaml("web", image="nginx:1.29")})
    send(stack, "pull_request", pull_request("synchronize", 11, second, before=first))
    stack.drain()
    [old] = runs_on(github, first)
    assert old["conclusion"] == "neutral" and old["output"]["title"] == f"Superseded by {second[:12]}"
    assert "1.28" not in (old["output"]["summary"] or "")                  # never planned: it was superseded
    [new] = runs_on(github, second)
    assert new["conclusion"] == "success"
    [comment] = comments(github, 11)
    assert comment["body"] == new["output"]["summary"]


def test_a_repeated_delivery_or_event_for_the_same_head_makes_no_second_check_run(stack, repo, aca, github):
    deploy(repo, aca, {"apps/web.yaml": app_yaml("web")})
    head = push_pr(repo, 12, {"apps/web.yaml": app_yaml("web", image="nginx:1.28")})
    delivery = str(uuid.uuid4())
    assert send(stack, "pull_request", pull_request("opened", 12, head), delivery).status_code == 202
    assert send(stack, "pull_request", pull_request("opened", 12, head), delivery).json() == {"duplicate": delivery}
    again = send(stack, "pull_request", pull_request("ready_for_review", 12, head))
    assert again.status_code == 200 and "already planned" in again.json()["duplicate"]
    assert len(storage.queue(PREVIEW_QUEUE).peek_messages(max_messages=32)) == 1
    stack.drain()
    assert len(runs_on(github, head)) == 1 and len(github.of("github_check_create")) == 1
    assert len(comments(github, 12)) == 1


def test_a_rerequested_check_plans_again_as_a_new_check_run(stack, repo, aca, github):
    deploy(repo, aca, {"apps/web.yaml": app_yaml("web")})
    head = push_pr(repo, 13, {"apps/web.yaml": app_yaml("web", image="nginx:1.28")})
    send(stack, "pull_request", pull_request("opened", 13, head, fork=True))
    stack.drain()
    [first] = runs_on(github, head)
    rerun = {"action": "rerequested", "check_run": {**first, "pull_requests": []},   # a fork PR's run lists none
             "repository": {"full_name": REPO, "clone_url": f"https://github.com/{REPO}.git"},
             "sender": {"login": "alice"}}
    assert send(stack, "check_run", rerun).status_code == 202
    other = {**rerun, "check_run": {**first, "name": "ci/build"}}
    assert "ignored" in send(stack, "check_run", other).json()
    stack.drain()
    runs = runs_on(github, head)
    assert len(runs) == 2 and all(r["conclusion"] == "success" for r in runs)
    assert len(comments(github, 13)) == 1 and writes(aca) == 0


def test_a_fork_pull_request_is_planned_the_same_way(stack, repo, aca, github):
    deploy(repo, aca, {"apps/web.yaml": app_yaml("web")})
    head = push_pr(repo, 14, {"apps/web.yaml": app_yaml("web", image="nginx:1.28")})
    assert send(stack, "pull_request", pull_request("opened", 14, head, fork=True)).status_code == 202
    stack.drain()
    [run] = runs_on(github, head)
    assert run["conclusion"] == "success" and run["output"]["title"] == "1 to update"
    assert len(comments(github, 14)) == 1 and writes(aca) == 0


def test_a_pull_request_touching_no_target_path_gets_a_success_check_and_no_planning(stack, repo, aca, github):
    deploy(repo, aca, {"apps/web.yaml": app_yaml("web")})
    repo.write("README.md", "# docs\n")
    head = push_pr(repo, 15, {"docs/guide.yaml": "title: not a manifest folder\n"})
    send(stack, "pull_request", pull_request("opened", 15, head))
    stack.drain()
    [run] = runs_on(github, head)
    assert run["conclusion"] == "success" and run["output"]["title"] == "No Target path touched: nothing to plan"
    assert aca.calls() == {}                                              # not even a read of the live state


def test_pull_requests_to_other_branches_and_other_actions_are_ignored(stack, repo, aca, github):
    repo.commit("base")
    head = push_pr(repo, 16, {"apps/web.yaml": app_yaml("web")})
    assert "not main" in send(stack, "pull_request", pull_request("opened", 16, head, base="develop")).json()["ignored"]
    assert "not planned" in send(stack, "pull_request", pull_request("closed", 16, head)).json()["ignored"]
    bad = pull_request("opened", 16, "not-a-sha")
    assert send(stack, "pull_request", bad).status_code == 400
    assert storage.queue(PREVIEW_QUEUE).peek_messages() == []


def test_a_secondary_rate_limit_is_retried_through_the_queue_and_the_comment_can_be_off(
        stack, repo, aca, github, monkeypatch):
    monkeypatch.setenv("DRIFTLESS_PREVIEW_COMMENT", "false")                 # the process's Driftless is rebuilt
    deploy(repo, aca, {"apps/web.yaml": app_yaml("web")})
    head = push_pr(repo, 17, {"apps/web.yaml": app_yaml("web", image="nginx:1.28")})
    github.rate_limited["github_check_create"] = 1
    send(stack, "pull_request", pull_request("opened", 17, head))
    stack.drain()
    assert [c.method for c in github.of("github_check_create")] == ["POST", "POST"]     # 403 Retry-After, then 201
    [run] = runs_on(github, head)
    assert run["conclusion"] == "success"
    assert comments(github, 17) == [] and github.of("github_comments") == []
    assert storage.queue(PREVIEW_QUEUE + POISON_SUFFIX).peek_messages() == []


def test_a_malformed_preview_job_is_parked_at_once(stack, github):
    storage.send(PREVIEW_QUEUE, '{"v": 1, "repo": "contoso/gitops"}')
    stack.drain()
    assert len(storage.queue(PREVIEW_QUEUE + POISON_SUFFIX).peek_messages()) == 1
    assert github.calls == []


def test_driftless_diff_revision_markdown_prints_exactly_the_checks_summary(stack, repo, aca, github, capsys):
    from shared.cli import main

    deploy(repo, aca, {"apps/web.yaml": app_yaml("web")})
    head = push_pr(repo, 18, {"apps/web.yaml": app_yaml("web", image="nginx:1.28")})
    send(stack, "pull_request", pull_request("opened", 18, head))
    stack.drain()
    [run] = runs_on(github, head)
    capsys.readouterr()
    assert main(["diff", "--revision", "refs/pull/18/head", "-o", "markdown"]) == 0
    printed = capsys.readouterr().out.rstrip("\n")

    def timeless(text: str) -> str:
        return text.rsplit("live state read at ", 1)[0]

    assert timeless(printed) == timeless(run["output"]["summary"]) and "`nginx:1.28`" in printed
    assert main(["diff", "--revision", "pr-18", "-o", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["app"], r["action"], r["desired"]) for r in rows] == [("web", "update", "nginx:1.28")]
    assert main(["diff", "--revision", "no-such-branch"]) == 2
    assert writes(aca) == 0
