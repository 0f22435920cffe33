"""The engine worker end to end: real mlx-lm generation on tiny models, the real openai client over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import types
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp import web
from aiohttp.client_exceptions import ClientConnectionResetError

from engines.worker import server
from engines.worker.sampling import SamplingParams
from engines.worker.scheduler import Failed, Finished, SequenceSpec
from engines.worker.server import WORKER
from tests.engines.conftest import SCRIPTS, WEATHER_TOOL, Engine

pytestmark = pytest.mark.asyncio(loop_scope="session")

USER = [{"role": "user", "content": "Hello there, what is the weather like in Paris today?"}]


def no_eos(models: dict[str, Path], name: str = "random") -> dict[str, int]:
    eos = json.loads((models[name] / "config.json").read_text())["eos_token_id"]
    return {str(eos): -100}


@contextlib.asynccontextmanager
async def raw_stream(e: Engine, body: dict[str, Any], *, chunks: int,
                     path: str = "/v1/chat/completions") -> AsyncIterator[None]:
    """A chat stream read as raw SSE up to its `chunks`-th data event, and dropped on exit by closing the connection
    (the client going away mid-stream). An openai SDK stream left unfinished, even closed (`close()` closes the
    response only), keeps its chain of async generators (the SDK's, httpx's, httpcore's) suspended until the garbage
    collector finalises them, in whatever test runs then: a PytestUnraisableExceptionWarning blamed on that test."""
    async with aiohttp.ClientSession() as session:
        resp = await session.post(e.url + path, json=body)
        try:
            seen = 0
            async for line in resp.content:
                seen += line.startswith(b"data: {")
                if seen == chunks:
                    break
            assert seen == chunks, f"the stream ended after {seen} chunks"
            yield
        finally:
            resp.close()


async def test_models_health_and_stats_shape(engine):
    e = await engine("random")
    status, health = await e.get("/health")
    assert status == 200 and health["status"] == "ok"
    models = await e.client().models.list()
    assert [m.id for m in models.data] == ["random"]
    stats = await e.stats()
    for key in ("queue", "running", "peak_batch", "requests", "tokens", "cache", "memory", "model"):
        assert key in stats
    assert stats["memory"]["active"] > 0 and stats["memory"]["peak"] >= stats["memory"]["active"]
    assert stats["cache"]["hits"] == 0


async def test_think_split_into_reasoning_content(engine):
    e = await engine("think")
    client = e.client()
    resp = await client.chat.completions.create(model="think", messages=USER, temperature=0)
    msg = resp.choices[0].message
    assert msg.content == "Hello! How can I help you today?"
    assert msg.model_extra["reasoning_content"] == "The user says hello, so I greet them back."
    assert resp.choices[0].finish_reason == "stop"

    stream = await client.chat.completions.create(
        model="think", messages=USER, temperature=0, stream=True, stream_options={"include_usage": True}
    )
    content, reasoning, finish, usage = "", "", None, None
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            content += choice.delta.content or ""
            reasoning += (choice.delta.model_extra or {}).get("reasoning_content") or ""
            finish = choice.finish_reason or finish
    assert content == msg.content
    assert reasoning == msg.model_extra["reasoning_content"]
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens == resp.usage.completion_tokens
    # the <think> block's tokens are counted as reasoning (Responses reports them: output_tokens_details), the
    # answer's are not
    reasoning_tokens = resp.usage.completion_tokens_details.reasoning_tokens
    assert 0 < reasoning_tokens < resp.usage.completion_tokens
    assert usage.completion_tokens_details.reasoning_tokens == reasoning_tokens
    # the repeat of the same conversation reuses the cached prompt
    assert usage.prompt_tokens_details.cached_tokens == usage.prompt_tokens - 1


@pytest.mark.parametrize("messages", [
    [{"role": "user", "content": "My parser drops <think> blocks. Weather in Paris?"}],
    [{"role": "user", "content": "Weather?"}, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "grep", "arguments": "{}"}}]},
     {"role": "tool", "tool_call_id": "c1", "content": "if line.startswith('<think>'): skip"}],
], ids=["user message", "tool result"])
async def test_a_think_tag_quoted_in_the_conversation_is_not_reasoning(engine, messages):
    """Only a generation prompt that opens `<think>` starts the answer as reasoning: a tag quoted in a message (code,
    logs, HTML an agent reads) made the whole answer reasoning, and its tool call was lost."""
    e = await engine("tool")
    resp = await e.client().chat.completions.create(model="tool", messages=messages, tools=[WEATHER_TOOL],
                                                    temperature=0)
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert [c.function.name for c in choice.message.tool_calls or []] == ["get_weather"]
    assert not (choice.message.model_extra or {}).get("reasoning_content")


async def test_stop_string_ends_generation(engine):
    e = await engine("think")
    resp = await e.client().chat.completions.create(model="think", messages=USER, temperature=0, stop=["How can"])
    assert resp.choices[0].message.content == "Hello! "
    assert resp.choices[0].finish_reason == "stop"


async def test_the_matched_stop_string_is_the_choices_stop_reason(engine):
    """As vLLM does, the finishing choice names the stop string that ended the text in `stop_reason` (the router's
    Messages route reports `stop_sequence` from it), streamed or not, chat or completions; an EOS adds none."""
    e = await engine("think")
    client = e.client()
    stop = ["help", "How can", "can"]
    resp = await client.chat.completions.create(model="think", messages=USER, temperature=0, stop=stop)
    choice = resp.choices[0]
    assert choice.message.content == "Hello! " and choice.finish_reason == "stop"
    assert (choice.model_extra or {}).get("stop_reason") == "How can"
    stream = await client.chat.completions.create(model="think", messages=USER, temperature=0, stop=stop,
                                                  stream=True)
    finishing = []
    async for chunk in stream:
        finishing += [c for c in chunk.choices if c.finish_reason is not None]
    assert [(c.finish_reason, (c.model_extra or {}).get("stop_reason")) for c in finishing] == [("stop", "How can")]
    done = await client.completions.create(model="think", prompt="Hi", max_tokens=40, temperature=0,
                                           stop=["greet"])
    assert (done.choices[0].model_extra or {}).get("stop_reason") == "greet"
    ends = []
    async for part in await client.completions.create(model="think", prompt="Hi", max_tokens=40, temperature=0,
                                                      stop=["greet"], stream=True):
        ends += [(c.finish_reason, (c.model_extra or {}).get("stop_reason")) for c in part.choices if c.finish_reason]
    assert ends == [("stop", "greet")]
    plain = await client.chat.completions.create(model="think", messages=USER, temperature=0, stop=["zzz"])
    assert plain.choices[0].finish_reason == "stop" and "stop_reason" not in (plain.choices[0].model_extra or {})


async def test_tool_call_arrives_as_tool_calls(engine):
    e = await engine("tool")
    client = e.client()
    resp = await client.chat.completions.create(model="tool", messages=USER, tools=[WEATHER_TOOL], temperature=0)
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert not choice.message.content

    stream = await client.chat.completions.create(
        model="tool", messages=USER, tools=[WEATHER_TOOL], temperature=0, stream=True
    )
    calls: dict[int, list[str]] = {}  # the header comes as soon as it is generated, the arguments after it
    content, finish = "", None
    async for chunk in stream:
        for c in chunk.choices:
            for tc in c.delta.tool_calls or []:
                slot = calls.setdefault(tc.index, ["", ""])
                slot[0] += tc.function.name or ""
                slot[1] += tc.function.arguments or ""
            content += c.delta.content or ""
            finish = c.finish_reason or finish
    assert finish == "tool_calls"
    assert [(name, json.loads(args)) for name, args in calls.values()] == [("get_weather", {"city": "Paris"})]
    assert "<tool_call>" not in content

    # Without declared tools the markup is never promoted to a call.
    plain = await client.chat.completions.create(model="tool", messages=USER, temperature=0)
    assert not plain.choices[0].message.tool_calls


@pytest.mark.parametrize("max_tokens", [5, 6], ids=["cut in the arguments", "cut before the closing tag"])
async def test_a_call_cut_by_max_tokens_finishes_with_length(engine, max_tokens):
    """Generation cut by max_tokens ends with finish_reason "length", stream and non-stream alike, whatever
    became of the call (as the router says when it repairs): 5 tokens stop inside the arguments (no call; the
    stream's call header had gone out: its arguments stay as cut, reported failed_after_header), 6 before the
    closing tag (the call recovered)."""
    e = await engine("tool", constrain=False)
    client = e.client()
    ask = {"model": "tool", "messages": USER, "tools": [WEATHER_TOOL], "temperature": 0, "max_tokens": max_tokens}
    whole = await client.chat.completions.create(**ask)
    assert whole.choices[0].finish_reason == "length"
    assert bool(whole.choices[0].message.tool_calls) == (max_tokens == 6)
    finish = None
    async for chunk in await client.chat.completions.create(**ask, stream=True):
        for c in chunk.choices:
            finish = c.finish_reason or finish
    assert finish == "length"


async def test_a_streamed_call_the_generation_cut_is_not_completed(engine):
    """A call whose header and argument pieces went out, cut inside a string value by a stop string in its markup:
    its arguments stay what went out (never closed: `{"city": "Pa"}` is another call), and the failure is reported
    on the last chunk. Non-stream, the call stays text (the one-shot repair refuses it)."""
    e = await engine("tool", constrain=False)
    client = e.client()
    ask = {"model": "tool", "messages": USER, "tools": [WEATHER_TOOL], "temperature": 0, "stop": ["ris"]}
    whole = await client.chat.completions.create(**ask)
    assert not whole.choices[0].message.tool_calls
    args, finish, report = "", None, None
    async for chunk in await client.chat.completions.create(**ask, stream=True):
        for c in chunk.choices:
            finish = c.finish_reason or finish
            for t in c.delta.tool_calls or []:
                args += t.function.arguments or "" if t.function else ""
        report = (chunk.model_extra or {}).get("agentgate") or report
    assert args and '{"city": "Paris"}'.startswith(args) and args != '{"city": "Paris"}'
    with pytest.raises(ValueError):
        json.loads(args)
    assert finish == "tool_calls"
    assert report is not None and any(f["kind"] == "failed_after_header" and "truncated" in f["detail"]
                                       for f in report["tool_call_failures"])


async def test_a_streamed_call_cut_before_its_first_value_is_text_as_non_stream(engine):
    """max_tokens cuts the call at `{"city": ` (before its first value begins): no header went out, and the stream
    gives the text, as the non-stream answer does, with finish_reason "length"."""
    e = await engine("tool", constrain=False)
    client = e.client()
    ask = {"model": "tool", "messages": USER, "tools": [WEATHER_TOOL], "temperature": 0, "max_tokens": 5}
    whole = (await client.chat.completions.create(**ask)).choices[0]
    assert not whole.message.tool_calls and whole.message.content
    text, calls, finish = "", [], None
    async for chunk in await client.chat.completions.create(**ask, stream=True):
        for c in chunk.choices:
            finish = c.finish_reason or finish
            text += c.delta.content or ""
            calls += c.delta.tool_calls or []
    assert (text, calls, finish) == (whole.message.content, [], "length")


async def test_a_json_answer_asked_for_is_not_made_a_call(engine):
    """With `response_format` asking for JSON, a bare object naming a declared tool is the data asked for (a call
    only in the format's own markup); without it, the documented bare-JSON rule makes it a call."""
    e = await engine("bare_json", constrain=False)
    client = e.client()
    ask = {"model": "bare_json", "messages": USER, "tools": [WEATHER_TOOL], "temperature": 0}
    fmt = {"type": "json_object"}
    resp = await client.chat.completions.create(**ask, response_format=fmt)
    assert resp.choices[0].message.content == SCRIPTS["bare_json"] and not resp.choices[0].message.tool_calls
    text, calls = "", []
    async for chunk in await client.chat.completions.create(**ask, response_format=fmt, stream=True):
        for c in chunk.choices:
            text += c.delta.content or ""
            calls += c.delta.tool_calls or []
    assert text == SCRIPTS["bare_json"] and calls == []
    plain = await client.chat.completions.create(**ask)
    assert [c.function.name for c in plain.choices[0].message.tool_calls] == ["get_weather"]
    required = await client.chat.completions.create(**ask, response_format=fmt, tool_choice="required")
    assert [c.function.name for c in required.choices[0].message.tool_calls] == ["get_weather"]  # must be a call


async def test_malformed_tool_call_is_repaired(engine):
    e = await engine("broken_tool", constrain=False)  # repair alone (with the constraint the call is never broken)
    resp = await e.client().chat.completions.create(
        model="broken_tool", messages=USER, tools=[WEATHER_TOOL], temperature=0
    )
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert SCRIPTS["broken_tool"].startswith("<tool_call>")  # the model really emitted the broken form


async def test_the_worker_reports_its_repair_to_the_router(engine):
    """Chat replies say the worker repaired them (x-agentgate-repaired), so the router validates rather than
    repairing again; what was repaired goes in x-agentgate-repairs (non-stream) or, streamed, in the `agentgate`
    member of the first chunk sent once generation ends."""
    e = await engine("broken_tool", constrain=False)
    client = e.client()
    raw = await client.chat.completions.with_raw_response.create(
        model="broken_tool", messages=USER, tools=[WEATHER_TOOL], temperature=0)
    assert raw.headers["x-agentgate-repaired"] == "repair" and raw.headers["x-agentgate-repairs"]
    assert "agentgate" not in (raw.parse().model_extra or {})  # only a failed call is reported in the body
    async with client.chat.completions.with_streaming_response.create(
            model="broken_tool", messages=USER, tools=[WEATHER_TOOL], temperature=0, stream=True) as resp:
        assert resp.headers["x-agentgate-repaired"] == "repair"
        docs = [json.loads(line[6:]) async for line in resp.iter_lines()
                if line.startswith("data: {")]
    reports = [d["agentgate"] for d in docs if "agentgate" in d]
    assert reports == [{"repairs": raw.headers["x-agentgate-repairs"].split(",")}]
    assert docs[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_agent_loop_turn_two_hits_prefix_cache(engine):
    e = await engine("tool")
    client = e.client()
    messages: list[dict] = [{"role": "system", "content": "You are a weather bot."}, *USER]
    first = await client.chat.completions.create(model="tool", messages=messages, tools=[WEATHER_TOOL],
                                                 temperature=0)
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    call = first.choices[0].message.tool_calls[0]
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"temperature": 21, "sky": "clear"}'},
    ]
    second = await client.chat.completions.create(model="tool", messages=messages, tools=[WEATHER_TOOL],
                                                  temperature=0)
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert first.usage.prompt_tokens <= cached < second.usage.prompt_tokens
    stats = await e.stats()
    assert stats["cache"]["hits"] >= 1 and stats["tokens"]["cached"] >= cached


async def test_sixteen_concurrent_streams_are_batched(engine, tiny_models):
    e = await engine("random", max_batch=16)
    client = e.client()
    bias = no_eos(tiny_models)

    async def one(i: int) -> tuple[str, str | None, int]:
        stream = await client.chat.completions.create(
            model="random",
            messages=[{"role": "user", "content": f"Request number {i}: count slowly."}],
            max_tokens=24,
            temperature=0,
            logit_bias=bias,
            stream=True,
            stream_options={"include_usage": True},
        )
        text, finish, tokens = "", None, 0
        async for chunk in stream:
            for c in chunk.choices:
                text += c.delta.content or ""
                finish = c.finish_reason or finish
            if chunk.usage:
                tokens = chunk.usage.completion_tokens
        return text, finish, tokens

    results = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(16))), 120)
    assert all(finish == "length" and tokens == 24 for _, finish, tokens in results)
    stats = await e.stats()
    assert stats["peak_batch"] > 1
    assert stats["requests"]["served"] == 16 and stats["running"] == 0


