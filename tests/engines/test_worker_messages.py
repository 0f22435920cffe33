"""What the worker answers about the messages of a chat request it cannot render: a 400 that names the problem,
as OpenAI's words it."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from tests.engines.conftest import Engine

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
