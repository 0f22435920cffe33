"""`type: anthropic` providers: OpenAI clients (and Anthropic clients) through the router to a fake Messages API."""

from __future__ import annotations

import base64
import json

import aiohttp
import anthropic
import openai
import pytest

from tests.dialects.conftest import ANTHROPIC_WEATHER, CHAT_WEATHER, RESPONSES_WEATHER, claude
from tests.fakes.anthropic_upstream import API_KEY, AStep, error_doc, message, stream_events

CFG = """
providers:
  claude: {{type: anthropic, base_url: '{url}', api_key: '{key}', retries: 1, backoff: {{base: 0.001, max: 0.002}}}}
models:
  - {{name: sonnet, provider: claude, model: claude-sonnet-4-5}}
"""
TOOL_BLOCKS = [{"type": "text", "text": "Let me look."},
               {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}}]


async def start(fake_anthropic, router, key: str = API_KEY):
    fake = await fake_anthropic()
    r = await router(CFG.format(url=fake.url, key=key))
    return fake, r


async def test_chat_non_stream_translation(fake_anthropic, router):
    fake, r = await start(fake_anthropic, router)
    fake.push(AStep(json=message([{"type": "text", "text": "Bonjour"}], "claude-sonnet-4-5",
                                 usage={"input_tokens": 10, "output_tokens": 3, "cache_read_input_tokens": 4,
                                        "cache_creation_input_tokens": 0})))
    out = await r.client().chat.completions.create(model="sonnet", temperature=1.5, stop="###", user="u7", messages=[
        {"role": "system", "content": "Be French."},
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "salut"},
        {"role": "user", "content": [{"type": "text", "text": "again"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
    ])
    assert out.model == "sonnet" and out.choices[0].message.content == "Bonjour"
    assert out.choices[0].finish_reason == "stop"
    assert out.usage is not None and (out.usage.prompt_tokens, out.usage.completion_tokens) == (14, 3)
    assert out.usage.prompt_tokens_details is not None and out.usage.prompt_tokens_details.cached_tokens == 4
    sent = fake.requests[0]
    assert sent.headers["x-api-key"] == API_KEY and sent.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in sent.headers
    assert sent.body == {
        "model": "claude-sonnet-4-5", "max_tokens": 64000, "system": "Be French.", "stop_sequences": ["###"],
        "temperature": 1.0, "metadata": {"user_id": "u7"},
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hello"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "salut"}]},
            {"role": "user", "content": [{"type": "text", "text": "again"}, {"type": "image", "source": {
                "type": "base64", "media_type": "image/png", "data": "AAAA"}}]},
        ],
    }


async def test_chat_file_parts_reach_anthropic(fake_anthropic, router):
    """A chat `file` part is never dropped: a text file's data as text (as the other routes read one), a PDF as a
    `document` block (which Anthropic reads), anything else as a placeholder naming it."""
    fake, r = await start(fake_anthropic, router)
    text = base64.b64encode(b"The password is mango").decode()
    pdf = base64.b64encode(b"%PDF-1.4 fake").decode()
    await r.client().chat.completions.create(model="sonnet", messages=[
        {"role": "user", "content": [
            {"type": "file", "file": {"filename": "notes.txt", "file_data": f"data:text/plain;base64,{text}"}}]},
        {"role": "assistant", "content": "Read."},
        {"role": "user", "content": [
            {"type": "file", "file": {"filename": "paper.pdf", "file_data": f"data:application/pdf;base64,{pdf}"}},
            {"type": "file", "file": {"file_id": "file-abc123"}},
            {"type": "text", "text": "Summarise."}]},
    ])
    assert fake.requests[0].body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "notes.txt:\nThe password is mango"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Read."}]},
        {"role": "user", "content": [
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": pdf},
             "title": "paper.pdf"},
            {"type": "text", "text": "[file omitted: file-abc123 (unknown type); this backend cannot read it]"},
            {"type": "text", "text": "Summarise."}]},
    ]


