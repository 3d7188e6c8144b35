"""What every child of ``runway serve`` shares: how it is started and how it ties its life
to its parent and leaves.

Kept apart from the modules that start children (:mod:`runway.serving.launch`,
:mod:`runway.serving.backends`) and the children themselves (:mod:`runway.serving.zygote`,
:mod:`runway.serving.forked`, :mod:`runway.serving.prepare`), so each imports it and none
imports another one back. Imports nothing heavy: the serve command reads it before the
gateway's own imports.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import sys

from pydantic import SecretStr

from runway.settings import Settings

PR_SET_PDEATHSIG = 1


def child_command(model: str, options: list[str]) -> list[str]:
    """The prepare child's command line (:mod:`runway.serving.prepare`)."""
    level = str(logging.getLogger().getEffectiveLevel())
    prepare = [sys.executable, "-m", "runway.serving.prepare"]
    return [*prepare, *options, "--log-level", level, "--", model]  # "--": a name like "-x"


def settings_json(settings: Settings) -> str:
    """``settings`` as the child reads them back, secrets included (over a pipe, not argv)."""
    doc = {
        name: value.get_secret_value() if isinstance(value, SecretStr) else value
        for name, value in settings
    }
    doc["MLFLOW_TRACKING_URI"] = doc.pop("tracking_uri")  # the field's name in the environment
    return json.dumps(doc, default=str)


def die_with(parent: int) -> bool:
    """Get SIGTERM when ``parent`` dies, even by SIGKILL (Linux); False if it is not our parent.

    The signal only covers a parent alive when it is set: checking ``getppid``
    after it closes the race where the parent died first (we were re-parented).
    Elsewhere (no ``prctl``) only that check is made. The kernel sends it when
    the *thread* that forked us exits: the gateway starts zygotes from its event
    loop's default executor, whose threads live as long as the loop.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    return os.getppid() == parent


def leave(code: int) -> None:
    """Exit without the interpreter's teardown: what it would free (MLflow, the model) is
    the backends' now, and the gateway waits for this exit (its stdout's end) and the
    backends for their adoption: ~0.5 s of CPU on the first answer's path (#31)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
