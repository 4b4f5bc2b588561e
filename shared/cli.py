"""The `driftless` command line: validate, diff, sync, get apps / jobs / source / status, job start.

Exit codes: 0 success; 1 an app failed, validation failed, or Git/Azure could not be read;
2 bad usage or missing settings (each missing setting is named).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from shared.adapters.github import DEFAULT_EVENTS
from shared.config.settings import Settings, SettingsError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    logging.getLogger("driftless.manifests").addHandler(logging.NullHandler())   # printed by the commands
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except SettingsError as exc:
        for problem in exc.problems:
            print(f"driftless: {problem}", file=sys.stderr)
        print("driftless: see README.md, section Settings", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the source or ARM could not be read: say what, not a traceback
        from shared.adapters.git import SourceError

        kind = "source" if isinstance(exc, SourceError) else type(exc).__name__
        print(f"driftless: {kind}: {str(exc).splitlines()[0] if str(exc) else exc!r}", file=sys.stderr)
        return EXIT_FAILED


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="driftless", description="Serverless GitOps for Azure Container Apps.")
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")
    commands = parser.add_subparsers(dest="command", required=True)

    validate = commands.add_parser("validate", parents=[output], help="validate manifests without touching Azure")
    validate.add_argument("path", nargs="?", help="a local folder or file (default: the repository's Targets at the branch head)")
    validate.set_defaults(run=cmd_validate)

    diff = commands.add_parser("diff", help="show what a sync would change (no writes)")
    diff.add_argument("-o", "--output", choices=("table", "json", "yaml", "markdown"), default="table",
                      help="markdown: exactly the summary of the pull request check run driftless/plan")
    diff.add_argument("--app", help="only this app")
    diff.add_argument("--revision", help="plan this commit, branch or ref (e.g. refs/pull/7/head) as a pull request "
                                         "preview does: the Targets it changes compared with the branch head")
    diff.set_defaults(run=cmd_diff)

    sync = commands.add_parser("sync", parents=[output], help="reconcile every Target once")
    sync.add_argument("--dry-run", action="store_true", help="plan and report, write nothing")
    sync.add_argument("--app", help="only this app")
    sync.set_defaults(run=cmd_sync)

    reconcile = commands.add_parser("reconcile", parents=[output],
                                    help="enqueue a reconcile job for the Function App's workers")
    reconcile.add_argument("--target", help="only this Target")
    reconcile.add_argument("--app", help="only this app")
    reconcile.set_defaults(run=cmd_reconcile)

    for verb, text in (("suspend", "stop writing to an app at runtime"), ("resume", "lift a runtime suspension")):
        command = commands.add_parser(verb, parents=[output], help=text)
        command.add_argument("name", help="the app")
        command.set_defaults(run=cmd_suspend if verb == "suspend" else cmd_resume)

    webhook = commands.add_parser("webhook", help="register Driftless's webhook on a GitHub repository")
    hooks = webhook.add_subparsers(dest="hook", required=True)
    for verb, text in (("register", "create or update the webhook (idempotent)"), ("list", "the repository's webhooks"),
                       ("ping", "ask GitHub to ping the webhook")):
        command = hooks.add_parser(verb, parents=[output], help=text)
        command.add_argument("--repo", required=True, help="owner/name on GitHub")
        if verb != "list":
            command.add_argument("--url", default=os.environ.get("DRIFTLESS_WEBHOOK_URL"),
                                 help="the webhook URL (default: DRIFTLESS_WEBHOOK_URL; the Bicep output WEBHOOK_URL)")
        if verb == "register":
            command.add_argument("--events", default=",".join(DEFAULT_EVENTS),
                                 help=f"comma-separated events (default: {','.join(DEFAULT_EVENTS)}: reconciles and "
                                      "pull request plan previews; app repositories for image updates: "
                                      "push,workflow_run)")
            command.add_argument("--dry-run", action="store_true", help="say what would change, change nothing")
        command.set_defaults(run=cmd_webhook)

    get = commands.add_parser("get", help="show apps, the Git source or the stored status")
    what = get.add_subparsers(dest="what", required=True)
    status = what.add_parser("status", parents=[output], help="last outcome per Target and app (status store)")
    status.add_argument("--target", help="only this Target")
    status.set_defaults(run=cmd_get_status)
    images = what.add_parser("images", parents=[output], help="last image update per opted-in manifest")
    images.add_argument("--target", help="only this Target")
    images.set_defaults(run=cmd_get_images)
    apps = what.add_parser("apps", parents=[output], help="apps in Git with their live state")
    apps.set_defaults(run=cmd_get_apps)
    source = what.add_parser("source", parents=[output], help="the Git source and its head")
    source.set_defaults(run=cmd_get_source)
    jobs = what.add_parser("jobs", parents=[output], help="Container Apps jobs in Git with their latest execution")
    jobs.set_defaults(run=cmd_get_jobs)

    rollout = commands.add_parser("rollout", help="see or steer an app's progressive delivery (spec.rollout)")
    rollout_verbs = rollout.add_subparsers(dest="verb", required=True)
    for verb, text in (("status", "phase, step, weights and the last analysis"),
                       ("promote", "let a paused rollout go on to its next step"),
                       ("abort", "send all traffic back to the stable revision and stop the rollout")):
        command = rollout_verbs.add_parser(verb, parents=[output], help=text)
        command.add_argument("name", help="the app")
        command.add_argument("--target", help="the Target (when the app has rollouts in more than one)")
        command.set_defaults(run=cmd_rollout)

    job = commands.add_parser("job", help="act on a Container Apps job")
    job_verbs = job.add_subparsers(dest="verb", required=True)
    start = job_verbs.add_parser("start", parents=[output], help="start an execution of a Manual job now")
    start.add_argument("name", help="the job (its metadata.name, or Job/<name>)")
    start.add_argument("--target", help="the Target that declares it (when more than one does)")
    start.set_defaults(run=cmd_job_start)
    return parser


def _driftless():
    from shared.wiring import Driftless

    settings = Settings.from_env()
    settings.require("DRIFTLESS_REPO_URL")
    return Driftless(settings)


def _reconciler():
    return _driftless().context.reconciler


def _targets(reconciler) -> tuple[str, list, list]:
    revision = reconciler.source.head()
    targets, problems = reconciler.targets(revision)
    for problem in problems:
        print(f"driftless: Target manifest: {problem}", file=sys.stderr)
    return revision, targets, problems


def cmd_validate(args: argparse.Namespace) -> int:
    from shared.core.aca_kinds import ACA_READERS
    from shared.core.manifests import load_objects

    if args.path:
        root = Path(args.path)
        if not root.exists():
            print(f"driftless: {args.path}: no such file or folder", file=sys.stderr)
            return EXIT_USAGE
        files, problems = _read_local(root)
        apps, found = load_objects(files, ACA_READERS)
        problems = sorted(problems + found, key=lambda p: (p.file, p.line or 0))
    else:
        reconciler = _reconciler()
        revision, targets, problems = _targets(reconciler)
        apps = []
        for target in targets:
            found, trouble = reconciler.desired(target, revision)
            apps += found
            problems += trouble
    rows = [{"file": p.file, "line": p.line, "column": p.column, "document": p.document, "field": p.field,
             "message": p.message} for p in problems]
    if args.output == "table":
        for problem in problems:
            print(f"ERROR {problem}")
        print(f"{len(apps)} valid manifest(s), {len(problems)} problem(s)")
    else:
        _emit({"valid": [getattr(a, "key", a.name) for a in apps], "problems": rows}, args.output)
    return EXIT_FAILED if problems else EXIT_OK


def _read_local(root: Path) -> tuple[dict[str, bytes], list]:
    """The manifests under a local folder (.yaml/.yml in any case; symbolic links to folders are not
    followed), or the one file named. A file that cannot be read (a dangling symbolic link, a link loop,
    no permission) is a Problem of that file, never a crash."""
    from shared.adapters.git import is_manifest
    from shared.core.manifests import Problem

    problems: list[Problem] = []
    if root.is_dir():
        paths = []
        for folder, _, names in os.walk(root, onerror=lambda exc: problems.append(
                Problem(str(exc.filename), f"folder cannot be read: {exc.strerror}"))):
            paths += [Path(folder, name) for name in names if is_manifest(name)]
    else:
        paths = [root]
    files: dict[str, bytes] = {}
    for path in sorted(paths):
        try:
            files[str(path)] = path.read_bytes()
        except OSError as exc:
            problems.append(Problem(str(path), _unreadable(path, exc)))
    return files, problems


def _unreadable(path: Path, exc: OSError) -> str:
    import errno

    if path.is_symlink():
        target = os.readlink(path)
        if exc.errno == errno.ELOOP:
            return f"cannot be read: symbolic link loop (links to '{target}')"
        if exc.errno == errno.ENOENT:
            return f"cannot be read: dangling symbolic link to '{target}', which does not exist"
    return f"cannot be read: {exc.strerror or exc}"


def _revision(source, name: str) -> str:
    """A commit SHA as is; a full ref (`refs/pull/7/head`) or a branch name resolved in the manifests repository."""
    import re

    if re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", name):
        return name
    sha = source.resolve(name if name.startswith("refs/") else f"refs/heads/{name}")
    if sha is None:
        raise LookupError(f"no branch or ref {name!r} in {source.display_url}")
    return sha


def cmd_diff(args: argparse.Namespace) -> int:
    from shared.core.preview import Preview, TargetPreview, summary
    from shared.services.previews import plan_preview

    reconciler = _reconciler()
    if args.revision:
        try:
            revision = _revision(reconciler.source, args.revision)
        except LookupError as exc:
            print(f"driftless: {exc}", file=sys.stderr)
            return EXIT_USAGE
        preview = plan_preview(reconciler, revision, suspended=_runtime_suspensions(), only=args.app)
        for problem in preview.target_problems:
            print(f"driftless: Target manifest: {problem}", file=sys.stderr)
        problems = preview.problems
    else:
        revision, targets, problems = _targets(reconciler)
        from datetime import datetime, timezone

        preview = Preview(head=revision, base_revision=revision,
                          live_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        for target in targets:
            desired_problems = reconciler.desired(target, revision)[1]
            preview.targets.append(TargetPreview(target.name, target.type,
                                                 reconciler.plan(target, revision, only=args.app), desired_problems))
    if args.output == "markdown":
        print(summary(preview))
        return EXIT_FAILED if problems else EXIT_OK
    rows = []
    for target, plan in ((t.target, t.plan) for t in preview.targets if t.plan):
        for step in plan.steps:
            if step.kind == "update":
                rows += [{"target": target, "app": step.app, "action": "update", "path": c.path,
                          "desired": c.desired, "live": c.live} for c in step.changes]
            elif step.kind != "unchanged":
                rows.append({"target": target, "app": step.app, "action": step.kind, "path": "",
                             "desired": None, "live": None, "reason": step.reason})
    if args.output == "table":
        _table(rows, ("target", "app", "action", "path", "desired", "live"))
        print(f"{len({(r['target'], r['app']) for r in rows})} app(s) differ from Git at {revision[:12]}")
    else:
        _emit(rows, args.output)
    return EXIT_FAILED if problems else EXIT_OK


def cmd_sync(args: argparse.Namespace) -> int:
    reconciler = _reconciler()
    revision, targets, problems = _targets(reconciler)
    progress = _Progress()
    suspended = _runtime_suspensions()
    results = [reconciler.reconcile(t, revision, dry_run=args.dry_run, only=args.app, suspended=suspended,
                                    progress=progress) for t in targets]
    progress.close()
    if args.output == "table":
        for result in results:
            _print_result(result)
    else:
        _emit([r.to_dict() for r in results], args.output)
    return EXIT_OK if all(r.ok for r in results) and not problems else EXIT_FAILED


def _store():
    """The status store, when the Function App's storage is configured here too; else None."""
    from shared.adapters import storage

    if not storage.configured():
        return None
    from shared.adapters.status_store import Store

    return Store()


