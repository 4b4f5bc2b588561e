"""The Kubernetes API of an AKS cluster (lightkube, imported lazily): connecting, and the few calls a
pass makes, on plain dicts.

Connecting: DRIFTLESS_KUBECONFIG when set, else the API server and CA from ARM
(`listClusterUserCredential`) with an Entra token for the AKS server app; nothing is stored.
Every refusal of the API server becomes `KubeError` with its Status code and message; a 403 also names the
Azure RBAC data action that was missing (AKS with Azure RBAC for Kubernetes authorization).
"""
from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING, Any, Iterable

import yaml

from shared.config.credentials import credential
from shared.config.settings import Settings
from shared.core.kube_manifests import KubeObject
from shared.core.manifests import Target

if TYPE_CHECKING:
    from lightkube import Client

AKS_SCOPE = "6dae42f8-4368-4678-94ff-3960e28e3630/.default"
"""The Entra ID application of the AKS API server (the same for every AKS cluster)."""
FIELD_MANAGER = "driftless"
FLUX_TYPES = {"GitRepository": ("source.toolkit.fluxcd.io/v1", "gitrepositories"),
              "Kustomization": ("kustomize.toolkit.fluxcd.io/v1", "kustomizations")}
"""Flux's own kinds, known without their CRDs being in Git (Flux assist patches them)."""


AZURE_VERBS = {"get": "read", "list": "read", "watch": "read", "create": "write", "update": "write",
               "patch": "write", "delete": "delete", "deletecollection": "delete"}
"""Kubernetes verbs -> the verb of Azure RBAC's data actions for Kubernetes."""
_FORBIDDEN = re.compile(r'cannot (\w+) resource "([^"/]+)[^"]*" in API group "([^"]*)"')


class KubeError(Exception):
    """The API server refused a request; `message` is its Status message (409: manager and field). For a 403,
    `permission` is the Azure RBAC data action the request needed (None when the message does not say)."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code, self.message = code, message
        self.permission = data_action(message) if code == 403 else None


def data_action(forbidden: str) -> str | None:
    """The Azure RBAC data action a Kubernetes `Forbidden` message asks for: `User "..." cannot list resource
    "roles" in API group "rbac.authorization.k8s.io"` ->
    `Microsoft.ContainerService/managedClusters/rbac.authorization.k8s.io/roles/read`."""
    found = _FORBIDDEN.search(forbidden)
    if found is None:
        return None
    verb, resource, group = found.groups()
    return (f"Microsoft.ContainerService/managedClusters/{group + '/' if group else ''}{resource}/"
            f"{AZURE_VERBS.get(verb, verb)}")


# ------------------------------------------------------------------------------ connecting


def _kubeconfig_from_arm(kubeconfig: bytes) -> tuple[str, str]:
    """(server, base64 CA) of the current context's cluster in a kubeconfig; credentials are ignored."""
    config = yaml.safe_load(kubeconfig)
    clusters = {c["name"]: c["cluster"] for c in config.get("clusters") or []}
    contexts = {c["name"]: c["context"] for c in config.get("contexts") or []}
    current = contexts.get(config.get("current-context"), {}).get("cluster")
    cluster = clusters.get(current) or next(iter(clusters.values()), None)
    if not cluster or not cluster.get("server") or not cluster.get("certificate-authority-data"):
        raise ValueError("the cluster's kubeconfig names no server with certificate-authority-data")
    return cluster["server"], cluster["certificate-authority-data"]


def connect(settings: Settings, target: Target) -> Client:
    """A lightkube client for the Target's cluster: DRIFTLESS_KUBECONFIG when set (the context named like
    the cluster, else the current one), else server + CA from ARM with an Entra token; nothing is stored."""
    from lightkube import Client, KubeConfig
    from lightkube.config.models import Cluster, User

    if settings.kubeconfig:
        config = KubeConfig.from_file(settings.kubeconfig)
        return Client(config.get(target.cluster if target.cluster in config.contexts else None),
                      field_manager=FIELD_MANAGER, trust_env=False)
    from azure.mgmt.containerservice import ContainerServiceClient

    arm = ContainerServiceClient(credential(settings), target.subscription_id,
                                 base_url=settings.arm_endpoint or "https://management.azure.com")
    found = arm.managed_clusters.list_cluster_user_credentials(target.resource_group, target.cluster)
    server, ca = _kubeconfig_from_arm(found.kubeconfigs[0].value)
    token = credential(settings).get_token(AKS_SCOPE).token
    config = KubeConfig.from_one(cluster=Cluster(server=server, certificate_auth_data=ca), user=User(token=token))
    return Client(config, field_manager=FIELD_MANAGER, trust_env=False)


