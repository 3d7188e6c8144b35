"""Runs that could not be ended because the tracking store was down: ended when it is back.

A run whose end (FAILED, KILLED, FINISHED) the store refused would stay RUNNING
for ever. Its run id, the status it should have and the error are kept in the
user's own state folder (``<state dir>/unclosed-runs``, owner-only), and the
next runway command on the same store (:func:`close_remembered`, called when
MLflow is configured) ends it with that status and the time it really ended.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import mlflow

from runway.net import redact_text, redact_url
from runway.settings import state_dir

log = logging.getLogger(__name__)

ERROR_TAG = "runway.error"  # as store.tracking's
MAX_TAG_CHARS = 5000


def folder() -> Path:
    """Where the runs left to end are kept (one JSON file per run)."""
    return state_dir() / "unclosed-runs"


def remember(run_id: str, status: str, error: str, problem: BaseException) -> None:
    """Keep ``run_id`` to be ended as ``status`` later; says so in one line."""
    place = folder()
    place.mkdir(parents=True, exist_ok=True, mode=0o700)
    record = {
        "run_id": run_id,
        "store": redact_url(str(mlflow.get_tracking_uri())),
        "status": status,
        "error": error,
        "end_time": int(time.time() * 1000),
    }
    path = place / f"{run_id}.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(record, out)
    log.warning(
        "run %s could not be marked %s (%s); the next runway command on this store marks it",
        run_id,
        status,
        redact_text(str(problem)).splitlines()[0][:300] if str(problem) else type(problem).__name__,
    )


def close_remembered() -> int:
    """End the remembered runs of the configured store; how many were ended.

    Stops at the first one the store still refuses (it is down yet: no point in
    waiting on each); never raises.
    """
    place = folder()
    if not place.is_dir():
        return 0
    store = redact_url(str(mlflow.get_tracking_uri()))
    ended = 0
    for path in sorted(place.glob("*.json")):
        record = _read(path)
        if record is None or record.get("store") != store:
            continue
        try:
            _end(record)
        except Exception as exc:  # still down: try again at the next command
            log.debug("run %s not ended yet: %s", record.get("run_id"), exc)
            break
        path.unlink(missing_ok=True)
        ended += 1
        log.info("ended run %s as %s (the store was down when it ended)", *_names(record))
    return ended


def _end(record: dict[str, Any]) -> None:
    client = mlflow.MlflowClient()
    run_id = str(record["run_id"])
    if client.get_run(run_id).info.status != "RUNNING":  # ended meanwhile, by someone else
        return
    if record.get("error"):
        client.set_tag(run_id, ERROR_TAG, str(record["error"])[:MAX_TAG_CHARS])
    client.set_terminated(run_id, str(record["status"]), end_time=int(record["end_time"]))


def _names(record: dict[str, Any]) -> tuple[str, str]:
    return str(record.get("run_id")), str(record.get("status"))


def _read(path: Path) -> dict[str, Any] | None:
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) and "run_id" in found else None
