"""Settings from environment variables: the same names as the Function App's app settings."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

from shared.core.manifests import Target

DEFAULT_INSTANCE = "driftless"


class SettingsError(ValueError):
    """A setting is missing or malformed; `names` lists every offending setting."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class Settings:
    repo_url: str | None
    branch: str = "main"
    path: str = "apps"
    targets_path: str = "targets"
    subscription_id: str | None = None
    resource_group: str | None = None
    environment: str | None = None
    prune: bool = False
    protected_apps: frozenset[str] = frozenset()
    allow_empty: bool = False
    instance: str = DEFAULT_INSTANCE
    arm_endpoint: str | None = None
    arm_poll_interval: float = 5.0
    apply_timeout: float = 600.0
    concurrency: int = 16
    git_username: str = "x-access-token"
    github_app_id: str | None = None
    github_app_installation_id: str | None = None
    github_api_url: str = "https://api.github.com"
    managed_identity_client_id: str | None = None
    keyvault_url: str | None = None
    secret_ttl: float = 300.0
    reapply_backoff: float = 60.0
    schedule: str = "0 */5 * * * *"
    webhook_secret_name: str = "driftless-webhook-secret"
    git_token_name: str = "driftless-git-token"
    github_app_key_name: str = "driftless-github-app-private-key"
    azdo_token_name: str = "driftless-azdo-token"
    flux_hmac_name: str = "driftless-flux-hmac"
    phase_key_name: str = "driftless-phase-key"
    feedback: str | None = None
    kubeconfig: str | None = None
    image_schedule: str = "0 */30 * * * *"
    manifests_github_repo: str | None = None
    image_notify_url_name: str = "driftless-image-notify-url"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """Read settings; raise SettingsError naming every malformed value."""
        env = os.environ if env is None else env
        problems: list[str] = []

        def text(name: str, default: str | None = None) -> str | None:
            value = env.get(name, "").strip()
            return value or default

        def flag(name: str) -> bool:
            value = text(name, "false").lower()
            if value not in ("true", "false", "1", "0", "yes", "no"):
                problems.append(f"{name} must be true or false, got {value!r}")
            return value in ("true", "1", "yes")

        def number(name: str, default: float, low: float) -> float:
            raw = text(name)
            try:
                value = float(raw) if raw is not None else default
            except ValueError:
                value = -1
            if value < low:
                problems.append(f"{name} must be a number >= {low}, got {raw!r}")
                return default
            return value

        settings = cls(
            repo_url=text("DRIFTLESS_REPO_URL"),
            branch=text("DRIFTLESS_BRANCH", "main"),
            path=text("DRIFTLESS_PATH", "apps").strip("/"),
            targets_path=text("DRIFTLESS_TARGETS_PATH", "targets").strip("/"),
            subscription_id=text("AZURE_SUBSCRIPTION_ID"),
            resource_group=text("DRIFTLESS_RESOURCE_GROUP"),
            environment=text("DRIFTLESS_ACA_ENVIRONMENT"),
            prune=flag("DRIFTLESS_PRUNE"),
            protected_apps=frozenset(a.strip() for a in text("DRIFTLESS_PROTECTED_APPS", "").split(",") if a.strip()),
            allow_empty=flag("DRIFTLESS_ALLOW_EMPTY"),
            instance=text("DRIFTLESS_INSTANCE", DEFAULT_INSTANCE),
            arm_endpoint=text("DRIFTLESS_ARM_ENDPOINT"),
            arm_poll_interval=number("DRIFTLESS_ARM_POLL_INTERVAL", 5.0, 0.0),
            apply_timeout=number("DRIFTLESS_APPLY_TIMEOUT", 600.0, 0.1),
            concurrency=int(number("DRIFTLESS_CONCURRENCY", 16, 1)),
            git_username=text("DRIFTLESS_GIT_USERNAME", "x-access-token"),
            github_app_id=text("DRIFTLESS_GITHUB_APP_ID"),
            github_app_installation_id=text("DRIFTLESS_GITHUB_APP_INSTALLATION_ID"),
            github_api_url=text("DRIFTLESS_GITHUB_API_URL", "https://api.github.com"),
            managed_identity_client_id=text("AZURE_CLIENT_ID"),
            keyvault_url=text("DRIFTLESS_KEYVAULT_URL"),
            secret_ttl=number("DRIFTLESS_SECRET_TTL", 300.0, 0.0),
            reapply_backoff=number("DRIFTLESS_REAPPLY_BACKOFF", 60.0, 0.0),
            schedule=text("DRIFTLESS_SCHEDULE", "0 */5 * * * *"),
            webhook_secret_name=text("DRIFTLESS_WEBHOOK_SECRET_NAME", "driftless-webhook-secret"),
            git_token_name=text("DRIFTLESS_GIT_TOKEN_NAME", "driftless-git-token"),
            github_app_key_name=text("DRIFTLESS_GITHUB_APP_KEY_NAME", "driftless-github-app-private-key"),
            azdo_token_name=text("DRIFTLESS_AZDO_TOKEN_NAME", "driftless-azdo-token"),
            flux_hmac_name=text("DRIFTLESS_FLUX_HMAC_NAME", "driftless-flux-hmac"),
            phase_key_name=text("DRIFTLESS_PHASE_KEY_NAME", "driftless-phase-key"),
            feedback=text("DRIFTLESS_FEEDBACK"),
            kubeconfig=text("DRIFTLESS_KUBECONFIG"),
            image_schedule=text("DRIFTLESS_IMAGE_SCHEDULE", "0 */30 * * * *"),
            manifests_github_repo=text("DRIFTLESS_MANIFESTS_GITHUB_REPO"),
            image_notify_url_name=text("DRIFTLESS_IMAGE_NOTIFY_URL_NAME", "driftless-image-notify-url"),
        )
        if problems:
            raise SettingsError(problems)
        return settings

    def require(self, *names: str) -> None:
        """Raise SettingsError naming each of `names` (environment variable names) that is unset."""
        attributes = {"DRIFTLESS_REPO_URL": self.repo_url, "AZURE_SUBSCRIPTION_ID": self.subscription_id,
                      "DRIFTLESS_RESOURCE_GROUP": self.resource_group,
                      "DRIFTLESS_ACA_ENVIRONMENT": self.environment}
        missing = [name for name in names if not attributes[name]]
        if missing:
            raise SettingsError([f"{name} is not set" for name in missing])

    def default_target(self) -> Target:
        """The Target used when the repository declares none: `DRIFTLESS_PATH` into the configured environment."""
        self.require("AZURE_SUBSCRIPTION_ID", "DRIFTLESS_RESOURCE_GROUP", "DRIFTLESS_ACA_ENVIRONMENT")
        return Target(name="default", path=self.path, subscription_id=str(self.subscription_id),
                      resource_group=str(self.resource_group), environment=str(self.environment),
                      prune=self.prune, protected_apps=self.protected_apps, allow_empty=self.allow_empty)
