"""Every test here gets its own MLflow store (tests/conftest.py ``mlflow_store``)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _own_store(mlflow_store: str) -> str:
    return mlflow_store
