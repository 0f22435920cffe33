"""An upstream that reports no usage (a compatible server without `usage` in its answer): a whole Messages answer
said `input_tokens: 0, output_tokens: 0`, while the same reply streamed said the estimates (the request's, as
`count_tokens` gives it; the output's from its bytes). A client that sizes its context from the last answer's
usage (Claude Code, which falls back to a whole answer when a stream fails) read an empty context. Both say the
estimates now; an upstream's own usage is reported as it is."""

from __future__ import annotations

from typing import Any

import pytest

from router.dialects.anthropic_in import to_message
from router.dialects.common import estimate_tokens
from tests.dialects.conftest import CFG, claude, claude_message
from tests.fakes.openai_upstream import Step, completion, stream_of

ASK: dict[str, Any] = {"model": "m", "max_tokens": 64, "system": "You are a helpful assistant that answers.",
                       "messages": [{"role": "user", "content": "Say hello to me please, in a few words."}]}
ANSWER = "Hello there, friend"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_an_answer_without_usage_reports_the_estimates(fakes, router, stream):
    up = await fakes()
    doc = completion(ANSWER, "m")
    del doc["usage"]
    up.push(Step(sse=stream_of(["Hello", " there,", " friend"], "m")) if stream else Step(json=doc))
    r = await router(CFG.format(url=up.url))
    msg = await claude_message(r.url, stream, **ASK)
    counted = await claude(r.url).messages.count_tokens(model="m", system=ASK["system"],
                                                        messages=ASK["messages"])
    assert counted.input_tokens > 0
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (counted.input_tokens,
                                                                 estimate_tokens(len(ANSWER.encode())))


def test_the_upstream_usage_is_taken_as_it_is() -> None:
    doc = completion(ANSWER, "m", usage={"prompt_tokens": 30, "completion_tokens": 2, "total_tokens": 32,
                                        "prompt_tokens_details": {"cached_tokens": 10}})
    usage = to_message(doc, "m", [], input_estimate=999)["usage"]
    assert usage == {"input_tokens": 20, "output_tokens": 2, "cache_creation_input_tokens": 0,
                     "cache_read_input_tokens": 10}


def test_the_estimate_counts_reasoning_and_calls_as_the_stream_does() -> None:
    doc = completion("Hi", "m", tool_calls=[{"id": "call_a", "type": "function",
                                             "function": {"name": "f", "arguments": '{"a": 1}'}}])
    doc["choices"][0]["message"]["reasoning_content"] = "Thinking."
    del doc["usage"]
    usage = to_message(doc, "m", [], input_estimate=7)["usage"]
    assert usage == {"input_tokens": 7, "output_tokens": estimate_tokens(len("Thinking.Hi" + '{"a": 1}')),
                     "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
