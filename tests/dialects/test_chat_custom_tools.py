"""OpenAI `custom` (free-form) tools on /v1/chat/completions. An OpenAI upstream's custom call (its input free-form
text, not JSON) comes through repair as it was sent, whole or streamed, beside function calls; a call written in the
model's text to a custom tool (a function of one string `input`, as the Responses route declares one) comes out as a
custom call. An Anthropic provider gets a custom tool as a tool of one string `input`, its calls back as custom
calls, and a custom call in the history as its tool_use (the real API refuses a tool_result whose tool_use is gone).
A local engine gets custom tools, and the custom calls in the history, as functions of one string `input`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from router.custom_tools import functions_view
from tests.dialects.conftest import CHAT_WEATHER
from tests.fakes.anthropic_upstream import API_KEY, AStep, message, stream_events
from tests.fakes.openai_upstream import Step, chunk, completion

CFG = """
providers:
  lab: {{type: openai, base_url: '{url}', retries: 0}}
models:
  - {{name: m, provider: lab}}
"""
RUN = {"type": "custom", "custom": {"name": "run", "description": "Run a shell command."}}
CALL = {"id": "call_c1", "type": "custom", "custom": {"name": "run", "input": 'ls -la "my dir"\n'}}
WEATHER_CALL = {"id": "call_w1", "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}


def _custom_stream(with_function: bool) -> list[dict[str, Any]]:
    """As OpenAI streams a custom call: its header with an empty input, then input pieces (after a function call)."""
    events = [chunk("m", {"role": "assistant", "content": None})]
    at = 0
    if with_function:
        events += [chunk("m", {"tool_calls": [{"index": 0, "id": "call_w1", "type": "function",
                                               "function": {"name": "get_weather", "arguments": ""}}]}),
                   chunk("m", {"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
                   chunk("m", {"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]})]
        at = 1
    events += [chunk("m", {"tool_calls": [{"index": at, "id": "call_c1", "type": "custom",
                                           "custom": {"name": "run", "input": ""}}]}),
               chunk("m", {"tool_calls": [{"index": at, "custom": {"input": 'ls -la "my'}}]}),
               chunk("m", {"tool_calls": [{"index": at, "custom": {"input": ' dir"\n'}}]}),
               chunk("m", {}, "tool_calls")]
    return events


async def _streamed(client: Any, **kw: Any) -> tuple[dict[int, dict[str, Any]], str | None]:
    """The calls a chat stream adds up to, by index (as the openai SDK hands over a custom delta: an extra member),
    and its finish reason."""
    calls, _, finish = await _added_up(client, **kw)
    return calls, finish


async def _answer(client: Any, stream: bool, **kw: Any) -> tuple[list[dict[str, Any]], str, str | None]:
    """The calls (in order), the content and the finish reason of one answer, streamed or whole."""
    if stream:
        calls, content, finish = await _added_up(client, **kw)
        return [calls[k] for k in sorted(calls)], content, finish
    choice = (await client.chat.completions.create(**kw)).choices[0]
    return ([c.model_dump(exclude_none=True) for c in choice.message.tool_calls or []], choice.message.content or "",
            choice.finish_reason)

async def _added_up(client: Any, **kw: Any) -> tuple[dict[int, dict[str, Any]], str, str | None]:
    """A chat stream's calls by index, its content and its finish reason, as the client adds them up."""
    calls: dict[int, dict[str, Any]] = {}
    content, finish = "", None
    stream = await client.chat.completions.create(stream=True, **kw)
    async for c in stream:
        if not c.choices:
            continue
        content += c.choices[0].delta.content or ""
        for tc in c.choices[0].delta.tool_calls or []:
            call = calls.setdefault(tc.index, {"id": "", "type": ""})
            call["id"] = call["id"] or tc.id or ""
            call["type"] = call["type"] or tc.type or ""
            extra = tc.model_extra or {}
            if isinstance(extra.get("custom"), dict):
                piece = call.setdefault("custom", {"name": "", "input": ""})
                piece["name"] += extra["custom"].get("name") or ""
                piece["input"] += extra["custom"].get("input") or ""
            if tc.function is not None:
                fn = call.setdefault("function", {"name": "", "arguments": ""})
                fn["name"] += tc.function.name or ""
                fn["arguments"] += tc.function.arguments or ""
        finish = c.choices[0].finish_reason or finish
    return calls, content, finish