@pytest.mark.parametrize("part", [
    {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
    {"type": "file", "file": "notes.txt"},
    {"type": "video_url", "video_url": {"url": "https://example.com/v.mp4"}},
], ids=["input_audio", "file-without-object", "unknown"])
async def test_a_chat_part_anthropic_cannot_take_is_400_not_dropped(fake_anthropic, router, part):
    fake, r = await start(fake_anthropic, router)
    with pytest.raises(openai.BadRequestError) as bad:
        await r.client().chat.completions.create(model="sonnet", messages=[
            {"role": "user", "content": [{"type": "text", "text": "Listen."}, part]}])
    assert bad.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    assert part["type"] in bad.value.message
    assert not fake.requests


async def test_chat_stream_with_usage(fake_anthropic, router):
    fake, r = await start(fake_anthropic, router)
    fake.push(AStep(events=stream_events([{"type": "text", "text": "Hello world"}], "claude-sonnet-4-5",
                                         input_tokens=9, output_tokens=2, cache_read=1)))
    stream = await r.client().chat.completions.create(model="sonnet", stream=True, max_tokens=20,
                                                      stream_options={"include_usage": True},
                                                      messages=[{"role": "user", "content": "hi"}])
    text, finish, usage, models = "", None, None, set()
    async for c in stream:
        models.add(c.model)
        if c.usage is not None:
            usage = c.usage
        if c.choices:
            text += c.choices[0].delta.content or ""
            finish = c.choices[0].finish_reason or finish
    assert text == "Hello world" and finish == "stop" and models == {"sonnet"}
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (10, 2)
    assert fake.requests[0].body["stream"] is True and fake.requests[0].body["max_tokens"] == 20


async def test_tools_and_tool_result_round_trip(fake_anthropic, router):
    fake, r = await start(fake_anthropic, router)
    fake.push(AStep(json=message(TOOL_BLOCKS, "claude-sonnet-4-5", stop_reason="tool_use")))
    c = r.client()
    ask = {"role": "user", "content": "Weather in Paris?"}
    out = await c.chat.completions.create(model="sonnet", messages=[ask], tools=[CHAT_WEATHER],  # type: ignore
                                          tool_choice="required", parallel_tool_calls=False)
    msg = out.choices[0].message
    assert out.choices[0].finish_reason == "tool_calls" and msg.content == "Let me look."
    assert msg.tool_calls is not None and len(msg.tool_calls) == 1
    call = msg.tool_calls[0]
    assert call.id == "toolu_01A" and call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
    sent = fake.requests[0].body
    assert sent["tools"] == [ANTHROPIC_WEATHER]
    assert sent["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}

    out = await c.chat.completions.create(model="sonnet", tools=[CHAT_WEATHER], messages=[  # type: ignore
        ask, msg.model_dump(exclude_none=True),  # type: ignore[list-item]
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        {"role": "user", "content": "Thanks. Short answer please."},
    ])
    assert out.choices[0].message.content.startswith("echo: ")  # type: ignore[union-attr]
    assert fake.requests[1].body["messages"][1:] == [
        {"role": "assistant", "content": TOOL_BLOCKS},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01A", "content": "sunny"},
                                     {"type": "text", "text": "Thanks. Short answer please."}]},
    ]


async def test_tools_stream(fake_anthropic, router):
    fake, r = await start(fake_anthropic, router)
    fake.push(AStep(events=stream_events(TOOL_BLOCKS, "claude-sonnet-4-5", stop_reason="tool_use")))
    stream = await r.client().chat.completions.create(model="sonnet", stream=True, tools=[CHAT_WEATHER],  # type: ignore
                                                      messages=[{"role": "user", "content": "Weather?"}])
    text, args, names, ids, finish = "", {}, {}, {}, None
    async for c in stream:
        if not c.choices:
            continue
        d = c.choices[0].delta
        text += d.content or ""
        for tc in d.tool_calls or []:
            args[tc.index] = args.get(tc.index, "") + (tc.function.arguments or "")  # type: ignore[union-attr]
            if tc.function and tc.function.name:
                names[tc.index] = tc.function.name
            if tc.id:
                ids[tc.index] = tc.id
        finish = c.choices[0].finish_reason or finish
    assert text == "Let me look." and finish == "tool_calls"
    assert names == {0: "get_weather"} and ids == {0: "toolu_01A"} and json.loads(args[0]) == {"city": "Paris"}


