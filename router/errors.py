"""Every error the router returns, shaped once: OpenAI's shape on OpenAI routes, Anthropic's on /v1/messages."""

from __future__ import annotations

import json
from collections.abc import Mapping

from aiohttp import web

from engines.wire import WireError

_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
}


class ApiError(WireError):
    """An error that maps to one HTTP response. Raised anywhere below a handler. Its OpenAI body and stream event
    are the engine worker's too (`engines.wire`); the router adds headers and Anthropic's shape."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str,
        *,
        type: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status, message, code, type=type, param=param)
        self.headers = dict(headers or {})

    @classmethod
    def of(cls, err: WireError) -> ApiError:
        return cls(err.status, err.message, err.code, type=err.type, param=err.param)

    def anthropic_body(self) -> dict[str, object]:
        etype = _ANTHROPIC_TYPES.get(self.status, "api_error" if self.status >= 500 else "invalid_request_error")
        return {"type": "error", "error": {"type": etype, "message": self.message}}

    def response(self, dialect: str = "openai", request_id: str = "") -> web.Response:
        """The error as an answer in `dialect`'s shape; Anthropic's names the request (`request_id` at the top level
        of the body and the `request-id` header, as Anthropic's own errors do) when `request_id` is given."""
        headers = self.headers
        if dialect == "anthropic":
            body = self.anthropic_body()
            if request_id:
                body["request_id"] = request_id
                headers = {**headers, "request-id": request_id}
        else:
            body = self.openai_body()
        return web.Response(
            status=self.status,
            body=json.dumps(body).encode(),
            content_type="application/json",
            headers=headers,
        )


def bad_request(message: str, code: str = "invalid_request", param: str | None = None) -> ApiError:
    return ApiError(400, message, code, param=param)


def not_found(message: str, code: str = "not_found") -> ApiError:
    return ApiError(404, message, code)