def _runtime_suspensions() -> set[str]:
    """Apps suspended through the API (when the status store is reachable from here)."""
    store = _store()
    return store.suspended() if store else set()


def cmd_get_apps(args: argparse.Namespace) -> int:
    reconciler = _reconciler()
    revision, targets, problems = _targets(reconciler)
    state = {"create": "missing", "update": "drifted", "reapply": "unhealthy", "unchanged": "in sync",
             "delete": "orphan", "suspended": "suspended", "skipped": "skipped", "failed": "failed"}
    rows = []
    rollouts = _rollouts()
    for target in targets:
        for step in reconciler.plan(target, revision).steps:
            if target.type == "aca" and "/" in step.app:           # jobs and Dapr components: `get jobs`
                continue
            images = ", ".join(c.image for c in step.desired.containers) if step.desired else ""
            rows.append({"target": target.name, "app": step.app, "status": state[step.kind],
                         "healthy": step.health.healthy if step.health else None, "images": images,
                         "reason": step.reason})
            if (target.name, step.app) in rollouts:
                rows[-1]["rollout"] = rollouts[(target.name, step.app)]
    if args.output == "table":
        _table([{**row, "rollout": _rollout_shown(row.get("rollout"))} for row in rows],
               ("target", "app", "status", "healthy", "images", "rollout"))
    else:
        _emit(rows, args.output)
    return EXIT_FAILED if problems else EXIT_OK


