"""uvicorn's HTTP protocol with the limits it lacks: a head deadline, a head size cap, a per-client connection cap.

What uvicorn's httptools protocol does not bound: a client may take forever
to send a request's headers (no timer runs before the head is complete), send
a header line of megabytes, and open as many connections as it likes
(``limit_concurrency`` counts idle connections too, so a few idle sockets would
turn every real request away: worse than no limit). The ASGI app only sees a
request once its head is complete, so these limits live here, one
level down, in a subclass of uvicorn's own httptools protocol:

* an address holds at most ``max_per_client`` connections (0: no cap): over
  it, the address's oldest connection that is not serving a request (connected
  and silent, mid-head, or idle after its response) is closed, so slow or idle
  sockets from an address cannot lock out that address's well-behaved clients
  (behind a proxy: all of them); only when every connection of the address
  carries a request is the newcomer closed, before a byte is parsed;
* a request head (line and headers) must arrive within ``head_timeout``
  seconds of its first byte (of the connection, for the first request);
* a head over ``max_head_bytes`` is answered 431 and the connection closed.

It relies on names inside ``uvicorn.protocols.http.httptools_impl`` (pinned in
requirements.lock): ``tests/unit/serving/test_protocol.py`` checks each hook is still
called as this expects, and tests/e2e/test_serving_hardening.py exercises each
limit on a real endpoint.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_431_BODY = b'{"error_code": "HEADERS_TOO_LARGE", "message": "request head over the limit"}'
HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
    + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(_431_BODY)
    + _431_BODY
)


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus the three limits; configured by :func:`guarded_protocol`."""

    head_timeout = 10.0
    max_head_bytes = 64 * 1024
    max_per_client = 64
    per_client: ClassVar[Counter[str]] = Counter()  # open connections by client address
    # connections serving no request (no complete head yet, or idle), by address, oldest first
    incomplete: ClassVar[dict[str, dict[GuardedProtocol, None]]] = {}
    dropped: ClassVar[Counter[str]] = Counter()  # connections closed by a limit, by reason

    _timer: asyncio.TimerHandle | None = None
    _address: str | None = None
    _head_bytes = 0

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._address = self.client[0] if self.client else None
        if self._address is not None:
            self.per_client[self._address] += 1
            if self.max_per_client and self.per_client[self._address] > self.max_per_client:
                self.dropped["connections_per_client"] += 1
                oldest = next(iter(self.incomplete.get(self._address, ())), None)
                if oldest is None:  # every one carries a request: the newcomer waits
                    transport.close()  # connection_lost follows and undoes the count
                    return
                oldest._waiting(False)
                oldest.transport.close()  # the slowest: its connection_lost frees the slot
        self._waiting(True)
        self._arm()

    def _waiting(self, incomplete: bool) -> None:
        """Note whether this connection serves no request (no complete head yet, or idle)."""
        if self._address is None:
            return
        held = self.incomplete.setdefault(self._address, {})
        if incomplete:
            held[self] = None
            return
        held.pop(self, None)
        if not held:
            del self.incomplete[self._address]

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._waiting(False)
        if self._address is not None:
            self.per_client[self._address] -= 1
            if self.per_client[self._address] <= 0:
                del self.per_client[self._address]
            self._address = None
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._timer = self.loop.call_later(self.head_timeout, self._head_timeout)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _head_timeout(self) -> None:
        self._timer = None
        if not self.transport.is_closing():
            self.dropped["head_timeout"] += 1
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if not self.transport.is_closing():  # nothing more is parsed once we hung up
            super().data_received(data)

    def on_message_begin(self) -> None:  # the first byte of each request
        super().on_message_begin()
        self._head_bytes = 0
        self._waiting(True)
        if self._timer is None:
            self._arm()

    def _count(self, n: int) -> None:
        self._head_bytes += n
        if self._head_bytes > self.max_head_bytes and not self.transport.is_closing():
            self.dropped["head_too_large"] += 1
            self.transport.write(HEAD_TOO_LARGE)
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm()
        self._waiting(False)
        if not self.transport.is_closing():
            super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:
            self._waiting(True)  # idle until the next request: the first to go over the cap


def guarded_protocol(
    head_timeout: float, max_head_bytes: int, max_per_client: int, dropped: Counter[str]
) -> type[GuardedProtocol]:
    """A protocol class for ``uvicorn.Config(http=...)``; ``dropped`` counts closes by reason."""
    limits = {
        "head_timeout": head_timeout,
        "max_head_bytes": max_head_bytes,
        "max_per_client": max_per_client,
        "per_client": Counter(),  # its own count, not shared with other servers in the process
        "incomplete": {},
        "dropped": dropped,
    }
    return type("Guarded", (GuardedProtocol,), limits)
