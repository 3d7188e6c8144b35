"""Settings from the environment: ``RUNWAY_*`` plus MLflow's own variables.

Nothing here is read at import time; call :func:`get_settings` when needed so
tests (and users) can change the environment between calls.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
# URL schemes of databases SQLAlchemy reaches (a "+driver" suffix is allowed).
DB_SCHEMES = frozenset({"sqlite", "postgresql", "mysql", "mssql"})


def state_dir() -> Path:
    """This user's own state folder for runway: ``$XDG_STATE_HOME/runway``, else
    ``~/.local/state/runway`` (backend logs live under it, never in a shared temp dir)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "runway"


def is_server_url(uri: str) -> bool:
    """True for a tracking server's address (``http://``, ``https://``): the team's store."""
    return uri.lower().startswith(("http://", "https://"))


def is_database_url(url: str) -> bool:
    """True for ``sqlite:///...``, ``postgresql+psycopg://...`` and the like."""
    return url.split(":", 1)[0].split("+", 1)[0].lower() in DB_SCHEMES


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

    ui_url: str = Field(
        default="http://127.0.0.1:5000",
        description=(
            "Where people open the MLflow UI over this store (`make ui`), for the links "
            "runway prints; a tracking server's own address is used when tracking is remote."
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
    lock_lease: float = Field(
        default=60.0,
        gt=0,
        description=(
            "Seconds a promotion lock stays valid without renewal; the holder renews it "
            "every third of that while it works, so only a dead holder's lock runs out."
        ),
    )

    monitor_experiment: str = Field(
        default="runway-monitoring",
        description="The MLflow experiment holding one run per monitored model, version and window.",
    )
    monitor_report_dir: str = Field(
        default="monitoring",
        description="Where `runway monitor` writes its HTML reports (<dir>/<model>/...html).",
    )
    retrain_data_dir: str = Field(
        default="retrain-data",
        description="Where `runway retrain` writes the training data it assembles "
        "(the original data plus labelled prediction-log rows).",
    )

    prediction_log: str = Field(
        default="predictions",
        description=(
            "Where scored rows are recorded for monitoring: a directory (Parquet part "
            "files), a database URL (sqlite:///..., postgresql://...) or 'off'."
        ),
    )
    prediction_log_sample: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="Fraction of served requests recorded in the prediction log.",
    )

    # `runway serve` reads these when its command line does not say: a container's
    # entrypoint is the bare `runway serve`, configured by environment (Dockerfile, deploy/).
    serve_model: str = Field(
        default="", description="The registered model `runway serve` serves (its MODEL argument)."
    )
    serve_host: str = Field(
        default="127.0.0.1",
        description="Address `runway serve` listens on (0.0.0.0 in a container).",
    )
    serve_port: int = Field(default=8080, gt=0, lt=65536, description="`runway serve`'s port.")
    serve_workers: int = Field(
        default=2, ge=1, description="Backends behind `runway serve`'s gateway (--workers)."
    )
    serve_tokens: str = Field(
        default="",
        description=(
            "Comma-separated bearer tokens the serving gateway accepts on /invocations "
            "and /metrics; empty: no authentication."
        ),
    )
    serve_allowed_hosts: str = Field(
        default="127.0.0.1,localhost,[::1]",
        description="Comma-separated Host header values the gateway answers ('*': any).",
    )
    serve_max_body_mb: float = Field(
        default=5.0, gt=0, description="Largest request body the gateway accepts (413 above)."
    )
    serve_max_concurrency: int = Field(
        default=32,
        gt=0,
        description="Requests the gateway scores at once; more are shed with 503.",
    )
    serve_timeout: float = Field(
        default=30.0, gt=0, description="Seconds a request may take before the gateway answers 504."
    )
    serve_body_timeout: float = Field(
        default=10.0,
        gt=0,
        description=(
            "Seconds a client may take to send a request body (408 after); the request's "
            "concurrency slot is taken only once the body is in."
        ),
    )
    serve_header_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a client may take to send a request's headers (then it is dropped).",
    )
    serve_max_header_kb: int = Field(
        default=64, gt=0, description="Largest request head (line and headers) the gateway reads."
    )
    serve_max_connections_per_client: int = Field(
        default=64,
        ge=0,
        description=(
            "Open connections one client address may hold (more are closed at once; 0: no cap). "
            "Behind a proxy every client shares its address: raise it or set 0."
        ),
    )
    serve_replica: str = Field(
        default="",
        description=(
            "This gateway's name in its prediction-log rows (column replica) and /metrics "
            "(runway_replica_info); empty: <hostname>:<port> (in Kubernetes the pod's name)."
        ),
    )
    serve_poll_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How often the gateway checks the registry for a new Production version.",
    )
    serve_start_timeout: float = Field(
        default=180.0,
        gt=0,
        description="Seconds a new backend may take to load its model and answer /ping.",
    )
    serve_prepare_timeout: float = Field(
        default=600.0,
        gt=0,
        description=(
            "Seconds the gateway's child may take to resolve, download and check a version "
            "(a slow artifact store fails the switch, not the endpoint)."
        ),
    )
    serve_cache_entries: int = Field(
        default=0,
        ge=0,
        description=(
            "Rows the gateway's prediction cache holds (per version, least recently used "
            "out); 0: no cache, every row goes to the model."
        ),
    )
    serve_cache_mb: float = Field(
        default=64.0, gt=0, description="Memory the prediction cache may use (estimated), in MB."
    )
    serve_cache_ttl: float = Field(
        default=300.0, gt=0, description="Seconds a cached prediction is answered for."
    )

    allow_pickle_models: bool = Field(
        default=False,
        description=(
            "Load model versions that run code while loading (pickle, cloudpickle, custom "
            "pyfunc, code directories). Off: runway loads only skops models whose types are "
            "all on its allow-list."
        ),
    )
    audit_key: SecretStr = Field(
        default=SecretStr(""),
        description=(
            "A secret that signs the audit chain (HMAC-SHA256) so records cannot be forged by "
            "someone who can write to the tracking store; keep it outside the store. Empty: "
            "records are chained with plain SHA-256 (tamper-evident, not forgery-proof)."
        ),
    )

    # --- batch scoring (runway score) ---
    batch_chunk_rows: int = Field(
        default=100_000,
        gt=0,
        description="Rows `runway score` reads, checks and scores at a time (memory grows with it).",
    )
    batch_max_reject_rate: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description=(
            "Largest fraction of input rows `runway score` may reject before it fails "
            "(exit 7, output not published)."
        ),
    )

    # --- threads (runway.core.threads) ---
    threads: int | None = Field(
        default=None,
        ge=1,
        description=(
            "BLAS/OpenMP threads per process runway starts or scores in. Unset: 1 for "
            "serving backends, the latency gate and Spark's Python workers; all cores for "
            "batch scoring in this process; cores / workers for each sweep worker."
        ),
    )

    # --- team mode: a shared tracking server, studies across machines ---
    http_retries: int = Field(
        default=2,
        ge=0,
        le=10,
        description="Retries of a failed request to a tracking server (MLflow's default: 7).",
    )
    # a whole number: MLflow reads MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR as an integer
    http_backoff: int = Field(
        default=1,
        ge=0,
        le=120,
        description="Backoff factor between those retries (whole seconds): waits 0, 2x, 4x...",
    )
    http_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds a tracking server may stay silent on one request (MLflow's: 120).",
    )
    sweep_heartbeat: int = Field(
        default=10,
        ge=1,
        description="Seconds between a sweep worker's heartbeats on an RDB study (all workers alike).",
    )
    sweep_grace: int = Field(
        default=60,
        ge=1,
        description="Seconds without a heartbeat after which a trial's worker counts as dead "
        "and the trial is retried; far above any pause a live worker may take.",
    )
    sweep_retries: int = Field(
        default=3, ge=0, description="Times a trial whose worker died is run again."
    )
    sweep_outage_wait: float = Field(
        default=300.0,
        ge=0,
        description="Seconds a sweep worker waits for an unreachable tracking server before "
        "the sweep stops (its trial not counted: --resume runs it again).",
    )

    def artifact_location(self) -> str:
        """The artifact root as an absolute URI (local paths become ``file://``)."""
        if "://" in self.artifact_root:
            return self.artifact_root
        return Path(self.artifact_root).expanduser().resolve().as_uri()

    def tracking_is_local_db(self) -> bool:
        """True when runway, not a tracking server, decides where artifacts go."""
        return is_database_url(self.tracking_uri)


def get_settings() -> Settings:
    """Read the settings from the current environment."""
    return Settings()


def environment_problems(exc: ValidationError) -> str:
    """A settings validation error as the variables a user set: ``RUNWAY_SERVE_PORT='abc':
    expected an integer``, not pydantic's field names."""
    problems = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else ""
        field = Settings.model_fields.get(name)
        alias = field.validation_alias if field is not None else None
        variable = alias if isinstance(alias, str) else f"RUNWAY_{name.upper()}"
        problems.append(f"{variable}={error.get('input')!r}: {error['msg']}")
    return "environment: " + "; ".join(problems)