def _declared_jobs(reconciler, revision: str, targets: list) -> list[tuple[Any, Any]]:
    """(Target, Job) for every valid Job manifest of the `aca` Targets at `revision`."""
    from shared.core.container_app_job import Job

    return [(t, job) for t in targets if t.type == "aca" for job in reconciler.desired(t, revision)[0]
            if isinstance(job, Job)]


def cmd_get_jobs(args: argparse.Namespace) -> int:
    """Jobs in Git: trigger, state against Git, the latest execution and its status (a failed one with its reason)."""
    from shared.adapters.container_apps import for_subscription
    from shared.core.container_app_job import execution_problem, latest_execution

    reconciler = _reconciler()
    revision, targets, problems = _targets(reconciler)
    state = {"create": "missing", "update": "drifted", "unchanged": "in sync", "suspended": "suspended",
             "skipped": "skipped", "failed": "failed"}
    rows = []
    for target in targets:
        declared = {job.key: job for t, job in _declared_jobs(reconciler, revision, [target])}
        if not declared:
            continue
        aca = for_subscription(reconciler.settings, target.subscription_id)
        for step in reconciler.plan(target, revision).steps:
            job = declared.get(step.app)
            if job is None:
                continue
            latest = latest_execution(aca.executions(target.resource_group, job.name)) if step.live else None
            status = str((latest or {}).get("properties", {}).get("status") or "-") if latest else "none yet"
            rows.append({"target": target.name, "job": job.name, "trigger": job.trigger_type,
                         "state": state.get(step.kind, step.kind), "execution": (latest or {}).get("name"),
                         "status": status, "images": ", ".join(c.image for c in job.containers),
                         "reason": execution_problem(latest) if latest else step.reason})
    if args.output == "table":
        _table(rows, ("target", "job", "trigger", "state", "execution", "status", "images"))
        for row in rows:
            if row["status"] in ("Failed", "Degraded") and row["reason"]:
                print(f"  {row['target']}/{row['job']}: {row['execution']} {row['status']}: {row['reason']}")
    else:
        _emit(rows, args.output)
    return EXIT_FAILED if problems else EXIT_OK


