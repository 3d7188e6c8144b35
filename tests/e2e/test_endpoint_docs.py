"""The endpoint explains itself (issue 16, item 9), against a real `runway serve`.

One deployment per module: a churn model (int32 and categorical columns, an
input policy that rejects unknown columns and unseen categories) in
Production, served by `python -m runway serve` with a real `mlflow models
serve` backend and a bearer token. The OpenAPI document it serves is checked
with openapi-spec-validator, then `/invocations` is fuzzed from it with
schemathesis: valid and invalid JSON, CSV and Parquet bodies; no answer may be
a 5xx, and every answer must match the document (status, content type,
headers, body).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import hypothesis
import pandas as pd
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import REPO, REPO_PYTHONPATH
from tests.helpers import free_port, ship, stop_process_group, wait_http

pytestmark = pytest.mark.slow

MODEL = "churn-docs"
TOKEN = "docs-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FEATURES = {
    "age": "numeric",
    "tenure_months": "numeric",
    "monthly_charges": "numeric",
    "support_calls": "numeric",
    "contract": "categorical",
    "payment_method": "categorical",
    "region": "categorical",
}
ARTIFACTS = REPO / "test-artifacts" / "endpoint"


@dataclass
class Endpoint:
    url: str
    version: str
    root: Path
    log: Path

    def get(self, path: str, **kwargs) -> requests.Response:
        return requests.get(f"{self.url}{path}", timeout=30, **kwargs)


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("docs")
    frame = pd.read_csv(REPO / "data" / "churn.csv")
    frame = frame.astype({"tenure_months": "int32", "support_calls": "int32"})
    frame.to_parquet(root / "churn.parquet", index=False)
    spec = {
        "experiment": "docs-tests",
        "task": "classification",
        "model_name": MODEL,
        "data": {"source": str(root / "churn.parquet"), "target": "churned", "features": FEATURES},
        "estimator": {"name": "LogisticRegression", "params": {"max_iter": 300}},
        "split": {"holdout": 0.25, "cv_folds": 2, "seed": 5},
        "metrics": ["roc_auc"],
        "primary_metric": {"name": "roc_auc"},
    }
    rules = {"unseen_categories": "reject", "unknown_columns": "reject"}
    _, version, _ = ship(root, spec, reviewer="alice", input_policy=rules)
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "RUNWAY_PREDICTION_LOG": str(root / "predictions"),
        "RUNWAY_SERVE_TOKENS": TOKEN,
        "PYTHONPATH": REPO_PYTHONPATH,
    }
    port = free_port()
    log = root / "serve.log"
    command = [sys.executable, "-m", "runway", "serve", MODEL, "--port", str(port)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*command, "--log-dir", str(root / "logs")],
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/ready", proc, timeout=240)
        yield Endpoint(f"http://127.0.0.1:{port}", version, root, log)
    finally:
        stop_process_group(proc)


def test_home_page_says_what_is_served_and_its_curl_line_scores_a_row(endpoint):
    text = endpoint.get("/", headers=AUTH)
    assert text.status_code == 200 and text.headers["Content-Type"].startswith("text/plain")
    assert f"{MODEL} version {endpoint.version}" in text.text
    for column in FEATURES:
        assert f"\n  {column} " in text.text
    assert "one of month-to-month, one-year, two-year" in text.text
    assert "integer or null in [-2147483648, 2147483647]" in text.text  # int32, nullable
    [curl] = [line.strip() for line in text.text.splitlines() if line.strip().startswith("curl ")]
    assert f"{endpoint.url}/invocations" in curl and "$RUNWAY_TOKEN" in curl

    scored = subprocess.run(
        ["bash", "-c", curl], env={**os.environ, "RUNWAY_TOKEN": TOKEN}, capture_output=True
    )
    assert json.loads(scored.stdout)["predictions"] in ([0], [1]), scored

    page = endpoint.get("/", headers={**AUTH, "Accept": "text/html,application/xhtml+xml"})
    assert page.headers["Content-Type"].startswith("text/html")
    assert "<h1>" in page.text and "/invocations" in page.text and "monthly_charges" in page.text
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "home.html").write_text(page.text)
    (ARTIFACTS / "home.txt").write_text(text.text)


def test_every_answer_to_a_token_holder_names_the_model_version(endpoint):
    answers = {
        path: endpoint.get(path, headers=AUTH)
        for path in ("/", "/docs", "/openapi.json", "/version", "/metrics")
    }
    answers["POST /version"] = requests.post(f"{endpoint.url}/version", headers=AUTH, timeout=30)
    for name, answer in answers.items():
        assert answer.headers.get("X-Runway-Model") == MODEL, name
        assert answer.headers.get("X-Runway-Model-Version") == endpoint.version, name
        assert answer.headers.get("X-Request-Id"), name
    assert answers["POST /version"].status_code == 405
    assert answers["POST /version"].headers["Allow"] == "GET"
    version = answers["/version"].json()
    assert (version["model"], version["version"], version["stage"]) == (
        MODEL,
        endpoint.version,
        "Production",
    )
    assert version["model_uri"] == f"models:/{MODEL}/{endpoint.version}"


def test_without_the_token_the_pages_say_how_to_authenticate_and_name_no_model(endpoint):
    """With tokens set, what is served (columns, categories, version) is for token holders."""
    anonymous = {
        path: endpoint.get(path)
        for path in ("/", "/docs", "/openapi.json", "/version", "/metrics", "/nowhere")
    }
    anonymous["/health"] = endpoint.get("/health")
    for name, answer in anonymous.items():
        assert "X-Runway-Model" not in answer.headers, name
        assert "X-Runway-Model-Version" not in answer.headers, name
        assert answer.headers.get("X-Request-Id"), name
        assert MODEL not in answer.text, name
    for path in ("/", "/openapi.json", "/version", "/metrics"):
        assert anonymous[path].status_code == 401, path
        assert anonymous[path].headers["WWW-Authenticate"].startswith("Bearer"), path
        assert "Authorization: Bearer" in anonymous[path].json()["message"], path
    assert anonymous["/health"].status_code == 200  # load balancers probe without a token
    assert anonymous["/docs"].status_code == 200  # Swagger UI's shell: the same for any model
    assert anonymous["/nowhere"].status_code == 404
    assert "/docs" in anonymous["/nowhere"].json()["message"]


CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def test_docs_page_needs_no_network(endpoint):
    """Swagger UI's page and assets come from the gateway, under a policy allowing only it."""
    page = endpoint.get("/docs")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert "http://" not in page.text and "https://" not in page.text
    for asset in re.findall(r'(?:src|href)="([^"]+)"', page.text):
        assert asset.startswith("/docs/"), asset
        answer = endpoint.get(asset)
        assert answer.status_code == 200 and len(answer.content) > 300, asset
        assert answer.headers["Content-Security-Policy"] == csp
    assert "SwaggerUIBundle" in endpoint.get("/docs/swagger-ui-bundle.js").text
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "docs.html").write_text(page.text)


