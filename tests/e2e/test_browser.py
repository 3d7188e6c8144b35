"""What a person sees in the MLflow UI (issue 16), in a real browser.

`make ui` (the real, light `mlflow server`) over this test's store; Debian's
headless Chromium driven by Playwright (its PyPI package ships only a driver:
`executable_path` points at /usr/bin/chromium, nothing is downloaded). A fresh
browser profile, as a new user has: the only local storage set is what closes
MLflow's pop-ups (assistant panel, telemetry notice, registry promotion), never
the "Model training" switch, so the links runway prints must work on their own.

It opens the runs-table link `runway train` prints and finds the run; expands
the sweep's parent to its trial runs and finds the refitted estimator on the
parent's page; opens the model version and reaches its gate report from the
version's description. Screenshots go to the test's tmp dir and to
test-artifacts/browser/ (git-ignored).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
import yaml

from runway.cli import main
from tests.conftest import REPO
from tests.helpers import free_port, stop_process_group, wait_http, write_spec

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # as root the sandbox refuses to start
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
]
# Only MLflow's pop-ups; `mlflow.workflowType_v1` (the "Model training" switch) stays unset.
QUIET = {
    "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": "true",
    "mlflow.assistant.panelOpen_v1": "false",
    "mlflow.telemetry.info.alert.dismissed_v1": "true",
    "_mlflow_model_registry_promo_modal_dismissed_v1": "true",
}
INIT = (
    "(s=>{for(const [k,v] of Object.entries(s)) if(localStorage.getItem(k)===null)"
    f" localStorage.setItem(k,v)}})({json.dumps(QUIET)})"
)
TIMEOUT_MS = 30_000
MODEL = "browser-model"
LR_SPACE = {"model__C": {"type": "float", "low": 0.05, "high": 5, "log": True}}


@pytest.fixture
def ui(
    tmp_path: Path, mlflow_store: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, subprocess.Popen]]:
    """`make ui` on a free port over this test's store; the links runway prints point there."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"no Chromium at {CHROMIUM}: run `make browser` (apt-get install chromium)")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("RUNWAY_UI_URL", base)
    command = ["make", "-s", "-f", str(REPO / "Makefile"), "ui", f"VENV={sys.prefix}", "INSTALL="]
    with open(tmp_path / "ui.log", "wb") as log:
        proc = subprocess.Popen(
            [*command, f"UI_PORT={port}"],
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield base, proc
    finally:
        stop_process_group(proc)


def _link(printed: str, label: str) -> str:
    return re.search(rf"^{label} +(?:make ui, then )?(http\S+)", printed, re.M).group(1)


def _train_sweep_and_stage(tmp_path: Path, capsys: pytest.CaptureFixture) -> dict[str, str]:
    """What the people in the issue did: a training run, a sweep, a Staging promotion."""
    policy = {
        "model": MODEL,
        "description": "Screens tumours; **recall** matters most.",
        "staging": {"thresholds": ["roc_auc >= 0.9"], "max_latency_ms": 5000},
        "production": {"reviewers": ["alice"]},
    }
    (tmp_path / "registry").mkdir()
    (tmp_path / "registry" / f"{MODEL}.yaml").write_text(yaml.safe_dump(policy))
    common = {"experiment": "browser", "model_name": MODEL, "description": "Tumours, screened."}
    trained = write_spec(tmp_path / "train.yaml", **common)
    assert main(["-q", "train", str(trained), "--run-name", "logreg-baseline", "--register"]) == 0
    printed = capsys.readouterr().out
    swept = write_spec(
        tmp_path / "sweep.yaml",
        **common,
        estimator={"name": "RandomForestClassifier"},  # the spec's; the sweep only tries LR
        sweep={"trials": 3, "pruning": False, "estimators": {"LogisticRegression": LR_SPACE}},
    )
    assert main(["-q", "sweep", str(swept), "--promote-to", "Staging"]) == 0
    swept_out = capsys.readouterr().out
    assert f"registered {MODEL} version 2" in swept_out and "result: PASS" in swept_out
    # v1 to Production, v2 replaces it, then the rollback brings v1 back (issue 29, item 5)
    for version, stage in (("1", "Staging"), ("1", "Production"), ("2", "Production")):
        promoted = ["-q", "registry", "promote", MODEL, version, "--to", stage]
        assert main([*promoted, "--reviewer", "alice"]) == 0
    assert main(["-q", "registry", "rollback", MODEL, "--reviewer", "carol"]) == 0
    capsys.readouterr()
    return {
        "runs_table": _link(printed, "look"),
        "train_run": _link(printed, "run"),
        "sweep_run": _link(swept_out, "run"),
        "parent_id": re.search(r"parent run +([0-9a-f]{32})", swept_out).group(1),
        "monitoring": _two_windows(),
    }


def _two_windows() -> str:
    """A crossed and a healthy monitoring window of v1, as `runway monitor` records them;
    the monitoring experiment's id."""
    from datetime import datetime

    from runway.settings import get_settings
    from runway.store import monitoring

    for outcome, day in (("crossed", 5), ("healthy", 6)):
        run_id, _ = monitoring.record_window(
            get_settings(),
            model=MODEL,
            version="1",
            since=datetime(2026, 1, day),
            until=datetime(2026, 1, day + 1),
            outcome=outcome,
            metrics={"drift_share": 0.5 if outcome == "crossed" else 0.0},
            tags={"mlflow.note.content": f"{outcome}: drift share"},
            artifacts={"summary.json": "{}", "report.html": "<html>drift</html>"},
        )
    return mlflow.get_run(run_id).info.experiment_id


def test_a_person_finds_the_runs_the_sweep_and_the_gate_report(ui, tmp_path, capsys):
    from playwright.sync_api import expect, sync_playwright

    base, server = ui
    links = _train_sweep_and_stage(tmp_path, capsys)  # while the UI starts
    assert links["runs_table"].startswith(f"{base}/#/experiments/")
    wait_http(f"{base}/health", server, timeout=120)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    expect.set_options(timeout=TIMEOUT_MS)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(viewport={"width": 1500, "height": 1000})
            context.set_default_timeout(TIMEOUT_MS)
            context.add_init_script(INIT)
            page = context.new_page()

            def visit(url: str) -> None:
                page.goto("about:blank")  # a full load: the app ignores some hash-only changes
                page.goto(url)

            def shot(name: str, on=None) -> None:
                (on or page).screenshot(path=shots / f"{name}.png", full_page=True)

            # 1. the link `runway train` printed opens the runs table, with the run in it
            visit(links["runs_table"])
            table = page.locator(".ag-pinned-left-cols-container")
            expect(table.get_by_role("link", name="logreg-baseline", exact=True)).to_be_visible()
            assert "/overview" not in page.url and "/runs" in page.url
            # issue 29, item 1: the primary metric and the searched param, with no clicks
            headers = page.locator('[role="columnheader"]')
            for name in ("holdout_roc_auc", "cv_roc_auc", "model__C"):
                expect(headers.filter(has_text=name).first).to_be_visible()
            shot("01_runs_table")

            # 2. the sweep parent holds its trials; its page names the refitted estimator
            parent = table.locator(f'[row-id="{links["parent_id"]}"]')
            expect(parent).to_be_visible()
            parent.locator('button[data-component-id$="runnamecellrenderer.tsx_46"]').click()
            for number in (0, 1, 2):  # issue 29, item 3: trials by number
                named = re.compile(rf"^browser-[0-9a-f]+ trial {number}$")
                expect(table.get_by_role("link", name=named)).to_be_visible()
            shot("02_sweep_children")
            visit(links["sweep_run"])
            expect(page.get_by_role("heading", name=re.compile(r"^sweep-browser-"))).to_be_visible()
            expect(page.locator("strong", has_text="LogisticRegression").first).to_be_visible()
            expect(page.get_by_role("link", name=re.compile(r"^trial \d$"))).to_be_visible()
            expect(page.get_by_text("RandomForestClassifier")).to_have_count(0)
            shot("03_sweep_parent")

            # 3. the model version's description leads to the gate report
            visit(f"{base}/#/models/{MODEL}/versions/2")
            report = page.get_by_role("link", name=re.compile(r"^Staging gate report: PASS"))
            expect(report).to_be_visible()
            expect(
                page.get_by_role("link", name=re.compile(r"^browser-[0-9a-f]+$"))
            ).to_be_visible()
            shot("04_model_version")
            with context.expect_page() as opened:
                report.click()
            tab = opened.value
            expect(tab.get_by_text("result: PASS")).to_be_visible()
            assert "/artifacts/registry/v2-staging-" in tab.url
            shot("05_gate_report", tab)

            # the run link `runway train` printed opens the run's page
            visit(links["train_run"])
            expect(page.get_by_role("heading", name="logreg-baseline")).to_be_visible()
            shot("06_training_run")

            # issue 29, item 5: the version that came back says so on its page
            visit(f"{base}/#/models/{MODEL}/versions/1")
            expect(
                page.get_by_text(re.compile(r"Rolled back to Production by carol"))
            ).to_be_visible()
            expect(page.get_by_text("replacing v2.")).to_be_visible()
            shot("07_rolled_back_version")

            # issue 29, item 4: a crossed window reads apart from a healthy one in the table
            visit(f"{base}/#/experiments/{links['monitoring']}/runs?workflowType=machine_learning")
            table = page.locator(".ag-pinned-left-cols-container")
            for outcome in ("CROSSED", "healthy"):
                named = re.compile(rf"^{outcome} {MODEL} v1 2026-01-0")
                expect(table.get_by_role("link", name=named)).to_be_visible()
            shot("08_monitoring_windows")
        finally:
            browser.close()

    kept = REPO / "test-artifacts" / "browser"
    shutil.rmtree(kept, ignore_errors=True)
    shutil.copytree(shots, kept)
    assert sorted(p.name for p in kept.iterdir()) == [
        "01_runs_table.png",
        "02_sweep_children.png",
        "03_sweep_parent.png",
        "04_model_version.png",
        "05_gate_report.png",
        "06_training_run.png",
        "07_rolled_back_version.png",
        "08_monitoring_windows.png",
    ]
