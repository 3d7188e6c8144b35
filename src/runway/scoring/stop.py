"""SIGTERM during a batch: stop and clean up, unless the output is being committed.

``score_file`` runs under :func:`runway.jobs.interrupt.terminable`, so SIGTERM
raises :class:`~runway.jobs.interrupt.Terminated` wherever the batch is: the
engine's cleanup removes the partial output, rejects and spooled log rows, and
the CLI exits 143. Once the output starts being committed, though, a stop would
leave an output nobody's log knows about (or log rows of an output that was
removed): from :func:`committing` to the end of ``score_file`` SIGTERM is only
noted, so the output and its log rows land together and the run ends as it
would have, a moment later (``terminable`` puts the default handler back).
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

_arrived: list[int] = []


def _note(signum: int, frame: FrameType | None) -> None:
    _arrived.append(signum)


def committing() -> None:
    """From here to the end of the run, SIGTERM is noted, not acted on (main thread only)."""
    _arrived.clear()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _note)


def arrived_while_committing() -> bool:
    """Whether SIGTERM came once the commit had started (the run finished anyway)."""
    return bool(_arrived)
