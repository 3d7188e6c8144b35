"""The only module that calls Model Registry APIs.

For now: registering a new version (stage None). Stage transitions, gates,
reviews and the alias mirror arrive with the registry-promotion work and live
here too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import mlflow
from mlflow.exceptions import MlflowException

from runway.errors import RunwayError

log = logging.getLogger(__name__)


class RegistryError(RunwayError):
    """A registry operation was refused or failed."""

    exit_code = 6


@dataclass(frozen=True)
class RegisteredVersion:
    """A model version as registered."""

    name: str
    version: str
    source: str
    run_id: str | None


def register_version(
    name: str,
    model_uri: str,
    *,
    run_id: str | None,
    tags: dict[str, str],
    description: str = "",
) -> RegisteredVersion:
    """Register ``model_uri`` as a new version of ``name`` (created on first use)."""
    client = mlflow.MlflowClient()
    try:
        version = mlflow.register_model(model_uri, name, tags=tags)
    except MlflowException as exc:
        raise RegistryError(f"cannot register {model_uri} as {name!r}: {exc.message}") from exc
    if description:
        client.update_model_version(name, version.version, description=description)
    log.info("registered %s version %s (stage None)", name, version.version)
    return RegisteredVersion(name, str(version.version), model_uri, run_id)
