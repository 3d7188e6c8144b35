"""The guarded protocol against uvicorn's httptools protocol, with a fake transport.

:mod:`runway.serving.protocol` subclasses ``HttpToolsProtocol`` and counts on
its hook names (``connection_made``, ``data_received``, the parser's
``on_message_begin``, ``on_url``, ``on_header``, ``on_headers_complete``) and
on attributes it sets (``client``, ``loop``, ``transport``). If uvicorn or
httptools renamed one, a limit would silently stop working rather than fail:
these tests drive each limit through the real parser, byte by byte, no socket.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import Counter
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from runway.serving.protocol import GuardedProtocol, guarded_protocol

HOOKS = (
    "connection_made",
    "connection_lost",
    "data_received",
    "on_message_begin",
    "on_url",
    "on_header",
    "on_headers_complete",
    "on_response_complete",
)
REQUEST = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["path"] == "/slow":  # a request in flight for a while
        await asyncio.sleep(0.5)
    headers = [(b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})


class Transport(asyncio.Transport):
    """What uvicorn's protocol uses of a transport; records what is written and the close."""

    def __init__(self, peer: str) -> None:
        super().__init__()
        self.peer = peer
        self.written = bytearray()
        self.closed = False
        self.protocol: GuardedProtocol | None = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": (self.peer, 50000), "sockname": ("127.0.0.1", 8080)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            assert self.protocol is not None
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class Limits:
    """One guarded protocol class (its own counts) and connections made with it."""

    def __init__(self, head_timeout: float = 5.0, max_head: int = 1024, per_client: int = 4):
        self.dropped: Counter[str] = Counter()
        self.cls = guarded_protocol(head_timeout, max_head, per_client, self.dropped)
        self.config = uvicorn.Config(app, http=self.cls, lifespan="off")
        self.config.load()
        self.state = ServerState()

    def connect(self, peer: str = "10.0.0.1") -> Transport:
        protocol = self.cls(self.config, self.state, {}, _loop=asyncio.get_running_loop())
        transport = Transport(peer)
        transport.protocol = protocol
        protocol.connection_made(transport)
        return transport


def test_the_hooks_it_overrides_are_still_uvicorns_with_the_same_signatures():
    for name in HOOKS:
        base = getattr(HttpToolsProtocol, name, None)
        assert callable(base), f"uvicorn's HttpToolsProtocol has no {name} any more"
        ours = getattr(GuardedProtocol, name)
        assert list(inspect.signature(ours).parameters) == list(
            inspect.signature(base).parameters
        ), name


def test_a_request_within_the_limits_is_answered_and_the_attributes_it_reads_are_set():
    async def main() -> None:
        limits = Limits()
        conn = limits.connect()
        protocol = conn.protocol
        assert protocol is not None
        assert protocol.client == ("10.0.0.1", 50000) and protocol.loop is not None
        protocol.data_received(REQUEST)
        await asyncio.sleep(0.05)
        assert conn.written.startswith(b"HTTP/1.1 200 OK") and conn.written.endswith(b"ok")
        assert not conn.closed and not limits.dropped

    asyncio.run(main())


@pytest.mark.parametrize(
    "head",
    [
        b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\n",  # the URL counts (on_url)
        # a header counts (on_header), once httptools has it whole: it holds a value being
        # received and calls on_header at the next header or the head's end
        b"GET / HTTP/1.1\r\nX-Big: " + b"b" * 2000 + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1234567890\r\n" % i for i in range(100)),
    ],
)
def test_a_head_over_the_limit_is_answered_431_fed_in_small_pieces_too(head: bytes):
    async def main() -> None:
        limits = Limits(max_head=1024)
        conn = limits.connect()
        assert conn.protocol is not None
        for i in range(0, len(head), 100):  # as a slow client sends it
            conn.protocol.data_received(head[i : i + 100])
        await asyncio.sleep(0)
        assert conn.written.startswith(b"HTTP/1.1 431 ") and conn.closed
        assert limits.dropped == {"head_too_large": 1}

    asyncio.run(main())


