"""Calls as an upstream streams them when nothing repairs them (`repair: {mode: off}`): the translated routes open a
call's block with its name, so a name that comes in a later fragment than the call's first is waited for (the
block opened with an empty name, and the Anthropic SDK's final message named no tool); and a stored Responses
answer whose call has no name at all is still answered (it was a 400 blaming the client's input, or, streamed, a
failed response with a gap in its sequence numbers)."""

from __future__ import annotations

import json

import anthropic
import openai
import pytest

from tests.dialects.conftest import ANTHROPIC_WEATHER, RESPONSES_WEATHER
from tests.fakes.openai_upstream import Step, chunk, completion

CFG = """
providers:
  lab: {{type: openai, base_url: '{url}', retries: 0}}
models:
  - {{name: m, provider: lab, repair: {{mode: off}}}}
"""


def _late_name(name: str = "get_weather") -> list[dict]:
    """A call whose first fragment carries its id only; its name comes with the arguments' first piece."""
    return [chunk("m", {"role": "assistant", "content": ""}), chunk("m", {"content": "Checking."}),
            chunk("m", {"tool_calls": [{"index": 0, "id": "call_a", "type": "function", "function": {}}]}),
            chunk("m", {"tool_calls": [{"index": 0, "function": {"name": name, "arguments": '{"city": '}}]}),
            chunk("m", {"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
            chunk("m", {}, "tool_calls")]


async def test_messages_stream_waits_for_a_late_name(fakes, router):
    up = await fakes()
    up.push(Step(sse=_late_name(), interval=0.002))
    r = await router(CFG.format(url=up.url))
    client = anthropic.AsyncAnthropic(base_url=r.url, api_key="unused", max_retries=0)
    async with client.messages.stream(model="m", max_tokens=100, tools=[ANTHROPIC_WEATHER],  # type: ignore[list-item]
                                      messages=[{"role": "user", "content": "weather?"}]) as stream:
        final = await stream.get_final_message()
    uses = [b for b in final.content if b.type == "tool_use"]
    assert [(u.name, u.input) for u in uses] == [("get_weather", {"city": "Paris"})]
    assert final.stop_reason == "tool_use"


@pytest.mark.parametrize("name", ["get_weather", ""], ids=["late name", "no name ever"])
async def test_responses_stream_waits_for_a_late_name_and_completes_without_one(fakes, router, name):
    up = await fakes()
    up.push(Step(sse=_late_name(name), interval=0.002))
    r = await router(CFG.format(url=up.url))
    client = openai.AsyncOpenAI(base_url=r.url + "/v1", api_key="unused", max_retries=0)
    seqs = []
    async with client.responses.stream(model="m", input="weather?", tools=[RESPONSES_WEATHER]) as stream:  # type: ignore[list-item]
        async for event in stream:
            seqs.append(event.sequence_number)
        final = await stream.get_final_response()
    assert seqs == list(range(len(seqs)))
    assert final.status == "completed"
    calls = [o for o in final.output if o.type == "function_call"]
    assert [(c.call_id, c.name, c.arguments) for c in calls] == [("call_a", name, '{"city": "Paris"}')]


async def test_a_responses_answer_with_a_nameless_call_is_answered_not_stored(fakes, router):
    up = await fakes()
    call = {"id": "call_1", "type": "function", "function": {"name": "", "arguments": "{}"}}
    up.push(Step(json=completion(None, "m", tool_calls=[call], finish_reason="tool_calls")))
    r = await router(CFG.format(url=up.url))
    client = openai.AsyncOpenAI(base_url=r.url + "/v1", api_key="unused", max_retries=0)
    resp = await client.responses.create(model="m", input="weather?", tools=[RESPONSES_WEATHER])  # type: ignore[list-item]
    assert resp.status == "completed" and [o.type for o in resp.output] == ["function_call"]
    with pytest.raises(openai.NotFoundError):  # nothing a later request could send back was kept
        await client.responses.retrieve(resp.id)


CITY_ARGS = {"single quotes": "{'city': 'Oslo',}", "trailing comma": '{"city": "Oslo", }',
             "cut off": '{"city": "Oslo', "strict": '{"city":"Oslo"}'}


def _args_in_pieces(args: str) -> list[dict]:
    return [chunk("m", {"role": "assistant", "content": ""}),
            chunk("m", {"tool_calls": [{"index": 0, "id": "c1", "type": "function",
                                        "function": {"name": "get_weather", "arguments": ""}}]}),
            *[chunk("m", {"tool_calls": [{"index": 0, "function": {"arguments": args[i:i + 5]}}]})
              for i in range(0, len(args), 5)],
            chunk("m", {}, "tool_calls")]


@pytest.mark.parametrize("how", ["model", "header"])
@pytest.mark.parametrize("args", list(CITY_ARGS))
async def test_messages_stream_sends_arguments_that_are_not_json_as_json(fakes, router, args, how):
    """The joined `partial_json` of a tool_use block is JSON of its input, as the Messages protocol requires (the
    anthropic SDK parses it: "Unable to parse tool parameter JSON"), and the input the non-stream answer has, when
    an upstream's arguments are not JSON and nothing repairs them. Arguments cut inside a member are not closed
    (the cut member was made whole: a call the model did not finish); the input keeps the whole members only."""
    up = await fakes()
    text = CITY_ARGS[args]
    call = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": text}}
    up.push(Step(json=completion(None, "m", tool_calls=[call], finish_reason="tool_calls")),
            Step(sse=_args_in_pieces(text), interval=0.002))
    r = await router((CFG if how == "model" else CFG.replace(", repair: {{mode: off}}", "")).format(url=up.url))
    client = anthropic.AsyncAnthropic(base_url=r.url, api_key="unused", max_retries=0)
    kw = {"model": "m", "max_tokens": 100, "tools": [ANTHROPIC_WEATHER], "messages": [{"role": "user", "content": "x"}],
          "extra_headers": {"x-agentgate-repair": "off"} if how == "header" else {}}
    whole = await client.messages.create(**kw)  # type: ignore[arg-type]
    pieces = []
    async with client.messages.stream(**kw) as stream:  # type: ignore[arg-type]
        async for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                pieces.append(event.delta.partial_json)
        final = await stream.get_final_message()
    inputs = [b.input for b in final.content if b.type == "tool_use"]
    if args == "cut off":  # strict JSON cut inside a member: that member is not guessed at, nor closed
        assert inputs == [b.input for b in whole.content if b.type == "tool_use"] == [{}]
        assert "".join(pieces) == text
        return
    assert inputs == [b.input for b in whole.content if b.type == "tool_use"] == [{"city": "Oslo"}]
    assert json.loads("".join(pieces)) == {"city": "Oslo"}
    if args != "single quotes":
        assert len(pieces) > 1  # what is JSON still goes out as it comes (the rest at the block's end)


@pytest.mark.parametrize("args", [
    '{"city": "\\ud83d\\ude00 Oslo", "unit": "c",}',  # an emoji as an ensure_ascii encoder writes it; a comma
    "{\"city\": \"\\ud83d\\ude00\", \"unit\": 'c'}",
])
async def test_messages_stream_keeps_every_member_after_an_escaped_surrogate_pair(fakes, router, args):
    """What went out held the pair as two code points, the lenient reading one: they did not agree, and the block
    was only closed, dropping every member after the point where the text stopped being JSON ("unit")."""
    up = await fakes()
    call = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": args}}
    up.push(Step(json=completion(None, "m", tool_calls=[call], finish_reason="tool_calls")),
            Step(sse=_args_in_pieces(args), interval=0.002))
    r = await router(CFG.format(url=up.url))
    client = anthropic.AsyncAnthropic(base_url=r.url, api_key="unused", max_retries=0)
    kw = {"model": "m", "max_tokens": 100, "tools": [ANTHROPIC_WEATHER], "messages": [{"role": "user", "content": "x"}]}
    whole = await client.messages.create(**kw)  # type: ignore[arg-type]
    async with client.messages.stream(**kw) as stream:  # type: ignore[arg-type]
        final = await stream.get_final_message()
    expected = [{"city": "\U0001F600 Oslo" if "Oslo" in args else "\U0001F600", "unit": "c"}]
    assert [b.input for b in final.content if b.type == "tool_use"] == \
        [b.input for b in whole.content if b.type == "tool_use"] == expected
