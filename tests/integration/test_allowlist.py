"""The checked-in skops allow-list is exactly what runway's pipelines hold today.

Regenerates it from every preprocessing option and catalog estimator (as
`make allowlist` does) and compares: a scikit-learn, numpy or skops upgrade
that changes the types a model holds fails here, so widening the list is a
reviewed change, never a silent one.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_the_allow_list_matches_what_runway_builds():
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "skops_allowlist.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "is up to date" in result.stdout
