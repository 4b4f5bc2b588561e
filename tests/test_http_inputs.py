"""Every HTTP route of function_app.py under bad input and outages, through devtools/local_runner.py on
Azurite: bad input is a 4xx with a JSON reason, an outage is a 503 with a JSON reason, nothing is a 500.

The fuzz test at the end sends a fixed, seeded set of requests to every HTTP route (random and mutated
bodies, wrong types, huge strings, deep nesting, bad headers and route parameters, with and without valid
signatures and keys) and prints its figures.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import random
import socket
import uuid

import pytest
import requests

from devtools.git_server import GitServer
from shared.adapters import storage
from shared.core.queues import PUSH_QUEUE, RECONCILE_QUEUE
from shared.core.webhook import sign
from tests.conftest import KEY, WEBHOOK_SECRET, app_yaml
from tests.test_function_app import FUNCTIONS

PHASE_KEY = "phase-key-never-log-me"
AZDO_HOOK_SECRET = "azdo-hook-never-log-me"
FLUX_HMAC = "flux-hmac-never-log-me"
SHA = "42e2e5af9d49de268cd1fda3587788da4ace418a"
DEEP = 1000


def queued() -> list[str]:
    """Reconcile jobs on both queues (the timer's; pushes' and manual requests')."""
    return [m.content for queue in (RECONCILE_QUEUE, PUSH_QUEUE)
            for m in storage.queue(queue).peek_messages(max_messages=32)]


def webhook(runner, payload, *, event="push", delivery=None, raw: bytes | None = None, signed=True):
    body = raw if raw is not None else json.dumps(payload).encode()
    headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
               "Content-Type": "application/json"}
    if signed:
        headers["X-Hub-Signature-256"] = sign(WEBHOOK_SECRET, body)
    return requests.post(f"{runner.url}/api/github/webhook", data=body, headers=headers, timeout=30)


def api(runner, method: str, path: str, **kwargs):
    return requests.request(method, f"{runner.url}/api/{path}", headers={"x-functions-key": KEY}, timeout=30,
                            **kwargs)


def phase(runner, raw: bytes):
    return requests.post(f"{runner.url}/api/gitopsphase", data=raw, params={"code": PHASE_KEY}, timeout=30,
                         headers={"Content-Type": "application/json"})


def a_push(repo, **fields):
    return {"ref": "refs/heads/main", "before": "0" * 40, "after": repo._git("rev-parse", "HEAD"),
            "repository": {"full_name": "contoso/gitops"}, "pusher": {"name": "octocat"},
            "head_commit": {"id": "c1", "message": "change"},
            "commits": [{"id": "c1", "added": [], "modified": ["apps/web.yaml"], "removed": []}], **fields}


def reason(reply) -> str:
    """The JSON reason of a reply; fails unless the body is a JSON object with one."""
    body = reply.json()
    assert isinstance(body, dict), reply.text
    return str(body.get("error") or body.get("ignored") or "")


@pytest.fixture
def web(stack, repo, vault, monkeypatch):
    """The stack with one app committed, a phase key, a Flux HMAC secret and a `default` feedback config."""
    repo.write("apps/web.yaml", app_yaml("web"))
    repo.commit()
    vault.set_secret("driftless-phase-key", PHASE_KEY)
    vault.set_secret("driftless-flux-hmac", FLUX_HMAC)
    vault.set_secret("driftless-azdo-hook-secret", AZDO_HOOK_SECRET)
    monkeypatch.setenv("DRIFTLESS_FEEDBACK", json.dumps({"default": {"github": "contoso/gitops"}}))
    monkeypatch.setenv("DRIFTLESS_MANIFESTS_AZURE_REPO", "https://dev.azure.com/contoso/shop/_git/gitops")
    return stack