async def test_exact_prefix_hit_while_first_request_decodes(engine, tiny_models):
    e = await engine("random")
    client = e.client()
    kwargs = dict(model="random", messages=USER, max_tokens=3000, temperature=0, logit_bias=no_eos(tiny_models))
    # two chunks: the role (the prompt is admitted), then the first token (the prompt's KV cache is stored)
    async with raw_stream(e, {**kwargs, "stream": True}, chunks=2):
        second = await client.chat.completions.create(**{**kwargs, "max_tokens": 4})
        assert (await e.stats())["running"] == 1  # the first one still decodes
    assert second.usage.prompt_tokens_details.cached_tokens == second.usage.prompt_tokens - 1
    stats = await e.stats()
    assert stats["cache"]["exact_hits"] == 1


async def test_closing_a_stream_removes_its_sequence(engine, tiny_models):
    e = await engine("random")
    client = e.client()
    body = {"model": "random", "messages": USER, "max_tokens": 3000, "temperature": 0,
            "logit_bias": no_eos(tiny_models), "stream": True}
    async with raw_stream(e, body, chunks=3):
        assert (await e.stats())["running"] == 1
    # the client went away mid-stream
    stats = await e.wait_stats(lambda s: s["running"] == 0 and s["requests"]["cancelled"] == 1)
    assert stats["requests"]["served"] == 0 and stats["requests"]["active"] == 0
    assert stats["tokens"]["generated"] < 3000
    # the worker keeps serving
    resp = await client.chat.completions.create(model="random", messages=USER, max_tokens=2, temperature=0)
    assert resp.usage.completion_tokens <= 2


