"""A Responses stream that passes `max_stream_repair_kchars` ends with `error` + `response.failed`; the events
that went out before keep their promise: sequence numbers without a hole, every item in the failed Response
announced by `response.output_item.added`, and every item closed by `response.output_item.done` before a new one
is announced (the last one before the error event). The bound is checked before a new item's events are
numbered; what a chunk made before the piece past the bound goes out before the error event."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

from tests.dialects.conftest import CFG, RESPONSES_WEATHER
from tests.fakes.openai_upstream import Step, chunk

_FIRST = {"reasoning": {"role": "assistant", "reasoning_content": "r" * 600},
          "text": {"role": "assistant", "content": "t" * 600}}
_SECOND: dict[str, dict[str, Any]] = {
    "text": {"content": "u" * 600},
    "reasoning": {"reasoning_content": "s" * 600},
    "refusal": {"refusal": "n" * 600},
    # a call whose first fragment carries its arguments: its item would be announced, then its arguments too many
    "call": {"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {
        "name": "get_weather", "arguments": json.dumps({"city": "c" * 600})}}]},
}


async def _events(url: str, body: dict[str, Any], headers: dict[str, str]) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/responses", json=body, headers=headers) as resp:
        assert resp.status == 200
        text = (await resp.read()).decode()
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


@pytest.mark.parametrize(("first", "second"), [("reasoning", "text"), ("text", "reasoning"), ("text", "refusal"),
                                                ("text", "call")])
async def test_too_large_mid_stream_loses_no_numbered_events(fakes, router, first, second):
    up = await fakes()
    # 600 characters, then 600 more of another kind: opening the second item passes the 1024-character bound
    up.push(Step(sse=[chunk("m", _FIRST[first]), chunk("m", _SECOND[second]), chunk("m", {}, "stop")],
                 interval=0.01))
    r = await router("server: {max_stream_repair_kchars: 1}\n" + CFG.format(url=up.url))
    body = {"model": "m", "input": "hi", "stream": True, "tools": [RESPONSES_WEATHER]}
    # a call not repaired comes as the upstream sent it: one fragment with its name and all its arguments
    events = await _events(r.url, body, {"x-agentgate-repair": "off"} if second == "call" else {})
    # the first item's .done events and the second's output_item.added were numbered, then thrown away
    _check(events, ("r" if first == "reasoning" else "t") * 600)


@pytest.mark.parametrize("second", ["text", "call"])
async def test_too_large_in_one_read_loses_no_numbered_events(fakes, router, second):
    """The upstream's chunks come in one read: the events the chunks before the one past the bound made go out
    before the error event (they were all dropped, `response.created` too)."""
    up = await fakes()
    up.push(Step(sse=[chunk("m", _FIRST["text"]), chunk("m", _SECOND[second]), chunk("m", {}, "stop")]))
    r = await router("server: {max_stream_repair_kchars: 1}\n" + CFG.format(url=up.url))
    body = {"model": "m", "input": "hi", "stream": True, "tools": [RESPONSES_WEATHER]}
    _check(await _events(r.url, body, {}), "t" * 600)


def _check(events: list[dict[str, Any]], first_text: str) -> None:
    """A stream ended by `response_too_large` that sent every event it numbered, `first_text` in its first item."""
    assert [e["type"] for e in events][-2:] == ["error", "response.failed"]
    assert events[-2]["code"] == "response_too_large"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    added = [e["item"]["id"] for e in events if e["type"] == "response.output_item.added"]
    done = [e["item"]["id"] for e in events if e["type"] == "response.output_item.done"]
    failed = events[-1]["response"]
    assert [item["id"] for item in failed["output"]] == added  # no item the client was never told of
    assert done == added  # each item closed before the next was announced, the last one before the error
    closed = [i for i, e in enumerate(events) if e["type"] == "response.output_item.done"]
    assert not closed or closed[-1] < len(events) - 2
    assert failed["output"][0]["content"][0]["text"] == first_text
    sent = [e["delta"] for e in events if e["type"].endswith("_text.delta") and e["item_id"] == added[0]]
    assert "".join(sent) == first_text  # the client was sent what the failed Response holds
    adapter: TypeAdapter[ResponseStreamEvent] = TypeAdapter(ResponseStreamEvent)
    for e in events:  # each event as the openai SDK reads it
        adapter.validate_python(e)


@pytest.mark.parametrize("tools", [True, False])
async def test_first_chunk_past_the_bound_still_starts_the_response(fakes, router, tools):
    """The first chunk alone passes the bound: `response.created` and `response.in_progress` were numbered with
    it and lost, so the client's first event was the error (the openai SDK wants `response.created` first)."""
    up = await fakes()
    up.push(Step(sse=[chunk("m", {"role": "assistant", "content": "t" * 2000}), chunk("m", {}, "stop")]))
    r = await router("server: {max_stream_repair_kchars: 1}\n" + CFG.format(url=up.url))
    body = {"model": "m", "input": "hi", "stream": True, **({"tools": [RESPONSES_WEATHER]} if tools else {})}
    events = await _events(r.url, body, {})
    assert [e["type"] for e in events] == ["response.created", "response.in_progress", "error", "response.failed"]
    assert [e["sequence_number"] for e in events] == [0, 1, 2, 3]
    assert events[-1]["response"]["output"] == []


