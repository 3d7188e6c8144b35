"""The promotion lock: a renewed lease kept in the registry itself.

The lock is a registered model named ``<model>.runway-lock``: creating one is
atomic on every MLflow store, so whoever creates it holds it. Its tags say who
(``runway.lock.holder``: user, host, pid and a random token) and until when
(``runway.lock.expires``, epoch seconds). While held, a thread renews the
expiry every third of the lease, so a promotion may take as long as its gates
need; only a holder that died (or stalled for most of a lease) lets the lease
run out, and only then may another promotion break it.

Three rules keep two promotions from ever being inside at once:

- the wait for the lock (``wait``) is separate from the lease, so a waiter
  never decides a live holder is stale just because it waited long;
- release deletes the lock only if the holder tag is still ours;
- :meth:`PromotionLock.check` runs before each registry write, so a holder whose
  lease was broken (it stalled past the lease) stops before writing anything.

On a tracking server a create that lost the race can also come back as
RESOURCE_DOES_NOT_EXIST (MLflow looks the name up again after the conflict and
the holder has just deleted it): that is a busy lock too, tried again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from types import TracebackType

from mlflow.exceptions import MlflowException

from runway.errors import LockError, LockTimeout
from runway.store.http import explain
from runway.store.identity import whoami
from runway.store.registry import LOCK_SUFFIX
from runway.store.tracking import client

log = logging.getLogger(__name__)

HOLDER_TAG = "runway.lock.holder"
EXPIRES_TAG = "runway.lock.expires"


class PromotionLock:
    """Hold ``<model>.runway-lock`` as a context manager (see the module docstring)."""

    def __init__(self, model: str, *, wait: float, lease: float) -> None:
        self.model = model
        self.name = f"{model}{LOCK_SUFFIX}"
        self.wait = wait
        self.lease = lease
        self.holder = f"{whoami().user}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lost = ""
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def __enter__(self) -> PromotionLock:
        self.acquire()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def acquire(self) -> None:
        """Create the lock, waiting up to ``wait`` seconds; start renewing it."""
        deadline = time.monotonic() + self.wait
        while not self._try_create():
            tags = self._tags()
            if tags.get(HOLDER_TAG) == self.holder:  # our create landed; a retry reported it
                break
            self._break_if_expired(tags)
            if time.monotonic() > deadline:
                held_by = self._tags().get(HOLDER_TAG, "another promotion")
                raise LockTimeout(
                    f"another promotion of {self.model} holds {self.name!r} ({held_by}); "
                    f"waited {self.wait:g}s (RUNWAY_LOCK_TIMEOUT). If no promotion is running, "
                    f"it is released when its lease ends ({self.lease:g}s after its last renewal)"
                )
            time.sleep(0.2)
        self._renewer = threading.Thread(
            target=self._renew, name=f"runway-lock-{self.model}", daemon=True
        )
        self._renewer.start()

    def check(self) -> None:
        """Raise unless this process still holds the lock (call before each registry write)."""
        if self.lost:
            raise LockError(f"lost the promotion lock {self.name!r}: {self.lost}")
        holder = self._tags().get(HOLDER_TAG)
        if holder != self.holder:
            self.lost = f"it is now held by {holder or 'nobody'}"
            raise LockError(
                f"lost the promotion lock {self.name!r}: {self.lost}; nothing more was written"
            )

    def release(self) -> None:
        """Stop renewing; delete the lock if (and only if) it is still ours."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(5)
        holder = self._tags().get(HOLDER_TAG)
        if holder == self.holder:
            with contextlib.suppress(MlflowException):
                client().delete_registered_model(self.name)
        elif holder:
            log.warning("not releasing %s: it is held by %s, not by us", self.name, holder)

    def _try_create(self) -> bool:
        try:
            client().create_registered_model(
                self.name,
                tags={HOLDER_TAG: self.holder, EXPIRES_TAG: f"{time.time() + self.lease:.3f}"},
                description=f"runway promotion lock for {self.model}, held by {self.holder}",
            )
            return True
        except MlflowException as exc:
            text = str(exc)
            held = exc.error_code == "RESOURCE_ALREADY_EXISTS" or "already exists" in text
            raced = exc.error_code == "RESOURCE_DOES_NOT_EXIST"  # the holder deleted it meanwhile
            busy = "locked" in text.lower()  # SQLite busy: just retry
            if not (held or raced or busy):
                problem = explain(exc)
                if problem is not None:
                    raise problem from exc
                raise LockError(f"cannot take the promotion lock {self.name!r}: {exc}") from exc
            return False

    def _tags(self) -> dict[str, str]:
        try:
            return dict(client().get_registered_model(self.name).tags or {})
        except MlflowException:
            return {}

    def _break_if_expired(self, tags: dict[str, str]) -> None:
        """Delete a lock whose lease ran out (its holder died), re-reading it first."""
        if not _expired(tags):
            return
        again = self._tags()  # the holder may have renewed, or another waiter broken it
        if again.get(HOLDER_TAG) != tags.get(HOLDER_TAG) or not _expired(again):
            return
        log.warning(
            "breaking promotion lock %s: lease of %s ran out", self.name, tags.get(HOLDER_TAG)
        )
        with contextlib.suppress(MlflowException):
            client().delete_registered_model(self.name)

    def _renew(self) -> None:
        """Push the expiry forward every third of the lease until released."""
        interval = max(self.lease / 3, 0.05)
        while not self._stop.wait(interval):
            tags = self._tags()
            if tags.get(HOLDER_TAG) != self.holder:
                self.lost = f"it is now held by {tags.get(HOLDER_TAG) or 'nobody'}"
                log.error("promotion lock %s lost: %s", self.name, self.lost)
                return
            try:
                client().set_registered_model_tag(
                    self.name, EXPIRES_TAG, f"{time.time() + self.lease:.3f}"
                )
            except MlflowException as exc:  # transient: the next round tries again
                log.warning("could not renew promotion lock %s: %s", self.name, exc)


def _expired(tags: dict[str, str]) -> bool:
    try:
        return float(tags.get(EXPIRES_TAG, "inf")) < time.time()
    except ValueError:
        return False
