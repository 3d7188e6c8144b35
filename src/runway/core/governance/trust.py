"""Which model folders runway will load: its own allow-list, checked without executing anything.

A model folder (as MLflow downloads it) is judged from its files alone: the
``MLmodel`` YAML (read with ``yaml.safe_load``) and the type names inside the
skops file (``schema.json`` read with ``zipfile`` and ``json``). Nothing from
the folder is imported, constructed or called, so a hostile folder can only
make this module say no.

The authority is runway's allow-list (:data:`ALLOWLIST_FILE`, one type name a
line), never the ``skops_trusted_types`` the folder's own MLmodel declares:
whoever can write the artifact can write that list too. The list is generated
from the pipelines runway builds (``scripts/skops_allowlist.py``) and checked
in; ``tests/integration/test_allowlist.py`` regenerates it, so a scikit-learn,
numpy or skops upgrade that changes it is a reviewed change.

Pickle and cloudpickle (and anything else that runs code on load: custom pyfunc
models, ``code`` directories) cannot be inspected; they are refused unless the
caller says they are allowed (``RUNWAY_ALLOW_PICKLE_MODELS``). The one ``code``
directory accepted is the one runway ships in every model it logs
(:data:`MODEL_CODE_FILES`: its transformers and what they import, so a plain
MLflow target can load the model without runway): exactly those files, each
byte-equal (SHA-256) to the installed runway's own copy, at MLflow's ``code``.

The one custom pyfunc runway vouches for is its own ONNX version (``runway
onnx convert``): ``python_function`` only, loaded by :mod:`runway.core.onnx.model`,
the files MLflow writes plus ``data/twin/model.onnx`` and ``twin.json``, and a
``model.onnx`` whose SHA-256 is the one recorded on the version when the twin
was checked against its source (the caller passes it; without it, refused).
"""

from __future__ import annotations

import functools
import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from runway.core.onnx import model as onnx_model

ALLOWLIST_FILE = Path(__file__).with_name("skops_types.txt")
SKOPS_FILE = "model.skops"
FLAVORS = frozenset({"python_function", "sklearn"})
# What `mlflow.sklearn.log_model` writes, plus what a registry download adds.
EXPECTED_FILES = frozenset(
    {
        "MLmodel",
        SKOPS_FILE,
        "conda.yaml",
        "python_env.yaml",
        "requirements.txt",
        "input_example.json",
        "serving_input_example.json",
        "registered_model_meta",
    }
)
TWIN_LOADER = onnx_model.__name__
# twins logged before core had rooms name the alias module (runway/core/onnx_model.py)
TWIN_LOADERS = frozenset({TWIN_LOADER, "runway.core.onnx_model"})
TWIN_DATA = f"data/{onnx_model.DATA_DIR}"
TWIN_ONNX = f"{TWIN_DATA}/{onnx_model.ONNX_FILE}"
TWIN_RECORD = f"{TWIN_DATA}/{onnx_model.TWIN_FILE}"
TWIN_FILES = (EXPECTED_FILES - {SKOPS_FILE}) | {TWIN_ONNX, TWIN_RECORD}
CODE_DIR = "code"  # where MLflow copies a model's code_paths (its default, the only one accepted)
# runway's transformers and every module they import (each imports only numpy, pandas,
# scikit-learn and these): the code a logged model carries so it loads without runway
MODEL_CODE_FILES = (
    "runway/__init__.py",
    "runway/core/__init__.py",
    "runway/core/columns/__init__.py",
    "runway/core/columns/kinds.py",
    "runway/core/training/__init__.py",
    "runway/core/training/transformers.py",
)
PACKAGE_PARENT = Path(__file__).resolve().parents[3]  # the folder holding the installed runway/
MAX_TOTAL_BYTES = 4 * 1024**3  # uncompressed size of the skops file's members
MAX_SCHEMA_BYTES = 256 * 1024**2
SHOWN = 8  # offending names listed in a message