def test_try_it_out_in_the_browser_scores_the_example_row(endpoint):
    """In Chromium, with every request off the gateway refused: /docs#token=... loads the
    document, "Try it out" then "Execute" on POST /invocations sends the example row with
    the token and shows a 200 with a prediction; nothing breaks the page's policy."""
    from playwright.sync_api import expect, sync_playwright

    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"no Chromium at {CHROMIUM}: run `make browser` (apt-get install chromium)")
    outside: list[str] = []
    problems: list[str] = []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            context = browser.new_context(viewport={"width": 1300, "height": 1400})
            context.set_default_timeout(30_000)

            def only_the_gateway(route) -> None:
                if route.request.url.startswith(endpoint.url):
                    route.continue_()
                else:
                    outside.append(route.request.url)
                    route.abort()

            context.route("**/*", only_the_gateway)
            page = context.new_page()
            page.on("console", lambda m: m.type == "error" and problems.append(m.text))
            page.goto(f"{endpoint.url}/docs#token={TOKEN}")
            operation = page.locator("#operations-default-invocations")
            operation.locator(".opblock-summary").click()
            operation.get_by_role("button", name="Try it out").click()
            operation.get_by_role("button", name="Execute").click()
            live = operation.locator(".live-responses-table tbody tr.response").first
            expect(live.locator(".response-col_status")).to_have_text("200", timeout=30_000)
            expect(live.locator(".response-col_description pre").first).to_contain_text(
                '"predictions"'
            )
            operation.scroll_into_view_if_needed()
            page.screenshot(path=ARTIFACTS / "docs-try-it-out.png", full_page=True)
        finally:
            browser.close()
    assert outside == []
    assert not [p for p in problems if "Content Security Policy" in p], problems


