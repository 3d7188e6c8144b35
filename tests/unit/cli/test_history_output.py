"""`runway registry history --reports --verify` as a reviewer reads it (issue 29, item 6)."""

from __future__ import annotations

from runway.cli import main
from runway.core.governance.chain import ChainReport
from runway.store.audit import AuditEntry


def _entry(n: int, action: str, outcome: str, chained: bool, **more: str) -> AuditEntry:
    fields = {
        "when": f"2026-12-0{n} 10:00",
        "action": action,
        "model": "churn",
        "version": "2",
        "from_stage": "Staging",
        "to_stage": "Production",
        "outcome": outcome,
        "actor": "alice",
        "comment": "",
        "replaced": "",
        "reason": "",
        "source_run_id": "s",
        "audit_run_id": f"r{n}",
        "chained": chained,
        **more,
    }
    return AuditEntry(**fields)  # type: ignore[arg-type]


ENTRIES = [
    _entry(1, "promote", "applied", True, report="result: PASS"),
    _entry(2, "promote", "refused", False, reason="the promotion lock is held by bob"),
    _entry(3, "promote", "refused", True, reason="holdout roc_auc 0.7 < 0.9", report="FAIL x"),
    _entry(4, "rollback", "applied", True, replaced="3"),
]


def test_each_record_has_its_section_and_pre_lock_refusals_are_explained(monkeypatch, capsys):
    import runway.jobs.status as status

    monkeypatch.setattr("runway.cli.registry.store", lambda: None)
    monkeypatch.setattr(status, "history", lambda model, settings, reports: ENTRIES)
    monkeypatch.setattr(
        status, "verify", lambda model, settings: ChainReport(order=["r1", "r3", "r4"])
    )
    assert main(["registry", "history", "churn", "--reports", "--verify"]) == 0
    out = capsys.readouterr().out
    sections = out.split("\n\n")
    by_run = {
        run: next(s for s in sections if f"(audit run {run})" in s)
        for run in ("r1", "r2", "r3", "r4")
    }
    # the refusal's reason is in its own section, not the previous record's
    assert "lock is held by bob" in by_run["r2"] and "lock is held" not in by_run["r1"]
    assert "roc_auc 0.7 < 0.9" in by_run["r3"] and "FAIL x" in by_run["r3"]
    assert by_run["r4"].lstrip().startswith("2026-12-04 10:00 rollback v2")  # a section too
    assert (
        "audit chain: 3 records on an intact chain; 1 refusal recorded before the lock, "
        "off the chain by design"
    ) in out
    assert " of 4 records" not in out