@dataclass(frozen=True)
class Verdict:
    """What the inspection found: ``problems`` (empty: trusted) and whether it runs code."""

    problems: tuple[str, ...]
    runs_code: bool = False  # pickle-like: trusted only because the caller allows it

    @property
    def trusted(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems


class SkopsFileError(ValueError):
    """Not a readable skops file (or a hostile one: too big, nested too deep)."""


@functools.cache
def allowed_types() -> frozenset[str]:
    """Every type a runway model's skops file may hold (comments and blank lines skipped)."""
    lines = ALLOWLIST_FILE.read_text().splitlines()
    return frozenset(s for line in lines if (s := line.split("#", 1)[0].strip()))


def read_schema(path: Path) -> Any:
    """``schema.json`` of a skops file, size-checked first; no other member is read."""
    try:
        with zipfile.ZipFile(path) as archive:
            total = sum(info.file_size for info in archive.infolist())
            if total > MAX_TOTAL_BYTES:
                raise SkopsFileError(f"uncompressed size {total} bytes is over {MAX_TOTAL_BYTES}")
            info = archive.getinfo("schema.json")
            if info.file_size > MAX_SCHEMA_BYTES:
                raise SkopsFileError(f"schema.json is {info.file_size} bytes")
            raw = archive.read(info)
    except (zipfile.BadZipFile, KeyError, OSError, EOFError) as exc:
        raise SkopsFileError(f"not a skops file: {exc}") from None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise SkopsFileError(f"schema.json unreadable: {type(exc).__name__}") from None


def types_from_schema(schema: Any) -> set[str]:
    """Every type name a skops load of ``schema`` would import (iterative: no recursion limit).

    Names are the ones skops audits: ``<__module__>.<__class__>`` of every node
    but a JSON literal, ``<module>.<Class>.<method>`` for a bound method and
    ``numpy.random.<name>`` for a random generator's bit generator. Children of
    every node are walked, JSON literals included, so nothing hides below one.
    """
    found: set[str] = set()
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        loader = node.get("__loader__")
        if loader is not None and loader != "JsonNode":
            name = f"{node.get('__module__')}.{node.get('__class__')}"
            found.add(name)
            content = node.get("content")
            if loader == "MethodNode" and isinstance(content, dict):
                found.add(f"{name}.{content.get('func')}")
            if loader == "RandomGeneratorNode":
                found.add(f"numpy.random.{_bit_generator(content)}")
        stack.extend(v for v in node.values() if isinstance(v, (dict, list)))
    return found


def _bit_generator(content: Any) -> str:
    try:
        name = json.loads(content["bit_generator"]["content"]["bit_generator"]["content"])
    except (KeyError, TypeError, ValueError):
        return "<unreadable bit generator>"
    return name if isinstance(name, str) else "<unreadable bit generator>"


def types_in_skops(path: Path) -> set[str]:
    """The type names in a skops file, read without skops (and without running anything)."""
    return types_from_schema(read_schema(path))


def inspect_model_dir(
    path: Path, allow_pickle: bool = False, onnx_sha256: str | None = None
) -> Verdict:
    """Whether runway may load the MLflow model folder at ``path``, and why not.

    Accepted: the two flavors ``mlflow.sklearn`` writes (``python_function``
    loading through ``mlflow.sklearn``, ``sklearn`` serialized with skops), no
    ``code`` directory but runway's own (:func:`code_dir_problems`), no files
    beyond the ones MLflow writes, and every type
    named in MLmodel's ``skops_trusted_types`` and in the skops file on
    runway's allow-list. A model that runs code on load is accepted only with
    ``allow_pickle`` (and marked ``runs_code``). An ONNX version is judged by
    :func:`twin_problems` against ``onnx_sha256``, the hash recorded for it.
    """
    try:
        mlmodel = yaml.safe_load((path / "MLmodel").read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        return Verdict((f"MLmodel unreadable: {type(exc).__name__}",))
    flavors = mlmodel.get("flavors") if isinstance(mlmodel, dict) else None
    if not isinstance(flavors, dict):
        return Verdict(("MLmodel has no flavors",))
    if not all(isinstance(conf, dict) for conf in flavors.values()):
        return Verdict(("a flavor in MLmodel is not a mapping",))
    linked = outside_links(path)
    if linked:
        return Verdict((f"links the loader would follow: {_names(linked)}",))
    if (flavors.get("python_function") or {}).get("loader_module") in TWIN_LOADERS:
        return Verdict(tuple(twin_problems(path, flavors, onnx_sha256)))
    code = [*_runs_code(flavors), *code_dir_problems(path, flavors)]
    if code and allow_pickle:
        return Verdict((), runs_code=True)
    problems = [*code, *_flavor_problems(flavors)]
    files = {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()}
    if _code_keys(flavors) == {CODE_DIR}:  # judged file by file by code_dir_problems
        files = {f for f in files if not f.startswith(f"{CODE_DIR}/")}
    unexpected = sorted(files - EXPECTED_FILES)
    if unexpected:
        problems.append(f"unexpected files {_names(unexpected)}")
    allowed = allowed_types()
    sklearn_flavor = flavors.get("sklearn") or {}
    declared = sklearn_flavor.get("skops_trusted_types") or []
    if not isinstance(declared, list):
        declared = [str(declared)]
    extra = sorted({str(t) for t in declared} - allowed)
    if extra:
        problems.append(f"MLmodel trusts types off runway's allow-list: {_names(extra)}")
    if SKOPS_FILE in files:
        try:
            foreign = sorted(types_in_skops(path / SKOPS_FILE) - allowed)
        except SkopsFileError as exc:
            problems.append(f"{SKOPS_FILE}: {exc}")
        else:
            if foreign:
                problems.append(
                    f"{SKOPS_FILE} holds types off runway's allow-list: {_names(foreign)}"
                )
    return Verdict(tuple(problems))


def twin_problems(path: Path, flavors: dict[str, Any], onnx_sha256: str | None) -> list[str]:
    """Why a folder that says it is runway's ONNX version is not one runway vouches for."""
    problems = []
    pyfunc = flavors.get("python_function") or {}
    if set(flavors) != {"python_function"}:
        problems.append(f"an ONNX version has flavors {sorted(map(str, flavors))}")
    problems += key_problems("python_function", pyfunc, TWIN_PYFUNC_KEYS)
    if pyfunc.get("code") or "python_model" in pyfunc:
        problems.append("an ONNX version with a code directory or a pickled python_model")
    if pyfunc.get("data") != TWIN_DATA or pyfunc.get("predict_fn", "predict") != "predict":
        problems.append(f"an ONNX version whose data is not {TWIN_DATA}")
    files = {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()}
    unexpected = sorted(files - TWIN_FILES)
    if unexpected:
        problems.append(f"unexpected files {_names(unexpected)}")
    if TWIN_ONNX not in files or TWIN_RECORD not in files:
        return [*problems, f"an ONNX version without {TWIN_ONNX} and {TWIN_RECORD}"]
    actual = onnx_model.sha256_file(path / TWIN_ONNX)
    if not onnx_sha256:
        problems.append(
            "no SHA-256 is recorded for its model.onnx (not made by runway onnx convert)"
        )
    elif actual != onnx_sha256:
        problems.append(
            f"{TWIN_ONNX} has SHA-256 {actual[:16]}..., not the {onnx_sha256[:16]}... "
            "recorded when the twin was checked (the file was changed)"
        )
    try:
        recorded = json.loads((path / TWIN_RECORD).read_text()).get("onnx_sha256")
    except (OSError, ValueError, AttributeError):
        recorded = None
    if recorded != actual:
        problems.append(f"{TWIN_RECORD} does not record the SHA-256 of {TWIN_ONNX}")
    return problems


def outside_links(path: Path) -> list[str]:
    """Symbolic links in the folder: a link can make a vouched-for name open any file."""
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_symlink())


def _runs_code(flavors: dict[str, Any]) -> list[str]:
    """Reasons the folder would run code on load (pickle, cloudpickle, custom pyfunc, code dirs)."""
    reasons = []
    pyfunc = flavors.get("python_function") or {}
    sklearn_flavor = flavors.get("sklearn") or {}
    if pyfunc.get("loader_module") not in (None, "mlflow.sklearn") or "python_model" in pyfunc:
        reasons.append(
            f"a custom pyfunc model (loader {pyfunc.get('loader_module')!r}) runs its own code"
        )
    if "sklearn" in flavors:
        # MLflow assumes pickle when the key is missing.
        fmt = sklearn_flavor.get("serialization_format", "pickle")
        if fmt != "skops":
            reasons.append(f"serialized with {fmt!r}, which runs code while loading")
    return reasons


# Every key MLflow's scikit-learn and pyfunc flavors hold in what runway logs; any other
# key (``data``, ``model_config``, ...) could steer the loader to a file of its own.
SKLEARN_PYFUNC_KEYS = frozenset(
    {"env", "loader_module", "model_path", "predict_fn", "python_version", "code"}
)
SKLEARN_KEYS = frozenset(
    {"code", "pickled_model", "serialization_format", "sklearn_version", "skops_trusted_types"}
)
TWIN_PYFUNC_KEYS = frozenset(
    {"code", "data", "env", "loader_module", "python_version", "streamable", "predict_fn"}
)
ENV_FILES = {"conda": "conda.yaml", "virtualenv": "python_env.yaml"}


def key_problems(flavor: str, conf: object, allowed: frozenset[str]) -> list[str]:
    """Keys of a flavor that runway never writes, and an ``env`` that names other files.

    MLflow joins ``python_function.data`` onto the model folder and loads what it names
    (an absolute or ``../`` path wins, and a file there is unpickled): only the keys runway
    writes, with their values' shapes, are vouched for.
    """
    if not isinstance(conf, dict):
        return [f"{flavor} is not a mapping"]
    problems = []
    unknown = sorted(str(k) for k in conf if k not in allowed)
    if unknown:
        problems.append(f"{flavor} has keys runway never writes: {_names(unknown)}")
    env = conf.get("env")
    if env is not None and env != ENV_FILES:
        problems.append(f"{flavor}.env is {str(env)[:120]!r}, expected {ENV_FILES}")
    return problems


def _code_keys(flavors: dict[str, Any]) -> set[str]:
    pyfunc = flavors.get("python_function") or {}
    sklearn_flavor = flavors.get("sklearn") or {}
    return {str(c) for c in (pyfunc.get("code"), sklearn_flavor.get("code")) if c}


@functools.cache
def shipped_code_digests() -> dict[str, str]:
    """SHA-256 of each file runway ships in a model's code directory, from the installed runway."""
    return {
        f"{CODE_DIR}/{name}": hashlib.sha256((PACKAGE_PARENT / name).read_bytes()).hexdigest()
        for name in MODEL_CODE_FILES
    }


def code_dir_problems(path: Path, flavors: dict[str, Any]) -> list[str]:
    """Why the folder's code directory is not exactly runway's own shipped code (empty: none, or it is).

    MLflow puts the code directory first on ``sys.path`` before loading, so any
    file there can shadow a module; nothing but runway's own files, unchanged,
    is accepted, and nothing in the folder is imported to tell.
    """
    keys = _code_keys(flavors)
    if not keys:
        return []
    details = _code_details(path, keys)
    if not details:
        return []
    head = f"a code directory {', '.join(sorted(keys))} puts the model's own modules on sys.path"
    return [head, *details]


def _code_details(path: Path, keys: set[str]) -> list[str]:
    if keys != {CODE_DIR}:
        return [f"only runway's own {CODE_DIR}/ is accepted as a code directory"]
    root = path / CODE_DIR
    if root.is_symlink() or not root.is_dir():
        return [f"{CODE_DIR} is not a directory"]
    expected = shipped_code_digests()
    folders = {Path(name).parent.as_posix() for name in expected} - {"."}
    parents = {p for f in folders for p in [f, *(q.as_posix() for q in Path(f).parents)]}
    entries = {p.relative_to(path).as_posix(): p for p in root.rglob("*")}
    details = []
    links = sorted(name for name, p in entries.items() if p.is_symlink())
    if links:
        details.append(f"symbolic links in {CODE_DIR}/: {_names(links)}")
    foreign = sorted(set(entries) - set(expected) - parents)
    if foreign:
        details.append(f"files that are not runway's in {CODE_DIR}/: {_names(foreign)}")
    missing = sorted(set(expected) - set(entries))
    if missing:
        details.append(f"runway's shipped code lacks {_names(missing)}")
    changed = sorted(
        name
        for name in set(expected) & set(entries)
        if name not in links
        and entries[name].is_file()
        and hashlib.sha256(entries[name].read_bytes()).hexdigest() != expected[name]
    )
    if changed:
        details.append(
            f"{_names(changed)} differ from the installed runway's copy (SHA-256): "
            "changed, or logged by another runway release"
        )
    return details


def _flavor_problems(flavors: dict[str, Any]) -> list[str]:
    problems = []
    if set(flavors) != FLAVORS:
        problems.append(f"flavors {sorted(map(str, flavors))}, expected {sorted(FLAVORS)}")
    pyfunc = flavors.get("python_function") or {}
    sklearn_flavor = flavors.get("sklearn") or {}
    problems += key_problems("python_function", pyfunc, SKLEARN_PYFUNC_KEYS)
    problems += key_problems("sklearn", sklearn_flavor, SKLEARN_KEYS)
    if pyfunc.get("predict_fn", "predict") != "predict":
        problems.append(f"python_function.predict_fn is {pyfunc.get('predict_fn')!r}")
    if pyfunc.get("model_path") != SKOPS_FILE or sklearn_flavor.get("pickled_model") != SKOPS_FILE:
        problems.append(f"the model file is not {SKOPS_FILE}")
    return problems


def _names(names: list[str]) -> str:
    shown = ", ".join(str(n)[:120] for n in names[:SHOWN])
    return shown + (f" (+{len(names) - SHOWN} more)" if len(names) > SHOWN else "")
