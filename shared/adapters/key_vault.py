"""Named secrets from Azure Key Vault (cached for a TTL) or, without a vault, from environment variables.

Secret values never reach logs, exception messages or reprs: only secret names do.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Callable, Mapping

from shared.config.credentials import credential
from shared.config.settings import Settings

_LOG = logging.getLogger("driftless.secrets")
# Fail a job within seconds when the vault is down; the queue retries it.
_CLIENT_OPTIONS: dict[str, Any] = {"retry_total": 2, "retry_backoff_factor": 0.25, "retry_backoff_max": 2,
                                   "connection_timeout": 5, "read_timeout": 10}
_REASON_LIMIT = 200
_REFUSALS = {
    "ForbiddenByRbac": "Driftless's identity has no Key Vault role allowing this (reading needs 'Key Vault Secrets "
                       "User', storing 'Key Vault Secrets Officer'; a new role assignment takes a few minutes to apply)",
    "SecretDisabled": "the secret is disabled in the vault: enable it or store a new version",
    "AccessDenied": "the vault's access policies do not give Driftless's identity this permission on secrets",
}
"""Key Vault's inner error codes of a 403 -> what to do about it."""


class SecretsUnavailable(RuntimeError):
    """Key Vault could not be reached or refused us; the message names the vault and secret NAME, never a value.
    A 403 says why (no RBAC role, secret disabled, access policy); a 429 is raised only once the SDK's retries,
    which wait as long as Key Vault's `Retry-After` asks, are used up."""


class Secrets:
    """Named secrets from Key Vault (settings.keyvault_url) or, when no vault URL is set, from environment variables.

    Key Vault values (and "missing", as None) are cached per name for settings.secret_ttl seconds; failures are
    not cached. Environment mode reads the variable named like the secret, upper-cased with '-' as '_'.
    """

    def __init__(self, settings: Settings, *, env: Mapping[str, str] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self._settings = settings
        self._env = os.environ if env is None else env
        self._clock = clock
        self._lock = threading.Lock()
        self._name_locks: dict[str, threading.Lock] = {}
        self._cache: dict[str, tuple[float, str | None]] = {}
        self._client: Any = None

    def __repr__(self) -> str:
        if not self._settings.keyvault_url:
            return "Secrets(source='environment')"
        with self._lock:
            cached = sorted(self._cache)
        url, ttl = self._settings.keyvault_url, self._settings.secret_ttl
        return f"Secrets(keyvault_url={url!r}, ttl={ttl}, cached={cached})"

    def get(self, name: str) -> str | None:
        """The secret's value, or None when it does not exist (or its variable is empty/unset).

        Raises SecretsUnavailable when Key Vault cannot be reached or refuses the request.
        """
        if not self._settings.keyvault_url:
            variable = name.upper().replace("-", "_")
            _LOG.debug("reading secret %s from environment variable %s", name, variable)
            return self._env.get(variable) or None
        with self._name_lock(name):
            entry = self._cache.get(name)
            if entry is not None and self._clock() < entry[0]:
                return entry[1]
            value = self._fetch(name)
            with self._lock:
                self._cache[name] = (self._clock() + self._settings.secret_ttl, value)
            return value

    def put(self, name: str, value: str) -> None:
        """Store a new version of `name` in Key Vault (and cache it). Without a vault there is nowhere safe
        to keep a generated secret, so this raises SecretsUnavailable asking for the variable instead."""
        if not self._settings.keyvault_url:
            raise SecretsUnavailable(f"no Key Vault is configured (DRIFTLESS_KEYVAULT_URL); set "
                                     f"{name.upper().replace('-', '_')} yourself")
        from azure.core.exceptions import AzureError

        _LOG.debug("storing secret %s in Key Vault", name)
        try:
            self._secret_client().set_secret(name, value)
        except AzureError as exc:
            raise SecretsUnavailable(f"Key Vault {self._settings.keyvault_url} refused storing secret '{name}': "
                                     f"{_reason(exc)}{_advice(exc)}") from exc
        with self._lock:
            self._cache[name] = (self._clock() + self._settings.secret_ttl, value)

    def webhook_secret(self) -> str | None:
        """get(settings.webhook_secret_name)."""
        return self.get(self._settings.webhook_secret_name)

    def git_token(self) -> str | None:
        """get(settings.git_token_name)."""
        return self.get(self._settings.git_token_name)

    def github_app_private_key(self) -> str | None:
        """get(settings.github_app_key_name)."""
        return self.get(self._settings.github_app_key_name)

    def azdo_token(self) -> str | None:
        """get(settings.azdo_token_name)."""
        return self.get(self._settings.azdo_token_name)

    def flux_hmac(self) -> str | None:
        """get(settings.flux_hmac_name)."""
        return self.get(self._settings.flux_hmac_name)

    def _name_lock(self, name: str) -> threading.Lock:
        """One lock per secret name, so a slow fetch of one secret does not hold up cache hits of others."""
        with self._lock:
            return self._name_locks.setdefault(name, threading.Lock())

    def _fetch(self, name: str) -> str | None:
        """Read the latest version from Key Vault; None when it does not exist."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        _LOG.debug("reading secret %s from Key Vault", name)
        try:
            return self._secret_client().get_secret(name).value
        except ResourceNotFoundError:
            return None
        except (AzureError, ValueError) as exc:  # ValueError: the SDK rejected the vault's auth challenge
            vault = self._settings.keyvault_url
            if getattr(exc, "status_code", None) == 403:
                raise SecretsUnavailable(f"Key Vault {vault} refused reading secret '{name}': {_reason(exc)}"
                                         f"{_advice(exc)}") from exc
            raise SecretsUnavailable(f"Key Vault {vault} unavailable reading secret '{name}': {_reason(exc)}") from exc

    def _secret_client(self) -> Any:
        """The SecretClient, built on first use and reused."""
        with self._lock:
            if self._client is None:
                from azure.keyvault.secrets import SecretClient

                self._client = SecretClient(str(self._settings.keyvault_url), credential(self._settings),
                                            **_CLIENT_OPTIONS)
            return self._client


def _inner_code(exc: Exception) -> str | None:
    inner = getattr(getattr(exc, "error", None), "innererror", None)
    return inner.get("code") if isinstance(inner, dict) else None


def _reason(exc: Exception) -> str:
    """A short reason: "HTTP <status> <error code>[ (<inner code>)]" for an HTTP answer, else the error's type and
    first line."""
    status = getattr(exc, "status_code", None)
    if status is not None:
        code = getattr(getattr(exc, "error", None), "code", None)
        inner = _inner_code(exc)
        return (f"HTTP {status} {code}" if code else f"HTTP {status}") + (f" ({inner})" if inner else "")
    lines = str(exc).strip().splitlines()
    first = lines[0][:_REASON_LIMIT] if lines else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _advice(exc: Exception) -> str:
    """What to do about a 403, from its inner error code ("" for anything else)."""
    if getattr(exc, "status_code", None) != 403:
        return ""
    return "; " + _REFUSALS.get(_inner_code(exc) or "", "the vault refuses Driftless's identity")
