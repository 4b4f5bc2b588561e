"""`make run`: the main job end to end on a laptop, with no Azure account.

Starts the local ACA emulator (HTTPS, real ARM contract) and a Git smart-HTTP server for a
repository built from `examples/`, then drives the real `driftless` CLI against them:
validate, sync, an out-of-band change in "the portal", diff, the healing sync, and a
steady-state sync that must write nothing. Exits non-zero if any step did not do what it says.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".local" / "demo"
SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
GROUP, ENVIRONMENT = "demo-rg", "demo-env"


def banner(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def build_repo(folder: Path) -> None:
    """A real Git repository whose `apps/` holds the bundled examples."""
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(ROOT / "examples" / "apps", folder / "apps")
    git = ["git", "-c", "user.name=Driftless demo", "-c", "user.email=demo@driftless.invalid"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(folder)], check=True)
    subprocess.run(git + ["-C", str(folder), "add", "-A"], check=True)
    subprocess.run(git + ["-C", str(folder), "commit", "-q", "-m", "Add example apps"], check=True)


def drift_in_portal(emulator_url: str) -> None:
    """What a colleague does in the portal: another image on `web`, and a tag Git does not own."""
    from azure.mgmt.appcontainers import ContainerAppsAPIClient

    from shared.credentials import StaticToken

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
    from devtools.git_server import GitServer
    from shared.cli import main as driftless

    WORK.mkdir(parents=True, exist_ok=True)
    emulator = AcaEmulator(cert_dir=str(WORK / "certs")).start()
    emulator.add_environment(SUBSCRIPTION, GROUP, ENVIRONMENT)
    build_repo(WORK / "repo")
    git = GitServer(str(WORK / "repo")).start()
    os.environ.update({
        "DRIFTLESS_REPO_URL": git.url, "DRIFTLESS_BRANCH": "main", "DRIFTLESS_PATH": "apps",
        "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION, "DRIFTLESS_RESOURCE_GROUP": GROUP,
        "DRIFTLESS_ACA_ENVIRONMENT": ENVIRONMENT, "DRIFTLESS_ARM_ENDPOINT": emulator.url,
        "DRIFTLESS_EMULATOR_TOKEN": "local-dev-token", "DRIFTLESS_ARM_POLL_INTERVAL": "0.1",
        "REQUESTS_CA_BUNDLE": emulator.ca_path, "DRIFTLESS_QUIET": "1",
    })
    print(f"ACA emulator: {emulator.url}   Git server: {git.url}")
    checks: list[tuple[str, bool]] = []
    try:
        banner("driftless validate examples/apps")
        checks.append(("examples validate", driftless(["validate", str(ROOT / "examples" / "apps")]) == 0))

        banner("driftless sync  (first pass: creates every app)")
        checks.append(("first sync succeeds", driftless(["sync"]) == 0))

        banner("Someone changes the live state in the portal")
        drift_in_portal(emulator.url)

        banner("driftless diff  (zero writes)")
        emulator.reset_calls()
        driftless(["diff"])
        checks.append(("diff writes nothing", _writes(emulator) == 0))

        banner("driftless sync  (heals the drift, keeps the portal's tag)")
        checks.append(("healing sync succeeds", driftless(["sync"]) == 0))
        web = emulator.app(SUBSCRIPTION, GROUP, "web") or {}
        image = web["properties"]["template"]["containers"][0]["image"]
        checks.append(("web image back to Git's", image == "myacr.azurecr.io/web:1.4.2"))
        checks.append(("portal tag survived", web.get("tags", {}).get("cost-center") == "4711"))

        banner("driftless sync  (steady state)")
        emulator.reset_calls()
        checks.append(("steady sync succeeds", driftless(["sync"]) == 0))
        calls = emulator.calls()
        print(f"ARM calls in the steady-state pass: {json.dumps(calls, sort_keys=True)}")
        checks.append(("steady state makes zero writes and zero per-app GETs",
                       _writes(emulator) == 0 and calls.get("GET app", 0) == 0))
    finally:
        git.stop()
        emulator.stop()
    banner("Result")
    for name, passed in checks:
        print(f"{'ok  ' if passed else 'FAIL'} {name}")
    return 0 if all(passed for _, passed in checks) else 1


def _writes(emulator) -> int:
    calls = emulator.calls()
    return sum(n for key, n in calls.items() if key.split()[0] in ("PUT", "PATCH", "DELETE"))


if __name__ == "__main__":
    sys.exit(main())
