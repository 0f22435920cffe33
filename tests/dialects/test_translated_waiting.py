"""What waits on a translated stream while a call's arguments are still coming (a block cannot reopen): it goes out
before the stream's terminal error event too (it was lost when the stream failed), and past RAW_ARGS_MAX of
arguments and waiting output nothing waits any more (everything after a large call was held to the end)."""

from __future__ import annotations

import json

from router.dialects.anthropic_in import MessagesStream
from router.dialects.common import RAW_ARGS_MAX
from router.errors import ApiError
from tests.fakes.openai_upstream import chunk


def _events(data: list[bytes]) -> list[dict]:
    out = []
    for block in b"".join(data).decode().strip().split("\n\n"):
        out.append(json.loads(block.split("data: ", 1)[1]))
    return out


def _call(args: str, index: int = 0, head: bool = True) -> dict:
    fn = {"name": "f", "arguments": args} if head else {"arguments": args}
    return chunk("m", {"tool_calls": [{"index": index, **({"id": "c1", "type": "function"} if head else {}),
                                       "function": fn}]})


def test_what_waits_goes_out_before_the_error_event():
    enc = MessagesStream("m", [])
    out = enc.feed(_call('{"a": ')) + enc.feed(chunk("m", {"content": "Important text"})) \
        + enc.feed(chunk("m", {"reasoning_content": "why"}))
    out += enc.error(ApiError(502, "upstream reset", "upstream_reset_mid_stream"))
    events = _events(out)
    deltas = [e["delta"] for e in events if e["type"] == "content_block_delta"]
    assert {"type": "text_delta", "text": "Important text"} in deltas
    assert {"type": "thinking_delta", "thinking": "why"} in deltas
    assert events[-1]["type"] == "error"


def test_past_the_bound_output_goes_on_as_it_comes():
    enc = MessagesStream("m", [])
    enc.feed(_call('{"a": "'))
    enc.feed(_call("x" * (RAW_ARGS_MAX + 10), head=False))  # never whole: the call's block would hold everything
    out = enc.feed(chunk("m", {"content": "after"}))
    assert {"type": "text_delta", "text": "after"} in [e.get("delta") for e in _events(out)]
