"""HTTPS plumbing shared by the local stubs (ACA emulator, Key Vault, Kubernetes API).

One test CA per `cert_dir` (`ca.pem` + `ca-key.pem`, created once and reused), so a single
REQUESTS_CA_BUNDLE trusts every stub; and a threaded HTTPS server whose TLS handshakes run in the
per-connection threads.
"""
from __future__ import annotations

import contextlib
import os
import socket
import ssl
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import trustme

HANDSHAKE_TIMEOUT_S = 10.0


def certificate(cert_dir: str | None, *hosts: str) -> tuple[str, trustme.LeafCert, tempfile.TemporaryDirectory | None]:
    """(CA path, a server certificate for `hosts`, the temp dir to keep alive when `cert_dir` is None)."""
    temporary = None
    if cert_dir is None:
        temporary = tempfile.TemporaryDirectory(prefix="driftless-ca-")
        cert_dir = temporary.name
    os.makedirs(cert_dir, exist_ok=True)
    ca_path, key_path = os.path.join(cert_dir, "ca.pem"), os.path.join(cert_dir, "ca-key.pem")
    if os.path.exists(ca_path) and os.path.exists(key_path):
        with open(ca_path, "rb") as cert_file, open(key_path, "rb") as key_file:
            ca = trustme.CA.from_pem(cert_file.read(), key_file.read())
    else:
        ca = trustme.CA()
        ca.private_key_pem.write_to_path(key_path)
        ca.cert_pem.write_to_path(ca_path)
    return ca_path, ca.issue_cert(*hosts), temporary


SHUTDOWN_POLL_S = 0.05
"""How often a serving thread checks for stop(), so tests tear down quickly."""


class TlsServer(ThreadingHTTPServer):
    """Threaded HTTPS server; `owner` is the stub the handler serves (`self.server.owner`)."""

    daemon_threads = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext, owner: Any,
                 handler: type[BaseHTTPRequestHandler]) -> None:
        self.context = context
        self.owner = owner
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        super().__init__(address, handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # Headers and body go out as separate writes: without NODELAY, Nagle + delayed ACK add ~40 ms each.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        request.settimeout(HANDSHAKE_TIMEOUT_S)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except OSError:
            return
        tls.settimeout(None)
        with self._connections_lock:
            self._connections.add(tls)
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            with self._connections_lock:
                self._connections.discard(tls)
            self.shutdown_request(tls)

    def serve_in_background(self, name: str) -> "TlsServer":
        """Serve from a daemon thread, checking for `stop()` every 50 ms."""
        self._thread = threading.Thread(target=self.serve_forever, args=(SHUTDOWN_POLL_S,), name=name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close kept-alive connections and the socket; wait for the serving thread."""
        self.shutdown()
        self.close_connections()
        self.server_close()
        if self._thread is not None:
            self._thread.join()

    def close_connections(self) -> None:
        """Shut down kept-alive connections so their threads end."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore clients that disconnect or fail TLS; report anything else."""
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)
