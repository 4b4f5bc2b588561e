"""Secrets against the real azure-keyvault-secrets SecretClient talking HTTPS to devtools/keyvault_stub.py."""
from __future__ import annotations

import logging
import socket
from concurrent.futures import ThreadPoolExecutor

import pytest

from devtools.identity import StaticToken
from devtools.keyvault_stub import VAULT_HOST, KeyVaultStub
from shared.adapters.key_vault import Secrets, SecretsUnavailable
from shared.config.settings import Settings
from tests.conftest import TOKEN  # what the managed identity endpoint hands out

VALUE = "s3cr3t-value-that-must-never-be-shown"
WEBHOOK = "driftless-webhook-secret"
GIT = "driftless-git-token"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def stub(cert_dir, monkeypatch):
    """A fresh stub (so a fresh SDK challenge cache entry); its vault host resolves to loopback, its CA is trusted."""
    resolve = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo",
                        lambda host, *args, **kw: resolve("127.0.0.1" if host == VAULT_HOST else host, *args, **kw))
    server = KeyVaultStub(cert_dir=cert_dir, token=TOKEN).start()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", server.ca_path)
    yield server
    server.stop()


def vault_secrets(stub: KeyVaultStub, clock: FakeClock | None = None, **env: str) -> Secrets:
    settings = Settings.from_env({"DRIFTLESS_KEYVAULT_URL": stub.url, **env})
    return Secrets(settings, clock=clock or FakeClock())


def test_value_is_fetched_through_the_key_vault_challenge(stub):
    stub.set_secret(WEBHOOK, VALUE)

    assert vault_secrets(stub).webhook_secret() == VALUE
    assert stub.calls() == {"challenge": 1, "GET secret": 1}


def test_value_is_cached_for_the_ttl_then_fetched_again(stub):
    clock = FakeClock()
    secrets = vault_secrets(stub, clock, DRIFTLESS_SECRET_TTL="60")
    stub.set_secret(GIT, "first")

    assert secrets.git_token() == "first"
    stub.set_secret(GIT, "second")
    clock.now += 59
    assert secrets.git_token() == "first"
    assert stub.calls()["GET secret"] == 1

    clock.now += 2
    assert secrets.git_token() == "second"
    assert stub.calls()["GET secret"] == 2


def test_concurrent_readers_share_one_fetch(stub):
    stub.set_secret(WEBHOOK, VALUE)
    secrets = vault_secrets(stub)

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(lambda _: secrets.webhook_secret(), range(16))) == {VALUE}
    assert stub.calls()["GET secret"] == 1


def test_missing_secret_is_none_and_cached(stub):
    secrets = vault_secrets(stub)

    assert secrets.azdo_token() is None
    assert secrets.azdo_token() is None
    assert stub.calls()["GET secret"] == 1


def test_vault_down_raises_without_caching_the_failure(stub):
    stub.set_secret(GIT, VALUE)
    secrets = vault_secrets(stub)
    stub.down = True

    with pytest.raises(SecretsUnavailable) as failure:
        secrets.git_token()

    message = str(failure.value)
    assert f"Key Vault {stub.url} unavailable reading secret '{GIT}'" in message
    assert "503" in message and VALUE not in message
    assert stub.calls()["GET secret"] == 3  # one try and retry_total=2 retries, then give up
    stub.down = False
    assert secrets.git_token() == VALUE


def test_unreachable_vault_raises(stub):
    secrets = vault_secrets(stub)
    stub.stop()

    with pytest.raises(SecretsUnavailable, match=f"secret '{GIT}': ServiceRequestError"):
        secrets.git_token()


def test_rejected_token_raises(stub, identity, monkeypatch):
    stub.set_secret(GIT, VALUE)
    monkeypatch.setattr(identity, "token", "wrong")             # the identity endpoint hands out a token the vault refuses

    with pytest.raises(SecretsUnavailable, match=r"HTTP 401 Unauthorized$") as failure:
        vault_secrets(stub).git_token()
    assert VALUE not in str(failure.value)
    assert stub.calls()["unauthorized"] == 1


def test_secret_put_by_the_sdk_is_served(stub):
    from azure.keyvault.secrets import SecretClient

    client = SecretClient(stub.url, StaticToken(TOKEN))
    first = client.set_secret(WEBHOOK, "old")
    client.set_secret(WEBHOOK, VALUE)

    assert vault_secrets(stub).webhook_secret() == VALUE
    assert client.get_secret(WEBHOOK, first.properties.version).value == "old"
    assert first.id == f"{stub.url}/secrets/{WEBHOOK}/{first.properties.version}"
    assert len(first.properties.version) == 32


