"""The Git contract: parse `App` and `Target` manifests and report every problem at once.

Nothing here does I/O. `load_apps` and `load_targets` take file contents (path -> bytes)
and return the valid objects plus a list of `Problem`s naming file, document, line, field
and what is allowed. A manifest that fails validation yields no App, so it can never be
applied; callers mark the pass degraded, which in turn forbids prune.
"""
from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping

import yaml

from shared.core import app_sections, image_policy, image_reference, rollout as rollouts, sizes

API_VERSION = "driftless.io/v1alpha1"
SYNOSCD_API_VERSION = "synoscd.io/v1alpha1"
SYNOSCD_MANAGED_LABEL = "synoscd.io/managed"

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

APP_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")
SECRET_NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
KEY_VAULT_SECRET_URL = re.compile(
    r"^https://[a-z0-9-]{1,24}\.vault\.(azure\.net|azure\.cn|usgovcloudapi\.net|microsoftazure\.de)"
    r"/secrets/[A-Za-z0-9-]{1,127}(/[0-9a-f]{32})?/?$"
)
KEY_VAULT_SECRET_ID = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.KeyVault/vaults/"
    r"(?P<vault>[A-Za-z0-9-]{3,24})/secrets/(?P<secret>[A-Za-z0-9-]{1,127})$",
    re.IGNORECASE,
)
USER_IDENTITY_ID = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.ManagedIdentity/"
    r"userAssignedIdentities/[^/]+$",
    re.IGNORECASE,
)
MAX_ENV = 1000
"""Environment variables per list (a container's `env`, SynosCD's `spec.environment`): Driftless's own cap."""
GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
TRANSPORTS = ("auto", "http", "http2", "tcp")
IDENTITY_TYPES = ("None", "SystemAssigned", "UserAssigned", "SystemAssigned,UserAssigned")


def key_vault_reference(synoscd: bool, name: str = "<secret>") -> str:
    """A Key Vault reference for secret `name`, written in the manifest's dialect: SynosCD's `secrets` map entry
    or Driftless's `spec.secrets` list item."""
    if synoscd:
        return f"secrets: {{{name}: https://<vault>.vault.azure.net/secrets/<name>}}"
    return f"{{name: {name}, keyVaultUrl: https://<vault>.vault.azure.net/secrets/<name>, identity: system}}"


KEY_VAULT_GUIDANCE = "store the value in Key Vault and reference it: " + key_vault_reference(False)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one manifest. `document`, `line` and `column` are 1-based."""

    file: str
    message: str
    field: str = ""
    document: int | None = None
    line: int | None = None
    app: str | None = None
    column: int | None = None

    def __str__(self) -> str:
        """`file:line[:column]: [field: ]message` (editors jump to it); `file (document N): ...` without a line."""
        where = self.file
        if self.line:
            where += f":{self.line}" + (f":{self.column}" if self.column else "")
        elif self.document:
            where += f" (document {self.document})"
        return f"{where}: {self.field + ': ' if self.field else ''}{self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "document": self.document, "line": self.line, "column": self.column,
                "field": self.field, "message": self.message, "app": self.app}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Problem":
        """The Problem `to_dict` described (unknown keys ignored)."""
        return cls(**{k: data[k] for k in ("file", "message", "field", "document", "line", "app", "column")
                      if data.get(k) is not None})


@dataclass(frozen=True)
class EnvVar:
    name: str
    value: str | None = None
    secret_ref: str | None = None


@dataclass(frozen=True)
class Container:
    name: str
    image: str
    cpu: float
    memory_gib: float
    command: tuple[str, ...] | None = None
    args: tuple[str, ...] | None = None
    env: tuple[EnvVar, ...] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)
    """Git-owned ARM fields beyond the above (probes, volumeMounts), in ARM's shape and casing."""


@dataclass(frozen=True)
class SecretRef:
    """A Container Apps secret backed by a Key Vault secret; never holds a value."""

    name: str
    key_vault_url: str
    identity: str


@dataclass(frozen=True)
class Registry:
    server: str
    identity: str | None = None
    username: str | None = None
    password_secret_ref: str | None = None


@dataclass(frozen=True)
class Identity:
    type: str
    user_assigned: tuple[str, ...] = ()


@dataclass(frozen=True)
class Ingress:
    enabled: bool
    external: bool = False
    target_port: int | None = None
    transport: str = "auto"
    allowed_origins: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Scale:
    min_replicas: int = 0
    max_replicas: int = 10


@dataclass(frozen=True)
class App:
    """A Container App as Git wants it. Optional sections left as None are not owned by Git."""

    name: str
    containers: tuple[Container, ...]
    file: str
    document: int
    secrets: tuple[SecretRef, ...] | None = None
    registries: tuple[Registry, ...] | None = None
    identity: Identity | None = None
    ingress: Ingress | None = None
    scale: Scale | None = None
    init_containers: tuple[Container, ...] | None = None
    sections: Mapping[tuple[str, ...], Any] = field(default_factory=dict, hash=False)
    """Git-owned ARM fragments by their place in the resource, e.g. ("properties", "template", "volumes")."""
    suspend: bool = False
    managed: bool = True
    api_version: str = API_VERSION
    annotations: Mapping[str, str] | None = field(default=None, hash=False)
    rollout: rollouts.Rollout | None = field(default=None, hash=False)
    """`spec.rollout`: how a new revision is walked to 100% (`shared.core.rollout`); None: at once."""

    @property
    def key(self) -> str:
        """What outcomes, suspensions and the status store call this App: its name."""
        return self.name


@dataclass(frozen=True)
class FluxRef:
    """A Flux object to nudge after a pass (`fluxAssist`): GitRepository or Kustomization."""

    kind: str
    namespace: str
    name: str


