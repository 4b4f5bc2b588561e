"""SynosCD's `Project` kind, for both apiVersions: one folder's App defaults and policy. No I/O.

    apiVersion: synoscd.io/v1alpha1        # or driftless.io/v1alpha1
    kind: Project
    metadata: {name: backend-services}
    spec:
      apps: [my-api-service, worker-job]   # none listed: every App of the Project's folder
      defaults: {scale: {minReplicas: 1, maxReplicas: 5}}
      policy: {allowedRegistries: [myacr.azurecr.io], maxCpu: 4.0, maxMemory: 4Gi}

A Project covers Apps of its own folder, the folder of its file and not its subfolders (SynosCD reads
one folder): the Apps `spec.apps` names, or every App of the folder when it names none.

`spec.defaults` holds App `spec` fields, merged under each covered App *before* the App is validated,
so a merged value is checked like any other: mappings merge key by key, at every depth; anything else
(a list, a string, a number) is the App's when the App sets it (null counts as not set), else the
Project's; a list is never merged item by item. A problem in a value the App took from the Project is
reported in the Project's file, at the line of that default.

`spec.policy` holds rules every covered App must keep, checked at validation, before any write; a
broken rule is a problem of the App (file, line, field, the rule and the Project), so that App is not
applied, and, like any invalid manifest, not deleted. See POLICY_FIELDS.

An App is claimed by at most one Project; an App claimed by two, by an invalid Project, or in a folder
where a file that may hold a Project cannot be read, is not applied. `spec.apps` naming an App that
is not in the folder is a problem of the Project.
"""
from __future__ import annotations

import copy
import hashlib
import posixpath
import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping

import yaml

from shared.core import app_sections, image_reference, sizes
from shared.core.manifests import (
    API_VERSION,
    APP_NAME,
    DNS_LABEL,
    SYNOSCD_API_VERSION,
    App,
    Problem,
    _Check,
    _Loader,
    format_path,
    locate,
    refused_documents,
)

KIND = "Project"
Path = tuple[Any, ...]
POLICY_FIELDS = ("allowedRegistries", "maxCpu", "maxMemory", "requiredProbes", "maxReplicas", "externalIngress",
                 "allowedWorkloadProfiles")
"""The rules of `spec.policy`:
- allowedRegistries: registry hosts (host[:port]) every container's and init container's image must come from
  (`nginx` is docker.io);
- maxCpu, maxMemory: the most vCPU and memory any one container or init container may ask for (SynosCD's cpu and
  memory are per container);
- requiredProbes: the probe types (Liveness, Readiness, Startup) the App's main container, its first, must declare;
- maxReplicas: the most spec.scale.maxReplicas may be (not set counts as Container Apps' default, 10);
- externalIngress: false allows internal ingress only;
- allowedWorkloadProfiles: the workload profiles an App may name (none named counts as Consumption)."""
PROBE_TYPES = ("Liveness", "Readiness", "Startup")
ACA_DEFAULT_MAX_REPLICAS = 10
"""What Container Apps uses when an app does not set maxReplicas."""
DOCKER_HUB = "docker.io"
_HUB_ALIASES = ("docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com")
_REGISTRY_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?$")
_MAY_HOLD_A_PROJECT = re.compile(rb"""\bkind["']?\s*:\s*["']?Project\b""")


@dataclass(frozen=True)
class Policy:
    """The rules of `spec.policy`; None (or empty) is a rule the Project does not set."""

    allowed_registries: tuple[str, ...] | None = None
    max_cpu: float | None = None
    max_memory_gib: float | None = None
    required_probes: tuple[str, ...] = ()
    max_replicas: int | None = None
    external_ingress: bool | None = None
    allowed_workload_profiles: tuple[str, ...] | None = None


