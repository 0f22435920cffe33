"""Both dialects in front of a supervised local engine serving a scripted tiny model whose tool call is broken."""

from __future__ import annotations

import json
from pathlib import Path

import anthropic
import pytest

from tests.dialects.conftest import ANTHROPIC_WEATHER, RESPONSES_WEATHER, claude, claude_message

tiny = pytest.importorskip("engines.worker.tiny")
pytest.importorskip("engines.worker.server")

SCRIPT = "<tool_call>\n{'name': 'get_weather', 'arguments': {'city': 'Paris'}}\n</tool_call>"
# The engine runs with --no-constrain: these tests are about repairing the broken call (a grammar prevents it).


@pytest.fixture(scope="module")
def scripted_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tiny.build_tiny_model(tmp_path_factory.mktemp("dialect-tiny") / "tool", script=SCRIPT))


async def test_messages_and_responses_over_local_engine(router, scripted_model, tmp_path):
    r = await router(f"""
engines: {{runtime_dir: '{tmp_path / "run"}'}}
models:
  - {{name: tiny, engine: mlx, model: '{scripted_model}', start_timeout: 60, engine_args: ['--no-constrain']}}
""")
    c = claude(r.url)
    ask = [{"role": "user", "content": "Weather in Paris?"}]
    msg = await c.messages.create(model="tiny", max_tokens=64, tools=[ANTHROPIC_WEATHER],  # type: ignore[list-item]
                                  thinking={"type": "disabled"}, messages=ask)  # type: ignore[arg-type]
    assert msg.stop_reason == "tool_use"
    uses = [b for b in msg.content if b.type == "tool_use"]
    assert len(uses) == 1 and uses[0].name == "get_weather" and uses[0].input == {"city": "Paris"}
    assert uses[0].id.startswith("call_") and msg.usage.input_tokens > 0  # the engine's id, kept

    async with c.messages.stream(model="tiny", max_tokens=64, tools=[ANTHROPIC_WEATHER],  # type: ignore[list-item]
                                 messages=ask) as s:  # type: ignore[arg-type]
        final = await s.get_final_message()
    assert [b.type for b in final.content] == ["tool_use"] and final.content[0].input == {"city": "Paris"}  # type: ignore

    counted = await c.messages.count_tokens(model="tiny", tools=[ANTHROPIC_WEATHER], messages=ask,  # type: ignore
                                            thinking={"type": "disabled"})
    assert counted.input_tokens == msg.usage.input_tokens + (msg.usage.cache_read_input_tokens or 0)

    resp = await r.client().responses.create(model="tiny", input="Weather in Paris?",
                                             tools=[RESPONSES_WEATHER])  # type: ignore[list-item]
    calls = [o for o in resp.output if o.type == "function_call"]
    assert len(calls) == 1 and json.loads(calls[0].arguments) == {"city": "Paris"}  # type: ignore[union-attr]


PROSE = "Sunny in Paris. END of the forecast."


@pytest.fixture(scope="module")
def prose_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tiny.build_tiny_model(tmp_path_factory.mktemp("dialect-tiny") / "prose", script=PROSE))


@pytest.fixture(scope="module")
async def prose_router(module_router, prose_model, tmp_path_factory):
    """One router and its engine of the prose model for the tests below (none needs a fresh engine); `either` may
    fall back to an OpenAI-type provider."""
    return await module_router(f"""
providers: {{cloud: {{type: openai, base_url: 'http://127.0.0.1:9/v1'}}}}
engines: {{runtime_dir: '{tmp_path_factory.mktemp("prose-engine") / "run"}'}}
models:
  - {{name: tiny, engine: mlx, model: '{prose_model}', start_timeout: 60}}
  - {{name: cloud-model, provider: cloud}}
  - {{name: either, fallbacks: [tiny, cloud-model]}}
""")


