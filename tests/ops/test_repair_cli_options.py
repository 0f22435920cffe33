"""`agentgate repair --replay FILE` re-runs each capture with the options the router recorded for it: the options of
a plain repair given beside it (--tools, --format, --mode, --tool-choice, --no-parallel, --jsonl) were ignored
without a word, so `--replay caps.jsonl --format hermes` reported results that did not use hermes."""

from __future__ import annotations

import json

import pytest

from router.cli import main

CAPTURE = {"id": 1, "model": "m", "outcome": "failed", "text": "plain text", "tools": [], "repairs": [],
           "failures": ["no_call"]}


@pytest.mark.parametrize("option", [["--tools", "tools.json"], ["--format", "hermes"], ["--mode", "detect"],
                                    ["--tool-choice", "required"], ["--no-parallel"], ["--jsonl"]])
def test_options_replay_does_not_use_are_refused(option: list[str], tmp_path, capsys) -> None:
    captures = tmp_path / "caps.jsonl"
    captures.write_text(json.dumps(CAPTURE) + "\n")
    assert main(["repair", "--replay", str(captures), *option]) == 2
    out, err = capsys.readouterr()
    assert out == "" and f"{option[0]} does not apply to --replay" in err and "Traceback" not in err


def test_replay_alone_still_runs(tmp_path, capsys) -> None:
    captures = tmp_path / "caps.jsonl"
    captures.write_text(json.dumps(CAPTURE) + "\n")
    assert main(["repair", "--replay", str(captures), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert (row["then"], row["now"]) == ("failed", "none")
