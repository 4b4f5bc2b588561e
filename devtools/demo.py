"""`make run`: the main job end to end on a laptop, with no Azure account.

Starts Azurite (queues and the status table), the local ACA emulator (HTTPS, real ARM
contract) and a Git smart-HTTP server for a repository built from `examples/`, and hosts the
real `function_app.py` in the local Functions runner. Then: a signed GitHub push webhook ->
`reconcile-pushes` queue -> worker -> apps created in the emulator -> `GET /api/status`; an
out-of-band change in "the portal" healed by the timer; a steady-state pass that writes
nothing; then a short canary (`spec.rollout`, pauses of seconds) walked to promotion by its queued step jobs.
Exits non-zero if any step did not do what it says.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".local" / "demo"
SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
GROUP, ENVIRONMENT = "demo-rg", "demo-env"
WEBHOOK_SECRET = "demo-webhook-secret"
FUNCTION_KEY = "local-dev-key"


def banner(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def build_repo(folder: Path) -> str:
    """A real Git repository whose `apps/` holds the bundled examples; returns the head commit."""
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(ROOT / "examples" / "apps", folder / "apps")
    git = ["git", "-c", "user.name=Driftless demo", "-c", "user.email=demo@driftless.invalid", "-C", str(folder)]
    subprocess.run(["git", "init", "-q", "-b", "main", str(folder)], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "Add example apps"], check=True)
    return subprocess.run(git + ["rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()


def signed_push(url: str, head: str, clone_url: str) -> requests.Response:
    """What GitHub sends after `git push`: a push event signed with the webhook secret."""
    from shared.core.webhook import sign

    body = json.dumps({"ref": "refs/heads/main", "after": head, "repository": {"clone_url": clone_url},
                       "commits": [{"id": head, "added": ["apps/web.yaml", "apps/worker.yaml",
                                                          "apps/legacy-api.yaml"], "modified": [], "removed": []}]})
    headers = {"X-GitHub-Event": "push", "X-GitHub-Delivery": str(uuid.uuid4()),
               "X-Hub-Signature-256": sign(WEBHOOK_SECRET, body.encode()), "Content-Type": "application/json"}
    return requests.post(f"{url}/api/github/webhook", data=body, headers=headers, timeout=10)


def wait_for_pass(url: str, after: str | None, timeout: float = 60) -> dict:
    """Poll GET /api/status until the default Target shows a pass that finished after `after`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = requests.get(f"{url}/api/status", headers={"x-functions-key": FUNCTION_KEY}, timeout=10).json()
        finished = (status["targets"] or [{}])[0].get("finishedAt")
        if finished and (after is None or finished > after):
            return status
        time.sleep(0.2)
    raise TimeoutError("no reconcile pass finished in time")


def drift_in_portal(emulator_url: str) -> None:
    """What a colleague does in the portal: another image on `web`, and a tag Git does not own."""
    from azure.mgmt.appcontainers import ContainerAppsAPIClient

    from devtools.identity import StaticToken

    client = ContainerAppsAPIClient(StaticToken("portal-user"), SUBSCRIPTION, base_url=emulator_url,
                                    polling_interval=0.05)
    live = client.container_apps.get(GROUP, "web").as_dict()
    containers = live["properties"]["template"]["containers"]
    containers[0]["image"] = "myacr.azurecr.io/web:hotfix-from-portal"
    patch = {"tags": {"cost-center": "4711"}, "properties": {"template": {"containers": containers}}}
    client.container_apps.begin_update(GROUP, "web", io.BytesIO(json.dumps(patch).encode()),
                                       content_type="application/json").result()
    print("web: image set to myacr.azurecr.io/web:hotfix-from-portal, tag cost-center=4711 added (out of band)")


