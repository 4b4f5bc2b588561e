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
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import yaml

from shared.core import image_policy, sizes

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
GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
TRANSPORTS = ("auto", "http", "http2", "tcp")
IDENTITY_TYPES = ("None", "SystemAssigned", "UserAssigned", "SystemAssigned,UserAssigned")
KEY_VAULT_GUIDANCE = (
    "store the value in Key Vault and reference it: "
    "{name: <secret>, keyVaultUrl: https://<vault>.vault.azure.net/secrets/<name>, identity: system}"
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one manifest. `document` and `line` are 1-based."""

    file: str
    message: str
    field: str = ""
    document: int | None = None
    line: int | None = None
    app: str | None = None

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line else "")
        if self.document:
            where += f" (document {self.document})"
        return f"{where} {self.field + ': ' if self.field else ''}{self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "document": self.document, "line": self.line,
                "field": self.field, "message": self.message, "app": self.app}


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
    suspend: bool = False
    managed: bool = True
    api_version: str = API_VERSION
    annotations: Mapping[str, str] | None = field(default=None, hash=False)


@dataclass(frozen=True)
class FluxRef:
    """A Flux object to nudge after a pass (`fluxAssist`): GitRepository or Kustomization."""

    kind: str
    namespace: str
    name: str


@dataclass(frozen=True)
class Target:
    """Where one Git path goes: one Container Apps environment (`aca`) or one AKS cluster (`aks`).

    For `aks`, `protected_apps` holds the `protected` object keys ("Kind/namespace/name" or "Kind/name")."""

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
        if pattern and not pattern.match(node):
            self.add(path, f"'{node}' is not valid: {rule}")
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
    """Every YAML document of one file; a syntax error is one Problem with its line, and ends the file."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [], [Problem(file, f"is not UTF-8 text ({exc.reason} at byte {exc.start})")]
    documents: list[Any] = []
    try:
        for document in yaml.load_all(text, Loader=_Loader):
            documents.append(document)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        reason = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        message = f"YAML syntax error: {reason}" + (f" ({context})" if context else "")
        return documents, [Problem(file, message, document=len(documents) + 1,
                                   line=mark.line + 1 if mark else None)]
    return documents, []


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


class FileCache:
    """Per-file parse results keyed by file name and content hash, so a commit that changes one file
    parses one file. Least recently used entries go past `size`; `misses` counts files parsed."""

    def __init__(self, size: int = 10_000):
        self.size, self.misses = size, 0
        self._entries: OrderedDict[tuple[str, bytes], tuple[tuple[App, ...], tuple[Problem, ...]]] = OrderedDict()
        self._lock = threading.Lock()

    def apps(self, file: str, data: bytes) -> tuple[tuple[App, ...], tuple[Problem, ...]]:
        """The Apps and problems of one file (parsed now unless this name and content were seen)."""
        key = (file, hashlib.sha1(data).digest())
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            self.misses += 1
        parsed = load_app_file(file, data)
        with self._lock:
            self._entries[key] = parsed
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return parsed


def load_apps(files: Mapping[str, bytes], cache: FileCache | None = None) -> tuple[list[App], list[Problem]]:
    """Parse and validate every App in `files` (each file through `cache` when given); duplicate names
    invalidate both copies."""
    apps: list[App] = []
    problems: list[Problem] = []
    for file in sorted(files):
        file_apps, file_problems = cache.apps(file, files[file]) if cache else load_app_file(file, files[file])
        apps += file_apps
        problems += file_problems
    return _drop_duplicates(apps, problems)


def load_app_file(file: str, data: bytes) -> tuple[tuple[App, ...], tuple[Problem, ...]]:
    """The valid Apps of one file and its problems (YAML, schema), each located by file, document and line."""
    documents, syntax = parse_documents(file, data)
    apps: list[App] = []
    problems: list[Problem] = list(syntax)
    pending: list[tuple[int, tuple[Any, ...], str]] = []
    app_of: dict[int, str] = {}
    for index, document in enumerate(documents, start=1):
        if document is None:
            continue
        check = _Check(file, index)
        app = _read_app(document, check)
        name = document.get("metadata", {}).get("name") if isinstance(document, dict) and isinstance(document.get("metadata"), dict) else None
        if isinstance(name, str):
            app_of[index] = name
        pending += [(index, path, message) for path, message in check.problems]
        if app is not None and not check.problems:
            apps.append(app)
    if pending:
        problems += locate(data, pending, file, app_of)
    return tuple(apps), tuple(problems)


def _drop_duplicates(apps: list[App], problems: list[Problem]) -> tuple[list[App], list[Problem]]:
    by_name: dict[str, list[App]] = {}
    for app in apps:
        by_name.setdefault(app.name, []).append(app)
    unique = []
    for name, same in by_name.items():
        if len(same) == 1:
            unique.append(same[0])
            continue
        places = ", ".join(f"{a.file} (document {a.document})" for a in same)
        problems += [Problem(a.file, f"duplicate app name '{name}': defined in {places}",
                             "metadata.name", a.document, None, name) for a in same]
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
    spec_fields = ["containers", "secrets", "registries", "identity", "ingress", "scale", "suspend"]
    if synoscd:
        spec_fields.append("environment")
    spec = check.mapping(doc.get("spec"), ("spec",), spec_fields, ("containers",))
    secrets = _read_secrets(spec.get("secrets"), check, synoscd)
    shared_env = _read_env(spec.get("environment"), ("spec", "environment"), check) if synoscd else None
    containers = _read_containers(spec.get("containers"), check, synoscd, shared_env)
    _check_secret_refs(containers, secrets, check)
    registries = _read_registries(spec.get("registries"), check, secrets)
    app = App(
        name=name or "",
        containers=containers,
        file=check.file,
        document=check.document,
        secrets=secrets,
        registries=registries,
        identity=_read_identity(spec.get("identity"), check),
        ingress=_read_ingress(spec.get("ingress"), check, synoscd),
        scale=_read_scale(spec.get("scale"), check),
        suspend=check.boolean(spec.get("suspend"), ("spec", "suspend"), False),
        managed=(not synoscd) or (isinstance(labels, Mapping) and str(labels.get(SYNOSCD_MANAGED_LABEL)).lower() == "true"),
        api_version=api_version,
        annotations=dict(annotations) if isinstance(annotations, Mapping) else None,
    )
    return app if name else None


def _read_containers(node: Any, check: _Check, synoscd: bool, shared_env: tuple[EnvVar, ...] | None) -> tuple[Container, ...]:
    path = ("spec", "containers")
    items = check.sequence(node, path)
    if node is not None and not items and isinstance(node, list):
        check.add(path, "must list at least one container")
    containers: list[Container] = []
    names: set[str] = set()
    default_cpu, default_memory = (0.25, 0.5) if synoscd else (0.5, 1.0)
    for i, item in enumerate(items):
        where = path + (i,)
        spec = check.mapping(item, where, ("name", "image", "cpu", "memory", "command", "args", "env"), ("name", "image"))
        name = check.string(spec.get("name"), where + ("name",))
        image = check.string(spec.get("image"), where + ("image",))
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
        env = _read_env(spec.get("env"), where + ("env",), check)
        if shared_env:
            env = tuple(shared_env) + tuple(e for e in env or () if e.name not in {s.name for s in shared_env})
        if name and image and cpu and memory:
            containers.append(Container(name, image, float(cpu), memory,
                                        check.strings(spec.get("command"), where + ("command",)),
                                        check.strings(spec.get("args"), where + ("args",)), env))
    if containers and len(containers) == len(items):
        _check_size(containers, check)
    return tuple(containers)


def _check_size(containers: list[Container], check: _Check) -> None:
    cpu = sum(c.cpu for c in containers)
    memory = sum(c.memory_gib for c in containers)
    if sizes.is_allowed(cpu, memory):
        return
    pair = f"{sizes.format_cpu(cpu)} vCPU with {sizes.format_memory(memory)}"
    if len(containers) == 1:
        where, who = ("spec", "containers", 0), f"container '{containers[0].name}'"
    else:
        where, who = ("spec", "containers"), "total over containers " + ", ".join(f"'{c.name}'" for c in containers)
    check.add(where, f"{who}: {pair} is not an allowed CPU/memory combination; the app's total must be "
                     f"one of (vCPU/memory, Consumption profile): {sizes.allowed_text()}")


def _read_env(node: Any, path: tuple[Any, ...], check: _Check) -> tuple[EnvVar, ...] | None:
    if node is None:
        return None
    env: list[EnvVar] = []
    for i, item in enumerate(check.sequence(node, path)):
        where = path + (i,)
        spec = check.mapping(item, where, ("name", "value", "secretRef", "valueFrom"), ("name",))
        name = check.string(spec.get("name"), where + ("name",), ENV_NAME, "letters, digits, '_', '.', '-'")
        secret_ref = spec.get("secretRef")
        if isinstance(spec.get("valueFrom"), Mapping):
            secret_ref = spec["valueFrom"].get("secretRef")
        value = spec.get("value")
        if (value is None) == (secret_ref is None):
            check.add(where, "needs exactly one of 'value' or 'secretRef'")
            continue
        if name:
            env.append(EnvVar(name, None if value is None else str(value),
                              check.string(secret_ref, where + ("secretRef",))))
    return tuple(env)


def _read_secrets(node: Any, check: _Check, synoscd: bool) -> tuple[SecretRef, ...] | None:
    path = ("spec", "secrets")
    if node is None:
        return None
    if synoscd and isinstance(node, Mapping):
        node = [_synoscd_secret(name, value) for name, value in node.items()]
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


def _synoscd_secret(name: Any, value: Any) -> dict[str, Any]:
    """SynosCD's `secrets: {name: value}`: a Key Vault URL or secret resource id is a reference; anything else is plaintext."""
    if isinstance(value, str):
        match = KEY_VAULT_SECRET_ID.match(value)
        if match:
            value = f"https://{match['vault'].lower()}.vault.azure.net/secrets/{match['secret']}"
        if KEY_VAULT_SECRET_URL.match(value):
            return {"name": name, "keyVaultUrl": value, "identity": "system"}
    return {"name": name, "value": "(hidden)"}


def _identity_ref(node: Any, path: tuple[Any, ...], check: _Check) -> str | None:
    value = check.string(node, path)
    if value and value != "system" and not USER_IDENTITY_ID.match(value):
        check.add(path, f"'{value}' is not valid: use 'system' or a user-assigned identity resource id "
                        "(/subscriptions/.../providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>)")
        return None
    return value


def _check_secret_refs(containers: tuple[Container, ...], secrets: tuple[SecretRef, ...] | None, check: _Check) -> None:
    known = {s.name for s in secrets or ()}
    for i, container in enumerate(containers):
        for j, env in enumerate(container.env or ()):
            if env.secret_ref and env.secret_ref not in known:
                check.add(("spec", "containers", i, "env", j, "secretRef"),
                          f"secret '{env.secret_ref}' is not declared in spec.secrets"
                          + (f" (declared: {', '.join(sorted(known))})" if known else ""))


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
        if not USER_IDENTITY_ID.match(rid):
            check.add(path + ("userAssignedIdentities", i), f"'{rid}' is not a user-assigned identity resource id")
    if ("UserAssigned" in kind) != bool(ids):
        check.add(path + ("userAssignedIdentities",),
                  "is required with type UserAssigned and not allowed otherwise")
    return Identity(kind, tuple(ids))


def _read_ingress(node: Any, check: _Check, synoscd: bool) -> Ingress | None:
    path = ("spec", "ingress")
    if node is None:
        return None
    spec = check.mapping(node, path, ("enabled", "external", "targetPort", "transport", "allowedOrigins"))
    enabled = check.boolean(spec.get("enabled"), path + ("enabled",), not synoscd)
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


def _read_scale(node: Any, check: _Check) -> Scale | None:
    path = ("spec", "scale")
    if node is None:
        return None
    spec = check.mapping(node, path, ("minReplicas", "maxReplicas"))
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
        pending: list[tuple[int, tuple[Any, ...], str]] = []
        for index, document in enumerate(documents, start=1):
            if document is None:
                continue
            check = _Check(file, index)
            target = _read_target(document, check, default_subscription)
            pending += [(index, path, message) for path, message in check.problems]
            if target and not check.problems:
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
