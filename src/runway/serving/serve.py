"""``runway serve``: the Production model as a REST endpoint that follows the registry.

The public port answers from the start (503 until a version is loaded). A short-lived
child (:mod:`runway.serving.prepare`; this process never imports MLflow) resolves
``@production``, downloads it into a private directory and checks it
(:func:`runway.store.trust.fetch_verified`) while a backend zygote imports MLflow's
scoring server (at a cold start both start before this module is imported, the child
forked by the zygote: :mod:`runway.serving.launch`); the zygote loads that folder and
forks the backends, which must answer ``/ping`` and score the input example. A
watcher polls a read-only fingerprint of the model
(:func:`runway.store.served.fingerprint`) and asks the child only when it moves. A new Production goes blue/green (start and warm the new
backends, switch, drain and stop the old); one that fails to start, to score its
example or the checks is logged and skipped, and traffic stays. A backend that dies
is noticed at once (a pidfd) and replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import shutil
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import uvicorn

from runway.core.columns.contract import unverified
from runway.core.outage import Outage
from runway.errors import AuditUnverified, RunwayError, ServeError
from runway.serving import prepare, startup
from runway.serving.backends import Backend, BackendError, Pending
from runway.serving.gateway import Gateway, Slot
from runway.serving.launch import Launched, ServeOptions, launch, spawn_backends
from runway.serving.payload import input_example
from runway.serving.protocol import guarded_protocol
from runway.serving.web import Web
from runway.serving.web import announce as _announce
from runway.settings import Settings
from runway.store import served
from runway.store.predlog import PredictionLog
from runway.store.predlog_writer import BackgroundWriter
from runway.store.served import ResolvedModel

log = logging.getLogger(__name__)

RETRY_FAILED_AFTER = 300.0  # seconds before a version that failed to start is tried again
RECHECK_AFTER_ERROR = 60.0  # seconds before an unchanged registry is read again after an error
SETTLE_SECONDS = 60.0  # after the fingerprint moved: a refused or failed answer, asked each poll


__all__ = ["ServeOptions", "Server", "serve"]  # ServeOptions: its home is serving/launch


class Server:
    """Owns the gateway's slot: builds, switches, drains and repairs backends."""

    def __init__(
        self, options: ServeOptions, settings: Settings, gateway: Gateway, runtime: Path
    ) -> None:
        self.options = options
        self.settings = settings
        self.gateway = gateway
        self.runtime = runtime  # private (0700): model folders and backend sockets
        self.failed: dict[str, float] = {}  # version -> when it failed to start (monotonic)
        self._draining: set[asyncio.Task] = set()
        self.registry_outage = Outage("the registry (tracking store)")
        self._wake = asyncio.Event()  # a backend died: repair now, not at the next poll
        self._starting: dict[int, Backend] = {}  # replacements warming up, stopped on shutdown
        self.seen: str | None = None  # the registry's fingerprint when last resolved
        self._recheck_at = math.inf  # resolve again then even if the fingerprint is unchanged
        self._moved_at = -math.inf  # when the fingerprint last changed (monotonic)
        self._fetched: prepare.Fetched | None = None
        self._fetch_failed = ""
        self.timeline = startup.Timeline()  # the last build's phases
        self.launched: Launched | None = None  # the first build's children, started early

    async def build(self, version: str | None = None) -> Slot:
        """Fetch and check a version (else Production's), start and warm its backends.

        Undoes it all if one step fails. The fetch and the checks run in a child
        with MLflow (:mod:`runway.serving.prepare`); the gateway never imports it.
        """
        early, self.launched = self.launched, None
        if early is not None and version is None:  # the first: its children started already
            fetched, folder, pending = None, early.folder, early.pending
            self.timeline = timeline = startup.Timeline(early.started)
            timeline.before("interpreter + runway imports", early.before)
            timeline.overlapped.append(
                ("gateway imports + set-up", time.monotonic() - early.started)
            )
        else:
            fetched, folder = prepare.take(self._fetched, version, self.runtime)  # fetched?
            self.timeline = timeline = startup.Timeline()
            # the zygote imports while the child fetches
            pending = await asyncio.to_thread(self._spawn, self.options.workers)
        self._fetched = None
        backends: list[Backend] = []
        try:
            ready = fetched or await self._prepared(early, version, folder)
            timeline.add(ready.timeline)
            model, contract, policy, local = ready.model, ready.contract, ready.policy, ready.local
            if self.gateway.slot is None:  # starting up: say what the wait is for
                print(
                    f"starting {self.options.workers} backend(s) for {model.name} "
                    f"v{model.version} ({model.stage}); model load takes a few seconds",
                    file=sys.stderr,
                    flush=True,
                )
            loading = asyncio.create_task(self._load(pending, model.version, local))
            try:  # the example is built while the zygote loads the model
                example, rows = await asyncio.to_thread(input_example, model, local, contract)
            finally:
                backends += await loading
            timeline.mark("backend import + model load")
            await asyncio.gather(
                *(b.warm(example, rows, self.settings.serve_start_timeout) for b in backends)
            )
            timeline.mark("first 200 (warm-up request)")
        except BaseException:
            await asyncio.to_thread(pending.cancel)
            await asyncio.to_thread(_stop_all, backends, folder)
            raise
        if ready.refused:  # starting up: the audited version stands in
            self.refuse(ready.refused)
        for note in unverified(contract, policy):
            log.warning("%s v%s: %s", model.name, model.version, note)
        return Slot(
            model, contract, policy, backends, example, rows, local, input_types=ready.input_types
        )

    async def _prepared(
        self, early: Launched | None, version: str | None, folder: Path
    ) -> prepare.Fetched:
        """The version fetched and checked: by the child started early, else a new one."""
        if early is not None and version is None:
            return await prepare.launched(early, self.settings, self.options.model)
        return await prepare.fetch(self.settings, self.options.model, version, folder)

    def _folder(self, slot: Slot) -> Path | None:
        """The private folder a slot's model was fetched into (directly under the runtime dir)."""
        return prepare.top(slot.model_dir, self.runtime)

    def _spawn(self, count: int) -> Pending:
        return spawn_backends(self.options, self.settings, self.runtime, count)

    async def _load(self, pending: Pending, version: str, local: Path) -> list[Backend]:
        backends = await asyncio.to_thread(pending.load, version, local)
        for backend in backends:
            backend.on_exit(asyncio.get_running_loop(), self._wake.set)
        return backends

    async def watch(self) -> None:
        """Poll the registry; switch to a new Production version; replace dead backends at once."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.serve_poll_seconds):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self._repair()
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception:  # the watcher must outlive any one bad poll
                # and must not take the unchanged fingerprint for "already followed"
                self._recheck_at = time.monotonic() + RECHECK_AFTER_ERROR
                log.exception(
                    "registry watch failed; reading it again within %gs", RECHECK_AFTER_ERROR
                )

    async def _follow(self) -> None:
        current = self.gateway.slot
        mark = await asyncio.to_thread(self.fingerprint)
        if mark == self.seen and time.monotonic() < self._recheck_at:
            return  # nothing about the model changed: no need to ask MLflow
        self.remember(mark)
        try:
            latest = await self._resolve()
        except (RunwayError, OSError) as exc:  # OSError: the child could not be started
            self._recheck_at = self._again()
            if isinstance(exc, AuditUnverified):  # and no audited version to stand in
                self.refuse(str(exc))
            if line := self.registry_outage.failed(str(exc)):  # once per outage, not per poll
                log.warning("keeping %s: %s", _name(current), line)
            return
        if line := self.registry_outage.recovered(f"serving {_name(current)}"):
            log.warning("%s", line)
        if self.gateway.metrics.unaudited:  # a move whose audit record is on its way?
            self._recheck_at = min(self._recheck_at, self._again())
        if current is not None and latest.version == current.model.version:
            return
        failed_at = self.failed.get(latest.version)
        if failed_at is not None and time.monotonic() - failed_at < RETRY_FAILED_AFTER:
            self._recheck_at = failed_at + RETRY_FAILED_AFTER
            return  # not every poll: a broken version would start a backend every few seconds
        log.info("Production is now v%s: starting it next to %s", latest.version, _name(current))
        try:
            if self._fetch_failed:  # refused by the trust check, say: as if it had not started
                raise ServeError(self._fetch_failed)
            slot = await self.build(latest.version)
        except Exception as exc:  # any reason at all: counted, skipped, tried again later
            self.failed[latest.version] = time.monotonic()
            self._recheck_at = time.monotonic() + RETRY_FAILED_AFTER
            self.gateway.metrics.switch_failures += 1
            log.error(
                "v%s failed to start; traffic stays on %s: %s", latest.version, _name(current), exc
            )
            return
        self.gateway.switch(slot)
        self.gateway.metrics.switches += 1
        log.info("switched to %s v%s", latest.name, latest.version)
        if current is not None:
            task = asyncio.create_task(self._drain(current))
            self._draining.add(task)
            task.add_done_callback(self._draining.discard)

    def remember(self, mark: str | None) -> None:
        """The fingerprint the registry was resolved at. Without one (none to read, a locked
        file, a refusal) MLflow is asked again in a minute: not never, not every poll."""
        if mark != self.seen:
            self._moved_at = time.monotonic()
        self.seen = mark
        self._recheck_at = math.inf if mark else time.monotonic() + RECHECK_AFTER_ERROR

    def _again(self) -> float:
        """After a refused or failed answer: the next poll while the registry has just moved
        (a promotion writes the audit record that explains its moves last, and the record
        does not move the fingerprint), else in a minute (an outage, a forced Production)."""
        now = time.monotonic()
        if now - self._moved_at < SETTLE_SECONDS:
            return now + self.settings.serve_poll_seconds / 2
        return now + RECHECK_AFTER_ERROR

    def fingerprint(self) -> str | None:
        """The served model's registry fingerprint (None: none could be read)."""
        uri, timeout = self.settings.tracking_uri, self.settings.http_timeout
        return served.fingerprint(uri, self.options.model, timeout)

    async def _resolve(self) -> ResolvedModel:
        """The Production version now, asked of MLflow in a child (:mod:`runway.serving.prepare`);
        one the audit chain does not explain is refused there, the audited one stands in."""
        served = self.gateway.slot.model.version if self.gateway.slot else None
        answer = await prepare.follow(self.settings, self.options.model, self.runtime, served)
        prepare.discard(self._fetched, self.runtime)  # not started (a failed version)
        self._fetched = answer.fetched  # a new version, fetched and checked: for build
        self._fetch_failed = answer.failed  # or why it could not be
        self.refuse(answer.refused)
        return answer.model

    def refuse(self, note: str) -> None:
        """Say, once and loudly, that the registry's Production is not what is served (and
        when it is again): the log, ``/metrics`` and ``/ready`` carry it until then."""
        metrics = self.gateway.metrics
        if note and note != metrics.unaudited:
            log.error("not serving the registry's Production: %s", note)
        elif not note and metrics.unaudited:
            log.warning("the registry's Production is explained by the audit chain again")
        metrics.unaudited = note

    async def _drain(self, slot: Slot) -> None:
        """Let the old version answer what it holds, then stop it."""
        deadline = time.monotonic() + self.settings.serve_timeout + 5
        try:
            while slot.inflight and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        except asyncio.CancelledError:  # shutting down: stop them now, not never
            _stop_all(slot.backends, self._folder(slot))
            raise
        await asyncio.to_thread(_stop_all, slot.backends, self._folder(slot))
        log.info("stopped v%s after draining", slot.model.version)

    async def _repair(self) -> None:
        slot = self.gateway.slot
        if slot is None or slot.model_dir is None:
            return
        for i, backend in enumerate(list(slot.backends)):
            if backend.alive:
                continue
            log.warning(
                "backend %s exited with %s; starting a replacement",
                backend,
                backend.process.returncode,
            )
            try:
                pending = await asyncio.to_thread(self._spawn, 1)
                (fresh,) = await self._load(pending, slot.model.version, slot.model_dir)
            except BackendError as exc:
                log.error("replacement backend failed: %s", exc)
                continue
            self._starting[id(fresh)] = fresh
            try:
                await fresh.warm(slot.example, slot.example_rows, self.settings.serve_start_timeout)
            except BackendError as exc:
                await asyncio.to_thread(fresh.stop)
                log.error("replacement backend failed: %s", exc)
                continue
            finally:
                self._starting.pop(id(fresh), None)
            slot.backends[i] = fresh
            self.gateway.metrics.backend_restarts += 1

    async def stop(self) -> None:
        """Stop every backend (current and draining)."""
        for task in list(self._draining):
            task.cancel()
        slot = self.gateway.slot
        starting = list(self._starting.values())
        if slot is not None:
            await asyncio.to_thread(_stop_all, [*slot.backends, *starting], self._folder(slot))


