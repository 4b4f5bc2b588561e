"""The pure part of plan previews: events read, the job message, title, conclusion, summary and annotations."""
from __future__ import annotations

import json

import pytest

from shared.core.diff import Change
from shared.core.jobs import BadJob
from shared.core.manifests import Problem
from shared.core.plan import Plan, Step
from shared.core.preview import (
    MARKER,
    AzureRepo,
    SUMMARY_LIMIT,
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
    parse_preview_job,
    status_description,
    summary,
)
from shared.core.webhook import BadEvent

HEAD = "a" * 40


def payload(**changes) -> dict:
    body = {"action": "opened", "number": 7,
            "pull_request": {"state": "open", "head": {"sha": HEAD, "ref": "f", "repo": {"full_name": "me/gitops",
                                                                                           "fork": True}},
                             "base": {"ref": "main", "repo": {"full_name": "contoso/gitops"}}},
            "repository": {"full_name": "contoso/gitops", "clone_url": "https://github.com/contoso/gitops.git"}}
    body.update(changes)
    return body


def test_a_pull_request_event_becomes_a_job_that_survives_the_queue():
    job, why = job_from_pull_request(payload(), branch="main", delivery="d-1")
    assert why == "" and (job.repo, job.number, job.head, job.fork, job.ref) == \
        ("contoso/gitops", 7, HEAD, True, "refs/pull/7/head")
    assert parse_preview_job(job.to_json()) == job
    assert job.claim_key == f"contoso:gitops:7:{HEAD}"


@pytest.mark.parametrize("changes, reason", [({"action": "closed"}, "not planned"),
                                             ({"action": "labeled"}, "not planned")])
def test_other_actions_are_not_planned(changes, reason):
    job, why = job_from_pull_request(payload(**changes), branch="main")
    assert job is None and reason in why


def test_a_pull_request_to_another_branch_is_not_planned():
    job, why = job_from_pull_request(payload(), branch="production")
    assert job is None and "not production" in why


@pytest.mark.parametrize("changes, field", [({"number": "7"}, "number"), ({"pull_request": {"head": {"sha": 5}}},
                                                                          "pull_request.head.sha")])
def test_a_field_of_the_wrong_shape_is_a_bad_event_naming_it(changes, field):
    with pytest.raises(BadEvent, match=field):
        job_from_pull_request(payload(**changes), branch="main")


def test_a_rerequested_check_of_a_fork_pr_finds_its_number_in_the_external_id():
    run = {"action": "rerequested", "repository": {"full_name": "contoso/gitops"},
           "check_run": {"name": "driftless/plan", "head_sha": HEAD, "pull_requests": [],
                         "external_id": "pr:42:abc123"}}
    job, _ = job_from_check_run(run)
    assert job.number == 42 and job.rerun
    job, why = job_from_check_run({**run, "check_run": {**run["check_run"], "name": "build"}})
    assert job is None and "not a re-run" in why


@pytest.mark.parametrize("body", [b"not json", b'{"v": 2}', json.dumps({"v": 1, "repo": "x"}).encode(),
                                  json.dumps({**json.loads(PreviewJob("a/b", 1, HEAD, "opened").to_json()),
                                              "head": "main"}).encode()],
                         ids=["not-json", "v2", "no-fields", "head-not-a-sha"])
def test_a_malformed_job_is_refused(body):
    with pytest.raises(BadJob):
        parse_preview_job(body)


def test_annotations_sit_on_the_problems_file_and_line_and_are_cut_in_batches_of_50():
    problems = [Problem("apps/a.yaml", "bad cpu", "spec.containers[0].cpu", line=9, column=12),
                Problem("apps/b.yaml", "not YAML")]
    notes = annotations(problems)
    assert notes[0] == {"path": "apps/a.yaml", "start_line": 9, "end_line": 9, "start_column": 12, "end_column": 12,
                        "annotation_level": "failure", "message": "bad cpu", "title": "spec.containers[0].cpu"}
    assert notes[1]["start_line"] == 1 and "start_column" not in notes[1]
    assert [len(b) for b in batches(list(range(120)))] == [50, 50, 20]
    assert batches([]) == [[]]


