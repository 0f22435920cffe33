"""A reasoning item is listed as the client had it when its turn was answered: `GET /v1/responses/{id}/input_items`
rebuilds a stored response's input from its conversation in chat form, which keeps the reasoning's text only, so an
earlier turn's reasoning item was listed with an empty `summary` even where that turn asked for one (and the
client got its text as the summary). The conversation now keeps which assistant messages' reasoning the client had
with a summary (their positions; the text is not stored again), along a `previous_response_id` chain, through the
items a later request references, and for a response whose stream still runs."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from tests.dialects.conftest import CFG, RESPONSES_WEATHER
from tests.dialects.test_responses_in_flight import stream_until
from tests.fakes.openai_upstream import Step, chunk, completion

THOUGHTS = ("I should look up the weather.", "Paris is mild today.", "Say thanks back.")
CALL = {"id": "call_00_abc", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
ASK = [{"role": "user", "content": "Weather in Paris?"}]


def _answer(stream: bool, thought: str, *, call: bool = False, text: str = "It is 18C.") -> Step:
    """Reasoning (`thought`), then a call or text."""
    if stream:
        after = [chunk("m", {"tool_calls": [{**CALL, "index": 0}]}), chunk("m", {}, "tool_calls")] if call else [
            chunk("m", {"content": text}), chunk("m", {}, "stop")]
        return Step(sse=[chunk("m", {"role": "assistant", "content": None, "reasoning_content": thought}), *after])
    doc = completion(None if call else text, "m", tool_calls=[CALL] if call else None,
                     finish_reason="tool_calls" if call else "stop")
    doc["choices"][0]["message"]["reasoning_content"] = thought
    return Step(json=doc)


async def _created(c: Any, stream: bool, **kw: Any) -> Any:
    if stream:
        async with c.responses.stream(**kw) as s:
            return await s.get_final_response()
    return await c.responses.create(**kw)


def _shown(item: Any) -> dict[str, Any]:
    """A reasoning item as a client reads it, but its id (a listed input item has an id of its own)."""
    out: dict[str, Any] = item.model_dump(exclude_none=True) if not isinstance(item, dict) else dict(item)
    out.pop("id", None)
    return out


async def _listed_reasoning(c: Any, resp_id: str) -> list[dict[str, Any]]:
    listed = await c.responses.input_items.list(resp_id, order="asc")
    return [_shown(i) for i in listed.data if i.type == "reasoning"]


def _ask(summary: bool) -> dict[str, Any]:
    return {"reasoning": {"summary": "auto"}} if summary else {}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("asks", [(True, True, False), (True, False, True), (False, True, True)],
                         ids=["summary-summary-none", "summary-none-summary", "none-summary-summary"])
async def test_earlier_turns_reasoning_is_listed_as_the_client_got_it(fakes, router, stream: bool,
                                                                      asks: tuple[bool, bool, bool]) -> None:
    """A tool loop over three turns chained by `previous_response_id`, each asking for a summary or not: each
    turn's listed input has every earlier turn's reasoning item as that turn gave it, summary and content."""
    up = await fakes()
    up.push(_answer(stream, THOUGHTS[0], call=True), _answer(stream, THOUGHTS[1]), _answer(stream, THOUGHTS[2]))
    r = await router(CFG.format(url=up.url))
    c = r.client()
    kw: dict[str, Any] = {"model": "m", "tools": [RESPONSES_WEATHER]}
    first = await _created(c, stream, input=ASK, **kw, **_ask(asks[0]))
    answer = {"type": "function_call_output", "call_id": first.output[1].call_id, "output": "18C"}
    second = await _created(c, stream, input=[answer], previous_response_id=first.id, **kw, **_ask(asks[1]))
    third = await _created(c, stream, input="Thanks!", previous_response_id=second.id, **kw, **_ask(asks[2]))
    got = [_shown(turn.output[0]) for turn in (first, second, third)]
    for turn, asked in zip(got, asks, strict=True):
        assert turn["type"] == "reasoning" and bool(turn["summary"]) == asked, turn
    assert await _listed_reasoning(c, second.id) == got[:1]
    assert await _listed_reasoning(c, third.id) == got[:2]
    for turn in (first, second, third):  # the stored Response: its output as the client got it
        read = await c.responses.retrieve(turn.id)
        assert [i.model_dump(exclude_none=True) for i in read.output] == [
            i.model_dump(exclude_none=True) for i in turn.output]


async def test_a_referenced_listed_item_keeps_its_summary(fakes, router) -> None:
    """A listed input item named by a later request's `item_reference` is the item as listed: the reasoning it
    stands for is listed with its summary in that request's input too."""
    up = await fakes()
    up.push(_answer(False, THOUGHTS[0], call=True), _answer(False, THOUGHTS[1]), _answer(False, THOUGHTS[2]))
    r = await router(CFG.format(url=up.url))
    c = r.client()
    kw: dict[str, Any] = {"model": "m", "tools": [RESPONSES_WEATHER], "reasoning": {"summary": "auto"}}
    first = await c.responses.create(input=ASK, **kw)
    answer = {"type": "function_call_output", "call_id": first.output[1].call_id, "output": "18C"}
    second = await c.responses.create(input=[answer], previous_response_id=first.id, **kw)
    listed = (await c.responses.input_items.list(second.id, order="asc")).data
    assert [i.type for i in listed] == ["message", "reasoning", "function_call", "function_call_output"]
    refs = [{"type": "item_reference", "id": i.id} for i in listed]
    third = await c.responses.create(input=refs, model="m", tools=[RESPONSES_WEATHER])  # (no summary asked)
    assert await _listed_reasoning(c, third.id) == [_shown(first.output[0])]
    assert _shown(first.output[0])["summary"] == [{"type": "summary_text", "text": THOUGHTS[0]}]


