"""A call cut off by the token limit, on the translated routes, through the real SDKs. A native call cut mid-arguments
(`finish_reason: "length"`) ended a Messages answer with `stop_reason: "tool_use"`, so Claude Code ran a Write
whose content was cut short; it is `max_tokens`, as Anthropic answers then. A text call whose header had gone out
when the stream ended inside its arguments is not completed (a call the model did not finish): its pieces add up to
what it wrote, in one block, before the text kept in its place."""

from __future__ import annotations

import openai
import pytest

from tests.dialects.conftest import ANTHROPIC_WEATHER, CFG, RESPONSES_WEATHER, claude
from tests.dialects.test_messages import raw_events
from tests.fakes.openai_upstream import Step, chunk, completion

NATIVE_CUT = [chunk("m", {"role": "assistant", "content": ""}),
              chunk("m", {"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                                          "function": {"name": "get_weather", "arguments": ""}}]}),
              chunk("m", {"tool_calls": [{"index": 0, "function": {"arguments": '{"city": "Par'}}]}),
              chunk("m", {}, "length")]
TEXT = 'Let me look.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Par'
TEXT_CUT = [chunk("m", {"role": "assistant", "content": ""}),
            *[chunk("m", {"content": TEXT[i:i + 6]}) for i in range(0, len(TEXT), 6)], chunk("m", {}, "length")]


@pytest.mark.parametrize("events", [NATIVE_CUT, TEXT_CUT], ids=["native call", "text call"])
async def test_messages_stream(fakes, router, events):
    up = await fakes()
    up.push(Step(sse=events, interval=0.002))
    up.push(Step(sse=events, interval=0.002))
    r = await router(CFG.format(url=up.url))
    async with claude(r.url).messages.stream(model="m", max_tokens=20, tools=[ANTHROPIC_WEATHER],  # type: ignore[list-item]
                                             messages=[{"role": "user", "content": "weather?"}]) as stream:
        final = await stream.get_final_message()
    assert final.stop_reason == "max_tokens"
    raw = await raw_events(r.url, {"model": "m", "max_tokens": 20, "stream": True, "tools": [ANTHROPIC_WEATHER],
                                   "messages": [{"role": "user", "content": "weather?"}]})
    uses = [d["index"] for e, d in raw if e == "content_block_start" and d["content_block"]["type"] == "tool_use"]
    assert len(uses) == 1
    sent = "".join(d["delta"]["partial_json"] for e, d in raw if e == "content_block_delta" and d["index"] == uses[0])
    assert sent == '{"city": "Par'  # as the model left them: a call cut inside its arguments is not completed
    assert raw[-2][1]["delta"]["stop_reason"] == "max_tokens"


async def test_responses_stream_arguments_add_up(fakes, router):
    up = await fakes()
    up.push(Step(sse=TEXT_CUT, interval=0.002))
    r = await router(CFG.format(url=up.url))
    client = openai.AsyncOpenAI(base_url=r.url + "/v1", api_key="unused", max_retries=0)
    deltas: dict[str, str] = {}
    done: dict[str, str] = {}
    last = None
    items = []
    async with client.responses.stream(model="m", input="weather?", tools=[RESPONSES_WEATHER]) as stream:  # type: ignore[list-item]
        async for event in stream:
            if event.type == "response.function_call_arguments.delta":
                deltas[event.item_id] = deltas.get(event.item_id, "") + event.delta
            elif event.type == "response.function_call_arguments.done":
                done[event.item_id] = event.arguments
            elif event.type == "response.output_item.done":
                items.append(event.item)
            last = event
    assert deltas and deltas == done
    assert last is not None and last.type == "response.incomplete"
    assert [i.status for i in last.response.output] == [i.status for i in items]
    assert items[-1].status == "incomplete"  # the item the limit cut (OpenAI marks it so)


async def test_responses_whole_marks_the_cut_item(fakes, router):
    up = await fakes()
    up.push(Step(json=completion("The answer is", "m", finish_reason="length")))
    r = await router(CFG.format(url=up.url))
    client = openai.AsyncOpenAI(base_url=r.url + "/v1", api_key="unused", max_retries=0)
    resp = await client.responses.create(model="m", input="question?", max_output_tokens=3)
    assert resp.status == "incomplete" and [i.status for i in resp.output] == ["incomplete"]
