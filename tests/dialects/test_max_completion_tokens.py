"""The output limit reaches OpenAI's reasoning models (o1, o3, o4-mini, gpt-5) under the name they take.

They refuse `max_tokens` with a 400 ("Unsupported parameter: 'max_tokens' is not supported with this model. Use
'max_completion_tokens' instead."). The Messages route (whose clients must send `max_tokens`) and the Responses
route (`max_output_tokens`) put the limit in the chat body as `max_tokens`, so every request to such a model
failed. An upstream that refuses it so is sent the request again at once with `max_completion_tokens`, and its
later requests for that model go with the new name the first time; another model or upstream still gets
`max_tokens`. The chat route does the same for a client that sent `max_tokens` (OpenAI deprecated it for all its
models in favour of `max_completion_tokens`, the same limit)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from router.api.openai_routes import AsClientSent, ChatAsk, refuses_max_tokens
from router.upstream.base import Unknown, UpstreamRequest
from tests.dialects.conftest import CHAT_WEATHER, claude_message
from tests.fakes.openai_upstream import Step, chunk, completion, stream_of

CFG = """
providers:
  openai: {{type: openai, base_url: '{url}', retries: 0}}
  other: {{type: openai, base_url: '{other}', retries: 0}}
models:
  - {{name: gpt-5, provider: openai}}
  - {{name: gpt-4.1, provider: openai}}
  - {{name: elsewhere, provider: other, model: gpt-5}}
"""
REFUSAL = {"error": {"message": "Unsupported parameter: 'max_tokens' is not supported with this model. "
                                "Use 'max_completion_tokens' instead.",
                     "type": "invalid_request_error", "param": "max_tokens", "code": "unsupported_parameter"}}
USAGE = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}


def openai_api(body: dict[str, Any]) -> Step:
    """OpenAI's chat API: gpt-5 (a reasoning model) refuses `max_tokens`."""
    if body["model"] == "gpt-5" and "max_tokens" in body:
        return Step(status=400, json=REFUSAL)
    return takes_both(body)


def takes_both(body: dict[str, Any]) -> Step:
    """A server that takes either name of the limit; the usage chunk last when asked."""
    if body.get("stream") is not True:
        return Step(json=completion("Hello!", body["model"]))
    events = stream_of(["Hello", "!"], body["model"])
    if (body.get("stream_options") or {}).get("include_usage"):
        events.append({**chunk(body["model"], {}), "choices": [], "usage": USAGE})
    return Step(sse=events)


def _limits(requests: list[Any]) -> list[tuple[int | None, int | None]]:
    return [(q.body.get("max_tokens"), q.body.get("max_completion_tokens")) for q in requests]


async def _responses(url: str, stream: bool, model: str) -> str:
    body = {"model": model, "input": "hi", "max_output_tokens": 64, "store": False, "stream": stream}
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/responses", json=body) as resp:
        text = await resp.text()
        assert resp.status == 200, text
    if not stream:
        return str(json.loads(text)["output"][0]["content"][0]["text"])
    done = [json.loads(line[6:]) for line in text.split("\n") if line.startswith("data: ")]
    return str(next(e for e in done if e["type"] == "response.output_text.done")["text"])


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("route", ["messages", "responses"])
async def test_a_refused_max_tokens_goes_as_max_completion_tokens(fakes, router, route, stream):
    """The first request to gpt-5 takes two round trips (the refusal, then the limit under the new name), the next
    one round trip with the new name; the same upstream's other model and another upstream's gpt-5 get
    `max_tokens`."""
    up, other = await fakes(), await fakes("other")
    up.push(*[openai_api] * 4)
    other.push(takes_both)
    r = await router(CFG.format(url=up.url, other=other.url))

    async def ask(model: str) -> None:
        if route == "messages":
            msg = await claude_message(r.url, stream, model=model, max_tokens=64,
                                       messages=[{"role": "user", "content": "hi"}])
            assert [b.text for b in msg.content] == ["Hello!"]
        else:
            assert await _responses(r.url, stream, model) == "Hello!"

    await ask("gpt-5")
    assert _limits(up.requests) == [(64, None), (None, 64)]
    await ask("gpt-5")
    assert _limits(up.requests[2:]) == [(None, 64)]
    await ask("gpt-4.1")
    assert _limits(up.requests[3:]) == [(64, None)]
    await ask("elsewhere")
    assert _limits(other.requests) == [(64, None)] and other.requests[0].body["model"] == "gpt-5"


