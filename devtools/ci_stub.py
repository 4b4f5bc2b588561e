"""A local stand-in for GitHub's REST API and Azure DevOps (Repos, Pull Requests, Pipelines plans),
plus webhook subscribers, that records every call. Dev-only; plain HTTP on loopback.

GitHub routes follow api.github.com's paths (PyGithub uses them with `base_url=<stub>`):
`GET /repos/{owner}/{repo}/commits/{sha}`, `POST /repos/{owner}/{repo}/statuses/{sha}`,
`POST /repos/{owner}/{repo}/dispatches`, and for image updates `GET /repos/{owner}/{repo}/branches/{branch}`,
`GET /repos/{owner}/{repo}/actions/runs?head_sha=`, `GET|PUT /repos/{owner}/{repo}/contents/{path}` (the PUT
answers 409 when `sha` is not the file's current blob SHA, as GitHub does); for plan previews the Checks API
(`POST /repos/{owner}/{repo}/check-runs`, `PATCH .../check-runs/{id}`, `GET .../commits/{ref}/check-runs`,
`GET .../check-runs/{id}/annotations`, and `GET .../compare/{base}...{head}` for the merge base seeded in
`merge_bases`: 422 for more than 50 annotations in one request, for `completed` without a
conclusion or an output without title and summary; annotations are appended on each update) and issue comments
(`GET|POST .../issues/{number}/comments`, `PATCH .../issues/comments/{id}`). `rate_limited[kind] = n` answers the
next n calls of a route with GitHub's secondary rate limit (403 with `Retry-After`). Creating a check run with a
personal access token (`ghp_...`, `github_pat_...`: GitHub's token prefixes) is 403, as GitHub lets only Apps
create check runs. Azure DevOps routes live under `/{org}/...` as on dev.azure.com; for plan previews the pull
request itself (`GET .../pullRequests/{id}`), its iterations, statuses (`GET|POST .../pullRequests/{id}/statuses`:
400 without `context.name` or with a state outside GitStatusState, 400 for an unknown `iterationId`) and comment
threads (`GET|POST .../pullRequests/{id}/threads`, `PATCH .../threads/{threadId}/comments/{commentId}`), each 404
(TF401180) for a pull request the stub does not hold; seed one with `azdo_push`. Subscribers:
`POST /subscribers/{name}` (no authentication).

Authentication, as the services do it: a GitHub call without `Authorization: token|Bearer <token>` is 401
`{"message": "Requires authentication", ...}`, one with another token than `token` (when set) 401
`{"message": "Bad credentials", ...}`. An Azure DevOps call needs Basic `<any user>:<azdo_token>`; without it,
Azure DevOps answers a browser-style 203 with its HTML sign-in page, or, when the client sends
`X-TFS-FedAuthRedirect: Suppress`, 401 with a `WWW-Authenticate` challenge and `TF400813`.

Pagination, where GitHub paginates what Driftless reads (hooks, workflow runs, check runs, annotations, comments): `per_page` (default 30, at most
100) and `page`, with a `Link` header naming `prev`, `next`, `last` and `first` pages as api.github.com does.
Azure DevOps pull request lists honour `$top` (default 100) and `$skip`, newest first, and
`searchCriteria.queryTimeRangeType=closed` with `searchCriteria.minTime`.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

GITHUB_DOCS = "https://docs.github.com/rest"
SIGN_IN_PAGE = (b"<!DOCTYPE html><html><head><title>Azure DevOps Services | Sign In</title></head><body>"
                b"<p>Sign in to your account</p></body></html>")


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    headers: dict[str, str]


@dataclass
class CiStub:
    """Recorded calls in `calls`; seed `commits`, `pull_requests`, `plans`; fail routes with `failing`."""

    calls: list[Call] = field(default_factory=list)
    commits: dict[str, str] = field(default_factory=dict)                 # sha -> message
    pull_requests: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> {properties, status, closedDate}
    plans: dict[str, str] = field(default_factory=dict)                   # plan id -> state
    failing: dict[str, int] = field(default_factory=dict)                 # route kind -> status to answer
    branches: dict[tuple[str, str], str] = field(default_factory=dict)    # (owner/repo, branch) -> head sha
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)   # head sha -> [{name, status, conclusion}]
    files: dict[tuple[str, str], bytes] = field(default_factory=dict)     # (owner/repo, path) -> content
    interleave: dict[tuple[str, str], list[bytes]] = field(default_factory=dict)  # contents another commit
    #                                                 writes just before our next PUT of that file lands
    hooks: dict[int, dict[str, Any]] = field(default_factory=dict)        # id -> hook as GitHub returns it
    hook_secrets: dict[int, str] = field(default_factory=dict)            # id -> secret (GitHub never returns it)
    check_runs: dict[int, dict[str, Any]] = field(default_factory=dict)       # id -> check run as GitHub returns it
    annotations: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # check run id -> annotations
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)       # id -> issue comment (with "issue")
    pr_statuses: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # Azure PR id -> statuses posted
    merge_bases: dict[tuple[str, str], str] = field(default_factory=dict)  # (base, head) -> merge base, for compare
    threads: dict[int, dict[int, dict[str, Any]]] = field(default_factory=dict)  # Azure PR id -> thread id -> thread
    rate_limited: dict[str, int] = field(default_factory=dict)  # route kind -> how many calls get a secondary
    #                                                             rate limit (403 + Retry-After) before it passes
    token: str | None = None             # the GitHub token calls must carry (None: any token, but one)
    azdo_token: str | None = None        # the Azure DevOps PAT calls must carry (None: any, but one)
    url: str = ""

    def start(self) -> "CiStub":
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, body, headers = stub.answer(self.command, self.path, raw, dict(self.headers))
                data = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                headers = {"Content-Type": "application/json; charset=utf-8", **headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = _serve

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def of(self, kind: str) -> list[Call]:
        """Recorded calls of one route kind (see `_ROUTES`)."""
        return [c for c in self.calls if _kind(c.method, c.path) == kind]

    def answer(self, method: str, target: str, raw: bytes,
               headers: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        """(status, body, headers): authentication first, then injected failures, then the route."""
        parts = urlsplit(target)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        self.calls.append(Call(method, parts.path, parse_qs(parts.query), body, headers))
        kind = _kind(method, parts.path)
        headers_lower = {k.lower(): v for k, v in headers.items()}
        refused = self._unauthenticated(kind, headers_lower)
        if refused:
            return refused
        if kind == "github_check_create":                         # GitHub: only GitHub Apps create check runs
            token = headers_lower.get("authorization", "").partition(" ")[2]
            if token.startswith(("ghp_", "github_pat_")):
                message = ("You must authenticate via a GitHub App." if token.startswith("ghp_") else
                           "Resource not accessible by personal access token")
                return 403, {"message": message, "documentation_url": f"{GITHUB_DOCS}/checks/runs#create-a-check-run",
                             "status": "403"}, {}
        if kind in self.failing:
            return self.failing[kind], {"message": "injected failure"}, {}
        if self.rate_limited.get(kind):
            self.rate_limited[kind] -= 1
            return 403, {"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you "
                                    "try again.", "documentation_url": f"{GITHUB_DOCS}/overview/rate-limits-for-the-"
                                    "rest-api#about-secondary-rate-limits", "status": "403"}, {"Retry-After": "60"}
        match = next((m for k, pattern in _ROUTES if k == kind and (m := pattern.match(parts.path))), None)
        if match is None:
            return 404, {"message": "Not Found", "documentation_url": GITHUB_DOCS, "status": "404"}, {}
        if kind in _QUERIED:
            reply = getattr(self, f"_{kind}")(match, body, parse_qs(parts.query))
        else:
            reply = getattr(self, f"_{kind}")(match, body)
        return reply if len(reply) == 3 else (*reply, {})

    def _unauthenticated(self, kind: str, headers: dict[str, str]) -> tuple[int, Any, dict[str, str]] | None:
        """GitHub's 401s, or Azure DevOps' 203 sign-in page / 401, for a call without the right token."""
        given = headers.get("authorization", "")
        if kind.startswith("github_"):
            scheme, _, token = given.partition(" ")
            if scheme.lower() not in ("token", "bearer") or not token:
                return 401, {"message": "Requires authentication", "documentation_url": GITHUB_DOCS,
                             "status": "401"}, {}
            if self.token is not None and token != self.token:
                return 401, {"message": "Bad credentials", "documentation_url": GITHUB_DOCS, "status": "401"}, {}
            return None
        if not kind.startswith("azdo_"):
            return None
        scheme, _, encoded = given.partition(" ")
        try:
            _, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            password = ""
        if scheme.lower() == "basic" and password and self.azdo_token in (None, password):
            return None
        if headers.get("x-tfs-fedauthredirect", "").lower() != "suppress":
            return 203, SIGN_IN_PAGE, {"Content-Type": "text/html; charset=utf-8"}
        return 401, {"$id": "1", "innerException": None,
                     "message": "TF400813: The user '' is not authorized to access this resource.",
                     "typeName": "Microsoft.TeamFoundation.Framework.Server.UnauthorizedRequestException, "
                                 "Microsoft.TeamFoundation.Framework.Server",
                     "typeKey": "UnauthorizedRequestException", "errorCode": 0, "eventId": 3000}, \
            {"WWW-Authenticate": 'Bearer authorization_uri=https://login.microsoftonline.com/common, '
                                 'Basic realm="https://dev.azure.com/"'}

    def _page(self, items: list[Any], path: str, query: dict[str, list[str]]) -> tuple[list[Any], dict[str, str]]:
        """One page of `items` as GitHub cuts it (`per_page` default 30, at most 100; `page` from 1) and the
        `Link` header naming the other pages."""
        try:
            size = min(max(int(query.get("per_page", ["30"])[0]), 1), 100)
            page = max(int(query.get("page", ["1"])[0]), 1)
        except ValueError:
            size, page = 30, 1
        last = max((len(items) + size - 1) // size, 1)
        rest = {k: v[0] for k, v in query.items() if k not in ("page",)}

        def link(number: int, rel: str) -> str:
            return f'<{self.url}{path}?{urlencode({**rest, "page": number})}>; rel="{rel}"'

        links = ([link(page - 1, "prev")] if page > 1 else []) + \
                ([link(page + 1, "next"), link(last, "last")] if page < last else []) + \
                ([link(1, "first")] if page > 1 else [])
        return items[(page - 1) * size: page * size], ({"Link": ", ".join(links)} if links else {})

    # --- GitHub ------------------------------------------------------------------------------
    def _github_repo(self, match: re.Match, body: Any) -> tuple[int, Any]:
        owner, repo = match.groups()
        url = f"{self.url}/repos/{owner}/{repo}"
        return 200, {"id": 1, "name": repo, "full_name": f"{owner}/{repo}", "url": url,
                     "hooks_url": f"{url}/hooks", "owner": {"login": owner}}

    def _github_hooks(self, match: re.Match, body: Any, query: dict[str, list[str]]) -> tuple[int, Any, dict]:
        page, headers = self._page([self.hooks[n] for n in sorted(self.hooks)],
                                   f"/repos/{match.group(1)}/{match.group(2)}/hooks", query)
        return 200, page, headers

    def _github_hook_create(self, match: re.Match, body: Any) -> tuple[int, Any]:
        number = max(self.hooks, default=0) + 1
        return 201, self._store_hook(number, f"{self.url}/repos/{match.group(1)}/{match.group(2)}/hooks/{number}", body)

    def _github_hook_edit(self, match: re.Match, body: Any) -> tuple[int, Any]:
        number = int(match.group(3))
        if number not in self.hooks:
            return 404, {"message": "Not Found"}
        return 200, self._store_hook(number, self.hooks[number]["url"], body)

    def _github_hook_ping(self, match: re.Match, body: Any) -> tuple[int, Any]:
        return (204, None) if int(match.group(3)) in self.hooks else (404, {"message": "Not Found"})

    def _store_hook(self, number: int, url: str, body: dict[str, Any]) -> dict[str, Any]:
        config = dict(body.get("config") or {})
        if "secret" in config:
            self.hook_secrets[number] = config["secret"]
            config["secret"] = "********"
        self.hooks[number] = {"id": number, "url": url, "type": "Repository", "name": "web",
                              "active": body.get("active", True), "events": body.get("events", ["push"]),
                              "config": config, "ping_url": f"{url}/pings",
                              "last_response": {"code": None, "status": "unused", "message": None}}
        return self.hooks[number]

    def _github_commit(self, match: re.Match, body: Any) -> tuple[int, Any]:
        owner, repo, sha = match.groups()
        if sha not in self.commits:
            return 422, {"message": f"No commit found for SHA: {sha}"}
        url = f"{self.url}/repos/{owner}/{repo}/commits/{sha}"
        return 200, {"sha": sha, "url": url, "html_url": url, "commit": {"message": self.commits[sha], "url": url}}

    def _github_status(self, match: re.Match, body: Any) -> tuple[int, Any]:
        return 201, {"id": len(self.calls), "state": body.get("state"), "context": body.get("context"),
                     "description": body.get("description"), "target_url": body.get("target_url")}

    def _github_dispatch(self, match: re.Match, body: Any) -> tuple[int, Any]:
        return 204, None

    def _github_branch(self, match: re.Match, body: Any) -> tuple[int, Any]:
        owner, repo, branch = match.groups()
        sha = self.branches.get((f"{owner}/{repo}", branch))
        if sha is None:
            return 404, {"message": "Branch not found"}
        return 200, {"name": branch, "protected": False,
                     "commit": {"sha": sha, "url": f"{self.url}/repos/{owner}/{repo}/commits/{sha}"}}

    def _github_runs(self, match: re.Match, body: Any, query: dict[str, list[str]]) -> tuple[int, Any, dict]:
        owner, repo = match.groups()
        sha = query.get("head_sha", [""])[0]
        runs = [{"id": 1000 + i, "name": r.get("name", "build"), "head_sha": sha, "status": r["status"],
                 "conclusion": r.get("conclusion"), "url": f"{self.url}/repos/{owner}/{repo}/actions/runs/{1000 + i}"}
                for i, r in enumerate(self.runs.get(sha, []))]
        page, headers = self._page(runs, f"/repos/{owner}/{repo}/actions/runs", query)
        return 200, {"total_count": len(runs), "workflow_runs": page}, headers

    def _github_contents_get(self, match: re.Match, body: Any, query: dict[str, list[str]]) -> tuple[int, Any]:
        owner, repo, path = match.groups()
        data = self.files.get((f"{owner}/{repo}", path))
        if data is None:
            return 404, {"message": "Not Found"}
        return 200, self._content(owner, repo, path, data)

    def _github_contents_put(self, match: re.Match, body: Any) -> tuple[int, Any]:
        owner, repo, path = match.groups()
        key = (f"{owner}/{repo}", path)
        if self.interleave.get(key):
            self.files[key] = self.interleave[key].pop(0)
        current = self.files.get(key)
        if current is not None and body.get("sha") != blob_sha(current):
            return 409, {"message": f"{path} does not match {body.get('sha')}"}
        self.files[key] = base64.b64decode(body["content"])
        commit = uuid.uuid4().hex + uuid.uuid4().hex[:8]
        return 200, {"content": self._content(owner, repo, path, self.files[key]),
                     "commit": {"sha": commit, "message": body.get("message"),
                                "url": f"{self.url}/repos/{owner}/{repo}/git/commits/{commit}"}}

    def _content(self, owner: str, repo: str, path: str, data: bytes) -> dict[str, Any]:
        return {"type": "file", "encoding": "base64", "content": base64.b64encode(data).decode(), "size": len(data),
                "sha": blob_sha(data), "path": path, "name": path.rsplit("/", 1)[-1],
                "url": f"{self.url}/repos/{owner}/{repo}/contents/{path}"}

    def _github_compare(self, match: re.Match, body: Any) -> tuple[int, Any]:
        """`GET /repos/{owner}/{repo}/compare/{base}...{head}`: 404 unless `merge_bases` knows the pair."""
        owner, repo, base, head = match.groups()
        found = self.merge_bases.get((base, head))
        if found is None:
            return 404, {"message": "Not Found", "documentation_url": f"{GITHUB_DOCS}/commits/commits#compare-two-"
                                                                      "commits", "status": "404"}
        url = f"{self.url}/repos/{owner}/{repo}"

        def commit(sha: str) -> dict[str, Any]:
            return {"sha": sha, "url": f"{url}/commits/{sha}", "html_url": f"{url}/commit/{sha}",
                    "commit": {"message": self.commits.get(sha, ""), "url": f"{url}/git/commits/{sha}"}, "parents": []}

        return 200, {"url": f"{url}/compare/{base}...{head}", "html_url": f"{self.url}/{owner}/{repo}/compare/"
                     f"{base}...{head}", "base_commit": commit(self.branches.get((f"{owner}/{repo}", base), found)),
                     "merge_base_commit": commit(found), "status": "diverged", "ahead_by": 1, "behind_by": 1,
                     "total_commits": 1, "commits": [commit(head)], "files": []}

    # --- GitHub Checks API (docs.github.com/rest/checks/runs) -------------------------------
    def _github_check_create(self, match: re.Match, body: Any) -> tuple[int, Any]:
        owner, repo = match.groups()
        refused = _check_run_refusal(body, creating=True)
        if refused:
            return 422, {"message": refused, "documentation_url": f"{GITHUB_DOCS}/checks/runs#create-a-check-run",
                         "status": "422"}
        number = max(self.check_runs, default=0) + 1
        url = f"{self.url}/repos/{owner}/{repo}/check-runs/{number}"
        self.check_runs[number] = {
            "id": number, "node_id": f"CR_{number}", "head_sha": body["head_sha"], "external_id": "",
            "url": url, "html_url": f"{self.url}/{owner}/{repo}/runs/{number}", "details_url": None,
            "status": "queued", "conclusion": None, "started_at": _now(), "completed_at": None,
            "output": {"title": None, "summary": None, "text": None, "annotations_count": 0,
                       "annotations_url": f"{url}/annotations"},
            "name": body["name"], "check_suite": {"id": 1}, "app": {"id": 1, "slug": "driftless", "name": "Driftless"},
            "pull_requests": []}
        self.annotations[number] = []
        return 201, self._update_check_run(number, body)

    def _github_check_update(self, match: re.Match, body: Any) -> tuple[int, Any]:
        number = int(match.group(3))
        if number not in self.check_runs:
            return 404, {"message": "Not Found", "documentation_url": GITHUB_DOCS, "status": "404"}
        refused = _check_run_refusal(body or {}, creating=False)
        if refused:
            return 422, {"message": refused, "documentation_url": f"{GITHUB_DOCS}/checks/runs#update-a-check-run",
                         "status": "422"}
        return 200, self._update_check_run(number, body or {})

    def _update_check_run(self, number: int, body: dict[str, Any]) -> dict[str, Any]:
        """Apply a create or update body: fields replace, annotations are appended (as GitHub does)."""
        run = self.check_runs[number]
        for name in ("name", "details_url", "external_id", "status", "started_at", "conclusion", "completed_at"):
            if name in body:
                run[name] = body[name]
        if body.get("conclusion") and "status" not in body:
            run["status"] = "completed"
        if run["status"] == "completed" and not run["completed_at"]:
            run["completed_at"] = _now()
        if run["status"] != "completed":
            run["conclusion"], run["completed_at"] = None, None
        output = body.get("output")
        if output:
            run["output"].update({k: output.get(k) for k in ("title", "summary", "text") if k in output})
            self.annotations[number] += list(output.get("annotations") or [])
            run["output"]["annotations_count"] = len(self.annotations[number])
        return run

    def _github_check_get(self, match: re.Match, body: Any) -> tuple[int, Any]:
        run = self.check_runs.get(int(match.group(3)))
        return (200, run) if run else (404, {"message": "Not Found", "documentation_url": GITHUB_DOCS, "status": "404"})

    def _github_check_runs_for_ref(self, match: re.Match, body: Any,
                                   query: dict[str, list[str]]) -> tuple[int, Any, dict]:
        owner, repo, ref = match.groups()
        name = query.get("check_name", [None])[0]
        status = query.get("status", [None])[0]
        runs = [r for r in self.check_runs.values() if r["head_sha"] == ref and name in (None, r["name"])
                and status in (None, r["status"])]
        if query.get("filter", ["latest"])[0] == "latest":        # the most recent run of each name
            newest: dict[str, dict[str, Any]] = {}
            for run in runs:
                newest[run["name"]] = run if run["id"] > newest.get(run["name"], {"id": 0})["id"] else newest[run["name"]]
            runs = list(newest.values())
        runs.sort(key=lambda r: r["id"], reverse=True)
        page, headers = self._page(runs, f"/repos/{owner}/{repo}/commits/{ref}/check-runs", query)
        return 200, {"total_count": len(runs), "check_runs": page}, headers

    def _github_check_annotations(self, match: re.Match, body: Any,
                                  query: dict[str, list[str]]) -> tuple[int, Any, dict]:
        owner, repo, number = match.groups()
        if int(number) not in self.check_runs:
            return 404, {"message": "Not Found", "documentation_url": GITHUB_DOCS, "status": "404"}, {}
        found = [{**a, "blob_href": f"{self.url}/{owner}/{repo}/blob/{self.check_runs[int(number)]['head_sha']}/"
                  f"{a['path']}", "raw_details": a.get("raw_details")} for a in self.annotations[int(number)]]
        page, headers = self._page(found, f"/repos/{owner}/{repo}/check-runs/{number}/annotations", query)
        return 200, page, headers

    # --- GitHub issue comments (docs.github.com/rest/issues/comments) -----------------------
    def _github_comments(self, match: re.Match, body: Any, query: dict[str, list[str]]) -> tuple[int, Any, dict]:
        owner, repo, number = match.groups()
        found = [self._public_comment(c) for c in sorted(self.comments.values(), key=lambda c: c["id"])
                 if c["issue"] == (f"{owner}/{repo}", int(number))]
        page, headers = self._page(found, f"/repos/{owner}/{repo}/issues/{number}/comments", query)
        return 200, page, headers

    def _github_comment_create(self, match: re.Match, body: Any) -> tuple[int, Any]:
        owner, repo, number = match.groups()
        refused = _comment_refusal(body)
        if refused:
            return 422, refused
        ident = max(self.comments, default=0) + 1
        url = f"{self.url}/repos/{owner}/{repo}/issues/comments/{ident}"
        self.comments[ident] = {"id": ident, "node_id": f"IC_{ident}", "url": url,
                                "html_url": f"{self.url}/{owner}/{repo}/pull/{number}#issuecomment-{ident}",
                                "body": body["body"], "user": {"login": "driftless[bot]", "id": 1, "type": "Bot"},
                                "created_at": _now(), "updated_at": _now(),
                                "issue_url": f"{self.url}/repos/{owner}/{repo}/issues/{number}",
                                "author_association": "NONE", "issue": (f"{owner}/{repo}", int(number))}
        return 201, self._public_comment(self.comments[ident])

    def _github_comment_edit(self, match: re.Match, body: Any) -> tuple[int, Any]:
        owner, repo, ident = match.groups()
        comment = self.comments.get(int(ident))
        if comment is None or comment["issue"][0] != f"{owner}/{repo}":
            return 404, {"message": "Not Found", "documentation_url": GITHUB_DOCS, "status": "404"}
        refused = _comment_refusal(body)
        if refused:
            return 422, refused
        comment.update(body=body["body"], updated_at=_now())
        return 200, self._public_comment(comment)

    @staticmethod
    def _public_comment(comment: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in comment.items() if k != "issue"}

    # --- Azure DevOps ------------------------------------------------------------------------
    def _azdo_status(self, match: re.Match, body: Any) -> tuple[int, Any]:
        return 201, body

    def _azdo_commit(self, match: re.Match, body: Any) -> tuple[int, Any]:
        sha = match.group(1)
        return (200, {"commitId": sha, "comment": self.commits[sha]}) if sha in self.commits else (404, {})

    def _azdo_pr_properties(self, match: re.Match, body: Any) -> tuple[int, Any]:
        pr = self.pull_requests.get(int(match.group(1)))
        if pr is None:
            return 404, {"message": "TF401180: The requested pull request was not found."}
        values = {k: {"$type": "System.String", "$value": v} for k, v in pr.get("properties", {}).items()}
        return 200, {"count": len(values), "value": values}

    def _azdo_pr_list(self, match: re.Match, body: Any, query: dict[str, list[str]]) -> tuple[int, Any]:
        status = query.get("searchCriteria.status", ["active"])[0].lower()
        since = query.get("searchCriteria.minTime", [None])[0]
        by_closed = query.get("searchCriteria.queryTimeRangeType", [""])[0].lower() == "closed"
        chosen = []
        for number in sorted(self.pull_requests, reverse=True):
            pr = self.pull_requests[number]
            if status != "all" and str(pr.get("status", "active")).lower() != status:
                continue
            if since and by_closed and not pr.get("closedDate"):
                continue
            if since and by_closed and _moment(pr["closedDate"]) < _moment(since):
                continue
            chosen.append({"pullRequestId": number, "status": pr.get("status"), "closedDate": pr.get("closedDate")})
        top, skip = int(query.get("$top", ["100"])[0]), int(query.get("$skip", ["0"])[0])
        page = chosen[skip: skip + top]
        return 200, {"value": page, "count": len(page)}

    # --- Azure Repos pull requests (learn.microsoft.com/rest/api/azure/devops/git, api-version 7.1) ----------
    def azdo_push(self, number: int, sha: str, *, target: str = "refs/heads/main", source: str = "refs/heads/feature",
                  repository: str = "gitops", common: str | None = None) -> dict[str, Any]:
        """Open Azure Repos pull request `number` at `sha`, or push `sha` to it (a new iteration); `common` is the
        merge base the iterations name (`commonRefCommit`)."""
        pr = self.pull_requests.setdefault(number, {"status": "active"})
        if common:
            pr["common"] = common
        pr.setdefault("iterations", []).append(sha)
        pr.update(targetRefName=pr.get("targetRefName", target), sourceRefName=pr.get("sourceRefName", source),
                  repository=pr.get("repository", repository))
        return pr

    def _azdo_pr(self, match: re.Match) -> tuple[dict[str, Any] | None, tuple[int, Any]]:
        number = int(match.group(1))
        pr = self.pull_requests.get(number)
        missing = (404, {"$id": "1", "innerException": None,
                         "message": "TF401180: The requested pull request was not found.",
                         "typeName": "Microsoft.TeamFoundation.Git.Server.GitPullRequestNotFoundException, "
                                     "Microsoft.TeamFoundation.Git.Server",
                         "typeKey": "GitPullRequestNotFoundException", "errorCode": 0, "eventId": 3000})
        return pr, missing

    def _azdo_base(self, match: re.Match) -> str:
        return self.url + match.string[:match.string.lower().index("/pullrequests/") + len("/pullRequests/")]

    def _azdo_pr_get(self, match: re.Match, body: Any) -> tuple[int, Any]:
        pr, missing = self._azdo_pr(match)
        if pr is None:
            return missing
        number, commits = int(match.group(1)), pr.get("iterations") or []
        url = self._azdo_base(match) + str(number)

        def commit(sha: str | None) -> dict[str, Any] | None:
            return {"commitId": sha, "url": f"{url.split('/pullRequests/')[0]}/commits/{sha}"} if sha else None

        return 200, {"repository": {"id": "6d1e5f9a-0000-4000-8000-000000000001", "name": pr.get("repository")},
                     "pullRequestId": number, "codeReviewId": number, "status": pr.get("status", "active"),
                     "createdBy": _AZDO_IDENTITY, "creationDate": _now(), "title": pr.get("title", "Change apps"),
                     "description": "", "sourceRefName": pr.get("sourceRefName"),
                     "targetRefName": pr.get("targetRefName"), "mergeStatus": "succeeded", "isDraft": False,
                     "mergeId": str(uuid.uuid5(uuid.NAMESPACE_URL, url)),
                     "lastMergeSourceCommit": commit(commits[-1] if commits else None),
                     "lastMergeTargetCommit": None, "lastMergeCommit": None, "reviewers": [], "url": url,
                     "supportsIterations": True}

    def _azdo_pr_iterations(self, match: re.Match, body: Any) -> tuple[int, Any]:
        pr, missing = self._azdo_pr(match)
        if pr is None:
            return missing
        found = [{"id": n, "description": "", "author": _AZDO_IDENTITY, "createdDate": _now(), "updatedDate": _now(),
                  "sourceRefCommit": {"commitId": sha}, "targetRefCommit": None,
                  "commonRefCommit": {"commitId": pr["common"]} if pr.get("common") else None,
                  "hasMoreCommits": False, "reason": "create" if n == 1 else "push"}
                 for n, sha in enumerate(pr.get("iterations") or [], start=1)]
        return 200, {"value": found, "count": len(found)}

    def _azdo_pr_statuses(self, match: re.Match, body: Any) -> tuple[int, Any]:
        pr, missing = self._azdo_pr(match)
        if pr is None:
            return missing
        found = self.pr_statuses.get(int(match.group(1)), [])
        return 200, {"value": found, "count": len(found)}

    def _azdo_pr_status_create(self, match: re.Match, body: Any) -> tuple[int, Any]:
        pr, missing = self._azdo_pr(match)
        if pr is None:
            return missing
        context = body.get("context") if isinstance(body, dict) else None
        if not isinstance(context, dict) or not isinstance(context.get("name"), str) or not context["name"]:
            return 400, _azdo_error("The value specified for the following variable must be non-empty: "
                                    "Status.Context.Name.", "InvalidArgumentValueException")
        state = body.get("state", "notSet")
        if not (state in _AZDO_STATUS_STATES or (isinstance(state, int) and 0 <= state < len(_AZDO_STATUS_STATES))):
            return 400, _azdo_error(f"The value '{state}' is not valid for GitStatusState (allowed: "
                                    f"{', '.join(_AZDO_STATUS_STATES)}).", "InvalidArgumentValueException")
        iteration = body.get("iterationId")
        if iteration is not None and not (isinstance(iteration, int) and 1 <= iteration <= len(pr.get("iterations") or [])):
            return 400, _azdo_error(f"The iteration {iteration} of pull request {match.group(1)} does not exist.",
                                    "InvalidArgumentValueException")
        statuses = self.pr_statuses.setdefault(int(match.group(1)), [])
        status = {"id": len(statuses) + 1, "iterationId": iteration,
                  "state": state if isinstance(state, str) else _AZDO_STATUS_STATES[state],
                  "description": body.get("description"), "context": {"name": context["name"],
                                                                      "genre": context.get("genre")},
                  "creationDate": _now(), "updatedDate": _now(), "createdBy": _AZDO_IDENTITY,
                  "targetUrl": body.get("targetUrl"), "properties": body.get("properties")}
        statuses.append(status)
        return 200, status

    def _azdo_pr_threads(self, match: re.Match, body: Any) -> tuple[int, Any]:
        pr, missing = self._azdo_pr(match)
        if pr is None:
            return missing
        found = [self.threads[int(match.group(1))][n] for n in sorted(self.threads.get(int(match.group(1)), {}))]
        return 200, {"value": found, "count": len(found)}

    def _azdo_pr_thread_create(self, match: re.Match, body: Any) -> tuple[int, Any]:
        pr, missing = self._azdo_pr(match)
        if pr is None:
            return missing
        comments = body.get("comments") if isinstance(body, dict) else None
        if not isinstance(comments, list) or not comments or not all(
                isinstance(c, dict) and isinstance(c.get("content"), str) and c["content"] for c in comments):
            return 400, _azdo_error("A thread must be created with at least one comment with content.",
                                    "InvalidArgumentValueException")
        for comment in comments:
            kind = comment.get("commentType", "text")
            if kind not in _AZDO_COMMENT_TYPES and kind not in range(len(_AZDO_COMMENT_TYPES)):
                return 400, _azdo_error(f"The value '{kind}' is not valid for CommentType.",
                                        "InvalidArgumentValueException")
        status = body.get("status", "active")
        if status not in _AZDO_THREAD_STATUSES and status not in range(len(_AZDO_THREAD_STATUSES)):
            return 400, _azdo_error(f"The value '{status}' is not valid for CommentThreadStatus.",
                                    "InvalidArgumentValueException")
        properties = body.get("properties") or {}
        if not isinstance(properties, dict):
            return 400, _azdo_error("properties must be a PropertiesCollection (an object).",
                                    "InvalidArgumentValueException")
        threads = self.threads.setdefault(int(match.group(1)), {})
        ident = max(threads, default=0) + 1
        url = f"{self._azdo_base(match)}{match.group(1)}/threads/{ident}"
        thread = {"pullRequestThreadContext": None, "id": ident, "publishedDate": _now(), "lastUpdatedDate": _now(),
                  "comments": [], "status": status if isinstance(status, str) else _AZDO_THREAD_STATUSES[status],
                  "threadContext": None,
                  "properties": {k: v if isinstance(v, dict) and "$value" in v else
                                 {"$type": "System.String", "$value": str(v)} for k, v in properties.items()},
                  "identities": None, "isDeleted": False, "_links": {"self": {"href": url}}}
        for n, comment in enumerate(comments, start=1):
            kind = comment.get("commentType", "text")
            thread["comments"].append({
                "id": n, "parentCommentId": comment.get("parentCommentId", 0), "author": _AZDO_IDENTITY,
                "content": comment["content"], "publishedDate": _now(), "lastUpdatedDate": _now(),
                "lastContentUpdatedDate": _now(), "isDeleted": False, "usersLiked": [],
                "commentType": kind if isinstance(kind, str) else _AZDO_COMMENT_TYPES[kind],
                "_links": {"self": {"href": f"{url}/comments/{n}"}}})
        threads[ident] = thread
        return 200, thread

    def _azdo_pr_comment_edit(self, match: re.Match, body: Any) -> tuple[int, Any]:
        pr, missing = self._azdo_pr(match)
        if pr is None:
            return missing
        thread = self.threads.get(int(match.group(1)), {}).get(int(match.group(2)))
        comment = next((c for c in (thread or {}).get("comments", []) if c["id"] == int(match.group(3))), None)
        if comment is None:
            return 404, _azdo_error(f"The comment {match.group(3)} of thread {match.group(2)} was not found.",
                                    "CommentNotFoundException")
        if not isinstance(body, dict) or not isinstance(body.get("content"), str) or not body["content"]:
            return 400, _azdo_error("The comment content must be non-empty.", "InvalidArgumentValueException")
        comment.update(content=body["content"], lastUpdatedDate=_now(), lastContentUpdatedDate=_now())
        thread["lastUpdatedDate"] = _now()
        return 200, comment

    def _azdo_plan(self, match: re.Match, body: Any) -> tuple[int, Any]:
        plan = match.group(1)
        return (200, {"planId": plan, "state": self.plans[plan]}) if plan in self.plans else (404, {})

    def _azdo_plan_event(self, match: re.Match, body: Any) -> tuple[int, Any]:
        self.plans[match.group(1)] = "completed"
        return 204, None

    def _subscriber(self, match: re.Match, body: Any) -> tuple[int, Any]:
        return 200, {"ok": True}


_ROUTES: tuple[tuple[str, re.Pattern], ...] = (
    ("github_repo", re.compile(r"^/repos/([^/]+)/([^/]+)$")),
    ("github_hooks", re.compile(r"^/repos/([^/]+)/([^/]+)/hooks$")),
    ("github_hook_create", re.compile(r"^/repos/([^/]+)/([^/]+)/hooks$")),
    ("github_hook_edit", re.compile(r"^/repos/([^/]+)/([^/]+)/hooks/(\d+)$")),
    ("github_hook_ping", re.compile(r"^/repos/([^/]+)/([^/]+)/hooks/(\d+)/pings$")),
    ("github_commit", re.compile(r"^/repos/([^/]+)/([^/]+)/commits/([0-9a-f]+)$")),
    ("github_status", re.compile(r"^/repos/([^/]+)/([^/]+)/statuses/([0-9a-f]+)$")),
    ("github_dispatch", re.compile(r"^/repos/([^/]+)/([^/]+)/dispatches$")),
    ("github_branch", re.compile(r"^/repos/([^/]+)/([^/]+)/branches/(.+)$")),
    ("github_runs", re.compile(r"^/repos/([^/]+)/([^/]+)/actions/runs$")),
    ("github_contents_get", re.compile(r"^/repos/([^/]+)/([^/]+)/contents/(.+)$")),
    ("github_contents_put", re.compile(r"^/repos/([^/]+)/([^/]+)/contents/(.+)$")),
    ("github_compare", re.compile(r"^/repos/([^/]+)/([^/]+)/compare/(.+?)\.\.\.(.+)$")),
    ("github_check_create", re.compile(r"^/repos/([^/]+)/([^/]+)/check-runs$")),
    ("github_check_update", re.compile(r"^/repos/([^/]+)/([^/]+)/check-runs/(\d+)$")),
    ("github_check_get", re.compile(r"^/repos/([^/]+)/([^/]+)/check-runs/(\d+)$")),
    ("github_check_annotations", re.compile(r"^/repos/([^/]+)/([^/]+)/check-runs/(\d+)/annotations$")),
    ("github_check_runs_for_ref", re.compile(r"^/repos/([^/]+)/([^/]+)/commits/([^/]+)/check-runs$")),
    ("github_comments", re.compile(r"^/repos/([^/]+)/([^/]+)/issues/(\d+)/comments$")),
    ("github_comment_create", re.compile(r"^/repos/([^/]+)/([^/]+)/issues/(\d+)/comments$")),
    ("github_comment_edit", re.compile(r"^/repos/([^/]+)/([^/]+)/issues/comments/(\d+)$")),
    ("azdo_pr_get", re.compile(r"^/[^/]+/[^/]+/_apis/git/repositories/[^/]+/(?i:pullRequests)/(\d+)$")),
    ("azdo_pr_iterations", re.compile(r"^/[^/]+/[^/]+/_apis/git/repositories/[^/]+/(?i:pullRequests)/(\d+)/iterations$")),
    ("azdo_pr_statuses", re.compile(r"^/[^/]+/[^/]+/_apis/git/repositories/[^/]+/(?i:pullRequests)/(\d+)/statuses$")),
    ("azdo_pr_status_create", re.compile(r"^/[^/]+/[^/]+/_apis/git/repositories/[^/]+/(?i:pullRequests)/(\d+)/statuses$")),
    ("azdo_pr_threads", re.compile(r"^/[^/]+/[^/]+/_apis/git/repositories/[^/]+/(?i:pullRequests)/(\d+)/threads$")),
    ("azdo_pr_thread_create", re.compile(r"^/[^/]+/[^/]+/_apis/git/repositories/[^/]+/(?i:pullRequests)/(\d+)/threads$")),
    ("azdo_pr_comment_edit", re.compile(
        r"^/[^/]+/[^/]+/_apis/git/repositories/[^/]+/(?i:pullRequests)/(\d+)/threads/(\d+)/comments/(\d+)$")),
    ("azdo_status", re.compile(r"^/[^/]+/[^/]+/_apis/git/repositories/[^/]+/commits/([0-9a-f]+)/statuses$")),
    ("azdo_commit", re.compile(r"^/[^/]+/[^/]+/_apis/git/repositories/[^/]+/commits/([0-9a-f]+)$")),
    ("azdo_pr_properties", re.compile(r"^/[^/]+/[^/]+/_apis/git/repositories/[^/]+/pullRequests/(\d+)/properties$")),
    ("azdo_pr_list", re.compile(r"^/[^/]+/[^/]+/_apis/git/repositories/[^/]+/pullrequests$")),
    ("azdo_plan_event", re.compile(r"^/.+/_apis/distributedtask/hubs/build/plans/([^/]+)/events$")),
    ("azdo_plan", re.compile(r"^/.+/_apis/distributedtask/hubs/build/plans/([^/]+)$")),
    ("subscriber", re.compile(r"^/subscribers/([^/]+)$")),
)
_QUERIED = {"github_hooks", "github_runs", "github_contents_get", "azdo_pr_list", "github_check_runs_for_ref",
            "github_check_annotations", "github_comments"}
_METHODS = {"github_repo": "GET", "github_hooks": "GET", "github_hook_create": "POST", "github_hook_edit": "PATCH",
            "github_hook_ping": "POST", "github_commit": "GET", "github_status": "POST", "github_dispatch": "POST", "github_branch": "GET",
            "github_runs": "GET", "github_contents_get": "GET", "github_contents_put": "PUT", "azdo_status": "POST",
            "azdo_commit": "GET", "azdo_pr_properties": "GET", "azdo_pr_list": "GET", "azdo_plan_event": "POST",
            "azdo_plan": "GET", "subscriber": "POST", "github_check_create": "POST", "github_check_update": "PATCH",
            "github_check_get": "GET", "github_check_annotations": "GET", "github_check_runs_for_ref": "GET",
            "github_comments": "GET", "github_comment_create": "POST", "github_comment_edit": "PATCH",
            "azdo_pr_get": "GET", "azdo_pr_iterations": "GET", "azdo_pr_statuses": "GET",
            "azdo_pr_status_create": "POST", "azdo_pr_threads": "GET", "azdo_pr_thread_create": "POST",
            "azdo_pr_comment_edit": "PATCH", "github_compare": "GET"}


def _kind(method: str, path: str) -> str:
    for kind, pattern in _ROUTES:
        if _METHODS[kind] == method and pattern.match(path):
            return kind
    return "other"


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def blob_sha(data: bytes) -> str:
    """Git's blob SHA of `data`, as the contents API reports it."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


