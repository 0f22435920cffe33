"""`agentgate repair --json` without `--replay`: the option was described as applying to --replay only and was then
taken without a word. A plain repair writes JSON already (one object, or one line each with --jsonl), so --json
there asks for what it gets: it is accepted, changes nothing, and the help says so."""

from __future__ import annotations

import io
import json
import sys
from typing import Any

import pytest

from router.cli import main

RAW = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
CITY = {"type": "object", "properties": {"city": {"type": "string"}}}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": CITY}}]


class _Stdin(io.StringIO):
    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.buffer = io.BytesIO(text.encode())


def _repair(monkeypatch: Any, capsys: Any, stdin: str, *argv: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", _Stdin(stdin))
    code = main(["repair", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("mode", [[], ["--jsonl"]])
def test_json_beside_a_plain_repair_writes_the_same_json(mode: list[str], tmp_path, monkeypatch, capsys) -> None:
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps(TOOLS))
    stdin = json.dumps({"id": 1, "text": RAW}) + "\n" if mode else RAW
    plain = _repair(monkeypatch, capsys, stdin, "--tools", str(tools), *mode)
    with_json = _repair(monkeypatch, capsys, stdin, "--tools", str(tools), *mode, "--json")
    assert with_json == plain and plain[0] == 0 and plain[2] == ""
    doc = json.loads(plain[1].splitlines()[0])
    assert doc["tool_calls"][0]["function"]["name"] == "get_weather"


def test_the_help_says_what_json_does_with_and_without_replay(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main(["repair", "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--json without --replay: the same JSON" in text and "with --replay: one JSON line per capture" in text