def cmd_job_start(args: argparse.Namespace) -> int:
    """Start an execution of a Manual job declared in Git and created in Azure; print the execution's name."""
    from shared.adapters.container_apps import for_subscription

    name = args.name.split("/", 1)[1] if args.name.startswith("Job/") else args.name
    reconciler = _reconciler()
    revision, targets, _ = _targets(reconciler)
    found = [(t, job) for t, job in _declared_jobs(reconciler, revision, targets)
             if job.name == name and args.target in (None, t.name)]
    if not found:
        print(f"driftless: no Target declares a valid job named {name} at {revision[:12]}"
              + (f" (Target {args.target})" if args.target else ""), file=sys.stderr)
        return EXIT_USAGE
    if len(found) > 1:
        print(f"driftless: job {name} is declared by Targets {', '.join(t.name for t, _ in found)}; choose one with "
              "--target", file=sys.stderr)
        return EXIT_USAGE
    target, job = found[0]
    if job.trigger_type != "Manual":
        runs = "on its schedule" if job.trigger_type == "Schedule" else "when its scale rules fire"
        print(f"driftless: job {name} is a {job.trigger_type} job (it runs {runs}); only Manual jobs are started "
              "with `driftless job start`", file=sys.stderr)
        return EXIT_USAGE
    aca = for_subscription(reconciler.settings, target.subscription_id)
    live = aca.job(target.resource_group, name)
    live_trigger = ((live or {}).get("properties") or {}).get("configuration", {}).get("triggerType")
    if live is None or str(live_trigger).lower() != "manual":
        said = "does not exist in Azure yet" if live is None else f"is still a {live_trigger} job in Azure"
        print(f"driftless: job {name} {said}; run `driftless sync` first", file=sys.stderr)
        return EXIT_FAILED
    execution = aca.start_job(target.resource_group, name)
    if args.output == "table":
        print(f"started job {name} (Target {target.name}): execution {execution}")
    else:
        _emit({"target": target.name, "job": name, "execution": execution}, args.output)
    return EXIT_OK


