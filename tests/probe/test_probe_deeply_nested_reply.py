"""`agentgate probe` / `agentgate bench tools` against a backend whose reply nests brackets past Python's
recursion limit (a small model caught in a repetition loop writes `[[[[...` as a call's arguments): the turn must
be a failed turn with a verdict, not a RecursionError traceback that loses the whole run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from router.cli import main
from tests.fakes.openai_upstream import Step, chunk, completion
from tests.waiting import in_own_thread

DEEP = "[" * 1500  # ~1500 tokens at most: within the probe's default max_tokens of 2048


def degenerate_call(stream: bool) -> Step:
    if stream:
        return Step(sse=[chunk("m", {"role": "assistant", "tool_calls": [
                             {"index": 0, "id": "c1", "type": "function",
                              "function": {"name": "get_time", "arguments": ""}}]}),
                         chunk("m", {"tool_calls": [{"index": 0, "function": {"arguments": DEEP}}]}),
                         chunk("m", {}, "length")])
    return Step(json=completion(None, "m", finish_reason="length", tool_calls=[
        {"id": "c1", "type": "function", "function": {"name": "get_time", "arguments": DEEP}}]))


@pytest.mark.parametrize("stream", [False, True])
async def test_probe_reports_deeply_nested_arguments_as_a_failed_turn(fakes, capsys, stream: bool) -> None:
    up = await fakes()
    up.push(degenerate_call(stream))
    argv = ["probe", "m", "--base-url", up.url, "--turns", "1", "--json"] + (["--stream"] if stream else [])
    status = await in_own_thread(main, argv, timeout=60)  # raised RecursionError (from probe/check.py:check_call)
    assert status == 1
    turn = json.loads(capsys.readouterr().out)["turns"][0]
    assert turn["status"] == "invalid" and turn["failure"] == "invalid_json"


@pytest.mark.parametrize("http_status", [200, 500])
async def test_probe_reports_a_deeply_nested_body_as_a_failed_turn(fakes, capsys, http_status: int) -> None:
    up = await fakes()
    up.push(Step(status=http_status, raw=b"[" * 100_000))
    status = await in_own_thread(main, ["probe", "m", "--base-url", up.url, "--turns", "1", "--json"], timeout=60)
    assert status == 2  # raised RecursionError (from probe/client.py:_read_whole / _error_from); 2: not judged
    turn = json.loads(capsys.readouterr().out)["turns"][0]
    assert turn["status"] == "error"


async def test_one_degenerate_reply_does_not_lose_the_whole_bench(fakes, tmp_path: Path) -> None:
    up = await fakes()
    up.push(degenerate_call(False), degenerate_call(False))  # repair on and repair off, one turn each
    out = tmp_path / "results"
    argv = ["bench", "tools", "--models", "m", "--base-url", up.url, "--turns", "1", "--runs", "1", "--out", str(out)]
    status = await in_own_thread(main, argv, timeout=60)  # raised RecursionError out of asyncio.gather
    assert status == 0
    doc = json.loads((out / "tools.json").read_text())
    assert [g["failures"] for g in doc["groups"]] == [{"invalid_json": 1}, {"invalid_json": 1}]


async def test_a_deeply_nested_stream_event_is_skipped_like_any_event_that_is_not_json(fakes, capsys) -> None:
    up = await fakes()
    up.push(Step(sse=[chunk("m", {"role": "assistant", "tool_calls": [
                          {"index": 0, "id": "c1", "type": "function",
                           "function": {"name": "get_time", "arguments": "{}"}}]}),
                      "data: " + "[" * 100_000 + "\n\n",
                      chunk("m", {}, "tool_calls")]))
    argv = ["probe", "m", "--base-url", up.url, "--turns", "1", "--stream", "--json"]
    status = await in_own_thread(main, argv, timeout=60)  # raised RecursionError (from probe/client.py:_read_stream)
    assert status == 0
    assert json.loads(capsys.readouterr().out)["turns"][0]["status"] == "valid"
