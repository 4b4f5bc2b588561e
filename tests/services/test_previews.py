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
from devtools.git_server import GitBackendServer
from shared.adapters import storage
from shared.core.preview import CHECK_NAME, MARKER
from shared.core.queues import POISON_SUFFIX, PREVIEW_QUEUE, RECONCILE_QUEUE
from shared.core.webhook import sign
from shared.engines.reconciler import Reconciler
from tests.conftest import ENVIRONMENT, GIT_TOKEN, GROUP, KEY, WEBHOOK_SECRET, app_yaml, make_settings, sync, writes

REPO = "contoso/gitops"


@pytest.fixture
def github(stack, monkeypatch):
    stub = CiStub(token=GIT_TOKEN).start()
    monkeypatch.setenv("DRIFTLESS_GITHUB_API_URL", stub.url)
    for name in (PREVIEW_QUEUE, PREVIEW_QUEUE + POISON_SUFFIX):
        storage.queue(name).clear_messages()
    yield stub
    stub.stop()


def two_targets(*, prune: bool = False) -> str:
    """Targets `default` (path apps/) and `other` (path other/, environment env-other) in one group, as YAML."""
    extra = ", prune: true" if prune else ""
    return (f"apiVersion: driftless.io/v1alpha1\nkind: Target\nmetadata: {{name: default}}\n"
            f"spec: {{type: aca, path: apps, resourceGroup: {GROUP}, environment: {ENVIRONMENT}{extra}}}\n"
            "---\napiVersion: driftless.io/v1alpha1\nkind: Target\nmetadata: {name: other}\n"
            f"spec: {{type: aca, path: other, resourceGroup: {GROUP}, environment: env-other{extra}}}\n")


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
    targets = two_targets(prune=True)
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


# --- Azure Repos -------------------------------------------------------------------------------------------
AZDO_PAT = "azdo-pat-e2e-never-log-me"
HOOK_SECRET = "azdo-hook-e2e-never-log-me"
PROJECT, AZURE_NAME = "Fabrikam Apps", "gitops"


@pytest.fixture
def azure(stack, vault, monkeypatch):
    """The Azure DevOps stand-in holding the manifests repository's pull requests; the hook secret and the PAT
    in Key Vault."""
    stub = CiStub(azdo_token=AZDO_PAT).start()
    monkeypatch.setenv("DRIFTLESS_MANIFESTS_AZURE_REPO", f"{stub.url}/contoso/Fabrikam%20Apps/_git/{AZURE_NAME}")
    vault.set_secret("driftless-azdo-hook-secret", HOOK_SECRET)
    vault.set_secret("driftless-azdo-token", AZDO_PAT)
    for name in (PREVIEW_QUEUE, PREVIEW_QUEUE + POISON_SUFFIX):
        storage.queue(name).clear_messages()
    yield stub
    stub.stop()


def push_branch(repo, branch: str, files: dict[str, str]) -> str:
    """Commit to `branch` only: Azure Repos keeps a PR's source commit on its source branch (no refs/pull/N/head)."""
    exists = repo._git("branch", "--list", branch)
    repo._git("checkout", "-q", *(() if exists else ("-b",)), branch)
    for name, text in files.items():
        repo.write(name, text)
    sha = repo.commit(f"push to {branch}")
    repo._git("checkout", "-q", "main")
    return sha