CALL_HISTORY = [
    {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "write c.txt"}]},
    {"type": "function_call", "name": "exec_command", "arguments": '{"cmd": "printf c > c.txt"}', "call_id": "toolu_1"},
    {"type": "function_call", "name": "apply_patch", "arguments": "{}", "call_id": "toolu_2"},
    {"type": "function_call_output", "call_id": "toolu_1", "output": "Process exited with code 0"},
    {"type": "function_call_output", "call_id": "toolu_2", "output": "Done"},
    {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Summarise the conversation."}]},
]
HISTORY_TOOLS = [{"name": "exec_command", "input_schema": {"type": "object"}},
                 {"name": "apply_patch", "input_schema": {"type": "object"}}]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_a_tool_history_without_tools_declares_the_tools_it_calls(fake_anthropic, router, stream):
    """A request whose history holds calls and their results but that declares no tools (Codex's compaction: its
    conversation, no `tools`; a chat summariser) is refused by Anthropic ("Requests which include `tool_use` or
    `tool_result` blocks must define tools", which the fake enforces): the tools the history calls are declared,
    with any input, beside `tool_choice: none`, and the answer is text, no call."""
    fake, r = await start(fake_anthropic, router)
    c = r.client()
    if stream:
        async with c.responses.stream(model="sonnet", input=CALL_HISTORY, store=False) as s:  # type: ignore
            resp = await s.get_final_response()
    else:
        resp = await c.responses.create(model="sonnet", input=CALL_HISTORY, store=False)  # type: ignore
    assert resp.status == "completed" and [i.type for i in resp.output] == ["message"]
    assert resp.output_text == "echo: Summarise the conversation."
    sent = fake.requests[0].body
    assert sent["tools"] == HISTORY_TOOLS and sent["tool_choice"] == {"type": "none"}
    assert [[b["type"] for b in m["content"]] for m in sent["messages"]] == [
        ["text"], ["tool_use", "tool_use"], ["tool_result", "tool_result", "text"]]

    chat = await c.chat.completions.create(model="sonnet", tool_choice="none", messages=[  # type: ignore
        {"role": "user", "content": "write c.txt"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "toolu_1", "type": "function", "function": {
            "name": "exec_command", "arguments": '{"cmd": "printf c > c.txt"}'}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "Process exited with code 0"},
        {"role": "user", "content": "Summarise the conversation."}])
    assert chat.choices[0].message.content == "echo: Summarise the conversation."
    assert not chat.choices[0].message.tool_calls and chat.choices[0].finish_reason == "stop"
    sent = fake.requests[1].body
    assert sent["tools"] == HISTORY_TOOLS[:1] and sent["tool_choice"] == {"type": "none"}


async def test_declared_tools_are_sent_as_declared_beside_a_tool_history(fake_anthropic, router):
    """Tools declared: they alone go, with the client's tool_choice (none given: none sent)."""
    fake, r = await start(fake_anthropic, router)
    await r.client().responses.create(model="sonnet", input=CALL_HISTORY, store=False,  # type: ignore
                                      tools=[RESPONSES_WEATHER])  # type: ignore[list-item]
    sent = fake.requests[0].body
    assert sent["tools"] == [ANTHROPIC_WEATHER] and "tool_choice" not in sent