def test_openapi_document_is_valid_and_generated_from_the_contract(endpoint):
    doc = endpoint.get("/openapi.json", headers=AUTH).json()
    validate(doc)  # openapi-spec-validator: a valid OpenAPI 3.1 document

    row = doc["components"]["schemas"]["Row"]
    # columns with gaps in training are optional: a request may leave them out (issue 12)
    optional = {"age", "monthly_charges", "payment_method"}
    assert sorted(row["required"]) == sorted(set(FEATURES) - optional)
    assert set(row["properties"]) == set(FEATURES)
    assert row["additionalProperties"] is False  # unknown_columns: reject
    assert row["properties"]["support_calls"]["type"] == ["integer", "null"]
    assert row["properties"]["support_calls"]["maximum"] == 2**31 - 1
    assert row["properties"]["monthly_charges"]["type"] == ["number", "null"]
    assert row["properties"]["contract"]["enum"] == ["month-to-month", "one-year", "two-year", None]
    request = doc["components"]["schemas"]["Request"]["oneOf"]
    assert all(shape["properties"]["params"]["maxProperties"] == 0 for shape in request)
    invocations = doc["paths"]["/invocations"]["post"]
    assert invocations["security"] == [{"bearer": []}]
    assert set(invocations["requestBody"]["content"]) == {
        "application/json",
        "text/csv",
        "application/vnd.apache.parquet",
    }
    assert {
        "/",
        "/docs",
        "/openapi.json",
        "/version",
        "/ping",
        "/health",
        "/ready",
        "/metrics",
    } <= set(doc["paths"])
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "openapi.json").write_text(json.dumps(doc, indent=2))


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
BUDGET = [  # (mode, media type asked for, examples): a few hundred requests in all.
    # schemathesis mixes in the operation's other media types; statuses are kept by what was sent.
    (GenerationMode.POSITIVE, "application/json", 150),
    (GenerationMode.NEGATIVE, "application/json", 150),
    (GenerationMode.POSITIVE, "text/csv", 50),
    (GenerationMode.NEGATIVE, "text/csv", 30),
]


def _sample(body) -> str:
    return json.dumps(body if isinstance(body, (dict, list, str)) else repr(body), default=str)[
        :300
    ]


def _fuzzer(operation, mode, media_type, examples, url, seen, refused, problems):
    """A hypothesis test sending ``examples`` generated requests; problems are collected."""
    session = requests.Session()

    @hypothesis.settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,  # the same requests on every run: a failure is reproducible
        database=None,
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.given(case=operation.as_strategy(mode, media_type=media_type))
    def fuzz(case):
        response = case.call(base_url=url, session=session, headers=AUTH)
        key = f"{mode.value} {case.media_type}"
        seen.setdefault(key, []).append(response.status_code)
        if response.status_code >= 400 and len(refused.setdefault(key, [])) < 5:
            refused[key].append(f"{_sample(case.body)} -> {response.text[:200]}")
        try:
            case.validate_response(response, checks=CHECKS)
        except Exception as failure:  # keep going: every problem is reported at the end
            problems.append(
                f"{response.status_code} {case.media_type} {_sample(case.body)}"
                f" -> {response.text[:200]}: {str(failure).splitlines()[0][:200]}"
            )

    return fuzz


def test_fuzzing_invocations_from_the_document_finds_no_server_error(endpoint):
    schema = schemathesis.openapi.from_dict(endpoint.get("/openapi.json", headers=AUTH).json())
    operation = schema["/invocations"]["POST"]
    seen: dict[str, list[int]] = {}
    refused: dict[str, list[str]] = {}  # samples of 4xx answers, for people to read
    problems: list[str] = []

    for mode, media_type, examples in BUDGET:
        _fuzzer(operation, mode, media_type, examples, endpoint.url, seen, refused, problems)()

    summary = {mode: sorted(set(codes)) for mode, codes in seen.items()}
    total = sum(len(codes) for codes in seen.values())
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "fuzz.json").write_text(
        json.dumps(
            {"requests": total, "statuses": summary, "problems": problems, "refused": refused},
            indent=2,
        )
    )
    assert not problems, "\n".join(problems[:20])
    assert total >= 200, summary
    assert 200 in summary["positive application/json"]
    assert all(code < 500 for codes in seen.values() for code in codes)


def test_serve_log_has_no_traceback(endpoint):
    """Whatever the fuzzing sent, the gateway answered it: nothing crashed into the log."""
    text = endpoint.log.read_text()
    shutil.copy(endpoint.log, endpoint.root / "serve.log.copy")
    assert "Traceback" not in text, text[-3000:]