def main() -> int:
    from devtools.aca_emulator import AcaEmulator
    from devtools.azurite import Azurite
    from devtools.git_server import GitServer
    from devtools.identity import IdentityStub
    from devtools.local_runner import LocalRunner

    WORK.mkdir(parents=True, exist_ok=True)
    print("Starting Azurite, the ACA emulator, a Git server and the local Functions host ...", flush=True)
    azurite = Azurite().start()
    emulator = AcaEmulator(cert_dir=str(WORK / "certs")).start()
    identity = IdentityStub("local-dev-token").start()              # the Function App's managed identity, locally
    os.environ.update(identity.env)
    emulator.add_environment(SUBSCRIPTION, GROUP, ENVIRONMENT)
    head = build_repo(WORK / "repo")
    git = GitServer(str(WORK / "repo")).start()
    os.environ.update({
        "AzureWebJobsStorage": azurite.connection_string,
        "DRIFTLESS_REPO_URL": git.url, "DRIFTLESS_BRANCH": "main", "DRIFTLESS_PATH": "apps",
        "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION, "DRIFTLESS_RESOURCE_GROUP": GROUP,
        "DRIFTLESS_ACA_ENVIRONMENT": ENVIRONMENT, "DRIFTLESS_ARM_ENDPOINT": emulator.url,
        "DRIFTLESS_ARM_POLL_INTERVAL": "0.1",
        "DRIFTLESS_WEBHOOK_SECRET": WEBHOOK_SECRET, "REQUESTS_CA_BUNDLE": emulator.ca_path, "DRIFTLESS_QUIET": "1",
    })
    import function_app
    from shared.cli import main as driftless

    runner = LocalRunner(function_app.app, connection_string=azurite.connection_string,
                         function_key=FUNCTION_KEY).start(port=0)
    print(f"Functions host {runner.url}   ACA emulator {emulator.url}   Git {git.url}")
    checks: list[tuple[str, bool]] = []
    try:
        banner("driftless validate examples/apps")
        checks.append(("examples validate", driftless(["validate", str(ROOT / "examples" / "apps")]) == 0))

        banner(f"GitHub push of {head[:12]} -> POST {runner.url}/api/github/webhook (signed)")
        reply = signed_push(runner.url, head, git.url)
        print(f"HTTP {reply.status_code} {reply.text}")
        checks.append(("webhook accepted and enqueued", reply.status_code == 202 and "jobs" in reply.json()))
        if not checks[-1][1]:
            return _report(checks)
        status = wait_for_pass(runner.url, None)
        banner("driftless get status  (what GET /api/status returns)")
        driftless(["get", "status"])
        checks.append(("push applied at the pushed revision", status["targets"][0]["revision"] == head and
                       {a["action"] for a in status["apps"]} == {"created"}))

        banner("Someone changes the live state in the portal")
        drift_in_portal(emulator.url)
        banner("driftless diff  (zero writes)")
        emulator.reset_calls()
        driftless(["diff"])
        checks.append(("diff writes nothing", _writes(emulator) == 0))

        banner("The drift-healing timer fires -> queue -> worker")
        before = status["targets"][0]["finishedAt"]
        runner.fire_timer("scheduled_reconcile")
        status = wait_for_pass(runner.url, before)
        driftless(["get", "status"])
        web = emulator.app(SUBSCRIPTION, GROUP, "web") or {}
        checks.append(("web image back to Git's",
                       web["properties"]["template"]["containers"][0]["image"] == "myacr.azurecr.io/web:1.4.2"))
        checks.append(("portal tag survived", web.get("tags", {}).get("cost-center") == "4711"))

        banner("The timer fires again (steady state)")
        emulator.reset_calls()
        before = status["targets"][0]["finishedAt"]
        runner.fire_timer("scheduled_reconcile")
        status = wait_for_pass(runner.url, before)
        calls = emulator.calls()
        print(f"apps: {', '.join(a['app'] + ' ' + a['action'] for a in status['apps'])}")
        print(f"ARM calls in the steady-state pass: {json.dumps(calls, sort_keys=True)}")
        checks.append(("steady state makes zero writes and zero per-app GETs",
                       _writes(emulator) == 0 and calls.get("GET app", 0) == 0))

        checks += canary(runner, emulator, git.url, driftless)
    finally:
        runner.stop()
        git.stop()
        emulator.stop()
        azurite.stop()
    return _report(checks)


