"""What a reviewer reads: every version's stage, aliases, metric and approval; the audit trail."""

from __future__ import annotations

from dataclasses import dataclass

from runway.core.governance.chain import ChainReport
from runway.settings import Settings, get_settings
from runway.store import audit, registry
from runway.store.audit import AuditEntry


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


def status(model: str | None = None, settings: Settings | None = None) -> list[VersionStatus]:
    """Every version of ``model`` (or of every model) with stage, aliases and approval.

    A version whose stage, aliases or approval tags are not what the model's
    audit chain explains (moved in the MLflow UI or by a script, or a record
    altered or removed) is flagged ``unaudited``, with the reason.
    """
    settings = settings or get_settings()
    rows = []
    for name in [model] if model else registry.model_names():
        by_version: dict[str, list[str]] = {}
        for alias, number in registry.aliases(name).items():
            by_version.setdefault(number, []).append(alias)
        chain = audit.verify(name, settings)
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
                    unaudited=chain.versions.get(mv.version, ""),
                )
            )
    return rows


def history(
    model: str, settings: Settings | None = None, *, reports: bool = False
) -> list[AuditEntry]:
    """Every recorded transition attempt and rollback of ``model``, oldest first.

    With ``reports``, each entry carries its gate report's text (rollbacks and
    archiving have none).
    """
    registry.versions(model)  # an unknown model gets a clear error
    return audit.history(model, settings or get_settings(), reports=reports)


def verify(model: str, settings: Settings | None = None) -> ChainReport:
    """``model``'s audit chain checked, and every version's state compared with it."""
    registry.versions(model)  # an unknown model gets a clear error
    return audit.verify(model, settings or get_settings())
