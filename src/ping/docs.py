"""``/docs``: Swagger UI from the installed ``swagger-ui-bundle-v2`` package, never a CDN.

So the page works air-gapped, and a strict Content-Security-Policy (same origin
only, no inline script) can hold, since the start-up script is a file too.
``PING_DOCS=false`` leaves these routes and ``/openapi.json`` out entirely.
"""

from functools import cache

from fastapi import APIRouter, FastAPI, Response
from swagger_ui_bundle import swagger_ui_path

from ping.errors import NotFound

# Swagger UI styles its widgets with inline style attributes, hence 'unsafe-inline' for
# styles only; scripts come from this origin alone, and nothing may frame the page.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "public, max-age=3600",
}
_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}


def _page(title: str, openapi_url: str) -> bytes:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} - Swagger UI</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
<link rel="icon" type="image/png" href="/docs/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi_url}"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/start.js"></script>
</body>
</html>
""".encode()


_START = b"""const root = document.getElementById("swagger-ui");
window.ui = SwaggerUIBundle({
  url: root.dataset.openapiUrl,
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
"""


@cache
def _read(asset: str) -> bytes:
    return bytes((swagger_ui_path / asset).read_bytes())


def add_docs(app: FastAPI) -> None:
    """Serve Swagger UI at ``/docs`` for the app's ``openapi_url``."""
    page = _page(app.title, app.openapi_url or "/openapi.json")
    router = APIRouter(include_in_schema=False)

    @router.get("/docs")
    async def docs() -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers=_HEADERS)

    @router.get("/docs/start.js")
    async def start() -> Response:
        return Response(_START, media_type="text/javascript; charset=utf-8", headers=_HEADERS)

    @router.get("/docs/{asset}")
    async def asset(asset: str) -> Response:
        if asset not in _ASSETS:
            raise NotFound(f"no route /docs/{asset}; see /docs")
        return Response(_read(asset), media_type=_ASSETS[asset], headers=_HEADERS)

    app.include_router(router)
