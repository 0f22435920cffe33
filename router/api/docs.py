"""GET /openapi.yaml: the router's API description (OpenAPI 3.1), shipped inside the package.

Like every route but /health it needs a client key when keys are configured.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from aiohttp import web

from .. import auth
from ..state import STATE

PATH = "/openapi.yaml"


@cache
def document() -> bytes:
    return resources.files("router").joinpath("openapi.yaml").read_bytes()


async def openapi(request: web.Request) -> web.Response:
    rt = request.app[STATE].runtime
    auth.client_key(rt.keys, request.headers, rt.config.server)  # refused: the route's guard answers (app.py)
    return web.Response(body=document(), content_type="application/yaml", charset="utf-8")