# --- 1. signed webhooks whose fields have the wrong type ------------------------------------
@pytest.mark.parametrize("event, fields, named", [
    ("push", {"repository": "contoso/gitops"}, "repository"),
    ("push", {"repository": ["contoso/gitops"]}, "repository"),
    ("push", {"repository": 42}, "repository"),
    ("push", {"repository": {"full_name": ["contoso/gitops"]}}, "repository.full_name"),
    ("push", {"ref": 42}, "ref"),
    ("push", {"ref": {"name": "main"}}, "ref"),
    ("push", {"ref": "refs/heads/" + "m" * 5000}, "ref"),
    ("push", {"after": 42}, "after"),
    ("push", {"after": "a" * 70_000}, "after"),
    ("push", {"deleted": "false"}, "deleted"),
    ("push", {"commits": "c1"}, "commits"),
    ("push", {"commits": ["c1"]}, "commits[0]"),
    ("push", {"commits": [{"id": "c1", "modified": 5}]}, "commits[0].modified"),
    ("push", {"commits": [{"id": "c1", "modified": "apps/web.yaml"}]}, "commits[0].modified"),
    ("push", {"commits": [{"id": "c1", "modified": [["apps/web.yaml"]]}]}, "commits[0].modified"),
    ("push", {"head_commit": "c1"}, "head_commit"),
    ("push", {"pusher": "octocat"}, "pusher"),
    ("workflow_run", {"action": "completed", "workflow_run": "run"}, "workflow_run"),
    ("workflow_run", {"action": "completed", "workflow_run": ["run"]}, "workflow_run"),
    ("workflow_run", {"action": "completed", "workflow_run": {"conclusion": "success", "head_branch": 1}},
     "workflow_run.head_branch"),
    ("workflow_run", {"action": "completed", "workflow_run": {"conclusion": "success", "head_sha": "x" * 70_000}},
     "workflow_run.head_sha"),
    ("workflow_run", {"action": ["completed"], "workflow_run": {"conclusion": "success"}}, "action"),
    ("workflow_run", {"action": "completed", "repository": "contoso/app", "workflow_run": {}}, "repository"),
], ids=lambda value: None if not isinstance(value, str) or len(value) > 30 else value)
def test_a_signed_webhook_with_a_field_of_the_wrong_type_is_refused_with_its_name(web, repo, event, fields, named):
    reply = webhook(web, a_push(repo, **fields), event=event)
    assert reply.status_code == 400, reply.text
    assert reason(reply).startswith(named) and len(reply.text) < 400 and queued() == []


def test_after_null_is_no_revision_and_not_the_text_none(web, repo):
    reply = webhook(web, a_push(repo, after=None))
    assert reply.status_code == 202 and reply.json()["revision"] is None
    assert queued() and all("revision" not in json.loads(m) for m in queued())


