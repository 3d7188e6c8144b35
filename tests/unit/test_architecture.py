"""The package keeps the shape ARCHITECTURE.md describes: layer folders, small modules, short functions.

The import rules themselves are checked by the import contract in ``make lint``
(``lint-imports``, configured in pyproject.toml); these tests keep the sizes
that let a reader hold a module or a function in mind.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "src" / "runway"
LAYERS = ("cli", "serving", "scoring", "monitoring", "team", "jobs", "store", "core")
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_lives_in_a_layer_folder_or_is_a_base_module():
    base = {"__init__.py", "__main__.py", "errors.py", "settings.py", "net.py"}
    for path in _modules():
        relative = path.relative_to(PACKAGE)
        if len(relative.parts) == 1:
            assert relative.name in base, f"{relative}: put it in one of {LAYERS}"
        else:
            assert relative.parts[0] in LAYERS, relative


def test_no_module_is_longer_than_the_limit():
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in _modules()
        if (n := p.read_text().count("\n")) > MAX_MODULE_LINES
    }
    assert not long, f"split these modules (over {MAX_MODULE_LINES} lines): {long}"


def test_no_function_is_longer_than_the_limit():
    long = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(PACKAGE)}:{node.name} ({lines} lines)")
    assert not long, f"split these functions (over {MAX_FUNCTION_LINES} lines): {long}"


def _layer_contracts() -> list[dict]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    return [c for c in config["contracts"] if c["type"] == "layers"]


def _named(contract: dict) -> set[str]:
    return {part.strip() for layer in contract["layers"] for part in layer.split("|")}


def test_the_import_contract_names_every_layer():
    [layers] = [c for c in _layer_contracts() if "containers" not in c]
    assert {f"runway.{layer}" for layer in LAYERS} <= _named(layers)


def test_core_is_four_rooms_and_the_room_contract_names_every_core_module():
    """Every core module sits in a room or is one of the shared modules the rooms stand on."""
    [rooms] = [c for c in _layer_contracts() if c.get("containers") == ["runway.core"]]
    named = _named(rooms)
    assert {"columns", "training", "governance", "onnx"} <= named
    core = PACKAGE / "core"
    # the alias module keeps versions logged before the rooms loadable; it holds no code
    aliases = {"__init__", "transformers", "onnx_model"}
    top = {p.stem for p in core.iterdir() if p.suffix == ".py"} - aliases
    folders = {p.name for p in core.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == {"columns", "training", "governance", "onnx"}
    assert top | folders == named, f"core modules outside the room contract: {top - named}"


CORE_WITHOUT_ONNX = """
import importlib, pkgutil, sys
sys.modules["onnx"] = None  # a base install: the onnx extra is absent
sys.modules["skl2onnx"] = None
import runway.core
needs_extra = {"runway.core.onnx.graph", "runway.core.onnx.convert"}
names = [m.name for m in pkgutil.walk_packages(runway.core.__path__, "runway.core.")]
for name in names:
    if name not in needs_extra:
        importlib.import_module(name)
for name in needs_extra:
    try:
        importlib.import_module(name)
    except ImportError:
        pass
    else:
        raise SystemExit(f"{name} imported without onnx: the extra is not what it needs")
print(len(names))
"""


def test_a_base_install_imports_every_core_module_but_the_onnx_converter():
    """Without the ``lighten`` extra, all of core but the converter imports (the runtime twin,
    parity and the edge bundle's predict.py need onnxruntime alone)."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", CORE_WITHOUT_ONNX], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) >= 25  # every module was walked, not an empty package


def test_the_endpoint_process_imports_neither_mlflow_nor_scikit_learn():
    """The gateway never runs a model (scikit-learn: ~60 MB) and asks MLflow only in a child
    (:mod:`runway.serving.prepare`; MLflow with its SQL store: ~120 MB for as long as it serves).
    """
    import subprocess
    import sys

    heavy = {"sklearn", "optuna", "skl2onnx", "mlflow", "sqlalchemy", "alembic", "scipy"}
    probe = (
        "import sys, runway.cli, runway.cli.deploy, runway.serving.serve; "
        f"print(sorted({heavy!r} & {{m.split('.')[0] for m in sys.modules}}))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_the_monitor_imports_neither_optuna_nor_scikit_learn():
    """A window that only reports needs neither the sweep (Optuna) nor scikit-learn: retraining
    and the live metric import them when they run (scipy.stats too, for a chi-square)."""
    import subprocess
    import sys

    heavy = {"optuna", "sklearn", "skl2onnx", "scipy.stats"}
    probe = (
        "import sys, runway.cli.monitor, runway.monitoring.monitor; "
        f"print(sorted({heavy!r} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
