"""The capture ring keeps a captured request's tools list once however many captures carry it."""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

import pytest

from router.capture import MAX_TEXT, CaptureRing, Redactor, ToolOutput
from router.config.model import CaptureConfig, RepairPolicy


def _output(tools: list[Any]) -> ToolOutput:
    error = SimpleNamespace(kind="schema", as_dict=lambda: {"kind": "schema"})
    result = SimpleNamespace(errors=[error], repairs=[], message=lambda: {"role": "assistant"})
    return ToolOutput(text="x", tool_calls=None, reasoning=None, body={"tools": tools}, policy=RepairPolicy(),
                      result=result)


def _ex() -> Any:
    return SimpleNamespace(request_id="r", requested="m", model="m", provider="p", endpoint="chat", stream=False,
                           repairs=[], failures=["schema"])


def test_captures_of_the_same_tools_list_share_one_redacted_copy() -> None:
    """Each capture kept its own redacted copy of the list: 200 captures of a 240 KB list cost 355-460 MiB."""
    ring, redactor = CaptureRing(CaptureConfig(max_entries=10)), Redactor(["sk-secret-value"])
    tools = [{"type": "function", "function": {"name": f"t{i}", "description": "key sk-secret-value"}}
             for i in range(5)]
    caps = [ring.offer(_ex(), _output(copy.deepcopy(tools)), redactor) for _ in range(4)]
    assert all(c is not None and c.tools is caps[0].tools for c in caps)  # type: ignore[union-attr]
    assert caps[0] is not None and caps[0].tools is not None
    assert caps[0].tools[0]["function"]["description"] == "key [redacted]"
    other = ring.offer(_ex(), _output(tools[:2]), redactor)
    assert other is not None and other.tools is not caps[0].tools and len(other.tools or []) == 2
    another = ring.offer(_ex(), _output(copy.deepcopy(tools)), Redactor([]))  # a reload changed the secrets
    assert another is not None and another.tools is not caps[0].tools
    assert (another.tools or [])[0]["function"]["description"] == "key sk-secret-value"



SECRET = "agentgate-provider-credential-4f1c9e2b7a"  # a configured key of no common shape
ESCAPED = SECRET.replace("a", "\\u0061")  # as a model can write it inside a JSON string


def _texts(text: str) -> ToolOutput:
    error = SimpleNamespace(as_dict=lambda: {"kind": "schema", "text": text})
    result = SimpleNamespace(errors=[error], repairs=[], message=lambda: {"role": "assistant", "content": text})
    return ToolOutput(text=text, tool_calls=None, reasoning=text, body={}, policy=RepairPolicy(), result=result)


@pytest.mark.parametrize("before", [1, 5, 30, len(SECRET) - 1])  # the key's characters before the cut
@pytest.mark.parametrize("spelled", [SECRET, ESCAPED])
def test_a_key_across_the_text_bound_is_redacted_whole(before: int, spelled: str) -> None:
    """Text was cut at MAX_TEXT before it was redacted: a key across the cut was no longer whole, so its first
    characters stayed in the capture (the console, captures.jsonl, the capture file)."""
    after = " and more" + "y" * 100
    text = "x" * (MAX_TEXT - before) + spelled + after
    cap = CaptureRing(CaptureConfig(max_entries=4)).offer(_ex(), _texts(text), Redactor([SECRET]))
    assert cap is not None
    for value in (cap.text, cap.reasoning, cap.repaired["content"], cap.errors[0]["text"]):
        assert value == "x" * (MAX_TEXT - before) + ("[redacted]" + after)[:before]
    size = len(text) - len(spelled) + len("[redacted]")
    assert cap.notes == [f"text cut at {MAX_TEXT} of {size} characters",
                         f"reasoning cut at {MAX_TEXT} of {size} characters"]


def test_text_its_redaction_lengthens_is_still_cut_at_the_bound() -> None:
    key = "key-1234"  # each one becomes the 10 characters of "[redacted]"
    text = (key + " ") * (MAX_TEXT // 9)
    cap = CaptureRing(CaptureConfig(max_entries=4)).offer(_ex(), _texts(text), Redactor([key]))
    assert cap is not None and len(text) <= MAX_TEXT
    for value in (cap.text, cap.reasoning, cap.repaired["content"], cap.errors[0]["text"]):
        assert value is not None and len(value) == MAX_TEXT and key not in value
