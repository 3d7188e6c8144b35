"""Credentials never printed: the one redaction rule for URLs (issue 27, observation 4)."""

from __future__ import annotations

import pytest

from runway.net import redact_text, redact_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgresql://runway:s3cret@db:5432/predictions",
            "postgresql://runway:***@db:5432/predictions",
        ),
        ("postgresql+psycopg://u:p%40ss@h/db", "postgresql+psycopg://u:***@h/db"),
        ("https://tok3n@mlflow.example.com/", "https://***@mlflow.example.com/"),
        (
            "postgresql://db/x?user=runway&password=s3cret&sslmode=require",
            "postgresql://db/x?user=runway&password=***&sslmode=require",
        ),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("sqlite:///mlflow.db", "sqlite:///mlflow.db"),
        ("file:///data/a@b/c.parquet", "file:///data/a@b/c.parquet"),
        ("predictions", "predictions"),
        ("off", "off"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redact_text_hides_every_url_in_a_message() -> None:
    text = (
        "cannot write to postgresql://runway:s3cret@db/predictions: "
        "(psycopg.OperationalError) see 'https://admin:hunter2@mlflow/api'"
    )
    out = redact_text(text)
    assert "s3cret" not in out and "hunter2" not in out
    assert "postgresql://runway:***@db/predictions" in out
    assert "https://admin:***@mlflow/api" in out