def cmd_get_source(args: argparse.Namespace) -> int:
    reconciler = _reconciler()
    revision, targets, problems = _targets(reconciler)
    info = {"url": reconciler.source.display_url, "branch": reconciler.source.branch, "revision": revision,
            "targets": [{"name": t.name, "path": t.path, "resourceGroup": t.resource_group,
                         "environment": t.environment, "prune": t.prune,
                         "apps": len(reconciler.desired(t, revision)[0])} for t in targets]}
    if args.output == "table":
        print(f"{info['url']}  branch {info['branch']}  at {revision}")
        _table(info["targets"], ("name", "path", "resourceGroup", "environment", "prune", "apps"))
    else:
        _emit(info, args.output)
    return EXIT_FAILED if problems else EXIT_OK


def _reply(reply, output: str, table: Callable[[dict], None] | None = None) -> int:
    if output == "table" and table and reply.status < 400:
        table(reply.body)
    else:
        _emit(reply.body, "json" if output == "table" else output)
    if reply.status >= 400:
        print(f"driftless: {reply.body.get('error', reply.status)}", file=sys.stderr)
        return EXIT_USAGE if reply.status in (400, 404) else EXIT_FAILED
    return EXIT_OK


def cmd_reconcile(args: argparse.Namespace) -> int:
    body = {k: v for k, v in (("target", args.target), ("app", args.app)) if v}
    return _reply(_driftless().pipeline.request_reconcile(json.dumps(body).encode()), args.output,
                  lambda b: _table(b["jobs"], ("id", "target", "app")))


def cmd_suspend(args: argparse.Namespace) -> int:
    return _reply(_driftless().pipeline.suspend(args.name), args.output, lambda b: print(f"{b['app']} suspended"))


def cmd_resume(args: argparse.Namespace) -> int:
    return _reply(_driftless().pipeline.resume(args.name), args.output,
                  lambda b: print(f"{b['app']} resumed; reconcile enqueued for "
                                  f"{', '.join(j['target'] for j in b['jobs']) or 'no Target'}"))


def cmd_rollout(args: argparse.Namespace) -> int:
    """`driftless rollout status|promote|abort APP [--target T]`: the same as the HTTP routes, run here."""
    rollouts = _driftless().rollouts
    reply = getattr(rollouts, args.verb)(args.name, args.target)

    def show(body: dict) -> None:
        found = body.get("rollouts") or [body["rollout"]]
        _table([_rollout_row(r) for r in found], ("target", "app", "phase", "step", "weights", "analysis", "reason"))
    return _reply(reply, args.output, show)


def _rollout_row(view: dict[str, Any]) -> dict[str, Any]:
    last = view.get("lastAnalysis") or {}
    return {**view, "step": f"{view['step']}/{view['steps']}",
            "weights": ", ".join(f"{name} {weight}%" for name, weight in view["weights"].items()),
            "analysis": last.get("verdict") or ""}


def _rollout_shown(view: dict[str, Any] | None) -> str:
    if not view:
        return ""
    row = _rollout_row(view)
    return f"{row['phase']} {row['step']} ({row['weights']})"


def _rollouts() -> dict[tuple[str, str], dict[str, Any]]:
    """(target, app) -> rollout view (when the status store is reachable from here)."""
    store = _store()
    return {(s.target, s.app): s.view() for s in store.rollouts()} if store else {}


def cmd_get_status(args: argparse.Namespace) -> int:
    def show(body: dict) -> None:
        _table([{**t, "revision": (t["revision"] or "")[:12],
                 "summary": ", ".join(f"{n} {a}" for a, n in t["summary"].items() if n)}
                for t in body["targets"]], ("target", "revision", "ok", "degraded", "finishedAt", "summary"))
        for t in body["targets"]:
            _print_problems(t.get("problems") or [], t.get("problemCount") or 0, target=t["target"])
        print()
        _table([{**a, "revision": (a["revision"] or "")[:12]} for a in body["apps"]],
               ("target", "app", "action", "healthy", "revision", "suspended", "reason"))
    return _reply(_driftless().status(args.target), args.output, show)