@dataclass(frozen=True)
class Target:
    """Where one Git path goes: one Container Apps environment (`aca`) or one AKS cluster (`aks`).

    For `aks`, `protected_apps` holds the `protected` object keys ("Kind/namespace/name" or "Kind/name").
    A `retired` Target is the settings' default Target once the repository declares Targets: it is planned
    read-only (nothing desired, prune off), so what it owns shows as orphans and is never written or deleted."""

    name: str
    path: str
    subscription_id: str
    resource_group: str
    environment: str = ""
    type: str = "aca"
    prune: bool = False
    protected_apps: frozenset[str] = frozenset()
    allow_empty: bool = False
    file: str | None = None
    cluster: str = ""
    namespace: str = "default"
    force: bool = False
    flux_assist: tuple[FluxRef, ...] = ()
    retired: bool = False

    @property
    def environment_id(self) -> str:
        """The environment's ARM id; `environment` may be a name in the Target's group or a full id."""
        if self.environment.startswith("/"):
            return self.environment
        return (f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
                f"/providers/Microsoft.App/managedEnvironments/{self.environment}")


@dataclass
class _Check:
    """Collects problems for one document while walking it; paths are tuples of keys."""

    file: str
    document: int
    problems: list[tuple[tuple[Any, ...], str]] = field(default_factory=list)

    def add(self, path: tuple[Any, ...], message: str) -> None:
        self.problems.append((path, message))

    def mapping(self, node: Any, path: tuple[Any, ...], allowed: Iterable[str], required: Iterable[str] = ()) -> dict:
        if node is None:
            node = {}
        if not isinstance(node, Mapping):
            self.add(path, f"must be a mapping, got {_kind(node)}")
            return {}
        allowed = tuple(allowed)
        for key in node:
            if key not in allowed:
                self.add(path + (key,), f"unknown field; allowed here: {', '.join(allowed)}")
        for key in required:
            if node.get(key) is None:
                self.add(path + (key,), "is required")
        return dict(node)

    def sequence(self, node: Any, path: tuple[Any, ...]) -> list:
        if node is None:
            return []
        if not isinstance(node, list):
            self.add(path, f"must be a list, got {_kind(node)}")
            return []
        return node

    def string(self, node: Any, path: tuple[Any, ...], pattern: re.Pattern | None = None, rule: str = "") -> str | None:
        if node is None:
            return None
        if not isinstance(node, str) or not node.strip():
            self.add(path, f"must be a non-empty string, got {_kind(node)}")
            return None
        if pattern and not pattern.fullmatch(node):
            self.add(path, f"{image_reference.shown(node)} is not valid: {rule}")
            return None
        return node

    def boolean(self, node: Any, path: tuple[Any, ...], default: bool) -> bool:
        if node is None:
            return default
        if not isinstance(node, bool):
            self.add(path, f"must be true or false, got {_kind(node)}")
            return default
        return node

    def integer(self, node: Any, path: tuple[Any, ...], low: int, high: int) -> int | None:
        if node is None:
            return None
        if isinstance(node, bool) or not isinstance(node, int) or not low <= node <= high:
            self.add(path, f"must be a whole number from {low} to {high}, got {node!r}")
            return None
        return node

    def strings(self, node: Any, path: tuple[Any, ...]) -> tuple[str, ...] | None:
        if node is None:
            return None
        items = self.sequence(node, path)
        bad = [i for i, item in enumerate(items) if not isinstance(item, (str, int, float)) or isinstance(item, bool)]
        for i in bad:
            self.add(path + (i,), "must be a string")
        return tuple(str(item) for item in items)


def _kind(node: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            int: "a number", float: "a number", type(None): "nothing"}.get(type(node), type(node).__name__)


def format_path(path: Iterable[Any]) -> str:
    """('spec', 'containers', 0, 'cpu') -> 'spec.containers[0].cpu'."""
    text = ""
    for key in path:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else str(key))
    return text


def parse_documents(file: str, data: bytes) -> tuple[list[Any], list[Problem]]:
    """Every YAML document of one file, and its problems, each with line and column.

    A syntax error is one Problem that ends the file (the documents before it are returned). A key
    given twice in one mapping is a Problem naming both lines: YAML would silently keep the last one,
    so what a reviewer reads first is not what gets applied. Such a document is still returned (so its
    name can be read) but must never be applied: callers drop every document named in a Problem
    returned here (`refused_documents`)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [], [Problem(file, f"is not UTF-8 text ({exc.reason} at byte {exc.start})")]
    documents: list[Any] = []
    problems: list[Problem] = []
    loader = _Loader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            problems += _duplicate_keys(file, len(documents) + 1, node, loader)
            documents.append(loader.construct_document(node))
    except yaml.YAMLError as exc:
        problems.append(_syntax_problem(file, len(documents) + 1, exc, text))
    except RecursionError:
        problems.append(Problem(file, "YAML is nested too deeply to read; nothing of this file after document "
                                      f"{len(documents)} is read", document=len(documents) + 1))
    except (ValueError, TypeError, OverflowError) as exc:   # a value YAML resolves but cannot build: 2001-13-45
        problems.append(Problem(file, f"YAML value cannot be read: {exc} (quote it to keep it a string); nothing "
                                      "of this file from this document on is read", document=len(documents) + 1))
    finally:
        loader.dispose()
    return documents, problems


def refused_documents(problems: Iterable[Problem]) -> set[int]:
    """The documents that `parse_documents` found unsafe to apply (a key given twice)."""
    return {p.document for p in problems if p.document}


def _syntax_problem(file: str, document: int, exc: yaml.YAMLError, text: str) -> Problem:
    """`YAML syntax error: <problem> (<context>, from line N)` at the problem's line and column."""
    mark = getattr(exc, "problem_mark", None)
    reason = getattr(exc, "problem", None)
    line = column = None
    if mark is not None:
        line, column = mark.line + 1, mark.column + 1
    if isinstance(exc, yaml.reader.ReaderError):
        reason = f"{exc.reason} (character #x{ord(exc.character):04x})" if isinstance(exc.character, str) \
            else str(exc.reason)
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
    if not reason:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    context = getattr(exc, "context", None)
    context_mark = getattr(exc, "context_mark", None)
    if context and context_mark is not None and context_mark.line + 1 != line:
        context += f" from line {context_mark.line + 1}"
    return Problem(file, f"YAML syntax error: {reason}" + (f" ({context})" if context else ""),
                   document=document, line=line, column=column)


