"""The gateway's prediction cache: identical rows for the same version answered from memory.

Keyed by the model version and the row as the contract check saw it (the
contract's columns in its order, numbers as floats, missing as None, columns
the model ignores left out), so ``{"age": 30}`` and ``{"age": 30.0}`` are one
entry and a row is never answered with another version's prediction: the
version is part of every key, and the gateway empties the cache when it
switches versions. Bounded by entries and by (estimated) bytes, least recently
used first out, and each entry expires after a TTL.

Off unless ``RUNWAY_SERVE_CACHE_ENTRIES`` is above 0: a cached answer skips the
backend (MLflow's scoring server), which is what the cache is for, but is the
deployment's choice to make. A request with several rows sends the backend
only the rows not cached (as the gateway sends every request: the checked rows,
in their canonical form).

The LRU order, the expiry and the byte bound are cachetools' ``TTLCache``; the
partial hits (:class:`Lookup`: one request's cached rows answered, the others
sent) are runway's.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from cachetools import TTLCache

from runway.core.columns.columnar import Columns
from runway.core.columns.schema import ColumnContract
from runway.serving.backends import Response
from runway.serving.canonical import Canonical, canonical
from runway.settings import Settings

Key = tuple[str, tuple[Any, ...]]
ENTRY_OVERHEAD = 200  # bytes per entry beyond its values: the tuple, the dict slot, floats


class _Rows(TTLCache[Key, tuple[Any, int]]):
    """cachetools' LRU with a TTL, bounded by bytes (``maxsize``) and by entries too.

    Values are ``(prediction, size)``; only evictions by a bound are counted
    (expired rows just go).
    """

    def __init__(self, max_entries: int, max_bytes: int, ttl: float) -> None:
        super().__init__(max_bytes, ttl, timer=time.monotonic, getsizeof=_size)
        self.max_entries = max_entries
        self.evictions = 0

    def __setitem__(self, key: Key, value: tuple[Any, int]) -> None:
        super().__setitem__(key, value)
        while len(self) > self.max_entries:
            self.popitem()

    def popitem(self) -> tuple[Key, tuple[Any, int]]:
        item = super().popitem()
        self.evictions += 1
        return item


def _size(value: tuple[Any, int]) -> int:
    return value[1]


class PredictionCache:
    """An LRU of ``(version, row) -> prediction`` with entry, byte and age limits."""

    def __init__(self, max_entries: int, max_bytes: int, ttl_seconds: float) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.ttl = ttl_seconds
        self.rows = _Rows(max_entries, max_bytes, ttl_seconds)
        self.hits = 0
        self.misses = 0

    @classmethod
    def configured(cls, settings: Settings) -> PredictionCache | None:
        """The cache ``RUNWAY_SERVE_CACHE_*`` ask for, or None when it is off."""
        if settings.serve_cache_entries <= 0:
            return None
        size = int(settings.serve_cache_mb * 1024 * 1024)
        return cls(settings.serve_cache_entries, size, settings.serve_cache_ttl)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def bytes(self) -> int:
        """The estimated memory the rows held take."""
        return int(self.rows.currsize)

    @property
    def evictions(self) -> int:
        """Rows dropped to keep within a bound (not those that expired)."""
        return self.rows.evictions

    @staticmethod
    def key(version: str, record: Mapping[str, Any], columns: Mapping[str, ColumnContract]) -> Key:
        """The canonical row: contract columns in order; numbers as floats; missing as None."""
        values: list[Any] = []
        for name, entry in columns.items():
            value = record.get(name)
            if value is None or isinstance(value, str):
                values.append(value)
            elif isinstance(value, float) and math.isnan(value):
                values.append(None)
            elif entry.kind == "numeric" and isinstance(value, (int, float)):
                values.append(float(value) if not isinstance(value, bool) else ("bool", value))
            else:  # typed: 1, 1.0 and True are equal in Python, not to the model's encoder
                values.append((type(value).__name__, value))
        return version, tuple(values)

    def get(self, key: Key) -> tuple[bool, Any]:
        """(found, prediction); counts a hit or a miss."""
        found = self.rows.get(key)
        if found is None:
            self.rows.expire()  # expired rows give their memory back now, not at the next put
            self.misses += 1
            return False, None
        self.hits += 1
        return True, found[0]

    def put(self, key: Key, prediction: Any) -> None:
        """Remember one row's prediction (the least recently used go when a bound is reached)."""
        size = ENTRY_OVERHEAD + len(repr(key)) + len(repr(prediction))
        if self.max_entries <= 0 or size > self.max_bytes:
            return
        self.rows[key] = (prediction, size)

    def clear(self) -> None:
        """Forget everything (a version switch)."""
        self.rows.clear()