_AZDO_STATUS_STATES = ("notSet", "pending", "succeeded", "failed", "error", "notApplicable")
"""GitStatusState, in its numeric order."""
_AZDO_COMMENT_TYPES = ("unknown", "text", "codeChange", "system")
_AZDO_THREAD_STATUSES = ("unknown", "active", "fixed", "wontFix", "closed", "byDesign", "pending")
_AZDO_IDENTITY = {"displayName": "Driftless", "id": "0f0c3b0e-0000-4000-8000-00000000d1f7",
                  "uniqueName": "driftless@contoso.example", "url": "https://vssps.dev.azure.com/_apis/Identities/"
                  "0f0c3b0e-0000-4000-8000-00000000d1f7"}


def _azdo_error(message: str, key: str) -> dict[str, Any]:
    """Azure DevOps' error body (a WrappedException)."""
    return {"$id": "1", "innerException": None, "message": message,
            "typeName": f"Microsoft.TeamFoundation.SourceControl.WebServer.{key}, "
                        "Microsoft.TeamFoundation.SourceControl.WebServer",
            "typeKey": key, "errorCode": 0, "eventId": 3000}


_CHECK_STATUSES = ("queued", "in_progress", "completed")
_CONCLUSIONS = ("action_required", "cancelled", "failure", "neutral", "success", "skipped", "stale", "timed_out")
_LEVELS = ("notice", "warning", "failure")
MAX_ANNOTATIONS = 50
"""GitHub's cap on annotations per create or update request of a check run."""
MAX_SUMMARY = 65535
MAX_COMMENT = 65536


