"""Local HTTPS stub of the Kubernetes API for AKS Targets (dev and tests only; no cluster can run here).

What it implements, as the API server does:
- GET, list (all namespaces or one, `labelSelector` with `k=v`, `k!=v` and `k`), DELETE;
- server-side apply (PATCH `application/apply-patch+yaml` with `fieldManager`, `force`, `dryRun=All`):
  create when missing, set the applied fields, drop fields this manager applied before and no longer
  applies (unless another manager owns them), track `managedFields` per manager (`fieldsV1`), and answer
  409 with a `Status` naming manager and field when another manager owns a field whose value changes
  (unless `force=true`, which takes the field over);
- JSON merge patch (`application/merge-patch+json`) as an `Update`: the changed fields move to that
  manager, as `kubectl edit` or a controller does;
- `Status` errors (401, 403 Forbidden, 404 NotFound for objects, types and missing namespaces, 409 Conflict,
  415, 422), `resourceVersion`, `generation` (bumped when anything outside metadata and status changes), `uid`,
  `creationTimestamp`; a few built-in types plus the CustomResourceDefinitions applied to it.
- authorization as AKS with Azure RBAC does it: every request is checked against `role` (the data actions of
  an Azure built-in role, by API group and resource: read = get/list/watch, write = create/update/patch,
  delete = delete/deletecollection) after authentication and before the resource type is looked up; a
  refusal is 403 `Forbidden` with the API server's message, suffixed with AKS's Azure RBAC reason. The
  default role is `RBAC_WRITER`, what Driftless's Bicep grants; `CLUSTER_ADMIN` allows everything.
No discovery endpoints: lightkube needs none.
Simplifications: lists are atomic (one field each, no merge keys), no defaulting, no admission, no
watch; a CRD is served as soon as it is stored. `rollouts = True` (default) plays the controllers:
Deployments, StatefulSets and DaemonSets are rolled out and Jobs complete on every write; set it to
False and use `set_status` to hold an object in any state. Every request is recorded (`requests`).
"""
from __future__ import annotations

import copy
import json
import ssl
import tempfile
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import Message
from typing import Any
from urllib.parse import unquote

import trustme
import yaml

from devtools.aca_emulator import Request, Response, _Handler
from devtools.merge_patch import merge_patch
from devtools.tls import TlsServer, certificate

APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
IDENTITY = (("apiVersion",), ("kind",), ("metadata", "name"), ("metadata", "namespace"))
SERVER_METADATA = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields")
BUILTIN = [  # group, version, plural, kind, namespaced
    ("", "v1", "namespaces", "Namespace", False), ("", "v1", "configmaps", "ConfigMap", True),
    ("", "v1", "secrets", "Secret", True), ("", "v1", "services", "Service", True),
    ("", "v1", "serviceaccounts", "ServiceAccount", True),
    ("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True),
    ("apps", "v1", "deployments", "Deployment", True), ("apps", "v1", "statefulsets", "StatefulSet", True),
    ("apps", "v1", "daemonsets", "DaemonSet", True), ("batch", "v1", "jobs", "Job", True),
    ("batch", "v1", "cronjobs", "CronJob", True), ("networking.k8s.io", "v1", "ingresses", "Ingress", True),
    ("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    ("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
    ("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    ("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    ("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False),
]
ROLLOUT_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
READ, WRITE, DELETE = "read", "write", "delete"
"""Azure RBAC's verbs for Kubernetes data actions (`Microsoft.ContainerService/managedClusters/<group>/<resource>/<verb>`)."""
ALL = frozenset({READ, WRITE, DELETE})
AZURE_VERB = {"get": READ, "list": READ, "watch": READ, "create": WRITE, "update": WRITE, "patch": WRITE,
              "delete": DELETE, "deletecollection": DELETE}
Role = dict[tuple[str, str], frozenset]
"""(API group, resource) -> Azure verbs granted; the key ("*", "*") grants them on every resource."""
RBAC_WRITER: Role = {
    **{("", r): ALL for r in ("configmaps", "endpoints", "events", "persistentvolumeclaims", "pods",
                              "replicationcontrollers", "secrets", "serviceaccounts", "services")},
    **{("", r): frozenset({READ}) for r in ("namespaces", "limitranges", "resourcequotas")},
    **{("apps", r): ALL for r in ("daemonsets", "deployments", "replicasets", "statefulsets")},
    ("apps", "controllerrevisions"): frozenset({READ}),
    ("autoscaling", "horizontalpodautoscalers"): ALL,
    **{("batch", r): ALL for r in ("cronjobs", "jobs")},
    ("coordination.k8s.io", "leases"): ALL,
    ("discovery.k8s.io", "endpointslices"): frozenset({READ}),
    ("events.k8s.io", "events"): frozenset({READ}),
    **{("extensions", r): ALL for r in ("daemonsets", "deployments", "ingresses", "networkpolicies", "replicasets")},
    **{("networking.k8s.io", r): ALL for r in ("ingresses", "networkpolicies")},
    ("policy", "poddisruptionbudgets"): ALL,
}
"""Azure Kubernetes Service RBAC Writer (a7ffa36f-339b-4b5c-8bdf-e2c188b2c0eb), its dataActions as Microsoft
publishes them: most namespaced objects, Namespaces read-only, nothing of rbac.authorization.k8s.io (Roles,
RoleBindings, ClusterRoles, ClusterRoleBindings), apiextensions.k8s.io (CRDs) or any custom resource."""
CLUSTER_ADMIN: Role = {("*", "*"): ALL}
"""Azure Kubernetes Service RBAC Cluster Admin (b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b): everything."""
AZURE_RBAC_REASON = "User does not have access to the resource in Azure. Update role assignment to allow access."
USER = "8f3c1a52-0d1e-4f0a-9c57-2b8f0e6d1a11"
"""The object id of the managed identity the stub sees (AKS names an Entra principal by object id)."""


@dataclass(frozen=True)
class Call:
    """One recorded request."""

    method: str
    path: str
    content_type: str | None
    field_manager: str | None
    force: bool
    dry_run: bool
    label_selector: str | None

    @property
    def write(self) -> bool:
        return self.method in ("POST", "PUT", "PATCH", "DELETE") and not self.dry_run


class Failure(Exception):
    """A Kubernetes `Status` error answer."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details or {}

    def response(self) -> Response:
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": self.message,
                "reason": self.reason, "details": self.details, "code": self.code}
        return Response.json(self.code, body, {"Content-Type": "application/json"})


class KubeStub:
    """In-memory Kubernetes API over HTTPS; see the module docstring."""

    def __init__(self, cert_dir: str | None = None, token: str | None = None, user: str = USER) -> None:
        self._token = token
        self.user = user
        self.role: Role = RBAC_WRITER
        self._lock = threading.RLock()
        self._objects: dict[tuple[str, str, str, str], dict[str, Any]] = {}  # (group, plural, namespace, name)
        self._owners: dict[tuple[str, str, str, str], dict[str, tuple[str, set]]] = {}  # manager -> (op, fields)
        self._types = {(g, v, p): (k, n) for g, v, p, k, n in BUILTIN}
        self._version = 1000
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._server: TlsServer | None = None
        self.requests: list[Call] = []
        self.rollouts = True
        self.url = ""
        self.ca_path, self._cert = self._certificates(cert_dir)
        self.reset()

    # ---------------------------------------------------------- lifecycle

    def start(self) -> KubeStub:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._cert.configure_cert(context)
        self._server = TlsServer(("127.0.0.1", 0), context, self, _Handler)
        self.url = f"https://127.0.0.1:{self._server.server_address[1]}"
        self._server.serve_in_background("kube-stub")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def _certificates(self, cert_dir: str | None) -> tuple[str, trustme.LeafCert]:
        """The CA in `cert_dir` (`ca.pem` + `ca-key.pem`, shared with the ACA emulator), or a new one."""
        ca_path, leaf, self._tmp = certificate(cert_dir, "127.0.0.1", "localhost")
        return ca_path, leaf

    # ----------------------------------------------------- test controls

    def reset(self) -> None:
        with self._lock:
            self._objects.clear()
            self._owners.clear()
            self._types = {(g, v, p): (k, n) for g, v, p, k, n in BUILTIN}
            self.requests.clear()
            self.rollouts = True
            self.role = RBAC_WRITER
            for namespace in ("default", "kube-system"):
                self._objects[("", "namespaces", "", namespace)] = {
                    "apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": namespace, "uid": str(uuid.uuid4()), "resourceVersion": self._next_version(),
                                 "creationTimestamp": _now()}}

    def grant(self, role: Role) -> None:
        """Authorize every later request against `role` (RBAC_WRITER after `reset`)."""
        with self._lock:
            self.role = role

    def writes(self) -> list[Call]:
        """Recorded requests that changed (or tried to change) state: no GETs, no dry runs."""
        return [c for c in self.requests if c.write]

    def get(self, path: str) -> dict[str, Any] | None:
        """The stored object at an API path such as /apis/apps/v1/namespaces/default/deployments/web."""
        with self._lock:
            group, _, plural, namespace, name = self._parse(path)
            found = self._objects.get((group, plural, namespace or "", name or ""))
            return copy.deepcopy(found) if found else None

    def set_status(self, path: str, status: dict[str, Any]) -> None:
        """Replace an object's status, as its controller would (no generation change)."""
        with self._lock:
            group, _, plural, namespace, name = self._parse(path)
            obj = self._objects[(group, plural, namespace or "", name or "")]
            obj["status"] = copy.deepcopy(status)
            obj["metadata"]["resourceVersion"] = self._next_version()

    def edit(self, path: str, patch: dict[str, Any], manager: str = "kubectl-edit") -> dict[str, Any]:
        """An out-of-band JSON merge patch (an `Update` by `manager`), as `kubectl edit` would send."""
        return self._handle_json(Request("PATCH", path, {"fieldmanager": manager}, _headers(MERGE),
                                         json.dumps(patch).encode(), self.url))

    # ----------------------------------------------------------- dispatch

    def handle(self, req: Request) -> Response:
        query = req.query
        self.requests.append(Call(req.method, req.path, (req.headers.get("Content-Type") or "").split(";")[0] or None,
                                  query.get("fieldmanager"), query.get("force") == "true",
                                  query.get("dryrun") == "All", query.get("labelselector")))
        if self._token and req.headers.get("Authorization") != f"Bearer {self._token}":
            return Failure(401, "Unauthorized", "Unauthorized").response()
        try:
            self._authorize(req)
            return Response.json(200, self._handle_json(req), {"Content-Type": "application/json"})
        except Failure as failure:
            return failure.response()

    def _handle_json(self, req: Request) -> dict[str, Any]:
        with self._lock:
            group, version, plural, namespace, name = self._parse(req.path)
            kind, _ = self._types[(group, version, plural)]
            query = {k.lower(): v for k, v in req.query.items()}
            if name is None and req.method == "GET":
                return self._list(group, version, plural, kind, namespace, query.get("labelselector"))
            key = (group, plural, namespace or "", name or "")
            if req.method == "GET":
                return copy.deepcopy(self._found(key, plural, name))
            if req.method == "DELETE":
                self._found(key, plural, name)
                del self._objects[key]
                self._owners.pop(key, None)
                return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                        "details": {"name": name, "kind": plural}}
            if req.method != "PATCH":
                raise Failure(405, "MethodNotAllowed", f"{req.method} is not supported by this stub")
            content_type = (req.headers.get("Content-Type") or "").split(";")[0]
            manager = query.get("fieldmanager")
            dry_run = query.get("dryrun") == "All"
            if content_type == APPLY:
                if not manager:
                    raise Failure(422, "Invalid", "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: "
                                                  "Required value: is required for apply patch")
                body = yaml.safe_load(req.body)
                return self._apply(key, group, version, kind, body, manager, query.get("force") == "true", dry_run)
            if content_type == MERGE:
                return self._update(key, plural, name, json.loads(req.body), manager or "unknown", dry_run)
            raise Failure(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - "
                                                       f"accepted media types include: {APPLY}, {MERGE}")

    def _authorize(self, req: Request) -> None:
        """403 Forbidden, as the API server words it, unless `role` grants the request's verb on its resource."""
        group, _, plural, namespace, name = _split(req.path)
        verb = {"GET": "get" if name else ("watch" if req.query.get("watch") == "true" else "list"),
                "DELETE": "delete" if name else "deletecollection", "PATCH": "patch", "PUT": "update",
                "POST": "create"}.get(req.method, req.method.lower())
        with self._lock:
            granted = self.role.get((group, plural)) or self.role.get(("*", "*")) or frozenset()
        if AZURE_VERB.get(verb) in granted:
            return
        scope = f'in the namespace "{namespace}"' if namespace and namespace != "*" else "at the cluster scope"
        resource = f"{plural}.{group}" if group else plural
        refused = f"{resource} \"{name}\" is forbidden" if name else f"{resource} is forbidden"
        message = (f'{refused}: User "{self.user}" cannot {verb} resource "{plural}" in API group "{group}" '
                   f"{scope}: {AZURE_RBAC_REASON}")
        details = {"name": name, "group": group, "kind": plural} if name else {"group": group, "kind": plural}
        raise Failure(403, "Forbidden", message, {k: v for k, v in details.items() if v})

    def _parse(self, path: str) -> tuple[str, str, str, str | None, str | None]:
        """(group, version, plural, namespace, name) of a resource path; 404 for an unknown type."""
        group, version, plural, namespace, name = _split(path)
        if (group, version, plural) not in self._types:
            raise Failure(404, "NotFound", "the server could not find the requested resource")
        return group, version, plural, namespace, name

    def _found(self, key: tuple[str, str, str, str], plural: str, name: str | None) -> dict[str, Any]:
        if key not in self._objects:
            raise Failure(404, "NotFound", f'{plural} "{name}" not found', {"name": name, "kind": plural})
        return self._objects[key]

    def _list(self, group: str, version: str, plural: str, kind: str, namespace: str | None,
              selector: str | None) -> dict[str, Any]:
        items = [copy.deepcopy(o) for (g, p, ns, _), o in sorted(self._objects.items())
                 if (g, p) == (group, plural) and namespace in (None, ns) and _selects(selector, o)]
        return {"kind": f"{kind}List", "apiVersion": f"{group}/{version}" if group else version,
                "metadata": {"resourceVersion": str(self._version)}, "items": items}

    # ------------------------------------------------------ apply/update

    def _apply(self, key, group: str, version: str, kind: str, body: Any, manager: str, force: bool,
               dry_run: bool) -> dict[str, Any]:
        if not isinstance(body, dict) or body.get("kind") != kind or (body.get("metadata") or {}).get("name") != key[3]:
            raise Failure(400, "BadRequest", f"the applied object must be a {kind} named {key[3]!r}")
        applied = {k: v for k, v in body.items() if k != "status"}
        wanted = _fields(applied)
        live = self._objects.get(key)
        owners = copy.deepcopy(self._owners.get(key, {}))
        if live is None:
            if key[2] and ("", "namespaces", "", key[2]) not in self._objects:
                raise Failure(404, "NotFound", f'namespaces "{key[2]}" not found', {"name": key[2], "kind": "namespaces"})
            result = copy.deepcopy(applied)
            result["metadata"] = {**result["metadata"], "uid": str(uuid.uuid4()), "generation": 1,
                                  "creationTimestamp": _now()}
            if key[2]:
                result["metadata"]["namespace"] = key[2]
        else:
            conflicts = [(m, path) for path in sorted(wanted) if _get(live, path) != _get(applied, path)
                         and _get(live, path) is not _MISSING
                         for m, (_, owned) in sorted(owners.items()) if m != manager and path in owned]
            if conflicts and not force:
                raise _conflict(conflicts, f"{group}/{version}" if group else version)
            result = copy.deepcopy(live)
            for path in wanted:
                _set(result, path, _get(applied, path))
            others = set().union(*(owned for m, (_, owned) in owners.items() if m != manager))
            for path in owners.get(manager, ("", set()))[1] - wanted - others:
                _delete(result, path)
            for m, path in conflicts:
                owners[m][1].discard(path)
        owners[manager] = ("Apply", wanted)
        return self._store(key, live, result, owners, f"{group}/{version}" if group else version, dry_run)

    def _update(self, key, plural: str, name: str | None, patch: Any, manager: str, dry_run: bool) -> dict[str, Any]:
        live = self._found(key, plural, name)
        result = merge_patch(live, patch)
        before, after = _fields(_owned_view(live)), _fields(_owned_view(result))
        changed = {p for p in after if _get(live, p) != _get(result, p)}
        owners = copy.deepcopy(self._owners.get(key, {}))
        for m, (op, owned) in owners.items():
            owners[m] = (op, owned - changed - (before - after))
        previous = owners.get(manager, ("Update", set()))[1]
        owners[manager] = ("Update", previous | changed)
        return self._store(key, live, result, owners, live["apiVersion"], dry_run)

    def _store(self, key, live: dict[str, Any] | None, result: dict[str, Any],
               owners: dict[str, tuple[str, set]], api_version: str, dry_run: bool) -> dict[str, Any]:
        meta = result["metadata"]
        if live is not None and _spec_of(live) != _spec_of(result):
            meta["generation"] = live["metadata"].get("generation", 1) + 1
        meta["managedFields"] = [{"manager": m, "operation": op, "apiVersion": api_version, "time": _now(),
                                  "fieldsType": "FieldsV1", "fieldsV1": _fields_v1(owned)}
                                 for m, (op, owned) in sorted(owners.items()) if owned]
        unchanged = live is not None and _without(live, "resourceVersion") == _without(result, "resourceVersion")
        if unchanged:
            return copy.deepcopy(live)
        meta["resourceVersion"] = str(self._version + 1)
        if dry_run:
            return result
        self._next_version()
        if self.rollouts:
            _play_controller(result)
        self._objects[key] = result
        self._owners[key] = owners
        if result.get("kind") == "CustomResourceDefinition":
            self._serve_crd(result)
        return copy.deepcopy(result)

    def _serve_crd(self, crd: dict[str, Any]) -> None:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        for version in spec.get("versions") or []:
            self._types[(spec.get("group", ""), version.get("name", ""), names.get("plural", ""))] = (
                names.get("kind", ""), spec.get("scope") != "Cluster")

    def _next_version(self) -> str:
        self._version += 1
        return str(self._version)


_MISSING = object()


def _split(path: str) -> tuple[str, str, str, str | None, str | None]:
    """(group, version, plural, namespace, name) of a resource path, whether or not the type is served."""
    parts = [unquote(p) for p in path.partition("?")[0].strip("/").split("/")]
    if len(parts) < (3 if parts[0] == "api" else 4) or parts[0] not in ("api", "apis"):
        raise Failure(404, "NotFound", "the server could not find the requested resource")
    group, version, rest = ("", parts[1], parts[2:]) if parts[0] == "api" else (parts[1], parts[2], parts[3:])
    namespace = None
    if rest[:1] == ["namespaces"] and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    return group, version, rest[0], namespace, rest[1] if len(rest) > 1 else None


def _headers(content_type: str) -> Message:
    headers = Message()
    headers["Content-Type"] = content_type
    return headers


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _spec_of(obj: dict[str, Any]) -> dict[str, Any]:
    """Everything but metadata and status: what bumps `generation`."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def _owned_view(obj: dict[str, Any]) -> dict[str, Any]:
    """What field managers can own: everything but status and the server's metadata."""
    meta = {k: v for k, v in obj["metadata"].items() if k not in SERVER_METADATA}
    return {**{k: v for k, v in obj.items() if k != "status"}, "metadata": meta}


def _without(obj: dict[str, Any], field: str) -> dict[str, Any]:
    meta = {k: v for k, v in obj["metadata"].items() if k not in (field, "managedFields")}
    fields = sorted((m["manager"], json.dumps(m["fieldsV1"], sort_keys=True)) for m in obj["metadata"].get("managedFields", []))
    return {**obj, "metadata": meta, "_fields": fields}


def _fields(obj: Any, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Leaf paths of an object: mappings are walked, anything else (lists included) is one field."""
    if isinstance(obj, dict) and (obj or not prefix):
        found: set[tuple[str, ...]] = set()
        for key, value in obj.items():
            found |= _fields(value, prefix + (key,))
        return found - set(IDENTITY)
    return {prefix}


def _get(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            return _MISSING
        obj = obj[key]
    return obj


def _set(obj: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        if not isinstance(obj.get(key), dict):
            obj[key] = {}
        obj = obj[key]
    obj[path[-1]] = copy.deepcopy(value)


def _delete(obj: dict[str, Any], path: tuple[str, ...]) -> None:
    parent = _get(obj, path[:-1])
    if isinstance(parent, dict):
        parent.pop(path[-1], None)


def _fields_v1(owned: set[tuple[str, ...]]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in sorted(owned):
        node = tree
        for key in path:
            node = node.setdefault(f"f:{key}", {})
    return tree


def _conflict(conflicts: list[tuple[str, tuple[str, ...]]], api_version: str) -> Failure:
    shown = [(m, "." + ".".join(p)) for m, p in conflicts]
    if len(shown) == 1:
        message = f'Apply failed with 1 conflict: conflict with "{shown[0][0]}" using {api_version}: {shown[0][1]}'
    else:
        message = f"Apply failed with {len(shown)} conflicts: " + "\n".join(
            f'conflict with "{m}" using {api_version}: {f}' for m, f in shown)
    causes = [{"reason": "FieldManagerConflict", "message": f'conflict with "{m}" using {api_version}', "field": f}
              for m, f in shown]
    return Failure(409, "Conflict", message, {"causes": causes})


def _selects(selector: str | None, obj: dict[str, Any]) -> bool:
    labels = obj["metadata"].get("labels") or {}
    for term in filter(None, (selector or "").split(",")):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key) != value:
                return False
        elif term not in labels:
            return False
    return True


def _play_controller(obj: dict[str, Any]) -> None:
    """What the Deployment/StatefulSet/DaemonSet and Job controllers report once they are done."""
    generation = obj["metadata"].get("generation", 1)
    if obj.get("kind") in ROLLOUT_KINDS:
        replicas = (obj.get("spec") or {}).get("replicas", 1)
        if obj["kind"] == "DaemonSet":
            obj["status"] = {"observedGeneration": generation, "desiredNumberScheduled": replicas,
                             "updatedNumberScheduled": replicas, "numberAvailable": replicas}
        else:
            obj["status"] = {"observedGeneration": generation, "replicas": replicas, "updatedReplicas": replicas,
                             "availableReplicas": replicas, "readyReplicas": replicas}
    elif obj.get("kind") == "Job":
        obj["status"] = {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}
