"""``runway monitor`` and ``runway retrain``: the on-call engineer's commands."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from runway.cli.common import store
from runway.errors import ExitCode

if TYPE_CHECKING:
    from datetime import datetime

    import pandas as pd

    from runway.jobs.retrain import RetrainResult
    from runway.monitoring.early import EarlyCount
    from runway.monitoring.judge import Verdict


def _monitor(args: argparse.Namespace) -> int:
    from runway.monitoring.window import parse_time

    since = parse_time(args.since, "--since") if args.since else None
    until = parse_time(args.until, "--until") if args.until else None
    stage = "Production" if args.version else args.stage
    counting = _count_early(args, since, until, stage)
    from runway.monitoring.monitor import MonitorOptions, monitor

    options = MonitorOptions(
        since=since,
        until=until,
        window=args.window,
        stage=stage,
        version=args.version,
        labels=args.labels,
        key_columns=tuple(args.key_column or ()),
        label_column=args.label_column,
        act=not args.no_action,
        policy_file=args.policy,
        report_dir=args.report_dir,
    )
    try:
        result = monitor(args.model, options, store(), counting)
    finally:
        if counting is not None:
            counting.stop()  # after an error, the thread may still be reading
    verdict = result.verdict
    assert verdict is not None  # an unjudged window raises MonitorError
    print(f"{result.model} v{result.version}  window {result.window.label}")
    print(f"  rows       {verdict.rows_scored:,} scored, {verdict.rows_rejected:,} rejected")
    if result.other_versions:
        other = ", ".join(f"v{v}: {n:,}" for v, n in sorted(result.other_versions.items()))
        print(f"  other versions' rows in the window (not judged here): {other}")
    print("\n".join(f"  {line}" for line in _table(verdict)))
    print(f"  drift    {verdict.share_text}")
    print(f"  rules    {verdict.rules}")
    for note in verdict.notes:
        print(f"  note: {note}")
    for breach in verdict.breaches:
        print(f"  CROSSED  {breach}")
    print(f"  trigger  {result.trigger}")
    print(f"report     {result.report}")
    print(f"run        {result.run_url}")
    if result.retrained is not None:
        r = result.retrained
        where = "Staging" if r.staged else f"stays in None (refused: {r.refused})"
        print(f"retrained  {r.model} v{r.version} from v{r.from_version} -> {where}")
        if r.report is not None:
            print(r.report.render())
        _print_twin(r)
    verdict_line = "threshold crossed" if result.trigger_met else "healthy"
    if result.outcome == "crossed" and not result.trigger_met:
        verdict_line = "crossed in this window, trigger not met"
    print(f"outcome    {verdict_line}")
    return int(ExitCode.THRESHOLD_CROSSED) if result.trigger_met else 0


def _count_early(
    args: argparse.Namespace, since: datetime | None, until: datetime | None, stage: str
) -> EarlyCount | None:
    """The window counted in a thread while MLflow loads (:mod:`runway.monitoring.early`);
    first, before anything imports MLflow. Not when labels are joined."""
    from runway.monitoring import early
    from runway.settings import get_settings

    if args.labels:
        return None
    return early.start(
        args.model, stage, args.version, since, until, args.window, args.policy, get_settings()
    )


def _table(verdict: Verdict) -> list[str]:
    from runway.core.text import format_table
    from runway.monitoring.judge import format_p

    rows: list[tuple[str, ...]] = [
        ("feature", "kind", "PSI", "chi2 p", "drift", "missing", "quality")
    ]
    ordered = sorted(verdict.features, key=lambda f: (not f.drifted, f.name))
    for f in ordered:
        d = f.distribution
        rows.append(
            (
                f"{f.name} ({f.part})" if f.part else f.name,
                f.kind,
                f"{d.psi:.3f}" if d else "-",
                format_p(d.p_value if d else None),
                "DRIFT" if f.drifted else ("ok" if d else "-"),
                f"{f.missing_rate:.1%}",
                "; ".join(f.quality) or "ok",
            )
        )
    if verdict.prediction is not None:
        p = verdict.prediction
        rows.append(
            (
                "(predictions)",
                "",
                f"{p.psi:.3f}",
                format_p(p.p_value),
                "DRIFT" if p.drifted else "ok",
                "",
                "",
            )
        )
    perf = verdict.performance
    table = format_table(rows)
    if perf is not None:
        live = "-" if perf.live is None else f"{perf.live:.4f}"
        holdout = "-" if perf.holdout is None else f"{perf.holdout:.4f}"
        table.append(
            f"live {perf.metric} {live} (holdout {holdout}, {perf.joined} labels): {perf.state}"
        )
    return table


def _retrain(args: argparse.Namespace) -> int:
    from runway.jobs.retrain import retrain

    extra = None
    if args.labels:
        extra = _labelled_rows(args)
    result = retrain(
        args.model,
        reason=args.reason,
        trigger_run=_trigger_run(args.model, args.trigger_run),
        data=args.data,
        extra_rows=extra,
        mode="sweep" if args.sweep else "train",
        trials=args.trials,
        version=args.version,
        settings=store(),
    )
    print(f"retrained {result.model} v{result.from_version} on {result.data} -> v{result.version}")
    if result.report is not None:
        print(result.report.render())
    _print_twin(result)
    if result.staged:
        print(
            f"{result.model} v{result.version}: None -> Staging; a reviewer promotes it to Production"
        )
        return 0
    print(f"{result.model} v{result.version} stays in None: {result.refused}")
    return int(ExitCode.REGISTRY)


def _print_twin(result: RetrainResult) -> None:
    """The ONNX version the policy's ``onnx.on_register`` made of the retrained version, or why not."""
    done = result.twin
    if done is not None and done.twin is not None:
        print(
            f"ONNX version  {result.model} v{done.twin.twin.version} of v{result.version} "
            "(the policy's onnx.on_register), stage None"
        )
    elif done is not None and done.refused is not None:
        reason = str(done.refused).splitlines()[0]
        print(f"warning: v{result.version} has no ONNX version: {reason}", file=sys.stderr)


