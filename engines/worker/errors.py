"""OpenAI-shaped errors of the engine worker: `{"error": {"message", "type", "param", "code"}}`."""

from __future__ import annotations

import json

from aiohttp import web

_TYPES = {
    400: "invalid_request_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    500: "server_error",
    503: "service_unavailable",
}


class EngineError(Exception):
    """An error that maps to one HTTP response."""

    def __init__(self, status: int, message: str, code: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param

    @property
    def type(self) -> str:
        return _TYPES.get(self.status, "invalid_request_error" if self.status < 500 else "server_error")

    def body(self) -> dict[str, object]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> web.Response:
        return web.Response(status=self.status, body=json.dumps(self.body()).encode(), content_type="application/json")

    def sse_event(self) -> bytes:
        """The terminal event of a stream that fails after its first byte."""
        return b"data: " + json.dumps(self.body()).encode() + b"\n\n"


def bad_request(message: str, *, param: str | None = None, code: str = "invalid_value") -> EngineError:
    return EngineError(400, message, code, param=param)
