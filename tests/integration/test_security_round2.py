"""Issue 27, round 2 of the security review: observations 4, 5, 6, 10 and 12."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

from runway.net import free_port
from runway.store.predlog import PredictionLog
from runway.store.predlog_writer import BackgroundWriter

SECRET = "Sup3rS3cret-pw"


def _unreachable_db() -> str:
    # a closed loopback port: the connection is refused at once
    return f"postgresql://runway:{SECRET}@127.0.0.1:{free_port()}/predictions?connect_timeout=2"


# --- 4. passwords are never printed ----------------------------------------------------------


def test_prediction_log_repr_hides_the_password() -> None:
    sink = PredictionLog(_unreachable_db())
    assert SECRET not in repr(sink)
    assert "runway:***@127.0.0.1" in repr(sink)
    assert sink.target.count(SECRET) == 1  # it still connects with the real one


def test_cannot_write_warning_hides_the_password(caplog: pytest.LogCaptureFixture) -> None:
    writer = BackgroundWriter(PredictionLog(_unreachable_db()), flush_seconds=0.05)
    with caplog.at_level(logging.WARNING, logger="runway.store.predlog_writer"):
        writer.submit("m", "1", [{"x": 1.0}], b'{"predictions": [0]}', "r1")
        writer.close()
    assert writer.dropped == 1
    text = caplog.text
    assert "prediction log: cannot write" in text
    assert SECRET not in text


def test_serve_banner_hides_the_password(capsys: pytest.CaptureFixture[str]) -> None:
    from runway.serving import serve

    web = SimpleNamespace(started=True)
    options = SimpleNamespace(host="127.0.0.1", port=8080)
    slot = SimpleNamespace(
        model=SimpleNamespace(name="m", version="3"),
        backends=[SimpleNamespace(path=Path("/run/x/b0.sock"))],
        example=b'{"dataframe_split": {"columns": ["x"], "data": [[1.0]]}}',
    )
    sink = PredictionLog(_unreachable_db())
    asyncio.run(serve._announce(web, options, slot, sink))  # type: ignore[arg-type]
    out = capsys.readouterr().out
    assert "logging    predictions to postgresql://runway:***@127.0.0.1" in out
    assert SECRET not in out
