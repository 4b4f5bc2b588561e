"""Git source over real smart-HTTP servers on loopback (dulwich's, and git's own `git http-backend` speaking
protocol v2 and v0): shallow fetch, incremental fetch of a changed head, cache by commit, no leaks."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from devtools.git_server import GitBackendServer, GitServer
from shared.adapters.git import MAX_CACHED_PACKS, GitSource, SourceError
from shared.config.settings import Settings
from shared.engines.reconciler import Reconciler
from tests.conftest import app_yaml


SERVERS = ["dulwich", "git-v2", "git-v0"]
"""dulwich's server (protocol v0; answers a fetch with a whole snapshot); git http-backend with protocol v2 (as
GitHub) and with v0 only."""


def serve(kind: str, path: Path):
    if kind == "dulwich":
        return GitServer(str(path)).start()
    return GitBackendServer(str(path), protocol=0 if kind == "git-v0" else 2).start()


@pytest.fixture(params=SERVERS)
def kind(request) -> str:
    return request.param


@pytest.fixture
def served(repo, kind):
    repo.write("apps/web.yaml", app_yaml("web"))
    repo.write("apps/nested/api.yml", app_yaml("api"))
    repo.write("apps/notes.md", "not a manifest")
    repo.write("other/x.yaml", app_yaml("x"))
    repo.commit("first")
    server = serve(kind, repo.path)
    yield server
    server.stop()


FLEET = 500


@pytest.fixture
def fleet(repo, kind):
    """A repository of FLEET manifests under apps/, served."""
    for index in range(FLEET):                                   # distinct content, as real manifests have
        repo.write(f"apps/app-{index:04d}.yaml", app_yaml(f"app-{index:04d}", image=f"nginx:1.{index}")
                   + f"# owner {hashlib.sha256(str(index).encode()).hexdigest()}\n")
    repo.commit("fleet")
    server = serve(kind, repo.path)
    yield server
    server.stop()


def tree_on_disk(repo, path: str = "apps") -> dict[str, bytes]:
    """The manifests under `path` in the repository's working tree (= its last commit)."""
    return {str(f.relative_to(repo.path)): f.read_bytes() for f in sorted((repo.path / path).rglob("*"))
            if f.suffix in (".yaml", ".yml")}


def read_measured(source: GitSource, server, revision: str) -> tuple[dict[str, bytes], int]:
    """`source.read("apps", revision)` and the bytes the server sent for it."""
    server.bytes_sent.clear()
    files = source.read("apps", revision)
    return files, sum(server.bytes_sent.values())


def packs(source: GitSource) -> list[Path]:
    return sorted((Path(source.cache_folder()) / "objects" / "pack").glob("*.pack"))


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
    GitSource(served.url, "main").head()
    one_lookup = dict(served.requests)                                   # v2: info/refs + ls-refs; v0: info/refs
    served.requests.clear()
    parses = []
    import shared.engines.target_engine as engine                        # where an aca Target parses its files
    monkeypatch.setattr(engine, "load_objects", lambda files, readers, cache=None: parses.append(files) or ([], []))
    again = reconciler.source.head()
    assert again == head and reconciler.desired(target, again)[0] == apps
    assert parses == [] and reconciler.source.stats.fetches == 1
    assert dict(served.requests) == one_lookup and sum(one_lookup.values()) <= 2
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
    assert source.stats.fetches == len(heads) and source.stats.snapshot_refetches == 0
    assert b"nginx:%d" % (len(heads) - 1) in source.read("apps", heads[-1])["apps/web.yaml"]
    assert source.stats.fetches == len(heads)                    # the head is still cached after a fresh start


@pytest.mark.parametrize("kind", ["git-v2", "git-v0"])        # dulwich's server sends whole snapshots anyway
def test_the_cache_bound_does_not_cost_a_whole_snapshot_again(fleet, kind, repo, tmp_path):
    source = GitSource(fleet.url, "main", cache_dir=str(tmp_path / "cache"))
    _, snapshot = read_measured(source, fleet, source.head())
    sent = []
    for index in range(MAX_CACHED_PACKS + 2):                    # past the bound
        repo.write("apps/app-0001.yaml", app_yaml("app-0001", image=f"nginx:bound-{index}"))
        head = repo.commit(f"push {index}")
        files, size = read_measured(source, fleet, head)
        assert files == tree_on_disk(repo) and len(packs(source)) <= MAX_CACHED_PACKS
        sent.append(size)
    assert max(sent) < 0.05 * snapshot, (sent, snapshot)        # the bound compacts the cache, it does not refetch


@pytest.mark.parametrize("kind", ["git-v2"])                  # the lock does not depend on the server
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


