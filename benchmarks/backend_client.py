"""The gateway's client to its backends: runway's own against library clients, same socket.

The gateway forwards every request to a backend (uvicorn, httptools, one
worker, on a Unix socket) over a pooled keep-alive client
(:meth:`runway.serving.backends.Backend.request`); its CPU per request is
the gateway's budget. This measures that client against clients built on
libraries, on the same socket to the same server:

* ``runway``: ``Backend.request`` (HTTP/1.1 written and read by hand);
* ``httptools``: the same request head, the response read by httptools' C
  parser (llhttp; what the gateway's own server parses requests with);
* ``h11``: a pooled client on asyncio streams with h11 reading and writing;
* ``httpx``: ``httpx.AsyncClient`` over ``AsyncHTTPTransport(uds=...)``
  (httpcore and h11 underneath), when httpx is installed.

The server is a trivial ASGI app on uvicorn (what a backend runs, minus the
model), in its own process; each client runs in a fresh process (uvloop, as
the gateway), the clients interleaved repeat by repeat (the order rotated), so
drift on the host hits all alike. Per client: CPU microseconds per request in
the client's process (``time.process_time``), single-request p50, and
requests/s with 8 concurrent requests over the pool. Medians over repeats.

    python benchmarks/backend_client.py [--requests 3000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BODY = json.dumps({"inputs": {f"feature {i}": [i * 1.5] for i in range(30)}}).encode()
ANSWER = b'{"predictions": [1]}'
CLIENTS = ("runway", "httptools", "h11", "httpx")


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A backend without the model: reads the body, answers like MLflow's scoring app."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"20")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": ANSWER})


def _serve(path: str) -> None:
    import uvicorn

    uvicorn.run(
        "benchmarks.backend_client:app",
        uds=path,
        http="httptools",
        loop="uvloop",
        access_log=False,
        log_level="warning",
        timeout_keep_alive=60,
    )


Request = Callable[[], Awaitable[bytes]]


def _runway(path: str) -> Request:
    from runway.serving.backends import Backend
    from runway.serving.zygote import Adopted

    backend = Backend("bench", "1", Path(path), Adopted(os.getpid()), Path(os.devnull))

    async def request() -> bytes:
        answer = await backend.request("POST", "/invocations", BODY, "application/json")
        return answer.body

    return request


def _httptools(path: str) -> Request:
    import httptools

    class Reply:
        def __init__(self) -> None:
            self.chunks: list[bytes] = []
            self.done = False

        def on_body(self, body: bytes) -> None:
            self.chunks.append(body)

        def on_message_complete(self) -> None:
            self.done = True

    Idle = tuple[asyncio.StreamReader, asyncio.StreamWriter, Reply, Any]
    idle: list[Idle] = []
    head = (
        b"POST /invocations HTTP/1.1\r\nHost: backend\r\nContent-Length: %d\r\n"
        b"Content-Type: application/json\r\n\r\n" % len(BODY)
    )

    async def request() -> bytes:
        if idle:
            reader, writer, reply, parser = idle.pop()
        else:
            reader, writer = await asyncio.open_unix_connection(path)
            reply = Reply()
            parser = httptools.HttpResponseParser(reply)  # one per connection, reused
        reply.chunks, reply.done = [], False
        writer.write(head + BODY)
        while not reply.done:
            data = await reader.read(65536)
            if not data:
                raise ConnectionError("closed")
            parser.feed_data(data)
        if parser.should_keep_alive():
            idle.append((reader, writer, reply, parser))
        else:
            writer.close()
        return b"".join(reply.chunks)

    return request


def _h11(path: str) -> Request:
    import h11

    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, h11.Connection]] = []
    head = h11.Request(
        method="POST",
        target="/invocations",
        headers=[
            ("Host", "backend"),
            ("Content-Length", str(len(BODY))),
            ("Content-Type", "application/json"),
        ],
    )

    async def request() -> bytes:
        if idle:
            reader, writer, conn = idle.pop()
        else:
            reader, writer = await asyncio.open_unix_connection(path)
            conn = h11.Connection(h11.CLIENT)
        writer.write(
            conn.send(head) + conn.send(h11.Data(data=BODY)) + conn.send(h11.EndOfMessage())
        )
        chunks = []
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await reader.read(65536))
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
            idle.append((reader, writer, conn))
        else:
            writer.close()
        return b"".join(chunks)

    return request


def _httpx(path: str) -> Request:
    import httpx

    client = httpx.AsyncClient(
        transport=httpx.AsyncHTTPTransport(uds=path), base_url="http://backend"
    )
    headers = {"Content-Type": "application/json"}

    async def request() -> bytes:
        answer = await client.post("/invocations", content=BODY, headers=headers)
        return answer.content

    return request


async def _measure(request: Request, n: int) -> dict[str, float]:
    for _ in range(300):  # warm: connections, caches, the JIT-less interpreter's paths
        assert await request() == ANSWER
    times = []
    cpu = time.process_time()
    for _ in range(n):
        start = time.perf_counter()
        await request()
        times.append(time.perf_counter() - start)
    cpu = time.process_time() - cpu
    started, cpu_many = time.perf_counter(), time.process_time()

    async def worker() -> None:
        for _ in range(n // 8):
            await request()

    await asyncio.gather(*(worker() for _ in range(8)))
    wall = time.perf_counter() - started
    cpu_many = time.process_time() - cpu_many
    return {
        "cpu_us": cpu / n * 1e6,
        "p50_us": statistics.median(times) * 1e6,
        "rps_c8": (n // 8 * 8) / wall,
        "cpu_us_c8": cpu_many / (n // 8 * 8) * 1e6,
    }


def _client(name: str, path: str, n: int) -> None:
    import uvloop

    make = {"runway": _runway, "httptools": _httptools, "h11": _h11, "httpx": _httpx}[name]

    async def main() -> dict[str, float]:
        return await _measure(make(path), n)

    print(json.dumps(uvloop.run(main())))


def _available(name: str) -> bool:
    try:
        __import__(name if name != "runway" else "runway.serving.backends")
    except ImportError:
        return False
    return True


def _run(args: argparse.Namespace) -> None:
    paths = [str(REPO / "src"), str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    clients = [c for c in CLIENTS if _available(c)]
    with tempfile.TemporaryDirectory(prefix="bench-client-") as tmp:
        path = str(Path(tmp) / "backend.sock")
        server = subprocess.Popen([sys.executable, __file__, "--serve", path], env=env)
        try:
            deadline = time.monotonic() + 30
            while not os.path.exists(path) and time.monotonic() < deadline:
                time.sleep(0.05)
            results: dict[str, list[dict[str, float]]] = {c: [] for c in clients}
            for r in range(args.repeats):
                for name in clients[r % len(clients) :] + clients[: r % len(clients)]:
                    command = [sys.executable, __file__, "--client", name, path]
                    out = subprocess.run(
                        [*command, "--requests", str(args.requests)],
                        env=env,
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    results[name].append(json.loads(out.stdout))
        finally:
            server.terminate()
            server.wait(10)
    _table(results, args)


def _table(results: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> None:
    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    print(
        f"\nbackend client over a Unix socket: {args.requests} requests x {args.repeats} "
        "repeats per client, fresh processes, interleaved (medians)"
    )
    print("| client | CPU us/req | p50 us | req/s @ c=8 | CPU us/req @ c=8 | CPU vs runway |")
    print("| --- | --- | --- | --- | --- | --- |")
    base = med("runway", "cpu_us")
    for name in results:
        print(
            f"| {name} | {med(name, 'cpu_us'):.1f} | {med(name, 'p50_us'):.1f} | "
            f"{med(name, 'rps_c8'):.0f} | {med(name, 'cpu_us_c8'):.1f} | "
            f"{med(name, 'cpu_us') / base:.2f}x |"
        )
    if "httpx" not in results:
        print("(httpx is not installed: pip install httpx to measure it)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--serve", metavar="SOCKET", help=argparse.SUPPRESS)
    parser.add_argument("--client", nargs=2, metavar=("NAME", "SOCKET"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(args.serve)
    elif args.client:
        _client(args.client[0], args.client[1], args.requests)
    else:
        _run(args)


if __name__ == "__main__":
    main()
