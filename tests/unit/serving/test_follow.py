"""How ``runway serve`` follows the registry: when it asks MLflow, and what a failed poll leaves.

The watcher's decisions are driven directly, with the registry's fingerprint, the
resolve and the build replaced by scripted answers: no MLflow, no backends.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from runway.errors import ServeError
from runway.serving import serve
from runway.serving.gateway import Gateway
from runway.settings import Settings
from runway.store.served import ResolvedModel


def _version(v: str) -> ResolvedModel:
    return ResolvedModel("m", v, "Production", run_id="r")


class Scripted(serve.Server):
    """A Server whose registry and backends are scripted, and which records what it asked."""

    def __init__(self, tmp_path: Path, uri: str) -> None:
        settings = Settings(MLFLOW_TRACKING_URI=uri, prediction_log="off")
        super().__init__(serve.ServeOptions(model="m"), settings, Gateway(settings, None), tmp_path)
        self.gateway.slot = SimpleNamespace(model=_version("1"), backends=[], model_dir=None)
        self.marks: list[str | None] = []
        self.answers: list[ResolvedModel | Exception] = []
        self.resolved: list[str] = []  # one per resolve (always through the child)
        self.builds: list[str] = []
        self.build_error: Exception | None = None

    def fingerprint(self) -> str | None:
        return self.marks.pop(0)

    async def _resolve(self) -> ResolvedModel:
        self.resolved.append("child")
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def build(self, version: str | None = None):
        self.builds.append(str(version))
        if self.build_error is not None:
            raise self.build_error
        return SimpleNamespace(model=_version(str(version)), backends=[], model_dir=None)

    def poll(self, mark: str | None, answer: ResolvedModel | Exception | None = None) -> None:
        self.marks.append(mark)
        if answer is not None:
            self.answers.append(answer)
        asyncio.run(self._follow())


@pytest.fixture
def sqlite_server(tmp_path):
    server = Scripted(tmp_path, f"sqlite:///{tmp_path / 'mlflow.db'}")
    server.remember("a")
    return server


def test_an_unchanged_fingerprint_asks_nothing_and_a_moved_one_asks_the_child(sqlite_server):
    sqlite_server.poll("a")
    assert sqlite_server.resolved == []
    sqlite_server.poll("b", _version("1"))
    assert sqlite_server.resolved == ["child"]  # the child, never MLflow in the gateway
    assert sqlite_server.builds == []  # still v1


def test_a_build_that_fails_for_any_reason_is_counted_and_skipped(sqlite_server):
    """Not only runway's own errors: an input example that does not parse, a contract
    without columns... Traffic stays on v1, and v2 is not tried at every poll."""
    sqlite_server.build_error = KeyError("columns")
    sqlite_server.poll("b", _version("2"))
    assert sqlite_server.builds == ["2"]
    assert sqlite_server.gateway.metrics.switch_failures == 1
    assert sqlite_server.gateway.slot.model.version == "1"
    sqlite_server.poll("b")  # unchanged: the failed version waits RETRY_FAILED_AFTER
    assert sqlite_server.builds == ["2"]


def test_a_resolve_that_cannot_start_its_child_is_asked_again_later(sqlite_server):
    """An OSError starting the child (EAGAIN, EMFILE) must not make the moved fingerprint
    count as followed: the promotion would be missed until the registry moved again."""
    sqlite_server.poll("b", OSError(11, "Resource temporarily unavailable"))
    sqlite_server.poll("b")
    assert sqlite_server.resolved == ["child"]  # not at every poll...
    sqlite_server._recheck_at = time.monotonic() - 1  # ...but once the minute is up
    sqlite_server.poll("b", _version("2"))
    assert sqlite_server.builds == ["2"]
    assert sqlite_server.gateway.slot.model.version == "2"


def test_a_sqlite_file_that_cannot_be_read_is_asked_through_the_child_once_a_minute(
    sqlite_server,
):
    sqlite_server.poll(None, _version("1"))  # locked: asked now, through the child
    sqlite_server.poll(None)
    assert sqlite_server.resolved == ["child"]
    assert sqlite_server._recheck_at - time.monotonic() == pytest.approx(
        serve.RECHECK_AFTER_ERROR, abs=5
    )
    sqlite_server.poll("c", _version("2"))  # readable again and moved: at once
    assert sqlite_server.builds == ["2"]


def test_an_unreadable_file_at_start_up_is_still_followed(tmp_path):
    server = Scripted(tmp_path, f"sqlite:///{tmp_path / 'mlflow.db'}")
    server.remember(None)
    server.poll(None)
    assert server.resolved == []
    server._recheck_at = time.monotonic() - 1
    server.poll(None, _version("2"))
    assert server.builds == ["2"]


@pytest.mark.parametrize("uri", ["http://127.0.0.1:5000", "postgresql+psycopg://u@db/mlflow"])
def test_a_store_without_a_readable_fingerprint_is_asked_through_the_child_once_a_minute(
    tmp_path, uri
):
    """A server that refuses the REST read, or a database runway cannot read without MLflow:
    the child is asked, never MLflow in this process, and not at every poll."""
    server = Scripted(tmp_path, uri)
    server.remember(None)
    for _ in range(3):
        server.poll(None)
    assert server.resolved == []
    server._recheck_at = time.monotonic() - 1
    server.poll(None, _version("2"))
    assert server.resolved == ["child"] and server.builds == ["2"]


def test_a_moved_server_fingerprint_is_followed_at_the_next_poll(tmp_path):
    server = Scripted(tmp_path, "http://127.0.0.1:5000")
    server.remember("a")
    server.poll("a")
    server.poll("b", _version("2"))
    assert server.resolved == ["child"] and server.builds == ["2"]


def test_a_poll_that_fails_unexpectedly_does_not_count_as_followed(sqlite_server, monkeypatch):
    """The watcher outlives a bug in one poll, and reads the registry again within a minute
    even though the fingerprint it saw will not move again."""
    monkeypatch.setattr(sqlite_server.settings, "serve_poll_seconds", 0.01)
    calls = 0

    async def broken() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            sqlite_server.seen = "b"  # as _follow does before it resolves
            raise RuntimeError("a bug")
        raise asyncio.CancelledError

    monkeypatch.setattr(sqlite_server, "_follow", broken)
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(sqlite_server.watch())
    assert calls == 2
    assert sqlite_server._recheck_at < time.monotonic() + serve.RECHECK_AFTER_ERROR + 1


def test_a_hung_child_is_stopped_after_the_prepare_timeout(tmp_path, monkeypatch):
    """A child that never answers (a stuck artifact download) fails the start or the switch,
    and is not left behind."""
    from runway.serving import prepare

    settings = Settings(
        MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'm.db'}", serve_prepare_timeout=0.5
    )
    started: list[asyncio.subprocess.Process] = []
    real = asyncio.create_subprocess_exec

    async def sleeper(*_args, **kwargs):
        child = await real("sleep", "30", **kwargs)
        started.append(child)
        return child

    monkeypatch.setattr(asyncio, "create_subprocess_exec", sleeper)
    with pytest.raises(ServeError, match=r"took over 0.5s and was stopped.*PREPARE_TIMEOUT"):
        asyncio.run(prepare.resolve(settings, "m"))
    assert started and started[0].returncode is not None  # killed and reaped


def test_a_production_the_audit_chain_does_not_explain_keeps_the_audited_one_loudly(
    tmp_path, monkeypatch, caplog
):
    """The child answers with the audited v1 standing in for a forced v2: no switch, one
    error line, the gauge at 1 and the reason in /ready; cleared when explained again."""
    import logging

    from runway.serving import prepare

    server = serve.Server(
        serve.ServeOptions(model="m"),
        Settings(MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'm.db'}", prediction_log="off"),
        Gateway(Settings(prediction_log="off"), None),
        tmp_path,
    )
    server.gateway.slot = SimpleNamespace(model=_version("1"), backends=[], model_dir=None)
    note = "m v2 is in Production but the audit chain does not explain it (stage ...)"
    answers = [prepare.Resolved(_version("1"), note)] * 2 + [prepare.Resolved(_version("1"))]

    async def child(settings, model, runtime, served):
        return answers.pop(0)

    monkeypatch.setattr(prepare, "follow", child)
    monkeypatch.setattr(server, "fingerprint", lambda: None)
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            server._recheck_at = 0
            asyncio.run(server._follow())
    assert server.gateway.slot.model.version == "1"
    assert caplog.text.count("not serving the registry's Production: m v2") == 1
    assert server.gateway.metrics.unaudited == note
    assert "runway_registry_production_refused 1.0" in server.gateway.metrics.render().decode()
    assert _ready(server.gateway) == (
        "1",
        {"status": "ready", "backends": 1, "model": "m", "version": "1"}
        | {"registry_production_refused": note},
    )
    server._recheck_at = 0
    asyncio.run(server._follow())
    assert server.gateway.metrics.unaudited == ""
    assert "runway_registry_production_refused 0.0" in server.gateway.metrics.render().decode()


def _ready(gateway: Gateway) -> tuple[str, dict]:
    """``/ready`` of a gateway serving v1 on one live (fake) backend: version header, body."""
    import json

    from runway.core.columns.input_policy import InputPolicy
    from runway.serving.gateway import Slot
    from tests.unit.serving.test_gateway_errors import _call

    backend = SimpleNamespace(alive=True, inflight=0)
    gateway.slot = Slot(_version("1"), {}, InputPolicy(), [backend], b"", 0)  # type: ignore[list-item]
    status, headers, body = _call(gateway, "/ready")
    assert status == 200
    return headers[b"x-runway-model-version"].decode(), json.loads(body)


class Refusing(Scripted):
    """The child's answer may carry a refusal (the audited version standing in), as
    :meth:`serve.Server._resolve` records it."""

    async def _resolve(self) -> ResolvedModel:
        answer = self.answers.pop(0)
        self.resolved.append("child")
        if isinstance(answer, Exception):
            raise answer
        model, note = answer if isinstance(answer, tuple) else (answer, "")
        self.refuse(note)
        return model


@pytest.mark.parametrize("first", ["refused", "error"])
def test_a_promotion_seen_before_its_audit_record_is_followed_at_the_next_poll(tmp_path, first):
    """Issue 28 (one replica 55-61 s late with a 2 s poll): a promotion moves the stage and
    the alias, then writes the audit record that explains them, and the record does not move
    the fingerprint. A poll between the two gets the audited v1 standing in (or an error);
    the next poll must ask again, not wait a minute or for the registry to move again."""
    from runway.errors import AuditUnverified

    server = Refusing(tmp_path, "http://127.0.0.1:5000")
    server.remember("a")
    note = "m v2 is in Production but the audit chain does not explain it (stage ...)"
    early = (_version("1"), note) if first == "refused" else AuditUnverified(note)
    server.poll("b", early)  # mid-promotion
    assert server.builds == [] and server.resolved == ["child"]
    server._recheck_at -= server.settings.serve_poll_seconds  # one poll later
    server.poll("b", _version("2"))  # the record is there now; the fingerprint has not moved
    assert server.resolved == ["child", "child"] and server.builds == ["2"]
    assert server.gateway.metrics.unaudited == ""


def test_a_production_forced_long_ago_is_asked_about_once_a_minute_not_every_poll(tmp_path):
    server = Refusing(tmp_path, "http://127.0.0.1:5000")
    server.remember("a")
    server._moved_at -= serve.SETTLE_SECONDS  # the registry moved over a minute ago
    server._recheck_at = 0
    server.poll("a", (_version("1"), "m v2 is in Production but ..."))
    assert server._recheck_at - time.monotonic() == pytest.approx(serve.RECHECK_AFTER_ERROR, abs=5)