def serve(options: ServeOptions, settings: Settings, launched: Launched | None = None) -> None:
    """Run the endpoint until interrupted (Ctrl-C or SIGTERM), on ``settings``' store.

    ``launched``: the children :func:`runway.serving.launch.launch` started for it
    (the serve command starts them before importing this module).
    """
    launched = launched or launch(options, settings)
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(_main(options, settings, launched))
    except BaseException:
        launched.abandon()  # children a failed start never used (no-ops once used)
        raise
    finally:
        shutil.rmtree(launched.runtime, ignore_errors=True)


async def _main(options: ServeOptions, settings: Settings, launched: Launched) -> None:
    sock, runtime = launched.sock, launched.runtime
    sink = PredictionLog(settings.prediction_log)
    replica = settings.serve_replica or f"{socket.gethostname()}:{options.port}"  # a pod's name
    writer = BackgroundWriter(sink, replica=replica) if sink.enabled else None
    gateway = Gateway(settings, writer)
    gateway.metrics.replica = replica
    server = Server(options, settings, gateway, runtime)
    server.remember(launched.mark)  # read before the child resolved: a change meanwhile shows
    server.launched = launched
    config = uvicorn.Config(
        gateway,
        http=guarded_protocol(
            settings.serve_header_timeout,
            settings.serve_max_header_kb * 1024,
            settings.serve_max_connections_per_client,
            gateway.metrics.dropped,
        ),
        lifespan="off",
        access_log=False,
        log_level="warning",
        timeout_keep_alive=30,
        server_header=False,
    )
    web = Web(config)
    # Listening from the start: /ready and /invocations answer 503 (Retry-After) until loaded.
    serving = asyncio.create_task(web.serve(sockets=[sock]))
    try:
        gateway.slot = await _start(server, serving, options.model)
    finally:
        if gateway.slot is None:  # failed, or stopped while loading
            web.should_exit = True
            await asyncio.gather(serving, return_exceptions=True)
            if writer:
                writer.close()
    if gateway.slot is None:
        return
    server.timeline.log(log)
    watcher = asyncio.create_task(server.watch())
    announcer = asyncio.create_task(_announce(web, options, gateway.slot, sink))
    try:
        await serving
    finally:
        watcher.cancel()
        announcer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher  # a version it was starting is stopped by build's own clean-up
        await server.stop()
        if writer:
            await asyncio.to_thread(writer.close)


async def _start(server: Server, serving: asyncio.Task[None], model: str) -> Slot | None:
    """The first version's slot; None when the server was stopped while it loaded."""
    building = asyncio.create_task(server.build())
    await asyncio.wait({building, serving}, return_when=asyncio.FIRST_COMPLETED)
    if not building.done():  # stopped while loading: a backend mid-load is stopped once loaded
        log.info("stopping once the version being loaded can be stopped cleanly")
        with contextlib.suppress(RunwayError, BackendError):
            slot = await building
            await asyncio.to_thread(_stop_all, slot.backends, server._folder(slot))
        return None
    try:
        return building.result()
    except BackendError as exc:
        raise ServeError(f"{model} (Production) failed to start: {exc}") from None


def _stop_all(backends: list[Backend], folder: Path | None = None) -> None:
    for backend in backends:
        backend.stop()
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def _name(slot: Slot | None) -> str:
    return f"v{slot.model.version}" if slot else "nothing"
