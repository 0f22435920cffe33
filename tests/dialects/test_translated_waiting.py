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


def _blocks(events: list[dict]) -> dict[int, list]:
    out: dict[int, list] = {}
    for e in events:
        if e["type"] == "content_block_start":
            out[e["index"]] = [e["content_block"]["type"], ""]
        elif e["type"] == "content_block_delta":
            d = e["delta"]
            out[e["index"]][1] += d.get("partial_json", d.get("text", d.get("thinking", "")))
    return out


def test_the_fragment_that_completes_the_open_call_is_written_before_what_waited():
    """The completing piece went after what waited was released, which closed the block: it was dropped."""
    for between in (chunk("m", {"content": "One moment."}),
                    chunk("m", {"tool_calls": [{"index": 1, "id": "c2", "type": "function",
                                                "function": {"name": "f", "arguments": '{"city": "Lyon"}'}}]})):
        enc = MessagesStream("m", [])
        out = enc.feed(_call('{"city": ')) + enc.feed(between) + enc.feed(_call('"Paris"}', head=False))
        out += enc.finish()
        blocks = _blocks(_events(out))
        assert blocks[0] == ["tool_use", '{"city": "Paris"}'], blocks
        assert len(blocks) == 2