def _suspended(*functions: Callable[..., Any]) -> int:
    """Async generators of these functions alive and suspended (neither finished nor closed)."""
    codes = {f.__code__ for f in functions}
    return sum(1 for o in gc.get_objects()
               if isinstance(o, types.AsyncGeneratorType) and o.ag_code in codes and o.ag_frame is not None)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
async def test_a_stream_the_client_left_closes_its_event_iterators(engine, tiny_models, path):
    """A client going away mid-stream cancels the worker's handler while it writes a chunk: its event iterators were
    left suspended, for the garbage collector to finalise (an aclose() run on the event loop) during some later
    request; they are closed with the stream."""
    e = await engine("random")
    ask = {"messages": USER} if path.endswith("chat/completions") else {"prompt": "hi"}
    body = {"model": "random", **ask, "max_tokens": 3000, "temperature": 0, "logit_bias": no_eos(tiny_models),
            "stream": True}
    gc.disable()  # a collection would finalise them, hiding what was left
    try:
        async with raw_stream(e, body, chunks=3, path=path):
            assert _suspended(server._chain, server._events) == 2
        await e.wait_stats(lambda s: s["running"] == 0 and s["requests"]["cancelled"] == 1)
        assert _suspended(server._chain, server._events) == 0
    finally:
        gc.enable()


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
async def test_a_client_going_away_mid_stream_is_no_error(engine, tiny_models, caplog, monkeypatch, path):
    """A write to a connection the client closed raises ClientConnectionResetError when it comes before aiohttp
    cancels the handler (7 streams in 150 dropped by their client): it left the handler, and aiohttp logged "Error
    handling request" with its traceback at ERROR, in the worker's output that the router relays line by line. A
    client leaving is logged at debug level, and its sequence is cancelled as before. The closing transport is
    stood for by the write raising, as aiohttp's does, from the fourth chunk on."""
    real_write = web.StreamResponse.write
    writes = 0

    async def write(self, data):
        nonlocal writes
        writes += 1
        if writes > 3:
            raise ClientConnectionResetError("Cannot write to closing transport")
        return await real_write(self, data)

    e = await engine("random")
    ask = {"messages": USER} if path.endswith("chat/completions") else {"prompt": "hi"}
    body = {"model": "random", **ask, "max_tokens": 3000, "temperature": 0, "logit_bias": no_eos(tiny_models),
            "stream": True}
    monkeypatch.setattr(web.StreamResponse, "write", write)
    with caplog.at_level(logging.DEBUG):
        async with aiohttp.ClientSession() as session, session.post(e.url + path, json=body) as resp:
            with contextlib.suppress(aiohttp.ClientPayloadError):  # a connection the server broke off, before
                await resp.read()
        monkeypatch.undo()
        await e.wait_stats(lambda s: s["running"] == 0 and s["requests"]["cancelled"] == 1)
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not errors, [r.getMessage() for r in errors]
    assert sum("the client went away" in r.getMessage() for r in caplog.records) == 1
    assert writes == 4


