"""The prediction cache on its own: keys, bounds, expiry, and a request's partial hits."""

from __future__ import annotations

import json
import time

from runway.core.columns.schema import DataContract
from runway.serving.cache import Lookup, PredictionCache

COLUMNS = DataContract.model_validate(
    {"columns": {"x": {"kind": "numeric"}, "c": {"kind": "categorical"}}}
).columns


def test_the_key_is_the_canonical_row_of_one_version():
    key = PredictionCache.key
    assert key("1", {"x": 30, "c": "a"}, COLUMNS) == key("1", {"c": "a", "x": 30.0}, COLUMNS)
    assert key("1", {"x": float("nan"), "c": None}, COLUMNS) == key("1", {"x": None}, COLUMNS)
    assert key("1", {"x": 1.0, "c": "a", "id": 7}, COLUMNS) == key("1", {"x": 1, "c": "a"}, COLUMNS)
    assert key("1", {"x": 1.0, "c": "a"}, COLUMNS) != key("2", {"x": 1.0, "c": "a"}, COLUMNS)
    assert key("1", {"x": True, "c": "a"}, COLUMNS) != key("1", {"x": 1.0, "c": "a"}, COLUMNS)
    assert key("1", {"x": 1.0, "c": 1}, COLUMNS) != key("1", {"x": 1.0, "c": 1.0}, COLUMNS)


def test_hits_and_misses_are_counted_and_the_least_recent_goes_first():
    cache = PredictionCache(max_entries=2, max_bytes=10**6, ttl_seconds=60)
    a, b, c = (("1", (v,)) for v in (1.0, 2.0, 3.0))
    cache.put(a, 10)
    cache.put(b, 20)
    assert cache.get(a) == (True, 10)  # a is now the most recent
    cache.put(c, 30)
    assert cache.get(b) == (False, None) and cache.get(a) == (True, 10)
    assert (cache.hits, cache.misses, cache.evictions, len(cache)) == (2, 1, 1, 2)


def test_bytes_and_age_bound_it():
    cache = PredictionCache(max_entries=1000, max_bytes=1000, ttl_seconds=60)
    for i in range(100):
        cache.put(("1", (float(i),)), "x" * 50)
    assert 0 < len(cache) < 10 and cache.bytes <= 1000
    brief = PredictionCache(max_entries=10, max_bytes=10**6, ttl_seconds=0.05)
    brief.put(("1", (1.0,)), 1)
    time.sleep(0.1)
    assert brief.get(("1", (1.0,))) == (False, None) and len(brief) == 0


def test_a_lookup_sends_only_the_missed_rows_and_answers_in_order():
    cache = PredictionCache(max_entries=10, max_bytes=10**6, ttl_seconds=60)
    rows = [{"x": 1.0, "c": "a"}, {"x": 2.0, "c": "b"}]
    first = Lookup(cache, "1", rows, COLUMNS)
    assert first.missed == [0, 1]
    assert first.fill(json.dumps({"predictions": [10, 20]}).encode(), store=True)
    second = Lookup(cache, "1", [rows[1], {"x": 3.0, "c": "a"}, rows[0]], COLUMNS)
    assert second.missed == [1]
    assert not second.fill(b'{"predictions": [1, 2]}', store=True)  # wrong count: not taken
    assert second.fill(b'{"predictions": [30]}', store=True)
    assert json.loads(second.response_body()) == {"predictions": [20, 30, 10]}
    other = Lookup(cache, "2", rows, COLUMNS)  # another version never sees these answers
    assert other.missed == [0, 1]


def test_a_switch_empties_it_without_counting_evictions_and_expired_rows_are_not_evictions():
    cache = PredictionCache(max_entries=10, max_bytes=10**6, ttl_seconds=0.05)
    for i in range(5):
        cache.put(("1", (float(i),)), i)
    time.sleep(0.1)
    assert cache.get(("1", (0.0,))) == (False, None)
    assert (len(cache), cache.bytes, cache.evictions) == (0, 0, 0)  # expired, not evicted
    lasting = PredictionCache(max_entries=10, max_bytes=10**6, ttl_seconds=60)
    for i in range(12):
        lasting.put(("1", (float(i),)), i)
    lasting.clear()
    assert (len(lasting), lasting.bytes, lasting.evictions) == (0, 0, 2)
    assert lasting.put(("1", (0.0,)), "x" * 10**7) is None and len(lasting) == 0  # too big: skipped
