"""A Response's reasoning reaches clients that read only a reasoning item's `summary` (the AI SDK's Responses model,
openai-agents, Codex by default): when the request asks for a summary (`reasoning.summary` or its deprecated name
`generate_summary`: "auto", "concise" or "detailed"), the reasoning item carries its text as `summary` too (a local
model writes no summary of its own: its reasoning is the best there is), streamed as OpenAI streams summaries
(`response.reasoning_summary_part.added`, `response.reasoning_summary_text.delta` as the text comes,
`response.reasoning_summary_text.done`, `response.reasoning_summary_part.done`) beside the `reasoning_text` events.
Before, `summary` was always empty and those clients showed no reasoning. Without a summary request nothing
changes. Sent back, an item with both `content` and `summary` gives the upstream its reasoning once."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from openai.types.responses import (
    ResponseReasoningSummaryPartAddedEvent,
    ResponseReasoningSummaryPartDoneEvent,
    ResponseReasoningSummaryTextDeltaEvent,
    ResponseReasoningSummaryTextDoneEvent,
)

from tests.dialects.conftest import CFG, RESPONSES_WEATHER
from tests.fakes.openai_upstream import Step, chunk, completion

THOUGHT = "I should look up the weather."
PIECES = ("I should ", "look up ", "the weather.")
ANSWER = "Let me check."
CALL = {"id": "call_00_abc", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
SUMMARY = [{"type": "summary_text", "text": THOUGHT}]
CONTENT = [{"type": "reasoning_text", "text": THOUGHT}]
ASK = [{"role": "user", "content": "Weather in Paris?"}]


def _answer(stream: bool, *, call: bool = False) -> Step:
    """Reasoning (streamed in three pieces), then text or a call."""
    if stream:
        after = [chunk("m", {"tool_calls": [{**CALL, "index": 0}]}), chunk("m", {}, "tool_calls")] if call else [
            chunk("m", {"content": ANSWER}), chunk("m", {}, "stop")]
        return Step(sse=[chunk("m", {"role": "assistant", "content": None, "reasoning_content": PIECES[0]}),
                         *[chunk("m", {"reasoning_content": p}) for p in PIECES[1:]], *after])
    doc = completion(None if call else ANSWER, "m", tool_calls=[CALL] if call else None,
                     finish_reason="tool_calls" if call else "stop")
    doc["choices"][0]["message"]["reasoning_content"] = THOUGHT
    return Step(json=doc)


async def _created(c: Any, stream: bool, **kw: Any) -> Any:
    """A Response through the openai SDK: `responses.create`, or a stream's final Response (the SDK's own
    accumulation of its events)."""
    if stream:
        async with c.responses.stream(**kw) as s:
            return await s.get_final_response()
    return await c.responses.create(**kw)


def _dumped(item: Any) -> dict[str, Any]:
    out: dict[str, Any] = item.model_dump(exclude_none=True)
    return out


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("reasoning", [{"summary": "auto"}, {"effort": "low", "summary": "detailed"},
                                       {"generate_summary": "concise"}], ids=["auto", "detailed", "generate_summary"])
async def test_a_summary_asked_for_carries_the_reasoning(fakes, router, stream: bool,
                                                         reasoning: dict[str, Any]) -> None:
    up = await fakes()
    up.push(_answer(stream))
    r = await router(CFG.format(url=up.url))
    resp = await _created(r.client(), stream, model="m", input=ASK, reasoning=reasoning, store=False)
    assert [i.type for i in resp.output] == ["reasoning", "message"]
    item = _dumped(resp.output[0])
    assert (item["summary"], item["content"], item["status"]) == (SUMMARY, CONTENT, "completed"), item
    assert resp.output_text == ANSWER
    assert resp.reasoning.summary == (reasoning.get("summary") or reasoning["generate_summary"])


async def _events(url: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The SSE events of a streamed Response, as the router wrote them."""
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/responses", json={**body, "stream": True}) as resp:
        assert resp.status == 200, await resp.text()
        raw = (await resp.read()).decode()
    events = []
    for block in raw.strip().split("\n\n"):
        name, data = block.split("\n", 1)
        doc = json.loads(data.removeprefix("data: "))
        assert name == f"event: {doc['type']}", block
        events.append(doc)
    return events