@pytest.mark.parametrize("with_function", [False, True], ids=["custom only", "beside a function"])
async def test_an_upstream_custom_call_comes_through_whole(fakes, router, with_function):
    up = await fakes()
    calls = [WEATHER_CALL, CALL] if with_function else [CALL]
    up.push(Step(json=completion(None, "m", tool_calls=calls, finish_reason="tool_calls")))
    r = await router(CFG.format(url=up.url))
    tools = [CHAT_WEATHER, RUN] if with_function else [RUN]
    out = await r.client().chat.completions.create(model="m", tools=tools,  # type: ignore[arg-type]
                                                   messages=[{"role": "user", "content": "list files"}])
    choice = out.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert [c.model_dump(exclude_none=True) for c in choice.message.tool_calls or []] == calls
    assert up.requests[0].body["tools"] == tools  # the upstream got the custom tool as declared


@pytest.mark.parametrize("interval", [0.0, 0.01], ids=["one read", "piece by piece"])
@pytest.mark.parametrize("with_function", [False, True], ids=["custom only", "beside a function"])
async def test_an_upstream_custom_call_comes_through_streamed(fakes, router, with_function, interval):
    up = await fakes()
    up.push(Step(sse=_custom_stream(with_function), interval=interval))
    r = await router(CFG.format(url=up.url))
    tools = [CHAT_WEATHER, RUN] if with_function else [RUN]
    calls, finish = await _streamed(r.client(), model="m", tools=tools,
                                    messages=[{"role": "user", "content": "list files"}])
    assert finish == "tool_calls"
    at = 1 if with_function else 0
    assert calls[at] == CALL
    if with_function:
        assert calls[0]["id"] == "call_w1" and calls[0]["type"] == "function"
        assert calls[0]["function"]["name"] == "get_weather"
        assert json.loads(calls[0]["function"]["arguments"]) == {"city": "Oslo"}
    assert sorted(calls) == list(range(2 if with_function else 1))


TEXT_CALL = '<tool_call>\n{"name": "run", "arguments": {"input": "cat \\"a b.txt\\""}}\n</tool_call>'


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_a_text_call_to_a_custom_tool_is_a_custom_call(fakes, router, stream):
    """A model that knows only functions writes the call as the Responses route declares a custom tool (one string,
    `input`): the client gets the custom call."""
    up = await fakes()
    if stream:
        pieces = [TEXT_CALL[:30], TEXT_CALL[30:60], TEXT_CALL[60:]]
        up.push(Step(sse=[chunk("m", {"role": "assistant", "content": ""}),
                          *[chunk("m", {"content": p}) for p in pieces], chunk("m", {}, "stop")], interval=0.01))
    else:
        up.push(Step(json=completion(TEXT_CALL, "m")))
    r = await router(CFG.format(url=up.url))
    kw: dict[str, Any] = {"model": "m", "tools": [CHAT_WEATHER, RUN],
                          "messages": [{"role": "user", "content": "show a b.txt"}]}
    got, content, finish = await _answer(r.client(), stream, **kw)
    assert not content
    assert finish == "tool_calls"
    assert len(got) == 1 and got[0]["type"] == "custom" and got[0]["id"]
    assert got[0]["custom"] == {"name": "run", "input": 'cat "a b.txt"'}


# --- an Anthropic provider ----------------------------------------------------------------------------------------

ACFG = """
providers:
  claude: {{type: anthropic, base_url: '{url}', api_key: '{key}', retries: 0}}
models:
  - {{name: sonnet, provider: claude, model: claude-sonnet-4-5}}
"""
GRAMMAR_RUN = {"type": "custom", "custom": {"name": "run", "description": "Run a shell command.",
                                            "format": {"type": "grammar",
                                                       "grammar": {"syntax": "regex", "definition": "[a-z ]+"}}}}
