"""shared.adapters.registry against devtools/registry_stub.py over HTTPS: whatever media type a tag was pushed
as, `exists` finds it (it accepts every manifest type), and a tag that is not there is not found."""
from __future__ import annotations

import pytest

from devtools.registry_stub import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, RegistryStub
from shared.adapters.registry import Registry


@pytest.fixture
def registry(cert_dir, monkeypatch):
    stub = RegistryStub(cert_dir=cert_dir, credentials="robot:pw").start()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", stub.ca_path)
    yield stub
    stub.stop()


@pytest.mark.parametrize("media_type", [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST])
def test_exists_finds_a_tag_of_any_manifest_type(registry, media_type):
    registry.push("team/web", "1.0", media_type=media_type)
    client = Registry(registry.host, credentials=lambda: "robot:pw")
    assert client.exists("team/web", "1.0") is True
    assert client.exists("team/web", registry.digest("team/web", "1.0")) is True
    assert client.exists("team/web", "2.0") is False
    heads = [c for c in registry.of("manifest") if c.method == "HEAD"]
    assert heads and all(media_type in c.headers["Accept"] for c in heads)
