"""Generate data/churn.csv: a synthetic customer-churn table, reproducibly.

Numeric and categorical columns, missing values in both, and a label that
depends on them non-linearly, so preprocessing and model choice both matter.
Same seed, same bytes: a test checks the committed file against this script.

    python scripts/make_churn_data.py [--rows 3000] [--seed 7] [--out data/churn.csv]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd


def make_churn(rows: int = 3000, seed: int = 7) -> pd.DataFrame:
    """The churn table; deterministic in ``rows`` and ``seed``."""
    rng = np.random.default_rng(seed)
    contract = rng.choice(["month-to-month", "one-year", "two-year"], rows, p=[0.55, 0.25, 0.20])
    payment = rng.choice(
        ["card", "bank-transfer", "electronic-check", "mailed-check"],
        rows,
        p=[0.3, 0.25, 0.3, 0.15],
    )
    region = rng.choice(["north", "south", "east", "west"], rows)
    tenure = rng.integers(1, 73, rows)
    monthly = np.round(rng.normal(70, 25, rows).clip(18, 150), 2)
    support_calls = rng.poisson(1.5, rows)
    age = rng.integers(18, 86, rows)

    logit = (
        -1.2
        + 1.6 * (contract == "month-to-month")
        - 1.1 * (contract == "two-year")
        + 0.7 * (payment == "electronic-check")
        - 0.035 * tenure
        + 0.018 * (monthly - 70)
        + 0.45 * np.maximum(support_calls - 2, 0)
        + 0.4 * ((age < 30) & (monthly > 90))
    )
    churned = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)

    frame = pd.DataFrame(
        {
            "customer_id": [f"C{seed:02d}{i:06d}" for i in range(rows)],
            "age": age.astype(float),
            "tenure_months": tenure,
            "monthly_charges": monthly,
            "support_calls": support_calls,
            "contract": contract,
            "payment_method": payment.astype(object),
            "region": region,
            "churned": churned,
        }
    )
    # Missing at random: what real exports look like.
    frame.loc[rng.random(rows) < 0.05, "monthly_charges"] = np.nan
    frame.loc[rng.random(rows) < 0.04, "age"] = np.nan
    frame.loc[rng.random(rows) < 0.06, "payment_method"] = None
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("data/churn.csv"))
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    make_churn(args.rows, args.seed).to_csv(args.out, index=False, lineterminator="\n")
    print(f"wrote {args.out} ({args.rows} rows, seed {args.seed})")


if __name__ == "__main__":
    main()
