"""Regenerate runway's skops allow-list from the pipelines runway itself builds.

Every preprocessing option and every catalog estimator (with the parameter
variants that change what a fitted model stores) is built the way `runway
train` builds it (spec -> data.prepare -> pipeline.build_pipeline), fitted on
small data, dumped with skops, and the type names in the dump are collected
(runway.core.governance.trust.types_from_schema, cross-checked against skops' own audit).

    python scripts/skops_allowlist.py            # rewrite src/runway/core/governance/skops_types.txt
    python scripts/skops_allowlist.py --check    # exit 1 if the checked-in list differs

The hand-kept section at the end of the file (runway's own transformer types,
``runway.core.training.transformers.*``, one line each) is kept as it is; the generator
leaves runway's own types out of the generated part.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import sys
import tempfile
import warnings
import zipfile
from importlib.metadata import version
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OWN_MARKER = "# --- runway's own types"
PACKAGES = ("numpy", "scikit-learn", "skops")

# Parameter variants that change what a fitted estimator stores (and so its types).
CLASSIFIERS: dict[str, list[dict[str, Any]]] = {
    "LogisticRegression": [{}, {"solver": "liblinear"}, {"class_weight": "balanced"}],
    "RandomForestClassifier": [
        {"n_estimators": 3},
        {"n_estimators": 3, "max_samples": 0.5, "class_weight": "balanced_subsample"},
        {"n_estimators": 3, "oob_score": True},
    ],
    "ExtraTreesClassifier": [{"n_estimators": 3}],
    "GradientBoostingClassifier": [
        {"n_estimators": 3},
        {"n_estimators": 30, "n_iter_no_change": 2},
        {"n_estimators": 3, "loss": "exponential"},
        {"n_estimators": 3, "init": "zero"},
        {"n_estimators": 3, "subsample": 0.5},
    ],
    "HistGradientBoostingClassifier": [
        {"max_iter": 5},
        {"max_iter": 20, "early_stopping": True},
        {"max_iter": 5, "class_weight": "balanced"},
    ],
    "DecisionTreeClassifier": [{}],
    "KNeighborsClassifier": [
        {},
        {"algorithm": "kd_tree"},
        {"algorithm": "ball_tree"},
        {"algorithm": "brute"},
        {"algorithm": "kd_tree", "metric": "manhattan"},
        {"algorithm": "ball_tree", "metric": "chebyshev"},
    ],
    "SVC": [{}, {"probability": True}, {"kernel": "linear"}],
}
REGRESSORS: dict[str, list[dict[str, Any]]] = {
    "LinearRegression": [{}],
    "Ridge": [{}],
    "Lasso": [{}],
    "ElasticNet": [{}],
    "RandomForestRegressor": [{"n_estimators": 3}],
    "ExtraTreesRegressor": [{"n_estimators": 3}],
    "GradientBoostingRegressor": [
        *({"n_estimators": 3, "loss": loss} for loss in ("squared_error", "absolute_error")),
        *({"n_estimators": 3, "loss": loss} for loss in ("huber", "quantile")),
        {"n_estimators": 30, "n_iter_no_change": 2},
    ],
    "HistGradientBoostingRegressor": [
        *({"max_iter": 5, "loss": loss} for loss in ("squared_error", "absolute_error")),
        *({"max_iter": 5, "loss": loss} for loss in ("poisson", "gamma")),
        {"max_iter": 5, "loss": "quantile", "quantile": 0.5},
        {"max_iter": 20, "early_stopping": True},
    ],
    "DecisionTreeRegressor": [{}],
    "KNeighborsRegressor": [{}, {"algorithm": "kd_tree"}, {"algorithm": "ball_tree"}],
    "SVR": [{}],
}
CHURN_FEATURES = {
    "age": "numeric",
    "tenure_months": "numeric",
    "monthly_charges": "numeric",
    "support_calls": "numeric",
    "contract": "categorical",
    "payment_method": "categorical",
    "region": "categorical",
}


def _spec(source: str, target: str, estimator: str, params: dict, **extra: Any) -> dict[str, Any]:
    task = "classification" if estimator in CLASSIFIERS else "regression"
    metric = "accuracy" if task == "classification" else "rmse"
    return {
        "experiment": "allowlist",
        "task": task,
        "data": {"source": source, "target": target, **extra.pop("data", {})},
        "estimator": {"name": estimator, "params": params},
        "split": {"holdout": 0.25, "cv_folds": 2, "seed": 0},
        "metrics": [metric],
        "primary_metric": {"name": metric},
        **extra,
    }


def _data_files(tmp: Path) -> dict[str, str]:
    """churn.csv and copies with a text, a boolean and a numeric target; a table of every kind."""
    import pandas as pd

    sys.path.insert(0, str(REPO))
    from tests.helpers import delivery_frame

    churn = pd.read_csv(REPO / "data" / "churn.csv").drop(columns=["customer_id"]).head(400)
    files = {"churn": churn}
    files["churn_text"] = churn.assign(churned=churn["churned"].map({0: "stay", 1: "leave"}))
    files["churn_bool"] = churn.assign(churned=churn["churned"].astype(bool))
    files["delivery"] = delivery_frame(300, boolean_gaps=True)  # boolean, datetime, many levels
    out = {}
    for name, frame in files.items():
        path = tmp / f"{name}.csv"
        frame.to_csv(path, index=False)
        out[name] = str(path)
    return out


def specs(files: dict[str, str]) -> list[dict[str, Any]]:
    """Every spec the allow-list is collected from."""
    churn = {"features": CHURN_FEATURES}
    out = []
    for impute in ("mean", "median", "most_frequent", "none"):
        for scale in ("standard", "minmax", "robust", "none"):
            pre = {"numeric": {"impute": impute, "scale": scale}}
            out.append(
                _spec(
                    files["churn"],
                    "churned",
                    "HistGradientBoostingClassifier",
                    {"max_iter": 3},
                    data=churn,
                    preprocessing=pre,
                )
            )
    for impute in ("most_frequent", "constant", "none"):
        for encode in ("onehot", "ordinal"):
            for min_frequency in (None, 20):
                cat = {"impute": impute, "encode": encode}
                if min_frequency:
                    cat["min_frequency"] = min_frequency
                pre = {"numeric": {"impute": "median", "scale": "none"}, "categorical": cat}
                out.append(
                    _spec(
                        files["churn"],
                        "churned",
                        "DecisionTreeClassifier",
                        {},
                        data=churn,
                        preprocessing=pre,
                    )
                )
    for name, variants in CLASSIFIERS.items():
        for params in variants:
            out.append(_spec(files["churn"], "churned", name, params, data=churn))
            out.append(_spec("sklearn:wine", "target", name, params))
        out.append(_spec(files["churn_text"], "churned", name, variants[0], data=churn))
        out.append(_spec(files["churn_bool"], "churned", name, variants[0], data=churn))
    for target, name, other in (
        ("minutes", "Ridge", "late"),
        ("late", "LogisticRegression", "minutes"),
    ):
        data = {"drop": [other]}
        cats: list[dict[str, Any]] = [
            {},
            {"encode": "target"},
            {"many_levels": {"encode": "target", "threshold": 10}},
        ]
        for cat in cats:
            pre = {"categorical": cat, "boolean": {"impute": "most_frequent"}}
            out.append(_spec(files["delivery"], target, name, {}, data=data, preprocessing=pre))
    regression = {"features": {k: v for k, v in CHURN_FEATURES.items() if k != "monthly_charges"}}
    for name, variants in REGRESSORS.items():
        for params in variants:
            out.append(_spec(files["churn"], "monthly_charges", name, params, data=regression))
            out.append(_spec("sklearn:diabetes", "target", name, params))
    return out


def collect() -> set[str]:
    """The type names of every generated pipeline's skops dump."""
    import skops.io

    from runway.core.governance.trust import types_from_schema
    from runway.core.training.data import load_dataset, prepare
    from runway.core.training.pipeline import build_pipeline
    from runway.core.training.spec import spec_from_dict

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)  # data.prepare's notes about dropped rows
    found: set[str] = set()
    datasets: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for doc in specs(_data_files(Path(tmp))):
            spec = spec_from_dict(doc)
            key = f"{spec.data.source}:{spec.data.target}:{sorted((spec.data.features or {}).items())}"
            dataset = datasets.setdefault(key, load_dataset(spec.data))
            split = prepare(spec, dataset)
            pipeline = build_pipeline(spec, **split.columns_by_kind())
            try:
                pipeline.fit(split.X_train, split.y_train)
            except ValueError:  # e.g. no imputation before an estimator that takes no NaN
                continue  # a spec runway cannot train holds no types to allow
            dumped = skops.io.dumps(pipeline)
            with zipfile.ZipFile(io.BytesIO(dumped)) as archive:
                names = types_from_schema(json.loads(archive.read("schema.json")))
            # skops' own audit must name nothing the walk missed
            missed = set(skops.io.get_untrusted_types(data=dumped)) - names
            if missed:
                raise SystemExit(f"{doc['estimator']}: the schema walk missed {sorted(missed)}")
            found |= {n for n in names if not n.startswith("runway.")}  # hand-kept
    return found


