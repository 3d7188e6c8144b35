"""The gateway's HTTP/1.1 client to its backends, against a scripted server on a Unix socket.

Each test's server answers with the bytes it is given, byte for byte, so the
framing the client meets is exactly the one named: chunked with extensions and
trailers, keep-alive, a close in the middle of a body.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from runway.serving.backends import Backend, BackendError
from runway.serving.http1 import read_response
from runway.serving.zygote import Adopted

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


def _run(tmp_path: Path, script: Script, client: Callable[[Backend], Awaitable[None]]) -> int:
    """Serve ``script`` (called with each connection and its number) and run ``client``;
    returns how many connections the server saw."""
    path = tmp_path / "b.sock"
    seen = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal seen
        seen += 1
        try:
            await script(reader, writer, seen)
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_unix_server(handle, path=str(path))
        backend = Backend("m", "1", path, Adopted(os.getpid()), tmp_path / "log")
        try:
            await client(backend)
        finally:
            backend.close_connections()
            server.close()
            await server.wait_closed()

    asyncio.run(main())
    return seen


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    return await reader.readexactly(length)


def _answers(*responses: bytes) -> Script:
    """Answer each request on a connection with the next of ``responses``, then keep it open."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        for response in responses:
            try:
                await _read_request(reader)
            except asyncio.IncompleteReadError:
                return
            writer.write(response)
            await writer.drain()
        await reader.read()  # until the client hangs up

    return script


CHUNKED = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    b"5;name=value\r\n"  # a chunk extension
    b'{"pre\r\n'
    b"e\r\n"
    b'dictions": [1]\r\n'
    b"1\r\n}\r\n"
    b"0\r\n"
    b"X-Checksum: abc\r\n"  # trailers: must be read past, or the next answer starts here
    b"X-More: 1\r\n"
    b"\r\n"
)
PLAIN = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 17\r\n\r\n{"predictions":2}'


def test_a_chunked_body_with_trailers_is_read_whole_and_the_connection_reused(tmp_path):
    answers: list = []

    async def client(backend: Backend) -> None:
        answers.append(await backend.request("POST", "/invocations", b"{}", "application/json"))
        answers.append(await backend.request("POST", "/invocations", b"{}", "application/json"))

    connections = _run(tmp_path, _answers(CHUNKED, PLAIN), client)
    assert answers[0].body == b'{"predictions": [1]}'
    assert answers[0].content_type == "application/json" and answers[0].status == 200
    assert answers[1].body == b'{"predictions":2}'  # the trailers did not leak into it
    assert connections == 1


def test_keep_alive_connections_are_pooled_and_a_close_is_honoured(tmp_path):
    closing = PLAIN.replace(b"\r\n\r\n", b"\r\nconnection: close\r\n\r\n", 1)

    async def client(backend: Backend) -> None:
        for _ in range(3):
            assert (await backend.request("GET", "/ping")).status == 200
        assert len(backend._idle) == 1
        assert (await backend.request("GET", "/ping")).status == 200  # answered, then closed
        assert len(backend._idle) == 0

    assert _run(tmp_path, _answers(PLAIN, PLAIN, PLAIN, closing), client) == 1


def test_a_backend_that_closes_mid_response_is_a_backend_error_and_not_pooled(tmp_path):
    async def script(reader, writer, _):
        await _read_request(reader)
        writer.write(PLAIN[:-5])  # the body cut short
        await writer.drain()

    async def client(backend: Backend) -> None:
        with pytest.raises(BackendError, match="IncompleteReadError"):
            await backend.request("POST", "/invocations", b"{}")
        assert not backend._idle

    _run(tmp_path, script, client)


def test_a_stale_pooled_connection_is_replaced_once(tmp_path):
    """uvicorn closes idle keep-alive connections: the next request goes on a fresh one."""

    async def script(reader, writer, n):
        await _read_request(reader)
        writer.write(PLAIN)
        await writer.drain()  # then close: the client's pooled connection goes stale

    async def client(backend: Backend) -> None:
        assert (await backend.request("GET", "/ping")).status == 200
        await asyncio.sleep(0.05)
        assert (await backend.request("GET", "/ping")).body == b'{"predictions":2}'

    assert _run(tmp_path, script, client) == 2


@pytest.mark.parametrize(
    ("raw", "body", "keep"),
    [
        (b"HTTP/1.1 204 No Content\r\n\r\n", b"", True),  # no length, no body: no wait for EOF
        (b"HTTP/1.1 200 OK\r\n\r\nuntil the end", b"until the end", False),
        (b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok", b"ok", False),
        (b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 2\r\n\r\nok", b"ok", True),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", b"ok", True),
    ],
)
def test_framing(raw: bytes, body: bytes, keep: bool):
    async def read() -> tuple:
        reader = asyncio.StreamReader()
        reader.feed_data(raw)
        reader.feed_eof()
        return await read_response(reader)

    response, kept = asyncio.run(read())
    assert (response.body, kept) == (body, keep)


@pytest.mark.parametrize(
    "raw",
    [
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nokXX0\r\n\r\n",
    ],
)
def test_what_is_not_http_is_refused(raw: bytes):
    async def read() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(raw)
        reader.feed_eof()
        await read_response(reader)

    with pytest.raises(ValueError):
        asyncio.run(read())
