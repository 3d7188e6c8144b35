"""Every test here gets its own MLflow store (tests/conftest.py ``mlflow_store``)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _own_store(mlflow_store: str) -> str:
    return mlflow_store


@pytest.fixture(scope="session")
def team(tmp_path_factory: pytest.TempPathFactory):
    """The team stack (tests/e2e/team_stack.py), once for every team test module."""
    from tests.e2e.team_stack import team_stack

    yield from team_stack(tmp_path_factory)