LONG_NAMESPACE = {"type": "namespace", "name": "mcp__filesystem_enterprise_gateway", "tools": [
    {"type": "function", "name": "search_files_recursively_with_content_matching",
     "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}]}


async def test_a_long_namespaced_name_reaches_anthropic_valid(fake_anthropic, router):
    """A namespace's flattened name past Anthropic's documented tool name rule (^[a-zA-Z0-9_-]{1,64}$, which the
    fake enforces) goes as a valid name of its own; Claude's call under it comes back with `namespace` and the
    function's name, and the call resent in a history without tools (a compaction) is declared under it again."""
    fake, r = await start(fake_anthropic, router)
    c = r.client()

    def call_first_tool(body):
        name = body["tools"][0]["name"]
        return AStep(json=message([{"type": "tool_use", "id": "toolu_9", "name": name, "input": {"q": "TODO"}}],
                                  body["model"], stop_reason="tool_use"))

    fake.push(call_first_tool)
    resp = await c.responses.create(model="sonnet", input="find TODOs", tools=[LONG_NAMESPACE],  # type: ignore
                                    store=False)
    name = fake.requests[0].body["tools"][0]["name"]
    assert len(name) <= 64 and "search_files_recursively_with_content_matching" in name
    item = resp.output[0].model_dump()
    assert (item["type"], item["namespace"], item["name"], item["call_id"]) == (
        "function_call", "mcp__filesystem_enterprise_gateway", "search_files_recursively_with_content_matching",
        "toolu_9")
    history = [{"type": "message", "role": "user", "content": "find TODOs"}, item,
               {"type": "function_call_output", "call_id": "toolu_9", "output": "none"},
               {"type": "message", "role": "user", "content": "Summarise."}]
    resp = await c.responses.create(model="sonnet", input=history, store=False)  # type: ignore[arg-type]
    assert resp.output_text == "echo: Summarise."
    sent = fake.requests[1].body
    assert sent["tools"] == [{"name": name, "input_schema": {"type": "object"}}]
    assert sent["messages"][1]["content"][0]["name"] == name


LIMITS_CFG = """
providers:
  claude: {{type: anthropic, base_url: '{url}', api_key: '{key}', retries: 0}}
models:
  - {{name: sonnet, provider: claude, model: claude-sonnet-4-5}}
  - {{name: opus, provider: claude, model: claude-opus-4-1-20250805}}
  - {{name: haiku, provider: claude, model: claude-3-5-haiku-latest}}
  - {{name: other, provider: claude, model: compatible-model}}
  - {{name: capped, provider: claude, model: claude-sonnet-4-5, max_output_tokens: 20000, fallbacks: [opus]}}
"""


async def test_an_output_limit_left_unset_is_the_models_maximum(fake_anthropic, router):
    """A request that sets no output limit (Codex never sends `max_output_tokens`) means "up to the model's
    maximum" in OpenAI's APIs; it went to Anthropic with 4096, and a longer answer (a big patch) came back cut. It
    now asks for the model's maximum (by its name; a model entry's `max_output_tokens` first; 4096 for a name not
    Claude's), so the answer is whole; a limit the client sets is kept, and with thinking the limit exceeds the
    budget."""
    fake = await fake_anthropic()
    r = await router(LIMITS_CFG.format(url=fake.url, key=API_KEY))

    def claude(body):  # an answer of 6000 tokens, cut where max_tokens says as Anthropic cuts it
        if body["max_tokens"] < 6000:
            return AStep(json=message([{"type": "text", "text": "partial"}], body["model"], stop_reason="max_tokens",
                                      usage={"input_tokens": 10, "output_tokens": body["max_tokens"]}))
        return AStep(json=message([{"type": "text", "text": "whole"}], body["model"]))

    fake.default = claude  # type: ignore[method-assign]
    c = r.client()
    resp = await c.responses.create(model="sonnet", input="write the whole file", store=False)
    assert resp.status == "completed" and resp.output_text == "whole"
    assert fake.requests[-1].body["max_tokens"] == 64000
    for model, limit in (("opus", 32000), ("haiku", 8192), ("other", 4096), ("capped", 20000)):
        await c.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
        assert fake.requests[-1].body["max_tokens"] == limit, model
    resp = await c.responses.create(model="sonnet", input="hi", store=False, max_output_tokens=300)
    assert resp.status == "incomplete" and fake.requests[-1].body["max_tokens"] == 300
    await c.responses.create(model="opus", input="think", store=False, reasoning={"effort": "high"})
    sent = fake.requests[-1].body
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 24576} and sent["max_tokens"] == 32000

    fake.push(AStep(status=500, json=error_doc("api_error", "boom")))  # capped fails: its fallback, opus, answers
    await c.chat.completions.create(model="capped", messages=[{"role": "user", "content": "hi"}])
    assert [q.body["max_tokens"] for q in fake.requests[-2:]] == [20000, 32000]


async def test_openai_only_fields_are_left_out_for_anthropic_from_both_routes(fake_anthropic, router):
    """`verbosity`, `prompt_cache_key`, `service_tier` (Responses: `text.verbosity`): Messages has none of them
    (its `service_tier` takes other values), so neither the chat route nor the Responses route sends them."""
    fake, r = await start(fake_anthropic, router)
    c = r.client()
    await c.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "hi"}], verbosity="low",
                                    prompt_cache_key="thread-0123", service_tier="flex")
    await c.responses.create(model="sonnet", input="hi", store=False, text={"verbosity": "low"},
                             prompt_cache_key="thread-0123", service_tier="flex")
    for q in fake.requests:
        assert not {"verbosity", "prompt_cache_key", "service_tier", "text"} & set(q.body), q.body
    assert [q.body["messages"] for q in fake.requests] == [[{"role": "user", "content": [
        {"type": "text", "text": "hi"}]}]] * 2


