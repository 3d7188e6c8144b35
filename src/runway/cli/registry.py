"""``runway registry ...``: the reviewer's commands (status, promote, rollback, history, policy)."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

from runway.cli.common import store
from runway.core.governance.chain import ChainReport
from runway.core.text import format_table
from runway.errors import AuditUnverified, ExitCode, GateFailure


def promote_and_print(
    model: str,
    version: str,
    to: str,
    reviewer: str | None,
    comment: str,
    dry_run: bool,
    policy: str | None = None,
) -> int:
    """Promote, print the gate report and what changed; the exit code."""
    from runway.jobs.promote import promote

    try:
        result = promote(
            model,
            version,
            to,
            settings=store(),
            reviewer=reviewer,
            comment=comment,
            dry_run=dry_run,
            policy_file=policy,
        )
    except GateFailure as failure:
        print(failure.report.render())
        raise
    if result.report is not None:
        print(result.report.render())
    if dry_run:
        passes = result.report is None or result.report.passed
        verdict = "would pass" if passes else "would FAIL"
        print(
            f"dry run: {model} v{version} {result.from_stage} -> {result.to_stage} {verdict}; "
            "nothing changed"
        )
        return 0 if passes else int(ExitCode.REGISTRY)
    archived = f"; archived v{', v'.join(result.archived)}" if result.archived else ""
    print(
        f"{model} v{version}: {result.from_stage} -> {result.to_stage}{archived} "
        f"(audit run {result.audit_run_id})"
    )
    return 0


def _promote(args: argparse.Namespace) -> int:
    return promote_and_print(
        args.model,
        args.version,
        args.to,
        args.reviewer,
        args.comment or "",
        args.dry_run,
        args.policy,
    )


def _rollback(args: argparse.Namespace) -> int:
    from runway.jobs.promote import rollback

    result = rollback(
        args.model, settings=store(), reviewer=args.reviewer, comment=args.comment or ""
    )
    print(
        f"{args.model}: v{result.version} back in Production; archived "
        f"v{', v'.join(result.archived)} (audit run {result.audit_run_id})"
    )
    return 0


def _status(args: argparse.Namespace) -> int:
    from runway.jobs.status import status

    rows = status(args.model, store())
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
        return 0
    if not rows:
        print("no registered models")
        return 0
    header = ("model", "version", "stage", "aliases", "primary metric", "run", "approved by")
    table: list[tuple[str, ...]] = [(*header, "approved at", "audit")]
    for r in rows:
        metric = f"{r.metric}={r.value:.4f}" if r.value is not None else "-"
        table.append(
            (
                r.model,
                r.version,
                r.stage,
                ",".join(r.aliases) or "-",
                metric,
                (r.run_id or "-")[:12],
                r.approved_by or "-",
                r.approved_at or "-",
                f"UNAUDITED: {r.unaudited}" if r.unaudited else "ok",
            )
        )
    print("\n".join(format_table(table)))
    return 0


def _history(args: argparse.Namespace) -> int:
    from runway.jobs.status import history, verify

    settings = store()
    entries = history(args.model, settings, reports=args.reports)
    chain = verify(args.model, settings) if args.verify else None
    if args.json:
        print(json.dumps([asdict(e) for e in entries], indent=2))
        _raise_unverified(args.model, chain)
        return 0
    if not entries:
        print(f"{args.model}: no recorded transitions")
        return 0
    table = [("when", "action", "version", "from", "to", "outcome", "by", "replaced", "comment")]
    for e in entries:
        table.append(
            (
                e.when,
                e.action,
                e.version,
                e.from_stage,
                e.to_stage,
                e.outcome,
                e.actor,
                e.replaced or "-",
                e.comment or "-",
            )
        )
    print("\n".join(format_table(table)))
    for e in entries:
        if args.reports:
            _print_section(e)
        elif e.reason:
            print(f"  {e.when} v{e.version} {e.outcome}: {e.reason}")
    if chain is not None:
        _print_chain(entries, chain)
        _raise_unverified(args.model, chain)
    return 0


def _print_section(e: Any) -> None:
    """One record under ``--reports``: its heading, then why (a refusal), then its report;
    every record has one, a rollback or an archiving too (they have no report)."""
    print(
        f"\n{e.when} {e.action} v{e.version} {e.from_stage} -> {e.to_stage}: {e.outcome} "
        f"by {e.actor} (audit run {e.audit_run_id})"
    )
    if e.comment:
        print(f"  comment: {e.comment}")
    if e.reason:
        print(f"  {e.outcome}: {e.reason}")
    if e.replaced:
        print(f"  replaced: v{e.replaced}")
    if e.report:
        print(e.report)


def chain_summary(entries: list, chain: ChainReport) -> str:
    """How many records the intact chain holds, and why the others are not on it: those
    written before the lock was held (a refusal to take it) are off the chain by design."""
    on = len(chain.order)
    off = [e for e in entries if not e.chained and e.audit_run_id not in chain.order]
    line = f"audit chain: {on} record{'s' * (on != 1)} on an intact chain"
    if off:
        kind = "refusal" if all(e.outcome != "applied" for e in off) else "record"
        kind += "s" * (len(off) != 1)
        line += f"; {len(off)} {kind} recorded before the lock, off the chain by design"
    broken = len(entries) - on - len(off)
    if broken > 0:
        line += f"; {broken} record{'s' * (broken != 1)} NOT on it (see below)"
    return line


def _print_chain(entries: list, chain: ChainReport) -> None:
    """The verification: each record's link, then each version the chain does not explain."""
    print(f"\n{chain_summary(entries, chain)}")
    for e in entries:
        if e.audit_run_id in chain.records:
            print(
                f"  record {e.audit_run_id} ({e.when} v{e.version}): {chain.records[e.audit_run_id]}"
            )
    for version, problem in sorted(chain.versions.items(), key=lambda kv: int(kv[0])):
        print(f"  v{version}: {problem}")
    if chain.ok:
        print("  every record checks and explains every version's stage, aliases and approval")


