"""Shared pieces of the benchmarks: machine facts, statistics, Git repositories of manifests, bounded waits."""
from __future__ import annotations

import math
import os
import platform
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

ROOT = Path(__file__).resolve().parent.parent
SUBSCRIPTION = "11111111-2222-3333-4444-555555555555"
GROUP = "rg-bench"
ENVIRONMENT = "env-bench"
TOKEN = "bench-token"
POLL_INTERVAL = "0.25"
"""DRIFTLESS_ARM_POLL_INTERVAL for every benchmark (the product default is 5 s)."""
SECRET = "bench-webhook-secret"
"""The webhook secret of every benchmark's local Functions host."""
FUNCTION_KEY = "bench-key"


class BenchFailure(RuntimeError):
    """Something is functionally broken (not slow): the benchmark exits non-zero."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise BenchFailure(message)


def machine() -> dict[str, str]:
    """nproc, CPU model, Python version and OS of this machine."""
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": str(os.cpu_count()), "cpu": model, "python": platform.python_version(),
            "os": f"{platform.system()} {platform.release()}"}


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.01) -> bool:
    """Poll `predicate` until true or `timeout` seconds pass; whether it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def app_yaml(name: str, image: str = "nginx:1.27") -> str:
    """A minimal valid App manifest (the shape of tests/conftest.py's `app_yaml`)."""
    return (f"apiVersion: driftless.io/v1alpha1\nkind: App\nmetadata:\n  name: {name}\nspec:\n"
            f"  containers:\n    - name: {name}\n      image: {image}\n      cpu: 0.5\n      memory: 1Gi\n")


def app_name(index: int) -> str:
    return f"app-{index:05d}"


class GitRepo:
    """A real Git repository (the `git` binary) whose `apps/` holds generated App manifests."""

    def __init__(self, path: Path):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self._git("init", "-q", "-b", "main")

    def _git(self, *args: str) -> str:
        command = ["git", "-C", str(self.path), "-c", "user.name=Bench", "-c", "user.email=bench@driftless.invalid",
                   "-c", "gc.auto=0", "-c", "commit.gpgsign=false", *args]
        return subprocess.run(command, check=True, capture_output=True, text=True, timeout=120).stdout.strip()

    def write_app(self, name: str, image: str = "nginx:1.27") -> None:
        file = self.path / "apps" / f"{name}.yaml"
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(app_yaml(name, image))

    def commit(self, message: str = "change") -> str:
        self._git("add", "-A")
        self._git("commit", "-q", "--allow-empty", "-m", message)
        return self._git("rev-parse", "HEAD")


def repo_with_apps(path: Path, count: int) -> tuple[GitRepo, str]:
    """A repository with `count` apps committed; (repo, head)."""
    repo = GitRepo(path)
    for index in range(count):
        repo.write_app(app_name(index))
    return repo, repo.commit(f"{count} apps")


_identity = None


def identity_env() -> dict[str, str]:
    """IDENTITY_ENDPOINT / IDENTITY_HEADER of this process's managed identity stub (started once), which hands
    out TOKEN: the product's DefaultAzureCredential gets its ARM token there, as in a Function App."""
    global _identity
    if _identity is None:
        from devtools.identity import IdentityStub

        _identity = IdentityStub(TOKEN).start()
    return _identity.env


def engine_env(repo_url: str, arm_endpoint: str, ca_path: str, **extra: str) -> dict[str, str]:
    """Settings for a Reconciler against the emulator (the default Target reads `apps/`)."""
    env = {
        "DRIFTLESS_REPO_URL": repo_url, "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
        "DRIFTLESS_RESOURCE_GROUP": GROUP, "DRIFTLESS_ACA_ENVIRONMENT": ENVIRONMENT,
        "DRIFTLESS_ARM_ENDPOINT": arm_endpoint, **identity_env(),
        "DRIFTLESS_ARM_POLL_INTERVAL": POLL_INTERVAL, "DRIFTLESS_APPLY_TIMEOUT": "120",
        "REQUESTS_CA_BUNDLE": ca_path, "DRIFTLESS_QUIET": "1",
    }
    env.update(extra)
    return env


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """The current environment plus `extra`, with the repository root importable."""
    env = {**os.environ, **extra}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def python() -> str:
    return sys.executable


class Marks:
    """Start/end times of instrumented calls, newest last."""

    def __init__(self) -> None:
        self.events: dict[str, list[tuple[float, float]]] = {}

    @contextmanager
    def wrapped(self, owner: Any, name: str) -> Iterator[None]:
        original: Callable[..., Any] = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.monotonic()
            try:
                return original(*args, **kwargs)
            finally:
                self.events.setdefault(name, []).append((started, time.monotonic()))

        setattr(owner, name, timed)
        try:
            yield
        finally:
            setattr(owner, name, original)

    def count(self, name: str) -> int:
        return len(self.events.get(name, []))

    def last(self, name: str) -> tuple[float, float]:
        return self.events[name][-1]


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """os.environ with `values` set, restored afterwards."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def post_push(url: str, clone_url: str, head: str, path: str, *, timeout: float = 30) -> Any:
    """POST a signed GitHub push of `head` (which modified `path`) to the local host at `url`; the response."""
    import json
    import uuid

    import requests

    from shared.core.webhook import sign

    body = json.dumps({"ref": "refs/heads/main", "after": head, "repository": {"clone_url": clone_url},
                       "commits": [{"id": head, "added": [], "modified": [path], "removed": []}]}).encode()
    headers = {"X-GitHub-Event": "push", "X-GitHub-Delivery": str(uuid.uuid4()), "Content-Type": "application/json",
               "X-Hub-Signature-256": sign(SECRET, body)}
    return requests.post(f"{url}/api/github/webhook", data=body, headers=headers, timeout=timeout)


def live_image(emulator: Any, subscription: str, group: str, app: str) -> str | None:
    """The image of the app's first container in the emulator, or None while the app does not exist."""
    live = emulator.app(subscription, group, app)
    return live["properties"]["template"]["containers"][0]["image"] if live else None
