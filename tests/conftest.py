"""Shared fixtures. Nothing of Driftless is faked:

- ARM is the local ACA emulator (devtools/aca_emulator.py) over HTTPS, driven by the real
  `azure-mgmt-appcontainers` client; tests read its call counters and inject faults.
- Git repositories are real (built with the `git` binary), read by dulwich either in place
  or over dulwich's smart-HTTP server on loopback.
- Queues and the status table are Azurite; Key Vault is devtools/keyvault_stub.py behind the
  real SecretClient; the Function App is the real function_app.py in devtools/local_runner.py.
"""
from __future__ import annotations

import importlib
import json
import logging
import os
import socket
import subprocess
import textwrap
from pathlib import Path

import pytest

from devtools.aca_emulator import AcaEmulator
from devtools.azurite import Azurite
from devtools.identity import IdentityStub
from devtools.keyvault_stub import VAULT_HOST, KeyVaultStub
from devtools.local_runner import LocalRunner
from shared.adapters import storage
from shared.config.settings import Settings
from shared.core.queues import POISON_SUFFIX, PUSH_QUEUE, RECONCILE_QUEUE
from shared.engines.reconciler import Reconciler
from shared.services.ci_feedback import Callbacks
from shared.services.pipeline import Pipeline

WEBHOOK_SECRET = "whsec-e2e-never-log-me"
GIT_TOKEN = "ghp-e2e-never-log-me"
KEY = "local-dev-key"
SUBSCRIPTION = "11111111-2222-3333-4444-555555555555"
GROUP = "rg-apps"
ENVIRONMENT = "env-prod"
TOKEN = "test-token"


@pytest.fixture(scope="session")
def cert_dir(tmp_path_factory) -> str:
    """One test CA for every local HTTPS stub, so one REQUESTS_CA_BUNDLE trusts them all."""
    return str(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="session", autouse=True)
def identity():
    """The managed identity endpoint (devtools/identity.py) for the whole session: every Azure SDK client of the
    product gets its token the way it does in a Function App, through DefaultAzureCredential."""
    stub = IdentityStub(TOKEN).start()
    saved = {k: os.environ.get(k) for k in stub.env}
    os.environ.update(stub.env)
    yield stub
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    stub.stop()


@pytest.fixture(scope="session")
def emulator(cert_dir):
    server = AcaEmulator(cert_dir=cert_dir, token=TOKEN).start()
    os.environ["REQUESTS_CA_BUNDLE"] = server.ca_path
    yield server
    server.stop()


@pytest.fixture
def aca(emulator):
    """The emulator, emptied (its clock back to real time, no injected metrics), with the test environment (and a
    second one) in place. It also serves Azure Monitor's metrics API at `metrics_url`: inject requests with
    `set_requests(app, revision, per_minute=..., errors_5xx=...)` and time with `set_clock(fn)` (see `clock`)."""
    emulator.reset()
    emulator.add_environment(SUBSCRIPTION, GROUP, ENVIRONMENT)
    emulator.add_environment(SUBSCRIPTION, GROUP, "env-other")
    return emulator


class Clock:
    """Injected time (seconds since the epoch), advanced by hand: `clock.advance(60)`."""

    def __init__(self, start: float):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


@pytest.fixture
def clock(aca) -> Clock:
    """The emulator's clock for this test (operations, throttling, metrics), starting at a whole minute,
    2026-11-30T12:00:00Z; `aca.reset()` at the next test's start restores real time."""
    injected = Clock(1_796_040_000.0)
    aca.set_clock(injected)
    return injected


