"""devtools/registry_stub.py answers as the OCI distribution registry does: per-tag digests and `Accept`
negotiation (plain HTTPS requests against it; no Driftless code involved)."""
from __future__ import annotations

import hashlib
import json

import pytest
import requests

from devtools.registry_stub import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, RegistryStub

EVERY_TYPE = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST))


@pytest.fixture
def registry(cert_dir):
    stub = RegistryStub(cert_dir=cert_dir, auth="none").start()
    stub.push("team/web", "1.0", "2.0")                                     # OCI indexes (what buildx pushes)
    stub.push("team/web", "single", media_type=OCI_MANIFEST)
    stub.push("team/web", "legacy", media_type=DOCKER_LIST)
    stub.push("team/web", "docker", media_type=DOCKER_MANIFEST)
    yield stub
    stub.stop()


def get(registry, reference: str, accept: str | None = EVERY_TYPE, method: str = "GET") -> requests.Response:
    headers = {"Accept": accept} if accept is not None else {}
    return requests.request(method, f"https://{registry.host}/v2/team/web/manifests/{reference}", headers=headers,
                            verify=registry.ca_path, timeout=10)


def test_each_tag_has_its_own_digest_which_is_the_sha256_of_what_is_served(registry):
    digests = {tag: get(registry, tag).headers["Docker-Content-Digest"] for tag in ("1.0", "2.0", "single")}
    assert len(set(digests.values())) == 3
    for tag, digest in digests.items():
        reply = get(registry, tag)
        assert digest == registry.digest("team/web", tag) == "sha256:" + hashlib.sha256(reply.content).hexdigest()
        assert reply.headers["Etag"] == f'"{digest}"' and int(reply.headers["Content-Length"]) == len(reply.content)
    head = get(registry, "1.0", method="HEAD")
    assert head.status_code == 200 and head.content == b"" and head.headers["Docker-Content-Digest"] == digests["1.0"]
    assert head.headers["Content-Type"] == OCI_INDEX


def test_an_index_is_served_as_such_and_its_images_by_digest(registry):
    reply = get(registry, "1.0")
    index = reply.json()
    assert reply.headers["Content-Type"] == OCI_INDEX == index["mediaType"]
    assert [m["platform"] for m in index["manifests"]] == [{"os": "linux", "architecture": "amd64"},
                                                          {"os": "linux", "architecture": "arm64"}]
    child = get(registry, index["manifests"][0]["digest"], accept=OCI_MANIFEST)
    assert child.status_code == 200 and child.headers["Content-Type"] == OCI_MANIFEST
    assert child.headers["Docker-Content-Digest"] == index["manifests"][0]["digest"]
    assert child.json()["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"


@pytest.mark.parametrize("reference, accept, message", [
    ("1.0", OCI_MANIFEST + ", " + DOCKER_MANIFEST, "OCI index found, but accept header does not support OCI indexes"),
    ("1.0", None, "OCI index found, but accept header does not support OCI indexes"),
    ("single", OCI_INDEX, "OCI manifest found, but accept header does not support OCI manifests"),
])
def test_a_media_type_the_client_does_not_accept_is_manifest_unknown(registry, reference, accept, message):
    reply = get(registry, reference, accept=accept)
    assert reply.status_code == 404
    assert reply.json() == {"errors": [{"code": "MANIFEST_UNKNOWN", "message": message}]}


def test_a_docker_manifest_list_is_rewritten_to_its_amd64_image_for_a_client_without_lists(registry):
    listed = get(registry, "legacy").json()
    assert listed["mediaType"] == DOCKER_LIST
    amd64 = listed["manifests"][0]
    rewritten = get(registry, "legacy", accept=DOCKER_MANIFEST)
    assert rewritten.status_code == 200 and rewritten.headers["Content-Type"] == DOCKER_MANIFEST
    assert rewritten.headers["Docker-Content-Digest"] == amd64["digest"]
    by_digest = get(registry, registry.digest("team/web", "legacy"), accept=DOCKER_MANIFEST)
    assert by_digest.headers["Content-Type"] == DOCKER_LIST             # never rewritten when asked by digest


def test_unknown_tags_and_repositories(registry):
    assert get(registry, "9.9").json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    other = requests.get(f"https://{registry.host}/v2/team/none/manifests/1.0", verify=registry.ca_path, timeout=10)
    assert other.status_code == 404 and other.json()["errors"][0]["code"] == "NAME_UNKNOWN"
    tags = requests.get(f"https://{registry.host}/v2/team/web/tags/list", verify=registry.ca_path, timeout=10)
    assert json.loads(tags.content) == {"name": "team/web", "tags": ["1.0", "2.0", "docker", "legacy", "single"]}