USE = {"type": "tool_use", "id": "toolu_01C", "name": "run", "input": {"input": 'ls -la "my dir"\n'}}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_a_custom_tool_reaches_anthropic_and_its_call_comes_back_custom(fake_anthropic, router, stream):
    fake = await fake_anthropic()
    blocks = [{"type": "text", "text": "Listing."}, USE]
    fake.push(AStep(events=stream_events(blocks, "claude-sonnet-4-5", stop_reason="tool_use")) if stream else
              AStep(json=message(blocks, "claude-sonnet-4-5", stop_reason="tool_use")))
    r = await router(ACFG.format(url=fake.url, key=API_KEY))
    kw: dict[str, Any] = {"model": "sonnet", "tools": [CHAT_WEATHER, GRAMMAR_RUN],
                          "tool_choice": {"type": "custom", "custom": {"name": "run"}},
                          "messages": [{"role": "user", "content": "list files"}]}
    got, _, finish = await _answer(r.client(), stream, **kw)
    assert finish == "tool_calls"
    assert got == [{"id": "toolu_01C", "type": "custom", "custom": {"name": "run", "input": 'ls -la "my dir"\n'}}]
    sent = fake.requests[0].body
    run = next(t for t in sent["tools"] if t["name"] == "run")
    assert run["input_schema"]["properties"]["input"]["type"] == "string"
    assert run["input_schema"]["required"] == ["input"]
    assert run["description"].startswith("Run a shell command.") and "[a-z ]+" in run["description"]
    assert [t["name"] for t in sent["tools"]] == ["get_weather", "run"]
    assert sent["tool_choice"]["type"] == "tool" and sent["tool_choice"]["name"] == "run"


async def test_a_custom_call_in_the_history_reaches_anthropic_as_its_tool_use(fake_anthropic, router):
    fake = await fake_anthropic()
    r = await router(ACFG.format(url=fake.url, key=API_KEY))
    out = await r.client().chat.completions.create(model="sonnet", tools=[RUN], messages=[  # type: ignore[arg-type]
        {"role": "user", "content": "list files"},
        {"role": "assistant", "content": None, "tool_calls": [CALL]},  # type: ignore[list-item]
        {"role": "tool", "tool_call_id": "call_c1", "content": "a.txt b.txt"},
    ])
    assert out.choices[0].message.content
    assert fake.requests[0].body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "list files"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "call_c1", "name": "run",
                                           "input": {"input": 'ls -la "my dir"\n'}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_c1", "content": "a.txt b.txt"}]},
    ]


SECRET = "sk-custom-provider-key-0123456789"


@pytest.mark.parametrize("repair", ["on", "off"])
async def test_a_provider_key_in_a_streamed_custom_input_is_redacted(fakes, router, repair):
    """A custom call's free-form input is text the client reads like a function's arguments: the provider's key in
    it is redacted, also when the upstream cuts it between two pieces."""
    up = await fakes()
    events = [chunk("m", {"role": "assistant", "content": None}),
              chunk("m", {"tool_calls": [{"index": 0, "id": "call_c1", "type": "custom",
                                          "custom": {"name": "run", "input": ""}}]}),
              chunk("m", {"tool_calls": [{"index": 0, "custom": {"input": "curl -H 'key: " + SECRET[:12]}}]}),
              chunk("m", {"tool_calls": [{"index": 0, "custom": {"input": SECRET[12:] + "' x"}}]}),
              chunk("m", {}, "tool_calls")]
    up.push(Step(sse=events, interval=0.01))
    r = await router(f"""
providers:
  lab: {{type: openai, base_url: '{up.url}', retries: 0, api_key: '{SECRET}'}}
models:
  - {{name: m, provider: lab}}
""")
    calls, finish = await _streamed(r.client(), model="m", tools=[RUN], extra_headers={"x-agentgate-repair": repair},
                                    messages=[{"role": "user", "content": "list files"}])
    assert finish == "tool_calls"
    text = calls[0]["custom"]["input"]
    assert SECRET not in text and SECRET[:12] not in text and "[redacted]" in text, text
    assert text.startswith("curl -H 'key: ") and text.endswith("' x")