def _duplicate_keys(file: str, document: int, root: yaml.Node, loader: Any) -> list[Problem]:
    """A Problem for each key given a second time in the same mapping (YAML merge keys `<<` excepted).
    Keys are compared by value (`1` and `"1"` differ, `true` and `True` do not); shared (aliased)
    nodes are looked at once."""
    problems = []
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, tuple[Any, ...]]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack += [(item, path + (i,)) for i, item in enumerate(node.value)]
        if not isinstance(node, yaml.MappingNode):
            continue
        first: dict[Any, yaml.Node] = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                stack.append((value, path))
                continue
            name = loader.construct_object(key)
            try:
                earlier = first.setdefault(name, key)
            except TypeError:                                   # an unhashable key: construct reports it
                earlier = key
            if earlier is not key:
                before, again = earlier.start_mark.line + 1, key.start_mark.line + 1
                problems.append(Problem(
                    file, f"key '{key.value}' is given twice in one mapping: first at {file}:{before}, again at "
                          f"{file}:{again}; YAML keeps only the last silently, so this document is not applied "
                          "(remove one of them)",
                    format_path(path + (key.value,)), document, again, column=key.start_mark.column + 1))
            stack.append((value, path + (key.value,)))
    return sorted(problems, key=lambda p: (p.line or 0, p.column or 0))


def locate(data: bytes, problems: list[tuple[int, tuple[Any, ...], str]], file: str, app_of: dict[int, str]) -> list[Problem]:
    """Turn (document, path, message) into Problems with line numbers (composes the file once)."""
    try:
        nodes = list(yaml.compose_all(data.decode("utf-8"), Loader=_Loader))
    except yaml.YAMLError:
        nodes = []
    located = []
    for document, path, message in problems:
        node = nodes[document - 1] if document - 1 < len(nodes) else None
        line = node.start_mark.line + 1 if node is not None else None
        for key in path:
            child = None
            if isinstance(node, yaml.MappingNode):
                child = next((v for k, v in node.value if k.value == key), None)
                if child is not None and isinstance(key, str):
                    key_node = next(k for k, v in node.value if k.value == key)
                    line = key_node.start_mark.line + 1
            elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
                child = node.value[key]
                line = child.start_mark.line + 1
            if child is None:
                break
            node = child
        located.append(Problem(file, message, format_path(path), document, line, app_of.get(document)))
    return located


Reader = Callable[[Any, "_Check"], Any]
"""Reads one document of one kind: returns the valid object (with a `key`), or None; problems go to the check."""
PROJECT_KIND = "Project"
"""The kind read by the Project pass of `load_objects` (shared.core.projects) rather than document by document."""
Parsed = tuple[list[Any], list[Problem]]
"""What `parse_documents` returns for one file."""


class FileCache:
    """Per-file parse results keyed by file name, content hash and the kinds read (and, for Apps a Project covers,
    the digest of those Projects), so a commit that changes one file parses one file, and one that changes a
    Project re-reads the Apps it covers. Least recently used entries go past `size` (a file takes two: its scan
    for Projects and its objects); `misses` counts files parsed."""

    def __init__(self, size: int = 20_000):
        self.size, self.misses = size, 0
        self._entries: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._lock = threading.Lock()

    def objects(self, file: str, data: bytes, readers: Mapping[str, Reader], *, projects: Mapping[str, Any] | None = None,
                parsed: Parsed | None = None) -> tuple[tuple[Any, ...], tuple[Problem, ...]]:
        """The valid objects and problems of one file (read now unless this name, content, kinds and Projects were
        seen). `projects` maps App names of this file to the Project covering them; `parsed` is the file's
        documents when the caller has just parsed it (then it is not parsed again)."""
        covered = tuple(sorted((name, project.digest) for name, project in (projects or {}).items()))
        key = (file, hashlib.sha1(data).digest(), tuple(sorted(readers)), covered)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            if parsed is None:
                self.misses += 1
        result = load_file(file, data, readers, projects=projects, parsed=parsed)
        self._store(key, result)
        return result

    def scan(self, file: str, data: bytes, read: Callable[[str, bytes, list[Any], list[Problem]], Any],
             ) -> tuple[Any, Parsed | None]:
        """`read(file, data, documents, syntax problems)` of one file, kept for this name and content; with the
        parsed documents when they were parsed now, else None."""
        key = ("scan", file, hashlib.sha1(data).digest(), read)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key], None
            self.misses += 1
        parsed = parse_documents(file, data)
        record = read(file, data, *parsed)
        self._store(key, record)
        return record, parsed

    def _store(self, key: tuple[Any, ...], value: Any) -> None:
        with self._lock:
            self._entries[key] = value
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def apps(self, file: str, data: bytes) -> tuple[tuple[App, ...], tuple[Problem, ...]]:
        """The Apps and problems of one file."""
        return self.objects(file, data, APP_READERS)


