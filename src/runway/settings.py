"""Settings from the environment: ``RUNWAY_*`` plus MLflow's own variables.

Nothing here is read at import time; call :func:`get_settings` when needed so
tests (and users) can change the environment between calls.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


class Settings(BaseSettings):
    """Where state lives. Defaults are the embedded, one-laptop setup."""

    model_config = SettingsConfigDict(env_prefix="RUNWAY_", extra="ignore")

    tracking_uri: str = Field(
        default=DEFAULT_TRACKING_URI,
        validation_alias="MLFLOW_TRACKING_URI",
        description="MLflow tracking and registry store (MLflow's own variable).",
    )
    artifact_root: str = Field(
        default="./mlruns",
        description=(
            "Artifact root for experiments runway creates when the tracking store is a "
            "local database; a tracking server owns its own artifact root."
        ),
    )

    optuna_storage: str = Field(
        default="optuna.journal",
        description=(
            "Where sweep studies live: a journal file path (default, safe for several "
            "processes on one machine) or an RDB URL such as postgresql://... for many machines."
        ),
    )

    registry_dir: str = Field(
        default="registry",
        description="Where promotion policies live: <registry_dir>/<model>.yaml.",
    )
    audit_experiment: str = Field(
        default="runway-registry-audit",
        description=(
            "The MLflow experiment holding the promotion audit trail (one run per "
            "promotion attempt or rollback), shared through the tracking store."
        ),
    )
    lock_timeout: float = Field(
        default=120.0,
        gt=0,
        description="Seconds a promotion waits for another promotion of the same model.",
    )

    def artifact_location(self) -> str:
        """The artifact root as an absolute URI (local paths become ``file://``)."""
        if "://" in self.artifact_root:
            return self.artifact_root
        return Path(self.artifact_root).expanduser().resolve().as_uri()

    def tracking_is_local_db(self) -> bool:
        """True when runway, not a tracking server, decides where artifacts go."""
        return self.tracking_uri.split(":", 1)[0] in {
            "sqlite",
            "postgresql",
            "mysql",
            "mssql",
        }


def get_settings() -> Settings:
    """Read the settings from the current environment."""
    return Settings()
