"""What a reviewer reads: every version's stage, aliases, metric and approval; the audit trail."""

from __future__ import annotations

from dataclasses import dataclass

from runway.settings import Settings, get_settings
from runway.store import audit, registry
from runway.store.audit import AuditEntry
from runway.store.registry import ALIASES, STAGE_TAG, VersionInfo


@dataclass(frozen=True)
class VersionStatus:
    """One row of ``runway registry status``."""

    model: str
    version: str
    stage: str
    aliases: tuple[str, ...]
    metric: str
    value: float | None
    run_id: str | None
    approved_by: str
    approved_at: str
    unaudited: str = ""


def status(model: str | None = None) -> list[VersionStatus]:
    """Every version of ``model`` (or of every model) with stage, aliases and approval.

    A version whose stage differs from the one runway last recorded was moved
    outside runway (the MLflow UI, a script): it is flagged ``unaudited``.
    """
    rows = []
    for name in [model] if model else registry.model_names():
        by_version: dict[str, list[str]] = {}
        for alias, number in registry.aliases(name).items():
            by_version.setdefault(number, []).append(alias)
        for mv in registry.versions(name):
            metric, value = registry.primary_metric(mv.run_id)
            rows.append(
                VersionStatus(
                    model=name,
                    version=mv.version,
                    stage=mv.stage,
                    aliases=tuple(sorted(by_version.get(mv.version, []))),
                    metric=metric,
                    value=value,
                    run_id=mv.run_id,
                    approved_by=mv.tags.get("approved_by", ""),
                    approved_at=mv.tags.get("approved_at", ""),
                    unaudited=audit_problem(mv, by_version),
                )
            )
    return rows


def audit_problem(mv: VersionInfo, aliases: dict[str, list[str]]) -> str:
    """Why ``mv``'s stage or aliases are not what runway last recorded ("" when they are)."""
    recorded = mv.tags.get(STAGE_TAG, "None")
    if mv.stage != recorded:
        return f"stage {mv.stage} set outside runway (runway recorded {recorded})"
    mine = aliases.get(mv.version, [])
    for stage, alias in ALIASES.items():
        if alias in mine and mv.stage != stage:
            return f"alias @{alias} points at a version in {mv.stage}"
    return ""


def history(
    model: str, settings: Settings | None = None, *, reports: bool = False
) -> list[AuditEntry]:
    """Every recorded transition attempt and rollback of ``model``, oldest first.

    With ``reports``, each entry carries its gate report's text (rollbacks and
    archiving have none).
    """
    registry.versions(model)  # an unknown model gets a clear error
    return audit.history(model, settings or get_settings(), reports=reports)
