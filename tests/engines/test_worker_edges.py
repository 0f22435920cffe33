"""The worker at its edges: a request meeting a shutdown, parameters at the limits of float32, stop strings that
would stall the engine's one thread, input nested past a recursive parser, and /stats while idle."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from engines.worker.sampling import SamplingParams
from engines.worker.scheduler import SequenceSpec
from engines.worker.server import WORKER
from tests.engines.conftest import WEATHER_TOOL

HI = [{"role": "user", "content": "hi"}]


async def test_a_sequence_submitted_as_the_engine_stops_fails_at_once(engine) -> None:
    """A submit queued behind the stop, or after it, is answered 503 engine_stopped; it waited for ever and held
    the worker's shutdown."""
    e = await engine("random")
    sched = e.worker.app[WORKER].scheduler

    def slow(tokens: Any, logits: Any) -> Any:  # keeps the MLX thread inside one step for a moment
        time.sleep(0.5)
        return logits

    busy = sched.submit(SequenceSpec([5, 6, 7], 20, SamplingParams(temperature=0), logits_processors=[slow]))
    await busy.next_events()
    closing = asyncio.ensure_future(sched.close())
    await asyncio.sleep(0.05)
    behind = sched.submit(SequenceSpec([8, 9], 5, SamplingParams(temperature=0)))
    await asyncio.wait_for(closing, 30)
    after = sched.submit(SequenceSpec([8, 9], 5, SamplingParams(temperature=0)))
    for handle in (behind, after):
        events = await asyncio.wait_for(handle.next_events(), 5)
        assert getattr(events[-1], "code", None) == "engine_stopped", events


@pytest.mark.parametrize("params", [{"temperature": 1e-40}, {"temperature": 1e-40, "top_k": 1}, {"top_p": 1e-50},
                                    {"temperature": 1e-40, "response_format": {"type": "json_object"}}])
async def test_sampling_at_the_edge_of_float32_is_greedy(engine, params: dict[str, Any]) -> None:
    """1/T overflows float32 near T = 1e-38, and a top_p of 1e-50 is 0 in float32: both sampled uniform noise,
    past grammar and top_k. They now sample as T = 0 (greedy)."""
    e = await engine("random")
    client = e.client()
    base = {"temperature": 0, **({"response_format": params["response_format"]} if "response_format" in params
                                   else {})}
    extra = {k: v for k, v in params.items() if k == "top_k"}
    params = {k: v for k, v in params.items() if k != "top_k"}
    greedy = await client.chat.completions.create(model="random", messages=HI, max_tokens=8, **base)  # type: ignore[call-overload]
    edge = await client.chat.completions.create(model="random", messages=HI, max_tokens=8, seed=7,  # type: ignore[call-overload]
                                                extra_body=extra, **params)
    assert edge.choices[0].message.content == greedy.choices[0].message.content


async def test_stop_strings_are_bounded_in_length(engine) -> None:
    e = await engine("random")
    status, body = await e.post_raw("/v1/chat/completions", json.dumps(
        {"messages": HI, "max_tokens": 3, "stop": ["x" * 1025]}).encode())
    assert status == 400 and body["error"]["param"] == "stop"
    status, _ = await e.post_raw("/v1/chat/completions", json.dumps(
        {"messages": HI, "max_tokens": 3, "stop": ["x" * 1024]}).encode())
    assert status == 200


async def test_input_nested_too_deep_is_a_400_or_unconstrained(engine) -> None:
    e = await engine("random")
    for path in ("/v1/chat/completions", "/v1/completions"):
        status, body = await e.post_raw(path, b"[" * 5000 + b"]" * 5000)
        assert status == 400 and body["error"]["code"] == "invalid_json"
    schema = '{"type": "object", "properties": {"a": ' * 300 + '{"type": "string"}' + "}}" * 300
    status, body = await e.post_raw("/v1/chat/completions", (
        '{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "response_format": {"type": '
        '"json_schema", "json_schema": {"name": "deep", "schema": ' + schema + "}}}").encode())
    assert status == 200, body  # decoded unconstrained, as when any grammar cannot be built (it was a 500)