async def test_context_overflow_is_400(engine):
    e = await engine("random", max_context=64)
    client = e.client()
    with pytest.raises(openai.BadRequestError) as err:
        await client.chat.completions.create(model="random", messages=[{"role": "user", "content": "word " * 200}])
    body = err.value.body
    assert err.value.status_code == 400 and body["code"] == "context_length_exceeded"
    assert "64" in body["message"]


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"temperature": "hot"}, "temperature"),
        ({"max_tokens": -1}, "max_tokens"),
        ({"top_p": 3}, "top_p"),
        ({"n": 2}, "n"),
        ({"stop": [1, 2]}, "stop"),
        ({"logit_bias": {"999999": 5}}, "logit_bias"),
        ({"stream": "yes"}, "stream"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages"),
        ({"tools": [{"type": "function", "function": {}}]}, "tools"),
        ({"response_format": {"type": "json_schema"}}, "response_format"),
        # an integer past the float range (valid JSON) is out of range, not an OverflowError (a 500)
        *(({name: 10**400}, name) for name in ("temperature", "top_p", "frequency_penalty", "presence_penalty",
                                                "min_p", "repetition_penalty")),
        ({"temperature": -(10**400)}, "temperature"),
        ({"logit_bias": {"0": 10**400}}, "logit_bias"),
    ],
)
async def test_bad_parameters_are_400(engine, extra, param):
    e = await engine("random")
    body = {"model": "random", "messages": USER, "max_tokens": 2, **extra}
    status, err = await e.post_raw("/v1/chat/completions", json.dumps(body).encode())
    assert status == 400
    assert set(err["error"]) >= {"message", "type", "code"} and err["error"]["param"] == param
    assert err["error"]["type"] == "invalid_request_error"