def _raise_unverified(model: str, chain: ChainReport | None) -> None:
    if chain is not None and not chain.ok:
        raise AuditUnverified(
            f"{model}: the audit chain does not check: {len(chain.records)} record(s) and "
            f"{len(chain.versions)} version(s) with problems (listed above); find out who "
            "changed the store, then put things right with `runway registry promote`/`rollback`"
        )


def _policy_push(args: argparse.Namespace) -> int:
    from runway.jobs.policy import push_policy
    from runway.store.team_policy import holder

    digest = push_policy(args.model, store(), args.file)
    print(f"{args.model}: team policy stored in {holder(args.model)} (sha256 {digest})")
    return 0


def _policy_show(args: argparse.Namespace) -> int:
    from runway.jobs.policy import show_policy

    store()
    found = show_policy(args.model)
    print(found.text.rstrip("\n"))
    print(f"# sha256 {found.sha256}")
    return 0


def _add_policy_parsers(reg_sub: argparse._SubParsersAction) -> None:
    """``registry policy push|show``: the team's promotion policy, kept on the server."""
    pol = reg_sub.add_parser(
        "policy", help="the team's promotion policy, stored on the tracking server"
    )
    pol_sub = pol.add_subparsers(dest="policy_command", required=True, metavar="SUBCOMMAND")
    p = pol_sub.add_parser(
        "push", help="store a policy file as the team's policy (needs MANAGE: reviewers, admins)"
    )
    p.add_argument("model")
    p.add_argument("--file", help="policy file (default: registry/<model>.yaml)")
    p.set_defaults(func=_policy_push)
    p = pol_sub.add_parser("show", help="print the team's stored policy and its sha256")
    p.add_argument("model")
    p.set_defaults(func=_policy_show)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """``registry status|promote|rollback|history``."""
    reg = sub.add_parser("registry", help="promote, inspect and roll back registered models")
    reg_sub = reg.add_subparsers(dest="registry_command", required=True, metavar="SUBCOMMAND")
    p = reg_sub.add_parser("status", help="versions with stage, aliases, metric and approval")
    p.add_argument("model", nargs="?", help="registered model (default: all)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_status)
    p = reg_sub.add_parser("promote", help="judge a version's gates and move it to a stage")
    p.add_argument("model")
    p.add_argument("version")
    p.add_argument("--to", required=True, help="Staging, Production or Archived")
    p.add_argument(
        "--reviewer",
        help="who approves (required for Production); behind an authenticating server "
        "it is the logged-in user, and only that name is accepted",
    )
    p.add_argument("--comment", help="why; recorded in the audit trail")
    p.add_argument("--dry-run", action="store_true", help="print the gate report, change nothing")
    p.add_argument("--policy", help="policy file (default: registry/<model>.yaml)")
    p.set_defaults(func=_promote)
    p = reg_sub.add_parser("rollback", help="put the previous Production version back")
    p.add_argument("model")
    p.add_argument("--reviewer", help="who rolls back (default: your user name)")
    p.add_argument("--comment", help="why; recorded in the audit trail")
    p.set_defaults(func=_rollback)
    p = reg_sub.add_parser("history", help="every recorded transition of a model")
    p.add_argument("model")
    p.add_argument("--reports", action="store_true", help="print each attempt's gate report")
    p.add_argument(
        "--verify",
        action="store_true",
        help="check the audit chain and that it explains every version's stage, aliases and "
        f"approval (exit {int(ExitCode.TRUST)} if not)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_history)
    _add_policy_parsers(reg_sub)