def service_hook(event: str, number: int, head: str, *, status: str = "active", target: str = "refs/heads/main",
                 project: str = PROJECT, name: str = AZURE_NAME) -> dict:
    """A `git.pullrequest.*` service-hook payload in the shape of Microsoft's service-hook event reference."""
    repo_url = f"https://dev.azure.com/contoso/{project}/_apis/git/repositories/6d1e5f9a"
    return {
        "subscriptionId": "4f6e6328-0251-4814-a009-c01dfa368e3f", "notificationId": 3, "id": str(uuid.uuid4()),
        "eventType": event, "publisherId": "tfs",
        "message": {"text": "Jamal Hartnett updated the source branch of pull request 1"},
        "resource": {
            "repository": {"id": "6d1e5f9a", "name": name, "url": repo_url,
                           "project": {"id": "a7b0", "name": project, "state": "wellFormed"},
                           "defaultBranch": "refs/heads/main",
                           "remoteUrl": f"https://dev.azure.com/contoso/{project}/_git/{name}"},
            "pullRequestId": number, "status": status,
            "createdBy": {"displayName": "Jamal Hartnett", "uniqueName": "fabrikamfiber4@hotmail.com"},
            "creationDate": "2026-06-17T16:55:46.589889Z", "title": "Change apps", "description": "",
            "sourceRefName": "refs/heads/feature", "targetRefName": target, "mergeStatus": "succeeded",
            "mergeId": "a10bb228-6ba6-4362-abd7-49ea21333dbd",
            "lastMergeSourceCommit": {"commitId": head, "url": f"{repo_url}/commits/{head}"},
            "lastMergeTargetCommit": {"commitId": "a511f535b1ea495ee0c903badb68fbc83772c882"},
            "reviewers": [], "url": f"{repo_url}/pullRequests/{number}"},
        "resourceVersion": "1.0",
        "resourceContainers": {"collection": {"id": "c0"}, "account": {"id": "a0"}, "project": {"id": "a7b0"}},
        "createdDate": "2026-06-17T16:55:47.2879096Z",
    }


def hook(runner, payload: dict | bytes, *, password: str | None = HOOK_SECRET, key: bool = True,
         headers: dict | None = None) -> requests.Response:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return requests.post(f"{runner.url}/api/azure-devops/webhook", params={"code": KEY} if key else None,
                         data=body, auth=("azure-devops", password) if password is not None else None,
                         headers={"Content-Type": "application/json", **(headers or {})}, timeout=10)


def test_an_azure_repos_pull_request_gets_a_status_and_one_thread_updated_in_place_with_zero_writes(
        stack, repo, aca, azure):
    deploy(repo, aca, {"apps/web.yaml": app_yaml("web")})
    first = push_branch(repo, "feature", {"apps/web.yaml": app_yaml("web", image="nginx:1.28"),
                                          "apps/api.yaml": app_yaml("api")})
    azure.azdo_push(21, first)
    reply = hook(stack, service_hook("git.pullrequest.created", 21, first))
    assert reply.status_code == 202, reply.text
    assert reply.json()["preview"] == {**reply.json()["preview"], "host": "azure-repos", "head": first,
                                       "repo": f"{PROJECT}/{AZURE_NAME}", "number": 21}
    stack.drain()
    statuses = azure.pr_statuses[21]
    assert [(s["state"], s["iterationId"], s["context"]) for s in statuses] == \
        [("pending", 1, {"genre": "driftless", "name": "plan"}), ("succeeded", 1, {"genre": "driftless", "name": "plan"})]
    assert statuses[-1]["description"] == "1 to create, 1 to update"
    [thread] = azure.threads[21].values()
    text = thread["comments"][0]["content"]
    assert text.startswith(MARKER) and "**To create** (1)" in text and "`nginx:1.28`" in text
    assert f"Planned at Git revision `{first}`" in text
    assert thread["properties"]["driftless.plan"]["$value"] == "1" and thread["status"] == "active"
    assert all(c.headers.get("X-TFS-FedAuthRedirect") == "Suppress" for c in azure.calls)

    second = push_branch(repo, "feature", {"apps/web.yaml": app_yaml("web", image="nginx:1.29")})
    azure.azdo_push(21, second)
    assert hook(stack, service_hook("git.pullrequest.updated", 21, second)).status_code == 202
    again = hook(stack, service_hook("git.pullrequest.updated", 21, second))   # e.g. a reviewer voted
    assert again.status_code == 200 and "already planned" in again.json()["duplicate"]
    stack.drain()
    assert [(s["state"], s["iterationId"]) for s in azure.pr_statuses[21][2:]] == [("pending", 2), ("succeeded", 2)]
    [thread] = azure.threads[21].values()                                   # the same thread, updated in place
    assert second in thread["comments"][0]["content"] and "`nginx:1.29`" in thread["comments"][0]["content"]
    assert len(azure.of("azdo_pr_thread_create")) == 1 and len(azure.of("azdo_pr_comment_edit")) == 1
    assert writes(aca) == 0 and aca.calls()


