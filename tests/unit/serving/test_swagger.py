"""``/docs``: Swagger UI from the installed package, open, under a policy allowing only the gateway."""

from __future__ import annotations

from pathlib import Path

from runway.core.columns.input_policy import InputPolicy
from runway.core.columns.schema import DataContract
from runway.serving.gateway import Gateway, Slot
from runway.settings import Settings
from runway.store.served import ResolvedModel
from tests.unit.serving.asgi import call

CONTRACT = DataContract.model_validate({"columns": {"x": {"kind": "numeric"}}})
HOST = [(b"host", b"127.0.0.1")]


def _gateway(tmp_path: Path) -> Gateway:
    settings = Settings(MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'x.db'}", serve_tokens="s3cret")
    gateway = Gateway(settings)
    model = ResolvedModel("churn", "3", "Production", None)
    gateway.slot = Slot(model, CONTRACT, InputPolicy(), [], b'{"inputs": {"x": [1]}}', 1)
    return gateway


def test_docs_is_swagger_ui_from_the_gateway_itself_with_no_token_needed(tmp_path):
    gateway = _gateway(tmp_path)
    status, headers, page = call(gateway, "GET", "/docs", HOST)
    assert status == 200 and headers[b"content-type"].startswith(b"text/html")
    csp = headers[b"content-security-policy"].decode()
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "http" not in csp
    assert b"churn" not in page and b"x-runway-model" not in headers  # names nothing
    assert b'<script src="/docs/swagger-ui-bundle.js">' in page and b"<script>" not in page
    for asset, kind, marker in [
        ("/docs/swagger-ui-bundle.js", b"text/javascript", b"SwaggerUIBundle"),
        ("/docs/swagger-ui.css", b"text/css", b".swagger-ui"),
        ("/docs/init.js", b"text/javascript", b'url: "/openapi.json"'),
    ]:
        status, headers, body = call(gateway, "GET", asset, HOST)
        assert status == 200 and headers[b"content-type"].startswith(kind), asset
        assert marker in body, asset
    init = call(gateway, "GET", "/docs/init.js", HOST)[2]
    assert b'get("token")' in init and b"Authorization" in init  # /docs#token=... is sent


def test_the_document_and_scoring_still_need_the_token(tmp_path):
    gateway = _gateway(tmp_path)
    assert call(gateway, "GET", "/openapi.json", HOST)[0] == 401
    token = [*HOST, (b"authorization", b"Bearer s3cret")]
    status, headers, _ = call(gateway, "GET", "/openapi.json", token)
    assert status == 200 and headers[b"x-runway-model"] == b"churn"
    status, headers, _ = call(gateway, "GET", "/docs", token)  # a token holder: named, as before
    assert status == 200 and headers[b"x-runway-model-version"] == b"3"
