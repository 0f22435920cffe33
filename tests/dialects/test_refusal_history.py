"""An assistant's refusal replayed in Chat Completions history (agentgate answers one as the message's `refusal`,
content null; OpenAI's Chat API also takes it as a `refusal` content part): a local engine and an Anthropic
provider read it as the assistant's text, as the Responses route reads a refusal part."""

from __future__ import annotations

from typing import Any

import pytest

from engines.worker.params import parse_chat
from router.dialects import anthropic_out

REFUSAL = "I cannot help with that request."
SHAPES = {
    "part": {"role": "assistant", "content": [{"type": "refusal", "refusal": REFUSAL}]},
    "field": {"role": "assistant", "content": None, "refusal": REFUSAL},
    "field-empty-content": {"role": "assistant", "content": "", "refusal": REFUSAL},
}


def _history(assistant: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": "q"}, assistant, {"role": "user", "content": "ok"}]


@pytest.mark.parametrize("shape", list(SHAPES))
def test_a_local_engine_reads_a_refusal_as_the_assistants_text(shape: str) -> None:
    """The part was a 400 unsupported_parameter; the field was dropped (an empty assistant turn)."""
    req = parse_chat({"model": "m", "messages": _history(SHAPES[shape])}, 1000)
    assert req.messages[1] == {"role": "assistant", "content": REFUSAL}


def test_a_local_engine_keeps_text_beside_a_refusal() -> None:
    both = {"role": "assistant",
            "content": [{"type": "text", "text": "Well."}, {"type": "refusal", "refusal": REFUSAL}]}
    assert parse_chat({"messages": _history(both)}, 1000).messages[1]["content"] == "Well." + REFUSAL
    field = {"role": "assistant", "content": "Well.", "refusal": REFUSAL}
    assert parse_chat({"messages": _history(field)}, 1000).messages[1]["content"] == f"Well.\n\n{REFUSAL}"


def test_a_refusal_part_is_an_assistants_only() -> None:
    """A user's refusal part is no shape of the Chat API: still refused."""
    user = {"role": "user", "content": [{"type": "refusal", "refusal": REFUSAL}]}
    with pytest.raises(Exception, match="refusal"):
        parse_chat({"messages": [user]}, 1000)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_an_anthropic_provider_reads_a_refusal_as_text(shape: str) -> None:
    """Both shapes were dropped: the assistant's turn vanished, and the two user turns merged."""
    req = anthropic_out.messages_request({"model": "c", "messages": _history(SHAPES[shape])})
    assert req["messages"] == [{"role": "user", "content": [{"type": "text", "text": "q"}]},
                               {"role": "assistant", "content": [{"type": "text", "text": REFUSAL}]},
                               {"role": "user", "content": [{"type": "text", "text": "ok"}]}]