def test_environment_mode_reads_variables():
    env = {"DRIFTLESS_WEBHOOK_SECRET": VALUE, "DRIFTLESS_GIT_TOKEN": ""}
    secrets = Secrets(Settings.from_env({}), env=env)

    assert secrets.webhook_secret() == VALUE
    assert secrets.git_token() is None
    assert secrets.flux_hmac() is None


def test_values_never_appear_in_logs_or_repr(stub, caplog):
    caplog.set_level(logging.DEBUG)
    stub.set_secret(WEBHOOK, VALUE)
    stub.set_secret("driftless-github-app-private-key", VALUE)
    secrets = vault_secrets(stub)
    environment = Secrets(Settings.from_env({}), env={"DRIFTLESS_WEBHOOK_SECRET": VALUE})

    assert secrets.webhook_secret() == secrets.github_app_private_key() == environment.webhook_secret() == VALUE

    fetches = [r.getMessage() for r in caplog.records if r.name == "driftless.secrets"]
    assert len(fetches) == 3 and all(WEBHOOK in m or "private-key" in m for m in fetches)
    assert VALUE not in caplog.text
    assert WEBHOOK in repr(secrets) and VALUE not in repr(secrets) + repr(environment)


def test_a_caller_without_an_rbac_role_gets_a_clear_error_naming_the_secret_not_its_value(stub):
    stub.set_secret(GIT, VALUE)
    stub.deny(GIT)

    with pytest.raises(SecretsUnavailable) as failure:
        vault_secrets(stub).git_token()
    message = str(failure.value)
    assert message.startswith(f"Key Vault {stub.url} refused reading secret '{GIT}': HTTP 403 Forbidden (ForbiddenByRbac)")
    assert "Key Vault Secrets User" in message and VALUE not in message
    assert stub.calls()["forbidden"] == 1 and stub.calls()["GET secret"] == 1          # a 403 is not retried
    with pytest.raises(SecretsUnavailable, match=r"refused storing secret 'x'.*ForbiddenByRbac.*Secrets Officer"):
        stub.deny("x")
        vault_secrets(stub).put("x", VALUE)


def test_a_disabled_secret_is_refused_with_key_vaults_own_answer(stub):
    from azure.core.exceptions import HttpResponseError
    from azure.keyvault.secrets import SecretClient

    stub.set_secret(WEBHOOK, VALUE)
    stub.disable(WEBHOOK)
    with pytest.raises(HttpResponseError) as raw:
        SecretClient(stub.url, StaticToken(TOKEN)).get_secret(WEBHOOK)
    assert raw.value.status_code == 403 and raw.value.error.code == "Forbidden"
    assert raw.value.error.message == "Operation get is not allowed on a disabled secret."
    assert raw.value.error.innererror == {"code": "SecretDisabled"}

    with pytest.raises(SecretsUnavailable, match=r"HTTP 403 Forbidden \(SecretDisabled\); the secret is disabled") as failure:
        vault_secrets(stub).webhook_secret()
    assert WEBHOOK in str(failure.value) and VALUE not in str(failure.value)


def test_throttling_is_waited_out_through_the_sdks_retries_and_reported_once_they_are_used_up(stub):
    stub.set_secret(GIT, VALUE)
    stub.throttle(2, retry_after="0.01")               # Key Vault's Retry-After, shortened for the test

    assert vault_secrets(stub).git_token() == VALUE
    assert stub.calls()["throttled"] == 2 and stub.calls()["GET secret"] == 3

    stub.throttle(3, retry_after="0.01")
    with pytest.raises(SecretsUnavailable, match=rf"unavailable reading secret '{GIT}': HTTP 429 Throttled$") as failure:
        vault_secrets(stub).git_token()
    assert VALUE not in str(failure.value) and stub.calls()["throttled"] == 5


def test_the_stub_answers_429_with_key_vaults_body_and_retry_after(stub):
    import requests

    stub.throttle(1)
    reply = requests.get(f"{stub.url}/secrets/{GIT}?api-version=7.5", headers={"Authorization": f"Bearer {TOKEN}"},
                         timeout=10)
    assert reply.status_code == 429 and reply.headers["Retry-After"] == "1"
    assert reply.json() == {"error": {"code": "Throttled", "message": "Request was not processed because too many "
                                      "requests were received. Reason: VaultRequestTypeLimitReached"}}
