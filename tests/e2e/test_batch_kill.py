"""Issue #30 item 5, "must show": a batch stopped by SIGTERM or SIGKILL at several points
leaves in the prediction log exactly the rows of an output it committed, once.

``runway score`` of a CSV scored in small chunks (so it takes a few seconds), with a
directory log and a SQLite table log; each stop gets its own log. The points are
seen from outside: chunks spooled (the spool folder in this test's TMPDIR fills),
and the output's appearance (its rename, inside the commit).

- SIGTERM while chunks are scored: exit 143, no output, no rejects, no temporary
  file, no spool, nothing logged.
- SIGTERM once the output is there: the commit finishes (output and log rows, both),
  exit 0.
- SIGKILL while chunks are scored: nothing logged; the next run removes the spool
  and the partial output and logs its N rows once.
- SIGKILL once the output is there: the log holds 0 or N rows (the commit is a
  rename then a log write); a rerun with the same ``--scored-at`` holds N, once.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import delivery_frame

pytestmark = pytest.mark.slow

MODEL = "delivery"
ROWS = 6_000
CHUNK = 100  # 60 chunks: the run lasts long enough to be stopped in them
SCORED_AT = "2026-01-02T03:04:05+00:00"


@pytest.fixture(scope="module")
def big(delivery, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("kill") / "big.csv"
    frame = delivery_frame(ROWS, seed=3)
    frame[[c for c in delivery.frame.columns if c not in ("minutes", "late")]].to_csv(
        path, index=False
    )
    return path


def _logs(tmp_path: Path) -> dict[str, str]:
    return {"dir": str(tmp_path / "log"), "sqlite": f"sqlite:///{tmp_path / 'log.db'}"}


class Batch:
    def __init__(self, delivery, big: Path, tmp_path: Path, log: str) -> None:
        self.tmp = tmp_path / "tmp"
        self.tmp.mkdir(exist_ok=True)
        self.out = tmp_path / "out" / "scores.csv"
        self.out.parent.mkdir(exist_ok=True)
        self.log = log
        self.env = delivery.env(RUNWAY_PREDICTION_LOG=log, TMPDIR=str(self.tmp))
        self.args = [sys.executable, "-m", "runway", "-q", "score", MODEL, "--input", str(big)]
        self.args += ["--output", str(self.out), "--chunk-rows", str(CHUNK)]
        self.args += ["--scored-at", SCORED_AT]
        self.cwd = tmp_path

    def start(self) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.args,
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def spooled(self) -> int:
        return sum(len(list(d.glob("*.parquet"))) for d in self.tmp.glob("runway-predlog-*"))

    def logged(self) -> int:
        from runway.store.predlog import PredictionLog

        try:
            return len(PredictionLog(self.log).read(MODEL))
        except Exception:  # no table or folder yet
            return 0

    def leftovers(self) -> list[str]:
        """What a run left beside the output and in its temporary directory."""
        beside = [p.name for p in self.out.parent.iterdir() if p.name.startswith(".")]
        return beside + [p.name for p in self.tmp.iterdir()]

    def stop_when(
        self, ready: Callable[[], bool], signum: int
    ) -> tuple[subprocess.Popen[str], str]:
        proc = self.start()
        deadline = time.monotonic() + 300
        while not ready() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert proc.poll() is None, f"finished before the stop: {proc.communicate()[1][-2000:]}"
        assert ready(), "the point to stop at never came"
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
        return proc, err


@pytest.mark.parametrize("kind", ["dir", "sqlite"])
def test_sigterm_while_scoring_leaves_nothing_and_exits_143(delivery, big, tmp_path, kind):
    batch = Batch(delivery, big, tmp_path, _logs(tmp_path)[kind])
    proc, err = batch.stop_when(lambda: batch.spooled() >= 3, signal.SIGTERM)
    assert proc.returncode == 143, err[-2000:]
    assert "error: runway score terminated (SIGTERM)" in err and "Traceback" not in err
    assert not batch.out.exists() and not batch.out.with_name("scores.rejects.csv").exists()
    assert batch.leftovers() == [] and batch.logged() == 0


@pytest.mark.parametrize("kind", ["dir", "sqlite"])
def test_sigterm_once_the_output_is_there_finishes_the_commit(delivery, big, tmp_path, kind):
    batch = Batch(delivery, big, tmp_path, _logs(tmp_path)[kind])
    proc, err = batch.stop_when(batch.out.exists, signal.SIGTERM)
    assert proc.returncode == 0, err[-2000:]
    assert len(pd.read_csv(batch.out)) == ROWS and batch.logged() == ROWS
    assert batch.leftovers() == []


@pytest.mark.parametrize("kind", ["dir", "sqlite"])
def test_sigkill_while_scoring_logs_nothing_and_the_next_run_cleans_up(
    delivery, big, tmp_path, kind
):
    batch = Batch(delivery, big, tmp_path, _logs(tmp_path)[kind])
    proc, _ = batch.stop_when(lambda: batch.spooled() >= 3, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    left = batch.leftovers()
    assert any(n.startswith("runway-predlog-") for n in left), left
    assert any(n.startswith(".scores.csv.tmp-") for n in left), left
    assert batch.logged() == 0 and not batch.out.exists()
    rerun = subprocess.run(
        batch.args, cwd=batch.cwd, env=batch.env, capture_output=True, text=True, timeout=300
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "unlogged rows of a batch killed before its output was committed" in rerun.stderr
    assert batch.leftovers() == []
    assert batch.logged() == ROWS and len(pd.read_csv(batch.out)) == ROWS


@pytest.mark.parametrize("kind", ["dir", "sqlite"])
def test_sigkill_once_the_output_is_there_then_a_rerun_logs_n_once(delivery, big, tmp_path, kind):
    batch = Batch(delivery, big, tmp_path, _logs(tmp_path)[kind])
    proc, _ = batch.stop_when(batch.out.exists, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    assert batch.logged() in (0, ROWS)
    rerun = subprocess.run(
        batch.args, cwd=batch.cwd, env=batch.env, capture_output=True, text=True, timeout=300
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert batch.logged() == ROWS and batch.leftovers() == []