@pytest.mark.parametrize("sent", ["summary-and-content", "summary-only", "content-only"])
async def test_a_reasoning_item_sent_as_input_is_listed_with_the_summary_it_had(fakes, router, sent: str) -> None:
    """A client that keeps its own conversation sends an earlier reasoning item back: listed with a summary when it
    came with one, without one when it came without (its text as its content either way: the form every listed
    reasoning item has)."""
    up = await fakes()
    up.push(Step(json=completion("It is 18C.", "m")))
    r = await router(CFG.format(url=up.url))
    c = r.client()
    summary = [{"type": "summary_text", "text": THOUGHTS[0]}]
    content = [{"type": "reasoning_text", "text": THOUGHTS[0]}]
    item: dict[str, Any] = {"type": "reasoning", "id": "rs_client", "summary": [] if sent == "content-only" else
                            summary}
    if sent != "summary-only":
        item["content"] = content
    call = {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'}
    made = await c.responses.create(model="m", tools=[RESPONSES_WEATHER], input=[
        *ASK, item, call, {"type": "function_call_output", "call_id": "call_1", "output": "18C"}])
    listed, = await _listed_reasoning(c, made.id)
    assert (listed["summary"], listed["content"]) == ([] if sent == "content-only" else summary, content), listed


async def test_the_input_of_a_running_stream_lists_the_summary(fakes, router) -> None:
    """The input items of a stored Response whose stream still runs (listed from its conversation in memory) have
    the earlier turn's reasoning with its summary too."""
    up = await fakes()
    resume = asyncio.Event()
    up.push(_answer(False, THOUGHTS[0], call=True),
            Step(sse=[chunk("m", {"role": "assistant", "content": ""}), chunk("m", {"content": "Hel"}),
                      chunk("m", {"content": "lo"}), chunk("m", {}, "stop")], pause_after=2, resume=resume))
    r = await router(CFG.format(url=up.url))
    c = r.client()
    kw: dict[str, Any] = {"model": "m", "tools": [RESPONSES_WEATHER], "reasoning": {"summary": "auto"}}
    first = await c.responses.create(input=ASK, **kw)
    answer = {"type": "function_call_output", "call_id": first.output[1].call_id, "output": "18C"}
    body = {**kw, "input": [answer], "previous_response_id": first.id, "stream": True}
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/responses", json=body) as resp:
        resp_id, _ = await stream_until(resp, "Hel")
        assert await _listed_reasoning(c, resp_id) == [_shown(first.output[0])]
        resume.set()
        await resp.read()
    assert await _listed_reasoning(c, resp_id) == [_shown(first.output[0])]


async def test_a_resent_conversation_keeps_where_its_summaries_are(fakes, router) -> None:
    """An agent resends its whole conversation each turn, and the router takes its earlier translation up: the
    positions of the summarized reasoning go with it, and the new items add theirs."""
    up = await fakes()
    up.push(Step(json=completion("It is 18C.", "m")), Step(json=completion("You're welcome.", "m")))
    r = await router(CFG.format(url=up.url))
    c = r.client()
    summed = {"type": "reasoning", "id": "rs_a", "summary": [{"type": "summary_text", "text": THOUGHTS[0]}],
              "content": [{"type": "reasoning_text", "text": THOUGHTS[0]}]}
    bare = {"type": "reasoning", "id": "rs_b", "summary": [], "content": [{"type": "reasoning_text",
                                                                          "text": THOUGHTS[1]}]}
    call = {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'}
    long_ask = {"role": "user", "content": "Weather in Paris, every hour? Keep a log of it. " * 6}  # (long enough
    # to be known by its bytes, as an agent's first message is: what a resend's earlier translation is found by)
    turn = [long_ask, summed, call, {"type": "function_call_output", "call_id": "call_1", "output": "18C"}]
    first = await c.responses.create(model="m", tools=[RESPONSES_WEATHER], input=turn)
    later = [*turn, bare, {"role": "assistant", "content": "It is 18C."}, {"role": "user", "content": "Thanks!"},
             {**summed, "id": "rs_c"}, {"role": "assistant", "content": "Anything else?"},
             {"role": "user", "content": "No."}]
    second = await c.responses.create(model="m", tools=[RESPONSES_WEATHER], input=later)
    assert [i["summary"] for i in await _listed_reasoning(c, first.id)] == [summed["summary"]]
    assert [i["summary"] for i in await _listed_reasoning(c, second.id)] == [summed["summary"], [],
                                                                             summed["summary"]]
