"""The OpenAI Responses API in front of an OpenAI-compatible backend, driven by the real `openai` SDK."""

from __future__ import annotations

import json

import aiohttp
import openai
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from tests.dialects.conftest import CFG, CHAT_WEATHER, RESPONSES_WEATHER
from tests.fakes.openai_upstream import Step, chunk, completion, stream_of

BROKEN_HERMES = "<tool_call>{'name': 'get_weather', 'arguments': {'city': 'Paris'}}</tool_call>"


async def raw_stream(url: str, body: dict) -> list[dict]:
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/responses", json=body) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
        text = (await resp.read()).decode()
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        data = json.loads(lines["data"])
        assert data["type"] == lines["event"]
        events.append(data)
    return events


async def test_text_response_and_retrieve(fakes, router):
    up = await fakes()
    up.push(Step(json=completion("Hello there", "up-model")))
    r = await router(CFG.format(url=up.url))
    c = r.client()
    resp = await c.responses.create(model="renamed", input="hi", instructions="Be brief.", max_output_tokens=50,
                                    temperature=0.3, metadata={"k": "v"})
    assert resp.id.startswith("resp_") and resp.status == "completed" and resp.model == "renamed"
    assert resp.output_text == "Hello there" and resp.instructions == "Be brief."
    assert resp.usage is not None and (resp.usage.input_tokens, resp.usage.output_tokens) == (5, 3)
    body = up.requests[0].body
    assert body["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    assert (body["model"], body["max_tokens"], body["temperature"]) == ("up-model", 50, 0.3)
    got = await c.responses.retrieve(resp.id)
    assert got.id == resp.id and got.output_text == "Hello there" and got.metadata == {"k": "v"}
    await c.responses.delete(resp.id)
    with pytest.raises(openai.NotFoundError):
        await c.responses.retrieve(resp.id)


CHAT_TOO = {"prompt_cache_key": "thread-0123", "service_tier": "flex"}  # Responses fields chat has as they are


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_verbosity_cache_key_and_service_tier_reach_the_upstream_as_from_chat(fakes, router, stream):
    """`text.verbosity` (chat: `verbosity`), `prompt_cache_key` and `service_tier`, which Codex sends, were dropped
    on the way from Responses to an OpenAI-type provider while the chat route forwards them: they now reach it as
    the chat route sends them; the Response repeats the verbosity."""
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    c = r.client()
    await c.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}],
                                    verbosity="low", **CHAT_TOO)  # type: ignore[arg-type]
    from_chat = {k: up.requests[0].body.get(k) for k in ("verbosity", *CHAT_TOO)}
    assert from_chat == {"verbosity": "low", **CHAT_TOO}
    body = {"model": "m", "input": "hi", "store": False, "text": {"verbosity": "low"}, "stream": stream, **CHAT_TOO}
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/responses", json=body) as resp:
        assert resp.status == 200
        text = await resp.text()
    assert {k: up.requests[1].body.get(k) for k in from_chat} == from_chat
    doc = json.loads(text) if not stream else \
        next(json.loads(ln[6:]) for ln in text.splitlines() if '"response.completed"' in ln)["response"]
    assert doc["text"] == {"format": {"type": "text"}, "verbosity": "low"}


async def test_broken_tool_output_becomes_function_call_and_conversation_continues(fakes, router):
    up = await fakes()
    up.push(Step(json=completion(BROKEN_HERMES, "m")), Step(json=completion("Sunny, 21C.", "m")))
    r = await router(CFG.format(url=up.url))
    c = r.client()
    first = await c.responses.create(model="m", input=[{"role": "user", "content": "Weather in Paris?"}],
                                     instructions="Use tools.", tools=[RESPONSES_WEATHER],  # type: ignore[list-item]
                                     tool_choice="required")
    assert [o.type for o in first.output] == ["function_call"]
    call = first.output[0]
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris"} and call.call_id
    assert up.requests[0].body["tools"] == [CHAT_WEATHER] and up.requests[0].body["tool_choice"] == "required"

    second = await c.responses.create(model="m", previous_response_id=first.id, tools=[RESPONSES_WEATHER],  # type: ignore
                                      input=[{"type": "function_call_output", "call_id": call.call_id,
                                              "output": "sunny, 21C"}])
    assert second.output_text == "Sunny, 21C." and second.previous_response_id == first.id
    assert up.requests[1].body["messages"] == [  # the stored history; the old instructions are not carried over
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call.call_id, "type": "function", "function": {"name": "get_weather",
                                                                  "arguments": call.arguments}}]},
        {"role": "tool", "tool_call_id": call.call_id, "content": "sunny, 21C"},
    ]


