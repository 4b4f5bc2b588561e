"""`driftless validate DIR` and the Git source read the same files: .yaml/.yml in any case; a file that
cannot be read is a problem of that file, never a crash. Real folders, real symbolic links, a real Git
repository read by dulwich."""
from __future__ import annotations

import json
import os
from pathlib import Path

from shared.adapters.git import GitSource
from shared.cli import main
from tests.conftest import app_yaml

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "apps"


def test_dangling_links_and_link_loops_are_problems_of_their_file(tmp_path, capsys):
    (tmp_path / "web.yaml").write_text(app_yaml("web"))
    os.symlink("gone.yaml", tmp_path / "dangling.yaml")
    os.symlink("loop.yaml", tmp_path / "loop.yaml")
    os.symlink(".", tmp_path / "again.yaml")                    # a link to a folder: not followed
    (tmp_path / "sub").mkdir()
    os.symlink("..", tmp_path / "sub" / "up")                   # a folder loop: not followed
    assert main(["validate", str(tmp_path), "-o", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] == ["web"]
    assert [(Path(p["file"]).name, p["message"]) for p in report["problems"]] == [
        ("dangling.yaml", "cannot be read: dangling symbolic link to 'gone.yaml', which does not exist"),
        ("loop.yaml", "cannot be read: symbolic link loop (links to 'loop.yaml')")]


def test_upper_case_extensions_are_manifests_locally_and_in_git(tmp_path, repo, capsys):
    (tmp_path / "Upper.YAML").write_text(app_yaml("upper"))
    (tmp_path / "lower.Yml").write_text(app_yaml("lower"))
    (tmp_path / "notes.txt").write_text("not a manifest")
    assert main(["validate", str(tmp_path), "-o", "json"]) == 0
    assert sorted(json.loads(capsys.readouterr().out)["valid"]) == ["lower", "upper"]
    repo.write("apps/Upper.YAML", app_yaml("upper"))
    repo.write("apps/notes.txt", "not a manifest")
    head = repo.commit()
    assert sorted(GitSource(str(repo.path)).read("apps", head)) == ["apps/Upper.YAML"]


def test_a_syntax_error_reads_cleanly_in_the_table(tmp_path, capsys):
    (tmp_path / "p-01.yaml").write_text(app_yaml("p-01").replace("  containers:", "   containers:\n  scale: {}\n  x:"))
    assert main(["validate", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"ERROR {tmp_path}/p-01.yaml:7:3: YAML syntax error: did not find expected key" in out
    assert " : " not in out


def test_the_examples_validate_synoscd_included(capsys):
    assert main(["validate", str(EXAMPLES), "-o", "json"]) == 0
    assert sorted(json.loads(capsys.readouterr().out)["valid"]) == [
        "DaprComponent/orders-pubsub", "Job/nightly-report", "legacy-api", "orders", "web", "worker"]
