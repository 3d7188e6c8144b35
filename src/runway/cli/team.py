"""``runway team ...``: the shared MLflow stack on one machine, and its members."""

from __future__ import annotations

import argparse
import shlex

from runway.errors import ExitCode


def _up(args: argparse.Namespace) -> int:
    from runway.team.stack import Stack

    for line in Stack().up():
        print(line, flush=True)
    print('members: eval "$(make -s team-env)"  (or: runway team env --user NAME)')
    return 0


def _down(args: argparse.Namespace) -> int:
    from runway.team.stack import Stack

    for line in Stack().down(purge=args.purge):
        print(line, flush=True)
    return 0


def _status(args: argparse.Namespace) -> int:
    from runway.team.stack import Stack

    lines, healthy = Stack().status()
    print("\n".join(lines))
    return 0 if healthy else int(ExitCode.TEAM)


def _env(args: argparse.Namespace) -> int:
    from runway.team.stack import Stack

    for name, value in Stack().env(args.user).items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


def _user(args: argparse.Namespace) -> int:
    from runway.errors import UsageError
    from runway.settings import get_settings
    from runway.team import grants
    from runway.team.stack import Stack

    stack = Stack()
    if args.role:  # before anything is made: the member's database login takes their name
        from runway.team import dbroles, postgres

        dbroles.check_name(args.name, postgres.SUPERUSER)
    created = stack.add_user(args.name)
    print(
        f"{'created' if created else 'updated'} user {args.name} (password in {stack.dir}/secrets.json)"
    )
    if args.role:
        if not (args.model and args.experiment):
            raise UsageError("--role needs --model and --experiment")
        names = grants.resources(args.model, args.experiment, get_settings().audit_experiment)
        for line in grants.apply(stack.admin(), args.role, args.name, names):
            print(f"  {line}")
        for line in stack.grant_database(args.name, args.role):
            print(f"  database {line}")
    print(f'as {args.name}: eval "$(runway team env --user {args.name})"')
    return 0


def _grant(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from runway.team import foreign

    target = foreign.Target(
        tracking_uri=args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", ""),
        admin_user=args.admin_user or os.environ.get("MLFLOW_TRACKING_USERNAME", ""),
        admin_password=os.environ.get("MLFLOW_TRACKING_PASSWORD", ""),
        database_url=args.database_url or os.environ.get("RUNWAY_TEAM_DATABASE_URL", ""),
    )
    out = Path(args.out or f"runway-{args.name}.env")
    for line in foreign.grant(target, args.name, args.role, args.model, args.experiment, out):
        print(line, flush=True)
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """``team up|down|status|env|user|grant``."""
    team = sub.add_parser(
        "team", help="the team stack: PostgreSQL, S3 and an MLflow server with users"
    )
    team_sub = team.add_subparsers(dest="team_command", required=True, metavar="SUBCOMMAND")
    p = team_sub.add_parser("up", help="start PostgreSQL, S3 and the MLflow server (idempotent)")
    p.set_defaults(func=_up)
    p = team_sub.add_parser("down", help="stop the stack; check nothing is left running")
    p.add_argument("--purge", action="store_true", help="also delete its data, secrets and logs")
    p.set_defaults(func=_down)
    p = team_sub.add_parser("status", help="each service: up or down, pid, processes, memory")
    p.set_defaults(func=_status)
    p = team_sub.add_parser("env", help="print the export lines a member's shell needs")
    p.add_argument("--user", help="a member added with `runway team user` (default: admin)")
    p.set_defaults(func=_env)
    p = team_sub.add_parser("user", help="add a member (or reset its password) and grant a role")
    p.add_argument("name")
    p.add_argument(
        "--role", choices=["author", "reviewer", "service"], help="grant what this role needs"
    )
    p.add_argument("--model", help="the registered model the role works on")
    p.add_argument("--experiment", help="the experiment that model's runs live in")
    p.set_defaults(func=_user)
    p = team_sub.add_parser(
        "grant",
        help="grant a role on a team's own MLflow server and PostgreSQL, as their admin",
        description=(
            "Apply a role's MLflow grants (and with --database-url its database grants) with "
            "an admin's credentials: the admin's password from MLFLOW_TRACKING_PASSWORD, the "
            "database's from the URL, PGPASSWORD or a pgpass file. Passwords made for a new "
            "member go to --out (0600), never to the terminal."
        ),
    )
    p.add_argument("name", help="the member (an MLflow user, created when missing)")
    p.add_argument("--role", required=True, choices=["author", "reviewer", "service"])
    p.add_argument("--model", required=True, help="the registered model the role works on")
    p.add_argument("--experiment", required=True, help="the experiment its runs live in")
    p.add_argument("--tracking-uri", help="the MLflow server (default: MLFLOW_TRACKING_URI)")
    p.add_argument("--admin-user", help="an MLflow admin (default: MLFLOW_TRACKING_USERNAME)")
    p.add_argument(
        "--database-url",
        help="a PostgreSQL admin's URL, e.g. postgresql+psycopg://admin@db:5432/postgres "
        "(default: RUNWAY_TEAM_DATABASE_URL; none: MLflow grants only)",
    )
    p.add_argument("--out", help="where a new member's variables go (default: runway-NAME.env)")
    p.set_defaults(func=_grant)
