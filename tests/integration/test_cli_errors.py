"""Bad input through the CLI: one clear line, non-zero exit, no traceback, no RUNNING run."""

from __future__ import annotations

import subprocess

import mlflow
import numpy as np
import pandas as pd
import pytest

from runway.cli import main
from tests.helpers import write_spec


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {"x": rng.normal(size=30), "c": rng.choice(["a", "b"], 30), "y": np.tile([0, 1, 1], 10)}
    )


def _with_csv(tmp_path, frame, **data):
    frame.to_csv(tmp_path / "rows.csv", index=False)
    return write_spec(
        tmp_path / "s.yaml",
        data={"source": "rows.csv", "target": "y", **data},
        metrics=["accuracy"],
        primary_metric={"name": "accuracy"},
    )


def _text_in_numeric(tmp_path):
    frame = _frame().astype({"x": object})
    frame.loc[4, "x"] = "n/a-ish"
    return _with_csv(tmp_path, frame, features={"x": "numeric", "c": "categorical"})


def _one_sample_class(tmp_path):
    frame = _frame()
    frame.loc[0, "y"] = 7
    return _with_csv(tmp_path, frame)


CASES = {
    "missing data file": (
        lambda p: write_spec(p / "s.yaml", data={"source": "gone.csv", "target": "y"}),
        "gone.csv: data file not found",
    ),
    "absent target": (
        lambda p: _with_csv(p, _frame().rename(columns={"y": "label"})),
        "target column 'y' not found",
    ),
    "text in numeric column": (_text_in_numeric, "column 'x' is numeric but row 4 holds 'n/a-ish'"),
    "estimator not allowed": (
        lambda p: write_spec(p / "s.yaml", estimator={"name": "XGBClassifier"}),
        "estimator.name: 'XGBClassifier' is not on the allow-list",
    ),
    "empty dataset": (lambda p: _with_csv(p, _frame().iloc[:0]), "dataset is empty"),
    "class with one sample": (_one_sample_class, "class 7 has 1 sample"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_ends_with_one_clear_line(case, tmp_path, capsys):
    make, expected = CASES[case]
    spec = make(tmp_path)
    code = main(["train", str(spec)])
    err = capsys.readouterr().err.strip().splitlines()
    problems = [line for line in err if line.startswith("error: ")]
    assert code != 0
    assert len(problems) == 1, err
    assert expected in problems[0]
    assert not any("Traceback" in line for line in err)
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert not [r for r in runs if r.info.status == "RUNNING"]


@pytest.mark.slow
def test_typo_field_through_the_real_command(tmp_path, python):
    spec = write_spec(
        tmp_path / "x.yaml",
        estimator={"name": "RandomForestClassifier", "params": {"max_depht": 4}},
    )
    proc = subprocess.run(
        [python, "-m", "runway", "train", str(spec)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 9  # SpecError
    assert proc.stderr.strip() == (
        f"error: {spec}: estimator.params.max_depht: unknown field (did you mean 'max_depth'?)"
    )
    assert proc.stdout == ""


def test_spec_check_and_schema_commands(tmp_path, capsys):
    spec = write_spec(tmp_path / "s.yaml")
    assert main(["spec", "check", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "spec ok" in out and "data ok" in out and "426 training + 143 holdout rows" in out
    assert main(["spec", "schema"]) == 0
    assert '"primary_metric"' in capsys.readouterr().out


def test_a_spec_without_a_sweep_section_is_told_so(tmp_path, capsys):
    """Issue 29, item 7: not "the search space is empty" (what --trials made of it)."""
    spec = write_spec(tmp_path / "plain.yaml")
    assert main(["sweep", str(spec), "--trials", "3"]) == 9
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert "has no `sweep:` section" in err[0] and "space: {model__C:" in err[0]
    assert "search space is empty" not in err[0]