def _trigger_run(model: str, given: str | None) -> str:
    """``latest``: the most recent monitoring window of ``model`` that crossed a threshold."""
    if given != "latest":
        return given or ""
    from runway.errors import UsageError
    from runway.store.monitoring import windows

    crossed = [w for w in windows(store(), model) if w.outcome == "crossed"]
    if not crossed:
        raise UsageError(f"--trigger-run latest: {model} has no monitoring window that crossed")
    return crossed[0].run_id


def _labelled_rows(args: argparse.Namespace) -> pd.DataFrame:
    """The labelled rows of the prediction log in the window, as training data."""
    from runway.monitoring.monitor import labelled_rows
    from runway.monitoring.window import parse_time

    return labelled_rows(
        args.model,
        args.labels,
        since=parse_time(args.since, "--since") if args.since else None,
        until=parse_time(args.until, "--until") if args.until else None,
        window=args.window,
        key_columns=tuple(args.key_column or ()),
        label_column=args.label_column,
        version=args.version,
        settings=store(),
    )


def _window_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--since", help="window start, ISO date or time (UTC unless given)")
    p.add_argument("--until", help="window end (default now, or --since + --window)")
    p.add_argument("--window", help="window length, e.g. 12h, 1d, 7d (default: the policy's)")


def _label_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--labels", help="CSV/Parquet of true values, keyed like the prediction log")
    p.add_argument(
        "--key-column",
        action="append",
        metavar="COLUMN",
        help="the labels' key column(s) (default: a column named key)",
    )
    p.add_argument(
        "--label-column", help="the labels' value column (default: the spec's target, or label)"
    )


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """``monitor`` and ``retrain``."""
    p = sub.add_parser("monitor", help="judge a window of the prediction log against the policy")
    p.add_argument("model", help="registered model name")
    _window_options(p)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--stage", default="Production", choices=["Production", "Staging"])
    which.add_argument("--version", help="judge this version's rows")
    _label_options(p)
    p.add_argument("--policy", help="policy file (default: registry/<model>.yaml)")
    p.add_argument(
        "--report-dir", help="where the HTML report goes (default RUNWAY_MONITOR_REPORT_DIR)"
    )
    p.add_argument(
        "--no-action",
        action="store_true",
        help="judge and report only, even if the policy's action is retrain (a scheduler's own "
        "retrain task then acts on exit 10)",
    )
    p.set_defaults(func=_monitor)

    p = sub.add_parser(
        "retrain", help="retrain the Production version on fresh data, up to Staging"
    )
    p.add_argument("model", help="registered model name")
    p.add_argument("--data", help="a new data source for the logged spec (.csv/.parquet)")
    p.add_argument(
        "--sweep",
        action="store_true",
        help="search the spec's space again instead of training the champion's parameters",
    )
    p.add_argument("--trials", type=int, help="sweep trials (default: the spec's)")
    p.add_argument("--version", help="retrain this version's spec (default: Production's)")
    p.add_argument("--reason", default="manual", help="why, recorded on the new version")
    p.add_argument(
        "--trigger-run",
        metavar="RUN_ID",
        help="the monitoring run that asked for this retrain (recorded on the new version); "
        "'latest': the model's most recent window that crossed a threshold",
    )
    _label_options(p)
    _window_options(p)
    p.set_defaults(func=_retrain)