SHOP = """\
apiVersion: driftless.io/v1alpha1
kind: App
metadata:
  name: shop
spec:
  activeRevisionsMode: Multiple
  containers:
    - {{name: shop, image: "myacr.azurecr.io/shop:{version}", cpu: 0.25, memory: 0.5Gi}}
  ingress: {{external: true, targetPort: 8080}}
  rollout:
    strategy: Canary
    steps:
      - setWeight: 20
      - pause: {{duration: 2s}}
      - setWeight: 60
      - pause: {{duration: 2s}}
"""


def commit(folder: Path, file: str, text: str, message: str) -> str:
    (folder / file).write_text(text)
    git = ["git", "-c", "user.name=Driftless demo", "-c", "user.email=demo@driftless.invalid", "-C", str(folder)]
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-q", "-m", message], check=True)
    return subprocess.run(git + ["rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()


def canary(runner, emulator, clone_url: str, driftless) -> list[tuple[str, bool]]:
    """`shop` 1.0 is created (a new app: 100% at once), then 1.1 is rolled out as a canary: 20%, 2 s, 60%, 2 s,
    promoted; every step is a queued job, decided when it is due."""
    banner("A new app with spec.rollout: shop 1.0 (created at 100%: nothing to roll out from)")
    before = requests.get(f"{runner.url}/api/status", headers={"x-functions-key": FUNCTION_KEY},
                          timeout=10).json()["targets"][0]["finishedAt"]
    head = commit(WORK / "repo", "apps/shop.yaml", SHOP.format(version="1.0"), "Add shop 1.0")
    signed_push(runner.url, head, clone_url)
    wait_for_pass(runner.url, before)
    stable = (emulator.app(SUBSCRIPTION, GROUP, "shop") or {}).get("properties", {}).get("latestRevisionName")
    banner("shop 1.1 in Git: a canary at 0%, then 20% -> pause 2s -> 60% -> pause 2s -> promoted")
    before = wait_for_pass(runner.url, None)["targets"][0]["finishedAt"]
    head = commit(WORK / "repo", "apps/shop.yaml", SHOP.format(version="1.1"), "shop 1.1")
    signed_push(runner.url, head, clone_url)
    wait_for_pass(runner.url, before)
    seen, deadline, phase = [], time.monotonic() + 30, ""
    while time.monotonic() < deadline:
        reply = requests.get(f"{runner.url}/api/rollouts/shop", headers={"x-functions-key": FUNCTION_KEY}, timeout=10)
        rollout = reply.json()["rollouts"][0] if reply.status_code == 200 else {}
        shown = f"{rollout.get('phase')} {rollout.get('step')}/{rollout.get('steps')} {rollout.get('weights')}"
        if shown not in seen:
            seen.append(shown)
            print(shown, flush=True)
        phase = rollout.get("phase", "")
        if phase not in ("", "Progressing", "Paused"):
            break
        time.sleep(0.2)
    driftless(["rollout", "status", "shop"])
    traffic = emulator.app(SUBSCRIPTION, GROUP, "shop")["properties"]["configuration"]["ingress"]["traffic"]
    canary_name = f"shop--g{head[:12]}"
    return [("the canary walked every step and was promoted", phase == "Promoted"
             and any("20" in s for s in seen) and traffic == [{"revisionName": canary_name, "weight": 100}]),
            ("the stable revision was shifted from, not replaced", bool(stable) and stable != canary_name)]


def _report(checks: list[tuple[str, bool]]) -> int:
    banner("Result")
    for name, passed in checks:
        print(f"{'ok  ' if passed else 'FAIL'} {name}")
    return 0 if all(passed for _, passed in checks) else 1


def _writes(emulator) -> int:
    calls = emulator.calls()
    return sum(n for key, n in calls.items() if key.split()[0] in ("PUT", "PATCH", "DELETE"))


if __name__ == "__main__":
    sys.exit(main())
