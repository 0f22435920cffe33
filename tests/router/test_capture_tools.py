"""The capture ring keeps a captured request's tools list once however many captures carry it."""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

from router.capture import CaptureRing, Redactor, ToolOutput
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
