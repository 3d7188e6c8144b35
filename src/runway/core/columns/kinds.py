"""What a value of each column kind may look like, and its one canonical form.

A feature column is ``numeric``, ``boolean``, ``categorical`` or ``datetime``.
Clients send values in many spellings (JSON ``true``, CSV ``TRUE`` or ``1``, a
Parquet timestamp, an ISO string with an offset); this module is the one place
that decides which spellings mean what, so serving, batch, Spark and the model's
own transformers (:mod:`runway.core.training.transformers`) all read a value the same way:

- boolean: ``true``/``false`` in any of ``true True TRUE false False FALSE``,
  the numbers (or texts) ``1`` and ``0``; nothing else. Canonical: ``True``,
  ``False``, or ``None`` when missing.
- datetime: a timestamp (Python, NumPy or pandas) or an ISO 8601 text
  (``2024-05-01``, ``2024-05-01 13:45``, ``2024-05-01T13:45:00+02:00``); offsets
  are converted to UTC and dropped. Canonical: ``datetime64[us]`` without a time
  zone (UTC), ``NaT`` when missing. Numbers are not timestamps (seconds or
  milliseconds? refused rather than guessed).
- numeric and categorical: see :mod:`runway.core.columns.contract`.

Every function returns the parsed values and a mask of the values it could not
read (vectorised), or :data:`INVALID` (scalar twins), never guessing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final, Literal, get_args

import numpy as np
import pandas as pd

Kind = Literal["numeric", "boolean", "categorical", "datetime"]
KINDS: tuple[Kind, ...] = get_args(Kind)
DatetimePart = Literal["year", "month", "day", "dayofweek", "hour", "minute", "elapsed_days"]
# The parts a datetime column becomes by default, and every part there is.
DATETIME_PARTS: tuple[DatetimePart, ...] = ("hour", "dayofweek", "month", "elapsed_days")
ALL_DATETIME_PARTS: tuple[DatetimePart, ...] = get_args(DatetimePart)

TRUE_TEXT = frozenset({"true", "True", "TRUE", "1"})
FALSE_TEXT = frozenset({"false", "False", "FALSE", "0"})
BOOLEAN_EXPECTED = "expected true or false (or 1/0)"
DATETIME_EXPECTED = "expected an ISO 8601 timestamp"
DATETIME_DTYPE: Final = "datetime64[us]"  # one precision on every path: identical parts


class _Invalid:
    """The scalar parsers' answer for a value they cannot read."""

    def __repr__(self) -> str:
        return "INVALID"


INVALID: Final = _Invalid()


def is_missing(value: Any) -> bool:
    """None, NaN, ``pd.NA`` and ``NaT``: the markers of a missing value in any container."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, (float, np.floating)):
        return bool(value != value)
    return isinstance(value, np.datetime64) and bool(np.isnat(value))


# --- booleans ------------------------------------------------------------------------


def boolean_value(value: Any) -> bool | _Invalid | None:
    """One value as ``True``/``False``, ``None`` when missing, :data:`INVALID` otherwise."""
    if is_missing(value):
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, str):
        if value in TRUE_TEXT:
            return True
        if value in FALSE_TEXT:
            return False
        return INVALID
    if isinstance(value, (int, float, np.integer, np.floating)) and value in (0, 1):
        return bool(value)
    return INVALID


def boolean_series(series: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Values as an object column of ``True``/``False``/``None``, and the unreadable ones."""
    if pd.api.types.is_bool_dtype(series) and not series.hasnans:
        values = series.astype(object)
        return values, np.zeros(len(series), dtype=bool)
    parsed = [boolean_value(v) for v in series.to_numpy(dtype=object)]
    bad = np.fromiter((p is INVALID for p in parsed), dtype=bool, count=len(parsed))
    clean = [None if p is INVALID else p for p in parsed]
    return pd.Series(clean, index=series.index, dtype=object, name=series.name), bad


