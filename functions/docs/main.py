"""docs unit: the OpenAPI document, Swagger UI and ReDoc, all served from this function.

The document is generated from the registry by `make openapi` (a test fails when it is stale),
so this unit imports no other unit and starts as fast as a bare function.
"""

# The runtime comes first: it pauses the garbage collector while the unit starts.
# isort: off
from imangor.runtime import Deploy, Unit

# isort: on
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from werkzeug import Response
from werkzeug.utils import send_from_directory

import imangor
from imangor.schemas.common import Input

unit = Unit("docs", Deploy(needs=(), memory="256Mi", max_instances=3))
HERE = Path(__file__).resolve().parent
STATIC = Path(imangor.__file__).resolve().parent / "static"
YEAR = 365 * 24 * 3600
HTML, JSON = "text/html", "application/json"
# What the bundled assets are served as (by file name; see static/): scripts, styles, the
# OAuth2 redirect page, licence texts.
ASSET_TYPES = (
    "text/javascript",
    "application/javascript",
    "text/css",
    HTML,
    "text/plain",
    "application/octet-stream",
)

SWAGGER_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - Swagger UI</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/docs/static/swagger-ui/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/static/swagger-ui/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({{
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  persistAuthorization: true,
  validatorUrl: null,
  oauth2RedirectUrl: window.location.origin + "/docs/static/swagger-ui/oauth2-redirect.html",
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout"
}});
</script></body></html>
"""

REDOC_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - ReDoc</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<style>body {{ margin: 0; padding: 0; }}</style></head>
<body><redoc spec-url="/openapi.json" hide-hostname></redoc>
<script src="/docs/static/redoc/redoc.standalone.js"></script></body></html>
"""


class AssetPath(Input):
    package: Literal["swagger-ui", "redoc"]
    asset: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=100)


@cache
def _document() -> bytes:
    return (HERE / "openapi.json").read_bytes()


def _title() -> str:
    from imangor.config import get_settings

    return get_settings().project_name


def _html(page: str) -> Response:
    response = Response(page.format(title=_title()), mimetype="text/html")
    # img-src 'self' also stops ReDoc's one hard-wired CDN logo: the pages load nothing remote.
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; worker-src 'self' blob:; font-src 'self' data:"
    )
    return response


@unit.get(
    "/openapi.json", access="public", rate_limit="off", raw=True, produces=("application/json",)
)
def openapi_document() -> Response:
    """The OpenAPI 3.1 document of every unit."""
    return Response(_document(), mimetype="application/json")


@unit.get("/docs", access="public", rate_limit="off", raw=True, produces=(HTML,))
def swagger_ui() -> Response:
    """Swagger UI, served without any CDN."""
    return _html(SWAGGER_PAGE)


@unit.get("/redoc", access="public", rate_limit="off", raw=True, produces=(HTML,))
def redoc() -> Response:
    """ReDoc, served without any CDN."""
    return _html(REDOC_PAGE)


@unit.get(
    "/docs/static/{package}/{asset}",
    access="public",
    rate_limit="off",
    raw=True,
    produces=ASSET_TYPES,
)
def static_asset(path: AssetPath) -> Response:
    """The pages' JavaScript and CSS, cached by browsers for a year."""
    from flask import request

    response = send_from_directory(STATIC / path.package, path.asset, request.environ, max_age=YEAR)
    response.headers["Cache-Control"] = f"public, max-age={YEAR}, immutable"
    return response


docs = unit.entry_point()
