"""Settings from environment variables: the same names as the Function App's app settings."""
from __future__ import annotations

import math
import os
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any, Mapping

from shared.core.manifests import Target

DEFAULT_INSTANCE = "driftless"


class SettingsError(ValueError):
    """A setting is missing or malformed; `problems` names every offending setting."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class Setting:
    """How one Settings field is read from the environment and what it means: the single source of the
    variable names `from_env` reads and of docs/configuration.md (`python -m shared.config.reference`)."""

    env: str
    """The environment variable (the Function App's app setting)."""
    description: str
    """One line for the configuration reference."""
    group: str
    """The section of the reference it is listed in."""
    read: str = "text"
    """text | path (surrounding '/' dropped) | flag (true/false, 1/0, yes/no) | number | whole | names
    (comma-separated)."""
    minimum: float = 0.0
    """The smallest value a number or whole number may take."""
    secret: bool = False
    """The value is the *name* of a Key Vault secret, never a secret value."""
    deployed: bool = True
    """False: development only; infra/main.bicep never sets it."""


def _setting(env: str, description: str, group: str, default: Any = MISSING, **how: Any) -> Any:
    """A Settings field read from `env` (see `Setting`)."""
    return field(default=default, metadata={"setting": Setting(env, description, group, **how)})


# The sections of docs/configuration.md.
SOURCE, DEFAULT_TARGET, RECONCILE, AZURE, SECRETS, FEEDBACK, IMAGES, DEVELOPMENT = (
    "Git source", "Default Target", "Reconciling", "Azure", "Secret names", "CI feedback", "Image updates",
    "Development only")


@dataclass(frozen=True)
class Settings:
    """Driftless's configuration. Each field is declared once with `_setting`: its environment variable,
    default, form and description; `from_env` reads it from there and the configuration reference is
    generated from it (tests/test_docs.py fails when a field has no description or the page is stale)."""

    repo_url: str | None = _setting(
        "DRIFTLESS_REPO_URL", "The Git repository of Targets and manifests: `https://...`, a local path or "
        "`file://`.", SOURCE)
    branch: str = _setting("DRIFTLESS_BRANCH", "Branch to follow; pushes to other branches are ignored.", SOURCE,
                           "main")
    path: str = _setting(
        "DRIFTLESS_PATH", "Manifest folder of the default Target (used only when the repository declares no Target).",
        DEFAULT_TARGET, "apps", read="path")
    targets_path: str = _setting(
        "DRIFTLESS_TARGETS_PATH", "Folder of `kind: Target` manifests; when it holds none, one `default` Target comes "
        "from the Default Target settings.", SOURCE, "targets", read="path")
    subscription_id: str | None = _setting(
        "AZURE_SUBSCRIPTION_ID", "Subscription of the default Target, and of every Target that names no "
        "`subscriptionId`.", DEFAULT_TARGET, None)
    resource_group: str | None = _setting(
        "DRIFTLESS_RESOURCE_GROUP", "Resource group of the default Target.", DEFAULT_TARGET, None)
    environment: str | None = _setting(
        "DRIFTLESS_ACA_ENVIRONMENT", "Container Apps environment of the default Target: a name in its resource group, "
        "or a full `managedEnvironments` id.", DEFAULT_TARGET, None)
    prune: bool = _setting(
        "DRIFTLESS_PRUNE", "Let the default Target delete the apps it owns that left Git.", DEFAULT_TARGET, False,
        read="flag")
    protected_apps: frozenset[str] = _setting(
        "DRIFTLESS_PROTECTED_APPS", "Comma-separated apps the default Target never deletes.", DEFAULT_TARGET,
        frozenset(), read="names")
    allow_empty: bool = _setting(
        "DRIFTLESS_ALLOW_EMPTY", "Let the default Target's prune delete all, or more than half, of the apps it owns.",
        DEFAULT_TARGET, False, read="flag")
    instance: str = _setting(
        "DRIFTLESS_INSTANCE", "Owner tag `driftless-owner` (AKS: label `app.kubernetes.io/managed-by`); two "
        "instances never touch each other's apps.", RECONCILE, DEFAULT_INSTANCE)
    arm_endpoint: str | None = _setting(
        "DRIFTLESS_ARM_ENDPOINT", "ARM endpoint instead of Azure's public cloud: the local ACA emulator.",
        DEVELOPMENT, None, deployed=False)
    metrics_endpoint: str | None = _setting(
        "DRIFTLESS_METRICS_ENDPOINT", "Azure Monitor endpoint rollout analysis reads instead of Azure's (metrics: "
        "`https://<app's region>.metrics.monitor.azure.com`, Application Insights queries: "
        "`https://api.loganalytics.io`): the local ACA emulator, which serves both.", DEVELOPMENT, None,
        deployed=False)
    metrics_delay: float = _setting(
        "DRIFTLESS_METRICS_DELAY", "Seconds Azure Monitor may take to make a minute of request metrics readable: a "
        "rollout's analysis reads the interval that ended this long ago, so minutes not yet ingested never read as "
        "a canary without traffic (a rollback comes this much later than the errors). The local emulator has no "
        "delay (0).", RECONCILE, 180.0, read="number", minimum=0)
    arm_poll_interval: float = _setting(
        "DRIFTLESS_ARM_POLL_INTERVAL", "Seconds between polls of a long-running ARM operation (ARM's `Retry-After` "
        "wins).", RECONCILE, 5.0, read="number")
    apply_timeout: float = _setting(
        "DRIFTLESS_APPLY_TIMEOUT", "Seconds one create, update or delete may take; past it the app is `failed` with a "
        "timeout, never counted as success.", RECONCILE, 600.0, read="number", minimum=0.1)
    concurrency: int = _setting(
        "DRIFTLESS_CONCURRENCY", "Requests sent at once per pass: writes of apps, jobs and Dapr components being "
        "started and operation checks (ARM's write budget, not this, bounds the operations running); AKS objects: "
        "writes in flight (also the parallel reads while planning).",
        RECONCILE, 16, read="whole", minimum=1)
    git_username: str = _setting(
        "DRIFTLESS_GIT_USERNAME", "User name sent with the Git token over HTTPS.", SOURCE, "x-access-token")
    github_app_id: str | None = _setting(
        "DRIFTLESS_GITHUB_APP_ID", "GitHub App id; with the installation id, Git and GitHub calls use installation "
        "tokens instead of the Git token.", SOURCE, None)
    github_app_installation_id: str | None = _setting(
        "DRIFTLESS_GITHUB_APP_INSTALLATION_ID", "Installation id of that GitHub App.", SOURCE, None)
    github_api_url: str = _setting(
        "DRIFTLESS_GITHUB_API_URL", "GitHub (Enterprise) REST API: App tokens, webhook registration, commit statuses, "
        "image updates.", SOURCE, "https://api.github.com")
    managed_identity_client_id: str | None = _setting(
        "AZURE_CLIENT_ID", "Client id of the user-assigned managed identity `DefaultAzureCredential` uses; unset: "
        "the system-assigned identity, or `az login` on a laptop.", AZURE, None)
    keyvault_url: str | None = _setting(
        "DRIFTLESS_KEYVAULT_URL", "Key Vault holding Driftless's secrets; unset: each secret comes from an environment "
        "variable named after it.", AZURE, None)
    secret_ttl: float = _setting(
        "DRIFTLESS_SECRET_TTL", "Seconds a secret read from Key Vault (or its absence) is cached.", AZURE, 300.0,
        read="number")
    reapply_backoff: float = _setting(
        "DRIFTLESS_REAPPLY_BACKOFF", "Seconds before an unhealthy app is re-applied again; doubles per attempt, at "
        "most 1 h, reset once healthy.", RECONCILE, 60.0, read="number")
    schedule: str = _setting(
        "DRIFTLESS_SCHEDULE", "NCRONTAB schedule of the drift-healing timer (one reconcile job per Target).",
        RECONCILE, "0 */5 * * * *")
    webhook_secret_name: str = _setting(
        "DRIFTLESS_WEBHOOK_SECRET_NAME", "GitHub webhook HMAC secret.", SECRETS, "driftless-webhook-secret",
        secret=True)
    git_token_name: str = _setting(
        "DRIFTLESS_GIT_TOKEN_NAME", "Git token: a PAT, an installation token or an Azure DevOps token.", SECRETS,
        "driftless-git-token", secret=True)
    github_app_key_name: str = _setting(
        "DRIFTLESS_GITHUB_APP_KEY_NAME", "GitHub App private key (PEM).", SECRETS,
        "driftless-github-app-private-key", secret=True)
    azdo_token_name: str = _setting(
        "DRIFTLESS_AZDO_TOKEN_NAME", "Azure DevOps token for CI feedback.", SECRETS, "driftless-azdo-token",
        secret=True)
    flux_hmac_name: str = _setting(
        "DRIFTLESS_FLUX_HMAC_NAME", "Key of Flux's `generic-hmac` provider for `/api/gitopsphase`.", SECRETS,
        "driftless-flux-hmac", secret=True)
    phase_key_name: str = _setting(
        "DRIFTLESS_PHASE_KEY_NAME", "Key `/api/gitopsphase` accepts as `?code=` or `x-functions-key`.", SECRETS,
        "driftless-phase-key", secret=True)
    feedback: str | None = _setting(
        "DRIFTLESS_FEEDBACK", "JSON: named configs saying where phase events and Driftless's own passes are reported "
        "([CI feedback](ci-feedback.md)); unset: no CI feedback.", FEEDBACK, None)
    preview_comment: bool = _setting(
        "DRIFTLESS_PREVIEW_COMMENT", "Also post a pull request's plan as one PR comment, updated in place on each "
        "push (the check run driftless/plan is always posted).", FEEDBACK, True, read="flag")
    manifests_azure_repo: str | None = _setting(
        "DRIFTLESS_MANIFESTS_AZURE_REPO", "`https://dev.azure.com/{org}/{project}/_git/{repo}` of the manifests "
        "repository on Azure Repos, when `DRIFTLESS_REPO_URL` is not that URL (plan previews of its pull requests "
        "are posted there).", FEEDBACK, None)
    azdo_hook_secret_name: str = _setting(
        "DRIFTLESS_AZDO_HOOK_SECRET_NAME", "Password of the Azure DevOps service hooks (pull request created / "
        "updated) that `/api/azure-devops/webhook` accepts.", SECRETS, "driftless-azdo-hook-secret", secret=True)
    kubeconfig: str | None = _setting(
        "DRIFTLESS_KUBECONFIG", "A kubeconfig file used for `aks` Targets instead of credentials from ARM.",
        DEVELOPMENT, None, deployed=False)
    image_schedule: str = _setting(
        "DRIFTLESS_IMAGE_SCHEDULE", "NCRONTAB schedule of the image update timer (one job per opted-in manifest).",
        IMAGES, "0 */30 * * * *")
    manifests_github_repo: str | None = _setting(
        "DRIFTLESS_MANIFESTS_GITHUB_REPO", "owner/name of the manifests repository on GitHub, when "
        "`DRIFTLESS_REPO_URL` is not a GitHub URL (image update commits go there).", IMAGES, None)
    image_notify_url_name: str = _setting(
        "DRIFTLESS_IMAGE_NOTIFY_URL_NAME", "Slack-compatible webhook URL for image update notifications (it embeds a "
        "credential); none: no notification.", SECRETS, "driftless-image-notify-url", secret=True)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """Read settings; raise SettingsError naming every malformed value."""
        env = os.environ if env is None else env
        problems: list[str] = []

        def text(name: str, default: str | None = None) -> str | None:
            value = env.get(name, "").strip()
            return value or default

        def flag(name: str, default: bool) -> bool:
            value = text(name, "true" if default else "false").lower()
            if value not in ("true", "false", "1", "0", "yes", "no"):
                problems.append(f"{name} must be true or false, got {value!r}")
            return value in ("true", "1", "yes")

        def number(name: str, default: float, low: float) -> float:
            raw = text(name)
            try:
                value = float(raw) if raw is not None else default
            except ValueError:
                value = -1
            if not math.isfinite(value) or value < low:
                problems.append(f"{name} must be a number >= {low}, got {raw!r}")
                return default
            return value

        def read(item: Field, spec: Setting) -> Any:
            default = None if item.default is MISSING else item.default
            if spec.read == "path":
                return text(spec.env, default).strip("/")
            if spec.read == "flag":
                return flag(spec.env, bool(default))
            if spec.read == "number":
                return number(spec.env, default, spec.minimum)
            if spec.read == "whole":
                return int(number(spec.env, default, spec.minimum))
            if spec.read == "names":
                return frozenset(a.strip() for a in text(spec.env, "").split(",") if a.strip())
            return text(spec.env, default)

        settings = cls(**{item.name: read(item, spec) for item, spec in described()})
        if problems:
            raise SettingsError(problems)
        return settings

    def require(self, *names: str) -> None:
        """Raise SettingsError naming each of `names` (environment variable names) that is unset."""
        attributes = {spec.env: getattr(self, item.name) for item, spec in described()}
        missing = [name for name in names if not attributes[name]]
        if missing:
            raise SettingsError([f"{name} is not set" for name in missing])

    def default_target(self) -> Target:
        """The Target used when the repository declares none: `DRIFTLESS_PATH` into the configured environment."""
        self.require("AZURE_SUBSCRIPTION_ID", "DRIFTLESS_RESOURCE_GROUP", "DRIFTLESS_ACA_ENVIRONMENT")
        return Target(name="default", path=self.path, subscription_id=str(self.subscription_id),
                      resource_group=str(self.resource_group), environment=str(self.environment),
                      prune=self.prune, protected_apps=self.protected_apps, allow_empty=self.allow_empty)


def described() -> list[tuple[Field, Setting]]:
    """Every Settings field with its `Setting`, in declaration order (the order `from_env` reads them in)."""
    return [(item, item.metadata["setting"]) for item in fields(Settings)]