def boolean_floats(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Booleans as 1.0/0.0 with NaN for missing (what an imputer and a model take)."""
    values, bad = boolean_series(series)
    floats = np.array([np.nan if v is None else float(v) for v in values], dtype="float64")
    return floats, bad


# --- timestamps ----------------------------------------------------------------------


def _is_text_or_time(value: Any) -> bool:
    return isinstance(value, (str, dt.date, np.datetime64))


def timestamp_series(series: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Values as naive UTC ``datetime64[us]`` (NaT when missing), and the unreadable ones."""
    index, name = series.index, series.name
    if pd.api.types.is_datetime64_any_dtype(series):
        stamps = series
        if getattr(stamps.dt, "tz", None) is not None:
            stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
        return stamps.astype(DATETIME_DTYPE), np.zeros(len(series), dtype=bool)
    raw = series.to_numpy(dtype=object)
    missing = np.fromiter((is_missing(v) for v in raw), dtype=bool, count=len(raw))
    readable = np.fromiter((_is_text_or_time(v) for v in raw), dtype=bool, count=len(raw))
    usable = readable & ~missing
    candidates = pd.Series(
        [v if ok else None for v, ok in zip(raw, usable, strict=True)], dtype="object"
    )
    parsed = _to_utc(candidates)
    bad = ~missing & (parsed.isna().to_numpy() | ~readable)
    parsed = parsed.where(~bad)
    parsed.index, parsed.name = index, name
    return parsed, bad


def _to_utc(values: pd.Series) -> pd.Series:
    """Parse texts and timestamps element by element (one bad value spoils only itself)."""
    try:
        parsed = pd.to_datetime(values, format="ISO8601", utc=True, errors="coerce")
    except (ValueError, TypeError, OverflowError):  # mixed objects pandas will not batch
        parsed = pd.Series([_one_utc(v) for v in values], dtype="datetime64[ns, UTC]")
    return parsed.dt.tz_localize(None).astype(DATETIME_DTYPE)


def _one_utc(value: Any) -> Any:
    """A timestamp in UTC, or NaT."""
    if value is None:
        return pd.NaT
    try:
        return pd.to_datetime(value, format="ISO8601", utc=True)
    except (ValueError, TypeError, OverflowError):
        return pd.NaT


def timestamp_value(value: Any) -> pd.Timestamp | _Invalid | None:
    """One value as a naive UTC timestamp, ``None`` when missing, :data:`INVALID` otherwise."""
    if is_missing(value):
        return None
    if not _is_text_or_time(value):
        return INVALID
    stamp = _one_utc(value)
    if stamp is pd.NaT:
        return INVALID
    return stamp.tz_localize(None).as_unit("us")


def looks_like_timestamps(series: pd.Series, sample: int = 1000) -> bool:
    """True when a text column holds ISO 8601 dates or timestamps (what ``infer`` calls datetime).

    Every non-missing value of a sample must parse, and hold a date (``YYYY-MM-DD``),
    so codes such as ``"2024"`` or ``"20240501"`` stay categories.
    """
    if pd.api.types.is_datetime64_any_dtype(series):
        return True
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return False
    values = series.dropna()
    if values.empty:
        return False
    head = values.iloc[:sample]
    if not all(isinstance(v, str) for v in head):
        return False
    text = head.astype(str)
    if not text.str.match(r"^\s*\d{4}-\d{2}-\d{2}").all():
        return False
    _, bad = timestamp_series(head)
    return not bad.any()


def looks_boolean(series: pd.Series) -> bool:
    """True for a bool column, or an object column holding only ``True``/``False`` (and gaps)."""
    if pd.api.types.is_bool_dtype(series):
        return True
    if series.dtype != object:
        return False
    values = series.dropna()
    return not values.empty and all(isinstance(v, (bool, np.bool_)) for v in values)


def coerce_numbers(values: pd.Series) -> pd.Series:
    """``pd.to_numeric(values, errors="coerce")``, with integers no float holds as infinities.

    A CSV cell of 400 digits reaches pandas as a Python int, which its converter
    refuses with ``OverflowError``; as an infinity the check names its row
    ("expected a finite number") instead of failing the whole batch.
    """
    try:
        return pd.to_numeric(values, errors="coerce")
    except OverflowError:
        return pd.to_numeric(values.map(_float_or_same), errors="coerce")


def _float_or_same(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            return float("inf") if value > 0 else float("-inf")
    if isinstance(value, str):
        try:
            return float(value)  # a text of digits never overflows: it is inf
        except ValueError:
            return value
    return value


def numbers_from_text(series: pd.Series) -> pd.Series:
    """A text column of a numeric feature: cells that parse become floats, the others stay text.

    CSV cells arrive as text; one bad cell must blame only its own row, so each
    cell is parsed on its own and what does not parse is left for the check to name.
    """
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return series
    original = series.astype(object)
    numbers = coerce_numbers(original)
    unparsed = numbers.isna().to_numpy() & original.notna().to_numpy()
    if not unparsed.any():
        return numbers.astype("float64")
    mixed = numbers.astype(object)
    mixed[unparsed] = original[unparsed]
    return mixed