def test_a_one_file_change_fetches_one_small_pack_with_exactly_the_new_tree(fleet, kind, repo, tmp_path):
    source = GitSource(fleet.url, "main", cache_dir=str(tmp_path / "cache"))
    first, snapshot = read_measured(source, fleet, source.head())
    assert first == tree_on_disk(repo) and len(first) == FLEET and len(packs(source)) == 1
    repo.write("apps/app-0007.yaml", app_yaml("app-0007", image="nginx:changed"))
    head = repo.commit("one file")
    files, changed = read_measured(source, fleet, source.head())
    assert files == tree_on_disk(repo) and b"nginx:changed" in files["apps/app-0007.yaml"]
    assert source.stats.fetches == 2 and source.stats.snapshot_refetches == 0 and len(packs(source)) == 2
    shallow = (Path(source.cache_folder()) / "shallow").read_text().split()
    assert head in shallow and len(shallow) == 2                 # both revisions held at depth 1, no history
    if kind == "dulwich":                                        # it answers with the whole snapshot: still correct
        assert changed > 0.9 * snapshot
    else:                                                        # git negotiates: only the new objects
        assert changed < 0.05 * snapshot, (changed, snapshot)


def test_deleted_files_disappear_and_a_file_reverted_to_an_unseen_version_reads_it(fleet, kind, repo, tmp_path):
    source = GitSource(fleet.url, "main", cache_dir=str(tmp_path / "cache"))
    source.read("apps", source.head())
    repo.write("apps/app-0002.yaml", app_yaml("app-0002", image="nginx:never-fetched"))
    repo.commit("a revision the cache never reads")
    repo.write("apps/app-0002.yaml", app_yaml("app-0002", image="nginx:3"))
    repo.remove("apps/app-0003.yaml")
    repo.remove("apps/app-0004.yaml")
    files = source.read("apps", repo.commit("two deleted"))
    assert files == tree_on_disk(repo) and "apps/app-0003.yaml" not in files and len(files) == FLEET - 2
    repo.write("apps/app-0002.yaml", app_yaml("app-0002", image="nginx:never-fetched"))
    files, sent = read_measured(source, fleet, repo.commit("revert to a version the cache never held"))
    assert files == tree_on_disk(repo) and b"nginx:never-fetched" in files["apps/app-0002.yaml"]
    assert source.stats.snapshot_refetches == 0


def test_a_force_push_to_an_unrelated_history_reads_the_new_tree(fleet, kind, repo, tmp_path):
    source = GitSource(fleet.url, "main", cache_dir=str(tmp_path / "cache"))
    old = source.head()
    source.read("apps", old)
    repo._git("checkout", "-q", "--orphan", "rewritten")
    repo._git("rm", "-rq", "--cached", ".")
    shutil.rmtree(repo.path / "apps")
    repo.write("apps/only.yaml", app_yaml("only"))
    repo.write("apps/app-0001.yaml", app_yaml("app-0001", image="nginx:1.1"))   # same blob as before
    new = repo.commit("unrelated root")
    repo._git("branch", "-f", "main", "rewritten")
    assert source.head() == new
    files = source.read("apps", new)
    assert files == tree_on_disk(repo) and sorted(files) == ["apps/app-0001.yaml", "apps/only.yaml"]
    assert source.read("apps", old) is not None                  # the old revision is still in the cache
    assert source.stats.snapshot_refetches == 0 and source.stats.fetches == 2


def test_a_pull_request_ref_is_resolved_and_fetched_incrementally(fleet, kind, repo, tmp_path):
    source = GitSource(fleet.url, "main", cache_dir=str(tmp_path / "cache"))
    _, snapshot = read_measured(source, fleet, source.head())
    repo.write("apps/app-0005.yaml", app_yaml("app-0005", image="nginx:pr"))
    pr = repo.commit("pull request")
    repo._git("update-ref", "refs/pull/7/head", pr)
    repo._git("reset", "-q", "--hard", "HEAD~1")                 # main does not move
    assert source.resolve("refs/pull/7/head") == pr and source.resolve("refs/pull/8/head") is None
    files, sent = read_measured(source, fleet, pr)
    assert b"nginx:pr" in files["apps/app-0005.yaml"] and len(files) == FLEET
    if kind != "dulwich":
        assert sent < 0.05 * snapshot, (sent, snapshot)


