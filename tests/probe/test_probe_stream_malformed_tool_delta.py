"""`agentgate probe --stream` against a backend whose streamed tool-call deltas are malformed (an `index` of null, a
`function` that is not an object, a name or arguments that are not strings): the turn gets the verdict the same call
gets in a whole (non-stream) answer, never a TypeError/AttributeError traceback out of the probe's stream reader."""

from __future__ import annotations

import json
from typing import Any

import pytest

from router.cli import main
from tests.fakes.openai_upstream import Step, chunk, completion
from tests.waiting import in_own_thread

DELTAS: dict[str, tuple[dict[str, Any], tuple[str, str | None]]] = {  # the delta, (status, failure) expected
    "index_null": ({"index": None, "id": "c1", "type": "function",
                    "function": {"name": "get_time", "arguments": "{}"}}, ("valid", None)),
    "function_not_an_object": ({"index": 0, "id": "c1", "type": "function", "function": "get_time"},
                               ("invalid", "invalid_json")),
    "name_not_a_string": ({"index": 0, "id": "c1", "type": "function", "function": {"name": 7, "arguments": "{}"}},
                          ("invalid", "unknown_name")),
    "arguments_an_object": ({"index": 0, "id": "c1", "type": "function",
                             "function": {"name": "get_time", "arguments": {"utc_offset_hours": 1}}},
                            ("invalid", "invalid_json")),
}


async def _probe(up: Any, capsys: pytest.CaptureFixture[str], stream: bool) -> tuple[int, dict[str, Any]]:
    argv = ["probe", "m", "--base-url", up.url, "--turns", "1", "--json"] + (["--stream"] if stream else [])
    status = await in_own_thread(main, argv, timeout=60)
    return status, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("case", list(DELTAS))
async def test_a_malformed_streamed_tool_delta_is_judged_as_in_a_whole_answer(fakes, capsys, case: str) -> None:
    delta, (want_status, want_failure) = DELTAS[case]
    up = await fakes()
    up.push(Step(sse=[chunk("m", {"role": "assistant", "tool_calls": [delta]}), chunk("m", {}, "tool_calls")]))
    status, doc = await _probe(up, capsys, stream=True)  # raised TypeError / AttributeError (probe/client.py)
    assert doc["error"] is None and len(doc["turns"]) == 1
    streamed = doc["turns"][0]
    assert (status, streamed["status"], streamed["failure"]) == (0 if want_failure is None else 1, want_status,
                                                                 want_failure), streamed
    whole = {k: v for k, v in delta.items() if k != "index"}
    up.push(Step(json=completion(None, "m", finish_reason="tool_calls", tool_calls=[whole])))
    _, doc = await _probe(up, capsys, stream=False)
    assert (doc["turns"][0]["failure"], doc["turns"][0]["detail"]) == (streamed["failure"], streamed["detail"])