async def test_a_stop_sequence_from_a_local_engine_is_reported(prose_router):
    """The engine names the stop string that ended its text (`stop_reason` in the finishing choice, as vLLM), so
    Messages says `stop_sequence` and which one, streamed or not, with tools declared or not; the chat route
    passes the name on."""
    r = prose_router
    ask = [{"role": "user", "content": "Weather in Paris?"}]
    for tools in ([], [ANTHROPIC_WEATHER]):
        for stream in (False, True):
            msg = await claude_message(r.url, stream, model="tiny", max_tokens=40, messages=ask, tools=tools,
                                       stop_sequences=["END", "zzz"])
            assert [b.text for b in msg.content] == ["Sunny in Paris. "], (tools, stream)
            assert (msg.stop_reason, msg.stop_sequence) == ("stop_sequence", "END"), (tools, stream)
    msg = await claude_message(r.url, False, model="tiny", max_tokens=40, messages=ask, stop_sequences=["zzz"])
    assert (msg.stop_reason, msg.stop_sequence) == ("end_turn", None)
    client = r.client()
    done = await client.chat.completions.create(model="tiny", messages=ask, max_tokens=40, stop=["END"])
    assert done.choices[0].finish_reason == "stop" and (done.choices[0].model_extra or {})["stop_reason"] == "END"
    ends = []
    async for chunk in await client.chat.completions.create(model="tiny", messages=ask, max_tokens=40, stop=["END"],
                                                            stream=True):
        ends += [(c.finish_reason, (c.model_extra or {}).get("stop_reason")) for c in chunk.choices if c.finish_reason]
    assert ends == [("stop", "END")]


THINKING_SCRIPT = ('<think>\nThe user wants the weather in Paris, so I call the tool.\n</think>\n\n\n<tool_call>\n'
                   '{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>')


@pytest.fixture(scope="module")
def thinking_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tiny.build_tiny_model(tmp_path_factory.mktemp("dialect-tiny") / "think", script=THINKING_SCRIPT))


async def test_thinking_sent_back_keeps_the_engines_prompt_cache(router, thinking_model, tmp_path):
    """The engine's reasoning, sent back as a thinking block, is rendered where the model wrote it (the chat
    template renders `reasoning_content`), so the next turn's prompt begins with the tokens the engine generated
    and its prefix cache serves them; dropped, the prompt left the model's turn at its first token."""
    r = await router(f"""
engines: {{runtime_dir: '{tmp_path / "run"}'}}
models:
  - {{name: tiny, engine: mlx, model: '{thinking_model}', start_timeout: 60, engine_args: ['--no-constrain']}}
""")
    c = claude(r.url)
    ask = [{"role": "user", "content": "Weather in Paris?"}]
    first = await c.messages.create(model="tiny", max_tokens=64, tools=[ANTHROPIC_WEATHER],  # type: ignore[list-item]
                                    messages=ask)  # type: ignore[arg-type]
    assert [b.type for b in first.content] == ["thinking", "tool_use"]
    use = first.content[1]
    prompt = first.usage.input_tokens + (first.usage.cache_read_input_tokens or 0)
    second = await c.messages.create(model="tiny", max_tokens=8, tools=[ANTHROPIC_WEATHER], messages=[  # type: ignore
        *ask, {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "18C"}]}])
    # the whole first turn, its thinking and its call included, came from the cache
    assert (second.usage.cache_read_input_tokens or 0) >= prompt + first.usage.output_tokens - 2


async def test_a_prefill_is_continued_by_a_local_engine(prose_router):
    """A final assistant message (a prefill) goes to our MLX engine as vLLM's `continue_final_message`: the model
    goes on from its last word and the answer carries only what it added, as Anthropic answers it, streamed or not;
    it is counted as it is rendered. A route that may fall back to an OpenAI-type provider, which would answer a new
    turn, still refuses it."""
    r = prose_router
    # (no trailing whitespace, which Anthropic refuses; the script's words each end in one, so the prefill ends
    # inside a word and the model goes on with the script from where that leaves it). Greedy: the prefill's last
    # token is not one of the script's, so its next token is the script's "END " with p 0.95, not 1 (Anthropic's
    # default temperature is 1: one run in ~10 sampled another word first, or bytes off the script; this SDK no
    # longer names the field)
    prefilled = [{"role": "user", "content": "Weather in Paris?"}, {"role": "assistant", "content": "Sunny in"}]
    texts = []
    for stream in (False, True):
        msg = await claude_message(r.url, stream, model="tiny", max_tokens=40, messages=prefilled,
                                   extra_body={"temperature": 0})
        texts.append("".join(b.text for b in msg.content))
        assert msg.stop_reason == "end_turn", stream
    assert texts[0] == texts[1] and texts[0] and PROSE.endswith(texts[0]) and not texts[0].startswith("Sunny")
    counted = await claude(r.url).messages.count_tokens(model="tiny", messages=prefilled)  # type: ignore[arg-type]
    assert counted.input_tokens == msg.usage.input_tokens + (msg.usage.cache_read_input_tokens or 0)
    with pytest.raises(anthropic.BadRequestError, match="does not support assistant message prefill"):
        await claude_message(r.url, False, model="either", max_tokens=40, messages=prefilled)
