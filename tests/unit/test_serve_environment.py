"""`runway serve` configured by environment alone, as a container's entrypoint runs it."""

from __future__ import annotations

import pytest

from runway.cli import main


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list:
    """What `runway serve` would start (the gateway itself is exercised by the e2e tests).

    Its children (``launch``: the port, the zygote) are not started either.
    """
    import runway.serving.launch as launching
    import runway.serving.serve as serving

    calls: list = []
    monkeypatch.setattr(launching, "launch", lambda options, settings: None)
    monkeypatch.setattr(
        serving, "serve", lambda options, settings, launched=None: calls.append(options)
    )
    return calls


def test_the_bare_command_takes_model_address_and_backends_from_the_environment(
    served, monkeypatch
):
    for name, value in {
        "RUNWAY_SERVE_MODEL": "churn",
        "RUNWAY_SERVE_HOST": "0.0.0.0",
        "RUNWAY_SERVE_PORT": "9000",
        "RUNWAY_SERVE_WORKERS": "3",
    }.items():
        monkeypatch.setenv(name, value)
    assert main(["serve"]) == 0
    (options,) = served
    assert (options.model, options.host, options.port, options.workers) == (
        "churn",
        "0.0.0.0",
        9000,
        3,
    )


def test_the_command_line_wins_over_the_environment(served, monkeypatch):
    monkeypatch.setenv("RUNWAY_SERVE_MODEL", "churn")
    monkeypatch.setenv("RUNWAY_SERVE_PORT", "9000")
    assert main(["serve", "other", "--port", "8081", "--workers", "1"]) == 0
    (options,) = served
    assert (options.model, options.host, options.port, options.workers) == (
        "other",
        "127.0.0.1",
        8081,
        1,
    )


def test_no_model_anywhere_is_one_line_naming_the_variable(served, monkeypatch, capsys):
    monkeypatch.delenv("RUNWAY_SERVE_MODEL", raising=False)
    assert main(["serve"]) == 2
    assert "RUNWAY_SERVE_MODEL" in capsys.readouterr().err
    assert served == []


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("RUNWAY_SERVE_PORT", "abc", "valid integer"),
        ("RUNWAY_SERVE_WORKERS", "0", "greater than or equal to 1"),
        ("RUNWAY_THREADS", "-3", "greater than or equal to 1"),
        ("RUNWAY_HTTP_BACKOFF", "0.2", "valid integer"),  # MLflow would fail on every call
    ],
)
def test_a_bad_variable_is_one_line_naming_it_and_its_value(
    served, monkeypatch, capsys, variable, value, expected
):
    monkeypatch.setenv(variable, value)
    assert main(["serve", "churn"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: environment: {variable}={value!r}: ")
    assert expected in err and "Traceback" not in err
    assert served == []
