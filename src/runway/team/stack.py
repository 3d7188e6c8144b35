"""``runway team up|down|status|env``: the team's shared MLflow on one machine.

Three services, each in its own session under ``RUNWAY_TEAM_DIR`` (``.team/``):
PostgreSQL (tracking and registry, the auth database, Optuna studies, the
prediction log), moto's S3 server for ``s3://`` data files (none with
``RUNWAY_TEAM_S3_ENDPOINT``), and a lean ``mlflow server`` with basic-auth that
writes artifacts to ``<dir>/artifacts`` (or to the endpoint's bucket): on disk
as soon as logged, so a crash loses none that PostgreSQL points at.
Ports: ``RUNWAY_TEAM_PORT_BASE`` for PostgreSQL, +1 for S3, +2 for MLflow.
``up`` is idempotent (what runs is kept); ``down`` stops everything and checks
that nothing is left. Secrets (database and admin passwords, the server's
session key, members' passwords) are made once into ``secrets.json`` (0600).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
import time
from pathlib import Path
from typing import Any

from runway.errors import TeamError
from runway.team import dbroles, objectstore, postgres, procs, server
from runway.team.config import TeamSettings

log = logging.getLogger(__name__)

SERVICES = ("pg", "s3", "mlflow")  # start order; stop goes backwards
_STOP_SIGNAL = {"pg": signal.SIGINT, "s3": signal.SIGTERM, "mlflow": signal.SIGTERM}
_COMMAND = {"pg": "postgres", "s3": "moto.server", "mlflow": "mlflow"}  # in each one's cmdline


class Stack:
    """The stack described by ``settings`` (and by what an earlier ``up`` recorded)."""

    def __init__(self, settings: TeamSettings | None = None) -> None:
        self.settings = settings or TeamSettings()
        self.dir = self.settings.dir.resolve()
        self.run_dir, self.log_dir = self.dir / "run", self.dir / "log"
        state = _read_json(self.dir / "state.json")
        if state and self.running():
            self._check_same(state)
        self.host = self.settings.host
        self.ports = self.settings.ports
        self.external_s3 = self.settings.s3_endpoint

    def _check_same(self, state: dict[str, Any]) -> None:
        if state.get("port_base") != self.settings.port_base:
            raise TeamError(
                f"the stack in {self.dir} runs with port base {state.get('port_base')}, not "
                f"{self.settings.port_base}; run `runway team down` first to change it"
            )

    # --- files ------------------------------------------------------------------------

    def pidfile(self, service: str) -> Path:
        """Where ``service``'s pid is kept."""
        return self.run_dir / f"{service}.pid"

    def pid(self, service: str) -> int | None:
        """``service``'s live pid, if it runs."""
        return procs.read_pid(self.pidfile(service), _COMMAND[service])

    def running(self) -> list[str]:
        """The services whose process is alive."""
        return [s for s in SERVICES if self.pid(s) is not None]

    @property
    def secrets(self) -> dict[str, Any]:
        """Passwords and keys, made on first use (0600)."""
        path = self.dir / "secrets.json"
        found = _read_json(path)
        if not found:
            found = {
                "pg_password": secrets.token_urlsafe(18),
                "admin_password": secrets.token_urlsafe(18),
                "flask_secret": secrets.token_hex(32),
                "users": {},
            }
            self._write_private(path, json.dumps(found, indent=1))
        return found

    def _write_private(self, path: Path, text: str) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600, exist_ok=True)
        path.chmod(0o600)
        path.write_text(text)

    def save_user(self, username: str, password: str) -> None:
        """Remember a member's password in the secrets file."""
        found = self.secrets
        found.setdefault("users", {})[username] = password
        self._write_private(self.dir / "secrets.json", json.dumps(found, indent=1))

    # --- addresses --------------------------------------------------------------------

    def pg_url(self, database: str, *, password: bool = True) -> str:
        """A SQLAlchemy URL of one of the stack's databases (psycopg 3)."""
        cred = (
            f"{postgres.SUPERUSER}:{self.secrets['pg_password']}"
            if password
            else postgres.SUPERUSER
        )
        return f"postgresql+psycopg://{cred}@{self.host}:{self.ports['pg']}/{database}"

    @property
    def s3_endpoint(self) -> str:
        """The S3 endpoint artifacts go to."""
        return self.external_s3 or f"http://{self.host}:{self.ports['s3']}"

    @property
    def url(self) -> str:
        """The MLflow server's URL (what members set as MLFLOW_TRACKING_URI)."""
        return f"http://{self.host}:{self.ports['mlflow']}"

    @property
    def artifacts(self) -> str:
        """Where the server writes artifacts: the endpoint's bucket, else a folder of ours."""
        if self.external_s3:
            return f"s3://{self.settings.bucket}/mlflow"
        return str(self.dir / "artifacts")

    # --- up -----------------------------------------------------------------------------

    def up(self) -> list[str]:
        """Start whatever is not running; one line per service (what, where, how long)."""
        started = time.monotonic()
        self.dir.mkdir(parents=True, exist_ok=True)
        state = {"port_base": self.settings.port_base, "host": self.host, "s3": self.s3_endpoint}
        (self.dir / "state.json").write_text(json.dumps(state, indent=1))
        lines = [self._up_pg(), self._up_s3(), self._up_mlflow()]
        lines.append(f"team stack up in {time.monotonic() - started:.1f}s: {self.url}")
        return lines

    def _free_or_ours(self, service: str) -> bool:
        """True if ``service`` already runs; an error if its port is someone else's."""
        if self.pid(service) is not None:
            return True
        port = self.ports[service]
        if procs.port_open(self.host, port):
            raise TeamError(
                f"port {port} ({service}) is taken by another program; set "
                "RUNWAY_TEAM_PORT_BASE to a free range of three ports"
            )
        return False

    def cluster(self) -> postgres.Cluster:
        """The PostgreSQL cluster (binaries installed first if missing)."""
        identity = postgres.os_identity(self.settings.pg_os_user)
        root = postgres.cluster_dir(self.dir, self.settings.pg_dir, identity)
        return postgres.Cluster(root, self.host, self.ports["pg"], identity)

    def _up_pg(self) -> str:
        cluster = self.cluster()
        note = "already running"
        if not self._free_or_ours("pg"):
            init = 0.0
            if not cluster.initialised():
                init = cluster.init(self.secrets["pg_password"])
            ready = cluster.start(
                self.log_dir / "pg.log", self.pidfile("pg"), self.settings.start_timeout
            )
            note = f"ready in {ready:.1f}s" + (f" (initdb {init:.1f}s)" if init else "")
        made = cluster.create_databases(self.secrets["pg_password"])
        extra = f"; created databases {', '.join(made)}" if made else ""
        return f"postgres  {self.host}:{self.ports['pg']} {note}{extra} ({cluster.root})"

    def _up_s3(self) -> str:
        if self.external_s3:
            made = objectstore.ensure_bucket(self.external_s3, self.settings.bucket)
            return f"s3        {self.external_s3} bucket {self.settings.bucket}" + (
                " (created)" if made else ""
            )
        note = "already running"
        if not self._free_or_ours("s3"):
            ready = objectstore.start_moto(
                self.host,
                self.ports["s3"],
                self.log_dir / "s3.log",
                self.pidfile("s3"),
                self.settings.start_timeout,
            )
            note = f"moto ready in {ready:.1f}s"
        return f"s3        {self.s3_endpoint} {note} (s3:// data files, in memory)"

    def _up_mlflow(self) -> str:
        if self._free_or_ours("mlflow"):
            waited = _wait(lambda: server.ready(self.url), self.settings.start_timeout)
            if waited is None:
                raise TeamError(f"the mlflow server (pid {self.pid('mlflow')}) does not answer")
            return f"mlflow    {self.url} already running"
        if not self.external_s3:
            _adopt_saved_bucket(self.dir)
        command, env = self.server_launch(self.ports["mlflow"], self.dir / "mlflow")
        ready = server.start(
            command,
            env,
            self.url,
            self.log_dir / "mlflow.log",
            self.pidfile("mlflow"),
            self.settings.start_timeout,
        )
        auth = "basic-auth, admin user 'admin'" if self.settings.auth else "no authentication"
        return f"mlflow    {self.url} ready in {ready:.1f}s ({auth}; artifacts in {self.artifacts})"

    def server_launch(self, port: int, folder: Path) -> tuple[list[str], dict[str, str]]:
        """The server's command and environment (its auth configuration written to ``folder``)."""
        workers = self.settings.workers
        auth_config = None
        if self.settings.auth:
            auth_config = server.auth_ini(
                folder / "basic_auth.ini",
                self.pg_url("mlflow_auth", password=False),
                self.secrets["admin_password"],
                workers,
            )
        extra = {
            "PGPASSFILE": str(self._pgpass()),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": self.secrets["flask_secret"],
        }
        if self.external_s3:
            extra["MLFLOW_S3_ENDPOINT_URL"] = self.external_s3
        command = server.command(
            self.host,
            port,
            self.pg_url("mlflow", password=False),
            self.artifacts,
            self.settings.auth,
            workers,
        )
        return command, server.environment(os.environ, extra, auth_config)

    def _pgpass(self) -> Path:
        """The database password for libpq (0600), so no password shows in `ps`."""
        path = self.dir / "pgpass"
        line = (
            f"{self.host}:{self.ports['pg']}:*:{postgres.SUPERUSER}:{self.secrets['pg_password']}"
        )
        self._write_private(path, line + "\n")
        return path

    # --- members -------------------------------------------------------------------

    def env(self, user: str | None = None) -> dict[str, str]:
        """The variables a member exports (``runway team env``): the admin's unless ``user``."""
        found = self.secrets
        if user is None:
            name, password = server.ADMIN, found["admin_password"]
        elif user in found.get("users", {}):
            name, password = user, found["users"][user]
        else:
            raise TeamError(f"no member {user!r} in {self.dir}; add one: runway team user {user}")
        variables = {"MLFLOW_TRACKING_URI": self.url}
        if self.settings.auth:
            variables |= {"MLFLOW_TRACKING_USERNAME": name, "MLFLOW_TRACKING_PASSWORD": password}
        variables |= self._database_urls(user)
        variables["MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD"] = "false"
        if not self.external_s3:  # data files on the stack's S3 (runway score s3://...)
            variables |= objectstore.moto_env(self.s3_endpoint)
        return variables

    def _database_urls(self, user: str | None) -> dict[str, str]:
        """The admin gets the superuser's; a member their own login, for what their roles need."""
        if user is None:
            return {
                "RUNWAY_OPTUNA_STORAGE": self.pg_url("optuna"),
                "RUNWAY_PREDICTION_LOG": self.pg_url("predictions"),
            }
        found = self.secrets
        password, roles = found.get("db", {}).get(user), found.get("roles", {}).get(user, [])
        if password is None:
            return {}
        base, urls = self.pg_url("postgres"), {}
        if "author" in roles:
            urls["RUNWAY_OPTUNA_STORAGE"] = dbroles.member_url(base, user, password, "optuna")
        if "author" in roles or "service" in roles:
            urls["RUNWAY_PREDICTION_LOG"] = dbroles.member_url(base, user, password, "predictions")
        return urls

    def grant_database(self, user: str, role: str) -> list[str]:
        """``user``'s own database login (password in secrets.json) with what ``role`` needs."""
        dbroles.check_name(user, postgres.SUPERUSER)
        found = self.secrets
        password = found.setdefault("db", {}).get(user) or secrets.token_urlsafe(18)
        databases = dbroles.Databases(self.pg_url("postgres"))
        databases.prepare()
        databases.set_password(user, password)
        lines = databases.grant(role, user)
        found["db"][user] = password
        held = found.setdefault("roles", {}).setdefault(user, [])
        if role not in held:
            held.append(role)
        self._write_private(self.dir / "secrets.json", json.dumps(found, indent=1))
        return lines

    def admin(self) -> Any:
        """Admin calls on the running server, as the stack's admin."""
        from runway.store.access import Admin

        if not self.settings.auth:
            raise TeamError("the stack runs without authentication (RUNWAY_TEAM_AUTH=false)")
        if not server.ready(self.url):
            raise TeamError(f"the team stack's server {self.url} is not running: runway team up")
        return Admin(self.url, server.ADMIN, self.secrets["admin_password"])

    def add_user(self, username: str) -> bool:
        """Create ``username`` with a generated password (kept in secrets.json); True if new."""
        password = self.secrets.get("users", {}).get(username) or secrets.token_urlsafe(18)
        created = bool(self.admin().ensure_user(username, password))
        self.save_user(username, password)
        return created

    # --- down, status ----------------------------------------------------------------

    def down(self, *, purge: bool = False) -> list[str]:
        """Stop every service and check that nothing is left."""
        started = time.monotonic()
        lines = []
        for service in reversed(SERVICES):
            count = procs.stop(self.pidfile(service), _STOP_SIGNAL[service], _COMMAND[service])
            lines.append(
                f"{service:<9} {'stopped ' + str(count) + ' processes' if count else 'not running'}"
            )
        busy = [f"{s}:{p}" for s, p in self.ports.items() if procs.port_open(self.host, p)]
        if busy and not (self.external_s3 and busy == [f"s3:{self.ports['s3']}"]):
            raise TeamError(f"stopped the stack, but ports are still in use: {', '.join(busy)}")
        if purge:
            lines.extend(self._purge())
        lines.append(f"team stack down in {time.monotonic() - started:.1f}s; nothing left running")
        return lines

    def _purge(self) -> list[str]:
        cluster_root = postgres.cluster_dir(
            self.dir, self.settings.pg_dir, postgres.os_identity(self.settings.pg_os_user)
        )
        removed = []
        for folder in (cluster_root, self.dir):
            if folder.exists():
                shutil.rmtree(folder)
                removed.append(f"removed   {folder}")
        return removed

    def status(self) -> tuple[list[str], bool]:
        """One line per service (up or down, pid, processes, memory); True if all are up."""
        checks = {
            "pg": lambda: procs.port_open(self.host, self.ports["pg"]),
            "s3": lambda: objectstore.moto_ready(self.s3_endpoint),
            "mlflow": lambda: server.ready(self.url),
        }
        lines, healthy = [], True
        for service in SERVICES:
            if service == "s3" and self.external_s3:
                lines.append(f"s3        external {self.external_s3}")
                continue
            pid = self.pid(service)
            up = pid is not None and checks[service]()
            healthy &= up
            members = procs.tree(pid) if pid else []
            memory = sum(_rss_kib(p) for p in members) / 1024
            lines.append(
                f"{service:<9} {'up' if up else 'DOWN':<5} port {self.ports[service]}  "
                f"pid {pid or '-'}  {len(members)} processes  {memory:.0f} MiB"
            )
        return lines, healthy


def _adopt_saved_bucket(folder: Path) -> None:
    """Artifacts an older stack saved from moto's memory at ``team down`` become the folder's."""
    saved = folder / "s3" / "mlflow"  # s3://<bucket>/mlflow/<experiment>/... as files
    if saved.is_dir() and not (folder / "artifacts").exists():
        saved.rename(folder / "artifacts")
        log.info("moved the artifacts saved from moto (%s) to %s", saved, folder / "artifacts")


def _wait(ready: Any, timeout: float) -> float | None:
    """Seconds until ``ready()`` holds, or None after ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if ready():
            return time.monotonic() - started
        time.sleep(0.2)
    return None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0
