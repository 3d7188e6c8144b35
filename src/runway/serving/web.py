"""``runway serve``'s public side: uvicorn's server as runway stops it, and the banner."""

from __future__ import annotations

import asyncio
import logging
import shlex
import signal
from types import FrameType
from typing import TYPE_CHECKING

import uvicorn

from runway.net import redact_url
from runway.serving.payload import one_row
from runway.store.predlog import PredictionLog

if TYPE_CHECKING:
    from runway.serving.gateway import Slot
    from runway.serving.launch import ServeOptions

log = logging.getLogger("runway.serving.serve")  # its lines, as before the move


class Web(uvicorn.Server):
    """uvicorn's server, minus re-raising the stop signal once it has stopped.

    uvicorn re-raises SIGTERM/SIGINT after its own shutdown, which would kill the
    process before runway stops its backends and flushes the prediction log.
    """

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        self.should_exit = True
        log.info("stopping (signal %d): finishing requests, then stopping the backends", sig)


async def announce(
    web: uvicorn.Server, options: ServeOptions, slot: Slot, sink: PredictionLog
) -> None:
    while not web.started:
        await asyncio.sleep(0.05)
    host = f"[{options.host}]" if ":" in options.host else options.host
    url = f"http://{host}:{options.port}"
    example = one_row(slot.example)
    print(
        f"serving {slot.model.name} v{slot.model.version} at {url}/invocations\n"
        f"  backends   {len(slot.backends)} x MLflow's scoring server on owner-only Unix sockets "
        f"in {slot.backends[0].path.parent} (no TCP port)\n"
        f"  follows    the registry's Production version (checked every few seconds)\n"
        f"  docs       {url}/ (what is served, how to call it)  {url}/docs (try it)\n"
        f"  health     {url}/health  {url}/ready  {url}/metrics\n"
        f"  logging    predictions to {redact_url(sink.target)}\n"
        f"  try        curl -s {url}/invocations -H 'Content-Type: application/json' "
        f"-d {shlex.quote(example)}",
        flush=True,
    )