@dataclass(frozen=True, eq=False)
class Project:
    """One Project document. `apps` None covers every App of `folder`; `valid` is False when the document has
    problems (its Apps are then not applied). `lines` maps paths in the document to lines; `digest` changes with
    the Project's file, so cached App results that used this Project are re-read when it changes."""

    name: str
    file: str
    document: int
    apps: tuple[str, ...] | None
    defaults: Mapping[str, Any]
    policy: Policy
    valid: bool = True
    lines: Mapping[Path, int] = field(default_factory=dict)
    digest: str = ""

    @property
    def key(self) -> str:
        return f"{KIND}/{self.name}"

    @property
    def folder(self) -> str:
        return posixpath.dirname(self.file)

    def line(self, path: Path) -> int | None:
        """The line of `path` in the Project's document, or of the nearest enclosing node written there."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None

    def rule(self, name: str) -> str:
        """`Project 'x' policy <name> (file:line)`: how a problem names the rule it broke."""
        return f"Project '{self.name}' policy {name} ({self.file}:{self.line(('spec', 'policy', name))})"

    # --- one App ----------------------------------------------------------------------------
    def read_app(self, reader: Callable[[Any, _Check], Any], document: Mapping[str, Any], check: _Check,
                 ) -> tuple[Any, list[Problem]]:
        """Read App `document` with this Project's defaults merged under its spec and its policy checked. Problems of
        values the App took from the defaults are returned, located in the Project's file; the rest stay in
        `check`, at the App's own paths."""
        spec = document.get("spec")
        merged = dict(document)
        if spec is None or isinstance(spec, Mapping):
            merged["spec"] = merge(self.defaults, spec or {})
        app = reader(merged, check)
        if app is not None and isinstance(merged.get("spec"), Mapping):
            for path, message in self.violations(app, merged["spec"]):
                check.add(path, message)
        name = str((document.get("metadata") or {}).get("name"))
        moved, kept = [], []
        for path, message in check.problems:
            from_project = len(path) > 1 and path[0] == "spec" and _has(self.defaults, path[1:])
            where = ("spec", "defaults", *path[1:])
            if from_project and not _has(document, path):
                moved.append(Problem(self.file, f"{message} (a default of Project '{self.name}', merged into App "
                                                f"'{name}' of {check.file})",
                                     format_path(where), self.document, self.line(where), name))
            elif from_project:
                kept.append((path, f"{message} (merged with the defaults of Project '{self.name}', "
                                   f"{self.file}:{self.line(where)})"))
            else:
                kept.append((path, message))
        check.problems[:] = kept
        return app, moved

    def violations(self, app: App, spec: Mapping[str, Any]) -> list[tuple[Path, str]]:
        """Where `app` (read from the merged `spec`) breaks this Project's policy, as (path in the App, message)."""
        found: list[tuple[Path, str]] = []
        policy = self.policy
        groups = (("containers", app.containers), ("initContainers", app.init_containers or ()))
        for group, parsed in groups:
            items = spec.get(group) if isinstance(spec.get(group), list) else []
            by_name = {c.name: c for c in parsed}
            for i, item in enumerate(items):
                if not isinstance(item, Mapping):
                    continue
                where = ("spec", group, i)
                image = item.get("image")
                if policy.allowed_registries is not None and isinstance(image, str) \
                        and not image_reference.problem(image):
                    host = registry_of(image)
                    if host not in policy.allowed_registries:
                        found.append((where + ("image",), f"registry '{host}' is not allowed: "
                                                          f"{self.rule('allowedRegistries')} allows "
                                                          f"{', '.join(policy.allowed_registries) or 'none'}"))
                container = by_name.get(item.get("name"))
                if container is None:
                    continue
                if policy.max_cpu is not None and container.cpu > policy.max_cpu + 1e-9:
                    found.append((where + ("cpu",), f"container '{container.name}' asks for "
                                                    f"{sizes.format_cpu(container.cpu)} vCPU; {self.rule('maxCpu')} "
                                                    f"allows at most {sizes.format_cpu(policy.max_cpu)} vCPU per "
                                                    "container"))
                if policy.max_memory_gib is not None and container.memory_gib > policy.max_memory_gib + 1e-9:
                    found.append((where + ("memory",), f"container '{container.name}' asks for "
                                                       f"{sizes.format_memory(container.memory_gib)}; "
                                                       f"{self.rule('maxMemory')} allows at most "
                                                       f"{sizes.format_memory(policy.max_memory_gib)} per container"))
        found += self._main_container_probes(app, spec)
        found += self._replicas(app)
        if policy.external_ingress is False and app.ingress is not None and app.ingress.enabled \
                and app.ingress.external:
            found.append((("spec", "ingress", "external"), f"ingress is external; {self.rule('externalIngress')} is "
                                                            "false, so only internal ingress is allowed: set "
                                                            "spec.ingress.external: false"))
        if policy.allowed_workload_profiles is not None:
            profile = app.sections.get(app_sections.SPEC_FIELDS["workloadProfileName"])
            shown = profile or "Consumption"
            if shown.lower() not in {p.lower() for p in policy.allowed_workload_profiles}:
                found.append((("spec", "workloadProfileName"),
                               f"workload profile '{shown}'{'' if profile else ' (no workloadProfileName set)'} is "
                               f"not allowed: {self.rule('allowedWorkloadProfiles')} allows "
                               f"{', '.join(policy.allowed_workload_profiles) or 'none'}"))
        return found

    def _main_container_probes(self, app: App, spec: Mapping[str, Any]) -> list[tuple[Path, str]]:
        required = self.policy.required_probes
        items = spec.get("containers")
        if not required or not isinstance(items, list) or not items or not isinstance(items[0], Mapping):
            return []
        main = next((c for c in app.containers if c.name == items[0].get("name")), None)
        if main is None:
            return []
        declared = {str(p.get("type", "")).lower() for p in main.extra.get("probes") or () if isinstance(p, Mapping)}
        missing = [t for t in required if t.lower() not in declared]
        if not missing:
            return []
        where = ("spec", "containers", 0, "probes")
        return [(where, f"the main container '{main.name}' declares no {', '.join(missing)} probe; "
                        f"{self.rule('requiredProbes')} requires {', '.join(required)}")]

    def _replicas(self, app: App) -> list[tuple[Path, str]]:
        limit = self.policy.max_replicas
        if limit is None:
            return []
        where = ("spec", "scale", "maxReplicas")
        if app.scale is None:
            if ACA_DEFAULT_MAX_REPLICAS <= limit:
                return []
            return [(where, f"is not set, so Container Apps uses its default of {ACA_DEFAULT_MAX_REPLICAS}; "
                            f"{self.rule('maxReplicas')} allows at most {limit}: set spec.scale.maxReplicas")]
        if app.scale.max_replicas > limit:
            return [(where, f"{app.scale.max_replicas} is more than {self.rule('maxReplicas')} allows: at most "
                            f"{limit}")]
        return []


