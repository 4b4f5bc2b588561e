"""The Git contract of an AKS Target: plain Kubernetes objects, validated before anything is written.

Nothing here does I/O. `load_objects` takes file contents (path -> bytes) and returns the valid
objects plus `Problem`s naming file, document, line and field. An invalid document yields no
object; callers fail it and mark the pass degraded, which forbids prune.
"""
from __future__ import annotations

import copy
import posixpath
from dataclasses import dataclass, replace
from typing import Any, Mapping

from shared.core import image_policy
from shared.core.manifests import DNS_LABEL, Problem, locate, parse_documents, refused_documents

CLUSTER_SCOPED = frozenset({
    "APIService", "CertificateSigningRequest", "ClusterRole", "ClusterRoleBinding", "ComponentStatus", "CSIDriver",
    "CSINode", "CustomResourceDefinition", "FlowSchema", "IngressClass", "MutatingWebhookConfiguration", "Namespace",
    "Node", "PersistentVolume", "PriorityClass", "PriorityLevelConfiguration", "RuntimeClass", "StorageClass",
    "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "ValidatingWebhookConfiguration",
    "VolumeAttachment",
})
"""Built-in kinds without a namespace. Custom kinds are cluster-scoped when a CRD in the same path says so."""
FIRST_KINDS = ("Namespace", "CustomResourceDefinition")
"""Applied before everything else (and deleted after everything else)."""
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SECRET_GUIDANCE = ("plaintext Secret values are never allowed in Git (base64 is an encoding, not encryption); "
                   "encrypt the Secret with SOPS and let Flux decrypt it in the cluster, or keep the value in Key Vault "
                   "and mount it with the Secrets Store CSI driver (a SecretProviderClass)")


@dataclass(frozen=True)
class KubeObject:
    """One Kubernetes object as Git wants it; `body` already carries the defaulted namespace."""

    api_version: str
    kind: str
    name: str
    namespace: str | None
    body: dict[str, Any]
    file: str
    document: int

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def key(self) -> str:
        """The object's name in outcomes and the `protected` list: Kind/namespace/name, or Kind/name."""
        return key_of(self.kind, self.namespace, self.name)

    @property
    def identity(self) -> tuple[str, str, str, str]:
        return self.group, self.kind, self.namespace or "", self.name

    @property
    def first(self) -> bool:
        """Namespaces and CRDs go first."""
        return self.kind in FIRST_KINDS


def key_of(kind: str, namespace: str | None, name: str) -> str:
    return f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"


def load_objects(files: Mapping[str, bytes], *, namespace: str) -> tuple[list[KubeObject], list[Problem]]:
    """Parse and validate every object in `files`; namespaced objects without one get `namespace`.

    A folder holding a kustomization file is refused as a whole (one Problem, nothing applied from it or
    below it); an object defined twice (same group, kind, namespace and name) is refused in both places."""
    kustomizations = sorted(f for f in files if posixpath.basename(f) in KUSTOMIZATION_FILES)
    folders = [posixpath.dirname(f) for f in kustomizations]
    problems = [Problem(f, f"Kustomize is not supported yet: nothing under {d or '.'}/ is applied; list plain "
                           "manifests instead (or commit the output of `kustomize build`)")
                for f, d in zip(kustomizations, folders)]
    chosen = {f: data for f, data in files.items() if not any(not d or f.startswith(f"{d}/") for d in folders)}
    parsed: list[tuple[str, int, Any]] = []
    syntax: dict[str, list[Problem]] = {}
    for file in sorted(chosen):
        documents, syntax[file] = parse_documents(file, chosen[file])
        parsed += [(file, index, doc) for index, doc in enumerate(documents, start=1) if doc is not None]
    refused = {(file, index) for file, found in syntax.items() for index in refused_documents(found)}
    cluster_kinds = CLUSTER_SCOPED | _cluster_scoped_crds(doc for file, index, doc in parsed
                                                          if (file, index) not in refused)
    objects: list[KubeObject] = []
    pending: dict[str, list[tuple[int, tuple[Any, ...], str]]] = {}
    app_of: dict[str, dict[int, str]] = {}
    for file, index, doc in parsed:
        found: list[tuple[tuple[Any, ...], str]] = []
        obj = _read_object(doc, file, index, namespace, cluster_kinds, found)
        if obj is not None:
            app_of.setdefault(file, {})[index] = obj.key
        if found:
            pending.setdefault(file, []).extend((index, path, message) for path, message in found)
        elif obj is not None and (file, index) not in refused:
            objects.append(obj)
    for file, found_in_file in syntax.items():
        problems += [replace(p, app=app_of.get(file, {}).get(p.document or 0)) for p in found_in_file]
    for file, found in pending.items():
        problems += locate(chosen[file], found, file, app_of.get(file, {}))
    return _drop_duplicates(objects, problems, chosen)


