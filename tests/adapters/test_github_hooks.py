"""`driftless webhook register|list|ping` against the GitHub stub (real PyGithub) and the Key Vault stub."""
from __future__ import annotations

import json

import pytest

from devtools.ci_stub import CiStub
from shared.adapters.github import DEFAULT_EVENTS
from shared.cli import main

URL = "https://driftless-func.azurewebsites.net/api/github/webhook"


TOKEN = "ghp-register-test"


@pytest.fixture
def github(vault, monkeypatch):
    stub = CiStub(token=TOKEN).start()
    vault.reset()
    for key, value in {"DRIFTLESS_GITHUB_API_URL": stub.url, "DRIFTLESS_KEYVAULT_URL": vault.url,
                       "REQUESTS_CA_BUNDLE": vault.ca_path,
                       "DRIFTLESS_GIT_TOKEN_NAME": "driftless-git-token"}.items():
        monkeypatch.setenv(key, value)
    vault.set_secret("driftless-git-token", TOKEN)
    yield stub
    stub.stop()


def writes(stub) -> list[str]:
    return [f"{c.method} {c.path}" for c in stub.calls if c.method != "GET"]


def test_register_generates_the_secret_into_key_vault_and_is_idempotent(github, vault, capsys):
    assert main(["webhook", "register", "--repo", "contoso/gitops", "--url", URL]) == 0
    out = capsys.readouterr().out
    hook = github.hooks[1]
    assert hook["config"]["url"] == URL and hook["config"]["content_type"] == "json"
    assert hook["config"]["insecure_ssl"] == "0" and hook["active"]
    assert hook["events"] == ["push", "pull_request", "check_run"]          # reconciles and plan previews
    stored = vault.values()["driftless-webhook-secret"]
    assert github.hook_secrets[1] == stored and len(stored) >= 40
    assert stored not in out and "created" in out
    before = writes(github)
    assert main(["webhook", "register", "--repo", "contoso/gitops", "--url", URL]) == 0
    assert "unchanged" in capsys.readouterr().out and writes(github) == before


def test_dry_run_changes_nothing_anywhere(github, vault, capsys):
    assert main(["webhook", "register", "--repo", "contoso/gitops", "--url", URL, "--dry-run", "-o", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["action"] == "create" and result["dryRun"] is True
    assert writes(github) == [] and "driftless-webhook-secret" not in vault.values()


def test_an_existing_hook_with_other_events_is_updated_with_the_vaults_secret(github, vault, capsys):
    vault.set_secret("driftless-webhook-secret", "kept-in-the-vault")
    github._store_hook(1, f"{github.url}/repos/contoso/app/hooks/1",
                       {"config": {"url": URL, "content_type": "form"}, "events": ["push"]})
    assert main(["webhook", "register", "--repo", "contoso/app", "--url", URL, "--events", "push,workflow_run"]) == 0
    assert writes(github) == ["PATCH /repos/contoso/app/hooks/1"]
    assert github.hooks[1]["events"] == ["push", "workflow_run"] and github.hooks[1]["config"]["content_type"] == "json"
    assert github.hook_secrets[1] == "kept-in-the-vault"


def test_a_hook_registered_for_pushes_only_is_updated_to_plan_previews_once(github, vault, capsys):
    vault.set_secret("driftless-webhook-secret", "kept-in-the-vault")
    github._store_hook(1, f"{github.url}/repos/contoso/gitops/hooks/1",
                       {"config": {"url": URL, "content_type": "json", "insecure_ssl": "0"}, "events": ["push"]})
    assert main(["webhook", "register", "--repo", "contoso/gitops", "--url", URL]) == 0
    assert "updated" in capsys.readouterr().out and writes(github) == ["PATCH /repos/contoso/gitops/hooks/1"]
    assert sorted(github.hooks[1]["events"]) == ["check_run", "pull_request", "push"]
    assert main(["webhook", "register", "--repo", "contoso/gitops", "--url", URL]) == 0
    assert "unchanged" in capsys.readouterr().out and len(writes(github)) == 1


def test_list_and_ping(github, capsys):
    assert main(["webhook", "ping", "--repo", "contoso/gitops", "--url", URL]) == 1     # nothing registered yet
    assert "webhook register" in capsys.readouterr().err
    main(["webhook", "register", "--repo", "contoso/gitops", "--url", URL])
    assert main(["webhook", "list", "--repo", "contoso/gitops", "-o", "json"]) == 0
    listed = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert listed == [{"id": 1, "url": URL, "events": list(DEFAULT_EVENTS), "active": True, "lastResponse": "unused"}]
    assert main(["webhook", "ping", "--repo", "contoso/gitops", "--url", URL]) == 0
    assert writes(github)[-1] == "POST /repos/contoso/gitops/hooks/1/pings"


def test_the_registered_hook_is_found_on_a_later_page_with_the_token_sent(github, vault, capsys):
    vault.set_secret("driftless-webhook-secret", "kept-in-the-vault")
    for number in range(1, 36):                          # 35 other hooks: GitHub pages 30 at a time
        github._store_hook(number, f"{github.url}/repos/contoso/gitops/hooks/{number}",
                           {"config": {"url": f"https://ci{number}.example.com/hook", "content_type": "json"}})
    github._store_hook(36, f"{github.url}/repos/contoso/gitops/hooks/36",
                       {"config": {"url": URL, "content_type": "json", "insecure_ssl": "0"},
                        "events": list(DEFAULT_EVENTS)})
    assert main(["webhook", "register", "--repo", "contoso/gitops", "--url", URL]) == 0
    assert "unchanged" in capsys.readouterr().out and writes(github) == []      # found on page 2: no duplicate
    pages = [c.query.get("page", ["1"])[0] for c in github.of("github_hooks")]
    assert pages == ["1", "2"]
    assert all(c.headers.get("Authorization") == f"token {TOKEN}" for c in github.calls)
    assert main(["webhook", "list", "--repo", "contoso/gitops", "-o", "json"]) == 0
    assert [h["id"] for h in json.loads(capsys.readouterr().out)] == list(range(1, 37))


def test_github_refuses_a_call_without_the_right_token(github, vault, capsys):
    vault.set_secret("driftless-git-token", "ghp-not-the-one")
    assert main(["webhook", "list", "--repo", "contoso/gitops"]) != 0
    assert "401" in capsys.readouterr().err
    import requests

    anonymous = requests.get(f"{github.url}/repos/contoso/gitops/hooks", timeout=10)
    assert anonymous.status_code == 401 and anonymous.json()["message"] == "Requires authentication"
    wrong = requests.get(f"{github.url}/repos/contoso/gitops/hooks", headers={"Authorization": "token nope"}, timeout=10)
    assert wrong.status_code == 401 and wrong.json() == {"message": "Bad credentials",
                                                         "documentation_url": "https://docs.github.com/rest",
                                                         "status": "401"}