class GitRepo:
    """A real Git repository in a temp folder; `write` then `commit` like a user would."""

    def __init__(self, path: Path):
        self.path = path
        path.mkdir(parents=True)
        self._git("init", "-q", "-b", "main")

    def _git(self, *args: str) -> str:
        return subprocess.run(["git", "-C", str(self.path), "-c", "user.name=Test", "-c", "user.email=t@example.com",
                               *args], check=True, capture_output=True, text=True).stdout.strip()

    def write(self, name: str, text: str) -> None:
        file = self.path / name
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(textwrap.dedent(text))

    def remove(self, name: str) -> None:
        (self.path / name).unlink()

    def commit(self, message: str = "change") -> str:
        self._git("add", "-A")
        self._git("commit", "-q", "--allow-empty", "-m", message)
        return self._git("rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path) -> GitRepo:
    return GitRepo(tmp_path / "repo")


def app_yaml(name: str, *, image: str = "nginx:1.27", cpu: float = 0.5, memory: str = "1Gi", extra: str = "") -> str:
    """A minimal valid App manifest; `extra` is appended under `spec:` (indent it by two spaces)."""
    return (f"apiVersion: driftless.io/v1alpha1\nkind: App\nmetadata:\n  name: {name}\nspec:\n"
            f"  containers:\n    - name: {name}\n      image: {image}\n      cpu: {cpu}\n      memory: {memory}\n"
            + extra)


def make_settings(repo_url: str, emulator: AcaEmulator, **env: str) -> Settings:
    values = {
        "DRIFTLESS_REPO_URL": repo_url, "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
        "DRIFTLESS_RESOURCE_GROUP": GROUP, "DRIFTLESS_ACA_ENVIRONMENT": ENVIRONMENT,
        "DRIFTLESS_ARM_ENDPOINT": emulator.url, "DRIFTLESS_METRICS_ENDPOINT": emulator.metrics_url,
        "DRIFTLESS_METRICS_DELAY": "0",
        "DRIFTLESS_ARM_POLL_INTERVAL": "0.02", "DRIFTLESS_APPLY_TIMEOUT": "20",
    }
    values.update(env)
    return Settings.from_env(values)


@pytest.fixture
def driftless(repo, aca):
    """Build a Reconciler for `repo` against the emulator; keyword args become settings."""
    def build(**env: str) -> Reconciler:
        return Reconciler(make_settings(str(repo.path), aca, **env))
    return build


def sync(reconciler: Reconciler, **kwargs):
    """One pass over every Target at the branch head; returns {target name: PassResult}."""
    revision = reconciler.source.head()
    targets, problems = reconciler.targets(revision)
    assert not problems, problems
    return {t.name: reconciler.reconcile(t, revision, **kwargs) for t in targets}


def outcomes(result) -> dict:
    return {o.app: o for o in result.outcomes}


def writes(emulator: AcaEmulator) -> int:
    return sum(n for key, n in emulator.calls().items() if key.split()[0] in ("PUT", "PATCH", "DELETE")
               and "environment" not in key)


@pytest.fixture(scope="session")
def azurite():
    server = Azurite().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def vault(cert_dir):
    """The Key Vault stub at https://driftless.vault.localhost:<port>, resolved to loopback for this session."""
    resolve = socket.getaddrinfo
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket, "getaddrinfo",
                      lambda host, *a, **kw: resolve("127.0.0.1" if host == VAULT_HOST else host, *a, **kw))
        server = KeyVaultStub(cert_dir=cert_dir, token=TOKEN).start()
        yield server
        server.stop()


@pytest.fixture
def stack(repo, aca, azurite, vault, monkeypatch, caplog):
    """Settings for the Function App, empty queues and table, a started local host; secrets checked at the end."""
    vault.reset()
    vault.set_secret("driftless-webhook-secret", WEBHOOK_SECRET)
    vault.set_secret("driftless-git-token", GIT_TOKEN)
    env = {
        "AzureWebJobsStorage": azurite.connection_string, "DRIFTLESS_REPO_URL": str(repo.path),
        "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION, "DRIFTLESS_RESOURCE_GROUP": GROUP,
        "DRIFTLESS_ACA_ENVIRONMENT": ENVIRONMENT, "DRIFTLESS_ARM_ENDPOINT": aca.url,
        "DRIFTLESS_METRICS_ENDPOINT": aca.metrics_url, "DRIFTLESS_METRICS_DELAY": "0", "DRIFTLESS_ARM_POLL_INTERVAL": "0.02",
        "DRIFTLESS_KEYVAULT_URL": vault.url, "DRIFTLESS_SECRET_TTL": "0", "DRIFTLESS_REAPPLY_BACKOFF": "0",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    # Real-time waits become short: a busy Target's job and a failed CI sink come back after 1 s / at once.
    monkeypatch.setattr(Pipeline, "lease_retry_seconds", 1)
    monkeypatch.setattr(Callbacks, "retry_base_seconds", 0)
    for name in (RECONCILE_QUEUE, PUSH_QUEUE, "phase-events"):
        storage.queue(name + POISON_SUFFIX).clear_messages()
        storage.queue(name).clear_messages()
    table = storage.table()
    for entity in list(table.list_entities()):
        table.delete_entity(entity["PartitionKey"], entity["RowKey"])
    host = json.load(open("host.json"))
    host["extensions"]["queues"]["visibilityTimeout"] = "00:00:00"
    import function_app
    runner = LocalRunner(importlib.reload(function_app).app, connection_string=azurite.connection_string,
                         host_json=host, function_key=KEY).start(port=0, pump=False)
    caplog.set_level(logging.DEBUG)
    yield runner
    runner.stop()
    secrets = {"webhook": WEBHOOK_SECRET, "git token": GIT_TOKEN, **vault.values()}
    leaked = [name for name, value in secrets.items() if value in caplog.text]
    assert not leaked, f"secret values of {leaked} appear in the logs"