class Lookup:
    """One request's rows against the cache: the answers found, the rows to send."""

    def __init__(
        self,
        cache: PredictionCache,
        version: str,
        records: list[Mapping[str, Any]],
        columns: Mapping[str, ColumnContract],
    ) -> None:
        self.cache = cache
        self.records = records
        self.keys = [cache.key(version, r, columns) for r in records]
        self.answers: list[Any] = []
        self.missed: list[int] = []
        for i, key in enumerate(self.keys):
            found, prediction = cache.get(key)
            self.answers.append(prediction)
            if not found:
                self.missed.append(i)

    def fill(self, body: bytes, store: bool) -> bool:
        """Take the backend's predictions for the missed rows; False if it answered otherwise."""
        try:
            doc = json.loads(body)
        except ValueError:
            return False
        predictions = doc.get("predictions") if isinstance(doc, dict) else None
        if (
            not isinstance(predictions, list)
            or len(predictions) != len(self.missed)
            or len(doc) != 1
        ):
            return False
        for i, prediction in zip(self.missed, predictions, strict=True):
            self.answers[i] = prediction
            if store:
                self.cache.put(self.keys[i], prediction)
        return True

    async def answer(
        self,
        whole: Canonical,
        part: Callable[[list[int]], Canonical],
        forward: Callable[[Canonical], Awaitable[Response]],
        current: Callable[[], bool],
    ) -> Response:
        """Forward the rows not cached (``whole`` when none is, else ``part(missed)``), merge.

        ``current()`` says whether the version is still the one served: answers
        of a version switched away from are not kept. A backend error, or an
        answer not shaped ``{"predictions": [one per row]}``, is passed on as
        the backend gave it for the whole request.
        """
        if self.missed:
            everything = len(self.missed) == len(self.records)
            answer = await forward(whole if everything else part(self.missed))
            if answer.status != 200 or not self.fill(answer.body, store=current()):
                return answer if everything else await forward(whole)
        return Response(200, "application/json", self.response_body())

    def response_body(self) -> bytes:
        """``{"predictions": [...]}`` for every row, in the request's order."""
        return json.dumps({"predictions": self.answers}).encode()


async def cached(
    cache: PredictionCache | None,
    slot: Any,
    checked: Canonical,
    forward: Callable[[Canonical], Awaitable[Response]],
    gateway: Any,
    probabilities: bool = False,
) -> Response:
    """The answer to one request: the backend's, or the cache's for the rows it holds.

    ``checked`` holds the rows as the contract check left them and the body a
    backend scores; without a cache that body is forwarded as is. ``slot`` is the version
    the request took, ``gateway.slot`` the one served now: answers of a version
    switched away from are not kept. Answers with ``probabilities`` are other entries than
    labels alone (the key's version says which): neither is ever served for the other.
    """
    if cache is None:
        return await forward(checked)
    rows = checked.rows
    records: list[Mapping[str, Any]] = (
        rows.records()
        if isinstance(rows, Columns)
        else [{str(k): v for k, v in r.items()} for r in rows.to_dict("records")]
    )
    version = f"{slot.model.version}+proba" if probabilities else slot.model.version
    lookup = Lookup(cache, version, records, slot.contract.columns)

    def part(missed: list[int]) -> Canonical:
        subset: Any = (
            [records[i] for i in missed] if isinstance(rows, Columns) else rows.iloc[missed]
        )
        return canonical(subset, slot.contract, slot.input_types, None, slot.lean)

    return await lookup.answer(checked, part, forward, lambda: gateway.slot is slot)
