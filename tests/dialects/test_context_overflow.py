"""A prompt too long for the model, as each client recognises it, whatever the upstream's words for it: Claude Code
compacts on a 400 `invalid_request_error` whose message holds "prompt is too long" ("N tokens > M maximum" read from
it); Codex on a Responses `error.code` "context_length_exceeded" (in a streamed `response.failed`: codex-rs
`sse/responses.rs` `is_context_window_error`); the openai SDKs show it as `BadRequestError.code`. Never a 5xx,
never retried, never counted against the upstream."""

from __future__ import annotations

import json

import aiohttp
import anthropic
import openai
import pytest

from tests.dialects.conftest import ANTHROPIC_WEATHER, CFG, RESPONSES_WEATHER, claude
from tests.dialects.test_responses import raw_stream
from tests.fakes.openai_upstream import Step

FITS_NOT = "prompt is too long: 5000 tokens > 4096 maximum"
OUTPUT_TOO = ("input length and `max_tokens` exceed context limit: 4000 + 1000 > 4096, decrease input length or "
              "`max_tokens` and try again")
BODIES = {  # the upstream's 400 body, and what a Messages client is told
    "OpenAI": ({"error": {"message": "This model's maximum context length is 4096 tokens. However, your messages "
                                     "resulted in 5000 tokens. Please reduce the length of the messages.",
                          "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}},
               FITS_NOT),
    "vLLM": ({"error": {"message": "This model's maximum context length is 4096 tokens. However, your request has "
                                   "5000 input tokens. Please reduce the length of the input messages.",
                        "type": "BadRequestError", "param": None, "code": 400}}, FITS_NOT),
    "vLLM flat": ({"object": "error", "message": "This model's maximum context length is 4096 tokens. However, you "
                   "requested 5000 tokens (4000 in the messages, 1000 in the completion). Please reduce the length "
                   "of the messages or completion.", "type": "BadRequestError", "param": None, "code": 400},
                  OUTPUT_TOO),
    "llama-server": ({"error": {"code": 400, "message": "request (5000 tokens) exceeds the available context size "
                                "(4096 tokens), try increasing it", "type": "exceed_context_size_error",
                                "n_prompt_tokens": 5000, "n_ctx": 4096}}, FITS_NOT),
    "LM Studio": ({"error": "Trying to keep the first 5000 tokens when context the overflows. However, the model is "
                   "loaded with context length of only 4096 tokens, which is not enough. Try to load the model with "
                   "a larger context length, or provide a shorter input"}, FITS_NOT),
    "engine worker": ({"error": {"message": "This model's maximum context length is 4096 tokens, but the prompt has "
                                 "5000 tokens.", "type": "invalid_request_error", "param": "messages",
                                 "code": "context_length_exceeded"}}, FITS_NOT),
    "Ollama": ({"error": {"message": "the input length exceeds the context length", "type": "api_error",
                          "param": None, "code": None}},
               "prompt is too long: the input length exceeds the context length"),
}
ASK = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}], "tools": [ANTHROPIC_WEATHER]}


@pytest.mark.parametrize("shape", list(BODIES))
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_messages_says_prompt_is_too_long(fakes, router, shape, stream):
    up = await fakes()
    up.push(Step(status=400, json=BODIES[shape][0]))
    r = await router(CFG.format(url=up.url))
    with pytest.raises(anthropic.BadRequestError) as err:
        if stream:
            async with claude(r.url).messages.stream(**ASK) as s:  # type: ignore[arg-type]
                await s.get_final_message()
        else:
            await claude(r.url).messages.create(**ASK)  # type: ignore[arg-type]
    assert err.value.body == {"type": "error", "error": {"type": "invalid_request_error",  # type: ignore[comparison-overlap]
                                                         "message": BODIES[shape][1]},
                              "request_id": err.value.request_id}
    assert len(up.requests) == 1  # neither retried nor fallen back from


