"""The secret-store port and its adapters. The Teams Workflows webhook URL is a credential
(engineering.md §4): the routing table stores only the secret's *name* (a reference), and the
URL is looked up here at send time and never stored, logged or put in an error text.

Adapters:
* :class:`EnvSecretStore` — ``FLK_NOTIFIER_SECRET_<REF>`` (the reference upper-cased, every
  character other than A–Z and 0–9 replaced by ``_``);
* :class:`DirSecretStore` — one file per secret, ``<dir>/<ref>`` (a mounted Kubernetes/Docker
  secret); the file's content, stripped;
* :class:`ChainedSecretStore` — the first store that knows the reference.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

SECRET_REF_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
ENV_PREFIX = "FLK_NOTIFIER_SECRET_"


class SecretStore(Protocol):
    def get(self, ref: str) -> str | None: ...


def validate_secret_ref(ref: str) -> str:
    if not SECRET_REF_PATTERN.match(ref):
        raise ValueError("a secret reference is a name of letters, digits, '_', '.', '-' (not a URL or path)")
    return ref


def env_var_for(ref: str) -> str:
    return ENV_PREFIX + re.sub(r"[^A-Z0-9]", "_", validate_secret_ref(ref).upper())


class EnvSecretStore:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ

    def get(self, ref: str) -> str | None:
        environ = self._environ if self._environ is not None else os.environ
        value = environ.get(env_var_for(ref))
        return value.strip() if value and value.strip() else None


class DirSecretStore:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def get(self, ref: str) -> str | None:
        path = self.directory / validate_secret_ref(ref)
        try:
            value = path.read_text(encoding="utf-8").strip()
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            return None
        return value or None


class ChainedSecretStore:
    def __init__(self, *stores: SecretStore) -> None:
        self.stores = stores

    def get(self, ref: str) -> str | None:
        for store in self.stores:
            value = store.get(ref)
            if value is not None:
                return value
        return None


class MemorySecretStore:
    """For tests and tools."""

    def __init__(self, secrets: Mapping[str, str] | None = None) -> None:
        self.secrets = dict(secrets or {})

    def get(self, ref: str) -> str | None:
        return self.secrets.get(ref)


def secret_store_from_settings(secrets_dir: Path | None) -> SecretStore:
    stores: list[SecretStore] = []
    if secrets_dir is not None:
        stores.append(DirSecretStore(secrets_dir))
    stores.append(EnvSecretStore())
    return ChainedSecretStore(*stores)