def load_objects(files: Mapping[str, bytes], readers: Mapping[str, Reader], cache: FileCache | None = None,
                 ) -> tuple[list[Any], list[Problem]]:
    """Parse and validate every document of `files` with the reader of its kind (each file through `cache` when
    given); a key defined twice invalidates both copies; a kind without a reader is a problem naming those there are.

    With a reader for `Project`, Projects are found first and each App a Project covers is read with the Project's
    defaults merged in and its policy checked (shared.core.projects); Projects themselves are not returned."""
    found: list[Any] = []
    problems: list[Problem] = []
    if PROJECT_KIND not in readers:
        for file in sorted(files):
            objects, file_problems = (cache.objects(file, files[file], readers) if cache
                                      else load_file(file, files[file], readers))
            found += objects
            problems += file_problems
        return _drop_duplicates(found, problems)
    from shared.core import projects   # built on this module, so imported when first needed

    cache = cache or FileCache(size=4 * len(files) + 8)
    scans, fresh = {}, {}
    for file in sorted(files):
        scans[file], parsed = cache.scan(file, files[file], projects.scan_file)
        if parsed is not None:
            fresh[file] = parsed
    groups = projects.resolve(scans, files)
    for file in sorted(files):
        objects, file_problems = cache.objects(file, files[file], readers, projects=groups.assigned.get(file),
                                               parsed=fresh.get(file))
        found += objects
        problems += file_problems
    found, problems = _drop_duplicates(found, problems + groups.problems)
    return [o for o in found if (getattr(o, "file", None), getattr(o, "document", None)) not in groups.held], problems


def load_apps(files: Mapping[str, bytes], cache: FileCache | None = None) -> tuple[list[App], list[Problem]]:
    """Parse and validate every App in `files`."""
    return load_objects(files, APP_READERS, cache)


def load_app_file(file: str, data: bytes) -> tuple[tuple[App, ...], tuple[Problem, ...]]:
    """The valid Apps of one file and its problems."""
    return load_file(file, data, APP_READERS)


def document_key(document: Any) -> str | None:
    """What outcomes and problems call a document: an App by its name, any other kind as `Kind/name`."""
    if not isinstance(document, dict) or not isinstance(document.get("metadata"), dict):
        return None
    name = document["metadata"].get("name")
    if not isinstance(name, str):
        return None
    kind = document.get("kind")
    return name if kind in (None, "App") or not isinstance(kind, str) else f"{kind}/{name}"


def load_file(file: str, data: bytes, readers: Mapping[str, Reader], *, projects: Mapping[str, Any] | None = None,
              parsed: Parsed | None = None) -> tuple[tuple[Any, ...], tuple[Problem, ...]]:
    """The valid objects of one file and its problems (YAML, schema), each located by file, document and line.
    An App named in `projects` is read through its Project (`Project.read_app`); Project documents are left to the
    Project pass of `load_objects`. `parsed` is the file's documents when already parsed."""
    documents, syntax = parsed or parse_documents(file, data)
    refused = refused_documents(syntax)
    found: list[Any] = []
    problems: list[Problem] = []
    pending: list[tuple[int, tuple[Any, ...], str]] = []
    app_of: dict[int, str] = {}
    for index, document in enumerate(documents, start=1):
        if document is None:
            continue
        check = _Check(file, index)
        kind = document.get("kind") if isinstance(document, Mapping) else None
        reader = readers.get(kind) if isinstance(kind, str) else None
        key = document_key(document)
        if key:
            app_of[index] = key
        if kind == PROJECT_KIND and reader is not None:
            continue
        project = (projects or {}).get(key) if kind == "App" and reader is not None and key else None
        if reader is None and isinstance(document, Mapping) and len(readers) > 1:
            check.add(("kind",), f"unsupported kind '{kind}'; allowed here: {', '.join(sorted(readers))}")
            obj = None
        elif project is not None:
            obj, elsewhere = project.read_app(reader, document, check)
            problems += elsewhere
            obj = None if elsewhere else obj
        else:
            obj = (reader or next(iter(readers.values())))(document, check)
        pending += [(index, path, message) for path, message in check.problems]
        if obj is not None and not check.problems and index not in refused:
            found.append(obj)
    problems += [replace(p, app=app_of.get(p.document or 0)) for p in syntax]
    if pending:
        problems += locate(data, pending, file, app_of)
    return tuple(found), tuple(problems)


def _drop_duplicates(objects: list[Any], problems: list[Problem]) -> tuple[list[Any], list[Problem]]:
    by_key: dict[str, list[Any]] = {}
    for obj in objects:
        by_key.setdefault(obj.key, []).append(obj)
    unique = []
    for key, same in by_key.items():
        if len(same) == 1:
            unique.append(same[0])
            continue
        places = ", ".join(f"{a.file} (document {a.document})" for a in same)
        noun = "app name" if "/" not in key else "name"
        problems += [Problem(a.file, f"duplicate {noun} '{key}': defined in {places}",
                             "metadata.name", a.document, None, key) for a in same]
    return unique, problems


