"""Secrets named in configuration, never written in it: a configuration key ending in `_env`
names the environment variable that holds the value, and `<NAME>_FILE` may name a mounted file
that holds it instead. Values are read at each use, so a rotated key needs no restart."""

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ENV_SUFFIX = "_env"


def secret_from_environment(name: str, default: str = "") -> str:
    """The value of environment variable `name`, else of the file `<name>_FILE` names, else `default`."""
    value = os.environ.get(name, "").strip()
    if value:
        return value
    path = os.environ.get(f"{name}_FILE", "").strip()
    if path:
        return Path(path).read_text().strip()
    return default


def secrets_from_environment(name: str) -> list[str]:
    """A comma-separated list of secrets from one variable (or its file)."""
    return [item.strip() for item in secret_from_environment(name).split(",") if item.strip()]


def environment_names(config: Any) -> Iterator[str]:
    """Every variable name a configuration (nested dicts and lists) points at with an `_env` key."""
    if isinstance(config, dict):
        for key, value in config.items():
            if isinstance(key, str) and key.endswith(ENV_SUFFIX) and isinstance(value, str):
                yield value
            else:
                yield from environment_names(value)
    elif isinstance(config, list | tuple):
        for item in config:
            yield from environment_names(item)
