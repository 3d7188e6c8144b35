"""A private PostgreSQL cluster on loopback, from Debian's ``postgresql`` package.

``initdb`` refuses to run as root, so as root the cluster belongs to a system
user (``RUNWAY_TEAM_PG_OS_USER``, created when missing) and the server runs as
that user. Clients authenticate with a password over TCP (scram-sha-256); the
unix socket sits in a private folder. When the server binaries are missing and
runway runs as root, they are installed with apt-get, with service starts denied
so the package's own cluster does not start.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pwd
import shutil
import stat
import subprocess
import time
from pathlib import Path
from typing import TypedDict

from runway.errors import TeamError
from runway.team import procs

log = logging.getLogger(__name__)

SUPERUSER = "runway"
DATABASES = ("mlflow", "mlflow_auth", "optuna", "predictions")
_POLICY_RC = Path("/usr/sbin/policy-rc.d")


def bin_dir() -> Path:
    """The newest installed PostgreSQL server's ``bin`` folder, installed first if missing."""
    found = _installed()
    if found is None:
        _install()
        found = _installed()
    if found is None:
        raise TeamError("PostgreSQL server binaries still missing after apt-get install postgresql")
    return found


def _installed() -> Path | None:
    versions = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "postgres").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    return versions[-1] if versions else None


def _install() -> None:
    """``apt-get install postgresql`` as root, with service starts denied (policy-rc.d)."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise TeamError(
            "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/postgres); "
            "install them: sudo apt-get install postgresql"
        )
    log.info("installing PostgreSQL with apt-get (once per machine)")
    own_policy = not _POLICY_RC.exists()
    if own_policy:  # the package would start its own cluster on 5432 otherwise
        _POLICY_RC.write_text("#!/bin/sh\nexit 101\n")
        _POLICY_RC.chmod(0o755)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        for cmd in (
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "postgresql"],
        ):
            done = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if done.returncode:
                raise TeamError(f"{' '.join(cmd)} failed: {done.stderr.strip()[-500:]}")
    finally:
        if own_policy:
            _POLICY_RC.unlink(missing_ok=True)


class Identity(TypedDict, total=False):
    """``subprocess.Popen``'s ``user``, ``group`` and ``extra_groups``: whom PostgreSQL runs as."""

    user: int
    group: int
    extra_groups: list[int]


def os_identity(user: str) -> Identity:
    """Popen arguments that run PostgreSQL as ``user`` when we are root (created if missing)."""
    if os.geteuid() != 0:
        return {}
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                user,
            ],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def cluster_dir(team_dir: Path, configured: str, identity: Identity) -> Path:
    """Where the cluster lives: configured, else ``<team dir>/pg`` if the server's user
    can reach it, else a folder of its own under /var/tmp (a repo under a private home)."""
    if configured:
        return Path(configured).resolve()
    inside = team_dir.resolve() / "pg"
    if not identity or _reachable(inside.parent, identity["user"]):
        return inside
    digest = hashlib.sha256(str(inside).encode()).hexdigest()[:12]
    return Path("/var/tmp") / f"runway-team-{digest}"


def _reachable(folder: Path, uid: int) -> bool:
    """Can ``uid`` traverse every folder down to ``folder`` (it owns none of them)?"""
    for part in [folder, *folder.parents]:
        try:
            info = part.stat()
        except OSError:
            return False
        if info.st_uid != uid and not info.st_mode & stat.S_IXOTH:
            return False
    return True


class Cluster:
    """The cluster under ``root`` (data, socket) listening on ``host:port``."""

    def __init__(self, root: Path, host: str, port: int, identity: Identity) -> None:
        self.root, self.host, self.port, self.identity = root, host, port, identity
        self.data, self.socket = root / "data", root / "run"
        self.bin = bin_dir()

    def initialised(self) -> bool:
        """True once ``initdb`` has run."""
        return (self.data / "PG_VERSION").exists()

    def init(self, password: str) -> float:
        """``initdb`` with ``password`` for the superuser; seconds taken."""
        for folder in (self.root, self.socket):
            folder.mkdir(parents=True, exist_ok=True)
            self._own(folder)
        pwfile = self.root / "pwfile"
        pwfile.write_text(password + "\n")
        self._own(pwfile)
        started = time.monotonic()
        try:
            done = subprocess.run(
                [
                    str(self.bin / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    SUPERUSER,
                    f"--pwfile={pwfile}",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                    "--no-instructions",
                ],
                env=self._env(),
                capture_output=True,
                text=True,
                **self.identity,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if done.returncode:
            raise TeamError(f"initdb failed in {self.data}: {done.stderr.strip()[-800:]}")
        return time.monotonic() - started

    def _own(self, path: Path) -> None:
        if self.identity:
            os.chown(path, self.identity["user"], self.identity["group"])
        path.chmod(0o700 if path.is_dir() else 0o600)

    def _env(self) -> dict[str, str]:
        return {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "HOME": str(self.root)}

    def command(self) -> list[str]:
        """The server's command line (a private socket folder, loopback only)."""
        return [
            str(self.bin / "postgres"),
            "-D",
            str(self.data),
            "-c",
            f"listen_addresses={self.host}",
            "-c",
            f"port={self.port}",
            "-c",
            f"unix_socket_directories={self.socket}",
            "-c",
            "max_connections=200",
            "-c",
            "shared_buffers=64MB",
        ]

    def start(self, log_file: Path, pidfile: Path, timeout: float) -> float:
        """Start the server; seconds until it accepts connections."""
        proc = procs.spawn(self.command(), log_file, pidfile, env=self._env(), **self.identity)
        return procs.wait_ready("PostgreSQL", proc, self.ready, timeout, log_file)

    def ready(self) -> bool:
        """``pg_isready`` on the TCP port."""
        done = subprocess.run(
            [str(self.bin / "pg_isready"), "-q", "-h", self.host, "-p", str(self.port)],
            capture_output=True,
        )
        return done.returncode == 0

    def create_databases(self, password: str) -> list[str]:
        """Create the databases runway uses (tracking, auth, studies, predictions); the new ones."""
        have = set(self.psql("SELECT datname FROM pg_database", password).split())
        made = [db for db in DATABASES if db not in have]
        for db in made:
            self.psql(f'CREATE DATABASE "{db}"', password)
        return made

    def psql(self, sql: str, password: str) -> str:
        """One statement as the superuser over TCP."""
        done = subprocess.run(
            [
                str(self.bin / "psql"),
                "-X",
                "-qAt",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-U",
                SUPERUSER,
                "-d",
                "postgres",
                "-c",
                sql,
            ],
            env={**self._env(), "PGPASSWORD": password},
            capture_output=True,
            text=True,
        )
        if done.returncode:
            raise TeamError(f"psql {sql!r} failed: {done.stderr.strip()}")
        return done.stdout