def preview(*steps: Step, problems: list[Problem] | None = None, prune: str = "") -> Preview:
    return Preview(head=HEAD, base_revision="b" * 40, live_at="2026-01-02T03:04:05+00:00",
                   targets=[TargetPreview("prod", "aca", Plan(list(steps), bool(problems), prune), problems or [])])


def test_the_title_says_what_changes_and_a_delete_is_named_first():
    assert conclusion(preview(Step("a", "create"), Step("b", "unchanged"))) == ("success", "1 to create")
    assert conclusion(preview(Step("a", "delete"), Step("b", "update"))) == \
        ("success", "Deletes 1: 1 to update, 1 to delete")
    assert conclusion(preview(problems=[Problem("apps/x.yaml", "bad")]))[0] == "failure"
    assert conclusion(Preview(HEAD, HEAD, "t", untouched=True)) == \
        ("success", "No Target path touched: nothing to plan")


def test_the_summary_shows_field_diffs_folds_long_ones_and_states_revision_and_time():
    short = Step("web", "update", changes=[Change("properties.template.containers[web].image", "nginx:2", "nginx:1")])
    long = Step("api", "update", changes=[Change(f"tags.t{n}", "b|x", "a") for n in range(12)])
    text = summary(preview(short, long, Step("old", "skipped", "orphan: owned by this Target but not in Git; "
                                                                 "prune is off", verdict="orphan")))
    assert text.startswith(MARKER)
    assert "| `properties.template.containers[web].image` | `nginx:1` | `nginx:2` |" in text
    assert "<details><summary>12 field changes</summary>" in text and "`b\\|x`" in text
    assert "**Left as orphans** (1)" in text
    assert f"Planned at Git revision `{HEAD}` against the live state read at 2026-01-02T03:04:05+00:00" in text


def test_secret_references_show_by_name_and_a_huge_summary_is_cut_to_githubs_limit():
    secret = Step("web", "update", changes=[Change("properties.template.containers[web].env[DB]",
                                                   {"secretRef": "db-password"}, None)])
    assert '`{"secretRef": "db-password"}`' in summary(preview(secret))
    many = [Step(f"app{n:05d}", "create") for n in range(8000)]
    text = summary(preview(*many))
    assert len(text) <= SUMMARY_LIMIT and "driftless diff --revision" in text
    assert text.endswith("(reads only; nothing was written).") and "- `app07999`" not in text


# --- Azure Repos -------------------------------------------------------------------------------------------
REPO = AzureRepo("https://dev.azure.com/contoso", "Fabrikam Apps", "gitops")


def hook_payload(**resource) -> dict:
    body = {"id": "e1", "eventType": "git.pullrequest.created", "publisherId": "tfs",
            "resource": {"repository": {"name": "GitOps", "project": {"name": "fabrikam apps"}},
                         "pullRequestId": 4, "status": "active", "targetRefName": "refs/heads/main",
                         "sourceRefName": "refs/heads/feature", "lastMergeSourceCommit": {"commitId": HEAD}}}
    body["resource"].update(resource)
    return body


@pytest.mark.parametrize("url, expected", [
    ("https://dev.azure.com/contoso/Fabrikam%20Apps/_git/gitops", REPO),
    ("https://contoso@dev.azure.com/contoso/Fabrikam%20Apps/_git/gitops.git", REPO),
    ("https://contoso.visualstudio.com/DefaultCollection/Web/_git/site",
     AzureRepo("https://contoso.visualstudio.com/DefaultCollection", "Web", "site")),
    ("https://github.com/contoso/gitops.git", None), ("/srv/git/gitops", None), (None, None),
])
def test_an_azure_repos_url_names_organization_project_and_repository(url, expected):
    assert azure_repo(url) == expected


