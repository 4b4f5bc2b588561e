"""Fixtures of the stand-ins' own tests: one ACA emulator per test module, reset before each test."""
from __future__ import annotations

from typing import Iterator

import pytest

from devtools.aca_emulator import AcaEmulator


@pytest.fixture(scope="module")
def server() -> Iterator[AcaEmulator]:
    emulator = AcaEmulator().start()
    yield emulator
    emulator.stop()


@pytest.fixture
def emulator(server: AcaEmulator) -> AcaEmulator:
    server.reset()
    return server
