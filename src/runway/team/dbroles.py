"""Database users per role: each member gets a PostgreSQL login with only what the role needs.

The stack's superuser (``runway``) is the MLflow server's alone: nobody else may
connect to ``mlflow`` (runs, registry) or ``mlflow_auth`` (users, grants),
because whoever can write ``mlflow_auth`` can make themselves an MLflow admin.
Members log in as themselves and inherit a group role per MLflow role:

- ``runway_author``: read-write on the Optuna tables (sweeps, joining workers)
  and read on the prediction log (``runway monitor``, whose action may retrain);
- ``runway_service``: the prediction log only: create a model's table on its
  first write (a newer runway adds the columns it writes), insert and read rows;
- a reviewer promotes through the server only and gets no database access.

The README's database grants table is :func:`markdown` (a test keeps them equal).
Every statement is idempotent, so granting again (or another role) is safe.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from runway.errors import TeamError, UsageError

PRIVATE = ("mlflow", "mlflow_auth")  # the server's databases: the stack's superuser only
DATABASES = (*PRIVATE, "optuna", "predictions")
GROUPS = {"author": "runway_author", "service": "runway_service"}


@dataclass(frozen=True)
class DbGrant:
    """One privilege a role's group holds in one database, and why."""

    database: str
    privileges: str
    on: str
    why: str


DB_ROLES: dict[str, tuple[DbGrant, ...]] = {
    "author": (
        DbGrant("optuna", "CONNECT", "the database", "sweeps and joining workers"),
        DbGrant(
            "optuna",
            "SELECT, INSERT, UPDATE, DELETE",
            "every table (and its sequences)",
            "create and run trials, heartbeats; not create, alter or drop tables",
        ),
        DbGrant("predictions", "CONNECT", "the database", "`runway monitor` reads the log"),
        DbGrant("predictions", "SELECT", "every table", "read the prediction log, never write it"),
    ),
    "reviewer": (),
    "service": (
        DbGrant("predictions", "CONNECT", "the database", "serving and batch scoring log rows"),
        DbGrant(
            "predictions",
            "USAGE, CREATE",
            "schema public",
            "a model's first row creates its table; a newer runway adds its columns",
        ),
        DbGrant(
            "predictions",
            "SELECT, INSERT",
            "every table",
            "append rows, check a batch is logged once, `runway monitor`",
        ),
    ),
}


def markdown() -> list[str]:
    """The database grants table as the README shows it."""
    lines = ["| role | database | privileges | on | why |", "| --- | --- | --- | --- | --- |"]
    for role, needed in DB_ROLES.items():
        if not needed:
            lines.append(f"| {role} | none | | | promotes through the server only |")
        for grant in needed:
            lines.append(
                f"| {role} | `{grant.database}` | {grant.privileges} | {grant.on} | {grant.why} |"
            )
    return lines


def check_name(user: str, admin_user: str) -> None:
    """A member's database login is their MLflow name: not the admin's, not a reserved one."""
    if user == admin_user or user.startswith(("pg_", "runway_")) or user in ("public", "runway"):
        raise UsageError(
            f"member name {user!r}: a database login of that name is reserved; choose another"
        )


def member_url(base: str, user: str, password: str, database: str) -> str:
    """A member's SQLAlchemy URL of ``database`` on the server of ``base`` (psycopg 3)."""
    from sqlalchemy.engine import make_url

    url = make_url(base)
    host = f"{url.host}:{url.port}" if url.port else str(url.host)
    return (
        f"postgresql+psycopg://{quote(user, safe='')}:{quote(password, safe='')}@{host}/{database}"
    )


