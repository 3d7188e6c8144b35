"""A True/False column declared numeric is refused before training (issue 25, 13).

Accepted, it trained a model that rejected every row at scoring ("expected a
number, got text 'False'").
"""

from __future__ import annotations

import pytest
import yaml

from runway.cli import main
from runway.core.training.data import load_dataset, prepare
from runway.core.training.spec import spec_from_dict
from runway.errors import DataError
from tests.helpers import delivery_frame, delivery_spec

FEATURES = {
    "distance_km": "numeric",
    "items": "numeric",
    "express": "numeric",  # True/False: a boolean
    "zone": "categorical",
}


@pytest.mark.parametrize("gaps", [False, True])
def test_spec_check_refuses_true_false_declared_numeric(tmp_path, capsys, gaps):
    data = tmp_path / "delivery.csv"
    delivery_frame(120, seed=2, boolean_gaps=gaps).to_csv(data, index=False)
    spec = delivery_spec(data)
    spec["data"] = {"source": str(data), "target": "minutes", "features": FEATURES}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))

    code = main(["spec", "check", str(tmp_path / "spec.yaml")])

    err = capsys.readouterr().err
    assert code != 0
    assert "'express'" in err and "boolean" in err, err
    assert "Traceback" not in err


def test_training_refuses_it_too(tmp_path):
    data = tmp_path / "delivery.csv"
    delivery_frame(120, seed=2).to_parquet(data.with_suffix(".parquet"))
    spec = delivery_spec(data.with_suffix(".parquet"))
    spec["data"] = {"source": str(data.with_suffix(".parquet")), "target": "minutes"}
    spec["data"]["features"] = FEATURES
    parsed = spec_from_dict(spec)
    with pytest.raises(DataError, match=r"'express'.*declare it boolean"):
        prepare(parsed, load_dataset(parsed.data))


def test_numbers_declared_numeric_still_pass(tmp_path):
    data = tmp_path / "delivery.csv"
    delivery_frame(120, seed=2).to_csv(data, index=False)
    spec = delivery_spec(data)
    spec["data"] = {"source": str(data), "target": "minutes"}
    spec["data"]["features"] = {k: v for k, v in FEATURES.items() if k != "express"}
    parsed = spec_from_dict(spec)
    assert prepare(parsed, load_dataset(parsed.data)).numeric == ["distance_km", "items"]