async def test_input_items_translate(fakes, router):
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    await r.client().responses.create(model="m", input=[  # type: ignore[arg-type]
        {"role": "developer", "content": "dev note"},
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "look"},
            {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"}]},
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "thought"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "calling"}]},
        {"type": "function_call", "call_id": "call_a", "name": "get_weather", "arguments": '{"city":"Rome"}'},
        {"type": "function_call_output", "call_id": "call_a", "output": "rainy"},
    ])
    assert up.requests[0].body["messages"] == [
        {"role": "system", "content": "dev note"},
        {"role": "user", "content": [{"type": "text", "text": "look"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA",
                                                                         "detail": "low"}}]},
        {"role": "assistant", "content": "calling", "reasoning_content": "thought", "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}}]},
        {"role": "tool", "tool_call_id": "call_a", "content": "rainy"},
    ]


async def test_text_after_calls_joins_their_message(fakes, router):
    """A streamed answer lists a call, then text (as they came); agents send the items back so. The text joins the
    calls' assistant message: between the calls and their results it made an order strict backends refuse."""
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    call = {"type": "function_call", "call_id": "call_a", "name": "get_weather", "arguments": '{"city":"Rome"}'}
    await r.client().responses.create(model="m", input=[  # type: ignore[arg-type]
        {"role": "user", "content": "weather?"}, call,
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Also this."}]},
        {"type": "function_call_output", "call_id": "call_a", "output": "rainy"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Rainy."}]},
    ])
    assert up.requests[0].body["messages"] == [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "Checking.\n\nAlso this.", "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}}]},
        {"role": "tool", "tool_call_id": "call_a", "content": "rainy"},
        {"role": "assistant", "content": "Rainy."},
    ]


async def test_strict_reaches_the_chat_tool(fakes, router):
    """openai-agents marks its function tools `strict`; a chat backend that enforces schemas gets it (it was
    dropped). A tool that does not say keeps chat's default."""
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    await r.client().responses.create(model="m", input="weather?", tools=[  # type: ignore[list-item]
        {**RESPONSES_WEATHER, "strict": True}, {**RESPONSES_WEATHER, "name": "other"}])
    assert [t["function"].get("strict") for t in up.requests[0].body["tools"]] == [True, None]


async def test_text_parts_of_a_message_stay_apart(fakes, router):
    """A message's text parts a paragraph apart (a tool output's a line apart), as the Messages route joins text
    blocks; an assistant's output text in one piece, as it was generated (joined as they were, a user's parts
    ran together: "<environment_context>...</environment_context>do it")."""
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    await r.client().responses.create(model="m", input=[  # type: ignore[arg-type]
        {"role": "user", "content": [{"type": "input_text", "text": "<env>cwd</env>"},
                                     {"type": "input_text", "text": "do it"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Call"},
                                                             {"type": "output_text", "text": "ing."}]},
        {"type": "function_call", "call_id": "call_a", "name": "get_weather", "arguments": '{"city":"Rome"}'},
        {"type": "function_call_output", "call_id": "call_a", "output": [{"type": "input_text", "text": "rainy"},
                                                                          {"type": "input_text", "text": "12 C"}]},
    ])
    assert [m["content"] for m in up.requests[0].body["messages"]] == ["<env>cwd</env>\n\ndo it", "Calling.",
                                                                       "rainy\n12 C"]


async def test_stream_text_events(fakes, router):
    up = await fakes()
    usage = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
             "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}}
    up.push(Step(sse=[*stream_of(["Hel", "lo"], "m"), usage]))
    r = await router(CFG.format(url=up.url))
    events = await raw_stream(r.url, {"model": "m", "input": "hi", "stream": True})
    assert [e["type"] for e in events] == [
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta", "response.output_text.done",
        "response.content_part.done", "response.output_item.done", "response.completed"]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[0]["response"]["status"] == "in_progress"
    done = events[-1]["response"]
    assert done["status"] == "completed" and done["output"][0]["content"][0]["text"] == "Hello"
    assert done["usage"]["input_tokens"] == 7 and done["usage"]["total_tokens"] == 9
    # the stored response is the completed one
    got = await r.client().responses.retrieve(done["id"])
    assert got.output_text == "Hello"

    up.push(Step(sse=stream_of(["a", "b"], "m")))
    stream = await r.client().responses.create(model="m", input="hi", stream=True)
    text = ""
    async for ev in stream:
        if ev.type == "response.output_text.delta":
            text += ev.delta
        final = ev
    assert text == "ab" and final.type == "response.completed" and final.response.output_text == "ab"


def _estimated(output_tokens: int) -> dict:
    return {"input_tokens": 0, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": output_tokens}


async def _finished(url: str, stream: bool) -> dict:
    """The finished Response of one request, whole or from the stream's last event."""
    body = {"model": "m", "input": "hi", "stream": stream}
    if stream:
        return (await raw_stream(url, body))[-1]["response"]
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/responses", json=body) as resp:
        assert resp.status == 200
        return await resp.json()


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_a_response_has_usage_when_the_upstream_reports_none(fakes, router, stream):
    """An upstream that reports no usage (a completion without `usage`, a stream without the usage chunk) gave a
    Response with `"usage": null`, which the AI SDK's Responses provider refuses (its schema requires an object:
    generateText threw "Invalid JSON response", streamText's finish reason was "unknown"). A finished Response now
    always has one: no input tokens, the output's estimated from its bytes (~4 a token), as the Messages stream."""
    text, cut = "Just prose, no usage.", "This was cu"  # 21 bytes: 6 tokens; 11 bytes: 3
    whole, limited = completion(text, "m"), completion(cut, "m", finish_reason="length")
    del whole["usage"], limited["usage"]
    up = await fakes()
    if stream:
        up.push(Step(sse=stream_of([text[:10], text[10:]], "m")), Step(sse=stream_of([cut], "m", "length")),
                Step(sse=stream_of(["abcd", "efgh", "ijkl"], "m"), reset_after=2))
    else:
        up.push(Step(json=whole), Step(json=limited))
    r = await router(CFG.format(url=up.url))
    done = await _finished(r.url, stream)
    assert done["status"] == "completed" and done["usage"] == _estimated(6)
    incomplete = await _finished(r.url, stream)
    assert incomplete["status"] == "incomplete" and incomplete["usage"] == _estimated(3)
    if stream:  # cut off after "abcd"
        failed = await _finished(r.url, stream)
        assert failed["status"] == "failed" and failed["usage"] == _estimated(1)
    TypeAdapter(Response).validate_python(done)


async def test_stream_function_call_from_broken_arguments(fakes, router):
    up = await fakes()
    sse = [chunk("m", {"role": "assistant", "content": ""}),
           chunk("m", {"tool_calls": [{"index": 0, "id": "call_9", "type": "function",
                                       "function": {"name": "get_weather", "arguments": "{'city': "}}]}),
           chunk("m", {"tool_calls": [{"index": 0, "function": {"arguments": "'Paris',}"}}]}),
           chunk("m", {}, "tool_calls")]
    up.push(Step(sse=sse), Step(sse=stream_of(["It is sunny."], "m")))
    r = await router(CFG.format(url=up.url))
    c = r.client()
    stream = await c.responses.create(model="m", input="weather?", tools=[RESPONSES_WEATHER],  # type: ignore
                                      stream=True)
    events = [ev async for ev in stream]
    types = [ev.type for ev in events]
    assert types == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.function_call_arguments.delta", "response.function_call_arguments.done",
                     "response.output_item.done", "response.completed"]
    done = events[4]
    assert done.type == "response.function_call_arguments.done" and json.loads(done.arguments) == {"city": "Paris"}
    final = events[-1]
    assert final.type == "response.completed"
    call = final.response.output[0]
    assert call.type == "function_call" and json.loads(call.arguments) == {"city": "Paris"}
    follow = await c.responses.create(model="m", previous_response_id=final.response.id,
                                      input=[{"type": "function_call_output", "call_id": call.call_id,
                                              "output": "sunny"}], stream=True)
    async for ev in follow:
        last = ev
    assert last.type == "response.completed" and last.response.output_text == "It is sunny."
    assert up.requests[1].body["messages"][1]["tool_calls"][0]["id"] == call.call_id


async def test_store_false_and_unknown_previous_response(fakes, router):
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    c = r.client()
    resp = await c.responses.create(model="m", input="hi", store=False)
    assert resp.store is False
    with pytest.raises(openai.NotFoundError):
        await c.responses.retrieve(resp.id)
    with pytest.raises(openai.BadRequestError) as bad:
        await c.responses.create(model="m", input="again", previous_response_id=resp.id)
    assert bad.value.body["param"] == "previous_response_id"  # type: ignore[index]


async def _respond(url: str, body: dict, key: str) -> tuple[int, dict]:
    """A Responses answer for client key `key`: (status, the Response, whole or from the stream's last event; or
    the error)."""
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as s, \
            s.post(url + "/v1/responses", json=body) as resp:
        if resp.status != 200 or not body.get("stream"):
            return resp.status, await resp.json()
        last = (await resp.text()).strip().split("\n\n")[-1]
        return resp.status, json.loads(last.split("data: ", 1)[1])["response"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_item_references_name_stored_output_items(fakes, router, stream):
    """The AI SDK's OpenAI provider keeps `store` on and sends an earlier step's output items back as
    `item_reference` items, by the ids the router gave them: every one was refused (400 unsupported_input_item), so
    the second step of each tool loop failed. They stand for the stored items now, for the key that stored them; an
    id never given, another key's, or one whose response was deleted is answered as OpenAI answers it: 404,
    `invalid_request_error` naming the input, `code: null` (it was a 400 with a code of the router's own)."""
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    if stream:
        first = Step(sse=[chunk("m", {"role": "assistant", "content": None, "reasoning_content": "Look it up."}),
                          chunk("m", {"content": "Checking."}), chunk("m", {"tool_calls": [{**call, "index": 0}]}),
                          chunk("m", {}, "tool_calls")])
    else:
        doc = completion("Checking.", "m", tool_calls=[call], finish_reason="tool_calls")
        doc["choices"][0]["message"]["reasoning_content"] = "Look it up."
        first = Step(json=doc)
    up = await fakes()
    up.push(first)
    r = await router("server: {api_keys: [{key: sk-a, name: a}, {key: sk-b, name: b}]}\n" + CFG.format(url=up.url))
    ask = {"role": "user", "content": "Weather in Paris?"}
    kw = {"model": "m", "tools": [RESPONSES_WEATHER], "stream": stream}
    status, made = await _respond(r.url, {**kw, "input": [ask]}, "sk-a")
    assert status == 200 and [i["type"] for i in made["output"]] == ["reasoning", "message", "function_call"]
    refs = [{"type": "item_reference", "id": i["id"]} for i in made["output"]]
    again = {**kw, "input": [ask, *refs, {"type": "function_call_output", "call_id": "call_1", "output": "18C"}]}
    status, answer = await _respond(r.url, again, "sk-a")
    assert status == 200 and answer["status"] == "completed", answer
    assert up.requests[1].body["messages"] == [
        ask, {"role": "assistant", "content": "Checking.", "tool_calls": [call], "reasoning_content": "Look it up."},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"}]
    for key in ("sk-b", "sk-a"):  # another key's items; then the items of a deleted response
        if key == "sk-a":
            async with aiohttp.ClientSession(headers={"Authorization": "Bearer sk-a"}) as s, \
                    s.delete(r.url + f"/v1/responses/{made['id']}") as resp:
                assert resp.status == 200
        status, err = await _respond(r.url, again, key)
        assert status == 404 and err["error"] == {"message": f"Item with id {refs[0]['id']!r} not found.",
                                                  "type": "invalid_request_error", "param": "input", "code": None}
    assert len(up.requests) == 2


async def test_responses_are_private_to_their_key(fakes, router):
    up = await fakes()
    r = await router("server: {api_keys: [{key: sk-a, name: a}, {key: sk-b, name: b}]}\n" + CFG.format(url=up.url))
    mine = await r.client("sk-a").responses.create(model="m", input="secret plan")
    assert (await r.client("sk-a").responses.retrieve(mine.id)).id == mine.id
    with pytest.raises(openai.NotFoundError):
        await r.client("sk-b").responses.retrieve(mine.id)
    with pytest.raises(openai.BadRequestError):
        await r.client("sk-b").responses.create(model="m", input="x", previous_response_id=mine.id)
    with pytest.raises(openai.AuthenticationError):
        await r.client("sk-wrong").responses.retrieve(mine.id)


@pytest.mark.parametrize(("body", "param"), [
    ({"model": "m"}, "input"),
    ({"model": "m", "input": 5}, "input"),
    ({"model": "m", "input": [{"type": "item_reference", "id": 5}]}, "input[0].id"),
    ({"model": "m", "input": "x", "tools": [{"type": "namespace", "name": "ns"}]}, "tools[0].tools"),
    ({"model": "m", "input": "x", "tool_choice": {"type": "function", "name": "nope"}}, "tool_choice"),
    ({"model": "m", "input": "x", "max_output_tokens": 0}, "max_output_tokens"),
    ({"model": "m", "input": "x", "temperature": 10**400}, "temperature"),  # past the float range: no OverflowError
    ({"model": "m", "input": "x", "top_p": 10**400}, "top_p"),
    ({"model": "m", "input": "x", "background": True}, "background"),
    ({"model": "m", "input": "x", "text": {"verbosity": 1}}, "text.verbosity"),
    ({"model": "m", "input": "x", "prompt_cache_key": 7}, "prompt_cache_key"),
    ({"model": "m", "input": "x", "service_tier": ["flex"]}, "service_tier"),
    ({"input": "x"}, "model"),
    # (OpenAI's: "Invalid value: 'x'. Supported values are: 'auto' and 'disabled'."; was echoed as "disabled")
    ({"model": "m", "input": "x", "truncation": "middle"}, "truncation"),
    ({"model": "m", "input": "x", "truncation": True}, "truncation"),
    # (were accepted, and echoed on the response object as they came)
    ({"model": "m", "input": "x", "reasoning": {"effort": 5}}, "reasoning.effort"),
    ({"model": "m", "input": "x", "reasoning": {"effort": {"level": "high"}}}, "reasoning.effort"),
    ({"model": "m", "input": "x", "reasoning": {"summary": True}}, "reasoning.summary"),
    # (went upstream as it came)
    ({"model": "m", "input": "x", "text": {"format": {"type": "json_schema", "name": "a", "schema": {},
                                                      "strict": "yes"}}}, "text.format.strict"),
    # (was not read at all)
    ({"model": "m", "input": "x", "max_tool_calls": "3"}, "max_tool_calls"),
    ({"model": "m", "input": "x", "max_tool_calls": True}, "max_tool_calls"),
    ({"model": "m", "input": "x", "max_tool_calls": 0}, "max_tool_calls"),
])
async def test_invalid_requests_are_openai_shaped_400s(fakes, router, body, param):
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/responses", json=body) as resp:
        assert resp.status == 400
        doc = await resp.json()
    assert set(doc) == {"error"} and doc["error"]["type"] == "invalid_request_error"
    assert doc["error"]["param"] == param and doc["error"]["message"] and doc["error"]["code"]
    assert not up.requests


async def test_max_tool_calls_is_echoed_and_not_sent_upstream(fakes, router):
    """It bounds hosted tools' calls (none are made here): checked, repeated on the Response as OpenAI does."""
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    resp = await r.client().responses.create(model="m", input="x", store=False, max_tool_calls=3)
    assert resp.max_tool_calls == 3 and "max_tool_calls" not in up.requests[0].body


async def test_safety_identifier_is_echoed_under_its_own_name(fakes, router):
    """It was echoed as `user`; the upstream still gets it as chat's `user`, which every provider reads."""
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    c = r.client()
    resp = await c.responses.create(model="m", input="x", store=False, safety_identifier="sid-1")
    assert resp.safety_identifier == "sid-1" and resp.user is None
    assert up.requests[0].body["user"] == "sid-1"
    resp = await c.responses.create(model="m", input="x", store=False, user="u-1")
    assert resp.user == "u-1" and resp.safety_identifier is None
    assert up.requests[1].body["user"] == "u-1"


async def test_a_reasoning_effort_of_any_string_reaches_the_upstream(fakes, router):
    """The levels grow from release to release: one this router does not know goes on for the upstream to judge."""
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    body = {"model": "m", "input": "x", "store": False, "reasoning": {"effort": "max", "summary": None}}
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/responses", json=body) as resp:
        assert resp.status == 200
        doc = await resp.json()
    assert up.requests[0].body["reasoning_effort"] == "max"
    assert doc["reasoning"] == {"effort": "max", "summary": None}


async def test_failure_mid_stream_ends_with_response_failed(fakes, router):
    up = await fakes()
    up.push(Step(sse=stream_of(["a", "b", "c", "d"], "m"), reset_after=2))
    r = await router(CFG.format(url=up.url))
    events = await raw_stream(r.url, {"model": "m", "input": "hi", "stream": True})
    assert [e["type"] for e in events][-2:] == ["error", "response.failed"]
    failed = events[-1]["response"]
    assert events[-2]["code"] == "upstream_reset_mid_stream"
    assert failed["status"] == "failed" and failed["error"]["code"] == "server_error"
    # kept, as OpenAI keeps a failed response (it was not stored: a GET of the id the client had was a 404)
    got = await r.client().responses.retrieve(failed["id"])
    assert got.status == "failed" and got.error is not None and got.error.code == "server_error"
    assert [i.id for i in got.output] == [i["id"] for i in failed["output"]] and got.output_text
    with pytest.raises(openai.BadRequestError) as bad:  # nothing to continue: the answer never ended
        await r.client().responses.create(model="m", input="go on", previous_response_id=failed["id"])
    assert bad.value.code == "previous_response_failed" and bad.value.param == "previous_response_id"
    assert len(up.requests) == 1


async def test_a_failed_stream_without_store_is_not_stored(fakes, router):
    up = await fakes()
    up.push(Step(sse=stream_of(["a", "b", "c", "d"], "m"), reset_after=2))
    r = await router(CFG.format(url=up.url))
    events = await raw_stream(r.url, {"model": "m", "input": "hi", "stream": True, "store": False})
    assert events[-1]["type"] == "response.failed"
    with pytest.raises(openai.NotFoundError):
        await r.client().responses.retrieve(events[-1]["response"]["id"])


async def test_upstream_errors_are_openai_shaped(fakes, router):
    up = await fakes()
    up.push(Step(status=400, json={"error": {"message": "context too long", "type": "invalid_request_error",
                                             "code": "context_length_exceeded"}}))
    r = await router(CFG.format(url=up.url))
    with pytest.raises(openai.BadRequestError) as bad:
        await r.client().responses.create(model="m", input="x")
    assert bad.value.code == "context_length_exceeded"
    assert bad.value.response.headers["x-agentgate-provider"] == "lab"  # as on /v1/chat/completions
    with pytest.raises(openai.NotFoundError):
        await r.client().responses.create(model="unknown-model", input="x")


def logprob(token: str, value: float, top: list[tuple[str, float]]) -> dict:
    return {"token": token, "logprob": value, "bytes": list(token.encode()),
            "top_logprobs": [{"token": t, "logprob": v, "bytes": list(t.encode())} for t, v in top]}


HI = logprob("Hi", -0.1, [("Hi", -0.1), ("Hey", -2.5)])
THERE = logprob(" there", -0.3, [(" there", -0.3), (" you", -1.9)])


async def test_output_text_logprobs_are_asked_for_and_returned(fakes, router):
    """`include: ["message.output_text.logprobs"]` asks the upstream for logprobs (`top_logprobs` as given) and
    puts them in the output_text part, and in each text delta of a stream, in the Responses shape (they were
    ignored: nothing asked, `logprobs: []`). Without the include nothing is asked."""
    up = await fakes()
    whole = completion("Hi there", "m")
    whole["choices"][0]["logprobs"] = {"content": [HI, THERE], "refusal": None}
    pieces = stream_of(["Hi", " there"], "m")
    pieces[1]["choices"][0]["logprobs"] = {"content": [HI]}
    pieces[2]["choices"][0]["logprobs"] = {"content": [THERE]}
    up.push(Step(json=whole), Step(sse=pieces), Step(json=whole))
    r = await router(CFG.format(url=up.url))
    c = r.client()
    expected = [{k: v for k, v in e.items()} for e in (HI, THERE)]

    resp = await c.responses.create(model="m", input="hi", include=["message.output_text.logprobs"], top_logprobs=2)
    assert (up.requests[0].body["logprobs"], up.requests[0].body["top_logprobs"]) == (True, 2)
    raw = resp.model_dump(mode="json", exclude_unset=True)
    TypeAdapter(Response).validate_python(raw, strict=True)
    [part] = raw["output"][0]["content"]
    assert part["logprobs"] == expected and part["text"] == "Hi there"

    events = await raw_stream(r.url, {"model": "m", "input": "hi", "stream": True, "top_logprobs": 2,
                                      "include": ["message.output_text.logprobs"]})
    assert (up.requests[1].body["logprobs"], up.requests[1].body["top_logprobs"]) == (True, 2)
    adapter: TypeAdapter[ResponseStreamEvent] = TypeAdapter(ResponseStreamEvent)
    for e in events:
        adapter.validate_python(e, strict=True)
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    assert [(d["delta"], d["logprobs"]) for d in deltas] == [("Hi", [expected[0]]), (" there", [expected[1]])]
    done = next(e for e in events if e["type"] == "response.output_text.done")
    assert done["logprobs"] == expected
    final = events[-1]["response"]
    TypeAdapter(Response).validate_python(final, strict=True)
    assert final["output"][0]["content"][0]["logprobs"] == expected

    plain = await c.responses.create(model="m", input="hi")
    assert "logprobs" not in up.requests[2].body and "top_logprobs" not in up.requests[2].body
    assert plain.output[0].content[0].logprobs == []  # type: ignore[union-attr]


async def test_a_repaired_stream_keeps_the_logprobs_of_its_text(fakes, router):
    """Tools declared (the stream goes through tool-call repair): the text that goes out as the upstream sent it
    keeps its logprobs in each text delta (a repaired stream carried none)."""
    up = await fakes()
    pieces = stream_of(["Hi", " there"], "m")
    pieces[1]["choices"][0]["logprobs"] = {"content": [HI]}
    pieces[2]["choices"][0]["logprobs"] = {"content": [THERE]}
    up.push(Step(sse=pieces, interval=0.005))
    r = await router(CFG.format(url=up.url))
    events = await raw_stream(r.url, {"model": "m", "input": "hi", "stream": True, "tools": [RESPONSES_WEATHER],
                                      "include": ["message.output_text.logprobs"]})
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    assert "".join(d["delta"] for d in deltas) == "Hi there"
    assert [e for d in deltas for e in d["logprobs"]] == [HI, THERE]
    assert events[-1]["response"]["output"][0]["content"][0]["logprobs"] == [HI, THERE]
