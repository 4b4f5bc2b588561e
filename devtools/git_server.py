"""Real Git smart-HTTP servers on loopback, each serving one repository folder at /repo.git.

Dev-only: tests, the bench and `make run` use them so that Driftless fetches over the same protocol as
from GitHub or Azure Repos. Two implementations with one interface (`url`, `requests`, `bytes_sent`,
`start()`, `stop()`):

- `GitServer`: dulwich's smart-HTTP server (protocol v0 only; it does not answer an incremental shallow
  fetch with a smaller pack).
- `GitBackendServer`: Git's own `git http-backend` run as a CGI, the program GitHub's and Azure Repos'
  protocol is taken from. It implements shallow/deepen/have negotiation fully and protocol v2 (asked for
  with the `Git-Protocol` header) as well as v0.

`requests` counts requests by "METHOD /path"; `bytes_sent` counts the response body bytes sent, by the
same key, so tests and the bench can measure the packs on the wire.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit
from wsgiref.simple_server import WSGIRequestHandler, make_server

REPO_PATH = "/repo.git"
"""Where each server serves its repository."""
HTTP_BACKEND = shutil.which("git-http-backend") or "/usr/lib/git-core/git-http-backend"
"""Debian's git installs the CGI here (it is not on PATH)."""


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - signature fixed by the stdlib
        pass


class GitServer:
    """Serve `repo_path` with dulwich at http://127.0.0.1:<port>/repo.git until `stop()`."""

    def __init__(self, repo_path: str):
        from dulwich.repo import Repo
        from dulwich.server import DictBackend
        from dulwich.web import make_wsgi_chain

        self.requests: Counter[str] = Counter()
        self.bytes_sent: Counter[str] = Counter()
        backend = DictBackend({REPO_PATH: Repo(repo_path)})
        chain = make_wsgi_chain(backend)

        def app(environ, start_response):
            key = f"{environ['REQUEST_METHOD']} {environ.get('PATH_INFO', '')}"
            self.requests[key] += 1

            def counted_start(status, headers, exc_info=None):
                write = start_response(status, headers, exc_info)

                def counted_write(data: bytes) -> None:
                    self.bytes_sent[key] += len(data)
                    write(data)
                return counted_write

            for chunk in chain(environ, counted_start):
                self.bytes_sent[key] += len(chunk)
                yield chunk

        self._server = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
        self.url = f"http://127.0.0.1:{self._server.server_port}{REPO_PATH}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> "GitServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class GitBackendServer:
    """Serve `repo_path` with `git http-backend` (CGI) at http://127.0.0.1:<port>/repo.git until `stop()`.

    `protocol` is the highest Git protocol version the server speaks: 2 passes the client's `Git-Protocol`
    header to the backend as `GIT_PROTOCOL` (as the Git documentation's Apache setup does); 0 drops it, so
    the backend answers protocol v0 whatever the client asks for.
    """

    def __init__(self, repo_path: str, *, protocol: int = 2):
        if not os.access(HTTP_BACKEND, os.X_OK):
            raise RuntimeError(f"git http-backend not found at {HTTP_BACKEND} (install Debian's git)")
        path = Path(repo_path)
        self.git_dir = str(path / ".git" if (path / ".git").is_dir() else path)
        self.protocol = protocol
        self.requests: Counter[str] = Counter()
        self.bytes_sent: Counter[str] = Counter()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}{REPO_PATH}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> "GitBackendServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _environment(self, method: str, path_info: str, query: str, headers) -> dict[str, str]:
        """The CGI environment of one request (RFC 3875), without the caller's own GIT_* variables."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        env.update({
            "GIT_PROJECT_ROOT": self.git_dir, "GIT_HTTP_EXPORT_ALL": "1", "GATEWAY_INTERFACE": "CGI/1.1",
            "REQUEST_METHOD": method, "PATH_INFO": path_info, "QUERY_STRING": query,
            "CONTENT_TYPE": headers.get("Content-Type", ""), "CONTENT_LENGTH": headers.get("Content-Length", ""),
            "REMOTE_ADDR": "127.0.0.1", "SERVER_PROTOCOL": "HTTP/1.1", "SERVER_SOFTWARE": "driftless-devtools",
        })
        if headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = headers["Content-Encoding"]
        asked = headers.get("Git-Protocol", "")
        if self.protocol >= 2 and asked:
            env["GIT_PROTOCOL"] = asked
        elif self.protocol == 1 and "version=1" in asked:
            env["GIT_PROTOCOL"] = "version=1"
        return env

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args) -> None:  # noqa: A002 - signature fixed by the stdlib
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._cgi()

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                self._cgi()

            def _cgi(self) -> None:
                parts = urlsplit(self.path)
                key = f"{self.command} {parts.path}"
                server.requests[key] += 1
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if parts.path != REPO_PATH and not parts.path.startswith(REPO_PATH + "/"):
                    return self._answer(key, 404, [("Content-Type", "text/plain")], b"Not Found\n")
                env = server._environment(self.command, parts.path[len(REPO_PATH):] or "/", parts.query,
                                          self.headers)
                done = subprocess.run([HTTP_BACKEND], input=body, env=env, capture_output=True, check=False)
                head, _, payload = done.stdout.partition(b"\r\n\r\n")
                if not _ and b"\n\n" in done.stdout:
                    head, _, payload = done.stdout.partition(b"\n\n")
                status, headers = 200, []
                for line in head.decode("latin-1").splitlines():
                    name, _, value = line.partition(":")
                    if name.lower() == "status":
                        status = int(value.split()[0])
                    elif name:
                        headers.append((name, value.strip()))
                if done.returncode and not done.stdout:
                    status, headers, payload = 500, [("Content-Type", "text/plain")], done.stderr[-500:]
                self._answer(key, status, headers, payload)

            def _answer(self, key: str, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in ("content-length", "transfer-encoding"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                server.bytes_sent[key] += len(payload)

        return Handler
