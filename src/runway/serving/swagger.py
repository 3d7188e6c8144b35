"""``/docs``: Swagger UI from an installed package, so "Try it out" works with no network.

The assets (``swagger-ui-bundle.js``, ``swagger-ui.css``: Swagger UI 5, which
renders OpenAPI 3.1) are the files the ``fastapi-offline`` wheel ships, read
from its folder without importing it (it would import FastAPI into the
gateway). The page and its assets describe nothing (the same bytes for every
model), so they need no token; the document they load (``/openapi.json``) and
scoring do. The page's own script reads a token from the address's fragment
(``/docs#token=<token>``: a fragment never reaches a server or its logs) and
sends it on every request, the document's fetch included; Swagger UI's
Authorize button takes one too. Every answer carries a Content-Security-Policy
that allows scripts, styles, images and requests from the gateway only.
"""

from __future__ import annotations

import functools
from importlib.util import find_spec
from pathlib import Path

from runway.serving.payload import BadRequest

PACKAGE = "fastapi_offline"  # its static/ folder: Swagger UI's release files
CSP = (
    b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
ASSETS = {
    "/docs/swagger-ui-bundle.js": ("swagger-ui-bundle.js", b"text/javascript; charset=utf-8"),
    "/docs/swagger-ui.css": ("swagger-ui.css", b"text/css; charset=utf-8"),
}
INIT = "/docs/init.js"
PATHS = frozenset({"/docs", INIT, *ASSETS})

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>API: try it out</title>
<link rel="stylesheet" href="/docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script><script src="/docs/init.js"></script>
</body></html>
"""

# Swagger UI's initializer, a file of its own: the policy allows no inline script.
INIT_JS = """"use strict";
(function () {
  var token = new URLSearchParams(location.hash.slice(1)).get("token");
  var ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: false,
    tryItOutEnabled: false,
    requestInterceptor: function (request) {
      if (token && !request.headers.Authorization) {
        request.headers.Authorization = "Bearer " + token;
      }
      return request;
    },
    onComplete: function () {
      if (token) { ui.preauthorizeApiKey("bearer", token); }
    }
  });
  window.ui = ui;
})();
"""


@functools.cache
def folder() -> Path:
    """Where the installed package keeps Swagger UI's files."""
    spec = find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise BadRequest(
            404, f"/docs needs the {PACKAGE} package (a runway dependency)", "NOT_FOUND"
        )
    return Path(spec.origin).parent / "static"


@functools.cache
def _read(name: str) -> bytes:
    return (folder() / name).read_bytes()


def answer(path: str) -> tuple[bytes, bytes]:
    """(body, content type) of ``/docs`` or one of its assets."""
    if path == "/docs":
        return PAGE.encode(), b"text/html; charset=utf-8"
    if path == INIT:
        return INIT_JS.encode(), b"text/javascript; charset=utf-8"
    name, kind = ASSETS[path]
    return _read(name), kind
