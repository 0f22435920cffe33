"""The engine worker's errors: `engines.wire.WireError` (OpenAI's shape), answered as aiohttp responses."""

from __future__ import annotations

import json

from aiohttp import web

from engines.wire import WireError


def error_response(err: WireError) -> web.Response:
    return web.Response(status=err.status, body=json.dumps(err.openai_body()).encode(),
                        content_type="application/json")


def bad_request(message: str, *, param: str | None = None, code: str = "invalid_value") -> WireError:
    return WireError(400, message, code, param=param)
