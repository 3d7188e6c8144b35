"""One audit record per promotion attempt, written once its outcome is known.

A promotion, archive or rollback runs inside :func:`recorded`. Its own code
writes the record when it knows what happened (applied, or refused by the
gates); whatever else ends the attempt - a rule refusing it, a lock it could not
take, a write the tracking server refused, a server that stopped answering - is
recorded on the way out as ``refused`` (a rule said no) or ``failed`` (it could
not be done), with the reason, and re-raised as the error a user acts on.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from runway.errors import LockError, RegistryError, RunwayError
from runway.settings import Settings
from runway.store import audit
from runway.store.audit import Attempt
from runway.store.http import explain
from runway.store.registry import VersionInfo

log = logging.getLogger(__name__)


@dataclass
class Recorder:
    """Writes the attempt's one audit record (nothing for a dry run)."""

    settings: Settings
    mv: VersionInfo
    target: str
    actor: str
    comment: str
    action: str = "promote"
    enabled: bool = True
    audit_run_id: str = ""

    def write(self, attempt: Attempt) -> str:
        """Record ``attempt``; the audit run's id."""
        if not self.enabled:
            return ""
        try:
            self.audit_run_id = audit.record(self.settings, self.mv, attempt)
        except Exception as exc:
            self.enabled = False  # one try: the way out must not try again
            known = explain(exc)
            if known is None:
                raise
            raise type(known)(
                f"the audit trail refused the record of this attempt: {known}"
            ) from exc
        self.enabled = False
        return self.audit_run_id

    def outcome(self, outcome: str, reason: str = "", replaced: str = "") -> Attempt:
        """An attempt of this recorder's action, target, actor and comment."""
        return Attempt(
            self.action, self.target, outcome, self.actor, self.comment, replaced, reason
        )


@contextlib.contextmanager
def recorded(
    settings: Settings,
    mv: VersionInfo,
    target: str,
    actor: str,
    comment: str,
    *,
    action: str = "promote",
    dry_run: bool = False,
) -> Iterator[Recorder]:
    """Run one attempt; record how it ended unless the attempt recorded itself."""
    recorder = Recorder(settings, mv, target, actor, comment, action, not dry_run)
    try:
        yield recorder
    except (Exception, KeyboardInterrupt) as exc:
        problem = exc if isinstance(exc, RunwayError | KeyboardInterrupt) else explain(exc)
        if recorder.enabled:
            refused = isinstance(problem, RegistryError) and not isinstance(problem, LockError)
            reason = (
                "interrupted (Ctrl-C)"
                if isinstance(exc, KeyboardInterrupt)
                else str(problem or f"{type(exc).__name__}: {exc}").splitlines()[0]
            )
            try:
                recorder.write(recorder.outcome("refused" if refused else "failed", reason))
            except Exception as again:  # the original error is what the user must see
                log.error("%s", explain(again) or again)
        if problem is None or problem is exc:
            raise
        raise problem from exc
