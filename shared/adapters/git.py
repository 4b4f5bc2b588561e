"""Git source: the branch head and the manifests under a path, read with dulwich (no `git` binary).

Remote repositories (HTTPS, or HTTP on loopback for local use) are fetched shallow (depth 1)
into a bare cache repository and read straight from the object store: no checkout, no
GitHub REST call. Local paths and file:// URLs are read in place. A revision already in the
cache is not fetched again, so a pass whose head did not move costs one ref lookup.

Each fetch of a new revision adds one pack (a whole snapshot at depth 1). The cache keeps at most
MAX_CACHED_PACKS of them: the fetch that would exceed it starts a fresh cache instead, which costs
no more than the fetch it replaces, so the disk used stays bounded on a long-lived instance.
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
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

MANIFEST_SUFFIXES = (".yaml", ".yml")
"""Manifest file name endings, in any case (`App.YAML` is read like `app.yaml`): see `is_manifest`."""
MAX_CACHED_PACKS = 8
"""Snapshots kept per repository cache (enough for the revisions a webhook and its workers read)."""

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
        repository has no such ref (one ref lookup). `read` then fetches that SHA."""
        self.stats.ref_lookups += 1
        try:
            if _is_local(self.url):
                refs = self._local_repo().get_refs()
            else:
                client, path = self._client()
                refs = client.get_refs(path.encode() if isinstance(path, str) else path).refs
        except SourceError:
            raise
        except Exception as exc:  # dulwich raises many types; none may leak a credential
            raise SourceError(f"cannot list branches of {self.display_url}: {_describe(exc, self)}") from None
        sha = refs.get(ref.encode())
        return None if sha is None else sha.decode()

    def read(self, path: str, revision: str) -> dict[str, bytes] | None:
        """YAML files under `path` at `revision` (repository-relative name -> bytes); None if `path` is absent."""
        if _is_local(self.url):
            return _files(self._local_repo(), revision, path)
        folder = self.cache_folder()
        with cache_lock(folder):                  # a fetch may replace the cache; never read it meanwhile
            repo = self._fetched(folder, revision)
            try:
                return _files(repo, revision, path)
            except (KeyError, OSError) as exc:    # a damaged cache: clear it so the retry fetches afresh
                shutil.rmtree(folder, ignore_errors=True)
                raise SourceError(f"cannot read {self.display_url}@{revision[:12]} from the Git cache "
                                  f"({type(exc).__name__}: {exc}); the cache was cleared") from None
            finally:
                repo.close()

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
        """The bare cache repository in `folder`, holding `revision` (fetched shallow when missing).
        The caller holds `cache_lock(folder)`."""
        from dulwich.repo import Repo

        repo = Repo(folder) if os.path.exists(os.path.join(folder, "objects")) else _init_bare(folder)
        if revision.encode() in repo.object_store:
            return repo
        if _pack_count(folder) >= MAX_CACHED_PACKS:
            repo.close()
            shutil.rmtree(folder)
            repo = _init_bare(folder)
        self.stats.fetches += 1
        try:
            client, path = self._client()
            client.fetch(path, repo, determine_wants=lambda refs, depth=None: [revision.encode()], depth=1)
        except Exception as exc:
            raise SourceError(f"cannot fetch {self.display_url}@{revision[:12]}: {_describe(exc, self)}") from None
        return repo


def _files(repo, revision: str, path: str) -> dict[str, bytes] | None:
    """YAML files under `path` in `repo` at `revision`; None if `path` is absent or not a folder."""
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
            files[f"{prefix}/{name}" if prefix else name] = repo[entry.sha].data
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
