"""Azurite, the real Azure Storage emulator, from node_modules on free loopback ports.

Dev-only: tests and the local Functions host (devtools/local_runner.py) talk to it with the
real Azure SDKs. Data lives in memory and is gone when it stops.
`python -m devtools.azurite` runs one until SIGINT/SIGTERM and prints its connection string.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
SERVICES = ("blob", "queue", "table")


def _free_ports(count: int) -> list[int]:
    """Distinct loopback ports that were free a moment ago (all bound at once, then released)."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


class Azurite:
    """Azurite from node_modules on free loopback ports, in-memory persistence; a real Storage emulator."""

    def __init__(self, *, root: str | None = None):
        self.binary = Path(root or Path(__file__).resolve().parent.parent) / "node_modules" / ".bin" / "azurite"
        self.ports: dict[str, int] = {}
        self.connection_string = ""
        self._process: subprocess.Popen | None = None
        self._stderr = tempfile.TemporaryFile()

    def start(self, timeout: float = 30) -> "Azurite":
        """Run Azurite and wait until blob, queue and table all accept connections.

        Raises RuntimeError, with the tail of Azurite's stderr, if it exits or `timeout` passes first.
        """
        if not self.binary.exists():
            raise RuntimeError(f"{self.binary} not found: run `npm ci` in the repository root")
        self.ports = dict(zip(SERVICES, _free_ports(len(SERVICES))))
        args = [str(self.binary), "--inMemoryPersistence", "--silent", "--skipApiVersionCheck", "--loose",
                "--disableProductStyleUrl", "--disableTelemetry"]
        for service, port in self.ports.items():
            args += [f"--{service}Host", "127.0.0.1", f"--{service}Port", str(port)]
        self._process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=self._stderr, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not all(_accepts(port) for port in self.ports.values()):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Azurite did not start: {self._stderr_tail()}")
            time.sleep(0.1)
        self.connection_string = (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
            + "".join(f"{service.capitalize()}Endpoint=http://127.0.0.1:{port}/{ACCOUNT};"
                      for service, port in self.ports.items()))
        return self

    def stop(self) -> None:
        """Terminate Azurite's process group and wait for it (killing it after 10 s)."""
        if self._process is None:
            return
        if self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait()
        self._process = None

    def _stderr_tail(self, limit: int = 2000) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-limit:].strip() or "(no stderr)"


def wait_for_shutdown() -> None:
    """Block the main thread until SIGINT or SIGTERM arrives."""
    received = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: received.set())
    while not received.is_set():
        received.wait(0.2)  # wake up: Python runs handlers in the main thread, whichever thread took the signal


def main() -> None:
    azurite = Azurite().start()
    try:
        print(f"Azurite: {azurite.connection_string}", flush=True)
        wait_for_shutdown()
    finally:
        azurite.stop()


if __name__ == "__main__":
    main()