class Api:
    """The few calls a pass makes, on plain dicts; resource types come from lightkube's models, CRDs in Git,
    or the cluster's CRDs (listed once, only for a custom kind Git does not describe)."""

    def __init__(self, client: Client, crds: Iterable[KubeObject] = ()):
        self.client = client
        self._types: dict[tuple[str, str], Any] = {}
        self._crds = {_crd_type(o.body) for o in crds if o.kind == "CustomResourceDefinition"} - {None}
        self._crds |= {(v.split("/")[0], (v.split("/")[1],), k, p, True) for k, (v, p) in FLUX_TYPES.items()}
        self._cluster_crds: set | None = None
        self._lock = threading.Lock()

    def type(self, api_version: str, kind: str):
        with self._lock:
            if (api_version, kind) not in self._types:
                self._types[(api_version, kind)] = self._resolve(api_version, kind)
            return self._types[(api_version, kind)]

    def _resolve(self, api_version: str, kind: str):
        from lightkube.core.exceptions import LoadResourceError
        from lightkube.core.resource import NamespacedResource
        from lightkube.core.resource_registry import resource_registry
        from lightkube.generic_resource import (
            GenericGlobalResource,
            GenericNamespacedResource,
            create_api_info,
        )

        group, _, version = api_version.rpartition("/")
        try:
            model = resource_registry.load(api_version, kind)
            plural, namespaced = model._api_info.plural, issubclass(model, NamespacedResource)
        except (LoadResourceError, ImportError):
            known = {(g, k): (p, n) for g, vs, k, p, n in self._crds if version in vs}
            if (group, kind) not in known:
                known.update({(g, k): (p, n) for g, vs, k, p, n in self._listed_crds() if version in vs})
            if (group, kind) not in known:
                raise KubeError(404, f"the cluster serves no {kind} in {api_version} (no CustomResourceDefinition)")
            plural, namespaced = known[(group, kind)]
        base = GenericNamespacedResource if namespaced else GenericGlobalResource
        return type(kind, (base,), {"_api_info": create_api_info(group, version, kind, plural)})

    def _listed_crds(self) -> set:
        from lightkube.resources.apiextensions_v1 import CustomResourceDefinition

        if self._cluster_crds is None:
            self._cluster_crds = {_crd_type(c.to_dict()) for c in self.client.list(CustomResourceDefinition)} - {None}
        return self._cluster_crds

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        try:
            return dict(self.client.get(self.type(api_version, kind), name, namespace=namespace))
        except Exception as exc:
            if _code(exc) == 404:
                return None
            raise _refused(exc) from exc

    def apply(self, body: dict[str, Any], *, force: bool, dry_run: bool) -> dict[str, Any]:
        from lightkube.types import PatchType

        meta = body["metadata"]
        try:
            return dict(self.client.patch(self.type(body["apiVersion"], body["kind"]), meta["name"], body,
                                          namespace=meta.get("namespace"), patch_type=PatchType.APPLY,
                                          field_manager=FIELD_MANAGER, force=force, dry_run=dry_run))
        except Exception as exc:
            raise _refused(exc) from exc

    def merge_patch(self, api_version: str, kind: str, namespace: str | None, name: str, patch: dict) -> None:
        from lightkube.types import PatchType

        try:
            self.client.patch(self.type(api_version, kind), name, patch, namespace=namespace,
                              patch_type=PatchType.MERGE, field_manager=FIELD_MANAGER)
        except Exception as exc:
            raise _refused(exc) from exc

    def owned(self, api_version: str, kind: str, labels: dict[str, str]) -> list[dict[str, Any]]:
        """Every object of the kind carrying all `labels`, in every namespace; none when the cluster does not
        serve the kind (yet)."""
        try:
            kind_type = self.type(api_version, kind)
            return [dict(o) for o in self.client.list(kind_type, namespace="*" if _namespaced(kind_type) else None,
                                                      labels=labels)]
        except Exception as exc:
            if _code(exc) == 404:
                return []
            raise _refused(exc) from exc

    def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> None:
        try:
            self.client.delete(self.type(api_version, kind), name, namespace=namespace)
        except Exception as exc:
            if _code(exc) != 404:
                raise _refused(exc) from exc


def _namespaced(kind_type) -> bool:
    from lightkube.core.resource import NamespacedResource

    return issubclass(kind_type, NamespacedResource)


def _crd_type(body: dict[str, Any]):
    """(group, versions, kind, plural, namespaced) of a CRD."""
    spec = body.get("spec") or {}
    names = spec.get("names") or {}
    if not (spec.get("group") and names.get("kind") and names.get("plural")):
        return None
    return (spec["group"], tuple(v.get("name") for v in spec.get("versions") or []), names["kind"],
            names["plural"], spec.get("scope") != "Cluster")


def _code(exc: Exception) -> int | None:
    status = getattr(exc, "status", None)
    return getattr(status, "code", None)


def _refused(exc: Exception) -> Exception:
    """An ApiError becomes a KubeError with the server's Status message; anything else (network) passes."""
    if isinstance(exc, KubeError) or _code(exc) is None:
        return exc
    return KubeError(_code(exc), getattr(exc.status, "message", None) or str(exc))