def test_a_service_hook_event_becomes_an_azure_job_that_survives_the_queue():
    job, why = job_from_service_hook(hook_payload(), branch="main", repo=REPO, delivery="azdo:e1")
    assert why == "" and (job.host, job.repo, job.number, job.head, job.reason) == \
        ("azure-repos", "Fabrikam Apps/gitops", 4, HEAD, "created")
    again = parse_preview_job(job.to_json())
    assert again == job and again.azure and again.pr_key == "azure:Fabrikam Apps:gitops:4"
    assert job_from_service_hook(hook_payload(forkSource={"name": "refs/heads/x"}), branch="main",
                                 repo=REPO)[0].fork


@pytest.mark.parametrize("resource, reason", [
    ({"status": "abandoned"}, "not active"), ({"targetRefName": "refs/heads/dev"}, "not refs/heads/main"),
    ({"repository": {"name": "Fabrikam", "project": {"name": "Fabrikam"}}}, "another repository"),
])
def test_service_hook_events_not_planned_say_why(resource, reason):
    job, why = job_from_service_hook(hook_payload(**resource), branch="main", repo=REPO)
    assert job is None and reason in why


@pytest.mark.parametrize("resource, field", [
    ({"pullRequestId": "4"}, "resource.pullRequestId"), ({"lastMergeSourceCommit": None}, "lastMergeSourceCommit"),
    ({"lastMergeSourceCommit": {"commitId": "53d54ac9"}}, "commit SHA"), ({"status": 1}, "resource.status"),
])
def test_a_service_hook_field_of_the_wrong_shape_is_a_bad_event_naming_it(resource, field):
    with pytest.raises(BadEvent, match=field):
        job_from_service_hook(hook_payload(**resource), branch="main", repo=REPO)


def test_a_service_hook_is_authenticated_by_its_basic_password_or_header_only():
    import base64

    def basic(text: str) -> dict:
        return {"authorization": "Basic " + base64.b64encode(text.encode()).decode()}

    assert hook_authenticated("s3cret", basic("anyone:s3cret"))
    assert hook_authenticated("s3cret", {"x-driftless-hook-secret": "s3cret"})
    for headers in (basic("s3cret:"), basic("anyone:wrong"), {"authorization": "Basic !!"},
                    {"authorization": "Bearer s3cret"}, {}):
        assert not hook_authenticated("s3cret", headers)


def test_a_status_description_is_cut_to_140_characters():
    assert status_description("1 to update") == "1 to update"
    assert len(status_description("x" * 300)) == 140


def test_the_summary_line_comes_from_the_steps_typed_verdict_never_its_reason_text():
    from shared.core.manifests import Target
    from shared.core.plan import plan_prune
    from shared.core.preview import category

    assert category(Step("a", "skipped", "orphan-looking text but a wait")) is None
    assert category(Step("a", "skipped", "anything", verdict="orphan")) == "orphan"
    assert category(Step("a", "failed", "owned by someone else")) == "refused"
    assert category(Step("a", "failed", "reworded message", verdict="invalid")) == "invalid"
    off, _ = plan_prune(Target("prod", "apps", "s", "rg", prune=False), {"old": {}}, set(), False, 0)
    assert [s.verdict for s in off] == ["orphan"]
    guarded, _ = plan_prune(Target("prod", "apps", "s", "rg", prune=True), {"old": {}, "older": {}}, set(), False, 0)
    assert {s.verdict for s in guarded} == {"refused"}


def test_without_the_merge_base_the_summary_says_it_compared_with_the_branch_head():
    lacking = preview(Step("web", "create"))
    lacking.merge_base, lacking.compared_with = False, "b" * 40
    assert "> Compared with the branch head `bbbbbbbbbbbb`: the merge base could not be found" in summary(lacking)
    assert "Compared with the branch head" not in summary(preview(Step("web", "create")))