def _read_app(doc: Any, check: _Check) -> App | None:
    if not isinstance(doc, Mapping):
        check.add((), f"a manifest must be a mapping, got {_kind(doc)}")
        return None
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if kind != "App" or api_version not in (API_VERSION, SYNOSCD_API_VERSION):
        check.add(("kind",) if api_version in (API_VERSION, SYNOSCD_API_VERSION) else ("apiVersion",),
                  f"unsupported apiVersion/kind '{api_version}/{kind}'; allowed: "
                  f"apiVersion {API_VERSION} or {SYNOSCD_API_VERSION} with kind App")
        return None
    synoscd = api_version == SYNOSCD_API_VERSION
    check.mapping(doc, (), ("apiVersion", "kind", "metadata", "spec", "status"), ("metadata", "spec"))
    meta = check.mapping(doc.get("metadata"), ("metadata",), ("name", "labels", "annotations", "namespace"), ("name",))
    name = check.string(meta.get("name"), ("metadata", "name"), APP_NAME,
                        "2-32 characters, lowercase letters, digits and '-', starting with a letter "
                        "and not ending with '-'")
    if name and "--" in name:
        check.add(("metadata", "name"), f"'{name}' is not valid: '--' is not allowed in a Container App name")
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations")
    if annotations is not None and not isinstance(annotations, Mapping):
        check.add(("metadata", "annotations"), f"must be a mapping, got {_kind(annotations)}")
    for path, message in image_policy.read_policy(
            annotations, image_policy.container_names(doc, image_policy.APP_CONTAINERS))[1]:
        check.add(path, message)
    spec_fields = ["containers", "initContainers", "secrets", "registries", "identity", "ingress", "scale", "suspend",
                   "rollout", *app_sections.SPEC_FIELDS]
    if synoscd:
        spec_fields.append("environment")
    spec = check.mapping(doc.get("spec"), ("spec",), spec_fields, ("containers",))
    secrets = _read_secrets(spec.get("secrets"), check, synoscd)
    declared = _declared_secrets(spec.get("secrets"))
    identity = _read_identity(spec.get("identity"), check)
    sections = app_sections.Sections(check.add, secrets=None if secrets is None else [s.name for s in secrets],
                                     identities=identity.user_assigned if identity else (),
                                     system_identity=bool(identity and "SystemAssigned" in identity.type))
    sections.read_spec(spec)
    shared_env = (_read_env(spec.get("environment"), ("spec", "environment"), check, declared, synoscd)
                  if synoscd else None)
    containers = _read_containers(spec.get("containers"), check, synoscd, shared_env, sections=sections,
                                  declared=declared)
    init_containers = None
    if spec.get("initContainers") is not None:
        init_containers = _read_containers(spec["initContainers"], check, synoscd, None, sections=sections,
                                           declared=declared, path=("spec", "initContainers"))
    complete = (isinstance(spec.get("containers"), list) and len(containers) == len(spec["containers"])
                and (init_containers is None or len(init_containers) == len(spec["initContainers"])))
    profile = spec.get("workloadProfileName")
    if containers and complete and profile in (None, "Consumption"):
        _check_size(containers, init_containers or (), check)
    sections.check_mounts((("spec", field_, i, "volumeMounts", j, "volumeName"), mount.get("volumeName"))
                          for field_, group in (("containers", containers), ("initContainers", init_containers or ()))
                          for i, container in enumerate(group)
                          for j, mount in enumerate(container.extra.get("volumeMounts") or ()))
    registries = _read_registries(spec.get("registries"), check, secrets)
    sections.identity_uses(spec)
    ingress = _read_ingress(spec.get("ingress"), check, synoscd, sections)
    scale = _read_scale(spec.get("scale"), check, sections)
    ingress_node = spec.get("ingress") if isinstance(spec.get("ingress"), Mapping) else {}
    rollout = rollouts.read_rollout(spec.get("rollout"), check.add, mode=str(spec.get("activeRevisionsMode") or "Single"),
                                    ingress=bool(ingress and ingress.enabled),
                                    traffic=ingress_node.get("traffic") is not None)
    app = App(
        name=name or "",
        containers=containers,
        file=check.file,
        document=check.document,
        secrets=secrets,
        registries=registries,
        identity=identity,
        ingress=ingress,
        scale=scale,
        init_containers=init_containers,
        sections=sections.owned,
        suspend=check.boolean(spec.get("suspend"), ("spec", "suspend"), False),
        managed=(not synoscd) or (isinstance(labels, Mapping) and str(labels.get(SYNOSCD_MANAGED_LABEL)).lower() == "true"),
        api_version=api_version,
        annotations=dict(annotations) if isinstance(annotations, Mapping) else None,
        rollout=rollout,
    )
    return app if name else None


def _read_containers(node: Any, check: _Check, synoscd: bool, shared_env: tuple[EnvVar, ...] | None, *,
                     sections: app_sections.Sections, declared: frozenset[str],
                     path: tuple[Any, ...] = ("spec", "containers")) -> tuple[Container, ...]:
    """Containers (or init containers, by `path`): name, image, flat cpu/memory, command, args, env and the
    ARM fields of `app_sections.CONTAINER_FIELDS`. SynosCD's `shared_env` (`spec.environment`, already read and
    checked at its own path) goes first into each container's env."""
    init = path[-1] == "initContainers"
    items = check.sequence(node, path)
    if node is not None and not items and isinstance(node, list) and not init:
        check.add(path, "must list at least one container")
    containers: list[Container] = []
    names: set[str] = set()
    default_cpu, default_memory = (0.25, 0.5) if synoscd else (0.5, 1.0)
    for i, item in enumerate(items):
        where = path + (i,)
        spec = check.mapping(item, where, ("name", "image", "cpu", "memory", "command", "args", "env",
                                           *app_sections.CONTAINER_FIELDS), ("name", "image"))
        extra = sections.read_container(spec, where, init=init)
        name = check.string(spec.get("name"), where + ("name",))
        image = check.string(spec.get("image"), where + ("image",))
        if image is not None and image_reference.problem(image):
            check.add(where + ("image",), str(image_reference.problem(image)))
            image = None
        cpu = spec.get("cpu", default_cpu)
        if isinstance(cpu, bool) or not isinstance(cpu, (int, float)) or cpu <= 0:
            check.add(where + ("cpu",), f"must be a positive number of vCPU such as 0.5, got {cpu!r}")
            cpu = None
        memory = sizes.parse_memory(spec.get("memory", default_memory))
        if memory is None or memory <= 0:
            check.add(where + ("memory",), f"must be a size such as 1Gi or 512Mi, got {spec.get('memory')!r}")
        if name in names:
            check.add(where + ("name",), f"container name '{name}' is used twice")
        names.add(name or "")
        env = _read_env(spec.get("env"), where + ("env",), check, declared, synoscd)
        if shared_env:
            env = tuple(shared_env) + tuple(e for e in env or () if e.name not in {s.name for s in shared_env})
        if name and image and cpu and memory:
            containers.append(Container(name, image, float(cpu), memory,
                                        check.strings(spec.get("command"), where + ("command",)),
                                        check.strings(spec.get("args"), where + ("args",)), env, extra))
    return tuple(containers)