def cmd_get_images(args: argparse.Namespace) -> int:
    from shared.core.reply import Reply

    images = _driftless().images.status(args.target)
    return _reply(Reply(200, {"images": images}), args.output,
                  lambda b: _table(b["images"], ("target", "app", "action", "from", "to", "at", "message")))


def cmd_webhook(args: argparse.Namespace) -> int:
    from shared.adapters import github
    from shared.adapters.key_vault import Secrets

    settings = Settings.from_env()
    secrets = Secrets(settings)
    token = github.token_provider(settings, secrets)()
    if args.hook != "list" and not args.url:
        print("driftless: --url (or DRIFTLESS_WEBHOOK_URL) is required", file=sys.stderr)
        return EXIT_USAGE
    if args.hook == "list":
        rows = github.list_hooks(repo_name=args.repo, api_url=settings.github_api_url, token=token)
        _table(rows, ("id", "url", "events", "active", "lastResponse")) if args.output == "table" else _emit(rows, args.output)
        return EXIT_OK
    if args.hook == "ping":
        hook = github.ping(repo_name=args.repo, url=args.url, api_url=settings.github_api_url, token=token)
        print(f"ping sent to webhook {hook}")
        return EXIT_OK
    result = github.register(repo_name=args.repo, url=args.url, events=args.events.split(","),
                                      secrets=secrets, secret_name=settings.webhook_secret_name,
                                      api_url=settings.github_api_url, token=token, dry_run=args.dry_run)
    if args.output == "table":
        verb = {"create": "would create" if args.dry_run else "created",
                "update": "would update" if args.dry_run else "updated", "unchanged": "unchanged"}[result["action"]]
        print(f"{args.repo}: webhook {result['url']} {verb} (events: {', '.join(result['events'])}; "
              f"secret {result['secret']})")
    else:
        _emit(result, args.output)
    return EXIT_OK


def _print_result(result) -> None:
    rows = [{"app": o.app, "action": o.action,
             "health": "-" if o.healthy is None else ("healthy" if o.healthy else "UNHEALTHY"),
             "reason": (o.health_reason + " | " if o.healthy is False else "") + o.reason}
            for o in result.outcomes]
    mode = " (dry run: nothing written)" if result.dry_run else ""
    print(f"Target {result.target} at {str(result.revision)[:12]}{mode}")
    _table(rows, ("app", "action", "health", "reason"))
    _print_problems(result.problems, len(result.problems))
    counts = ", ".join(f"{n} {a}" for a, n in result.summary().items() if n)
    state = "DEGRADED (prune skipped)" if result.degraded else ("ok" if result.ok else "FAILED")
    print(f"  {state}: {counts or 'no apps'} in {result.duration_ms / 1000:.1f}s")


def _print_problems(problems: list[dict[str, Any]], total: int, *, target: str = "") -> None:
    """One `ERROR file:line[:column]: field: message` line per problem, and how many more there are."""
    from shared.core.manifests import Problem

    for problem in problems:
        print(f"  ERROR {(target + ': ') if target else ''}{Problem.from_dict(problem)}")
    if total > len(problems):
        print(f"  ... and {total - len(problems)} more problem(s){(' in Target ' + target) if target else ''}")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _table(rows: list[dict[str, Any]], columns: Iterable[str]) -> None:
    columns = list(columns)
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [min(60, max([len(c)] + [len(r[i]) for r in cells])) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip())
    for row in cells:
        print("  ".join(v if i == len(columns) - 1 else v[:w].ljust(w)
                        for i, (v, w) in enumerate(zip(row, widths))).rstrip())


def _emit(data: Any, output: str) -> None:
    if output == "json":
        print(json.dumps(data, indent=2, default=str))
    else:
        import yaml

        print(yaml.safe_dump(json.loads(json.dumps(data, default=str)), sort_keys=False), end="")


class _Progress:
    """Per-app progress on stderr: one rewritten line on a terminal, plain lines otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.quiet = os.environ.get("DRIFTLESS_QUIET") == "1"

    def __call__(self, done: int, total: int, outcome) -> None:
        if self.quiet:
            return
        line = f"[{done}/{total}] {outcome.app}: {outcome.action}"
        if self.tty:
            print(f"\r\033[K{line}", end="", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.tty and not self.quiet:
            print("\r\033[K", end="", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
