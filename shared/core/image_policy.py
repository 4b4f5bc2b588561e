"""Image update policy: the `driftless.io/image-*` annotations an App or a Kubernetes workload opts in with.

No I/O. `read_policy` validates the annotations of one manifest and returns the policy (None when the
manifest does not opt in) plus (path, message) problems that the manifest loaders turn into `Problem`s
with file, line and field. Opting in means carrying at least one `driftless.io/image-*` annotation.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from shared.core import semver

PREFIX = "driftless.io/image-"
REPO, BRANCH, CONTAINER, TAG, PRERELEASE, PIN = (PREFIX + k for k in ("repo", "branch", "container", "tag",
                                                                      "prerelease", "pin"))
KNOWN = (REPO, BRANCH, CONTAINER, TAG, PRERELEASE, PIN)
SHA_LONG, SHA_SHORT, SEMVER = "sha-long", "sha-short", "semver:"
WORKLOAD_CONTAINERS = {
    "Deployment": ("spec", "template", "spec", "containers"),
    "StatefulSet": ("spec", "template", "spec", "containers"),
    "DaemonSet": ("spec", "template", "spec", "containers"),
    "Job": ("spec", "template", "spec", "containers"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec", "containers"),
}
"""Where each workload kind lists its containers (an App lists them under spec.containers)."""
APP_CONTAINERS = ("spec", "containers")
GITHUB_REPO = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
BRANCH_NAME = re.compile(r"^(?!/)(?!.*(?:\.\.|//|@\{|\.lock$))[^\s~^:?*\[\\]+(?<![/.])$")

Path = tuple[Any, ...]


@dataclass(frozen=True)
class ImagePolicy:
    """What to follow: `repo` (owner/name) at `branch`, written into `container` as a `tag` form tag."""

    repo: str | None
    branch: str = "main"
    container: str | None = None
    tag: str = SHA_LONG
    prerelease: bool = False
    pin: bool = False

    @property
    def range(self) -> semver.Range | None:
        """The semver range of a `semver:<range>` policy, else None."""
        return semver.parse_range(self.tag[len(SEMVER):]) if self.tag.startswith(SEMVER) else None


def opted_in(annotations: Any) -> bool:
    return isinstance(annotations, Mapping) and any(str(k).startswith(PREFIX) for k in annotations)


def read_policy(annotations: Any, containers: Sequence[str], *, where: Path = ("metadata", "annotations"),
                workload: bool = True) -> tuple[ImagePolicy | None, list[tuple[Path, str]]]:
    """Validate the image annotations against the manifest's container names.

    `workload` is False for kinds that have no containers to update (the annotations are then a problem)."""
    if not opted_in(annotations):
        return None, []
    problems: list[tuple[Path, str]] = []
    values: dict[str, str] = {}
    for key, value in annotations.items():
        if not str(key).startswith(PREFIX):
            continue
        if key not in KNOWN:
            problems.append((where + (key,), f"unknown image annotation; allowed: {', '.join(KNOWN)}"))
        elif not isinstance(value, str) or not value.strip():
            problems.append((where + (key,), f"must be a non-empty string (quote it: '{json.dumps(value)}'), "
                                             f"got {type(value).__name__} {value!r}"))
        else:
            values[key] = value.strip()
    if not workload:
        return None, problems + [(where, "image annotations apply only to an App or a Deployment, StatefulSet, "
                                         "DaemonSet, Job or CronJob")]
    tag = values.get(TAG, SHA_LONG)
    if tag not in (SHA_LONG, SHA_SHORT) and not tag.startswith(SEMVER):
        problems.append((where + (TAG,), f"'{tag}' is not valid; allowed: {SHA_LONG}, {SHA_SHORT} or "
                                         f"{SEMVER}<range> (for example {SEMVER}^1.4)"))
    elif tag.startswith(SEMVER):
        try:
            semver.parse_range(tag[len(SEMVER):])
        except semver.RangeError as exc:
            problems.append((where + (TAG,), str(exc)))
    repo = values.get(REPO)
    if repo is not None and not GITHUB_REPO.match(repo):
        problems.append((where + (REPO,), f"'{repo}' is not valid: a GitHub repository as owner/name"))
    if repo is None and not tag.startswith(SEMVER):
        problems.append((where + (REPO,), f"is required with {TAG}: {tag} (the app repository whose commits "
                                          "name the images, as owner/name)"))
    branch = values.get(BRANCH, "main")
    if not BRANCH_NAME.match(branch):
        problems.append((where + (BRANCH,), f"'{branch}' is not a valid branch name"))
    flags = {}
    for key in (PRERELEASE, PIN):
        flags[key] = values.get(key, "false").lower()
        if flags[key] not in ("true", "false"):
            problems.append((where + (key,), f"must be \"true\" or \"false\", got {values[key]!r}"))
    container = values.get(CONTAINER)
    if container is None and len(containers) > 1:
        problems.append((where + (CONTAINER,), f"is required when there are several containers "
                                               f"({', '.join(containers)})"))
    elif container is not None and container not in containers:
        problems.append((where + (CONTAINER,), f"no container named '{container}'; containers: "
                                               f"{', '.join(containers) or 'none'}"))
    if problems:
        return None, problems
    return ImagePolicy(repo=repo, branch=branch, container=container or (containers[0] if containers else None),
                       tag=tag, prerelease=flags[PRERELEASE] == "true", pin=flags[PIN] == "true"), []


def container_names(document: Any, path: Path) -> list[str]:
    """Names of the containers at `path` in a parsed manifest (unnamed or malformed entries skipped)."""
    node = document
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return [c["name"] for c in node if isinstance(c, Mapping) and isinstance(c.get("name"), str)] \
        if isinstance(node, list) else []


@dataclass(frozen=True)
class Followed:
    """One opted-in manifest at the manifests head: where it is and what it follows."""

    target: str
    app: str
    file: str
    kind: str
    name: str
    namespace: str | None
    containers: tuple[str, ...]      # path of the containers list in the document
    policy: ImagePolicy
    image: str                       # the followed container's image in Git

    def selects(self, document: Any) -> bool:
        """True for the document that defines this manifest."""
        if not isinstance(document, Mapping) or document.get("kind") != self.kind:
            return False
        meta = document.get("metadata") if isinstance(document.get("metadata"), Mapping) else {}
        return meta.get("name") == self.name and (self.namespace is None or
                                                  meta.get("namespace", self.namespace) == self.namespace)


def followed(target: str, file: str, key: str, kind: str, name: str, namespace: str | None, annotations: Any,
             body: Any, path: Path) -> "Followed | None":
    """The opted-in manifest `body` (its containers listed at `path`) as a Followed, or None when it does
    not opt in. Engines call this for each desired object of their kind."""
    if not opted_in(annotations):
        return None
    policy = read_policy(annotations, container_names(body, path))[0]
    containers: Any = body
    for step in path:
        containers = containers[step]
    image = next(c["image"] for c in containers if c.get("name") == policy.container)
    return Followed(target, key, file, kind, name, namespace, path, policy, str(image))