def _check_run_refusal(body: Any, *, creating: bool) -> str | None:
    """GitHub's 422 reason for a check run body it refuses, or None (the rules of "Create a check run")."""
    if not isinstance(body, dict):
        return "Invalid request.\n\nBody must be a JSON object."
    required = ("name", "head_sha") if creating else ()
    for name in required:
        if not isinstance(body.get(name), str) or not body[name]:
            return f'Invalid request.\n\n"{name}" wasn\'t supplied.'
    if "status" in body and body["status"] not in _CHECK_STATUSES:
        return f"Invalid request.\n\nFor 'properties/status', \"{body['status']}\" is not a member of {list(_CHECK_STATUSES)}."
    if "conclusion" in body and body["conclusion"] not in _CONCLUSIONS:
        return f"Invalid request.\n\nFor 'properties/conclusion', \"{body['conclusion']}\" is not a member of the enum."
    if (body.get("status") == "completed" or body.get("completed_at")) and not body.get("conclusion"):
        return "Invalid request.\n\n\"conclusion\" is required when \"status\" is \"completed\"."
    output = body.get("output")
    if output is None:
        return None
    if not isinstance(output, dict) or not isinstance(output.get("title"), str) or \
            not isinstance(output.get("summary"), str):
        return "Invalid request.\n\n\"title\", \"summary\" weren't supplied."
    if len(output["summary"]) > MAX_SUMMARY:
        return f"Invalid request.\n\nOnly {MAX_SUMMARY} characters are allowed; {len(output['summary'])} were supplied."
    notes = output.get("annotations") or []
    if len(notes) > MAX_ANNOTATIONS:
        return (f"Invalid request.\n\nFor 'properties/annotations', {len(notes)} items were supplied; "
                f"at most {MAX_ANNOTATIONS} annotations are allowed per request.")
    for note in notes:
        missing = [k for k in ("path", "start_line", "end_line", "annotation_level", "message") if note.get(k) in (None, "")]
        if missing:
            return f"Invalid request.\n\n{', '.join(repr(m) for m in missing)} wasn't supplied."
        if note["annotation_level"] not in _LEVELS:
            return f"Invalid request.\n\nFor 'annotation_level', {note['annotation_level']!r} is not a member of {list(_LEVELS)}."
        if ("start_column" in note or "end_column" in note) and note["start_line"] != note["end_line"]:
            return "Invalid request.\n\nstart_column and end_column are only allowed when start_line equals end_line."
    return None


def _comment_refusal(body: Any) -> dict[str, Any] | None:
    if not isinstance(body, dict) or not isinstance(body.get("body"), str) or not body["body"]:
        return {"message": "Invalid request.\n\n\"body\" wasn't supplied.", "documentation_url": GITHUB_DOCS,
                "status": "422"}
    if len(body["body"]) > MAX_COMMENT:
        return {"message": "Validation Failed", "errors": [{"resource": "IssueComment", "code": "custom",
                "field": "body", "message": f"body is too long (maximum is {MAX_COMMENT} characters)"}],
                "documentation_url": GITHUB_DOCS, "status": "422"}
    return None


def _now() -> str:
    from datetime import timezone

    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
