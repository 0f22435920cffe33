"""The OpenAI wire format that the engine worker and the router both speak: error bodies, SSE framing, and the
type checks of request fields.

Standard library only (no aiohttp, no mlx): the router imports it without loading an engine, and `engines/` stays
below `router/` (the router imports this module, never the reverse).
"""

from __future__ import annotations

import json
from typing import Any

OPENAI_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout_error",
}

SSE_DONE = b"data: [DONE]\n\n"

# A local engine's chat replies: `REPAIRED_HEADER` says the engine already ran tool-call repair on the reply (its
# value: the mode, "repair" or "detect"), so the router validates the calls rather than repairing again;
# `REPAIRS_HEADER` lists the kinds it repaired (non-stream). What else it reports (a stream's repair kinds, the
# calls it could not make valid) travels in the reply's `REPORT_MEMBER` member: the completion's (only when a call
# failed) or a stream's, on the first chunk of what it sends once generation ends (before the text it held, so a
# router holding calls for a re-ask can hold that text too), as
# `{"repairs": [kind, ...], "tool_call_failures": [{kind, detail, call_index}, ...]}`.
REPAIR_HEADER = "x-agentgate-repair"  # request: "off" (no repair, no report) or "detect" (the route's repair mode)
REPAIRED_HEADER = "x-agentgate-repaired"
REPAIRS_HEADER = "x-agentgate-repairs"
REPORT_MEMBER = "agentgate"


def openai_error_type(status: int) -> str:
    return OPENAI_ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")


class WireError(Exception):
    """An error that maps to one HTTP response, in OpenAI's shape: `{"error": {message, type, param, code}}`."""

    def __init__(self, status: int, message: str, code: str, *, type: str | None = None,
                 param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.type = type or openai_error_type(status)
        self.param = param

    def openai_body(self) -> dict[str, object]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def sse_event(self) -> bytes:
        """The terminal event of a stream that fails after its first byte."""
        return b"data: " + json.dumps(self.openai_body()).encode() + b"\n\n"


def sse_data(obj: object) -> bytes:
    """One SSE event carrying `obj` as compact JSON on one `data:` line."""
    return b"data: " + json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


def sse_event(name: str, data: object) -> bytes:
    """One named SSE event (`event:` line plus one `data:` line)."""
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {name}\ndata: {payload}\n\n".encode()


def json_type(value: object) -> str:
    """What JSON calls the type of `value`, as OpenAI's errors name it ("an integer", "null", ...)."""
    if value is None:
        return "null"
    for kind, name in ((bool, "a boolean"), (int, "an integer"), (float, "a number"), (str, "a string"),
                       (list, "an array"), (dict, "an object")):
        if isinstance(value, kind):
            return name
    return "a value of no JSON type"


def invalid_type_message(param: str, expected: str, value: object) -> str:
    """OpenAI's words for a field of another type: its full path, the JSON type it takes (`expected`: "a string",
    "an object", ...) and the JSON type it was sent (see `json_type`)."""
    return f"Invalid type for '{param}': expected {expected}, but got {json_type(value)} instead."


def check_type(body: dict[str, Any], name: str, kind: type | tuple[type, ...], what: str,
               required: bool = False) -> Any:
    """`body[name]` when it has the right type (bools are never numbers), None when absent and not required;
    a 400 naming the field otherwise."""
    value = body.get(name)
    if value is None:
        if required:
            raise WireError(400, f"Missing required parameter: '{name}'.", "missing_required_parameter", param=name)
        return None
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        raise WireError(400, invalid_type_message(name, what, value), "invalid_type", param=name)
    return value