def test_the_default_output_limit_by_model_name() -> None:
    from router.dialects.anthropic_out import default_max_tokens
    assert [default_max_tokens(m) for m in (
        "claude-opus-4-20250514", "claude-opus-4-1", "claude-opus-4-5-20251101", "claude-opus-4-6",
        "claude-sonnet-4-20250514", "claude-sonnet-4-5-20250929", "anthropic/claude-sonnet-4.5",
        "anthropic.claude-haiku-4-5-20251001-v1:0", "claude-3-7-sonnet-latest", "claude-3-5-haiku-20241022",
        "claude-3-opus-20240229", "claude-opus-9", "deepseek-chat", None)] == [
        32000, 32000, 64000, 128000, 64000, 64000, 64000, 64000, 64000, 8192, 4096, 32000, 4096, 4096]


async def test_reasoning_effort_becomes_thinking(fake_anthropic, router):
    fake, r = await start(fake_anthropic, router)
    blocks = [{"type": "thinking", "thinking": "Hmm.", "signature": "sig"}, {"type": "text", "text": "Done."}]
    fake.push(AStep(json=message(blocks, "claude-sonnet-4-5")),
              AStep(events=stream_events(blocks, "claude-sonnet-4-5")))
    c = r.client()
    out = await c.chat.completions.create(model="sonnet", reasoning_effort="low", max_tokens=1000, temperature=0.5,
                                          messages=[{"role": "user", "content": "think"}])
    assert out.choices[0].message.content == "Done."
    assert (out.choices[0].message.model_extra or {}).get("reasoning_content") == "Hmm."
    sent = fake.requests[0].body
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 2048} and sent["max_tokens"] == 3048
    assert "temperature" not in sent
    stream = await c.chat.completions.create(model="sonnet", stream=True, reasoning_effort="low",
                                             messages=[{"role": "user", "content": "think"}])
    reasoning = ""
    async for ch in stream:
        if ch.choices:
            reasoning += (ch.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
    assert reasoning == "Hmm."


@pytest.mark.parametrize("forced", ["required", {"type": "function", "function": {"name": "get_weather"}}],
                         ids=["required", "named"])
async def test_a_forced_tool_choice_goes_without_thinking(fake_anthropic, router, forced):
    """Anthropic refuses thinking beside a tool_choice that forces tool use ("Thinking may not be enabled when
    tool_choice forces tool use"): such a request goes without thinking, from chat and from Responses, as one
    continuing a tool loop does; `auto` keeps it."""
    fake, r = await start(fake_anthropic, router)
    c = r.client()
    fake.push(*[AStep(json=message(TOOL_BLOCKS, "claude-sonnet-4-5")) for _ in range(3)])
    out = await c.chat.completions.create(model="sonnet", reasoning_effort="medium", tools=[CHAT_WEATHER],
                                          tool_choice=forced, messages=[{"role": "user", "content": "Paris?"}])
    assert out.choices[0].message.tool_calls and out.choices[0].message.tool_calls[0].function.name == "get_weather"
    sent = fake.requests[0].body
    assert "thinking" not in sent and sent["tool_choice"]["type"] in ("any", "tool") and sent["max_tokens"] == 64000
    choice = "required" if forced == "required" else {"type": "function", "name": "get_weather"}
    resp = await c.responses.create(model="sonnet", input="Paris?", reasoning={"effort": "low"},
                                    tools=[RESPONSES_WEATHER], tool_choice=choice)  # type: ignore[arg-type]
    assert [i.type for i in resp.output] == ["message", "function_call"]
    assert "thinking" not in fake.requests[1].body and fake.requests[1].body["tool_choice"]["type"] in ("any", "tool")
    await c.chat.completions.create(model="sonnet", reasoning_effort="medium", tools=[CHAT_WEATHER],
                                    tool_choice="auto", messages=[{"role": "user", "content": "Paris?"}])
    assert fake.requests[2].body["thinking"] == {"type": "enabled", "budget_tokens": 8192}


async def test_upstream_errors_keep_dispatch_semantics(fake_anthropic, router):
    fake, r = await start(fake_anthropic, router)
    c = r.client()
    ask = [{"role": "user", "content": "x"}]
    fake.push(AStep(status=429, json=error_doc("rate_limit_error", "slow down"), headers={"retry-after": "0"}))
    out = await c.chat.completions.create(model="sonnet", messages=ask)  # type: ignore[arg-type]
    assert out.choices[0].message.content == "echo: x" and len(fake.requests) == 2  # retried

    fake.push(AStep(status=529, json=error_doc("overloaded_error", "Overloaded")),
              AStep(status=529, json=error_doc("overloaded_error", "Overloaded")))
    with pytest.raises(openai.InternalServerError) as err:
        await c.chat.completions.create(model="sonnet", messages=ask)  # type: ignore[arg-type]
    assert "Overloaded" in err.value.message

    fake.push(AStep(status=400, json=error_doc("invalid_request_error", f"prompt is too long ({API_KEY})")))
    with pytest.raises(openai.BadRequestError) as bad:
        await c.chat.completions.create(model="sonnet", messages=ask)  # type: ignore[arg-type]
    assert "prompt is too long" in bad.value.message and API_KEY not in json.dumps(bad.value.body)
    assert bad.value.body["type"] == "invalid_request_error"  # type: ignore[index]

    with pytest.raises(openai.BadRequestError) as emb:
        await c.embeddings.create(model="sonnet", input="x")
    assert emb.value.code == "unsupported_endpoint"


@pytest.mark.parametrize(("name", "value"), [("temperature", 10**400), ("temperature", -(10**400)),
                                             ("temperature", 2.5), ("top_p", 10**400), ("top_p", 1.5)],
                         ids=["huge-temperature", "huge-negative-temperature", "temperature", "huge-top_p", "top_p"])
async def test_a_sampling_number_out_of_range_is_400_before_anthropic_is_called(fake_anthropic, router, name, value):
    """OpenAI's ranges (temperature 0..2, top_p 0..1) hold for a chat client whatever the provider; an integer too
    big for a float is out of range too (not an OverflowError, a 500)."""
    fake, r = await start(fake_anthropic, router)
    with pytest.raises(openai.BadRequestError) as bad:
        await r.client().chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "x"}],
                                                 extra_body={name: value})
    assert bad.value.body["type"] == "invalid_request_error" and bad.value.body["param"] == name  # type: ignore[index]
    assert not fake.requests


