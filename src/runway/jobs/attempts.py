"""One audit record per promotion attempt, written once its outcome is known.

A promotion, archive or rollback runs inside :func:`recorded`. Its own code
writes the record when it knows what happened (applied, or refused by the
gates); whatever else ends the attempt - a rule refusing it, a model that failed
the trust checks, a lock it could not take, a write the tracking server refused,
a server that stopped answering - is recorded on the way out as ``refused`` (a
rule said no) or ``failed`` (it could not be done), with the reason, and
re-raised as the error a user acts on.

A record written while the attempt holds the model's promotion lock is sealed
onto the model's audit chain (:mod:`runway.store.audit`); one written without it
(a refusal before the lock, giving up on the lock, a lease lost to another
promotion) is kept off the chain, since two writers could fork it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from runway.errors import LockError, RegistryError, RunwayError, TrustError
from runway.jobs.interrupt import Interrupted
from runway.settings import Settings
from runway.store import audit
from runway.store.audit import Attempt
from runway.store.http import explain
from runway.store.lock import PromotionLock
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
    lock: PromotionLock | None = None  # set while the attempt holds the model's lock

    def write(self, attempt: Attempt) -> str:
        """Record ``attempt`` (on the chain while the lock is ours); the audit run's id."""
        if not self.enabled:
            return ""
        try:
            chained = self._holds_lock()
            self.audit_run_id = audit.record(self.settings, self.mv, attempt, chained=chained)
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

    def _holds_lock(self) -> bool:
        if self.lock is None:
            return False
        try:
            self.lock.check()
        except LockError:
            return False
        return True

    def outcome(self, outcome: str, reason: str = "", replaced: str = "") -> Attempt:
        """An attempt of this recorder's action, target, actor and comment."""
        return Attempt(
            self.action, self.target, outcome, self.actor, self.comment, replaced, reason
        )

    def settle(self, exc: BaseException) -> None:
        """Record how ``exc`` ended the attempt, unless the attempt recorded itself.

        A failure to write the record is logged: the original error is what the
        user must see.
        """
        if not self.enabled:
            return
        problem = _problem(exc)
        refused = isinstance(problem, RegistryError | TrustError) and not isinstance(
            problem, LockError
        )
        reason = (
            (exc.message if isinstance(exc, Interrupted) else "interrupted (Ctrl-C)")
            if isinstance(exc, KeyboardInterrupt)
            else str(problem or f"{type(exc).__name__}: {exc}").splitlines()[0]
        )
        try:
            self.write(self.outcome("refused" if refused else "failed", reason))
        except Exception as again:
            log.error("%s", explain(again) or again)


def _problem(exc: BaseException) -> BaseException | None:
    """The error a user acts on for ``exc`` (None: an unexpected one, a bug)."""
    if isinstance(exc, RunwayError | KeyboardInterrupt):
        return exc
    return explain(exc) if isinstance(exc, Exception) else None


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
        recorder.settle(exc)
        problem = _problem(exc)
        if problem is None or problem is exc:
            raise
        raise problem from exc