# --- 2. deep nesting ------------------------------------------------------------------------
@pytest.mark.parametrize("raw", [b"[" * DEEP + b"]" * DEEP,
                                 b'{"a":' * DEEP + b"1" + b"}" * DEEP,
                                 b'{"ref": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"],
                         ids=["lists", "objects", "100k-deep"])
def test_json_nested_a_thousand_deep_is_a_400_on_every_json_route(web, raw):
    for reply in (webhook(web, None, raw=raw), api(web, "POST", "reconcile", data=raw), phase(web, raw)):
        assert reply.status_code == 400, (reply.url, reply.status_code, reply.text)
        assert "nested" in reason(reply)
    assert web.errors == []


# --- 3. delivery ids that are not Table row keys --------------------------------------------
@pytest.mark.parametrize("delivery", ["a/b", "a#b", "a?b", "a\\b", "a\tb", "x" * 1025, "é-unicode"],
                         ids=["slash", "hash", "question", "backslash", "tab", "1025-chars", "non-ascii"])
def test_a_delivery_id_that_is_not_a_safe_row_key_is_a_400(web, repo, delivery):
    reply = webhook(web, a_push(repo), delivery=delivery)
    assert reply.status_code == 400 and "X-GitHub-Delivery" in reason(reply)
    assert len(reply.text) < 400 and queued() == []


def test_a_guid_delivery_id_is_accepted_once(web, repo):
    delivery = str(uuid.uuid4())
    assert webhook(web, a_push(repo), delivery=delivery).status_code == 202
    assert webhook(web, a_push(repo), delivery=delivery).json() == {"duplicate": delivery}


# --- 4. outages are 503 with a reason; a misconfiguration too -------------------------------
def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_storage_unreachable_during_a_webhook_is_a_503_with_a_reason(web, repo, monkeypatch):
    port = _closed_port()
    monkeypatch.setenv("AzureWebJobsStorage", (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + "A" * 88 + ";"
        f"TableEndpoint=http://127.0.0.1:{port}/devstoreaccount1;QueueEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"))
    reply = webhook(web, a_push(repo))
    assert reply.status_code == 503 and reply.json() == {
        "error": "the Function App's storage (queues and status table) cannot be reached right now; try again later"}
    assert web.errors == []


def test_key_vault_unreachable_during_a_manual_reconcile_is_a_503(web, repo, vault, monkeypatch):
    git = GitServer(str(repo.path)).start()
    monkeypatch.setenv("DRIFTLESS_REPO_URL", git.url)                 # remote: the Git token is read from the vault
    try:
        vault.down = True
        reply = api(web, "POST", "reconcile")
        assert reply.status_code == 503 and reply.json() == {
            "error": "Key Vault cannot be reached right now; try again later"}
        assert queued() == [] and web.errors == []
        vault.down = False
        assert api(web, "POST", "reconcile").status_code == 202
    finally:
        vault.down = False
        git.stop()


def test_a_missing_webhook_secret_is_a_503_naming_the_misconfiguration(web, repo, vault):
    vault.reset()
    reply = webhook(web, a_push(repo))
    assert reply.status_code == 503 and "not configured" in reason(reply)


def test_a_broken_setting_is_a_503_on_every_route_not_a_500(web, repo, monkeypatch):
    monkeypatch.setenv("DRIFTLESS_PRUNE", "maybe")
    replies = [webhook(web, a_push(repo)), api(web, "POST", "reconcile"), api(web, "GET", "status"),
               api(web, "POST", "apps/web/suspend"), api(web, "POST", "apps/web/resume"),
               phase(web, json.dumps({"commitid": SHA, "phase": "Succeeded"}).encode())]
    assert [r.status_code for r in replies] == [503] * len(replies)
    assert all("misconfigured" in reason(r) for r in replies) and web.errors == []


# --- 5. suspend / resume / echoes -----------------------------------------------------------
def test_suspending_or_resuming_an_app_no_target_declares_is_a_404_that_enqueues_nothing(web):
    suspended = api(web, "POST", "apps/ghost/suspend")
    assert suspended.status_code == 404 and "ghost" in reason(suspended)
    resumed = api(web, "POST", "apps/ghost/resume")
    assert resumed.status_code == 404 and queued() == []
    assert api(web, "GET", "status").json()["apps"] == []
    assert api(web, "POST", "apps/web/suspend").status_code == 200            # a declared app still works
    assert api(web, "POST", "apps/web/resume").status_code == 202 and len(queued()) == 1


def test_a_stale_suspension_of_an_app_no_longer_declared_can_still_be_lifted(web):
    from shared.adapters.status_store import Store

    Store().suspend("retired")
    lifted = api(web, "POST", "apps/retired/resume")
    assert lifted.status_code == 200 and lifted.json()["wasSuspended"] is True and lifted.json()["jobs"] == []
    assert Store().suspended() == set() and queued() == []


def test_huge_names_are_not_echoed_back_in_full(web):
    name = "x" * (3 * 1024 * 1024)
    reply = api(web, "POST", "reconcile", json={"target": name})
    assert reply.status_code == 404 and len(reply.content) < 400
    reply = api(web, "POST", "reconcile", json={"app": name})
    assert reply.status_code == 404 and len(reply.content) < 400
    reply = api(web, "POST", f"apps/{'a' * 5000}/suspend")
    assert reply.status_code in (400, 404) and len(reply.content) < 400
    event = webhook(web, {"zen": "x"}, event="e" * 5000)
    assert event.status_code == 202 and len(event.content) < 400


# --- 6. connector-style Argo CD templates that broke the JSON ------------------------------
def test_an_argo_body_broken_by_an_unescaped_message_is_a_400_naming_the_fix(web):
    message = 'one or more objects failed to apply, reason: "web" is invalid\nspec.replicas: Invalid value'
    broken = ('{"commitid": "%s", "phase": "Failed", "sync_status": "OutOfSync", "health": "Degraded", '
              '"message": "%s", "resources": null, "app": "guestbook", "config": "default"}' % (SHA, message))
    reply = phase(web, broken.encode())
    assert reply.status_code == 400
    assert "toJson" in reason(reply) and "operationState.message" in reason(reply)
    assert phase(web, b"{not json").status_code == 400 and "toJson" not in reason(phase(web, b"{not json"))


# --- 7. fuzz every route ------------------------------------------------------------------------
def http_routes() -> dict[str, tuple[str, list[str], str]]:
    """function name -> (route, methods, auth level) of every HTTP trigger in function_app.py (FUNCTIONS: indexed
    once per process, as the host does; a second get_functions() on the same app raises)."""
    routes = {}
    for function in FUNCTIONS.values():
        for binding in function.get_bindings():
            if binding.type == "httpTrigger":
                routes[function.get_function_name()] = (binding.route, [m.value for m in binding.methods],
                                                        str(binding.auth_level.value).lower())
    return routes


class Fuzzer:
    """Seeded generators of hostile requests; every choice comes from one random.Random."""

    NAMES = ["web", "ghost", "Deployment/default/web", "Deployment%2Fdefault%2Fweb", "..", "%2e%2e", "a" * 3000,
             "%00", "%ff%fe", "web%3F%23", "UPPER", "-x-", "é", "web;drop", "Kind/ns/..", "web%0Atwo", "%ed%a0%80"]
    HEADERS = ["", "push", "workflow_run", "ping", "issues", "e" * 5000, "push\t", "%00"]
    DELIVERIES = [None, "", "a/b", "a#b", "a?b", "a\\b", "a\tb", "x" * 2000, "d-1"]

    def __init__(self, seed: int, repo):
        self.rng = random.Random(seed)
        self.head = repo._git("rev-parse", "HEAD")

    def value(self, depth: int = 0):
        kind = self.rng.choice(["null", "bool", "int", "float", "str", "huge", "list", "dict"]
                               if depth < 4 else ["null", "bool", "int", "str"])
        return {
            "null": lambda: None, "bool": lambda: self.rng.random() < 0.5,
            "int": lambda: self.rng.choice([0, -1, 2**63, 10**400 if depth else 7]),
            "float": lambda: self.rng.choice([0.5, 1e308, -0.0]),
            "str": lambda: self.rng.choice(["", "main", "refs/heads/main", SHA, "<no value>", "\u0000", "\ud800", "'\"\\"]),
            "huge": lambda: "h" * self.rng.choice([1000, 70_000]),
            "list": lambda: [self.value(depth + 1) for _ in range(self.rng.randint(0, 3))],
            "dict": lambda: {self.rng.choice(["ref", "after", "repository", "commits", "target", "app", "metadata",
                                              "involvedObject", "x"]): self.value(depth + 1)
                             for _ in range(self.rng.randint(0, 4))},
        }[kind]()

    def valid(self, route: str) -> dict:
        if route == "github/webhook":
            return {"ref": "refs/heads/main", "after": self.head, "repository": {"full_name": "contoso/gitops"},
                    "commits": [{"id": "c", "added": [], "modified": ["apps/web.yaml"], "removed": []}],
                    "action": "completed", "workflow_run": {"conclusion": "success", "head_branch": "main",
                                                            "head_sha": SHA}}
        if route == "reconcile":
            return {"target": "default", "app": "web"}
        if route == "azure-devops/webhook":          # Microsoft's sample shape; another repository: ignored (202)
            return {"id": str(uuid.UUID(int=self.rng.getrandbits(128))), "eventType": self.rng.choice(
                        ["git.pullrequest.created", "git.pullrequest.updated", "git.push"]),
                    "resource": {"repository": {"id": "4bc14d40-c903-45e2-872e-0462c7748079", "name": "Fabrikam",
                                                "remoteUrl": "https://dev.azure.com/fabrikam/Fabrikam/_git/Fabrikam",
                                                "project": {"name": "Fabrikam"}},
                                 "pullRequestId": 1, "status": "active", "targetRefName": "refs/heads/main",
                                 "sourceRefName": "refs/heads/feature", "lastMergeSourceCommit": {"commitId": SHA},
                                 "lastMergeTargetCommit": {"commitId": SHA}}}
        if route == "gitopsphase":
            return self.rng.choice([
                {"involvedObject": {"kind": "Kustomization", "namespace": "flux-system", "name": "apps"},
                 "severity": "info", "timestamp": "2026-11-22T10:00:00Z", "message": "ok", "reason": "Progressing",
                 "metadata": {"revision": f"main@sha1:{SHA}"}, "reportingController": "kustomize-controller"},
                {"commitid": SHA, "phase": "Running", "sync_status": "Synced", "health": "Progressing",
                 "message": "m", "resources": None, "app": "guestbook", "config": "default"}])
        return {}

    def body(self, route: str) -> bytes:
        choice = self.rng.randrange(12)
        if choice == 0:
            return b""
        if choice == 1:
            return bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 64)))
        if choice == 2:
            depth = self.rng.choice([DEEP, 5000])
            return self.rng.choice([b"[" * depth + b"]" * depth, b'{"a":' * depth + b"0" + b"}" * depth])
        if choice == 3:
            return json.dumps(self.value()).encode()
        if choice == 4:
            return self.rng.choice([b'{"ref": "x"', b'{"a": NaN}', b"\xff\xfe{}", b'{"a": 1, "a": [}',
                                    b"{" + b" " * 10_000 + b"}", b'"\\ud800"'])
        payload = self.valid(route)
        for _ in range(self.rng.randint(0, 3) if choice < 9 else 0):   # mutate: wrong types, huge values
            target = payload
            while isinstance(target, dict) and target and self.rng.random() < 0.5:
                key = self.rng.choice(list(target))
                if not isinstance(target[key], dict):
                    break
                target = target[key]
            if isinstance(target, dict):
                target[self.rng.choice(list(target) or ["x"])] = self.value()
        return json.dumps(payload).encode()

    def request(self, name: str, route: str, methods: list[str], auth: str) -> tuple[str, str, dict, bytes]:
        path = route
        if "{name}" in route:
            path = route.replace("{name}", self.rng.choice(self.NAMES))
        if "{action}" in path:
            path = path.replace("{action}", self.rng.choice(["promote", "abort", "resume", "", "x" * 300, "%00"]))
        body = self.body(route)
        headers: dict[str, str] = {"Content-Type": self.rng.choice(["application/json", "text/plain", ""])}
        params: dict[str, str] = {}
        if not auth.endswith("anonymous") and self.rng.random() < 0.85:
            headers["x-functions-key"] = KEY
        if route == "github/webhook":
            headers["X-GitHub-Event"] = self.rng.choice(self.HEADERS)
            delivery = self.rng.choice(self.DELIVERIES + [str(uuid.UUID(int=self.rng.getrandbits(128)))] * 9)
            if delivery is not None:
                headers["X-GitHub-Delivery"] = delivery
            signature = self.rng.choice(["valid"] * 9 + ["wrong", "none", "garbage"])
            if signature != "none":
                headers["X-Hub-Signature-256"] = {"valid": sign(WEBHOOK_SECRET, body), "wrong": sign("nope", body),
                                                  "garbage": "sha256=zz"}[signature]
        if route == "gitopsphase":
            how = self.rng.choice(["key", "key", "hmac", "hmac", "badkey", "badhmac", "none"])
            if how == "key":
                params["code"] = PHASE_KEY
            elif how == "badkey":
                params["code"] = "x" * self.rng.choice([1, 5000])
            elif how in ("hmac", "badhmac"):
                secret = FLUX_HMAC if how == "hmac" else "nope"
                headers["X-Signature"] = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        if route == "azure-devops/webhook":
            how = self.rng.choice(["basic"] * 4 + ["header", "wrong", "none", "garbage"])
            if how in ("basic", "wrong"):
                secret = AZDO_HOOK_SECRET if how == "basic" else "nope"
                headers["Authorization"] = "Basic " + base64.b64encode(f"hook:{secret}".encode()).decode()
            elif how == "header":
                headers["X-Driftless-Hook-Secret"] = AZDO_HOOK_SECRET
            elif how == "garbage":
                headers["Authorization"] = self.rng.choice(["Basic !!!", "Basic " + "A" * 5000, "Bearer x"])
        if route == "status" and self.rng.random() < 0.7:
            params["target"] = self.rng.choice(["default", "", "x" * 3000, "a'b", "' or 1 eq 1 or '", "%00"])
        method = self.rng.choice(methods) if self.rng.random() < 0.9 else self.rng.choice(["PUT", "DELETE", "GET"])
        return method, path, {"headers": headers, "params": params}, body


