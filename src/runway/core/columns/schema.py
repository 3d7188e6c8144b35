"""The data contract as a typed, versioned model: what ``contract/contract.json`` holds.

One :class:`DataContract` per model version, written at training time
(:func:`runway.core.columns.contract.infer_contract`) and read back by every
layer that meets data: gates, serving (checks, canonical body, OpenAPI, cache),
batch and Spark scoring, monitoring, the ONNX twin and its edge bundle. It is
read once, where a version is loaded, and travels as this model from there.

Versions: ``version`` is the file's schema version. 1 (the first format) had no
``source_dtype`` and no ``required``, and called a boolean column categorical;
2 (:data:`CONTRACT_VERSION`, written today) records both and the four kinds.
Older files read as they are, nothing rewritten: the derived attributes
(:attr:`ColumnContract.effective_kind`, :attr:`~ColumnContract.optional`,
:attr:`~ColumnContract.training_dtype`) give each version's fields their one
meaning, and a file is dumped back exactly as read (only the fields it had, in
its order), so a run's ``contract.json`` and an edge bundle's copy stay the same
bytes. Fields a newer writer adds are ignored. The edge bundle, which cannot
import pydantic, gets this model's JSON Schema (:func:`contract_json_schema`).
"""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any

from pydantic import BaseModel, ConfigDict

from runway.core.columns.kinds import Kind

CONTRACT_VERSION = 2
SCHEMA_FILE = "contract.schema.json"

Label = bool | int | float | str  # a class label as JSON keeps it


class JsonRecord(BaseModel):
    """Frozen; fields a newer writer added are ignored (as the dicts before ignored them)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    def to_json_dict(self) -> dict[str, object]:
        """The document as written: only the fields set, in the model's order."""
        return self.model_dump(exclude_unset=True)


class ColumnContract(JsonRecord):
    """One feature column as training saw it: its kind, dtypes, missing values, range, levels."""

    kind: Kind
    dtype: str | None = None  # the dtype the model sees
    source_dtype: str | None = None  # the dtype the data had (version 2)
    missing_rate: float | None = None
    nullable: bool | None = None
    required: bool | None = None  # version 2; version 1 says nullable only
    min: float | str | None = None  # numeric: a number; datetime: ISO text
    max: float | str | None = None
    integer: bool | None = None  # numeric: every training value was whole
    true_rate: float | None = None  # boolean
    categories: list[str] | None = None  # categorical: every level, up to the cap
    n_categories: int | None = None
    categories_truncated: bool | None = None

    @cached_property
    def training_dtype(self) -> str:
        """The column's dtype in the training data (the model may see it as float64)."""
        return str(self.source_dtype if self.source_dtype is not None else self.dtype or "")

    @cached_property
    def effective_kind(self) -> Kind:
        """The kind checks apply: a version-1 boolean was recorded as categorical."""
        if self.kind == "categorical" and self.training_dtype == "bool":
            return "boolean"
        return self.kind

    @cached_property
    def optional(self) -> bool:
        """The one definition of optional: the column had missing values in training."""
        return not self.required if self.required is not None else bool(self.nullable)

    @cached_property
    def known_levels(self) -> frozenset[str] | None:
        """Every level as a set, or None when the list is partial or absent (unverifiable)."""
        if not self.categories or self.categories_truncated:
            return None
        return frozenset(self.categories)


REQUIRED = "required"
OPTIONAL = "optional (may be left out)"


def requirement(optional: bool, missing_refused: bool = False) -> str:
    """What a request must do about one column, in the same words on every page and report.

    A column with missing values in training is optional: a request may leave it
    out and every row scores it as missing. Under an input policy that refuses
    missing values, leaving it out rejects every row, so it is required there.
    """
    if not optional:
        return REQUIRED
    return REQUIRED + " (the input policy refuses missing values)" if missing_refused else OPTIONAL


class TargetInfo(JsonRecord):
    """A classification target: its labels, their names, the positive class of a binary one."""

    classes: list[Label] | None = None
    class_names: list[str] | None = None
    positive_class: Label | None = None


class DataContract(JsonRecord):
    """The data contract of a model version (``contract/contract.json``)."""

    version: int = 1  # the schema version; a file without one is of the first format
    n_rows: int | None = None
    columns: dict[str, ColumnContract]
    target: TargetInfo | None = None

    @classmethod
    def from_json(cls, text: str | bytes) -> DataContract:
        """A contract from its file's text (any version)."""
        return cls.model_validate_json(text)

    def to_json(self) -> str:
        """The file's text, as runway has always written it (two-space indent)."""
        return json.dumps(self.to_json_dict(), indent=2)

    @property
    def names(self) -> list[str]:
        """The feature columns, in the contract's order."""
        return list(self.columns)


def contract_json_schema() -> dict[str, Any]:
    """The JSON Schema of ``contract.json`` (written beside the edge bundle's ``predict.py``)."""
    schema = DataContract.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["description"] = (
        f"runway's data contract (contract.json), schema version {CONTRACT_VERSION}; "
        "files of version 1 validate too"
    )
    return schema