class Databases:
    """Role and grant statements run as a PostgreSQL admin (``admin_url``, any database)."""

    def __init__(self, admin_url: str) -> None:
        from sqlalchemy.engine import make_url

        self.admin_url = make_url(admin_url).set(drivername="postgresql+psycopg")
        self.url = self.admin_url.set(drivername="postgresql")

    @contextmanager
    def _connect(self, database: str) -> Iterator[Any]:
        import psycopg

        dsn = self.url.set(database=database).render_as_string(hide_password=False)
        try:
            with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
                yield conn
        except psycopg.Error as exc:  # unreachable, refused, or a grant the admin may not give
            where = f"{self.url.host}:{self.url.port}/{database} as {self.url.username}"
            raise TeamError(f"cannot apply database grants on {where}: {_first_line(exc)}") from exc

    def prepare(self) -> None:
        """Group roles, the server's databases closed to all but the stack, Optuna's tables made."""
        from psycopg import sql

        with self._connect(self.url.database or "postgres") as conn:
            for group in GROUPS.values():
                if not conn.execute(
                    "SELECT 1 FROM pg_roles WHERE rolname = %s", (group,)
                ).fetchone():
                    conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(group)))
            for database in DATABASES:
                conn.execute(
                    sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(
                        sql.Identifier(database)
                    )
                )
        optuna_url = self.admin_url.set(database="optuna").render_as_string(hide_password=False)
        _create_optuna_tables(optuna_url)
        with self._connect("optuna") as conn:
            _grant_tables(conn, "SELECT, INSERT, UPDATE, DELETE", GROUPS["author"], sequences=True)
        with self._connect("predictions") as conn:
            _grant_tables(conn, "SELECT", GROUPS["author"])
            _grant_tables(conn, "SELECT, INSERT", GROUPS["service"])

    def login(self, user: str) -> str | None:
        """Make ``user`` a login role; its new password, or None if it already existed."""
        from psycopg import sql

        with self._connect(self.url.database or "postgres") as conn:
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone():
                return None
            password = secrets.token_urlsafe(18)
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(user), sql.Literal(password)
                )
            )
            return password

    def set_password(self, user: str, password: str) -> None:
        """Give the login role ``user`` this password (the local stack keeps it in its secrets)."""
        from psycopg import sql

        with self._connect(self.url.database or "postgres") as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(
                sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(user), sql.Literal(password)
                )
            )

    def grant(self, role: str, user: str) -> list[str]:
        """Put ``user`` in ``role``'s group; one line per grant it now holds."""
        from psycopg import sql

        if role not in GROUPS:
            return [f"no database access ({role}: through the server only)"]
        with self._connect(self.url.database or "postgres") as conn:
            conn.execute(
                sql.SQL("GRANT {} TO {}").format(sql.Identifier(GROUPS[role]), sql.Identifier(user))
            )
            for grant in DB_ROLES[role]:
                if grant.privileges == "CONNECT":
                    conn.execute(
                        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                            sql.Identifier(grant.database), sql.Identifier(GROUPS[role])
                        )
                    )
        if role == "service":
            self._service_schema(user)
        return [
            f"{g.privileges:<30} {g.database}: {g.on}  (group {GROUPS[role]}): {g.why}"
            for g in DB_ROLES[role]
        ]

    def _service_schema(self, user: str) -> None:
        """Tables ``user`` creates in the log are readable by authors, appendable by services."""
        from psycopg import sql

        who = sql.Identifier(user)
        service, author = sql.Identifier(GROUPS["service"]), sql.Identifier(GROUPS["author"])
        with self._connect("predictions") as conn:
            conn.execute(sql.SQL("GRANT USAGE, CREATE ON SCHEMA public TO {}").format(service))
            conn.execute(
                sql.SQL(
                    "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public "
                    "GRANT SELECT, INSERT ON TABLES TO {}"
                ).format(who, service)
            )
            conn.execute(
                sql.SQL(
                    "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public GRANT SELECT ON TABLES TO {}"
                ).format(who, author)
            )


def _grant_tables(conn: Any, privileges: str, group: str, *, sequences: bool = False) -> None:
    """``privileges`` on the tables there now and on those the admin makes later."""
    from psycopg import sql

    who = sql.Identifier(group)
    what = sql.SQL(privileges)
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(who))
    conn.execute(sql.SQL("GRANT {} ON ALL TABLES IN SCHEMA public TO {}").format(what, who))
    conn.execute(
        sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT {} ON TABLES TO {}").format(
            what, who
        )
    )
    if sequences:
        conn.execute(
            sql.SQL("GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {}").format(
                who
            )
        )
        conn.execute(
            sql.SQL(
                "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT, UPDATE "
                "ON SEQUENCES TO {}"
            ).format(who)
        )


def _create_optuna_tables(url: str) -> None:
    """Optuna's schema, made by the admin so authors need not create (or drop) tables."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    try:
        storage = optuna.storages.RDBStorage(url)
    except SQLAlchemyError as exc:
        raise TeamError(
            f"cannot create Optuna's tables in the database optuna: {_first_line(exc)} "
            f"(runway needs the databases {', '.join(DATABASES)})"
        ) from exc
    storage.engine.dispose()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
