"""A command's help, and the CLI's start, import none of the heavy libraries (#31).

Each command imports what it needs when it runs: `runway score --help` must not
pay for Optuna, MLflow or scikit-learn (seconds of imports on a 2-core host).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("optuna", "mlflow", "sklearn", "scipy", "matplotlib", "pyarrow", "uvicorn", "boto3")
PROBE = """
import contextlib, io, sys
sys.argv = ["runway", *sys.argv[1:]]
from runway.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main()
    except SystemExit:
        pass
print(" ".join(m for m in {heavy!r} if m in sys.modules))
"""


@pytest.mark.parametrize(
    "command", [["--help"], ["score", "--help"], ["monitor", "--help"], ["serve", "--help"]]
)
def test_help_imports_no_heavy_library(command):
    probe = PROBE.format(heavy=HEAVY)
    out = subprocess.run(
        [sys.executable, "-c", probe, *command], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == [], f"runway {' '.join(command)} imported {out.stdout}"
