"""Manifest problems are visible where operators look: GET /api/status, `driftless get status`, the logs.

Real parts: the real function_app.py on the local host, Azurite (queues and the status table), the ACA
emulator, a real Git repository. Asserted: the stored and returned problems (file, line, field,
message; the first 50 and the total), the failed count of unreadable files, and one ERROR line per
problem per pass naming the Target.
"""
from __future__ import annotations

import json
import logging

from shared.adapters.status_store import SHOWN_PROBLEMS
from tests.conftest import app_yaml
from tests.services.test_pipeline import api, push

BROKEN = 60


def broken_repo(repo) -> None:
    repo.write("apps/web.yaml", app_yaml("web"))
    repo.write("apps/bad-image.yaml", app_yaml("bad-image", image='"nginx:1.27; rm -rf /"'))
    for i in range(BROKEN):
        repo.write(f"apps/p-{i:02}.yaml", f"apiVersion: driftless.io/v1alpha1\nkind: App\nmetadata:\n  name: p-{i:02}\n"
                                          "spec:\n   containers: []\n  scale: {}\n")
    repo.commit()


def test_a_pass_with_broken_files_shows_each_problem_in_status_and_logs(stack, repo, aca, caplog, capsys):
    from shared.cli import main

    broken_repo(repo)
    caplog.set_level(logging.ERROR, logger="driftless.manifests")
    assert push(stack, repo, paths=("apps/p-00.yaml",)).status_code == 202
    stack.drain()
    [target] = api(stack, "GET", "status").json()["targets"]
    assert target["target"] == "default" and target["degraded"] is True and target["ok"] is False
    assert target["problemCount"] == BROKEN + 1 and len(target["problems"]) == SHOWN_PROBLEMS
    assert target["summary"]["failed"] == BROKEN + 1 and target["summary"]["created"] == 1   # 60 files + bad-image
    first = target["problems"][0]
    assert (first["file"], first["line"], first["field"], first["app"]) == (
        "apps/bad-image.yaml", 8, "spec.containers[0].image", "bad-image")
    assert "is not a valid image reference" in first["message"]
    syntax = target["problems"][1]
    assert (syntax["file"], syntax["line"], syntax["column"]) == ("apps/p-00.yaml", 7, 3)
    assert syntax["message"] == "YAML syntax error: did not find expected key (while parsing a block mapping from line 1)"
    logged = [r for r in caplog.records if r.name == "driftless.manifests"]
    assert len(logged) == BROKEN + 1 and all(r.levelno == logging.ERROR and r.target == "default" for r in logged)
    assert {(r.file, r.line, r.field) for r in logged} >= {("apps/bad-image.yaml", 8, "spec.containers[0].image"),
                                                          ("apps/p-59.yaml", 7, "")}
    assert logged[1].getMessage().endswith(": apps/p-00.yaml:7:3: YAML syntax error: did not find expected key "
                                           "(while parsing a block mapping from line 1)")
    capsys.readouterr()
    assert main(["get", "status"]) == 0
    shown = capsys.readouterr().out
    assert "  ERROR default: apps/p-00.yaml:7:3: YAML syntax error: did not find expected key" in shown
    assert f"  ... and {BROKEN + 1 - SHOWN_PROBLEMS} more problem(s) in Target default" in shown
    assert main(["get", "status", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["targets"][0]["problemCount"] == BROKEN + 1


def test_stored_problems_are_bounded_and_always_valid_json():
    from shared.adapters.status_store import MAX_TEXT, _problems, _stored_problems

    huge = [{"file": f"apps/p-{i}.yaml", "line": i, "column": 1, "document": 1, "field": "spec.x" * 50,
             "message": "m" * 10_000, "app": None} for i in range(200)]
    text = _problems(huge)
    kept = _stored_problems(text)
    assert len(text) <= MAX_TEXT and 0 < len(kept) < SHOWN_PROBLEMS
    assert kept[0]["file"] == "apps/p-0.yaml" and kept[0]["message"].endswith("...(truncated)")
    assert _stored_problems('[{"file": "a.yaml", "mess') == []          # a row cut by an older version