@pytest.mark.parametrize(("fields", "param"), [({"n": 3}, "n"), ({"n": 0}, "n"), ({"logprobs": True}, "logprobs"),
                                              ({"logprobs": True, "top_logprobs": 2}, "logprobs"),
                                              ({"top_logprobs": 2}, "top_logprobs")],
                         ids=["n", "n-zero", "logprobs", "top_logprobs-with-logprobs", "top_logprobs"])
async def test_what_anthropic_cannot_give_is_400_never_dropped(fake_anthropic, router, fields, param):
    """Anthropic answers with one choice and has no logprobs: `n` above 1 and `logprobs` / `top_logprobs` are a 400
    naming the field before Anthropic is called (they were dropped: n=3 gave one choice, logprobs none); `n: 1` and
    `logprobs: false` go through."""
    fake, r = await start(fake_anthropic, router)
    c = r.client()
    with pytest.raises(openai.BadRequestError) as bad:
        await c.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "x"}], **fields)
    assert bad.value.body["type"] == "invalid_request_error" and bad.value.body["param"] == param  # type: ignore[index]
    assert f"'{param}'" in bad.value.message
    assert not fake.requests
    out = await c.chat.completions.create(model="sonnet", n=1, logprobs=False,
                                          messages=[{"role": "user", "content": "x"}])
    assert [ch.message.content for ch in out.choices] == ["echo: x"] and len(fake.requests) == 1
    assert "n" not in fake.requests[0].body and "logprobs" not in fake.requests[0].body


async def test_responses_logprobs_from_anthropic_are_400(fake_anthropic, router):
    fake, r = await start(fake_anthropic, router)
    with pytest.raises(openai.BadRequestError) as bad:
        await r.client().responses.create(model="sonnet", input="x", include=["message.output_text.logprobs"])
    assert bad.value.body["param"] == "logprobs" and not fake.requests  # type: ignore[index]