def _check_size(containers: tuple[Container, ...], init_containers: tuple[Container, ...], check: _Check) -> None:
    """The Consumption profile's CPU/memory pairs, over every container and init container (a Dedicated
    workload profile's sizes are the environment's, checked when the app is planned)."""
    everything = (*containers, *init_containers)
    cpu = sum(c.cpu for c in everything)
    memory = sum(c.memory_gib for c in everything)
    if sizes.is_allowed(cpu, memory):
        return
    pair = f"{sizes.format_cpu(cpu)} vCPU with {sizes.format_memory(memory)}"
    if len(everything) == 1:
        where, who = ("spec", "containers", 0), f"container '{containers[0].name}'"
    else:
        where = ("spec", "initContainers") if init_containers else ("spec", "containers")
        who = "total over containers " + ", ".join(f"'{c.name}'" for c in everything)
    check.add(where, f"{who}: {pair} is not an allowed CPU/memory combination; the app's total must be "
                     f"one of (vCPU/memory, Consumption profile): {sizes.allowed_text()}")


def _read_env(node: Any, path: tuple[Any, ...], check: _Check, declared: frozenset[str],
              synoscd: bool) -> tuple[EnvVar, ...] | None:
    """One env list; each `secretRef` must name a secret of `declared`, and a problem with it is reported where the
    manifest wrote it (`secretRef`, or `valueFrom.secretRef`)."""
    if node is None:
        return None
    env: list[EnvVar] = []
    items = check.sequence(node, path)
    if len(items) > MAX_ENV:
        check.add(path, f"has {len(items)} variables; at most {MAX_ENV} per list (a Driftless limit: ARM sends the "
                        "whole list in every request and Container Apps documents no larger use)")
        return ()
    first: dict[str, int] = {}
    for i, item in enumerate(items):
        where = path + (i,)
        spec = check.mapping(item, where, ("name", "value", "secretRef", "valueFrom"), ("name",))
        name = check.string(spec.get("name"), where + ("name",), ENV_NAME, "letters, digits, '_', '.', '-'")
        if name is not None and first.setdefault(name, i) != i:
            check.add(where + ("name",), f"'{name}' is already set at {format_path(path + (first[name],))}; "
                                         "Container Apps would keep only the last one, so set it once")
        secret_ref, secret_path = spec.get("secretRef"), where + ("secretRef",)
        if isinstance(spec.get("valueFrom"), Mapping):
            secret_ref, secret_path = spec["valueFrom"].get("secretRef"), where + ("valueFrom", "secretRef")
        value = spec.get("value")
        if (value is None) == (secret_ref is None):
            check.add(where, "needs exactly one of 'value' or 'secretRef'")
            continue
        secret_ref = check.string(secret_ref, secret_path)
        if secret_ref is not None and secret_ref not in declared:
            check.add(secret_path, f"secret '{secret_ref}' is not declared in spec.secrets"
                                   + (f" (declared: {', '.join(sorted(declared))})" if declared else "")
                                   + f"; declare it as a Key Vault reference: {key_vault_reference(synoscd, secret_ref)}")
        if name:
            env.append(EnvVar(name, None if value is None else str(value), secret_ref))
    return tuple(env)


def _declared_secrets(node: Any) -> frozenset[str]:
    """The secret names `spec.secrets` declares (SynosCD's map keys or the list's names), valid or not: a reference
    to a declared but invalid secret is that secret's problem, not the reference's."""
    if isinstance(node, Mapping):
        return frozenset(str(name) for name in node)
    if isinstance(node, list):
        return frozenset(item["name"] for item in node if isinstance(item, Mapping) and isinstance(item.get("name"), str))
    return frozenset()


def _read_secrets(node: Any, check: _Check, synoscd: bool) -> tuple[SecretRef, ...] | None:
    path = ("spec", "secrets")
    if node is None:
        return None
    if synoscd and isinstance(node, Mapping):
        return _read_secret_map(node, check)
    secrets: list[SecretRef] = []
    for i, item in enumerate(check.sequence(node, path)):
        where = path + (i,)
        if isinstance(item, Mapping) and "value" in item:
            check.add(where + ("value",), f"secret '{item.get('name')}' has a plaintext value, which is never "
                                          f"allowed in Git; {KEY_VAULT_GUIDANCE}")
            continue
        spec = check.mapping(item, where, ("name", "keyVaultUrl", "identity"), ("name", "keyVaultUrl"))
        name = check.string(spec.get("name"), where + ("name",), SECRET_NAME,
                            "lowercase letters, digits, '-' and '.', starting and ending with a letter or digit")
        url = check.string(spec.get("keyVaultUrl"), where + ("keyVaultUrl",), KEY_VAULT_SECRET_URL,
                           "a Key Vault secret URL like https://<vault>.vault.azure.net/secrets/<name>")
        identity = _identity_ref(spec.get("identity", "system"), where + ("identity",), check)
        if name and url and identity:
            secrets.append(SecretRef(name, url, identity))
    return tuple(secrets)


def _read_secret_map(node: Mapping[Any, Any], check: _Check) -> tuple[SecretRef, ...]:
    """SynosCD's `secrets: {name: value}`: a Key Vault secret URL or secret resource id is a reference, read with the
    app's system-assigned identity; anything else is plaintext and refused, never echoed. Problems are reported at
    the user's key, `spec.secrets.<name>`, with the fix in the same map form."""
    secrets: list[SecretRef] = []
    for name, value in node.items():
        where = ("spec", "secrets", name)
        if not isinstance(name, str) or not SECRET_NAME.fullmatch(name):
            check.add(where, f"secret name {image_reference.shown(str(name))} is not valid: lowercase letters, digits, "
                             "'-' and '.', starting and ending with a letter or digit")
            continue
        url = value if isinstance(value, str) else None
        match = KEY_VAULT_SECRET_ID.fullmatch(url or "")
        if match:
            url = f"https://{match['vault'].lower()}.vault.azure.net/secrets/{match['secret']}"
        if url and KEY_VAULT_SECRET_URL.fullmatch(url):
            secrets.append(SecretRef(name, url, "system"))
        elif isinstance(value, str) and value.strip().lower().startswith(("https://", "/subscriptions/")):
            check.add(where, f"secret '{name}' is not a Key Vault secret reference: use the secret's URL or its "
                             "resource id (/subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.KeyVault/"
                             f"vaults/<vault>/secrets/<name>), e.g. {key_vault_reference(True, name)}")
        else:
            check.add(where, f"secret '{name}' has a plaintext value, which is never allowed in Git; store the value "
                             f"in Key Vault and reference it: {key_vault_reference(True, name)}")
    return tuple(secrets)