class _EncodeSpy:
    """A tokenizer that records the length of every text it is asked to encode, and the conversations rendered."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self.encoded: list[int] = []
        self.rendered: list[int] = []

    def apply_chat_template(self, messages: list[Any], **kwargs: Any) -> Any:
        self.rendered.append(len(messages))
        return self._tokenizer.apply_chat_template(messages, **kwargs)

    def encode(self, text: str, **kwargs: Any) -> Any:
        self.encoded.append(len(text))
        return self._tokenizer.encode(text, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tokenizer, name)


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "w " * 40_000}]}),
    ("/v1/completions", {"prompt": "w " * 40_000}),
])
async def test_a_prompt_far_past_the_context_is_refused_before_it_is_tokenized(engine, path: str,
                                                                                  body: dict[str, Any]) -> None:
    """Its length alone says it cannot fit: it was tokenized whole first (a 50 MB prompt took minutes of CPU and
    held the tokenizer lock, so every other request waited behind it)."""
    e = await engine("random", max_context=64)
    formatter = e.worker.app[WORKER].formatter
    spy = _EncodeSpy(formatter.tokenizer)
    formatter.tokenizer = spy
    status, err = await e.post_raw(path, json.dumps({**body, "max_tokens": 2}).encode())
    assert status == 400 and err["error"]["code"] == "context_length_exceeded", err
    assert "64" in err["error"]["message"] and err["error"]["param"] in ("messages", "prompt")
    assert all(n < 10_000 for n in spy.encoded), spy.encoded
    status, _ = await e.post_raw(path, json.dumps({**body, **({"messages": HI} if "messages" in body
                                                                else {"prompt": "hi"}), "max_tokens": 2}).encode())
    assert status == 200


async def test_a_prompt_past_the_context_compiles_no_grammar(engine) -> None:
    """The 400 comes first: a schema's grammar (a second of CPU for a large enum) was compiled for it anyway."""
    e = await engine("random", max_context=64)
    cache = e.worker.app[WORKER].guide.cache
    schema = {"type": "object", "properties": {"a": {"enum": ["x", "y"]}}, "required": ["a"]}
    body = {"messages": [{"role": "user", "content": "the weather " * 40}], "max_tokens": 2,
            "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}}
    status, err = await e.post_raw("/v1/chat/completions", json.dumps(body).encode())
    assert status == 400 and err["error"]["code"] == "context_length_exceeded", err
    assert cache.stats.compiled + cache.stats.failed == 0


async def test_a_chat_template_from_the_request_is_refused(engine) -> None:
    """`chat_template_kwargs.chat_template` replaced the model's template with the client's own Jinja, which may
    loop for ever (holding the tokenizer lock every request needs) or build a string past memory."""
    e = await engine("random")
    template = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    status, err = await e.post_raw("/v1/chat/completions", json.dumps(
        {"messages": HI, "max_tokens": 2, "chat_template_kwargs": {"chat_template": template}}).encode())
    assert status == 400 and err["error"]["param"] == "chat_template_kwargs", err
    status, _ = await e.post_raw("/v1/chat/completions", json.dumps(
        {"messages": HI, "max_tokens": 2, "chat_template_kwargs": {"enable_thinking": False}}).encode())
    assert status == 200


async def test_call_arguments_nested_past_the_parser_are_not_a_500(engine) -> None:
    """A replayed call's arguments are parsed for the template; nested past Python's recursion limit they raised
    RecursionError out of the render, a 500. They are kept as the string they came as, like any unparsable ones."""
    e = await engine("random", max_context=16384)
    args = "[" * 1500 + "]" * 1500
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": args}}
    messages = [*HI, {"role": "assistant", "tool_calls": [call]}, {"role": "tool", "tool_call_id": "c", "content": "r"}]
    status, body = await e.post_raw("/v1/chat/completions",
                                    json.dumps({"messages": messages, "max_tokens": 2}).encode())
    assert status == 200, body


CYCLE = {"$ref": "#/$defs/a", "$defs": {"a": {"$ref": "#/$defs/a"}}}  # compiles; no value satisfies it
LOOKBEHIND = {"type": "string", "pattern": "(?<=a)b"}  # llguidance refuses it: decoded without a grammar
HOSTILE: list[tuple[dict[str, Any], int]] = [
    ({"max_tokens": -1}, 400),
    ({"n": 0}, 400),
    ({"logit_bias": {str(i): 1 for i in range(100_000)}}, 400),
    ({"stop": ["ab"] * 5000}, 400),
    ({"temperature": {"hot": True}}, 400),
    ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}, 400),
    ({"messages": [{"role": "user", "content": "w " * 100_000}]}, 400),
    ({"chat_template_kwargs": {"continue_final_message": True}}, 400),  # the template raises
    ({"chat_template_kwargs": {"chat_template": "{{ 'x' * 10**10 }}"}}, 400),
    ({"tool_choice": {"type": "function", "function": {"name": "nope"}}, "tools": [WEATHER_TOOL]}, 400),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": CYCLE}}}, 200),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "p", "schema": LOOKBEHIND}}}, 200),
    ({"tool_choice": "required", "tools": [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"a": {"enum": list(range(100_000))}}}}}]}, 400),
]