async def test_refused_key_is_never_echoed(fake_anthropic, router):
    _, r = await start(fake_anthropic, router, key="sk-ant-wrong-key")
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/chat/completions", json={
            "model": "sonnet", "messages": [{"role": "user", "content": "x"}]}) as resp:
        assert resp.status == 502
        body = await resp.text()
    assert "sk-ant-wrong-key" not in body and json.loads(body)["error"]["code"] == "upstream_auth"


async def test_mid_stream_error_and_truncation(fake_anthropic, router):
    fake, r = await start(fake_anthropic, router)
    events = stream_events([{"type": "text", "text": "abcd"}], "claude-sonnet-4-5")
    fake.push(AStep(events=[*events[:4], ("error", error_doc("overloaded_error", "Overloaded"))]),
              AStep(events=events[:4]))
    for _ in range(2):
        stream = await r.client().chat.completions.create(model="sonnet", stream=True,
                                                          messages=[{"role": "user", "content": "x"}])
        text = ""
        with pytest.raises(openai.APIError):
            async for c in stream:
                if c.choices:
                    text += c.choices[0].delta.content or ""
        assert text == "ab"


async def test_messages_dialect_in_front_of_anthropic(fake_anthropic, router):
    """Anthropic client -> router -> Anthropic provider (the Messages pass-through)."""
    fake, r = await start(fake_anthropic, router)
    fake.push(AStep(json=message([{"type": "text", "text": "ok"}], "claude-sonnet-4-5", stop_reason="stop_sequence",
                                 stop_sequence="###")))
    c = claude(r.url)
    thinking = {"type": "enabled", "budget_tokens": 1024}
    msg = await c.messages.create(model="sonnet", max_tokens=2048, stop_sequences=["###"],
                                  thinking=thinking,  # type: ignore[arg-type]
                                  messages=[{"role": "user", "content": "count"}])
    assert (msg.stop_reason, msg.stop_sequence) == ("stop_sequence", "###")
    assert fake.requests[0].body["thinking"] == thinking and fake.requests[0].body["max_tokens"] == 2048

    fake.push(AStep(events=stream_events(TOOL_BLOCKS, "claude-sonnet-4-5", stop_reason="tool_use")))
    async with c.messages.stream(model="sonnet", max_tokens=200, tools=[ANTHROPIC_WEATHER],  # type: ignore
                                 messages=[{"role": "user", "content": "Weather?"}]) as s:
        final = await s.get_final_message()
    assert [b.type for b in final.content] == ["text", "tool_use"] and final.stop_reason == "tool_use"
    use = final.content[1]
    assert use.type == "tool_use" and use.id == "toolu_01A" and use.input == {"city": "Paris"}
    follow = await c.messages.create(model="sonnet", max_tokens=200, tools=[ANTHROPIC_WEATHER], messages=[  # type: ignore
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": [b.model_dump() for b in final.content]},  # type: ignore[misc]
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]},
    ])
    assert follow.content[0].type == "text"
    assert fake.requests[-1].body["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "sunny"}]


async def test_messages_effort_reaches_anthropic_only(fake_anthropic, router):
    """Claude Code's `thinking: adaptive` and `output_config.effort` map to an Anthropic upstream's own settings."""
    fake, r = await start(fake_anthropic, router)
    fake.push(AStep(json=message([{"type": "text", "text": "ok"}], "claude-sonnet-4-5")))
    c = claude(r.url)
    out = await c.messages.create(model="sonnet", max_tokens=100, messages=[{"role": "user", "content": "hi"}],
                                  extra_body={"thinking": {"type": "adaptive"}, "output_config": {"effort": "high"}})
    assert out.content[0].text == "ok"  # type: ignore[union-attr]
    sent = fake.requests[0].body
    assert sent["thinking"] == {"type": "adaptive"} and sent["output_config"] == {"effort": "high"}


async def test_messages_effort_must_be_a_string(fake_anthropic, fakes, router):
    """Checked where the body is translated (a route that may reach an OpenAI-type backend; with Anthropic
    providers only, the body is Anthropic's to judge)."""
    fake, up = await fake_anthropic(), await fakes()
    r = await router(f"""
providers:
  claude: {{type: anthropic, base_url: '{fake.url}', api_key: '{API_KEY}'}}
  lab: {{type: openai, base_url: '{up.url}'}}
models:
  - {{name: sonnet, provider: claude, model: claude-sonnet-4-5, fallbacks: [lab]}}
  - {{name: lab, provider: lab}}
""")
    c = claude(r.url)
    with pytest.raises(anthropic.BadRequestError) as err:
        await c.messages.create(model="sonnet", max_tokens=100, messages=[{"role": "user", "content": "hi"}],
                                extra_body={"output_config": {"effort": 3}})
    assert "output_config.effort" in str(err.value)


@pytest.mark.parametrize("route", ["chat", "messages"])
async def test_blocks_whose_start_carries_it_all(fake_anthropic, router, route):
    """Some Anthropic-compatible servers put a tool call's whole input in its block's start and stream no input
    piece, or start a thinking block with its text: the call keeps its arguments (they were `{}`) and the thinking
    is kept."""
    fake, r = await start(fake_anthropic, router)
    start_doc = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5", "content": [],
                 "stop_reason": None, "usage": {"input_tokens": 3, "output_tokens": 1}}

    def block(i: int, content_block: dict) -> list[tuple[str, dict]]:
        return [("content_block_start", {"type": "content_block_start", "index": i, "content_block": content_block}),
                ("content_block_stop", {"type": "content_block_stop", "index": i})]

    fake.push(AStep(events=[
        ("message_start", {"type": "message_start", "message": start_doc}),
        *block(0, {"type": "thinking", "thinking": "Paris, then.", "signature": ""}),
        *block(1, {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}),
        *block(2, {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Lyon"}}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"},
                           "usage": {"output_tokens": 9}}),
        ("message_stop", {"type": "message_stop"})]))
    if route == "chat":
        calls, reasoning = {}, ""
        async for c in await r.client().chat.completions.create(model="sonnet", tools=[CHAT_WEATHER], stream=True,
                                                                messages=[{"role": "user", "content": "w"}]):
            for choice in c.choices:
                reasoning += (choice.delta.model_extra or {}).get("reasoning_content") or ""
                for d in choice.delta.tool_calls or []:
                    calls[d.index] = calls.get(d.index, "") + (d.function.arguments or "")
        assert reasoning == "Paris, then."
        assert [json.loads(a) for a in calls.values()] == [{"city": "Paris"}, {"city": "Lyon"}]
    else:
        client = claude(r.url)
        async with client.messages.stream(model="sonnet", max_tokens=50, tools=[ANTHROPIC_WEATHER],  # type: ignore[list-item]
                                          messages=[{"role": "user", "content": "w"}]) as stream:
            final = await stream.get_final_message()
        await client.close()
        assert [(b.type, getattr(b, "thinking", None) or getattr(b, "input", None)) for b in final.content] == [
            ("thinking", "Paris, then."), ("tool_use", {"city": "Paris"}), ("tool_use", {"city": "Lyon"})]