def _identity_ref(node: Any, path: tuple[Any, ...], check: _Check) -> str | None:
    value = check.string(node, path)
    if value and value != "system" and not USER_IDENTITY_ID.fullmatch(value):
        check.add(path, f"'{value}' is not valid: use 'system' or a user-assigned identity resource id "
                        "(/subscriptions/.../providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>)")
        return None
    return value


def _read_registries(node: Any, check: _Check, secrets: tuple[SecretRef, ...] | None) -> tuple[Registry, ...] | None:
    path = ("spec", "registries")
    if node is None:
        return None
    registries = []
    for i, item in enumerate(check.sequence(node, path)):
        where = path + (i,)
        spec = check.mapping(item, where, ("server", "identity", "username", "passwordSecretRef"), ("server",))
        server = check.string(spec.get("server"), where + ("server",))
        password = spec.get("passwordSecretRef")
        if password is not None and password not in {s.name for s in secrets or ()}:
            check.add(where + ("passwordSecretRef",), f"secret '{password}' is not declared in spec.secrets")
        if (spec.get("identity") is None) == (password is None):
            check.add(where, "needs exactly one of 'identity' or 'username' + 'passwordSecretRef'")
        identity = _identity_ref(spec.get("identity"), where + ("identity",), check) if spec.get("identity") else None
        if server:
            registries.append(Registry(server, identity, spec.get("username"), password))
    return tuple(registries)


def _read_identity(node: Any, check: _Check) -> Identity | None:
    path = ("spec", "identity")
    if node is None:
        return None
    spec = check.mapping(node, path, ("type", "userAssignedIdentities"), ("type",))
    kind = str(spec.get("type", "")).replace(" ", "")
    if kind not in IDENTITY_TYPES:
        check.add(path + ("type",), f"'{spec.get('type')}' is not valid; allowed: {', '.join(IDENTITY_TYPES)}")
        return None
    ids = check.strings(spec.get("userAssignedIdentities"), path + ("userAssignedIdentities",)) or ()
    for i, rid in enumerate(ids):
        if not USER_IDENTITY_ID.fullmatch(rid):
            check.add(path + ("userAssignedIdentities", i), f"'{rid}' is not a user-assigned identity resource id")
    if ("UserAssigned" in kind) != bool(ids):
        check.add(path + ("userAssignedIdentities",),
                  "is required with type UserAssigned and not allowed otherwise")
    return Identity(kind, tuple(ids))


def _read_ingress(node: Any, check: _Check, synoscd: bool, sections: app_sections.Sections) -> Ingress | None:
    """`enabled` (Driftless's switch), external, targetPort, transport, `allowedOrigins` (short for
    corsPolicy.allowedOrigins) and the rest of ARM's ingress (`app_sections.INGRESS_FIELDS`)."""
    path = ("spec", "ingress")
    if node is None:
        return None
    spec = check.mapping(node, path, ("enabled", "external", "targetPort", "transport", "allowedOrigins",
                                      *app_sections.INGRESS_FIELDS))
    enabled = check.boolean(spec.get("enabled"), path + ("enabled",), not synoscd)
    if spec.get("allowedOrigins") is not None and spec.get("corsPolicy") is not None:
        check.add(path + ("allowedOrigins",), "set corsPolicy.allowedOrigins instead when corsPolicy is given")
    sections.read_ingress(spec, enabled=enabled, transport=str(spec.get("transport", "auto")).lower())
    if not enabled:
        return Ingress(enabled=False)
    port = check.integer(spec.get("targetPort", 80 if synoscd else None), path + ("targetPort",), 1, 65535)
    if port is None and spec.get("targetPort") is None and not synoscd:
        check.add(path + ("targetPort",), "is required when ingress is enabled")
    transport = str(spec.get("transport", "auto")).lower()
    if transport not in TRANSPORTS:
        check.add(path + ("transport",), f"'{spec.get('transport')}' is not valid; allowed: {', '.join(TRANSPORTS)}")
    return Ingress(True, check.boolean(spec.get("external"), path + ("external",), synoscd), port, transport,
                   check.strings(spec.get("allowedOrigins"), path + ("allowedOrigins",)))


def _read_scale(node: Any, check: _Check, sections: app_sections.Sections) -> Scale | None:
    path = ("spec", "scale")
    if node is None:
        return None
    spec = check.mapping(node, path, ("minReplicas", "maxReplicas", *app_sections.SCALE_FIELDS))
    sections.read_scale(spec)
    low = check.integer(spec.get("minReplicas", 0), path + ("minReplicas",), 0, 1000)
    high = check.integer(spec.get("maxReplicas", 10), path + ("maxReplicas",), 1, 1000)
    if low is not None and high is not None and low > high:
        check.add(path, f"minReplicas ({low}) is greater than maxReplicas ({high})")
    return Scale(low or 0, high or 10)


def load_targets(files: Mapping[str, bytes], *, default_subscription: str | None = None) -> tuple[list[Target], list[Problem]]:
    """Parse and validate every `kind: Target` in `files`; `subscriptionId` defaults to the setting."""
    targets: list[Target] = []
    problems: list[Problem] = []
    for file in sorted(files):
        documents, syntax = parse_documents(file, files[file])
        problems += syntax
        refused = refused_documents(syntax)
        pending: list[tuple[int, tuple[Any, ...], str]] = []
        for index, document in enumerate(documents, start=1):
            if document is None:
                continue
            check = _Check(file, index)
            target = _read_target(document, check, default_subscription)
            pending += [(index, path, message) for path, message in check.problems]
            if target and not check.problems and index not in refused:
                targets.append(target)
        if pending:
            problems += locate(files[file], pending, file, {})
    seen: dict[str, Target] = {}
    for target in targets:
        if target.name in seen:
            problems.append(Problem(target.file or "", f"duplicate Target name '{target.name}' "
                                    f"(also in {seen[target.name].file})", "metadata.name"))
        seen.setdefault(target.name, target)
    return list(seen.values()), problems


