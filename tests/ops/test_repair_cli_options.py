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


@pytest.mark.parametrize("mode", [[], ["--jsonl"], ["--replay", "CAPTURES"]])
def test_a_closed_stdout_is_one_line_not_a_traceback(mode: list[str], tmp_path) -> None:
    """`agentgate repair >&-` (sys.stdout is None) raised AttributeError once it had a result to write."""
    import subprocess
    import sys
    from pathlib import Path

    captures = tmp_path / "caps.jsonl"
    captures.write_text(json.dumps(CAPTURE) + "\n")
    args = [str(captures) if a == "CAPTURES" else a for a in mode]
    line = json.dumps({"id": 1, "tools": [], "text": "hello"}) + "\n"
    proc = subprocess.run(["sh", "-c", 'exec "$0" -m router repair "$@" >&-', sys.executable, *args],
                          input=line.encode(), stderr=subprocess.PIPE, cwd=Path(__file__).resolve().parents[2],
                          timeout=120, check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.decode().splitlines() == [
        "agentgate repair: stdout is closed; the result is written to stdout (e.g. > out.json)"]
