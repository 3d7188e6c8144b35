"""The public side of ``runway serve``: a thin ASGI app in front of the backends.

It owns what the bare scoring server lacks: the Host allow-list, bearer
tokens, body-size and concurrency limits, a request timeout, input checks
against the training contract, clean JSON errors (never a stack trace), the
model-version header, ``/health`` ``/ready`` ``/metrics`` and the prediction
log. Scoring is forwarded to the live :class:`Slot`'s backends, as the checked rows
in canonical form (:func:`canonical.canonical`); :mod:`runway.serving.serve` swaps slots.

The request path is plain Python on parsed data: a few dictionary lookups, the contract
check, a small body in the format MLflow reads fastest, one round trip over a Unix socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import json
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runway.core.columns.contract import DataContract, check_frame, check_records
from runway.core.columns.input_policy import InputPolicy
from runway.serving import docs, payload, proba
from runway.serving.backends import Backend, BackendError
from runway.serving.cache import PredictionCache, cached
from runway.serving.canonical import Canonical, canonical
from runway.serving.metrics import CONTENT_TYPE, Live, Metrics, Served
from runway.serving.payload import BadRequest
from runway.settings import Settings
from runway.store.predlog_writer import BackgroundWriter
from runway.store.served import ResolvedModel, is_twin

log = logging.getLogger(__name__)

MAX_LISTED_ERRORS = 20
THREAD_CHECK_VALUES = 20_000  # bigger requests are checked off the event loop
KNOWN_PATHS = frozenset({"/invocations", "/health", "/ping", "/ready", "/metrics", *docs.PATHS})


@dataclass
class Slot:
    """One model version being served: its backends, contract and input policy."""

    model: ResolvedModel
    contract: DataContract
    policy: InputPolicy
    backends: list[Backend]
    example: bytes
    example_rows: int
    model_dir: Path | None = None  # the checked model folder the backends serve
    inflight: int = 0  # requests that took this slot and have not answered yet
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    input_types: dict[str, str] = field(default_factory=dict)  # signature column -> MLflow type
    lean: bool = field(init=False, default=False)  # an ONNX twin: its lean route reads any JSON

    def __post_init__(self) -> None:
        self.lean = is_twin(self.model_dir)  # read once a slot, not a stat per request
        self.headers = [
            (b"x-runway-model", self.model.name.encode()),
            (b"x-runway-model-version", self.model.version.encode()),
        ]

    def pick(self, avoid: Backend | None = None) -> Backend | None:
        """The live backend with the fewest requests in flight."""
        live = [b for b in self.backends if b.alive and b is not avoid]
        return min(live, key=lambda b: b.inflight) if live else None


Hook = Callable[[], Awaitable[None]]


class Gateway:
    """The ASGI application. ``slot`` is swapped by the server; everything else is fixed."""

    def __init__(self, settings: Settings, writer: BackgroundWriter | None = None) -> None:
        self.slot: Slot | None = None
        self.metrics = Metrics()
        self.writer = writer
        self.sample = settings.prediction_log_sample
        self.tokens = [t.strip().encode() for t in settings.serve_tokens.split(",") if t.strip()]
        hosts = [h.strip().lower() for h in settings.serve_allowed_hosts.split(",") if h.strip()]
        self.any_host = "*" in hosts
        self.hosts = set(hosts)
        self.max_body = int(settings.serve_max_body_mb * 1024 * 1024)
        self.max_concurrency = settings.serve_max_concurrency
        self.timeout = settings.serve_timeout
        self.body_timeout = settings.serve_body_timeout
        self.active = 0
        self.cache = PredictionCache.configured(settings)  # None: off
        self.metrics.live = self._live

    def _live(self) -> Live:
        """What /metrics reports of the gateway's state (it counts the rest itself)."""
        slot, dropped = self.slot, self.writer.dropped if self.writer else 0
        served = None
        if slot is not None:
            alive = sum(b.alive for b in slot.backends)
            served = Served(slot.model.name, slot.model.version, alive)
        return Live(self.active, dropped, served, self.cache)

    def switch(self, slot: Slot) -> None:
        """Serve ``slot`` from now on; the prediction cache starts empty for it."""
        self.slot = slot
        if self.cache is not None:  # never answer from the old version's rows
            self.cache.clear()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":  # nothing to set up: serve.py owns start-up
                message = await receive()
                await send({"type": f"{message['type']}.complete"})
            return
        started = time.perf_counter()
        path = scope["path"]
        raw = scope["headers"]
        headers = dict(raw)
        request_id = headers.get(b"x-request-id", b"").decode("latin-1")[:64] or uuid.uuid4().hex
        extra = [(b"x-request-id", request_id.encode("latin-1"))]
        known = path if path in KNOWN_PATHS else "other"  # bounded label values
        authed = not self.tokens  # with tokens, an error names the model only to their holders
        try:
            if len(headers) != len(raw):
                payload.check_duplicates(raw)
            self._check_host(headers)
            payload.check_method(known, scope["method"], extra)
            if known in ("/invocations", "/metrics") or known in docs.GATED:
                self._check_token(headers)  # the pages describe the model: token holders only
                authed = True
            status = await self._route(known, scope, receive, send, headers, request_id, extra)
        except BadRequest as exc:
            status = await self._refuse(send, exc, extra, authed)
        except Exception:  # a bug: a clean 500, logged and counted, never a stack trace out
            log.exception("unexpected error answering %s %s", scope.get("method"), known)
            status = 500
            with contextlib.suppress(Exception):  # the response may have started already
                body = {"error_code": "INTERNAL_ERROR", "message": "internal error (logged)"}
                await _send_json(send, 500, body, [*extra, (b"connection", b"close")])
        self.metrics.observe(known, status, time.perf_counter() - started)

    async def _route(
        self,
        known: str,
        scope: dict[str, Any],
        receive: Any,
        send: Any,
        headers: dict[bytes, bytes],
        request_id: str,
        extra: list[tuple[bytes, bytes]],
    ) -> int:
        if known == "/invocations":
            return await self._invocations(scope, receive, send, headers, request_id, extra)
        # Every answer names the version served, to whoever may know it (token holders).
        named = [*extra, *(self.slot.headers if self.slot and not self.tokens else [])]
        if known in ("/health", "/ping"):
            return await _send_json(send, 200, {"status": "ok"}, named)
        if known == "/ready":
            return await self._ready(send, headers, extra)
        if known == "/metrics":
            slot = self.slot
            named = [*extra, *(slot.headers if slot else [])]  # /metrics: token holders only
            return await _send(send, 200, self.metrics.render(), CONTENT_TYPE, named)
        if known in docs.PATHS:
            return await self._docs(scope, send, headers, extra)
        raise BadRequest(
            404,
            f"no such path {payload.clip(scope['path'])}; POST /invocations, GET / /docs "
            "/openapi.json /version /health /ping /ready /metrics",
            "NOT_FOUND",
        )

    async def _refuse(
        self, send: Any, exc: BadRequest, extra: list[tuple[bytes, bytes]], authed: bool
    ) -> int:
        slot = self.slot
        more = [*extra, *(slot.headers if slot and authed else [])]
        if exc.status == 401:
            more.append((b"www-authenticate", b'Bearer realm="runway"'))
        elif exc.status == 503:
            more.append((b"retry-after", b"1"))
        return await _send_json(send, exc.status, exc.body(), more)

    def _check_host(self, headers: dict[bytes, bytes]) -> None:
        if self.any_host:
            return
        host = headers.get(b"host", b"").decode("latin-1").lower()
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name not in self.hosts:
            raise BadRequest(
                400,
                f"Host {payload.clip(host)} is not allowed; set RUNWAY_SERVE_ALLOWED_HOSTS "
                "to accept it",
                "INVALID_HOST",
            )

    def _check_token(self, headers: dict[bytes, bytes]) -> None:
        if self.tokens and not self._token_ok(headers):
            raise BadRequest(
                401,
                "missing or invalid bearer token: send the header "
                "'Authorization: Bearer <token>' (one of the server's RUNWAY_SERVE_TOKENS)",
                "UNAUTHENTICATED",
            )

    async def _docs(
        self, scope: dict[str, Any], send: Any, headers: dict[bytes, bytes], extra: list[Any]
    ) -> int:
        """``/``, ``/docs``, ``/openapi.json``, ``/version``: see :mod:`runway.serving.docs`."""
        slot = self.slot
        if slot is None:
            raise BadRequest(503, "no model version is loaded yet", "NOT_READY")
        if scope["method"] != "GET":
            extra.append((b"allow", b"GET"))
        described = docs.Described(
            slot.model, slot.contract, slot.policy, slot.example, bool(self.tokens)
        )
        accept = headers.get(b"accept", b"").decode("latin-1")
        host = headers.get(b"host", b"127.0.0.1").decode("latin-1")
        body, kind = docs.answer(scope["path"], scope["method"], accept, host, described)
        named = slot.headers if not self.tokens or self._token_ok(headers) else []  # docs.OPEN
        return await _send(send, 200, body, kind, [*extra, *named, docs.CSP])

    def _token_ok(self, headers: dict[bytes, bytes]) -> bool:
        scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
        return scheme.lower() == b"bearer" and any(
            hmac.compare_digest(token.strip(), t) for t in self.tokens
        )

    async def _ready(
        self, send: Any, headers: dict[bytes, bytes], extra: list[tuple[bytes, bytes]]
    ) -> int:
        slot = self.slot
        if slot is None or slot.pick() is None:
            raise BadRequest(503, "no model version is loaded and answering", "NOT_READY")
        body: dict[str, Any] = {"status": "ready", "backends": sum(b.alive for b in slot.backends)}
        if not self.tokens or self._token_ok(headers):  # which model: for token holders only
            body |= {"model": slot.model.name, "version": slot.model.version}
            if self.metrics.unaudited:  # the registry's Production, refused: why
                body["registry_production_refused"] = self.metrics.unaudited
            extra = [*extra, *slot.headers]
        return await _send_json(send, 200, body, extra)

    async def _invocations(
        self,
        scope: dict[str, Any],
        receive: Any,
        send: Any,
        headers: dict[bytes, bytes],
        request_id: str,
        extra: list[tuple[bytes, bytes]],
    ) -> int:
        kind = payload.media_type(
            headers.get(b"content-type", b"").decode("latin-1"),
            headers.get(b"content-encoding", b"").decode("latin-1"),
        )
        # The body first, under its own deadline, and only then a concurrency slot:
        # a client that trickles its body in holds a socket, never a slot.
        try:
            async with asyncio.timeout(self.body_timeout):
                body = await self._body(receive, headers)
        except TimeoutError:
            extra.append((b"connection", b"close"))  # the rest of the body may still come
            raise BadRequest(
                408,
                f"request body not received within {self.body_timeout:g}s "
                "(RUNWAY_SERVE_BODY_TIMEOUT)",
                "REQUEST_TIMEOUT",
            ) from None
        if self.active >= self.max_concurrency:
            raise BadRequest(
                503, f"busy: {self.active} requests in flight; retry shortly", "OVERLOADED"
            )
        self.active += 1
        try:
            async with asyncio.timeout(self.timeout):
                return await self._score(send, body, kind, scope, request_id, extra)
        except TimeoutError:
            raise BadRequest(
                504, f"no answer within {self.timeout:g}s (RUNWAY_SERVE_TIMEOUT)", "TIMEOUT"
            ) from None
        finally:
            self.active -= 1

    async def _score(
        self,
        send: Any,
        body: bytes,
        kind: str,
        scope: dict[str, Any],
        request_id: str,
        extra: list[tuple[bytes, bytes]],
    ) -> int:
        slot = self.slot
        if slot is None:
            raise BadRequest(503, "no model version is loaded yet", "NOT_READY")
        want = proba.wanted(scope.get("query_string", b""), slot.contract, slot.model.name)
        slot.inflight += 1  # from here the slot's backends are not stopped under us
        try:
            try:
                rows = payload.parse(body, kind, slot.contract)
                checked = await self._check(rows, slot, request_id)  # the backend scores these
            except RecursionError:  # a value nested deep enough to break a repr
                raise BadRequest(400, "input nested too deeply", "TOO_DEEP") from None
            # Whatever the client sent, the backend gets the checked rows in canonical form
            forward = functools.partial(self._forward, slot, proba.route(want, slot.lean))
            answer = await cached(self.cache, slot, checked, forward, self, want)
            if answer.status != 200:
                return await self._backend_error(send, answer, [*extra, *slot.headers])
            self.metrics.rows_scored += len(rows)
            out, probabilities = proba.public(answer.body, slot.contract, want)
            await _send(send, 200, out, b"application/json", [*extra, *slot.headers])
        finally:
            slot.inflight -= 1
        if self.writer is not None and (self.sample >= 1 or random.random() < self.sample):
            self.writer.submit(
                slot.model.name, slot.model.version, checked.rows, out, request_id, probabilities
            )
        return 200

    async def _body(self, receive: Any, headers: dict[bytes, bytes]) -> bytes:
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            raise self._too_large()
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise BadRequest(400, "client disconnected", "DISCONNECTED")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise self._too_large()
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    def _too_large(self) -> BadRequest:
        limit = self.max_body / 1024 / 1024
        return BadRequest(
            413,
            f"request body over {limit:g} MB (RUNWAY_SERVE_MAX_BODY_MB); send fewer rows per request",
            "PAYLOAD_TOO_LARGE",
        )

    async def _check(self, rows: payload.Payload, slot: Slot, request_id: str) -> Canonical:
        data = rows.data()
        valid: Any = data
        large = len(rows) * len(slot.contract.columns) > THREAD_CHECK_VALUES
        if isinstance(data, list):
            args = (data, slot.contract, slot.policy, rows.columns)
            problems, rejected = await _off_loop(large, check_records, *args)
        else:
            result = await asyncio.to_thread(check_frame, data, slot.contract, slot.policy)
            problems, rejected, valid = result.problems, result.rejected, result.valid
        if problems:
            self.metrics.rows_rejected += len(rows)
            self._log_rejected(rows, dict.fromkeys(range(len(rows)), problems), slot, request_id)
            raise BadRequest(422, problems[0], "INVALID_INPUT", [{"message": p} for p in problems])
        if rejected:
            self.metrics.rows_rejected += len(rows)
            self._log_rejected(rows, rejected, slot, request_id)
            raise payload.rejection(rejected, len(rows), MAX_LISTED_ERRORS)
        types = (slot.contract, slot.input_types, rows.columns if isinstance(data, list) else None)
        return await _off_loop(large, canonical, valid, *types, slot.lean)

    def _log_rejected(
        self, rows: payload.Payload, rejected: dict[int, list[str]], slot: Slot, request_id: str
    ) -> None:
        """Rows the contract refused go to the prediction log too, with their reasons."""
        if self.writer is not None and (self.sample >= 1 or random.random() < self.sample):
            model = slot.model
            self.writer.submit_rejected(
                model.name, model.version, rows.data(), rejected, request_id
            )

    async def _forward(self, slot: Slot, route: str, checked: Canonical) -> Any:
        """Score on the least busy backend at ``route``; one that drops the connection: one retry elsewhere."""
        tried: Backend | None = None
        for _ in range(2):
            backend = slot.pick(avoid=tried)
            if backend is None:
                break
            backend.inflight += 1
            try:
                answer = await backend.request("POST", route, checked.body, checked.content_type)
                backend.served += 1
                return answer
            except BackendError as exc:
                log.warning("backend failed: %s", exc)
                tried = backend
            finally:
                backend.inflight -= 1
        raise BadRequest(
            503,
            f"no backend of {slot.model.name} v{slot.model.version} is answering",
            "UNAVAILABLE",
        )

    async def _backend_error(
        self, send: Any, answer: Any, headers: list[tuple[bytes, bytes]]
    ) -> int:
        """The model refused or failed: pass the status on, without MLflow's stack trace."""
        try:
            doc = json.loads(answer.body)
            message = str(doc.get("message", "")) if isinstance(doc, dict) else ""
            code = str(doc.get("error_code", "MODEL_ERROR")) if isinstance(doc, dict) else ""
        except ValueError:
            message, code = answer.body.decode("utf-8", "replace"), "MODEL_ERROR"
        log.warning("backend answered %d: %s", answer.status, message[:2000])
        first = next((line for line in message.splitlines() if line.strip()), "the model failed")
        status = answer.status if answer.status < 500 else 502
        body = {"error_code": code or "MODEL_ERROR", "message": f"model error: {first[:300]}"}
        return await _send_json(send, status, body, headers)


async def _send(
    send: Any, status: int, body: bytes, content_type: bytes, headers: list[tuple[bytes, bytes]]
) -> int:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
    return status


async def _send_json(
    send: Any, status: int, doc: dict[str, Any], headers: list[tuple[bytes, bytes]]
) -> int:
    return await _send(send, status, json.dumps(doc).encode(), b"application/json", headers)


async def _off_loop(large: bool, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``: in a worker thread when the request is large, else on the loop (cheaper)."""
    return await asyncio.to_thread(fn, *args) if large else fn(*args)
