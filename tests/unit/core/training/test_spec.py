from __future__ import annotations

from pathlib import Path

import pytest

from runway.core.training.spec import ExperimentSpec, load_spec, parse_overrides, spec_schema
from runway.errors import SpecError
from tests.conftest import EXPERIMENTS
from tests.helpers import write_spec

SHIPPED = sorted(EXPERIMENTS.glob("*.yaml"))


def test_at_least_three_specs_ship_covering_both_tasks_and_a_csv():
    specs = [load_spec(p) for p in SHIPPED]
    assert len(specs) >= 3
    assert {s.task for s in specs} == {"classification", "regression"}
    assert any(s.data.source.endswith(".csv") for s in specs)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_specs_validate(path: Path):
    spec = load_spec(path)
    assert spec.primary_metric.direction in {"maximize", "minimize"}
    assert spec.primary_metric.name in spec.metrics


def _error(path: Path, **overrides) -> str:
    with pytest.raises(SpecError) as info:
        load_spec(path, overrides or None)
    return str(info.value)


def test_typo_in_estimator_param_names_file_field_and_suggestion(tmp_path):
    spec = write_spec(
        tmp_path / "x.yaml",
        estimator={"name": "RandomForestClassifier", "params": {"max_depht": 3}},
    )
    assert _error(spec) == (
        f"{spec}: estimator.params.max_depht: unknown field (did you mean 'max_depth'?)"
    )


def test_unknown_field_anywhere_is_refused(tmp_path):
    spec = write_spec(tmp_path / "x.yaml", split={"holdout": 0.2, "cv_fold": 3})
    assert _error(spec) == f"{spec}: split.cv_fold: unknown field"
    spec = write_spec(tmp_path / "y.yaml", colour="blue")
    assert _error(spec) == f"{spec}: colour: unknown field"


def test_missing_required_field(tmp_path):
    spec = write_spec(tmp_path / "x.yaml", data={"source": "sklearn:iris"})
    assert _error(spec) == f"{spec}: data.target: required field missing"


def test_estimator_not_on_allow_list(tmp_path):
    spec = write_spec(tmp_path / "x.yaml", estimator={"name": "MLPClassifier"})
    message = _error(spec)
    assert message.startswith(f"{spec}: estimator.name: 'MLPClassifier' is not on the allow-list")
    assert "RandomForestClassifier" in message


def test_estimator_for_the_wrong_task(tmp_path):
    spec = write_spec(tmp_path / "x.yaml", estimator={"name": "Ridge"})
    assert "Ridge is a regression estimator, task is classification" in _error(spec)


def test_invalid_param_value_names_the_param(tmp_path):
    spec = write_spec(
        tmp_path / "x.yaml",
        estimator={"name": "RandomForestClassifier", "params": {"n_estimators": -3}},
    )
    message = _error(spec)
    assert message.startswith(f"{spec}: estimator.params.n_estimators: ")
    assert "-3" in message


def test_metric_checks(tmp_path):
    spec = write_spec(tmp_path / "a.yaml", metrics=["rmse"], primary_metric={"name": "rmse"})
    assert "metrics.0: 'rmse' is a regression metric" in _error(spec)
    spec = write_spec(tmp_path / "b.yaml", metrics=["accuracy"], primary_metric={"name": "roc_auc"})
    assert "primary_metric.name: 'roc_auc' must also be listed in metrics" in _error(spec)
    spec = write_spec(
        tmp_path / "c.yaml", primary_metric={"name": "roc_auc", "direction": "minimize"}
    )
    assert "primary_metric.direction: 'roc_auc' is better when it is maximized" in _error(spec)
    spec = write_spec(tmp_path / "d.yaml", metrics=["acuracy"], primary_metric={"name": "acuracy"})
    assert "unknown metric 'acuracy' (did you mean 'accuracy'?)" in _error(spec)


def test_direction_defaults_to_the_metrics_natural_one(tmp_path):
    spec = load_spec(
        write_spec(
            tmp_path / "x.yaml",
            task="regression",
            data={"source": "sklearn:diabetes", "target": "target"},
            estimator={"name": "Ridge"},
            metrics=["r2", "rmse"],
            primary_metric={"name": "rmse"},
        )
    )
    assert spec.primary_metric.direction == "minimize"


def test_data_source_checks(tmp_path):
    spec = write_spec(tmp_path / "a.yaml", data={"source": "data/x.xlsx", "target": "y"})
    assert "data.source: expected a path ending in .csv, .parquet or .pq" in _error(spec)
    spec = write_spec(tmp_path / "b.yaml", data={"source": "sklearn:mnist", "target": "y"})
    assert "data.source: unknown scikit-learn dataset 'mnist'" in _error(spec)
    spec = write_spec(
        tmp_path / "c.yaml", data={"source": "a.csv", "target": "y", "features": "all"}
    )
    assert "data.features: expected 'infer' or a mapping" in _error(spec)
    spec = write_spec(
        tmp_path / "d.yaml", data={"source": "a.csv", "target": "y", "features": {"x": "text"}}
    )
    assert (
        "data.features.x: Input should be 'numeric', 'boolean', 'categorical' or 'datetime'"
        in _error(spec)
    )
    spec = write_spec(
        tmp_path / "e.yaml", data={"source": "a.csv", "target": "y", "features": {"y": "numeric"}}
    )
    assert "data.features.y: the target cannot be a feature" in _error(spec)


def test_overrides_are_applied_and_validated(tmp_path):
    path = write_spec(tmp_path / "x.yaml")
    spec = load_spec(
        path,
        parse_overrides(["estimator.params.C=0.5", "split.seed=9", "tags.owner=me"]),
    )
    assert spec.estimator.params == {"max_iter": 500, "C": 0.5}
    assert spec.split.seed == 9
    assert spec.tags == {"owner": "me"}
    assert "split.seed: Input should be a valid integer" in _error(path, **{"split.seed": "x"})
    assert "estimator.params.max_itr: unknown field" in _error(
        path, **parse_overrides(["estimator.params.max_itr=5"])
    )
    with pytest.raises(SpecError, match=r"expected key\.path=value"):
        parse_overrides(["split.seed"])


def test_broken_files(tmp_path):
    assert _error(tmp_path / "nope.yaml") == f"{tmp_path / 'nope.yaml'}: spec file not found"
    bad = tmp_path / "bad.yaml"
    bad.write_text("experiment: [unclosed\n")
    assert _error(bad).startswith(f"{bad}: not valid YAML")
    bad.write_text("- a list\n")
    assert _error(bad) == f"{bad}: expected a mapping at the top level"


def test_spec_is_frozen_and_hash_tracks_content(tmp_path):
    path = write_spec(tmp_path / "x.yaml")
    a, b = load_spec(path), load_spec(path)
    assert a.spec_hash() == b.spec_hash()
    assert load_spec(path, {"split.seed": 2}).spec_hash() != a.spec_hash()
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error type is internal
        a.task = "regression"  # type: ignore[misc]


def test_resolved_yaml_round_trips(tmp_path):
    spec = load_spec(write_spec(tmp_path / "x.yaml"))
    again = tmp_path / "again.yaml"
    again.write_text(spec.to_yaml())
    assert load_spec(again) == spec


def test_schema_describes_every_section():
    schema = spec_schema()
    assert schema["title"] == ExperimentSpec.__name__
    assert {"experiment", "task", "data", "estimator", "split", "metrics", "primary_metric"} <= set(
        schema["properties"]
    )
    assert schema["additionalProperties"] is False
