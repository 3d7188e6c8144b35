#!/usr/bin/env python3
"""Score rows with a runway ONNX version using only onnxruntime + numpy (no pandas, no MLflow).

This file is copied as ``predict.py`` into every edge bundle (``runway onnx export``)
and must stay standalone: the standard library, numpy and onnxruntime only.

    python predict.py --csv rows.csv [--model model.onnx] [--contract contract.json] [--proba]
    python predict.py --json rows.json          # [{...}, ...] or JSON lines
    cat rows.jsonl | python predict.py --json -

Each input row is checked against the data contract (runway's contract.json; by
default the copy embedded in the model's metadata), the valid rows are packed into
the model's input tensors and scored; one JSON line per input row is printed:

    {"row": 0, "prediction": 1, "probabilities": {"0": 0.12, "1": 0.88}}
    {"row": 1, "rejected": ["column 'tenure_months': expected an integer, got 2.5"]}

Checks (the same verdicts as runway.core.columns.contract, plus optional ranges):
  * columns: every contract column present; unknown columns rejected (--unknown pass
    to ignore them, e.g. an id column);
  * numeric: a finite number; an integer within the dtype's range when the training
    column was an integer; outside the training [min, max] -> warn|reject|pass
    (--out-of-range, default warn: a "warnings" field, still scored);
  * categorical: text (or a number, compared as str()); a category never seen in
    training is rejected (--unseen pass to let the encoder treat it as unknown);
  * boolean: true/false (True, TRUE, False, FALSE, 1, 0); datetime: an ISO 8601
    text, an offset converted to UTC, a naive time taken as UTC;
  * missing values (CSV: pandas' default NA strings, "" included; JSON: null) are
    passed to the model, which imputes them (or refused if the model cannot).
Exit status: 0 if every row was scored, 3 if some rows were rejected, 2 on usage or
frame-level errors.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import math
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypedDict, cast

import numpy as np
import onnxruntime as ort

META_KEY = "runway.onnx"
# pandas.read_csv's default NA strings: a CSV scored here reads like runway's batch scoring
NA_STRINGS = frozenset(
    {
        "",
        "#N/A",
        "#N/A N/A",
        "#NA",
        "-1.#IND",
        "-1.#QNAN",
        "-NaN",
        "-nan",
        "1.#IND",
        "1.#QNAN",
        "<NA>",
        "N/A",
        "NA",
        "NULL",
        "NaN",
        "None",
        "n/a",
        "nan",
        "null",
    }
)
TRUE_TEXT, FALSE_TEXT = (
    frozenset({"true", "True", "TRUE", "1"}),
    frozenset({"false", "False", "FALSE", "0"}),
)
INT_RANGES = {
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint8": (0, 2**8 - 1),
    "uint16": (0, 2**16 - 1),
    "uint32": (0, 2**32 - 1),
    "uint64": (0, 2**64 - 1),
}


class ColumnEntry(TypedDict, total=False):
    """The fields of one contract.json column read here (contract.schema.json defines them all)."""

    kind: str
    dtype: str
    source_dtype: str
    min: float | None
    max: float | None
    categories: list[str] | None
    categories_truncated: bool | None


class Contract(TypedDict, total=False):
    """The part of contract.json read here: its columns."""

    columns: dict[str, ColumnEntry]


class Model:
    """The twin's session and its metadata (column order, sentinel, outputs)."""

    def __init__(self, path: str, threads: int = 1) -> None:
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        props = self.session.get_modelmeta().custom_metadata_map
        if META_KEY not in props:
            raise SystemExit(f"{path}: not a runway ONNX model (no {META_KEY} metadata)")
        self.meta = json.loads(props[META_KEY])
        self.columns = self.meta["columns"]  # [{name, kind, input, index}]
        self.inputs: dict[str, list[dict[str, Any]]] = {}
        for c in self.columns:
            self.inputs.setdefault(c["input"], []).append(c)
        self.kind_of = {c["name"]: c["kind"] for c in self.columns}

    def tensors(self, rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
        """Checked rows (numeric: float or None; categorical: str or None) -> feeds."""
        sentinel, literal = self.meta["sentinel"], self.meta.get("literal_sentinel")
        n = len(rows)
        feeds: dict[str, np.ndarray] = {}
        for name, cols in self.inputs.items():
            if cols[0]["kind"] != "categorical":  # numbers; booleans 1/0; epoch seconds
                arr = np.empty((n, len(cols)), dtype=np.float64)
                for j, c in enumerate(cols):
                    key = c["name"]
                    for i, r in enumerate(rows):
                        v = r[key]
                        arr[i, j] = math.nan if v is None else v
                if self.meta.get("numeric_nan") == "reject" and np.isnan(arr).any():
                    raise ValueError(
                        "missing numeric value: this model neither imputes nor accepts NaN"
                    )
                feeds[name] = arr
            else:
                block = []
                for r in rows:
                    out = []
                    for c in cols:
                        v = r[c["name"]]
                        if v is None:
                            v = sentinel
                        elif literal is not None and v == sentinel:
                            v = literal
                        out.append(v)
                    block.append(out)
                feeds[name] = np.array(block, dtype=object).astype(str).reshape(n, len(cols))
        return feeds

    def predict(self, rows: list[dict[str, Any]], proba: bool) -> list[dict[str, Any]]:
        """One result per checked row: the prediction and, asked for, the probabilities."""
        outs = self.meta["outputs"]
        feeds = self.tensors(rows)
        if self.meta["task"] == "classification":
            eps = self.meta.get("label_from_proba")
            fetch = proba or bool(eps)
            names = [outs["label"]] + ([outs["probabilities"]] if fetch else [])
            res = self.session.run(names, feeds)
            labels = res[0].ravel().tolist()
            if eps:  # forests: a tie within eps goes to the first class, as in scikit-learn
                p = np.asarray(res[1], dtype=np.float64)
                first = np.argmax(p >= p.max(axis=1, keepdims=True) - eps, axis=1)
                labels = [self.meta["classes"][int(k)] for k in first]
            out = [{"prediction": lab} for lab in labels]
            if proba:
                classes = [str(c) for c in self.meta["classes"]]
                for o, p in zip(out, np.asarray(res[1], dtype=np.float64), strict=False):
                    o["probabilities"] = {c: float(v) for c, v in zip(classes, p, strict=False)}
            return out
        (values,) = self.session.run([outs["value"]], feeds)
        return [{"prediction": float(v)} for v in np.asarray(values, dtype=np.float64).ravel()]


# ----------------------------------------------------------------------------- checks
def _is_missing(v: Any, from_csv: bool) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and v != v:
        return True
    return from_csv and isinstance(v, str) and v in NA_STRINGS


def check_row(
    record: dict[str, Any],
    contract_cols: dict[str, ColumnEntry],
    model_kinds: dict[str, str],
    args: argparse.Namespace,
    from_csv: bool,
    nan_rejected: bool = False,
) -> tuple[dict[str, Any] | None, list[str], list[str]]:
    """(the clean row for the model or None, reasons it was rejected, warnings)."""
    reasons: list[str] = []
    warnings: list[str] = []
    clean: dict[str, Any] = {}
    for name, entry in contract_cols.items():
        if name not in record:
            reasons.append(f"column {name!r}: required, missing from the row")
            continue
        value = record[name]
        kind = entry["kind"]
        if name in model_kinds and model_kinds[name] != kind:
            reasons.append(f"column {name!r}: contract says {kind}, the model {model_kinds[name]}")
            continue
        if _is_missing(value, from_csv):
            if args.missing == "reject":
                reasons.append(f"column {name!r}: missing value")
            elif kind != "categorical" and nan_rejected and name in model_kinds:
                reasons.append(
                    f"column {name!r}: missing value (the model neither imputes nor accepts NaN)"
                )
            clean[name] = None
            continue
        checked: tuple[float | str | None, str | None, str | None] = (
            _number(name, entry, value, args, from_csv)
            if kind == "numeric"
            else _boolean(name, value)
            if kind == "boolean"
            else _timestamp(name, value)
            if kind == "datetime"
            else _category(name, entry, value, args)
        )
        number, reason, warning = checked
        if reason:
            reasons.append(reason)
            continue
        if warning:
            warnings.append(warning)
        clean[name] = number
    return (None if reasons else clean), reasons, warnings


def _number(
    name: str, entry: ColumnEntry, value: Any, args: argparse.Namespace, from_csv: bool
) -> tuple[float | None, str | None, str | None]:
    """(the number, why it is rejected, a warning) for one numeric value."""
    if isinstance(value, bool):
        return None, f"column {name!r}: expected a number, got a boolean", None
    if isinstance(value, str):
        try:
            if not from_csv:
                raise ValueError(value)
            number = float(value.strip())
        except ValueError:
            return None, f"column {name!r}: expected a number, got text {value!r}", None
    elif isinstance(value, (int, float)):
        number = float(value)
    else:
        return None, f"column {name!r}: expected a number", None
    if not math.isfinite(number):
        return None, f"column {name!r}: expected a finite number", None
    source = str(entry.get("source_dtype", entry.get("dtype", "float64"))).lower()
    if source in INT_RANGES:
        if number % 1 != 0:
            return None, f"column {name!r}: expected an integer, got {number:g}", None
        first, last = INT_RANGES[source]
        if not first <= number <= last:
            return None, f"column {name!r}: {number:.0f} is out of range for {source}", None
    low, high = entry.get("min"), entry.get("max")
    outside = low is not None and high is not None and not low <= number <= high
    if args.out_of_range != "pass" and outside:
        message = f"column {name!r}: {number:g} outside the training range [{low:g}, {high:g}]"
        if args.out_of_range == "reject":
            return None, message, None
        return number, None, message
    return number, None, None


def _boolean(name: str, value: Any) -> tuple[float | None, str | None, None]:
    """1.0/0.0 for the spellings runway reads as a boolean (runway.core.columns.kinds)."""
    if isinstance(value, bool) or (isinstance(value, (int, float)) and value in (0, 1)):
        return float(value), None, None
    if isinstance(value, str) and value in TRUE_TEXT | FALSE_TEXT:
        return float(value in TRUE_TEXT), None, None
    return None, f"column {name!r}: expected true or false (or 1/0), got {value!r}", None


def _timestamp(name: str, value: Any) -> tuple[float | None, str | None, None]:
    """Epoch seconds (UTC; an offset is applied, a naive time is UTC) of an ISO 8601 text."""
    try:
        stamp = dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None, f"column {name!r}: expected an ISO 8601 timestamp, got {value!r}", None
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(dt.timezone.utc).replace(tzinfo=None)  # noqa: UP017 (3.9+)
    micros = (stamp - dt.datetime(1970, 1, 1)) // dt.timedelta(microseconds=1)
    return micros / 1e6, None, None  # as DatetimeParts: float64 microseconds / 1e6


def _category(
    name: str, entry: ColumnEntry, value: Any, args: argparse.Namespace
) -> tuple[str | None, str | None, str | None]:
    """(the category as text, why it is rejected, a warning) for one categorical value."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return (
            None,
            f"column {name!r}: expected a category (text), got {type(value).__name__}",
            None,
        )
    text = value if isinstance(value, str) else str(value)
    known = entry.get("categories") or []
    if (
        args.unseen == "reject"
        and known
        and not entry.get("categories_truncated")
        and text not in known
    ):
        shown = ", ".join(map(repr, known[:10])) + (" ..." if len(known) > 10 else "")
        return (
            None,
            f"column {name!r}: category {text!r} never seen in training; expected one of {shown}",
            None,
        )
    return text, None, None


# ----------------------------------------------------------------------------- input
def read_rows(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[str], bool]:
    """The input rows, the column names seen, and whether they came from CSV (text values)."""
    if args.csv:
        text = sys.stdin.read() if args.csv == "-" else Path(args.csv).read_text(encoding="utf-8")
        reader = csv.DictReader(io.StringIO(text, newline=""))
        rows: list[dict[str, Any]] = list(reader)
        return rows, list(reader.fieldnames or []), True
    text = sys.stdin.read() if args.json == "-" else Path(args.json).read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        rows = json.loads(text)
    elif stripped.startswith("{") and "\n{" not in stripped:
        obj = json.loads(text)
        rows = obj.get("dataframe_records") or obj.get("rows") or [obj]
    else:
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    names: dict[str, None] = {}
    for r in rows:
        names.update(dict.fromkeys(r))
    return rows, list(names), False


def _parser() -> argparse.ArgumentParser:
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--model", default=str(here / "model.onnx"), help="the ONNX version")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--csv", help="CSV file with a header row ('-' = stdin)")
    src.add_argument(
        "--json", help="JSON list of objects, JSON lines, or {'dataframe_records': [...]}"
    )
    default_contract = here / "contract.json"
    ap.add_argument(
        "--contract",
        default=str(default_contract) if default_contract.is_file() else None,
        help="runway's contract.json (default: the bundle's, else the one in the model)",
    )
    ap.add_argument("--proba", action="store_true", help="also print class probabilities")
    ap.add_argument("--unknown", choices=["reject", "pass"], default="reject")
    ap.add_argument("--unseen", choices=["reject", "pass"], default="reject")
    ap.add_argument("--missing", choices=["pass", "reject"], default="pass")
    ap.add_argument("--out-of-range", choices=["warn", "reject", "pass"], default="warn")
    ap.add_argument("--batch", type=int, default=1024)
    return ap


def _contract(args: argparse.Namespace, model: Model) -> Contract:
    if args.contract:
        return cast(Contract, json.loads(Path(args.contract).read_text(encoding="utf-8")))
    embedded = model.meta.get("contract")
    if embedded is None:  # no contract: kinds only, no ranges or categories
        return Contract(columns={c["name"]: ColumnEntry(kind=c["kind"]) for c in model.columns})
    return cast(Contract, dict(embedded))


def main(argv: Iterable[str] | None = None) -> int:
    """Check and score the rows; print one JSON line per row; 0, 2 (usage) or 3 (rejects)."""
    args = _parser().parse_args(list(argv) if argv is not None else None)
    model = Model(args.model)
    ccols = _contract(args, model)["columns"]
    missing_model = [c["name"] for c in model.columns if c["name"] not in ccols]
    if missing_model:
        print(f"error: the contract lacks model column(s) {missing_model}", file=sys.stderr)
        return 2

    rows, names, from_csv = read_rows(args)
    absent = [c for c in ccols if c not in names]
    unknown = [c for c in names if c not in ccols]
    if absent or (unknown and args.unknown == "reject"):
        what = (
            f"column {absent[0]!r}: required, missing from the input"
            if absent
            else f"column {unknown[0]!r}: unknown; expected only {', '.join(ccols)}"
        )
        print(json.dumps({"error": what}))
        return 2

    results: list[dict[str, Any] | None] = [None] * len(rows)
    batch: list[tuple[int, dict[str, Any], list[str]]] = []

    def flush() -> None:
        if not batch:
            return
        try:
            preds = model.predict([b[1] for b in batch], args.proba)
        except ValueError as e:  # e.g. NaN for a model that cannot take it
            preds = [{"rejected": [str(e)]} for _ in batch]
        for (i, _, warns), p in zip(batch, preds, strict=False):
            results[i] = {"row": i, **p, **({"warnings": warns} if warns else {})}
        batch.clear()

    for i, record in enumerate(rows):
        clean, reasons, warns = check_row(
            record, ccols, model.kind_of, args, from_csv, model.meta.get("numeric_nan") == "reject"
        )
        if clean is None:
            results[i] = {"row": i, "rejected": reasons}
            continue
        batch.append((i, clean, warns))
        if len(batch) >= args.batch:
            flush()
    flush()
    out = sys.stdout
    for r in results:
        out.write(json.dumps(r) + "\n")
    return 3 if any("rejected" in r for r in results if r) else 0


if __name__ == "__main__":
    sys.exit(main())