@pytest.mark.parametrize("shape", list(BODIES))
async def test_responses_says_context_length_exceeded(fakes, router, shape):
    up = await fakes()
    up.push(Step(status=400, json=BODIES[shape][0]))
    r = await router(CFG.format(url=up.url))
    client = openai.AsyncOpenAI(base_url=r.url + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as err:
        await client.responses.create(model="m", input="x", tools=[RESPONSES_WEATHER])  # type: ignore[list-item]
    assert err.value.code == "context_length_exceeded" and err.value.param == "input"
    assert err.value.message.endswith("Your input exceeds the context window of this model. Please adjust your input "
                                      "and try again.")


@pytest.mark.parametrize("shape", ["OpenAI", "llama-server"])
async def test_a_responses_stream_fails_as_codex_reads_it(fakes, router, shape):
    """OpenAI streams it as `response.failed` whose `error.code` is "context_length_exceeded", which Codex turns into
    ContextWindowExceeded (a 400 it shows as any other refusal)."""
    up = await fakes()
    up.push(Step(status=400, json=BODIES[shape][0]))
    r = await router(CFG.format(url=up.url))
    events = await raw_stream(r.url, {"model": "m", "input": "x", "stream": True})
    assert [e["type"] for e in events] == ["response.created", "response.in_progress", "error", "response.failed"]
    failed = events[-1]["response"]
    assert failed["status"] == "failed" and failed["error"]["code"] == "context_length_exceeded"
    assert events[2]["code"] == "context_length_exceeded" and len(up.requests) == 1
    async with aiohttp.ClientSession() as s, s.get(r.url + f"/v1/responses/{failed['id']}") as resp:
        assert resp.status == 200  # kept, as OpenAI keeps a failed response
        stored = await resp.json()
    assert stored["status"] == "failed" and stored["error"]["code"] == "context_length_exceeded"


async def test_an_error_event_before_the_first_chunk_is_the_clients(fakes, router):
    """An overflow sent as a stream's first event (OpenAI's error object, whose `code` names no status): a 400, not
    a 502 retried and counted against the upstream."""
    up = await fakes()
    event = {"error": {"message": "This model's maximum context length is 4096 tokens. However, your messages "
                                  "resulted in 5000 tokens.", "type": "invalid_request_error",
                       "code": "context_length_exceeded"}}
    up.push(*[Step(sse=[event])] * 3)
    r = await router(CFG.format(url=up.url))
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/chat/completions", json={
            "model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]}) as resp:
        assert resp.status == 400
        doc = json.loads(await resp.read())
    assert doc["error"]["code"] == "context_length_exceeded" and doc["error"]["param"] == "messages"
    assert len(up.requests) == 1
    with pytest.raises(anthropic.BadRequestError) as err:
        async with claude(r.url).messages.stream(**ASK) as st:  # type: ignore[arg-type]
            await st.get_final_message()
    assert err.value.body["error"]["message"] == FITS_NOT  # type: ignore[index]


@pytest.mark.parametrize("shape", list(BODIES))
@pytest.mark.parametrize("tools", [False, True], ids=["passed-through", "repaired"])
async def test_chat_says_context_length_exceeded(fakes, router, shape, tools):
    """The chat route passed an upstream's 4xx body on as it came: vLLM's `code: 400`, LM Studio's string, which
    the openai SDK's `BadRequestError.code` does not name as an overflow."""
    up = await fakes()
    up.push(Step(status=400, json=BODIES[shape][0]))
    r = await router(CFG.format(url=up.url))
    extra = {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]} \
        if tools else {}
    with pytest.raises(openai.BadRequestError) as err:
        await r.client().chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}],
                                                 **extra)  # type: ignore[arg-type]
    assert err.value.code == "context_length_exceeded" and err.value.param == "messages"
    assert err.value.response.headers["x-agentgate-provider"] == "lab" and len(up.requests) == 1
    if shape not in ("Ollama", "vLLM flat"):
        assert "maximum context length is 4096 tokens. However, your messages resulted in 5000" in err.value.message