def test_fuzz_every_http_route_answers_no_5xx_and_json_reasons(web, repo, capsys):
    routes = http_routes()
    assert set(routes) == {"github_webhook", "manual_reconcile", "status", "suspend_app", "resume_app",
                           "gitops_phase", "health", "azure_devops_webhook", "rollout_status", "rollout_control"}, \
        "a new route: add it to the fuzzer's valid bodies"
    seed = int(os.environ.get("DRIFTLESS_FUZZ_SEED", "14"))            # fixed by default; set it to explore
    fuzzer, per_route = Fuzzer(seed, repo), int(os.environ.get("DRIFTLESS_FUZZ_PER_ROUTE", "60"))
    sent, by_status, by_route, host_only, problems = 0, {}, {}, 0, []
    for name, (route, methods, auth) in sorted(routes.items()):
        for _ in range(per_route):
            method, path, extra, body = fuzzer.request(name, route, methods, auth)
            before = sum(web.invocations.values())
            reply = requests.request(method, f"{web.url}/api/{path}", data=body, timeout=60, **extra)
            sent += 1
            by_status[reply.status_code] = by_status.get(reply.status_code, 0) + 1
            per_status = by_route.setdefault(name, {})
            per_status[reply.status_code] = per_status.get(reply.status_code, 0) + 1
            invoked = sum(web.invocations.values()) > before
            if not invoked:                                     # the host's own 401 (no key) / 404 (no route)
                host_only += 1
                assert reply.status_code in (401, 404), (name, method, path, reply.status_code)
                continue
            if reply.status_code >= 500:
                problems.append((name, method, path[:80], reply.status_code, reply.text[:200], body[:80]))
                continue
            try:
                answer = reply.json()
            except ValueError:
                problems.append((name, method, path[:80], reply.status_code, "not JSON: " + reply.text[:100]))
                continue
            if reply.status_code >= 400 and not (isinstance(answer, dict) and answer.get("error")):
                problems.append((name, method, path[:80], reply.status_code, "no reason: " + reply.text[:100]))
    fives = sum(n for status, n in by_status.items() if status >= 500)
    with capsys.disabled():
        print(f"\nfuzz: {len(routes)} routes, {sent} requests, {fives} 5xx, {host_only} answered by the host alone, "
              f"statuses {dict(sorted(by_status.items()))}")
        for name, statuses in sorted(by_route.items()):
            print(f"  {name}: {dict(sorted(statuses.items()))}")
    assert problems == [] and web.errors == [], problems[:10] or web.errors[:5]


def test_a_managed_identity_that_cannot_get_a_token_is_an_outage_not_a_bug():
    from azure.core.exceptions import ClientAuthenticationError
    from azure.identity import CredentialUnavailableError

    from shared.wiring import outage

    assert outage(CredentialUnavailableError("ManagedIdentityCredential: no response")) is not None
    assert outage(ClientAuthenticationError("token request failed")) is not None
    assert outage(KeyError("a bug")) is None
