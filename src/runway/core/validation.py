"""Validation shared by specs and policies: strict models, one YAML reader, one error format.

Every problem is reported as ``<file>: <field.path>: <what was expected>``.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, NoReturn

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import PydanticCustomError

from runway.errors import SpecError


class Strict(BaseModel):
    """Frozen, and unknown fields are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def fail(path: str, message: str) -> NoReturn:
    """Reject the document at ``path`` (a dotted field path from the top)."""
    raise PydanticCustomError("spec", "{message}", {"path": path, "message": message})


def fail_here(field: str, message: str) -> NoReturn:
    """Reject ``field`` of the model being validated (its own path is added)."""
    raise PydanticCustomError("spec_here", "{message}", {"field": field, "message": message})


def hint(word: str, choices: Any) -> str:
    """`` (did you mean 'x'?)`` when ``word`` is close to one of ``choices``."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def format_validation_error(error: ValidationError, source: str) -> str:
    """One line per problem: ``<source>: <field.path>: <message>``."""
    lines = []
    for err in error.errors(include_url=False):
        ctx = err.get("ctx") or {}
        if err["type"] == "spec":
            path, message = ctx["path"], ctx["message"]
        elif err["type"] == "spec_here":
            path = ".".join(str(p) for p in (*err["loc"], ctx["field"]))
            message = ctx["message"]
        else:
            path = ".".join(str(p) for p in err["loc"]) or "(top level)"
            message = {
                "extra_forbidden": "unknown field",
                "missing": "required field missing",
            }.get(err["type"], err["msg"])
        lines.append(f"{source}: {path}: {message}")
    return "\n".join(lines)


def read_mapping(path: Path, missing: str) -> dict[str, Any]:
    """A YAML file's top-level mapping; errors name the file."""
    if not path.is_file():
        raise SpecError(f"{path}: {missing}")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}".replace("\n", " ")) from exc
    if not isinstance(doc, dict):
        raise SpecError(f"{path}: expected a mapping at the top level")
    return doc
