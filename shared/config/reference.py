"""The configuration reference, docs/configuration.md, rendered from the `Setting` of every `Settings` field
plus the few environment variables the code reads outside `Settings`.

Pure: `render()` returns Markdown and reads nothing. Regenerate the page after changing a setting with
`.venv/bin/python -m shared.config.reference > docs/configuration.md`; tests/test_docs.py fails while the
page differs from `render()`.
"""
from __future__ import annotations

import sys
from dataclasses import MISSING, dataclass
from typing import Any

from shared.config.settings import DEFAULT_TARGET, DEVELOPMENT, Setting, described

REGENERATE = ".venv/bin/python -m shared.config.reference > docs/configuration.md"


@dataclass(frozen=True)
class Variable:
    """An environment variable the code reads outside `Settings`."""

    name: str
    read_by: str
    meaning: str


OTHER_VARIABLES = (
    Variable("AzureWebJobsStorage", "the Functions host; queues and the status table; the CLI's `reconcile`, "
             "`get status`, `get images`, `suspend`, `resume`",
             "Connection string of the Function App's storage account (`UseDevelopmentStorage=true`: Azurite on its "
             "default ports). Not deployed: infra/main.bicep uses the identity-based variables below."),
    Variable("AzureWebJobsStorage__accountName", "queues and the status table",
             "Identity-based storage: the account; queue and table endpoints are derived from it."),
    Variable("AzureWebJobsStorage__queueServiceUri", "the Functions host; queues",
             "Identity-based storage: the queue endpoint (instead of `__accountName`)."),
    Variable("AzureWebJobsStorage__tableServiceUri", "the Functions host; the status table",
             "Identity-based storage: the table endpoint (instead of `__accountName`)."),
    Variable("AzureWebJobsStorage__blobServiceUri", "the Functions host",
             "Identity-based storage: blobs for the host's locks and timer state."),
    Variable("AzureWebJobsStorage__clientId", "the Functions host; queues and the status table",
             "Client id of the user-assigned identity used for storage."),
    Variable("AzureWebJobsStorage__credential", "the Functions host",
             "`managedidentity`: the host reaches storage with a managed identity."),
    Variable("APPLICATIONINSIGHTS_CONNECTION_STRING", "telemetry",
             "Application Insights; unset: telemetry is neither configured, imported nor sent."),
    Variable("APPLICATIONINSIGHTS_AUTHENTICATION_STRING", "telemetry",
             "`ClientId=<id>;Authorization=AAD`: Entra-authenticated ingestion with that managed identity."),
    Variable("IDENTITY_ENDPOINT, IDENTITY_HEADER", "`DefaultAzureCredential`",
             "The managed identity endpoint, set by the Functions host; locally `devtools/identity.py` serves one."),
    Variable("DRIFTLESS_WEBHOOK_URL", "the CLI: `driftless webhook register` and `ping`",
             "Default of `--url`: the Bicep output `WEBHOOK_URL`."),
    Variable("DRIFTLESS_QUIET", "the CLI", "`1` hides the per-app progress lines on stderr."),
)
"""Read outside `Settings` (tests/test_docs.py checks that every name the code reads is listed here or there)."""

OTHER_SECRETS = (
    ("driftless-registry-<host>", "Image updates: `user:password` for a registry without Entra sign-in, named "
     "after its host with dashes (`driftless-registry-ghcr-io`, `driftless-registry-localhost-5000`)."),
    ("the `secretName` of a subscriber", "CI feedback: the key that signs the body sent to that subscriber "
     "(`X-Driftless-Signature`)."),
)


GROUP_NOTES = {
    DEFAULT_TARGET: "Used only while the repository declares no `kind: Target` under `DRIFTLESS_TARGETS_PATH`: "
                    "then one Target named `default` reads `DRIFTLESS_PATH` into this environment "
                    "([manifests.md](manifests.md#target)).",
    DEVELOPMENT: "For the local stack and tests; infra/main.bicep never sets them.",
}


def fallback_variable(secret_name: str) -> str:
    """The environment variable a secret is read from when no Key Vault is configured (as `Secrets.get` does)."""
    return secret_name.upper().replace("-", "_")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _default(value: Any) -> str:
    if value is MISSING:
        return "required"
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, (int, float)):
        return f"`{value:g}`"
    if isinstance(value, frozenset):
        return "none" if not value else f"`{','.join(sorted(value))}`"
    return f"`{value}`"