async def test_hostile_requests_leave_a_concurrent_stream_alone(engine, tiny_models) -> None:
    """Every hostile request gets its answer (a 400, or a reply decoded without a grammar it could not have)
    while a stream on the same worker runs to its full length, and the worker stays healthy."""
    e = await engine("random", max_context=4096)
    eos = json.loads((tiny_models["random"] / "config.json").read_text())["eos_token_id"]
    client = e.client()

    async def good() -> tuple[str | None, int]:
        stream = await client.chat.completions.create(
            model="random", messages=HI, max_tokens=1000, temperature=0.7, logit_bias={str(eos): -100}, stream=True,
            stream_options={"include_usage": True})
        finish, tokens = None, 0
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].finish_reason:
                finish = chunk.choices[0].finish_reason
            if chunk.usage:
                tokens = chunk.usage.completion_tokens
        return finish, tokens

    running = asyncio.ensure_future(good())
    await e.wait_stats(lambda s: s["running"] >= 1 or running.done())

    async def hostile(extra: dict[str, Any]) -> tuple[int, Any]:
        body = {"messages": HI, "max_tokens": 4, **extra}
        return await e.post_raw("/v1/chat/completions", json.dumps(body).encode())

    answers = await asyncio.wait_for(asyncio.gather(*(hostile(extra) for extra, _ in HOSTILE)), 120)
    for (extra, expected), (status, body) in zip(HOSTILE, answers, strict=True):
        assert status == expected, (list(extra), body)
        if status == 400:
            assert body["error"]["type"] == "invalid_request_error", body
    assert not running.done()  # the answers all came while it ran
    assert await asyncio.wait_for(running, 120) == ("length", 1000)
    status, _ = await e.get("/health")
    assert status == 200


async def test_more_messages_than_the_context_has_tokens_are_refused_before_rendering(engine) -> None:
    """Each message renders to one token at least: 200,000 of them held the tokenizer lock (every request's
    render waits on it) for seconds of template work before the 400."""
    e = await engine("random", max_context=64)
    formatter = e.worker.app[WORKER].formatter
    spy = _EncodeSpy(formatter.tokenizer)
    formatter.tokenizer = spy
    body = {"messages": [{"role": "user", "content": "a"}] * 65, "max_tokens": 2}
    status, err = await e.post_raw("/v1/chat/completions", json.dumps(body).encode())
    assert status == 400 and err["error"]["code"] == "context_length_exceeded", err
    assert "64" in err["error"]["message"] and err["error"]["param"] == "messages"
    assert spy.rendered == []
    status, _ = await e.post_raw("/v1/chat/completions", json.dumps({**body, "messages": HI * 3}).encode())
    assert status == 200 and spy.rendered