# --- a repaired stream gives what the whole answer gives ------------------------------------------------------------

SHELL_A = {"id": "call_a", "type": "custom", "custom": {"name": "run", "input": "ls /a"}}
SHELL_B = {"id": "call_b", "type": "custom", "custom": {"name": "run", "input": 'rm -rf "b c"'}}


def _head(call: dict[str, Any], index: int | None) -> dict[str, Any]:
    head = {"id": call["id"], "type": "custom", "custom": {"name": call["custom"]["name"], "input": ""}}
    return head if index is None else {"index": index, **head}


def _piece(text: str, index: int | None) -> dict[str, Any]:
    return {"custom": {"input": text}} if index is None else {"index": index, "custom": {"input": text}}


def _pieces(call: dict[str, Any], index: int | None) -> list[dict[str, Any]]:
    text = call["custom"]["input"]
    return [_piece(text[:3], index), _piece(text[3:], index)]


def _shaped(shape: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """An upstream answer's calls, and the tool_calls deltas it streams them as."""
    if shape == "interleaved":  # parallel calls, their input pieces by index in turn
        a, b = _pieces(SHELL_A, 0), _pieces(SHELL_B, 1)
        return [SHELL_A, SHELL_B], [_head(SHELL_A, 0), _head(SHELL_B, 1), a[0], b[0], a[1], b[1]]
    if shape == "no index":
        return [SHELL_A], [_head(SHELL_A, None), *_pieces(SHELL_A, None)]
    if shape == "two without index":
        return [SHELL_A, SHELL_B], [_head(SHELL_A, None), *_pieces(SHELL_A, None),
                                    _head(SHELL_B, None), *_pieces(SHELL_B, None)]
    if shape == "index 0 reused":  # each call at index 0 (some servers), told apart by its id
        return [SHELL_A, SHELL_B], [_head(SHELL_A, 0), *_pieces(SHELL_A, 0), _head(SHELL_B, 0), *_pieces(SHELL_B, 0)]
    if shape == "custom then function at index 0":
        return [SHELL_A, WEATHER_CALL], [_head(SHELL_A, 0), *_pieces(SHELL_A, 0),
                                         {"index": 0, "id": "call_w1", "type": "function",
                                          "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]
    assert shape == "custom then function"
    return [SHELL_A, WEATHER_CALL], [_head(SHELL_A, 0), *_pieces(SHELL_A, 0),
                                     {"index": 1, "id": "call_w1", "type": "function",
                                      "function": {"name": "get_weather", "arguments": '{"city": '}},
                                     {"index": 1, "function": {"arguments": '"Oslo"}'}}]


def _same_calls(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    """Calls alike, function arguments compared as JSON when they are JSON."""
    def norm(call: dict[str, Any]) -> dict[str, Any]:
        fn = call.get("function")
        if fn is None:
            return call
        try:
            args = json.loads(fn["arguments"])
        except ValueError:
            args = fn["arguments"]
        return {**call, "function": {**fn, "arguments": args}}
    assert [norm(c) for c in got] == [norm(c) for c in want]


async def _whole_and_streamed(client: Any, **kw: Any) -> tuple[Any, list[dict[str, Any]], str, str | None]:
    """The whole answer's choice, and the calls, content and finish reason its stream adds up to (the upstream
    answers the whole request first)."""
    whole = (await client.chat.completions.create(**kw)).choices[0]
    calls, content, finish = await _added_up(client, **kw)
    return whole, [calls[k] for k in sorted(calls)], content, finish


def _whole_calls(choice: Any) -> list[dict[str, Any]]:
    return [c.model_dump(exclude_none=True) for c in choice.message.tool_calls or []]


@pytest.mark.parametrize("interval", [0.0, 0.01], ids=["one read", "piece by piece"])
@pytest.mark.parametrize("shape", ["interleaved", "no index", "two without index", "index 0 reused",
                                   "custom then function", "custom then function at index 0"])
async def test_upstream_custom_calls_stream_as_the_whole_answer_gives_them(fakes, router, shape, interval):
    """Parallel custom calls whose input pieces interleave by index, or come without an index: each call keeps its
    own input (they all came with `input: ""`)."""
    calls, deltas = _shaped(shape)
    up = await fakes()
    up.push(Step(json=completion(None, "m", tool_calls=calls, finish_reason="tool_calls")))
    up.push(Step(sse=[chunk("m", {"role": "assistant", "content": None}),
                      *[chunk("m", {"tool_calls": [d]}) for d in deltas], chunk("m", {}, "tool_calls")],
                 interval=interval))
    r = await router(CFG.format(url=up.url))
    whole, got, _, finish = await _whole_and_streamed(r.client(), model="m", tools=[CHAT_WEATHER, RUN],
                                                      messages=[{"role": "user", "content": "list files"}])
    _same_calls(_whole_calls(whole), calls)
    _same_calls(got, calls)
    assert finish == whole.finish_reason == "tool_calls"


CUT_CALL = '<tool_call>{"name": "run", "arguments": {"input": "rm -rf /tmp/build/ca'


@pytest.mark.parametrize("interval", [0.0, 0.01], ids=["one read", "piece by piece"])
async def test_a_text_call_to_a_custom_tool_cut_by_max_tokens_is_not_made_a_call(fakes, router, interval):
    """Any text is a custom call's input: a call cut inside it goes out as no call at all (as in the whole answer:
    its text stays the content, finish `length`), never as a finished call the model did not finish."""
    up = await fakes()
    up.push(Step(json=completion(CUT_CALL, "m", finish_reason="length")))
    up.push(Step(sse=[chunk("m", {"role": "assistant", "content": ""}),
                      *[chunk("m", {"content": CUT_CALL[i:i + 7]}) for i in range(0, len(CUT_CALL), 7)],
                      chunk("m", {}, "length")], interval=interval))
    r = await router(CFG.format(url=up.url))
    whole, got, content, finish = await _whole_and_streamed(r.client(), model="m", tools=[CHAT_WEATHER, RUN],
                                                            messages=[{"role": "user", "content": "clean"}])
    assert not whole.message.tool_calls and whole.message.content == CUT_CALL
    assert got == [] and content == CUT_CALL
    assert finish == whole.finish_reason == "length"


@pytest.mark.parametrize("name", ["apply_patch", "get_weather"], ids=["undeclared", "declared a function"])
async def test_a_custom_call_to_a_name_not_declared_custom_streams_as_it_comes_whole(fakes, router, name):
    """The whole answer passes an upstream's custom call to another name on as the custom call it is: so does the
    stream (not a function call with `{"input": ...}`)."""
    call = {"id": "call_p", "type": "custom", "custom": {"name": name, "input": "*** Begin Patch"}}
    up = await fakes()
    up.push(Step(json=completion(None, "m", tool_calls=[call], finish_reason="tool_calls")))
    up.push(Step(sse=[chunk("m", {"role": "assistant", "content": None}), chunk("m", {"tool_calls": [
        {"index": 0, **call}]}), chunk("m", {}, "tool_calls")], interval=0.01))
    r = await router(CFG.format(url=up.url))
    whole, got, _, finish = await _whole_and_streamed(r.client(), model="m", tools=[CHAT_WEATHER, RUN],
                                                      messages=[{"role": "user", "content": "patch"}])
    assert _whole_calls(whole) == [call]
    assert got == [call]
    assert finish == whole.finish_reason == "tool_calls"


@pytest.mark.parametrize("tool_input", [{"command": "ls -la"}, {"input": ["ls"]}, {}],
                         ids=["another member", "not a string", "empty"])
async def test_an_anthropic_call_to_a_custom_tool_with_other_input_streams_as_whole(fake_anthropic, router,
                                                                                      tool_input):
    """Anthropic does not hold Claude to a tool's input_schema: a tool_use whose input is not one string `input`
    goes out as the function call the whole answer gives, streamed too (never a custom call with an empty input
    made up)."""
    fake = await fake_anthropic()
    blocks = [{"type": "tool_use", "id": "toolu_01C", "name": "run", "input": tool_input}]
    fake.push(AStep(json=message(blocks, "claude-sonnet-4-5", stop_reason="tool_use")))
    fake.push(AStep(events=stream_events(blocks, "claude-sonnet-4-5", stop_reason="tool_use")))
    r = await router(ACFG.format(url=fake.url, key=API_KEY))
    whole, got, _, finish = await _whole_and_streamed(r.client(), model="sonnet", tools=[CHAT_WEATHER, RUN],
                                                      messages=[{"role": "user", "content": "list files"}])
    want = [{"id": "toolu_01C", "type": "function", "function": {"name": "run", "arguments": json.dumps(tool_input)}}]
    _same_calls(_whole_calls(whole), want)
    _same_calls(got, want)
    assert finish == whole.finish_reason == "tool_calls"


async def test_an_anthropic_call_to_a_custom_tool_cut_by_max_tokens_is_no_custom_call(fake_anthropic, router):
    """A tool_use cut inside its input: repair holds a call to a custom tool until its arguments are whole, and these
    never are: the client gets no call (as repair leaves a cut call out of the whole answer), never a finished
    custom call (its input empty or cut) that an agent runs."""
    fake = await fake_anthropic()
    events = stream_events([{"type": "tool_use", "id": "toolu_01C", "name": "run",
                             "input": {"input": "rm -rf /tmp/build/cache"}}], "claude-sonnet-4-5",
                           stop_reason="max_tokens")
    cut = [e for e in events if not (e[0] == "content_block_delta" and e[1]["delta"]["partial_json"].endswith('"}'))]
    assert len(cut) == len(events) - 1
    fake.push(AStep(events=cut))
    r = await router(ACFG.format(url=fake.url, key=API_KEY))
    calls, finish = await _streamed(r.client(), model="sonnet", tools=[CHAT_WEATHER, RUN],
                                    messages=[{"role": "user", "content": "clean"}])
    assert finish == "length"
    assert calls == {}


# --- a local engine -------------------------------------------------------------------------------------------------

ENGINE_CALL = '<tool_call>\n{"name": "run", "arguments": {"input": "ls -la \\"my dir\\"\\n"}}\n</tool_call>'


@pytest.fixture(scope="module")
def custom_call_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scripted tiny model (hermes calls) that calls the custom tool `run` as a function of one string `input`."""
    tiny = pytest.importorskip("engines.worker.tiny")
    return Path(tiny.build_tiny_model(tmp_path_factory.mktemp("custom-tiny") / "run", script=ENGINE_CALL))


@pytest.fixture(scope="module")
async def engine_router(module_router: Any, custom_call_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One router and its engine for the local engine tests (each sends its own requests; none needs a fresh one)."""
    return await module_router(f"""
engines: {{runtime_dir: '{tmp_path_factory.mktemp("custom-engine") / "run"}'}}
models:
  - {{name: tiny, engine: mlx, model: '{custom_call_model}', start_timeout: 60}}
""")


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_a_local_engine_takes_custom_tools_and_its_call_comes_back_custom(engine_router, stream):
    """The engine refused a custom tool (400 "tools[0] must be {'type': 'function', ...}"): it gets the tool as a
    function of one string `input` (a custom `tool_choice` as that function's), and the model's call to it comes
    back as the custom call."""
    r = engine_router
    ask: list[Any] = [{"role": "user", "content": "list files"}]
    for choice in ({}, {"tool_choice": {"type": "custom", "custom": {"name": "run"}}}):
        got, content, finish = await _answer(r.client(), stream, model="tiny", tools=[CHAT_WEATHER, GRAMMAR_RUN],
                                             messages=ask, **choice)
        assert (content, finish) == ("", "tool_calls"), choice
        assert len(got) == 1 and got[0]["id"].startswith("call_"), (got, choice)
        assert {k: got[0][k] for k in ("type", "custom")} == {k: CALL[k] for k in ("type", "custom")}, choice


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_a_local_engine_call_to_a_custom_tool_comes_back_custom_with_repair_off(engine_router, stream):
    """With repair off the engine's call to a custom tool (the function of one string `input` it was given) went to
    the client as that function call, `{"input": ...}`, which the client never declared: a client of custom tools
    (Codex's apply_patch) had no call to run. It now comes back as the custom call, as with repair on."""
    r = engine_router
    got, content, finish = await _answer(r.client(), stream, model="tiny", tools=[CHAT_WEATHER, GRAMMAR_RUN],
                                         messages=[{"role": "user", "content": "list files"}],
                                         extra_headers={"x-agentgate-repair": "off"})
    assert (content, finish) == ("", "tool_calls")
    assert len(got) == 1 and got[0]["id"].startswith("call_"), got
    assert {k: got[0][k] for k in ("type", "custom")} == {k: CALL[k] for k in ("type", "custom")}
    assert "function" not in got[0] or got[0]["function"] == {"name": "", "arguments": ""}


def test_an_unrepaired_streams_calls_to_custom_tools_go_out_custom_before_its_finish() -> None:
    """`ChunkCalls` (the chat pass-through's, for a local engine's stream): a call to a custom tool is held until
    its arguments are whole and goes out as the custom call before the finishing chunk; a function call and the
    text go on as they came; a call cut before its arguments are whole goes as the function call it came as."""
    from router.custom_tools import ChunkCalls

    def calls_of(docs: list[Any]) -> list[dict[str, Any]]:
        return [c for d in docs for ch in d["choices"] for c in ch["delta"].get("tool_calls", [])]

    head = {"index": 1, "id": "call_r", "type": "function", "function": {"name": "run", "arguments": ""}}
    stream = [chunk("m", {"role": "assistant", "content": "ok"}),
              chunk("m", {"tool_calls": [{"index": 0, **WEATHER_CALL}]}),
              chunk("m", {"tool_calls": [head]}),
              chunk("m", {"tool_calls": [{"index": 1, "function": {"arguments": '{"input": "ls -la \\"my'}}]}),
              chunk("m", {"tool_calls": [{"index": 1, "function": {"arguments": ' dir\\"\\n"}'}}]}),
              chunk("m", {}, "tool_calls")]
    mapper = ChunkCalls(frozenset({"run"}))
    out = mapper.docs(json.loads(json.dumps(stream)))
    assert out[0]["choices"][0]["delta"] == {"role": "assistant", "content": "ok"}
    assert calls_of(out) == [{"index": 0, **WEATHER_CALL},
                             {"index": 1, "id": "call_r", "type": "custom", "custom": CALL["custom"]}]
    assert out[-1]["choices"][0]["finish_reason"] == "tool_calls" and out[-1]["id"] == "chatcmpl-fake"
    assert len(out) == 4 and mapper.rest() == []  # the held pieces' chunks are not sent empty

    cut = ChunkCalls(frozenset({"run"}))
    out = cut.docs(json.loads(json.dumps([stream[2], stream[3], chunk("m", {}, "length")])))
    assert calls_of(out) == [{**head, "function": {"name": "run", "arguments": '{"input": "ls -la \\"my'}}]
    assert out[-1]["choices"][0]["finish_reason"] == "length"


async def test_a_custom_call_in_the_history_reaches_a_local_engine_as_its_function_call(engine_router):
    """A custom call and its tool result in the history are rendered as the function call with `{"input": ...}` the
    model made: the prompt is the one the same turn gets when the client sends the function forms itself."""
    r = engine_router
    function_call = {"id": CALL["id"], "type": "function",
                     "function": {"name": "run", "arguments": json.dumps({"input": 'ls -la "my dir"\n'})}}
    prompts = []
    for tools, call in (([RUN], CALL), (functions_view([RUN]), function_call)):
        out = await r.client().chat.completions.create(model="tiny", tools=tools, messages=[  # type: ignore[arg-type]
            {"role": "user", "content": "list files"},
            {"role": "assistant", "content": None, "tool_calls": [call]},  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": "call_c1", "content": "a.txt b.txt"},
        ])
        assert out.usage is not None
        prompts.append(out.usage.prompt_tokens)
        assert [c.type for c in out.choices[0].message.tool_calls or []] == [tools[0]["type"]]  # the tool's kind
    assert prompts[0] == prompts[1]