def merge(defaults: Mapping[str, Any], spec: Mapping[str, Any]) -> dict[str, Any]:
    """`spec` over `defaults`: mappings merge key by key at every depth; any other value of `spec` (a list
    included) replaces the default whole; null in `spec` counts as not set. Neither input is changed."""
    result = {key: copy.deepcopy(value) for key, value in defaults.items()}
    for key, value in spec.items():
        if value is None and key in result:
            continue
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = merge(result[key], value)
        else:
            result[key] = value
    return result


def _has(node: Any, path: Path) -> bool:
    """Whether `node` sets a (non-null) value at `path`."""
    for key in path:
        if isinstance(node, Mapping) and node.get(key) is not None:
            node = node[key]
        elif isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
            node = node[key]
        else:
            return False
    return True


def registry_of(image: str) -> str:
    """The registry host of an image reference, as Docker reads it: the first component when it has a '.' or ':'
    or is 'localhost', else Docker Hub (`docker.io`, whatever alias is written); lowercase."""
    first, slash, _ = image.partition("/")
    host = first.lower() if slash and ("." in first or ":" in first or first == "localhost") else DOCKER_HUB
    return DOCKER_HUB if host in _HUB_ALIASES else host


# --- reading a Project ------------------------------------------------------------------------
def read_project(doc: Any, check: _Check) -> Project | None:
    """Read and validate one Project document; problems go to `check`. Returns the Project whenever its name can be
    read (check.problems then says whether it is valid), else None."""
    if not isinstance(doc, Mapping):
        check.add((), "a manifest must be a mapping")
        return None
    api_version = doc.get("apiVersion")
    if doc.get("kind") != KIND or api_version not in (API_VERSION, SYNOSCD_API_VERSION):
        check.add(("apiVersion",), f"unsupported apiVersion '{api_version}' for kind {KIND}; allowed: {API_VERSION} "
                                   f"or {SYNOSCD_API_VERSION}")
        return None
    check.mapping(doc, (), ("apiVersion", "kind", "metadata", "spec", "status"), ("metadata", "spec"))
    meta = check.mapping(doc.get("metadata"), ("metadata",), ("name", "namespace", "labels", "annotations"), ("name",))
    name = check.string(meta.get("name"), ("metadata", "name"), DNS_LABEL,
                        "lowercase letters, digits and '-', up to 63 characters")
    spec = check.mapping(doc.get("spec"), ("spec",), ("apps", "defaults", "policy"))
    apps = _read_apps(spec.get("apps"), check)
    defaults = spec.get("defaults")
    if defaults is not None and not isinstance(defaults, Mapping):
        check.add(("spec", "defaults"), "must be a mapping of App spec fields (e.g. scale: {maxReplicas: 5})")
    policy = _read_policy(spec.get("policy"), check)
    if name is None:
        return None
    return Project(name, check.file, check.document, apps, dict(defaults) if isinstance(defaults, Mapping) else {},
                   policy)


