"""devtools/ci_stub.py answers as GitHub and Azure DevOps do: authentication first, then `Link`-header pages
(plain HTTP requests against it; no Driftless code involved)."""
from __future__ import annotations

import base64

import pytest
import requests

from devtools.ci_stub import CiStub

TOKEN = "ghp-stub-test"
PAT = "azdo-stub-test"


@pytest.fixture
def stub():
    server = CiStub(token=TOKEN, azdo_token=PAT).start()
    for number in range(1, 76):
        server._store_hook(number, f"{server.url}/repos/o/r/hooks/{number}", {"config": {"url": f"https://h{number}"}})
    yield server
    server.stop()


def hooks(stub, **params) -> requests.Response:
    return requests.get(f"{stub.url}/repos/o/r/hooks", params=params, headers={"Authorization": f"Bearer {TOKEN}"},
                        timeout=10)


def test_lists_come_30_per_page_with_links_to_the_other_pages(stub):
    first = hooks(stub)
    assert [h["id"] for h in first.json()] == list(range(1, 31))
    assert first.links["next"]["url"] == f"{stub.url}/repos/o/r/hooks?page=2"
    assert first.links["last"]["url"] == f"{stub.url}/repos/o/r/hooks?page=3" and "prev" not in first.links
    middle = hooks(stub, page=2)
    assert set(middle.links) == {"prev", "next", "last", "first"}
    last = hooks(stub, page=3)
    assert [h["id"] for h in last.json()] == list(range(61, 76)) and set(last.links) == {"prev", "first"}
    capped = hooks(stub, per_page=500)                                  # per_page is capped at 100: one page
    assert len(capped.json()) == 75 and capped.links == {}
    wide = hooks(stub, per_page=50)
    assert len(wide.json()) == 50 and wide.links["next"]["url"] == f"{stub.url}/repos/o/r/hooks?per_page=50&page=2"
    assert hooks(stub, page=9).json() == []


def test_azure_devops_pages_with_top_and_skip_newest_first(stub):
    for number in range(1, 8):
        stub.pull_requests[number] = {"status": "abandoned", "closedDate": f"2026-11-0{number}T10:00:00Z"}
    auth = ("", PAT)
    url = f"{stub.url}/o/p/_apis/git/repositories/r/pullrequests"
    page = requests.get(url, params={"searchCriteria.status": "abandoned", "$top": 3, "$skip": 3}, auth=auth,
                        timeout=10).json()
    assert [pr["pullRequestId"] for pr in page["value"]] == [4, 3, 2] and page["count"] == 3
    recent = requests.get(url, params={"searchCriteria.status": "abandoned", "searchCriteria.queryTimeRangeType":
                                       "closed", "searchCriteria.minTime": "2026-11-05T00:00:00Z"}, auth=auth,
                          timeout=10).json()
    assert [pr["pullRequestId"] for pr in recent["value"]] == [7, 6, 5]
    assert requests.get(url, timeout=10).status_code == 203
    header = "Basic " + base64.b64encode(b"user:wrong").decode()
    refused = requests.get(url, headers={"Authorization": header, "X-TFS-FedAuthRedirect": "Suppress"}, timeout=10)
    assert refused.status_code == 401 and "Basic" in refused.headers["WWW-Authenticate"]


def github(stub, method: str, path: str, body=None, token: str | None = TOKEN) -> requests.Response:
    headers = {"Authorization": f"token {token}"} if token else {}
    return requests.request(method, f"{stub.url}{path}", json=body, headers=headers, timeout=10)


def note(line: int) -> dict:
    return {"path": "apps/web.yaml", "start_line": line, "end_line": line, "annotation_level": "failure",
            "message": "bad"}


def test_check_runs_refuse_more_than_50_annotations_append_them_on_update_and_list_by_ref(stub):
    sha = "c" * 40
    assert github(stub, "POST", "/repos/o/r/check-runs", {"name": "x", "head_sha": sha}, token=None).status_code == 401
    output = {"title": "t", "summary": "s", "annotations": [note(n) for n in range(1, 52)]}
    refused = github(stub, "POST", "/repos/o/r/check-runs", {"name": "x", "head_sha": sha, "output": output})
    assert refused.status_code == 422 and "50" in refused.json()["message"] and stub.check_runs == {}
    assert github(stub, "POST", "/repos/o/r/check-runs", {"name": "x", "head_sha": sha, "status": "completed"}
                  ).status_code == 422                                    # completed needs a conclusion
    created = github(stub, "POST", "/repos/o/r/check-runs",
                     {"name": "x", "head_sha": sha, "status": "completed", "conclusion": "failure",
                      "output": {**output, "annotations": output["annotations"][:50]}})
    assert created.status_code == 201 and created.json()["output"]["annotations_count"] == 50
    number = created.json()["id"]
    updated = github(stub, "PATCH", f"/repos/o/r/check-runs/{number}",
                     {"output": {"title": "t", "summary": "s", "annotations": [note(51)]}})
    assert updated.json()["output"]["annotations_count"] == 51
    listed = github(stub, "GET", f"/repos/o/r/commits/{sha}/check-runs?check_name=x")
    assert listed.json()["total_count"] == 1 and listed.json()["check_runs"][0]["id"] == number
    pages = github(stub, "GET", f"/repos/o/r/check-runs/{number}/annotations?per_page=50")
    assert len(pages.json()) == 50 and 'rel="next"' in pages.headers["Link"]


