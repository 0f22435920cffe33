"""`agentgate probe --stream --base-url BACKEND`: a backend that fails mid-stream in one of the shapes the router
itself recognises as an upstream error (README "Resilience": OpenRouter's `data: {"error": ..., "choices":
[{"finish_reason": "error"}]}`, llama-server's `error: {...}` field, `event: error`, a finish_reason of "error", a
stream ended without `[DONE]` or a finish_reason) was reported as the MODEL's failure (`invalid`, `no_call: an empty
reply` / `invalid_json`): it is an error turn, with the kind the router gives such a stream."""

from __future__ import annotations

import json

import pytest

from router.cli import main
from tests.fakes.openai_upstream import Step, chunk, completion
from tests.waiting import in_own_thread

OPENROUTER_ERROR = {"id": "x", "object": "chat.completion.chunk",
                    "error": {"code": 502, "message": "Provider returned error"},
                    "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]}

CASES = {  # the stream, (failure, detail) expected
    "openrouter_error_chunk": (Step(sse=[": OPENROUTER PROCESSING\n\n",
                                         chunk("m", {"role": "assistant", "content": ""}), OPENROUTER_ERROR]),
                               ("upstream_error_mid_stream", "Provider returned error")),
    "llama_server_error_field": (Step(sse=['error: {"code": 500, "message": "slot crashed"}\n\n']),
                                 ("upstream_error_mid_stream", "slot crashed")),
    "event_error": (Step(sse=['event: error\ndata: {"message": "slot crashed"}\n\n'], done=False),
                    ("upstream_error_mid_stream", "slot crashed")),
    "finish_reason_error": (Step(sse=[chunk("m", {"role": "assistant", "content": ""}), chunk("m", {}, "error")]),
                            ("upstream_error_mid_stream", "the stream finished with finish_reason 'error'")),
    "finish_reason_abort": (Step(sse=[chunk("m", {"role": "assistant", "content": "Let me"}), chunk("m", {}, "abort")]),
                            ("upstream_error_mid_stream", "the stream finished with finish_reason 'abort'")),
    "ended_without_done_mid_call": (Step(done=False, sse=[chunk("m", {"role": "assistant", "tool_calls": [
        {"index": 0, "id": "c1", "type": "function",
         "function": {"name": "calculator", "arguments": '{"expression": "1+'}}]})]),
        ("upstream_truncated_mid_stream", "the stream ended early (no finish_reason and no [DONE])")),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_an_upstream_error_mid_stream_is_an_error_turn_not_an_invalid_reply(fakes, capsys, case: str) -> None:
    step, (failure, detail) = CASES[case]
    up = await fakes()
    up.push(step)
    status = await in_own_thread(main, ["probe", "m", "--base-url", up.url, "--turns", "1", "--stream", "--json"],
                                 timeout=60)
    assert status == 2  # the one turn could not be judged: the backend failed it
    doc = json.loads(capsys.readouterr().out)
    turn = doc["turns"][0]
    # as for the router's own `data: {"error": ...}` event (tests/probe/test_probe.py): an error turn, not `invalid`
    assert (turn["status"], doc["summary"]["errors"], doc["summary"]["invalid"]) == ("error", 1, 0), turn
    assert (turn["failure"], turn["detail"]) == (failure, detail)


async def test_a_stream_that_finishes_without_done_is_judged_as_usual(fakes, capsys) -> None:
    up = await fakes()
    up.push(Step(done=False, sse=[chunk("m", {"role": "assistant", "tool_calls": [
        {"index": 0, "id": "c1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]}),
        chunk("m", {}, "tool_calls")]))
    status = await in_own_thread(main, ["probe", "m", "--base-url", up.url, "--turns", "1", "--stream", "--json"],
                                 timeout=60)
    assert status == 0 and json.loads(capsys.readouterr().out)["turns"][0]["status"] == "valid"


@pytest.mark.parametrize("reason", ["error", "abort"])
async def test_a_whole_answer_finished_as_failed_is_an_error_turn(fakes, capsys, reason: str) -> None:
    """A whole answer that finished with "error" (OpenRouter) or "abort" (vLLM, SGLang: the server aborted the
    request), which the router treats as the upstream's failure, was judged as the model's reply."""
    up = await fakes()
    up.push(Step(json=completion("Let me", "m", finish_reason=reason)))
    status = await in_own_thread(main, ["probe", "m", "--base-url", up.url, "--turns", "1", "--json"], timeout=60)
    assert status == 2
    turn = json.loads(capsys.readouterr().out)["turns"][0]
    assert (turn["status"], turn["failure"]) == ("error", "upstream_error"), turn
    assert turn["detail"] == f"the answer finished with finish_reason {reason!r}"