async def test_the_stream_s_summary_events(fakes, router) -> None:
    """OpenAI's summary events, each as the openai SDK's type has it, beside the reasoning_text ones: a summary part
    added with the reasoning_text part, a summary delta after each reasoning_text delta, the summary's done events
    after the part's; every event numbered in turn; the item done and in `response.completed` with both."""
    up = await fakes()
    up.push(_answer(True))
    r = await router(CFG.format(url=up.url))
    events = await _events(r.url, {"model": "m", "input": ASK, "reasoning": {"summary": "auto"}, "store": False})
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    mine = [e for e in events if e.get("output_index") == 0]
    rs_id = mine[0]["item"]["id"]
    assert [e["type"] for e in mine] == [
        "response.output_item.added", "response.content_part.added", "response.reasoning_summary_part.added",
        *["response.reasoning_text.delta", "response.reasoning_summary_text.delta"] * len(PIECES),
        "response.reasoning_text.done", "response.content_part.done", "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done", "response.output_item.done"]
    added = mine[0]["item"]
    assert (added["type"], added["summary"], added["content"], added["status"]) == (
        "reasoning", [], [], "in_progress"), added
    summary = [e for e in mine if "reasoning_summary" in e["type"]]
    assert all((e["item_id"], e["output_index"], e["summary_index"]) == (rs_id, 0, 0) for e in summary), summary
    assert "content_index" not in json.dumps(summary)
    assert summary[0]["part"] == {"type": "summary_text", "text": ""}
    assert [e["delta"] for e in summary[1:-2]] == list(PIECES)
    assert summary[-2]["text"] == THOUGHT
    assert summary[-1]["part"] == SUMMARY[0] and "status" not in summary[-1]
    done = mine[-1]["item"]
    assert (done["id"], done["summary"], done["content"], done["status"]) == (rs_id, SUMMARY, CONTENT, "completed")
    completed = events[-1]
    assert completed["type"] == "response.completed" and completed["response"]["output"][0] == done


async def test_the_openai_sdk_reads_the_summary_events(fakes, router) -> None:
    """Each summary event is the openai SDK's own type (not an unknown event it passes through), and the SDK's
    stream accumulation gives the final Response with the summary."""
    up = await fakes()
    up.push(_answer(True))
    r = await router(CFG.format(url=up.url))
    async with r.client().responses.stream(model="m", input=ASK, reasoning={"summary": "auto"}, store=False) as s:
        events = [e async for e in s if "reasoning_summary" in e.type]
        final = await s.get_final_response()
    kinds = (ResponseReasoningSummaryPartAddedEvent, *[ResponseReasoningSummaryTextDeltaEvent] * len(PIECES),
             ResponseReasoningSummaryTextDoneEvent, ResponseReasoningSummaryPartDoneEvent)
    assert [type(e) for e in events] == list(kinds)
    assert "".join(e.delta for e in events if isinstance(e, ResponseReasoningSummaryTextDeltaEvent)) == THOUGHT
    assert {(e.item_id, e.output_index, e.summary_index) for e in events} == {(final.output[0].id, 0, 0)}
    assert _dumped(final.output[0])["summary"] == SUMMARY


@pytest.mark.parametrize("reasoning", [None, {"effort": "low"}, {"summary": None}, {"summary": "none"}],
                         ids=["no-reasoning", "effort-only", "null", "none"])
async def test_without_a_summary_request_nothing_changes(fakes, router, reasoning: dict[str, Any] | None) -> None:
    """The reasoning as before: its content, an empty summary, no summary events."""
    up = await fakes()
    up.push(_answer(True), _answer(False))
    r = await router(CFG.format(url=up.url))
    body: dict[str, Any] = {"model": "m", "input": ASK, "store": False,
                            **({"reasoning": reasoning} if reasoning is not None else {})}
    events = await _events(r.url, body)
    assert not [e for e in events if "summary" in e["type"]], events
    whole = await r.client().responses.create(**body)
    for item in (events[-1]["response"]["output"][0], _dumped(whole.output[0])):
        assert (item["type"], item["summary"], item["content"]) == ("reasoning", [], CONTENT), item