def _form(setting: Setting) -> str:
    if setting.secret:
        return "a secret name"
    return {"path": "a path in the repository", "flag": "`true` or `false`",
            "number": f"a number, at least {setting.minimum:g}",
            "whole": f"a whole number, at least {setting.minimum:g}",
            "names": "comma-separated names"}.get(setting.read, "text")


def render() -> str:
    """docs/configuration.md."""
    lines = [
        "<!-- Generated from shared/config/settings.py by `python -m shared.config.reference`. Do not edit this "
        "page: edit the settings and regenerate it. -->",
        "# Configuration reference",
        "",
        "Driftless is configured with environment variables. In Azure they are the Function App's app settings "
        "([infra/main.bicep](../infra/main.bicep) sets all but the development-only ones); for the `driftless` command line "
        "they come from your shell; for `func start`, from `local.settings.json` (copy "
        "[local.settings.sample.json](../local.settings.sample.json)).",
        "",
        "An empty value counts as unset. A malformed value (a flag that is not `true`/`false`/`1`/`0`/`yes`/`no`, "
        "a number below its minimum) is refused with every bad setting named at once: the CLI exits with code 2, "
        "and `GET /api/health` answers 503 `misconfigured`.",
        "",
        "## Settings",
    ]
    groups: dict[str, list[tuple[str, Any, Setting]]] = {}
    for item, setting in described():
        groups.setdefault(setting.group, []).append((item.name, item.default, setting))
    for group, members in sorted(groups.items(), key=lambda g: g[0] == DEVELOPMENT):
        secrets = all(setting.secret for _, _, setting in members)
        lines += ["", f"### {group}", ""]
        if group in GROUP_NOTES:
            lines += [GROUP_NOTES[group], ""]
        if secrets:
            lines += ["Each of these holds the **name** of a Key Vault secret, never a value (see "
                      "[Secrets](#secrets)).", ""]
        lines += ["| variable | default | value | meaning |", "|---|---|---|---|"]
        for _, default, setting in members:
            lines.append(f"| `{setting.env}` | {_default(default)} | {_form(setting)} | {_cell(setting.description)} |")
    lines += [
        "",
        "## Secrets",
        "",
        "Secrets are read from the Key Vault named by `DRIFTLESS_KEYVAULT_URL` with the Function App's identity, "
        "lazily, and cached for `DRIFTLESS_SECRET_TTL` seconds; values never appear in settings, logs or outcomes. "
        "Without a vault URL each one is read from an environment variable named after the secret "
        "(local development). [security.md](security.md) says who may read and write them.",
        "",
        "| Key Vault secret | renamed by | without a vault | holds |",
        "|---|---|---|---|",
    ]
    for item, setting in described():
        if setting.secret:
            lines.append(f"| `{item.default}` | `{setting.env}` | `{fallback_variable(item.default)}` | "
                         f"{_cell(setting.description)} |")
    for name, meaning in OTHER_SECRETS:
        lines.append(f"| {name if name.startswith('the ') else f'`{name}`'} | | the name upper-cased, `-` as `_` | "
                     f"{_cell(meaning)} |")
    lines += [
        "",
        "## Other environment variables",
        "",
        "| variable | read by | meaning |",
        "|---|---|---|",
    ]
    for variable in OTHER_VARIABLES:
        names = ", ".join(f"`{n.strip()}`" for n in variable.name.split(","))
        lines.append(f"| {names} | {_cell(variable.read_by)} | {_cell(variable.meaning)} |")
    lines += [
        "",
        "## Changing a setting",
        "",
        "A setting is one field of `Settings` in [shared/config/settings.py](../shared/config/settings.py): its "
        "variable name, default, form and description are declared together, `Settings.from_env` reads it from "
        "there, and this page is generated from it. After adding or changing one, regenerate the page:",
        "",
        "```console",
        f"$ {REGENERATE}",
        "```",
        "",
        "and add it to `appSettings` in [infra/main.bicep](../infra/main.bicep) unless it is development only "
        "(tests/test_infra.py fails otherwise).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(render())
