"""A real Git smart-HTTP server on loopback (dulwich's), serving one repository folder.

Dev-only: tests and `make run` use it so that Driftless fetches over the same protocol as
from GitHub or Azure Repos. Requests are counted so tests can assert round trips.
"""
from __future__ import annotations

import threading
from collections import Counter
from wsgiref.simple_server import WSGIRequestHandler, make_server


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - signature fixed by the stdlib
        pass


class GitServer:
    """Serve `repo_path` at http://127.0.0.1:<port>/repo.git until `stop()`."""

    def __init__(self, repo_path: str):
        from dulwich.repo import Repo
        from dulwich.server import DictBackend
        from dulwich.web import make_wsgi_chain

        self.requests: Counter[str] = Counter()
        backend = DictBackend({"/repo.git": Repo(repo_path)})
        chain = make_wsgi_chain(backend)

        def app(environ, start_response):
            self.requests[f"{environ['REQUEST_METHOD']} {environ.get('PATH_INFO', '')}"] += 1
            return chain(environ, start_response)

        self._server = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
        self.url = f"http://127.0.0.1:{self._server.server_port}/repo.git"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> "GitServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