def _read_apps(node: Any, check: _Check) -> tuple[str, ...] | None:
    """`spec.apps`: App names, each once; None (every App of the folder) when it names none or cannot be read."""
    path = ("spec", "apps")
    if node is not None and not isinstance(node, list):
        check.add(path, "must be a list of App names")
        return None
    names: list[str] = []
    for i, item in enumerate(node or ()):
        name = check.string(item, path + (i,), APP_NAME, "an App name: lowercase letters, digits and '-'")
        if name in names:
            check.add(path + (i,), f"'{name}' is listed twice")
        elif name:
            names.append(name)
    return tuple(names) or None


def _read_policy(node: Any, check: _Check) -> Policy:
    path = ("spec", "policy")
    spec = check.mapping(node, path, POLICY_FIELDS)
    registries = check.strings(spec.get("allowedRegistries"), path + ("allowedRegistries",))
    for i, host in enumerate(registries or ()):
        if not _REGISTRY_HOST.fullmatch(host):
            check.add(path + ("allowedRegistries", i), f"{image_reference.shown(host)} is not a registry host: write "
                                                       "host[:port] only, e.g. myacr.azurecr.io (no scheme, no path)")
    max_cpu = spec.get("maxCpu")
    if max_cpu is not None and (isinstance(max_cpu, bool) or not isinstance(max_cpu, (int, float)) or max_cpu <= 0):
        check.add(path + ("maxCpu",), f"must be a positive number of vCPU such as 2.0, got {max_cpu!r}")
        max_cpu = None
    max_memory = sizes.parse_memory(spec.get("maxMemory")) if spec.get("maxMemory") is not None else None
    if spec.get("maxMemory") is not None and not max_memory:
        check.add(path + ("maxMemory",), f"must be a size such as 4Gi or 512Mi, got {spec.get('maxMemory')!r}")
    probes = check.strings(spec.get("requiredProbes"), path + ("requiredProbes",)) or ()
    canonical = []
    for i, kind in enumerate(probes):
        known = next((t for t in PROBE_TYPES if t.lower() == kind.lower()), None)
        if known is None:
            check.add(path + ("requiredProbes", i), f"'{kind}' is not a probe type; allowed: {', '.join(PROBE_TYPES)}")
        elif known not in canonical:
            canonical.append(known)
    external = spec.get("externalIngress")
    profiles = check.strings(spec.get("allowedWorkloadProfiles"), path + ("allowedWorkloadProfiles",))
    for i, profile in enumerate(profiles or ()):
        if not profile.strip():
            check.add(path + ("allowedWorkloadProfiles", i), "must name a workload profile")
    return Policy(
        allowed_registries=None if registries is None else tuple(_registry_host(h) for h in registries),
        max_cpu=None if max_cpu is None else float(max_cpu),
        max_memory_gib=max_memory or None,
        required_probes=tuple(canonical),
        max_replicas=check.integer(spec.get("maxReplicas"), path + ("maxReplicas",), 1, 1000),
        external_ingress=None if external is None else check.boolean(external, path + ("externalIngress",), True),
        allowed_workload_profiles=profiles,
    )