async def test_malformed_json_and_unknown_routes(engine):
    e = await engine("random")
    status, err = await e.post_raw("/v1/chat/completions", b'{"model": "random", "messages": [')
    assert status == 400 and err["error"]["code"] == "invalid_json"
    status, err = await e.post_raw("/v1/nope", b"{}")
    assert status == 404 and err["error"]["code"] == "not_found"
    # still healthy and serving
    resp = await e.client().chat.completions.create(model="random", messages=USER, max_tokens=2)
    assert resp.choices[0].finish_reason in ("length", "stop")


async def test_completions_endpoint_and_seeded_sampling(engine, tiny_models):
    e = await engine("random")
    client = e.client()
    bias = no_eos(tiny_models)
    resp = await client.completions.create(model="random", prompt="The weather today", max_tokens=8,
                                           temperature=0, logit_bias=bias)
    assert resp.choices[0].finish_reason == "length" and resp.usage.completion_tokens == 8
    text = ""
    stream = await client.completions.create(model="random", prompt="The weather today", max_tokens=8,
                                             temperature=0, logit_bias=bias, stream=True)
    async for chunk in stream:
        text += chunk.choices[0].text if chunk.choices else ""
    assert text == resp.choices[0].text

    async def sampled(seed: int) -> str:
        r = await client.completions.create(model="random", prompt=[5, 6, 7, 8], max_tokens=12, temperature=1.0,
                                            seed=seed, logit_bias=bias)
        return r.choices[0].text

    # seeded requests repeat, even while sharing the batch with other sampled requests
    a, b, _c, _d = await asyncio.gather(sampled(7), sampled(7), sampled(8), sampled(9))
    assert a == b


