"""What one ``runway score`` run did: counts, paths, lineage, and its summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from runway.errors import ScoringError

LINEAGE = ("model", "model_version", "run_id", "scored_at")
REJECT_COLUMNS = ("row", "reason")


@dataclass
class BatchResult:
    """What one ``runway score`` run did."""

    model: str
    version: str
    stage: str
    run_id: str | None
    input: str
    output: str
    rejects: str
    engine: str
    batch_id: str
    scored_at: datetime
    max_reject_rate: float
    rows_in: int = 0
    rows_scored: int = 0
    rows_rejected: int = 0
    seconds: float = 0.0
    load_seconds: float = 0.0  # of ``seconds``: resolving, fetching and loading the model
    published: bool = False
    reasons: dict[str, int] = field(default_factory=dict)  # each reason's kind -> rows

    @property
    def reject_rate(self) -> float:
        """Rejected rows / input rows (0 for an empty input)."""
        return self.rows_rejected / self.rows_in if self.rows_in else 0.0

    @property
    def rows_per_second(self) -> float:
        """Input rows per second of scoring (the model loaded): the progress lines' figure."""
        scoring = self.seconds - self.load_seconds
        return self.rows_in / scoring if scoring > 0 else 0.0

    def summary_lines(self) -> list[str]:
        """The end-of-run summary the CLI prints."""
        lines = [
            f"model     {self.model} v{self.version} ({self.stage}, run {self.run_id})",
            f"rows in   {self.rows_in:,}",
            f"scored    {self.rows_scored:,}",
            f"rejected  {self.rows_rejected:,} ({self.reject_rate:.2%}; "
            f"threshold {self.max_reject_rate:.2%})",
            f"elapsed   {self.seconds:.1f} s: {self.load_seconds:.1f} s loading the model, then "
            f"{self.rows_per_second:,.0f} rows/s ({self.engine})",
            f"input     {self.input}",
            f"output    {self.output}" + ("" if self.published else " (NOT written)"),
            f"rejects   {self.rejects}",
            f"batch id  {self.batch_id}",
        ]
        for reason, rows in sorted(self.reasons.items(), key=lambda kv: -kv[1])[:5]:
            lines.append(f"  {rows:>9,} x {reason}")
        return lines


class RejectRateExceeded(ScoringError):
    """More rows were rejected than the threshold allows; the output was not published."""

    def __init__(self, result: BatchResult) -> None:
        super().__init__(
            f"{result.rows_rejected:,} of {result.rows_in:,} rows rejected "
            f"({result.reject_rate:.2%} > threshold {result.max_reject_rate:.2%}); "
            f"{result.output} not written; see {result.rejects}"
        )
        self.result = result


def reason_kind(reason: str) -> str:
    """A reason with its value cut off, to count alike rows together in the summary."""
    return reason.split(", got ")[0].split(" is out of range")[0]
