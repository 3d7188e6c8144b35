"""Settings of the local team stack (``runway team up``), from ``RUNWAY_TEAM_*``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class TeamSettings(BaseSettings):
    """Where the stack lives and which ports it takes; defaults suit one shared machine."""

    model_config = SettingsConfigDict(env_prefix="RUNWAY_TEAM_", extra="ignore")

    dir: Path = Field(
        default=Path(".team"),
        description="The stack's folder: data, logs, pid files, secrets (git-ignored).",
    )
    port_base: int = Field(
        default=15400,
        gt=0,
        lt=65533,
        description="PostgreSQL listens on this port, moto's S3 on +1, the MLflow server on +2.",
    )
    host: str = Field(
        default="127.0.0.1",
        description="The address every service binds and clients use (loopback by default).",
    )
    s3_endpoint: str = Field(
        default="",
        description=(
            "An S3-compatible endpoint (MinIO, AWS: https://s3.<region>.amazonaws.com) for "
            "the server's artifacts and data files, instead of <dir>/artifacts and moto; "
            "credentials from boto3's usual chain."
        ),
    )
    bucket: str = Field(
        default="runway-artifacts",
        description="The artifact bucket on the S3 endpoint (created when missing).",
    )
    auth: bool = Field(
        default=True,
        description="Run the MLflow server with its basic-auth app (users, passwords, grants).",
    )
    pg_os_user: str = Field(
        default="runway-pg",
        description="The unprivileged system user PostgreSQL runs as when runway runs as root.",
    )
    pg_dir: str = Field(
        default="",
        description=(
            "Where the PostgreSQL cluster lives (default <dir>/pg, or /var/tmp/runway-team-* "
            "when the PostgreSQL user cannot reach <dir>)."
        ),
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=32,
        description=(
            "The MLflow server's uvicorn workers; above 1 its login cache is off so a "
            "password change holds at once in every worker."
        ),
    )
    start_timeout: float = Field(
        default=240.0, gt=0, description="Seconds a service may take to become ready."
    )

    @property
    def ports(self) -> dict[str, int]:
        """Service -> port."""
        base = self.port_base
        return {"pg": base, "s3": base + 1, "mlflow": base + 2}