def render(generated: set[str], own: list[str]) -> str:
    """The allow-list file: header, the generated names, the hand-kept section."""
    versions = " ".join(f"{p}=={version(p)}" for p in PACKAGES)
    head = [
        "# runway's allow-list: the only types a model's skops file may hold (runway.core.governance.trust).",
        "# Generated by `make allowlist` (scripts/skops_allowlist.py) from the pipelines runway builds;",
        "# tests/integration/test_allowlist.py regenerates it and fails on any difference.",
        f"# generated with: {versions}",
    ]
    return "\n".join([*head, *sorted(generated), *own]) + "\n"


def own_section(text: str) -> list[str]:
    """The hand-kept tail of the file, from its marker line on."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(OWN_MARKER)), None)
    if start is None:
        return [f"{OWN_MARKER}: one line each, kept by hand (the generator keeps this section) ---"]
    return lines[start:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    from runway.core.governance.trust import ALLOWLIST_FILE

    current = ALLOWLIST_FILE.read_text() if ALLOWLIST_FILE.exists() else ""
    own = own_section(current)
    own_types = {s for line in own if (s := line.split("#", 1)[0].strip())}
    text = render(collect() - own_types, own)
    if not args.check:
        ALLOWLIST_FILE.write_text(text)
        print(f"wrote {ALLOWLIST_FILE}")
        return 0
    if text == current:
        print(f"{ALLOWLIST_FILE} is up to date")
        return 0
    old, new = set(current.splitlines()), set(text.splitlines())
    print(f"{ALLOWLIST_FILE} is out of date; run `make allowlist` and review the change")
    for line in sorted(old - new):
        print(f"  - {line}")
    for line in sorted(new - old):
        print(f"  + {line}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
