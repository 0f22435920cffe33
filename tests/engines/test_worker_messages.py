"""What the worker answers about the messages of a chat request it cannot render: a 400 that names the problem,
as OpenAI's words it."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from engines.worker.server import WORKER
from tests.engines.conftest import WEATHER_TOOL, Engine
from tests.engines.test_worker_edges import STRICT_TEMPLATE

CHAT = "/v1/chat/completions"


async def _chat(e: Engine, messages: list[dict[str, Any]], **fields: Any) -> tuple[int, Any]:
    return await e.post_raw(CHAT, json.dumps({"messages": messages, "max_tokens": 1, **fields}).encode())


def _with_reply(*parts: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": "hi"}, {"role": "assistant", "content": list(parts)},
            {"role": "user", "content": "and?"}]


async def test_a_refusal_part_without_a_string_refusal_names_its_refusal(
        engine: Callable[..., Awaitable[Engine]]) -> None:
    """An assistant's refusal part whose `refusal` was no string (or missing) was refused as "content part type
    'refusal' is not supported", which it is; the 400 now says what is wrong with the part, as a text part's does."""
    e = await engine("random")
    for part, code in (({"type": "refusal", "refusal": 5}, "invalid_type"),
                       ({"type": "refusal", "refusal": ["no"]}, "invalid_type"),
                       ({"type": "refusal", "refusal": None}, "invalid_type"),
                       ({"type": "refusal"}, "missing_required_parameter")):
        status, err = await _chat(e, _with_reply({"type": "text", "text": "Sorry. "}, part))
        assert status == 400, (part, err)
        message = err["error"]["message"]
        assert "not supported" not in message and "'messages[1].content[1].refusal'" in message, err
        assert (err["error"]["param"], err["error"]["code"]) == ("messages", code), err
    status, done = await _chat(e, _with_reply({"type": "refusal", "refusal": "I can't help with that."}))
    assert status == 200, done


TOOLS_TEMPLATE = ("{% for t in tools or [] %}{% if 'properties' not in t.function.parameters %}"
                  "{{ raise_exception('Each tool needs parameters with properties') }}{% endif %}{% endfor %}"
                  + STRICT_TEMPLATE)


async def test_tools_the_template_cannot_render_are_named(engine: Callable[..., Awaitable[Engine]]) -> None:
    """A tool the chat template refuses (here: parameters without `properties`) was a 400 naming `messages`, which
    render without it; it names `tools` now. Messages the template refuses are still named as such. (A schema nested
    300 levels deep stood for such a tool: Python 3.11's template stops there, 3.12 and later render it.)"""
    e = await engine("random")
    e.worker.app[WORKER].formatter.tokenizer._tokenizer.chat_template = TOOLS_TEMPLATE
    tool = {"type": "function", "function": {"name": "bare", "parameters": {"type": "object"}}}
    status, err = await _chat(e, [{"role": "user", "content": "hi"}], tools=[tool])
    assert status == 400, err
    assert (err["error"]["param"], err["error"]["code"]) == ("tools", "invalid_tools"), err
    assert "tools" in err["error"]["message"].split(":")[0], err
    assert "Each tool needs parameters with properties" in err["error"]["message"], err
    status, _ = await _chat(e, [{"role": "user", "content": "hi"}], tools=[WEATHER_TOOL])
    assert status == 200


async def test_messages_the_template_refuses_beside_tools_are_named(engine: Callable[..., Awaitable[Engine]]) -> None:
    e = await engine("random")
    e.worker.app[WORKER].formatter.tokenizer._tokenizer.chat_template = STRICT_TEMPLATE
    messages = [{"role": "user", "content": "hi"}, {"role": "system", "content": "late"}]
    status, err = await _chat(e, messages, tools=[WEATHER_TOOL])
    assert status == 400 and "System message must be first" in err["error"]["message"], err
    assert (err["error"]["param"], err["error"]["code"]) == ("messages", "invalid_messages"), err


async def test_a_text_part_without_a_string_text_names_its_text(engine: Callable[..., Awaitable[Engine]]) -> None:
    """A text part whose `text` was missing or no string was a 400 `invalid_value` saying only "text parts need a
    string 'text'", in no part's name; it now names the part's `text` as OpenAI does, with OpenAI's code."""
    e = await engine("random")
    for part, code in (({"type": "text"}, "missing_required_parameter"), ({"type": "text", "text": 5}, "invalid_type"),
                       ({"type": "text", "text": None}, "invalid_type")):
        content = [{"type": "text", "text": "Look: "}, part]
        status, err = await _chat(e, [{"role": "user", "content": content}])
        assert status == 400, (part, err)
        assert "'messages[0].content[1].text'" in err["error"]["message"], err
        assert (err["error"]["param"], err["error"]["code"]) == ("messages", code), err


async def test_a_tool_result_answering_no_call_in_the_history_is_served(
        engine: Callable[..., Awaitable[Engine]]) -> None:
    """OpenAI refuses a tool message whose `tool_call_id` names no call of the assistant turn before it; vLLM serves
    it, and so does the worker: agents that compact or trim a long history (the cut falling between a call and its
    result) send such results, and the engine answers from the text it is given rather than end the session."""
    e = await engine("random")
    ask = {"role": "user", "content": "weather in Paris?"}
    call = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_kept", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]}
    result = {"role": "tool", "tool_call_id": "call_compacted_away", "content": "sunny, 24 degrees"}
    for history in ([ask, result], [ask, call, result], [result, ask]):
        status, done = await _chat(e, history, tools=[WEATHER_TOOL])
        status_without, without = await _chat(e, [m for m in history if m is not result], tools=[WEATHER_TOOL])
        assert status == status_without == 200, (done, without)
        assert done["usage"]["prompt_tokens"] > without["usage"]["prompt_tokens"], history  # the result is read
