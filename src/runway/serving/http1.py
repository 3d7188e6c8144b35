"""Just enough HTTP/1.1 to talk to a backend (uvicorn) over a pooled Unix-socket connection.

Hand-written because the gateway's CPU per request is its budget: measured by
``benchmarks/backend_client.py`` (``make bench``) on the same socket to the
same uvicorn, a client reading responses with httptools' parser took about 2x
the CPU per request of this one, one on h11 2.5x, and httpx 15x (the README's
table). What it reads: a status line, headers, and a body framed by
``Content-Length``, chunked transfer coding (extensions and trailers
skipped), or the connection's end; no body for 1xx, 204 and 304.
``tests/unit/serving/test_http1.py`` covers each, keep-alive reuse and a backend that
closes mid-response.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass


@dataclass
class Response:
    """A backend's answer."""

    status: int
    content_type: str
    body: bytes


def request_head(method: str, path: str, length: int, content_type: str = "") -> bytes:
    """The request line and headers of a request with a ``length``-byte body."""
    kind = f"Content-Type: {content_type}\r\n" if content_type else ""
    head = f"{method} {path} HTTP/1.1\r\nHost: backend\r\nContent-Length: {length}\r\n{kind}\r\n"
    return head.encode("latin-1")


async def read_response(reader: asyncio.StreamReader) -> tuple[Response, bool]:
    """One response, and whether its connection may carry another.

    Raises:
        ValueError: not an HTTP/1.x response, or a malformed length or chunk.
        asyncio.IncompleteReadError: the backend closed the connection mid-response.
        asyncio.LimitOverrunError: a head or chunk line over the reader's limit (64 KiB).
    """
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise ValueError(f"not an HTTP response: {lines[0][:80]!r}")
    status = int(parts[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    connection = headers.get("connection", "").lower()
    keep = connection != "close" if parts[0] != "HTTP/1.0" else connection == "keep-alive"
    if status < 200 or status in (204, 304):
        body = b""
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _chunked(reader)
    elif "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    else:  # delimited by the connection's end
        body, keep = await reader.read(), False
    return Response(status, headers.get("content-type", ""), body), keep


async def _chunked(reader: asyncio.StreamReader) -> bytes:
    """A chunked body: sizes (extensions after ';' ignored), data, then trailers up to a blank line."""
    chunks = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
        if size == 0:
            break
        chunks.append(await reader.readexactly(size))
        if await reader.readexactly(2) != b"\r\n":
            raise ValueError("a chunk not followed by CRLF")
    while await reader.readuntil(b"\r\n") != b"\r\n":  # trailer fields, not used
        pass
    return b"".join(chunks)