TARGET_TYPES = ("aca", "aks")
FLUX_KINDS = ("GitRepository", "Kustomization")
DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_TARGET_FIELDS = {
    "aca": (("type", "path", "subscriptionId", "resourceGroup", "environment", "prune", "protectedApps", "allowEmpty"),
            ("type", "path", "resourceGroup", "environment")),
    "aks": (("type", "path", "subscriptionId", "resourceGroup", "cluster", "namespace", "prune", "protected",
             "allowEmpty", "force", "fluxAssist"),
            ("type", "path", "resourceGroup", "cluster")),
}


def _read_target(doc: Any, check: _Check, default_subscription: str | None) -> Target | None:
    if not isinstance(doc, Mapping) or doc.get("kind") != "Target" or doc.get("apiVersion") != API_VERSION:
        check.add((), f"expected apiVersion {API_VERSION} with kind Target")
        return None
    check.mapping(doc, (), ("apiVersion", "kind", "metadata", "spec"), ("metadata", "spec"))
    meta = check.mapping(doc.get("metadata"), ("metadata",), ("name", "labels", "annotations"), ("name",))
    name = check.string(meta.get("name"), ("metadata", "name"), DNS_LABEL,
                        "lowercase letters, digits and '-', up to 63 characters")
    kind = doc.get("spec", {}).get("type") if isinstance(doc.get("spec"), Mapping) else None
    if kind not in (None, *TARGET_TYPES):
        check.add(("spec", "type"), f"'{kind}' is not supported; allowed: {', '.join(TARGET_TYPES)}")
    kind = kind if kind in TARGET_TYPES else "aca"
    foreign = sorted(set(doc["spec"]) - set(_TARGET_FIELDS["aks"][0])) if kind == "aks" else []
    if set(foreign) & set(_TARGET_FIELDS["aca"][0]):
        check.add(("spec", "type"), f"an aks Target does not take {', '.join(foreign)} (fields of aca Targets); it "
                                    f"names a cluster: {', '.join(_TARGET_FIELDS['aks'][0])}")
        return None
    spec = check.mapping(doc.get("spec"), ("spec",), *_TARGET_FIELDS[kind])
    subscription = spec.get("subscriptionId", default_subscription)
    if subscription is None:
        check.add(("spec", "subscriptionId"), "is required (or set AZURE_SUBSCRIPTION_ID)")
    else:
        check.string(subscription, ("spec", "subscriptionId"), GUID, "a subscription GUID")
    path = check.string(spec.get("path"), ("spec", "path"))
    group = check.string(spec.get("resourceGroup"), ("spec", "resourceGroup"))
    common = dict(prune=check.boolean(spec.get("prune"), ("spec", "prune"), False),
                  allow_empty=check.boolean(spec.get("allowEmpty"), ("spec", "allowEmpty"), False), file=check.file)
    if kind == "aks":
        cluster = check.string(spec.get("cluster"), ("spec", "cluster"))
        namespace = check.string(spec.get("namespace", "default"), ("spec", "namespace"), DNS_LABEL,
                                 "a namespace name: lowercase letters, digits and '-', up to 63 characters")
        protected = check.strings(spec.get("protected"), ("spec", "protected")) or ()
        for i, key in enumerate(protected):
            if not 2 <= len(key.split("/")) <= 3 or not all(key.split("/")):
                check.add(("spec", "protected", i), f"'{key}' is not valid: use Kind/namespace/name or Kind/name")
        flux = _read_flux_assist(spec.get("fluxAssist"), check)
        if not (name and path and group and cluster and namespace and subscription):
            return None
        return Target(name=name, path=path.strip("/"), subscription_id=subscription, resource_group=group,
                      type="aks", cluster=cluster, namespace=namespace, protected_apps=frozenset(protected),
                      force=check.boolean(spec.get("force"), ("spec", "force"), False), flux_assist=flux, **common)
    environment = check.string(spec.get("environment"), ("spec", "environment"))
    if not (name and path and group and environment and subscription):
        return None
    return Target(
        name=name, path=path.strip("/"), subscription_id=subscription, resource_group=group,
        environment=environment,
        protected_apps=frozenset(check.strings(spec.get("protectedApps"), ("spec", "protectedApps")) or ()),
        **common,
    )


def _read_flux_assist(node: Any, check: _Check) -> tuple[FluxRef, ...]:
    refs = []
    for i, item in enumerate(check.sequence(node, ("spec", "fluxAssist"))):
        where = ("spec", "fluxAssist", i)
        spec = check.mapping(item, where, ("kind", "namespace", "name"), ("kind", "name"))
        kind = spec.get("kind")
        if kind is not None and kind not in FLUX_KINDS:
            check.add(where + ("kind",), f"'{kind}' is not valid; allowed: {', '.join(FLUX_KINDS)}")
        namespace = check.string(spec.get("namespace", "flux-system"), where + ("namespace",))
        name = check.string(spec.get("name"), where + ("name",))
        if kind in FLUX_KINDS and namespace and name:
            refs.append(FluxRef(kind, namespace, name))
    return tuple(refs)


def names_in_problems(problems: Iterable[Problem]) -> set[str]:
    """App names that failed validation (where the name could be read)."""
    return {p.app for p in problems if p.app}


APP_READERS: Mapping[str, Reader] = {"App": _read_app}
"""The App reader alone (what `load_apps` uses)."""
