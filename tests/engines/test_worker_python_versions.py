"""What the worker answers the same way on every supported Python (3.10 to 3.13), where the interpreter's own
limits differ between versions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from engines.worker.server import MAX_BODY_DEPTH
from tests.engines.conftest import Engine

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _nested(depth: int) -> bytes:
    """A chat body whose `metadata` holds arrays nested so that the body is `depth` levels deep."""
    inner = depth - 1  # the body's object is the first level
    return (b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1, "metadata": '
            + b"[" * inner + b"]" * inner + b"}")


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
async def test_a_body_past_the_depth_bound_is_refused_on_every_version(engine: Callable[..., Awaitable[Engine]],
                                                                      path: str) -> None:
    """Python 3.11's parser stopped near 1,000 levels (its recursion limit, which C code shared); 3.12 and later
    give C code a limit of its own and parsed bodies ten times deeper, which then went on to the checks, the chat
    template and the grammar builder. The bound is the worker's own now: past it, the same 400 on every version."""
    e = await engine("random")
    for depth in (MAX_BODY_DEPTH + 1, 5_000, 9_000):
        status, body = await e.post_raw(path, _nested(depth))
        assert status == 400, (depth, body)
        assert body["error"] == {"message": "the request body is nested too deep", "type": "invalid_request_error",
                                 "param": None, "code": "invalid_json"}, depth


async def test_a_body_within_the_depth_bound_is_read(engine: Callable[..., Awaitable[Engine]]) -> None:
    e = await engine("random")
    status, body = await e.post_raw("/v1/chat/completions", _nested(500))
    assert status == 400 and body["error"]["param"] == "metadata", body  # read, then refused for what it holds
