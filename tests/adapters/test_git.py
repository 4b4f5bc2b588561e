"""Git source over dulwich's smart-HTTP server on loopback: shallow fetch, cache by commit, no leaks."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from devtools.git_server import GitServer
from shared.adapters.git import MAX_CACHED_PACKS, GitSource, SourceError
from shared.config.settings import Settings
from shared.engines.reconciler import Reconciler
from tests.conftest import app_yaml


@pytest.fixture
def served(repo):
    repo.write("apps/web.yaml", app_yaml("web"))
    repo.write("apps/nested/api.yml", app_yaml("api"))
    repo.write("apps/notes.md", "not a manifest")
    repo.write("other/x.yaml", app_yaml("x"))
    repo.commit("first")
    server = GitServer(str(repo.path)).start()
    yield server
    server.stop()


def test_shallow_fetch_reads_only_the_target_path(served, repo, tmp_path):
    for _ in range(3):
        repo.write("apps/web.yaml", app_yaml("web", image=f"nginx:{_}"))
        repo.commit("history")
    source = GitSource(served.url, "main", cache_dir=str(tmp_path / "cache"))
    head = source.head()
    files = source.read("apps", head)
    assert sorted(files) == ["apps/nested/api.yml", "apps/web.yaml"]
    assert b"nginx:2" in files["apps/web.yaml"]
    shallow = Path(source.cache_folder()) / "shallow"
    assert shallow.read_text().strip() == head          # depth 1: history was not fetched
    assert source.read("missing", head) is None


def test_unchanged_head_costs_one_ref_lookup_and_no_fetch_or_parse(served, repo, tmp_path, monkeypatch):
    settings = Settings.from_env({"DRIFTLESS_REPO_URL": served.url, "AZURE_SUBSCRIPTION_ID": "s",
                                  "DRIFTLESS_RESOURCE_GROUP": "rg", "DRIFTLESS_ACA_ENVIRONMENT": "env"})
    reconciler = Reconciler(settings, source=GitSource(served.url, "main", cache_dir=str(tmp_path / "c")))
    head = reconciler.source.head()
    target = reconciler.targets(head)[0][0]
    apps, _ = reconciler.desired(target, head)
    assert sorted(a.name for a in apps) == ["api", "web"]
    served.requests.clear()
    parses = []
    import shared.engines.target_engine as engine                        # where an aca Target parses its files
    monkeypatch.setattr(engine, "load_objects", lambda files, readers, cache=None: parses.append(files) or ([], []))
    again = reconciler.source.head()
    assert again == head and reconciler.desired(target, again)[0] == apps
    assert parses == [] and reconciler.source.stats.fetches == 1
    assert sum(served.requests.values()) == 1 and list(served.requests) == ["GET /repo.git/info/refs"]
    repo.write("apps/web.yaml", app_yaml("web", image="nginx:next"))
    moved = repo.commit("move")
    assert reconciler.source.head() == moved
    reconciler.desired(target, moved)
    assert reconciler.source.stats.fetches == 2 and len(parses) == 1  # the counter sees a new head's parse


def test_a_changed_head_parses_only_the_files_that_changed(served, repo, tmp_path):
    settings = Settings.from_env({"DRIFTLESS_REPO_URL": served.url, "AZURE_SUBSCRIPTION_ID": "s",
                                  "DRIFTLESS_RESOURCE_GROUP": "rg", "DRIFTLESS_ACA_ENVIRONMENT": "env"})
    reconciler = Reconciler(settings, source=GitSource(served.url, "main", cache_dir=str(tmp_path / "c")))
    target = reconciler.targets(reconciler.source.head())[0][0]
    apps, problems = reconciler.desired(target, reconciler.source.head())
    assert sorted(a.name for a in apps) == ["api", "web"] and problems == [] and reconciler.files.misses == 2
    repo.write("apps/web.yaml", app_yaml("web", image="nginx:next"))
    repo.write("apps/dup.yaml", app_yaml("api"))
    apps, problems = reconciler.desired(target, repo.commit("one file changed, one added"))
    assert reconciler.files.misses == 4                          # web.yaml and dup.yaml; api.yml came from the cache
    assert [a.containers[0].image for a in apps if a.name == "web"] == ["nginx:next"]
    assert "api" not in {a.name for a in apps}                   # duplicates are still found across cached files
    assert sorted(p.file for p in problems) == ["apps/dup.yaml", "apps/nested/api.yml"]


def test_the_cache_keeps_a_bounded_number_of_snapshots(served, repo, tmp_path):
    source = GitSource(served.url, "main", cache_dir=str(tmp_path / "cache"))
    packs = lambda: sorted((Path(source.cache_folder()) / "objects" / "pack").glob("*.pack"))  # noqa: E731
    heads, counts = [], []
    for index in range(2 * MAX_CACHED_PACKS + 1):
        repo.write("apps/web.yaml", app_yaml("web", image=f"nginx:{index}"))
        heads.append(repo.commit(f"push {index}"))
        assert b"nginx:%d" % index in source.read("apps", heads[-1])["apps/web.yaml"]
        counts.append(len(packs()))
    assert max(counts) == MAX_CACHED_PACKS                       # grew to the bound, never past it
    assert counts[MAX_CACHED_PACKS] == 1                         # the fetch past the bound started afresh
    assert source.stats.fetches == len(heads)
    assert b"nginx:%d" % (len(heads) - 1) in source.read("apps", heads[-1])["apps/web.yaml"]
    assert source.stats.fetches == len(heads)                    # the head is still cached after a fresh start


def test_another_process_holding_the_cache_lock_makes_a_read_wait(served, repo, tmp_path):
    source = GitSource(served.url, "main", cache_dir=str(tmp_path / "cache"))
    folder, released = source.cache_folder(), tmp_path / "released"
    holder = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from shared.adapters.git import cache_lock
        with cache_lock({folder!r}):
            print("locked", flush=True)
            time.sleep(1)
            Path({str(released)!r}).write_text("yes")
    """)
    child = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "locked"
        files = source.read("apps", source.head())                # fetches: must wait for the other process
        assert released.exists() and "apps/web.yaml" in files
    finally:
        child.wait(timeout=30)


def test_missing_branch_and_unreachable_remote_are_clear_and_never_show_the_token(served, tmp_path):
    with pytest.raises(SourceError, match="branch 'release' not found"):
        GitSource(served.url, "release", cache_dir=str(tmp_path)).head()
    source = GitSource("http://127.0.0.1:9/repo.git", "main", password=lambda: "ghp_SuperSecretToken")
    with pytest.raises(SourceError) as caught:
        source.head()
    assert "127.0.0.1:9" in str(caught.value) and "SuperSecret" not in str(caught.value)
    with_userinfo = GitSource("http://bot:ghp_InUrlToken@127.0.0.1:9/repo.git")
    with pytest.raises(SourceError) as caught:
        with_userinfo.head()
    assert "ghp_InUrlToken" not in str(caught.value) and "bot" not in str(caught.value)