async def test_a_failing_sequence_leaves_the_batch_alone(engine, tiny_models):
    e = await engine("random")
    client = e.client()
    scheduler = e.worker.app[WORKER].scheduler
    bias = no_eos(tiny_models)

    async def good(i: int) -> tuple[str | None, int]:
        r = await client.chat.completions.create(model="random", max_tokens=16, temperature=0.7, logit_bias=bias,
                                                 messages=[{"role": "user", "content": f"story {i}"}])
        return r.choices[0].finish_reason, r.usage.completion_tokens

    async def outcome(handle) -> object:
        while True:
            for event in await handle.next_events():
                if isinstance(event, (Failed, Finished)):
                    return event

    goods = [asyncio.ensure_future(good(i)) for i in range(4)]
    # Requests the HTTP layer would refuse, submitted straight to the scheduler: one fails while being admitted,
    # the other inside a batch step (its sampler raises), while the good requests share the batch.
    at_admission = scheduler.submit(SequenceSpec([5, 6, 7], 8, SamplingParams(repetition_penalty=-1.0)))
    in_step = scheduler.submit(SequenceSpec([5, 6, 7, 8], 8, SamplingParams(temperature=1.0, min_p=5.0)))
    bad_processor = scheduler.submit(SequenceSpec([5, 6], 8, SamplingParams(logit_bias={1.5: 2.0})))  # type: ignore[dict-item]
    for handle in (at_admission, in_step, bad_processor):
        assert isinstance(await asyncio.wait_for(outcome(handle), 120), Failed)
    assert await asyncio.wait_for(asyncio.gather(*goods), 120) == [("length", 16)] * 4
    stats = await e.stats()
    assert stats["requests"]["failed"] == 3 and stats["requests"]["served"] == 4
    status, _ = await e.get("/health")
    assert status == 200