def _registry_host(host: str) -> str:
    host = host.lower()
    return DOCKER_HUB if host in _HUB_ALIASES else host


# --- the pass over a Target's files -------------------------------------------------------------
@dataclass(frozen=True)
class Scan:
    """What the Project pass needs of one file (cached with the file's content): its Projects, valid or not, the
    Apps it holds as (name, document), the problems of its Projects, and, when part of the file cannot be read
    and that part may hold a Project, the problem saying so."""

    projects: tuple[Project, ...] = ()
    apps: tuple[tuple[str, int], ...] = ()
    problems: tuple[Problem, ...] = ()
    unreadable: Problem | None = None


def scan_file(file: str, data: bytes, documents: list[Any], syntax: list[Problem]) -> Scan:
    """The Scan of one parsed file (`documents` and `syntax` as `manifests.parse_documents` returns them)."""
    refused = refused_documents(syntax)
    projects: list[Project] = []
    apps: list[tuple[str, int]] = []
    pending: list[tuple[int, Path, str]] = []
    keys: dict[int, str] = {}
    for index, document in enumerate(documents, start=1):
        if not isinstance(document, Mapping):
            continue
        meta = document.get("metadata")
        name = meta.get("name") if isinstance(meta, Mapping) else None
        if document.get("kind") == "App" and isinstance(name, str):
            apps.append((name, index))
        if document.get("kind") != KIND:
            continue
        check = _Check(file, index)
        project = read_project(document, check)
        pending += [(index, path, message) for path, message in check.problems]
        if isinstance(name, str):
            keys[index] = f"{KIND}/{name}"
        if project is not None:
            digest = hashlib.sha1(f"{file}\0{index}\0".encode() + hashlib.sha1(data).digest()).hexdigest()
            projects.append(replace(project, valid=not check.problems and index not in refused,
                                    lines=_lines(data, index), digest=digest))
    ended = [p for p in syntax if p.document is None or p.document > len(documents)]
    unreadable = ended[0] if ended and _MAY_HOLD_A_PROJECT.search(data) else None
    problems = tuple(locate(data, pending, file, keys)) if pending else ()
    return Scan(tuple(projects), tuple(apps), problems, unreadable)


def _lines(data: bytes, document: int) -> dict[Path, int]:
    """Every path of one document of `data` and its line (a key's line for mapping entries)."""
    node = None
    try:
        for index, composed in enumerate(yaml.compose_all(data.decode("utf-8"), Loader=_Loader), start=1):
            if index == document:                      # stop here: a later document's YAML error does not matter
                node = composed
                break
    except (yaml.YAMLError, UnicodeDecodeError):
        pass
    if node is None:
        return {}
    lines: dict[Path, int] = {}
    stack: list[tuple[Any, Path, int]] = [(node, (), node.start_mark.line + 1)]
    while stack:
        node, path, line = stack.pop()
        if path in lines:
            continue
        lines[path] = line
        if isinstance(node, yaml.MappingNode):
            stack += [(v, path + (k.value,), k.start_mark.line + 1) for k, v in node.value
                      if isinstance(k, yaml.ScalarNode)]
        elif isinstance(node, yaml.SequenceNode):
            stack += [(v, path + (i,), v.start_mark.line + 1) for i, v in enumerate(node.value)]
    return lines


@dataclass
class Groups:
    """Which Project each App takes its defaults and policy from (`assigned`: file -> App name -> Project), the App
    documents not to apply (`held`: (file, document)), and the problems the pass found."""

    assigned: dict[str, dict[str, Project]] = field(default_factory=dict)
    held: set[tuple[str, int]] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)