def test_issue_comments_are_created_listed_and_edited_and_a_secondary_rate_limit_says_when_to_retry(stub):
    assert github(stub, "POST", "/repos/o/r/issues/3/comments", {}).status_code == 422
    made = github(stub, "POST", "/repos/o/r/issues/3/comments", {"body": "hello"})
    assert made.status_code == 201 and made.json()["user"]["type"] == "Bot"
    edited = github(stub, "PATCH", f"/repos/o/r/issues/comments/{made.json()['id']}", {"body": "again"})
    assert edited.status_code == 200 and edited.json()["body"] == "again"
    assert [c["body"] for c in github(stub, "GET", "/repos/o/r/issues/3/comments").json()] == ["again"]
    stub.rate_limited["github_comments"] = 1
    limited = github(stub, "GET", "/repos/o/r/issues/3/comments")
    assert limited.status_code == 403 and limited.headers["Retry-After"] == "60"
    assert "secondary rate limit" in limited.json()["message"]
    assert github(stub, "GET", "/repos/o/r/issues/3/comments").status_code == 200


def azdo(stub, method: str, path: str, body=None, *, password: str | None = PAT) -> requests.Response:
    headers = {"X-TFS-FedAuthRedirect": "Suppress"}
    return requests.request(method, f"{stub.url}/o/My%20Project/_apis/git/repositories/r/pullRequests{path}",
                            params={"api-version": "7.1"}, json=body, headers=headers,
                            auth=("", password) if password else None, timeout=10)


def test_azure_repos_pull_request_statuses_and_threads_are_as_strict_as_the_rest_api(stub):
    sha, later = "d" * 40, "e" * 40
    assert azdo(stub, "GET", "/5").status_code == 404
    assert "TF401180" in azdo(stub, "POST", "/5/statuses", {"context": {"name": "plan"}}).json()["message"]
    stub.azdo_push(5, sha)
    stub.azdo_push(5, later)
    assert azdo(stub, "GET", "/5", password=None).status_code == 401
    pr = azdo(stub, "GET", "/5").json()
    assert pr["pullRequestId"] == 5 and pr["status"] == "active" and pr["lastMergeSourceCommit"]["commitId"] == later
    iterations = azdo(stub, "GET", "/5/iterations").json()["value"]
    assert [(i["id"], i["sourceRefCommit"]["commitId"]) for i in iterations] == [(1, sha), (2, later)]
    assert azdo(stub, "POST", "/5/statuses", {"state": "succeeded"}).status_code == 400         # no context.name
    assert azdo(stub, "POST", "/5/statuses", {"state": "green", "context": {"name": "plan"}}).status_code == 400
    assert azdo(stub, "POST", "/5/statuses", {"context": {"name": "plan"}, "iterationId": 3}).status_code == 400
    made = azdo(stub, "POST", "/5/statuses", {"state": "failed", "description": "1 manifest problem(s)",
                                              "context": {"genre": "driftless", "name": "plan"}, "iterationId": 2})
    assert made.status_code == 200 and made.json()["id"] == 1 and made.json()["iterationId"] == 2
    assert [s["state"] for s in azdo(stub, "GET", "/5/statuses").json()["value"]] == ["failed"]
    assert azdo(stub, "POST", "/5/threads", {"comments": []}).status_code == 400
    assert azdo(stub, "POST", "/5/threads", {"comments": [{"content": "x", "commentType": "rant"}]}).status_code == 400
    thread = azdo(stub, "POST", "/5/threads", {"comments": [{"parentCommentId": 0, "content": "plan",
                                                             "commentType": 1}], "status": 1,
                                               "properties": {"driftless.plan": "1"}}).json()
    assert thread["status"] == "active" and thread["comments"][0]["commentType"] == "text"
    assert thread["properties"] == {"driftless.plan": {"$type": "System.String", "$value": "1"}}
    path = f"/5/threads/{thread['id']}/comments/1"
    assert azdo(stub, "PATCH", path, {"content": ""}).status_code == 400
    assert azdo(stub, "PATCH", f"/5/threads/{thread['id']}/comments/9", {"content": "y"}).status_code == 404
    assert azdo(stub, "PATCH", path, {"content": "plan 2"}).json()["content"] == "plan 2"
    [listed] = azdo(stub, "GET", "/5/threads").json()["value"]
    assert listed["comments"][0]["content"] == "plan 2"


def test_github_refuses_check_runs_to_personal_access_tokens():
    server = CiStub().start()
    try:
        body = {"name": "driftless/plan", "head_sha": "f" * 40}
        classic = github(server, "POST", "/repos/o/r/check-runs", body, token="ghp_classic")
        assert classic.status_code == 403 and classic.json()["message"] == "You must authenticate via a GitHub App."
        fine = github(server, "POST", "/repos/o/r/check-runs", body, token="github_pat_fine")
        assert fine.status_code == 403 and "personal access token" in fine.json()["message"]
        assert github(server, "POST", "/repos/o/r/check-runs", body, token="ghs_installation").status_code == 201
        assert github(server, "POST", "/repos/o/r/statuses/" + "f" * 40,
                      {"state": "success", "context": "driftless/plan"}, token="ghp_classic").status_code == 201
    finally:
        server.stop()


def test_github_compare_names_a_seeded_merge_base_and_is_404_otherwise(stub):
    head, base = "1" * 40, "2" * 40
    assert github(stub, "GET", f"/repos/o/r/compare/main...{head}").status_code == 404
    stub.merge_bases[("main", head)] = base
    found = github(stub, "GET", f"/repos/o/r/compare/main...{head}").json()
    assert found["merge_base_commit"]["sha"] == base and found["status"] == "diverged"
    assert github(stub, "GET", f"/repos/o/r/compare/main...{head}", token=None).status_code == 401