def test_an_azure_repos_head_already_pushed_over_is_not_planned(stack, repo, aca, azure):
    deploy(repo, aca, {"apps/web.yaml": app_yaml("web")})
    first = push_branch(repo, "feature", {"apps/web.yaml": app_yaml("web", image="nginx:1.28")})
    azure.azdo_push(22, first)
    assert hook(stack, service_hook("git.pullrequest.created", 22, first)).status_code == 202
    azure.azdo_push(22, push_branch(repo, "feature", {"apps/web.yaml": app_yaml("web", image="nginx:1.29")}))
    stack.drain()                                                            # the PR moved on: nothing posted
    assert azure.pr_statuses.get(22) is None and azure.threads.get(22) is None
    assert aca.calls() == {}


def test_the_azure_devops_webhook_refuses_bad_auth_and_malformed_payloads_with_a_reason(stack, repo, azure):
    head = repo.commit("base")
    good = service_hook("git.pullrequest.created", 23, head)
    assert hook(stack, good, password=None).status_code == 401
    wrong = hook(stack, good, password="not-the-secret")
    assert wrong.status_code == 401 and "password" in wrong.json()["error"]
    assert hook(stack, good, key=False).status_code == 401                  # the function key, checked by the host
    assert hook(stack, b"{not json", password=HOOK_SECRET).status_code == 400
    missing = json.loads(json.dumps(good))
    del missing["resource"]["lastMergeSourceCommit"]
    reply = hook(stack, missing)
    assert reply.status_code == 400 and "resource.lastMergeSourceCommit.commitId" in reply.json()["error"]
    not_sha = service_hook("git.pullrequest.created", 23, "00000000-0000-0000-0000-000000000000")
    assert "commit SHA" in hook(stack, not_sha).json()["error"]
    number = json.loads(json.dumps(good))
    number["resource"]["pullRequestId"] = "23"
    assert "resource.pullRequestId" in hook(stack, number).json()["error"]
    sample = service_hook("git.pullrequest.created", 1, "0" * 36, project="Fabrikam", name="Fabrikam")
    assert "another repository" in hook(stack, sample).json()["ignored"]    # the subscription's "Test" button
    assert "not active" in hook(stack, service_hook("git.pullrequest.updated", 23, head,
                                                    status="completed")).json()["ignored"]
    assert "not refs/heads/main" in hook(stack, service_hook("git.pullrequest.created", 23, head,
                                                             target="refs/heads/develop")).json()["ignored"]
    assert "not planned" in hook(stack, {**good, "eventType": "git.push"}).json()["ignored"]
    by_header = hook(stack, good, password=None, headers={"X-Driftless-Hook-Secret": HOOK_SECRET})
    assert by_header.status_code == 202, by_header.text
    assert len(storage.queue(PREVIEW_QUEUE).peek_messages(max_messages=32)) == 1
    assert azure.calls == []


def test_with_a_personal_access_token_the_plan_is_a_commit_status_and_the_comment(stack, repo, aca, vault,
                                                                                   monkeypatch):
    token = "github_pat_e2e_never_log_me"
    vault.set_secret("driftless-git-token", token)
    stub = CiStub(token=token).start()
    monkeypatch.setenv("DRIFTLESS_GITHUB_API_URL", stub.url)
    try:
        for name in (PREVIEW_QUEUE, PREVIEW_QUEUE + POISON_SUFFIX):
            storage.queue(name).clear_messages()
        deploy(repo, aca, {"apps/web.yaml": app_yaml("web")})
        head = push_pr(repo, 24, {"apps/web.yaml": app_yaml("web", image="nginx:1.28")})
        payload = pull_request("opened", 24, head)
        payload["pull_request"]["html_url"] = f"https://github.com/{REPO}/pull/24"
        assert send(stack, "pull_request", payload).status_code == 202
        stack.drain()
        assert stub.check_runs == {} and [c.method for c in stub.of("github_check_create")] == ["POST"]
        [status] = [c for c in stub.of("github_status") if c.path.endswith(head)]
        assert status.body["state"] == "success" and status.body["context"] == CHECK_NAME
        assert status.body["description"] == "1 to update" and status.body["target_url"].endswith("/pull/24")
        [comment] = [c for c in stub.comments.values() if c["issue"] == (REPO, 24)]
        assert "`nginx:1.28`" in comment["body"] and head in comment["body"]
        assert storage.queue(PREVIEW_QUEUE + POISON_SUFFIX).peek_messages() == []
        assert writes(aca) == 0
    finally:
        stub.stop()