def resolve(scans: Mapping[str, Scan], files: Mapping[str, bytes]) -> Groups:
    """Match every Project with the Apps of its folder (see the module's docstring for the rules)."""
    groups = Groups(problems=[p for file in sorted(scans) for p in scans[file].problems])
    apps_at: dict[str, list[tuple[str, str, int]]] = {}
    elsewhere: dict[str, str] = {}
    projects_at: dict[str, list[Project]] = {}
    unreadable_at: dict[str, list[Problem]] = {}
    for file in sorted(scans):
        scan, folder = scans[file], posixpath.dirname(file)
        for name, document in scan.apps:
            apps_at.setdefault(folder, []).append((name, file, document))
            elsewhere.setdefault(name, file)
        for project in scan.projects:
            projects_at.setdefault(folder, []).append(project)
        if scan.unreadable is not None:
            unreadable_at.setdefault(folder, []).append(scan.unreadable)
    groups.problems += _duplicate_names([p for folder in sorted(projects_at) for p in projects_at[folder]])
    holds: dict[tuple[str, int], tuple[str, str]] = {}
    for folder in sorted(set(projects_at) | set(unreadable_at)):
        here = apps_at.get(folder, [])
        names = {name for name, _, _ in here}
        claims: dict[str, list[tuple[Project, Path]]] = {}
        for project in projects_at.get(folder, []):
            if project.apps is None:
                for name in sorted(names):
                    claims.setdefault(name, []).append((project, ("metadata", "name")))
                continue
            for i, name in enumerate(project.apps):
                if name in names:
                    claims.setdefault(name, []).append((project, ("spec", "apps", i)))
                else:
                    groups.problems.append(_missing(project, i, name, elsewhere.get(name)))
        for name, claimed in sorted(claims.items()):
            documents = [(file, document) for other, file, document in here if other == name]
            if len(claimed) > 1:
                groups.problems += _conflict(name, claimed)
                groups.held.update(documents)
            elif not claimed[0][0].valid:
                project = claimed[0][0]
                holds.update((d, (name, f"not applied: Project '{project.name}' ({project.file}:"
                                        f"{project.line(())}), which sets its defaults and policy, has problems"))
                             for d in documents)
            else:
                for file, _ in documents:
                    groups.assigned.setdefault(file, {})[name] = claimed[0][0]
        for unreadable in unreadable_at.get(folder, []):
            holds.update(((file, document), (name, f"not applied: {unreadable.file} cannot be read (line "
                                                   f"{unreadable.line or '?'}: {unreadable.message}) and may hold a "
                                                   "Project for this folder, whose defaults and policy would apply "
                                                   "to this App; fix that file"))
                         for name, file, document in here)
    groups.held.update(holds)
    groups.problems += _held_problems(holds, files)
    return groups


def _missing(project: Project, index: int, name: str, found_in: str | None) -> Problem:
    where = ("spec", "apps", index)
    hint = (f"; an App of that name is in {found_in}, but a Project covers only the Apps of its own folder"
            if found_in else "")
    return Problem(project.file, f"App '{name}' is listed, but no App of that name is in "
                                 f"{project.folder or '.'}/{hint}", format_path(where), project.document,
                   project.line(where), project.key)


def _conflict(name: str, claimed: list[tuple[Project, Path]]) -> list[Problem]:
    places = " and ".join(f"Project '{p.name}' ({p.file}:{p.line(path)})" for p, path in claimed)
    return [Problem(project.file, f"App '{name}' is claimed by {places}; an App belongs to at most one Project, so it "
                                  "is not applied until one of them lets it go",
                    format_path(path), project.document, project.line(path), name)
            for project, path in claimed]


def _duplicate_names(projects: Iterable[Project]) -> list[Problem]:
    by_name: dict[str, list[Project]] = {}
    for project in projects:
        by_name.setdefault(project.name, []).append(project)
    problems = []
    for name, same in sorted(by_name.items()):
        if len(same) > 1:
            places = ", ".join(f"{p.file} (document {p.document})" for p in same)
            problems += [Problem(p.file, f"duplicate Project name '{name}': defined in {places}", "metadata.name",
                                 p.document, p.line(("metadata", "name")), p.key) for p in same]
    return problems


def _held_problems(holds: Mapping[tuple[str, int], tuple[str, str]], files: Mapping[str, bytes]) -> list[Problem]:
    """One problem per held App document, at its metadata.name line."""
    by_file: dict[str, list[tuple[int, Path, str]]] = {}
    names: dict[str, dict[int, str]] = {}
    for (file, document), (name, message) in sorted(holds.items()):
        by_file.setdefault(file, []).append((document, ("metadata", "name"), message))
        names.setdefault(file, {})[document] = name
    return [p for file in sorted(by_file) for p in locate(files.get(file, b""), by_file[file], file, names[file])]
