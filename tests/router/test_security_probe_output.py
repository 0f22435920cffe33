"""A backend that echoes the key it was sent in its answers (a 200: a tool's name, its arguments, the text, the
finish reason), not only in its errors: `agentgate probe` never prints the key, in its text report or in JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fakes.openai_upstream import Step, chunk, completion
from tests.probe.test_probe import cli

KEY = "sk-probe-echoes-5f0e9a8b7c6d5e4f"


def _call() -> dict[str, Any]:
    return {"id": "c1", "type": "function", "function": {"name": KEY, "arguments": json.dumps({"path": KEY})}}


def _whole(body: Any) -> Step:
    return Step(json=completion(f"your key is {KEY}", "m", tool_calls=[_call()], finish_reason="tool_calls"))


def _streamed(body: Any) -> Step:
    return Step(sse=[chunk("m", {"role": "assistant", "content": f"your key is {KEY}"}),
                     chunk("m", {"tool_calls": [{"index": 0, **_call()}]}), chunk("m", {}, "tool_calls")])


@pytest.mark.parametrize("flags", [[], ["--json"], ["--stream"], ["--stream", "--json"]])
async def test_a_key_the_backend_echoes_in_its_answers_is_never_printed(fakes, capsys, flags) -> None:
    up = await fakes()
    up.default = _streamed if "--stream" in flags else _whole
    assert await cli("probe", "m", "--base-url", up.url, "--api-key", KEY, "--turns", "2", *flags) == 1
    out, err = capsys.readouterr()
    assert KEY not in out + err, (out + err)[:2000]
    assert "[redacted]" in out + err  # what the backend said is still reported, the key replaced
    if "--json" in flags:
        assert json.loads(out)["turns"][0]["failure"] == "unknown_name"


async def test_a_key_the_backend_echoes_in_its_answers_is_never_in_benchs_results(fakes, capsys, tmp_path) -> None:
    up = await fakes()
    up.default = _whole
    await cli("bench", "tools", "--models", "m", "--base-url", up.url, "--api-key", KEY, "--turns", "2", "--runs",
              "1", "--out", str(tmp_path))
    out, err = capsys.readouterr()
    written = "".join(p.read_text() for p in tmp_path.iterdir() if p.suffix in (".json", ".csv"))
    assert written and "[redacted]" in written
    assert KEY not in out + err + written, (out + err + written)[:2000]