def test_only_the_targets_the_pull_request_changed_are_planned_when_the_branch_moved_on(stack, repo, aca, github):
    targets = two_targets()
    deploy(repo, aca, {"targets/targets.yaml": targets, "apps/web.yaml": app_yaml("web"),
                       "other/lone.yaml": app_yaml("lone")})
    head = push_pr(repo, 26, {"other/lone.yaml": app_yaml("lone", image="nginx:1.28")})
    repo.write("apps/web.yaml", app_yaml("web", image="nginx:1.30"))        # main moves on after the PR forked
    repo.commit("main moves on")
    send(stack, "pull_request", pull_request("opened", 26, head))
    stack.drain()
    [run] = runs_on(github, head)
    text = run["output"]["summary"]
    assert run["output"]["title"] == "1 to update" and "#### Target `other`" in text
    assert "#### Target `default`" not in text and "Compared with the branch head" not in text
    assert writes(aca) == 0


@pytest.fixture
def served(repo, monkeypatch):
    """The manifests repository served over HTTP by git http-backend (protocol v2, as GitHub): Driftless's Git
    cache is then fetched shallow, one commit per revision, and holds no history."""
    server = GitBackendServer(str(repo.path), protocol=2).start()
    monkeypatch.setenv("DRIFTLESS_REPO_URL", server.url)
    monkeypatch.setenv("DRIFTLESS_MANIFESTS_GITHUB_REPO", REPO)
    yield server
    server.stop()


def fork_and_move_on(repo, aca, number: int, *, pull_ref: bool = True) -> tuple[str, str]:
    """(the fork point, the PR head): the PR changes the `other` Target only, then main changes `default`."""
    fork = deploy(repo, aca, {"targets/targets.yaml": two_targets(), "apps/web.yaml": app_yaml("web"),
                              "other/lone.yaml": app_yaml("lone")})
    files = {"other/lone.yaml": app_yaml("lone", image="nginx:1.28")}
    head = push_pr(repo, number, files) if pull_ref else push_branch(repo, f"feature-{number}", files)
    repo.write("apps/web.yaml", app_yaml("web", image="nginx:1.30"))
    repo.commit("main moves on")
    return fork, head


def test_with_a_shallow_git_cache_github_names_the_merge_base_else_the_summary_says_branch_head(
        stack, repo, aca, github, served):
    fork, head = fork_and_move_on(repo, aca, 27)
    github.merge_bases[("main", head)] = fork
    assert send(stack, "pull_request", pull_request("opened", 27, head)).status_code == 202
    stack.drain()
    [run] = runs_on(github, head)
    text = run["output"]["summary"]
    assert run["output"]["title"] == "1 to update" and "#### Target `other`" in text
    assert "#### Target `default`" not in text and "Compared with the branch head" not in text
    assert len(github.of("github_compare")) == 1

    other = push_pr(repo, 28, {"other/lone.yaml": app_yaml("lone", image="nginx:1.29")})
    repo.write("apps/web.yaml", app_yaml("web", image="nginx:1.31"))        # main moves on again
    repo.commit("main moves on again")
    send(stack, "pull_request", pull_request("opened", 28, other))           # GitHub's compare: 404 here
    stack.drain()
    [run] = runs_on(github, other)
    assert "> Compared with the branch head" in run["output"]["summary"]
    assert "#### Target `default`" in run["output"]["summary"]               # changed only on main, planned too
    assert writes(aca) == 0


def test_with_a_shallow_git_cache_an_azure_repos_iteration_names_the_merge_base(stack, repo, aca, azure, served):
    fork, head = fork_and_move_on(repo, aca, 29, pull_ref=False)
    azure.azdo_push(29, head, common=fork)
    assert hook(stack, service_hook("git.pullrequest.created", 29, head)).status_code == 202
    stack.drain()
    assert azure.pr_statuses[29][-1]["description"] == "1 to update"
    [thread] = azure.threads[29].values()
    text = thread["comments"][0]["content"]
    assert "#### Target `other`" in text and "#### Target `default`" not in text
    assert "Compared with the branch head" not in text and writes(aca) == 0