def test_a_head_that_does_not_complete_in_time_is_closed_on_every_request():
    """The timer runs from the connection's start, and again from each request's first byte
    (on_message_begin) on a kept-alive connection."""

    async def main() -> None:
        limits = Limits(head_timeout=0.1)
        idle = limits.connect()
        await asyncio.sleep(0.2)
        assert idle.closed and limits.dropped == {"head_timeout": 1}
        kept = limits.connect()
        assert kept.protocol is not None
        kept.protocol.data_received(REQUEST)
        await asyncio.sleep(0.15)  # answered: no timer while the app answers and after
        assert not kept.closed and kept.written.endswith(b"ok")
        kept.protocol.data_received(b"GET /health HTTP/1.1\r\nHo")  # the second head stalls
        await asyncio.sleep(0.2)
        assert kept.closed and limits.dropped == {"head_timeout": 2}

    asyncio.run(main())


def test_connections_beyond_the_per_client_cap_are_closed_and_freed_slots_reused():
    """An address whose connections all carry a request: a newcomer is closed."""

    async def main() -> None:
        limits = Limits(per_client=2)
        first, second = limits.connect(), limits.connect()
        for conn in (first, second):
            assert conn.protocol is not None
            conn.protocol.data_received(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.sleep(0.05)
        third = limits.connect()
        other = limits.connect(peer="10.0.0.2")  # another client has its own count
        assert third.closed and not (first.closed or second.closed or other.closed)
        assert limits.dropped == {"connections_per_client": 1}
        first.close()
        await asyncio.sleep(0)  # connection_lost gives its slot back
        assert not limits.connect().closed
        assert limits.cls.per_client["10.0.0.1"] == 2

    asyncio.run(main())


def test_slow_sockets_at_the_cap_give_way_to_a_client_of_the_same_address():
    """#30-7: 64 slow sockets from one address locked out every other client there.
    Over the cap the address's oldest connection without a complete head is closed,
    not the newcomer: the well-behaved client is answered, the slow-loris churns."""

    async def main() -> None:
        limits = Limits(per_client=64)
        silent = [limits.connect("127.0.0.1") for _ in range(32)]
        mid_head = [limits.connect("127.0.0.1") for _ in range(32)]
        for conn in mid_head:
            assert conn.protocol is not None
            conn.protocol.data_received(b"POST /invocations HTTP/1.1\r\nHost: x\r\n")
        for _ in range(3):  # one client, three connections one after another
            while limits.cls.per_client["127.0.0.1"] < 64:  # the attacker fills the cap again
                silent.append(limits.connect("127.0.0.1"))
            normal = limits.connect("127.0.0.1")
            assert not normal.closed
            assert normal.protocol is not None
            normal.protocol.data_received(REQUEST)
            await asyncio.sleep(0.05)
            assert normal.written.startswith(b"HTTP/1.1 200 OK"), bytes(normal.written)
            normal.close()
            await asyncio.sleep(0)  # its slot is given back: the cap is full again
        assert [c.closed for c in silent[:3]] == [True] * 3  # the oldest slow ones went
        assert not any(c.closed for c in silent[3:] + mid_head)
        assert limits.dropped == {"connections_per_client": 3}
        await asyncio.sleep(0)
        assert limits.cls.per_client["127.0.0.1"] == 63  # the cap, less the client gone

    asyncio.run(main())


def test_an_idle_connection_after_its_response_gives_way_too():
    """Idle keep-alive sockets (a full request, then silence) are not a lock-out either."""

    async def main() -> None:
        limits = Limits(per_client=2)
        idle = [limits.connect(), limits.connect()]
        for conn in idle:
            assert conn.protocol is not None
            conn.protocol.data_received(REQUEST)
        await asyncio.sleep(0.05)
        assert all(c.written.endswith(b"ok") and not c.closed for c in idle)
        newcomer = limits.connect()
        assert not newcomer.closed and idle[0].closed and not idle[1].closed

    asyncio.run(main())
