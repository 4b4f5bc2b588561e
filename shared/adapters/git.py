"""Git source: the branch head and the manifests under a path, read with dulwich (no `git` binary).

Remote repositories (HTTPS, or HTTP on loopback for local use) are fetched shallow (depth 1)
into a bare cache repository and read straight from the object store: no checkout, no
GitHub REST call. Local paths and file:// URLs are read in place. A revision already in the
cache is not fetched again, so a pass whose head did not move costs one ref lookup.

A new revision is fetched at depth 1 as well, but the fetch tells the server which revisions the cache
holds (`have` and `shallow` lines), so a server that negotiates (git itself, GitHub, Azure Repos) sends one
pack of only the objects that are new relative to them: a one-file change costs about one blob, one
commit and the changed trees, not the whole tree. A server that does not negotiate (dulwich's) sends the
whole snapshot, which is just as correct. Objects missing from the cache when read (a server that sent
too little, a damaged cache) clear it and fetch the whole snapshot again, once.
Each fetch adds one pack. Past MAX_CACHED_PACKS packs the cache is compacted, locally, to one pack holding
the revision just fetched (the next fetch announces it), so the disk used stays bounded on a long-lived
instance without fetching the whole tree again.
Fetches and reads of one cache hold a lock shared by the threads of this process and, through a lock
file, by other processes on the same machine (flock; on systems without it, threads only).
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

MANIFEST_SUFFIXES = (".yaml", ".yml")
"""Manifest file name endings, in any case (`App.YAML` is read like `app.yaml`): see `is_manifest`."""
MAX_BLOB_CACHE_BYTES = 32 * 1024 * 1024
"""File contents a GitSource keeps in memory between reads (by blob id), so an unchanged file is not read again."""
MAX_CACHED_PACKS = 8
"""Packs kept per repository cache (enough for the revisions a webhook and its workers read) before the cache
is compacted to the revision just fetched."""

_cache_locks: dict[str, threading.Lock] = {}
_cache_locks_guard = threading.Lock()


@contextmanager
def cache_lock(folder: str) -> Iterator[None]:
    """Hold the cache folder's lock: one per folder in this process, plus `flock` on `<folder>.lock`."""
    with _cache_locks_guard:
        lock = _cache_locks.setdefault(folder, threading.Lock())
    with lock:
        try:
            import fcntl
        except ImportError:                   # Windows: thread lock only (Functions run Python on Linux)
            yield
            return
        os.makedirs(os.path.dirname(folder) or ".", exist_ok=True)
        with open(folder + ".lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


class SourceError(RuntimeError):
    """The repository or branch could not be read; the message never contains credentials."""


@dataclass
class SourceStats:
    ref_lookups: int = 0
    fetches: int = 0
    snapshot_refetches: int = 0
    """Times the cache was cleared and the whole snapshot fetched again: a read found objects missing (an
    incomplete answer to an incremental fetch, or a damaged cache), or the server failed an incremental fetch."""


def redact(url: str) -> str:
    """The URL without user name or password."""
    parts = urlsplit(url)
    if not parts.netloc or "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def _is_local(url: str) -> bool:
    return url.startswith("file://") or "://" not in url


@dataclass
class GitSource:
    """One repository and branch. `password` is called per connection and may return None."""

    url: str
    branch: str = "main"
    username: str = "x-access-token"
    password: Callable[[], str | None] = field(default=lambda: None, repr=False)
    cache_dir: str | None = None
    stats: SourceStats = field(default_factory=SourceStats)
    _blobs: "_BlobCache" = field(default_factory=lambda: _BlobCache(), init=False, repr=False, compare=False)

    @property
    def ref(self) -> bytes:
        return b"refs/heads/" + self.branch.encode()

    @property
    def display_url(self) -> str:
        return redact(self.url)

    def head(self) -> str:
        """The commit SHA at the branch head (one ref lookup)."""
        sha = self.resolve(self.ref.decode())
        if sha is None:
            raise SourceError(f"branch '{self.branch}' not found in {self.display_url}")
        return sha

    def resolve(self, ref: str) -> str | None:
        """The commit SHA a full ref name (`refs/heads/main`, `refs/pull/7/head`) points to, or None when the
        repository has no such ref (one ref lookup; with protocol v2, as on GitHub, the server lists that ref
        alone, however many pull request refs the repository has). `read` then fetches that SHA."""
        self.stats.ref_lookups += 1
        try:
            if _is_local(self.url):
                refs = self._local_repo().get_refs()
            else:
                client, path = self._client()
                refs = client.get_refs(path.encode() if isinstance(path, str) else path,  # v2: only this ref listed
                                       ref_prefix=[ref.encode()]).refs
        except SourceError:
            raise
        except Exception as exc:  # dulwich raises many types; none may leak a credential
            raise SourceError(f"cannot list branches of {self.display_url}: {_describe(exc, self)}") from None
        sha = refs.get(ref.encode())
        return None if sha is None else sha.decode()

    def read(self, path: str, revision: str) -> dict[str, bytes] | None:
        """YAML files under `path` at `revision` (repository-relative name -> bytes); None if `path` is absent.

        Objects missing from the cache (a server that answered an incremental fetch with too little, or a
        damaged cache) clear it and fetch the revision again as a whole snapshot, once."""
        if _is_local(self.url):
            return _files(self._local_repo(), revision, path)
        folder = self.cache_folder()
        with cache_lock(folder):                  # a fetch may replace the cache; never read it meanwhile
            try:
                return self._read_cached(folder, revision, path)
            except (KeyError, OSError):
                shutil.rmtree(folder, ignore_errors=True)
                self.stats.snapshot_refetches += 1
            try:
                return self._read_cached(folder, revision, path)
            except (KeyError, OSError) as exc:
                shutil.rmtree(folder, ignore_errors=True)
                raise SourceError(f"cannot read {self.display_url}@{revision[:12]} from the Git cache "
                                  f"({type(exc).__name__}: {exc}); the cache was cleared") from None

    def _read_cached(self, folder: str, revision: str, path: str) -> dict[str, bytes] | None:
        repo = self._fetched(folder, revision)
        try:
            return _files(repo, revision, path, self._blobs)
        finally:
            repo.close()

    def merge_base(self, one: str, other: str) -> str | None:
        """The best common ancestor of commits `one` and `other`, from the objects at hand only (the repository
        itself when it is local, else the cache, which is fetched shallow): nothing is fetched, so a cache without
        the history needed answers None, as do several bases (criss-cross merges) or none."""
        from dulwich.graph import find_merge_base
        from dulwich.repo import Repo

        def found(repo) -> str | None:
            if one.encode() not in repo.object_store or other.encode() not in repo.object_store:
                return None
            try:
                bases = find_merge_base(repo, [one.encode(), other.encode()])
            except (KeyError, AssertionError):   # a parent missing from the objects at hand
                return None
            return bases[0].decode() if len(bases) == 1 else None

        if _is_local(self.url):
            with self._local_repo() as repo:
                return found(repo)
        folder = self.cache_folder()
        with cache_lock(folder):
            if not os.path.exists(os.path.join(folder, "objects")):
                return None
            with Repo(folder) as repo:
                return found(repo)

    def _local_repo(self):
        from dulwich.repo import Repo

        location = self.url[len("file://"):] if self.url.startswith("file://") else self.url
        try:
            return Repo(location)
        except Exception as exc:
            raise SourceError(f"cannot open repository {location}: {exc}") from None

    def _client(self):
        from dulwich.client import get_transport_and_path

        password = self.password()
        return get_transport_and_path(self.url, username=self.username if password else None,
                                      password=password or None, quiet=True)

    def cache_folder(self) -> str:
        """Where this repository's bare cache lives (one per URL, without credentials)."""
        return os.path.join(self.cache_dir or os.path.join(tempfile.gettempdir(), "driftless-git"),
                            hashlib.sha256(redact(self.url).encode()).hexdigest()[:16])

    def _fetched(self, folder: str, revision: str):
        """The bare cache repository in `folder`, holding `revision`. The caller holds `cache_lock(folder)`.

        A missing revision is fetched at depth 1, telling the server which revisions the cache already holds
        (as `have` and `shallow` lines), so that a server that negotiates (git, GitHub, Azure Repos) sends only
        the objects that are new relative to them, in one small pack; a server that does not sends the whole
        snapshot. Objects are named by their content, so a missing one is never read as a wrong one: `read`
        finds it missing and fetches the whole snapshot instead. A server that answers the incremental fetch
        with an error gets one whole-snapshot fetch into a fresh cache (a connection failure just fails).
        Past MAX_CACHED_PACKS packs the cache is compacted to the fetched revision alone."""
        from dulwich.repo import Repo

        want = revision.encode()
        repo = Repo(folder) if os.path.exists(os.path.join(folder, "objects")) else _init_bare(folder)
        if want in repo.object_store:
            return repo
        self.stats.fetches += 1
        cached = sorted(sha for sha in repo.get_shallow() if sha in repo.object_store)
        try:
            try:
                self._fetch(repo, want, cached)
            except _BadAnswer:
                if not cached:
                    raise
                repo.close()                      # a server that refuses what the cache announces: start afresh
                shutil.rmtree(folder)
                repo = _init_bare(folder)
                self.stats.snapshot_refetches += 1
                self._fetch(repo, want, [])
        except BaseException:
            repo.close()
            raise
        if _pack_count(folder) > MAX_CACHED_PACKS:
            repo = _compact(folder, repo, want)
        return repo

    def _fetch(self, repo, want: bytes, cached: list[bytes]) -> None:
        """Fetch commit `want` at depth 1 into `repo`, announcing the `cached` revisions as held."""
        from dulwich.object_store import ObjectStoreGraphWalker

        # The cached revisions are shallow (depth-1) commits: announce each as `have` (its tree is here) and
        # `shallow` (its parents are not), and never walk to parents the cache does not hold.
        walker = ObjectStoreGraphWalker(cached, lambda sha: [], shallow=repo.get_shallow(),
                                        update_shallow=repo.update_shallow)
        try:
            client, path = self._client()
            client.fetch(path, _Announcing(repo, walker), determine_wants=lambda refs, depth=None: [want],
                         depth=1, ref_prefix=[self.ref])      # v2: the refs listing is one line, not every PR ref
        except Exception as exc:
            from dulwich.errors import ApplyDeltaError, ChecksumMismatch, FileFormatException, GitProtocolError

            answered = (GitProtocolError, ChecksumMismatch, ApplyDeltaError, FileFormatException, KeyError)
            raise (_BadAnswer if isinstance(exc, answered) else SourceError)(
                f"cannot fetch {self.display_url}@{want[:12].decode()}: {_describe(exc, self)}") from None


class _BadAnswer(SourceError):
    """The server answered a fetch with an error or a pack the cache cannot take (not a connection failure)."""


class _Announcing:
    """The cache repository as dulwich's `fetch` target, with the graph walker that announces what it holds."""

    def __init__(self, repo, walker) -> None:
        self._repo, self._walker = repo, walker

    def __getattr__(self, name: str):
        return getattr(self._repo, name)

    def get_graph_walker(self, heads=None):
        return self._walker


def _compact(folder: str, repo, revision: bytes):
    """Replace the cache in `folder` by one pack holding `revision` alone (its commit and whole tree), built
    locally from the objects already there: the disk stays bounded without fetching the snapshot again."""
    from dulwich.objects import S_ISGITLINK
    from dulwich.repo import Repo

    store = repo.object_store
    commit = store[revision]
    objects = {commit.id: commit, commit.tree: store[commit.tree]}
    for entry in store.iter_tree_contents(commit.tree, include_trees=True):
        if not S_ISGITLINK(entry.mode):
            objects[entry.sha] = store[entry.sha]
    fresh, old = folder + ".compact", folder + ".old"
    for leftover in (fresh, old):             # from a process that died while compacting
        shutil.rmtree(leftover, ignore_errors=True)
    compacted = _init_bare(fresh)
    try:
        compacted.object_store.add_objects([(obj, None) for obj in objects.values()])
        compacted.update_shallow({revision}, None)
    finally:
        compacted.close()
    repo.close()
    os.rename(folder, old)
    os.rename(fresh, folder)
    shutil.rmtree(old, ignore_errors=True)
    return Repo(folder)


class _BlobCache:
    """File contents by blob id, least recently used first out past MAX_BLOB_CACHE_BYTES: a changed head reads
    from the object store only the files that changed. Blob ids name their content, so a hit is never stale."""

    def __init__(self) -> None:
        self._data: OrderedDict[bytes, bytes] = OrderedDict()
        self._size = 0

    def get(self, sha: bytes) -> bytes | None:
        data = self._data.get(sha)
        if data is not None:
            self._data.move_to_end(sha)
        return data

    def put(self, sha: bytes, data: bytes) -> None:
        if sha in self._data or len(data) > MAX_BLOB_CACHE_BYTES:
            return
        self._data[sha] = data
        self._size += len(data)
        while self._size > MAX_BLOB_CACHE_BYTES:
            self._size -= len(self._data.popitem(last=False)[1])


def _files(repo, revision: str, path: str, blobs: _BlobCache | None = None) -> dict[str, bytes] | None:
    """YAML files under `path` in `repo` at `revision`; None if `path` is absent or not a folder. `blobs`, when
    given, is used for the contents it holds and keeps the ones read."""
    tree = repo[repo[revision.encode()].tree]
    prefix = path.strip("/")
    for part in [p for p in prefix.split("/") if p]:
        try:
            mode, sha = tree[part.encode()]
        except KeyError:
            return None
        if not mode & 0o040000:
            return None
        tree = repo[sha]
    files: dict[str, bytes] = {}
    for entry in repo.object_store.iter_tree_contents(tree.id):
        name = entry.path.decode("utf-8", "replace")
        if is_manifest(name):
            data = blobs.get(entry.sha) if blobs is not None else None
            if data is None:
                data = repo[entry.sha].data
                if blobs is not None:
                    blobs.put(entry.sha, data)
            files[f"{prefix}/{name}" if prefix else name] = data
    return files


def is_manifest(name: str) -> bool:
    """True for a file name ending in .yaml or .yml, in any case."""
    return name.lower().endswith(MANIFEST_SUFFIXES)


def _pack_count(folder: str) -> int:
    try:
        return sum(name.endswith(".pack") for name in os.listdir(os.path.join(folder, "objects", "pack")))
    except FileNotFoundError:
        return 0


def _init_bare(folder: str):
    from dulwich.repo import Repo

    os.makedirs(folder, exist_ok=True)
    return Repo.init_bare(folder)


def _describe(exc: Exception, source: GitSource) -> str:
    """A one-line reason with any credential removed."""
    text = f"{type(exc).__name__}: {exc}".replace(source.url, source.display_url)
    secret = source.password() if not _is_local(source.url) else None
    if secret:
        text = text.replace(secret, "***")
    return re.sub(r"//[^/@\s]+@", "//", text)[:300]