async def test_odd_block_starts_are_read_as_the_whole_answer_reads_them(fake_anthropic, router):
    """A thinking block starting with something other than text gives no reasoning (it reached chat clients as a
    list), and a call whose input came whole at its start keeps it when the stream never stops its block."""
    fake, r = await start(fake_anthropic, router)
    start_doc = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5", "content": [],
                 "stop_reason": None, "usage": {"input_tokens": 3, "output_tokens": 1}}
    fake.push(AStep(events=[
        ("message_start", {"type": "message_start", "message": start_doc}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "thinking", "thinking": ["not", "text"]}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {
            "type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"},
                           "usage": {"output_tokens": 9}}),
        ("message_stop", {"type": "message_stop"})]))
    calls, reasoning = {}, []
    async for c in await r.client().chat.completions.create(model="sonnet", tools=[CHAT_WEATHER], stream=True,
                                                            messages=[{"role": "user", "content": "w"}]):
        for choice in c.choices:
            reasoning.append((choice.delta.model_extra or {}).get("reasoning_content"))
            for d in choice.delta.tool_calls or []:
                calls[d.index] = calls.get(d.index, "") + (d.function.arguments or "")
    assert all(x is None or isinstance(x, str) for x in reasoning) and not any(reasoning)
    assert [json.loads(a) for a in calls.values()] == [{"city": "Paris"}]