def test_a_cache_missing_objects_of_a_held_revision_falls_back_to_a_whole_snapshot(fleet, kind, repo, tmp_path):
    """The server trusts what the cache says it has: if the cache lost a blob, the incremental pack lacks it,
    the fetched tree is found incomplete and the revision is fetched whole into a fresh cache."""
    from dulwich.objects import Blob
    from dulwich.repo import Repo

    source = GitSource(fleet.url, "main", cache_dir=str(tmp_path / "cache"))
    source.read("apps", source.head())
    cache = Repo(source.cache_folder())
    objects = [(cache.object_store[sha], None) for sha in cache.object_store]
    blob = next(o.id for o, _ in objects if isinstance(o, Blob) and b"app-0009" in o.data)
    [old_pack] = packs(source)
    cache.object_store.add_objects([(o, p) for o, p in objects if o.id != blob])   # the same pack, one blob lost
    cache.close()
    old_pack.unlink()
    old_pack.with_suffix(".idx").unlink()
    repo.write("apps/app-0001.yaml", app_yaml("app-0001", image="nginx:after-damage"))
    source = GitSource(fleet.url, "main", cache_dir=str(tmp_path / "cache"))   # a new process: the disk cache only
    files = source.read("apps", repo.commit("change"))
    assert files == tree_on_disk(repo) and b"app-0009" in files["apps/app-0009.yaml"]
    if kind == "dulwich":                                        # it sent the whole snapshot in the first place
        assert source.stats.snapshot_refetches == 0 and len(packs(source)) == 2
    else:
        assert source.stats.snapshot_refetches == 1 and len(packs(source)) == 1


def test_the_merge_base_comes_from_the_history_at_hand_and_is_none_when_a_shallow_cache_lacks_it(
        served, kind, repo, tmp_path):
    fork = repo._git("rev-parse", "HEAD").strip()
    repo._git("checkout", "-q", "-b", "pr")
    repo.write("other/x.yaml", app_yaml("x", image="nginx:pr"))
    pr = repo.commit("pull request")
    repo._git("checkout", "-q", "main")
    repo.write("apps/web.yaml", app_yaml("web", image="nginx:main"))
    main = repo.commit("main moves on")
    assert GitSource(str(repo.path), "main").merge_base(main, pr) == fork
    assert GitSource(str(repo.path), "main").merge_base(main, main) == main
    remote = GitSource(served.url, "main", cache_dir=str(tmp_path / "cache"))
    assert remote.merge_base(main, pr) is None                              # nothing fetched yet: never fetches
    remote.read("apps", main), remote.read("apps", pr)                      # fetched shallow, one commit each
    found = remote.merge_base(main, pr)
    assert found in (None, fork)                                             # never a wrong base
    if kind != "dulwich":                                                    # git http-backend honours depth=1
        assert found is None


def test_a_server_refusing_what_the_cache_announces_gets_a_whole_snapshot_fetch(fleet, kind, repo, tmp_path):
    from dulwich.repo import Repo

    source = GitSource(fleet.url, "main", cache_dir=str(tmp_path / "cache"))
    source.read("apps", source.head())
    shallow = Path(source.cache_folder()) / "shallow"
    cache = Repo(source.cache_folder())
    tree = cache[cache[source.head().encode()].tree]
    blob_id = cache[tree[b"apps"][1]][b"app-0000.yaml"][1].decode()
    cache.close()
    shallow.write_text(shallow.read_text() + blob_id + "\n")    # git refuses a `shallow` line naming a blob
    repo.write("apps/app-0001.yaml", app_yaml("app-0001", image="nginx:after-refusal"))
    files = source.read("apps", repo.commit("change"))
    assert files == tree_on_disk(repo)
    if kind != "dulwich":
        assert source.stats.snapshot_refetches == 1 and len(packs(source)) == 1


@pytest.mark.parametrize("kind", ["git-v2"])                  # protocol v0 advertises every ref by design
def test_a_ref_lookup_and_a_fetch_do_not_grow_with_the_number_of_pull_request_refs(served, repo, tmp_path):
    head = repo._git("rev-parse", "HEAD")
    subprocess.run(["git", "-C", str(repo.path), "update-ref", "--stdin"], check=True, text=True,
                   input="".join(f"create refs/pull/{n}/head {head}\n" for n in range(300)))
    source = GitSource(served.url, "main", cache_dir=str(tmp_path / "cache"))
    served.bytes_sent.clear()
    assert source.head() == head and source.resolve("refs/pull/299/head") == head
    lookups = sum(served.bytes_sent.values())
    assert lookups < 2000, lookups                               # 300 refs would be about 20 KB
    repo.write("apps/web.yaml", app_yaml("web", image="nginx:next"))
    moved = repo.commit("move")
    served.requests.clear()
    served.bytes_sent.clear()
    assert source.head() == moved and b"nginx:next" in source.read("apps", moved)["apps/web.yaml"]
    refs_listed = sum(n for key, n in served.bytes_sent.items() if key.endswith("/info/refs"))
    assert served.bytes_sent["POST /repo.git/git-upload-pack"] < 6000 and refs_listed < 1000