async def test_one_chunk_of_reasoning_and_text_past_the_bound_keeps_the_reasoning(fakes, router):
    """One chunk carries reasoning that fits and text that passes the bound: the reasoning item's events (and the
    response's first two) were numbered, then lost with the error."""
    up = await fakes()
    delta = {"role": "assistant", "reasoning_content": "r" * 600, "content": "t" * 600}
    up.push(Step(sse=[chunk("m", delta), chunk("m", {}, "stop")]))
    r = await router("server: {max_stream_repair_kchars: 1}\n" + CFG.format(url=up.url))
    events = await _events(r.url, {"model": "m", "input": "hi", "stream": True}, {})
    _check(events, "r" * 600)
    assert events[0]["type"] == "response.created"


async def test_an_item_growing_past_the_bound_is_closed_before_the_error(fakes, router):
    """The open message grows past the bound: it is closed (`incomplete`, with the text it was sent) before the
    error event, as the failed Response lists it."""
    up = await fakes()
    up.push(Step(sse=[chunk("m", {"role": "assistant", "content": "t" * 600}), chunk("m", {"content": "u" * 600}),
                      chunk("m", {}, "stop")], interval=0.01))
    r = await router("server: {max_stream_repair_kchars: 1}\n" + CFG.format(url=up.url))
    events = await _events(r.url, {"model": "m", "input": "hi", "stream": True}, {})
    _check(events, "t" * 600)
    done = [e for e in events if e["type"] == "response.output_item.done"]
    assert done[-1]["item"]["status"] == "incomplete" == events[-1]["response"]["output"][-1]["status"]
    assert done[-1]["item"]["content"][0]["text"] == "t" * 600


async def test_whitespace_held_back_counts_toward_the_bound(fakes, router):
    """Whitespace before any text is held back (no item opens for it) and goes out with the text that follows: it
    is output the final object would hold, and counts toward the bound (it was held without one: 2 MB of blanks
    completed, the router holding all of it, joined anew for each chunk)."""
    up = await fakes()
    blanks = [chunk("m", {"content": " " * 1000}) for _ in range(2000)]
    up.push(Step(sse=[chunk("m", {"reasoning_content": "thinking"}), *blanks, chunk("m", {}, "stop")]))
    r = await router("server: {max_stream_repair_kchars: 1}\n" + CFG.format(url=up.url))
    events = await _events(r.url, {"model": "m", "input": "hi", "stream": True}, {})
    assert [e["type"] for e in events][-2:] == ["error", "response.failed"]
    assert events[-2]["code"] == "response_too_large"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
