"""Booleans and timestamps in an ONNX version: runway's BooleanEncoder and DatetimeParts as ONNX ops.

Both are plain arithmetic, so the graph does it and every runtime feeds the
same thing: a boolean column as float64 1.0/0.0/NaN (what ``BooleanEncoder``
gives; the runtime reads the spellings of :mod:`runway.core.columns.kinds`), a
timestamp as float64 **epoch seconds** (UTC, NaN when missing: the number
``DatetimeParts`` itself starts from), from which the graph derives the parts:

- ``hour``, ``minute``, ``dayofweek`` from whole seconds with int64 ``Mod``
  (Python's floor semantics, so dates before 1970 come out right);
- ``year``, ``month``, ``day`` from the day number by Howard Hinnant's
  ``civil_from_days`` (proleptic Gregorian, as pandas), integers only;
- ``elapsed_days`` as ``(seconds - origin) / 86400`` in float64, the very
  operations scikit-learn's side does, so the value is bit-identical.

A missing timestamp gives NaN in every part, for the imputer after it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from runway.errors import LightenRefused

if TYPE_CHECKING:  # onnx is an extra: imported where a graph is built, never at import
    from runway.core.onnx.graph import Graph

# TensorProto's element types (onnx.TensorProto.INT64 / DOUBLE), so this module imports without onnx
INT64, DOUBLE = 7, 11

SECONDS_PER_DAY = 86_400
UNIX_TO_CIVIL = 719_468  # days from 0000-03-01 to 1970-01-01
DAYS_PER_ERA = 146_097  # 400 Gregorian years


def boolean_steps(steps: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """The steps after ``BooleanEncoder`` (the runtime feeds its output: 1.0/0.0/NaN)."""
    if not steps or type(steps[0][1]).__name__ != "BooleanEncoder":
        raise LightenRefused("a boolean block must start with runway's BooleanEncoder")
    return steps[1:]


def datetime_block(
    g: Graph, x: str, steps: list[tuple[str, Any]], width: int
) -> tuple[str, int, list[tuple[str, Any]]]:
    """Epoch seconds [N, k] -> DatetimeParts' [N, k * parts]; returns the steps left after it."""
    if not steps or type(steps[0][1]).__name__ != "DatetimeParts":
        raise LightenRefused("a datetime block must start with runway's DatetimeParts")
    step = steps[0][1]
    parts = list(step.parts)
    origins = np.asarray(step.origins_, dtype=np.float64)
    columns: list[str] = []
    for i in range(width):
        s = g.op("Gather", [x, g.const(np.array([i], dtype=np.int64), "dt_col")], axis=1)
        columns += _parts(g, s, parts, float(origins[i]))
    out = columns[0] if len(columns) == 1 else g.op("Concat", columns, "dt_parts", axis=1)
    return out, width * len(parts), steps[1:]


def _int(g: Graph, value: int) -> str:
    return g.const(np.array(value, dtype=np.int64), "i")


def _floor_div(g: Graph, a: str, b: int) -> str:
    """``a // b`` for int64 (ONNX's integer Div truncates; ``Mod`` floors, as Python)."""
    rest = g.op("Mod", [a, _int(g, b)], fmod=0)
    return g.op("Div", [g.op("Sub", [a, rest]), _int(g, b)])


def _parts(g: Graph, s: str, parts: list[str], origin: float) -> list[str]:
    """One [N, 1] float64 column per part of the epoch seconds ``s`` (NaN where ``s`` is)."""
    missing = g.op("IsNaN", [s])
    nan = g.const(np.array(np.nan, dtype=np.float64), "nan")
    zero = g.const(np.array(0.0, dtype=np.float64), "zero")
    whole = g.op("Cast", [g.op("Floor", [g.op("Where", [missing, zero, s])])], to=INT64)
    days = _floor_div(g, whole, SECONDS_PER_DAY)
    in_day = g.op("Mod", [whole, _int(g, SECONDS_PER_DAY)], fmod=0)
    values: dict[str, str] = {}
    if "hour" in parts:
        values["hour"] = g.op("Div", [in_day, _int(g, 3600)])
    if "minute" in parts:
        values["minute"] = g.op("Div", [g.op("Mod", [in_day, _int(g, 3600)], fmod=0), _int(g, 60)])
    if "dayofweek" in parts:  # 1970-01-01 was a Thursday; Monday is 0
        values["dayofweek"] = g.op("Mod", [g.op("Add", [days, _int(g, 3)]), _int(g, 7)], fmod=0)
    if {"year", "month", "day"} & set(parts):
        values.update(_civil(g, days))
    out = []
    for part in parts:
        if part == "elapsed_days":
            since = g.op("Sub", [s, g.const(np.array(origin, dtype=np.float64), "origin")])
            out.append(g.op("Div", [since, g.const(np.array(86_400.0), "day")]))
            continue
        number = g.op("Cast", [values[part]], to=DOUBLE)
        out.append(g.op("Where", [missing, nan, number], part))
    return out


def _civil(g: Graph, days: str) -> dict[str, str]:
    """Year, month, day of a day number (days since 1970-01-01), all int64."""

    def div(a: str, b: int) -> str:  # a >= 0 here: truncation is floor
        return g.op("Div", [a, _int(g, b)])

    def mul(a: str, b: int) -> str:
        return g.op("Mul", [a, _int(g, b)])

    z = g.op("Add", [days, _int(g, UNIX_TO_CIVIL)])
    era = _floor_div(g, z, DAYS_PER_ERA)
    doe = g.op("Sub", [z, mul(era, DAYS_PER_ERA)])  # [0, 146096]
    yoe_num = g.op("Sub", [doe, div(doe, 1460)])
    yoe_num = g.op("Add", [yoe_num, div(doe, 36524)])
    yoe = div(g.op("Sub", [yoe_num, div(doe, 146096)]), 365)  # [0, 399]
    start = g.op("Add", [mul(yoe, 365), div(yoe, 4)])
    doy = g.op("Sub", [doe, g.op("Sub", [start, div(yoe, 100)])])  # [0, 365], from March 1
    mp = div(g.op("Add", [mul(doy, 5), _int(g, 2)]), 153)  # [0, 11], March is 0
    day = g.op(
        "Add", [g.op("Sub", [doy, div(g.op("Add", [mul(mp, 153), _int(g, 2)]), 5)]), _int(g, 1)]
    )
    before_march = g.op("Less", [mp, _int(g, 10)])
    month = g.op("Add", [mp, g.op("Where", [before_march, _int(g, 3), _int(g, -9)])])
    january_or_february = g.op("Cast", [g.op("LessOrEqual", [month, _int(g, 2)])], to=INT64)
    year = g.op("Add", [g.op("Add", [yoe, mul(era, 400)]), january_or_february])
    return {"year": year, "month": month, "day": day}