def _cluster_scoped_crds(documents) -> set[str]:
    kinds = set()
    for doc in documents:
        if isinstance(doc, Mapping) and doc.get("kind") == "CustomResourceDefinition":
            spec = doc.get("spec") if isinstance(doc.get("spec"), Mapping) else {}
            names = spec.get("names") if isinstance(spec.get("names"), Mapping) else {}
            if spec.get("scope") == "Cluster" and isinstance(names.get("kind"), str):
                kinds.add(names["kind"])
    return kinds


def _read_object(doc: Any, file: str, index: int, default_namespace: str, cluster_kinds: set[str],
                 found: list[tuple[tuple[Any, ...], str]]) -> KubeObject | None:
    if not isinstance(doc, Mapping):
        found.append(((), "a Kubernetes object must be a mapping with apiVersion, kind and metadata.name"))
        return None
    for field in ("apiVersion", "kind"):
        if not isinstance(doc.get(field), str) or not doc[field].strip():
            found.append(((field,), "is required (a non-empty string)"))
    meta = doc.get("metadata")
    if not isinstance(meta, Mapping):
        found.append((("metadata",), "is required: a mapping with at least name"))
        return None
    name, namespace = meta.get("name"), meta.get("namespace")
    if not isinstance(name, str) or not name.strip():
        found.append((("metadata", "name"), "is required (a non-empty string)" if "name" not in meta
                      else f"must be a non-empty string, got {name!r}"))
        return None
    if "/" in name or "%" in name or name in (".", ".."):
        found.append((("metadata", "name"), f"'{name}' is not a valid object name"))
    if found:
        return None
    kind = doc["kind"]
    if kind in cluster_kinds:
        if namespace is not None:
            found.append((("metadata", "namespace"), f"{kind} is cluster-scoped and has no namespace; remove it"))
        namespace = None
    elif namespace is None:
        namespace = default_namespace
    elif not isinstance(namespace, str) or not DNS_LABEL.fullmatch(namespace):
        found.append((("metadata", "namespace"), f"{namespace!r} is not a namespace name "
                                                 "(lowercase letters, digits and '-', up to 63 characters)"))
    if kind == "Secret" and doc["apiVersion"] == "v1":
        for field in ("data", "stringData"):
            if doc.get(field):
                count = len(doc[field]) if isinstance(doc[field], Mapping) else 1
                found.append(((field,), f"Secret '{name}' holds {count} plaintext value(s); {SECRET_GUIDANCE}"))
    containers = image_policy.WORKLOAD_CONTAINERS.get(kind)
    found += image_policy.read_policy(meta.get("annotations"), image_policy.container_names(doc, containers or ()),
                                      workload=containers is not None)[1]
    body = copy.deepcopy(dict(doc))
    body["metadata"] = dict(body["metadata"])
    if namespace:
        body["metadata"]["namespace"] = namespace
    return KubeObject(doc["apiVersion"], kind, name, namespace, body, file, index)


def _drop_duplicates(objects: list[KubeObject], problems: list[Problem],
                     files: Mapping[str, bytes]) -> tuple[list[KubeObject], list[Problem]]:
    by_identity: dict[tuple[str, str, str, str], list[KubeObject]] = {}
    for obj in objects:
        by_identity.setdefault(obj.identity, []).append(obj)
    unique = []
    for same in by_identity.values():
        if len(same) == 1:
            unique.append(same[0])
            continue
        places = ", ".join(f"{o.file} (document {o.document})" for o in same)
        for o in same:
            problems += locate(files[o.file], [(o.document, ("metadata", "name"),
                                                f"{o.key} is defined more than once: {places}; neither is applied")],
                               o.file, {o.document: o.key})
    return unique, problems