async def test_lone_surrogates_are_400_not_500(engine: Callable[..., Awaitable[Engine]]) -> None:
    """The 400 names the problem, not the tokenizer's words for it ("TextEncodeInput must be Union[...]")."""
    e = await engine("random")
    for path, body, param, point in (
        ("/v1/chat/completions", b'{"messages": [{"role": "user", "content": "bad \\ud800 text"}], "max_tokens": 2}',
         "messages", "\\ud800"),
        ("/v1/completions", b'{"prompt": "bad \\udfff", "max_tokens": 2}', "prompt", "\\udfff"),
        ("/v1/chat/completions", b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "tools": '
         b'[{"type": "function", "function": {"name": "f", "description": "bad \\udc00"}}]}', "tools", "\\udc00"),
    ):
        status, err = await e.post_raw(path, body)
        assert status == 400, err
        assert err["error"]["type"] == "invalid_request_error" and err["error"]["param"] == param
        assert "lone surrogate" in err["error"]["message"] and point in err["error"]["message"], err
        assert "TextEncodeInput" not in err["error"]["message"]


async def test_a_chat_without_a_template_names_messages_not_prompt(engine: Callable[..., Awaitable[Engine]]) -> None:
    """A tokenizer with no chat template joins the messages into one text; its errors named `prompt`, a field a
    chat request does not have."""
    e = await engine("random", max_context=64)
    formatter = e.worker.app[WORKER].formatter
    assert formatter is not None
    formatter.has_chat_template = False
    for content, code in (("bad \ud800 text", "invalid_text"), ("word " * 2000, "context_length_exceeded")):
        body = json.dumps({"messages": [{"role": "user", "content": content}], "max_tokens": 2})  # ASCII: `\ud800`
        status, err = await e.post_raw("/v1/chat/completions", body.encode())
        assert status == 400 and err["error"]["code"] == code, err
        assert err["error"]["param"] == "messages", err


async def test_a_message_without_content_is_a_400_as_openai_answers_it(
        engine: Callable[..., Awaitable[Engine]]) -> None:
    """`{"role": "user"}` was rendered as an empty turn and answered; OpenAI refuses it. An assistant turn may still
    leave its content out (it holds tool calls)."""
    e = await engine("random")
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    turn = [{"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": [call]}]
    for messages in ([{"role": "user"}], [*turn, {"role": "tool", "tool_call_id": "c1"}]):
        body = json.dumps({"messages": messages, "max_tokens": 2}).encode()
        status, err = await e.post_raw("/v1/chat/completions", body)
        assert status == 400, err
        where = f"messages[{len(messages) - 1}].content"
        assert err["error"] == {"message": f"Missing required parameter: '{where}'.", "type": "invalid_request_error",
                                "param": "messages", "code": "missing_required_parameter"}
    history = [*turn, {"role": "tool", "tool_call_id": "c1", "content": "ok"}]
    status, _ = await e.post_raw("/v1/chat/completions", json.dumps({"messages": history, "max_tokens": 2}).encode())
    assert status == 200


async def test_a_null_content_is_a_400_but_for_an_assistant_turn(engine: Callable[..., Awaitable[Engine]]) -> None:
    """`"content": null` on a user, system, developer or tool message was answered as an empty turn; OpenAI
    refuses it (only an assistant turn may leave its content null: it holds tool calls)."""
    e = await engine("random")
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    turn = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": None, "tool_calls": [call]}]
    for last in ({"role": "user"}, {"role": "system"}, {"role": "developer"}, {"role": "tool", "tool_call_id": "c1"}):
        body = json.dumps({"messages": [*turn, {**last, "content": None}], "max_tokens": 2}).encode()
        status, err = await e.post_raw("/v1/chat/completions", body)
        assert status == 400, err
        assert err["error"]["code"] == "invalid_type" and err["error"]["param"] == "messages", err
        assert "'messages[2].content'" in err["error"]["message"] and "null" in err["error"]["message"], err
    history = [*turn, {"role": "tool", "tool_call_id": "c1", "content": "ok"}]
    status, _ = await e.post_raw("/v1/chat/completions", json.dumps({"messages": history, "max_tokens": 2}).encode())
    assert status == 200


async def test_shutdown_ends_inflight_streams_with_an_error(engine, tiny_models):
    e = await engine("random")
    stream = await e.client().chat.completions.create(
        model="random", messages=USER, max_tokens=3000, temperature=0, logit_bias=no_eos(tiny_models), stream=True
    )
    await stream.__anext__()
    closing = asyncio.ensure_future(e.worker.close())
    with pytest.raises(openai.APIError):
        async for _ in stream:
            pass
    await asyncio.wait_for(closing, 30)
