"""Fixtures of the stand-ins' own tests: one ACA emulator per test module, reset before each test; an environment
in it; the real SDK client pointed at it."""
from __future__ import annotations

from typing import Iterator

import pytest

from azure.mgmt.appcontainers import ContainerAppsAPIClient

from devtools.aca_emulator import AcaEmulator
from tests.devtools.test_aca_emulator import RG, SUB, make_client


@pytest.fixture(scope="module")
def server() -> Iterator[AcaEmulator]:
    emulator = AcaEmulator().start()
    yield emulator
    emulator.stop()


@pytest.fixture
def emulator(server: AcaEmulator) -> AcaEmulator:
    server.reset()
    return server


@pytest.fixture
def env_id(emulator: AcaEmulator) -> str:
    return emulator.add_environment(SUB, RG, "env-dev")["id"]


@pytest.fixture
def client(emulator: AcaEmulator) -> ContainerAppsAPIClient:
    return make_client(emulator, retry_backoff_factor=0.01)