async def _chat(url: str, body: dict[str, Any]) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/chat/completions", json=body) as resp:
        return resp.status, await resp.text()


def _content(stream: bool, text: str) -> str:
    if not stream:
        return str(json.loads(text)["choices"][0]["message"]["content"])
    docs = [json.loads(line[6:]) for line in text.split("\n") if line.startswith("data: {")]
    assert not [d for d in docs if d.get("choices") == []]  # (the client asked for no usage chunk)
    return "".join(c["delta"].get("content") or "" for d in docs for c in d["choices"])


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("tools", [False, True], ids=["passed-through", "repaired"])
async def test_the_chat_routes_max_tokens_goes_as_max_completion_tokens(fakes, router, tools, stream):
    """A chat client's `max_tokens` to gpt-5: the same as on the translated routes (the stream also asks for usage,
    which it keeps asking for). A client's `max_completion_tokens` goes as it is."""
    up = await fakes()
    up.push(*[openai_api] * 5)
    r = await router(CFG.format(url=up.url, other=up.url))

    def body(model: str, **limit: int) -> dict[str, Any]:
        out: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream,
                               **limit}
        return {**out, "tools": [CHAT_WEATHER]} if tools else out

    for _ in range(2):
        status, text = await _chat(r.url, body("gpt-5", max_tokens=64))
        assert status == 200 and _content(stream, text) == "Hello!", text
    assert _limits(up.requests) == [(64, None), (None, 64), (None, 64)]
    asked = [(q.body.get("stream_options") or {}).get("include_usage") is True for q in up.requests]
    assert asked == [stream] * 3
    status, text = await _chat(r.url, body("gpt-4.1", max_tokens=64))
    assert status == 200 and _limits(up.requests[3:]) == [(64, None)]
    status, text = await _chat(r.url, body("gpt-5", max_completion_tokens=32))
    assert status == 200 and _limits(up.requests[4:]) == [(None, 32)]


def test_only_a_refusal_of_the_old_name_renames_the_limit():
    """vLLM names both fields when the limit is too large: that is no refusal of the name."""
    too_large = (b'{"error": {"message": "\'max_tokens\' or \'max_completion_tokens\' is too large: 9000. This '
                 b'model\'s maximum context length is 4096 tokens."}}')
    assert refuses_max_tokens(400, json.dumps(REFUSAL).encode())
    assert not refuses_max_tokens(400, too_large)
    assert not refuses_max_tokens(500, json.dumps(REFUSAL).encode())


def test_a_chat_request_refused_both_fields_goes_without_either():
    """An upstream that refused the router's `stream_options` and the client's `max_tokens` gets the client's body
    with the limit renamed, the bytes encoded anew; a client's own `max_completion_tokens` stays."""
    client: dict[str, Any] = {"model": "m", "stream": True, "messages": [], "max_tokens": 9}
    ask = ChatAsk(client, json.dumps(client).encode(), True)
    sent, raw, refit = ask.sent()
    request = UpstreamRequest("/chat/completions", sent, raw, stream=True, refit=refit)
    both = refit(request, Unknown.STREAM_OPTIONS | Unknown.MAX_TOKENS)
    assert both.body == {"model": "m", "stream": True, "messages": [], "max_completion_tokens": 9}
    assert both.raw is None
    assert ask.refused(400, json.dumps(REFUSAL).encode()) == Unknown.MAX_TOKENS
    again = ask.without(Unknown.MAX_TOKENS)
    assert again.withhold and again.client_raw == b"" and "max_tokens" not in again.client
    assert again.refused(400, json.dumps(REFUSAL).encode()) == Unknown.NONE
    kept = AsClientSent(client, b"", client)(request._replace(body={**client, "max_completion_tokens": 5}),
                                             Unknown.MAX_TOKENS)
    assert kept.body["max_completion_tokens"] == 5 and "max_tokens" not in kept.body