async def test_a_reasoning_cut_off_ends_its_summary_incomplete(fakes, router) -> None:
    """An answer the output limit cut while it reasoned: the reasoning item `incomplete`, its summary part done with
    `status: incomplete` (the openai SDK's field for a part whose generation was interrupted)."""
    up = await fakes()
    up.push(Step(sse=[chunk("m", {"role": "assistant", "content": None, "reasoning_content": PIECES[0]}),
                      chunk("m", {}, "length")]))
    r = await router(CFG.format(url=up.url))
    events = await _events(r.url, {"model": "m", "input": ASK, "reasoning": {"summary": "auto"}, "store": False})
    part_done, = [e for e in events if e["type"] == "response.reasoning_summary_part.done"]
    assert part_done["part"] == {"type": "summary_text", "text": PIECES[0]} and part_done["status"] == "incomplete"
    item = events[-1]["response"]["output"][0]
    assert events[-1]["type"] == "response.incomplete"
    assert (item["status"], item["summary"]) == ("incomplete", [{"type": "summary_text", "text": PIECES[0]}])


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_a_think_block_repair_separated_is_the_summary(fakes, router, stream: bool) -> None:
    """Reasoning the model wrote in its text (`<think>`), taken out by the repair, is summarised alike."""
    up = await fakes()
    text = f"<think>\n{THOUGHT}\n</think>\n\n{ANSWER}"
    if stream:
        up.push(Step(sse=[chunk("m", {"role": "assistant", "content": ""}),
                          *[chunk("m", {"content": text[i:i + 7]}) for i in range(0, len(text), 7)],
                          chunk("m", {}, "stop")]))
    else:
        up.push(Step(json=completion(text, "m")))
    r = await router(CFG.format(url=up.url))
    resp = await _created(r.client(), stream, model="m", input=ASK, tools=[RESPONSES_WEATHER],
                          reasoning={"summary": "auto"}, store=False)
    assert [i.type for i in resp.output] == ["reasoning", "message"]
    item = _dumped(resp.output[0])
    assert THOUGHT in item["content"][0]["text"] and "<think>" not in item["content"][0]["text"], item
    assert item["summary"] == [{"type": "summary_text", "text": item["content"][0]["text"]}]
    assert resp.output_text.strip() == ANSWER


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("stored", [False, True], ids=["input_items", "previous_response_id"])
async def test_the_item_sent_back_gives_the_reasoning_once(fakes, router, stream: bool, stored: bool) -> None:
    """The item with both `content` and `summary` (as the client has it, or as the store kept it) goes back to the
    upstream as its reasoning, once."""
    up = await fakes()
    up.push(_answer(stream, call=True), Step(json=completion("It is 18C.", "m")))
    r = await router(CFG.format(url=up.url))
    c = r.client()
    kw: dict[str, Any] = {"model": "m", "tools": [RESPONSES_WEATHER], "store": stored,
                          "reasoning": {"summary": "auto"}}
    first = await _created(c, stream, input=ASK, **kw)
    assert [i.type for i in first.output] == ["reasoning", "function_call"]
    reasoning, call = (_dumped(i) for i in first.output)
    assert (reasoning["summary"], reasoning["content"]) == (SUMMARY, CONTENT)
    answer = {"type": "function_call_output", "call_id": call["call_id"], "output": "18C"}
    if stored:
        await c.responses.create(previous_response_id=first.id, input=[answer], **kw)
    else:
        await c.responses.create(input=[*ASK, reasoning, call, answer], **kw)
    assert [m for m in up.requests[1].body["messages"] if m["role"] == "assistant"] == [
        {"role": "assistant", "content": None, "tool_calls": [CALL], "reasoning_content": THOUGHT}]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_the_stored_response_holds_the_same_item(fakes, router, stream: bool) -> None:
    up = await fakes()
    up.push(_answer(stream))
    r = await router(CFG.format(url=up.url))
    c = r.client()
    made = await _created(c, stream, model="m", input=ASK, reasoning={"summary": "auto"})
    read = await c.responses.retrieve(made.id)
    assert _dumped(read.output[0]) == _dumped(made.output[0])
    assert _dumped(read.output[0])["summary"] == SUMMARY


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_with_encrypted_content_a_stateless_client_gets_it_back_once(fakes, router, stream: bool) -> None:
    """`include: ["reasoning.encrypted_content"]` with a summary (Codex's default): the item has all three; sent
    back with its summary and encrypted_content only (as Codex sends it), the upstream gets the reasoning once."""
    up = await fakes()
    up.push(_answer(stream, call=True), Step(json=completion("It is 18C.", "m")))
    r = await router(CFG.format(url=up.url))
    c = r.client()
    kw: dict[str, Any] = {"model": "m", "tools": [RESPONSES_WEATHER], "store": False,
                          "include": ["reasoning.encrypted_content"], "reasoning": {"summary": "auto"}}
    first = await _created(c, stream, input=ASK, **kw)
    reasoning, call = (_dumped(i) for i in first.output)
    assert (reasoning["summary"], reasoning["content"]) == (SUMMARY, CONTENT)
    assert reasoning["encrypted_content"]
    back = {"type": "reasoning", "id": reasoning["id"], "summary": reasoning["summary"],
            "encrypted_content": reasoning["encrypted_content"]}
    answer = {"type": "function_call_output", "call_id": call["call_id"], "output": "18C"}
    await c.responses.create(input=[*ASK, back, call, answer], **kw)
    assert [m for m in up.requests[1].body["messages"] if m["role"] == "assistant"] == [
        {"role": "assistant", "content": None, "tool_calls": [CALL], "reasoning_content": THOUGHT}]