STRICT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m.role == 'system' and not loop.first %}{{ raise_exception('System message must be first') }}{% endif %}"
    "{% if m.role == 'tool' and (loop.first or messages[loop.index0 - 1].role not in ('assistant', 'tool')) %}"
    "{{ raise_exception('A tool message must follow a call') }}{% endif %}"
    "<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.mark.parametrize(("messages", "said"), [
    ([{"role": "system", "content": "a"}, {"role": "system", "content": "b"}, *HI], "System message must be first"),
    ([*HI, {"role": "tool", "tool_call_id": "c", "content": "r"}], "A tool message must follow a call"),
])
async def test_a_template_that_raises_on_the_roles_is_a_400_naming_why(engine, messages: list[dict[str, Any]],
                                                                       said: str) -> None:
    e = await engine("random")
    hf = e.worker.app[WORKER].formatter.tokenizer._tokenizer
    hf.chat_template = STRICT_TEMPLATE
    status, err = await e.post_raw("/v1/chat/completions", json.dumps({"messages": messages, "max_tokens": 2}).encode())
    assert status == 400 and err["error"]["code"] == "invalid_messages" and said in err["error"]["message"], err
    assert err["error"]["type"] == "invalid_request_error" and err["error"]["param"] == "messages"
    status, _ = await e.post_raw("/v1/chat/completions", json.dumps({"messages": HI, "max_tokens": 2}).encode())
    assert status == 200


class PanicException(BaseException):
    """What pyo3 raises for a Rust panic inside llguidance: a BaseException, not an Exception."""


async def test_a_tokenizer_llguidance_panics_on_leaves_the_model_unconstrained(engine, monkeypatch) -> None:
    """The panic failed the model's load (the worker answered 503 to everything); now, like any failure to build
    the grammar service, the model serves unconstrained."""
    def panic(*args: Any, **kwargs: Any) -> Any:
        raise PanicException("assertion failed: num_parents <= (1 << PARENT_BITS) as usize")

    monkeypatch.setattr("engines.worker.guided.make_llg_tokenizer", panic)
    e = await engine("random")
    assert e.worker.app[WORKER].guide is None
    status, _ = await e.post_raw("/v1/chat/completions", json.dumps(
        {"messages": HI, "max_tokens": 2, "response_format": {"type": "json_object"}}).encode())
    assert status == 200


async def test_a_body_of_a_million_objects_is_refused_before_it_is_parsed(engine, tiny_models, monkeypatch) -> None:
    """Parsing 1.8M messages (60 MB) held the worker's event loop for seconds, and every stream on it with it
    (`json.loads` keeps the GIL, so a thread would not have helped): past 1 MiB, a body with more objects and arrays
    than the bound is a 413 from a count of its brackets, while a stream on the same worker runs on."""
    e = await engine("random", max_context=4096)
    eos = json.loads((tiny_models["random"] / "config.json").read_text())["eos_token_id"]
    parsed: list[int] = []
    loads = json.loads

    def spy(text: Any, **kw: Any) -> Any:
        parsed.append(len(text))
        return loads(text, **kw)

    monkeypatch.setattr(json, "loads", spy)
    stream = await e.client().chat.completions.create(
        model="random", messages=HI, max_tokens=300, temperature=0.7, logit_bias={str(eos): -100}, stream=True)
    message = b'{"role":"user","content":"a"},'
    body = b'{"max_tokens":2,"messages":[' + message * 600_000 + b'{"role":"user","content":"a"}]}'
    status, err = await e.post_raw("/v1/chat/completions", body)
    assert status == 413 and err["error"]["code"] == "request_too_large", err
    assert "600003" in err["error"]["message"], err
    assert all(n < len(body) for n in parsed)
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices[0].finish_reason == "length"
    many = json.dumps({"messages": HI * 40_000, "max_tokens": 2}).encode()
    status, err = await e.post_raw("/v1/chat/completions", many)
    assert status == 400 and err["error"]["code"] == "context_length_exceeded"  # over 1 MiB, under the bound


async def test_the_body_size_limit_is_the_workers_setting(engine) -> None:
    """The cap was a fixed 64 MiB whatever the router allowed; it is now `--max-body-mb` (here 1 MiB)."""
    e = await engine("random", max_body_bytes=1 << 20)
    body = json.dumps({"max_tokens": 2, "messages": [{"role": "user", "content": "a" * (1 << 20)}]}).encode()
    status, err = await e.post_raw("/v1/chat/completions", body)
    assert status == 413 and err["error"]["code"] == "request_too_large", err
    assert str(1 << 20) in err["error"]["message"], err
    status, _ = await e.post_raw("/v1/chat/completions", json.dumps({"messages": HI, "max_tokens": 2}).encode())
    assert status == 200
