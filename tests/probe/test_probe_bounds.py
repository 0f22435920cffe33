"""`--turns` and bench's `--runs` had no upper bound: `--turns 100000000` (a slip of the finger) spent minutes and
gigabytes building the conversation's tasks before its first request, and `--runs` as large made every
conversation's coroutine up front. Both now say what range they take."""

from __future__ import annotations

import pytest

from router.cli import main


@pytest.mark.parametrize("command", [["probe", "m"], ["bench", "tools", "--models", "m"]])
def test_turns_past_the_bound_are_refused_before_anything_runs(command: list[str], capsys, tmp_path) -> None:
    with pytest.raises(SystemExit) as stop:
        main([*command, "--turns", "100000000", "--base-url", "http://127.0.0.1:9/v1", "--out", str(tmp_path)]
             if command[0] == "bench" else [*command, "--turns", "100000000"])
    assert stop.value.code == 2
    assert "--turns: '100000000' is not an integer from 1 to 1000" in capsys.readouterr().err


def test_runs_past_the_bound_are_refused(capsys, tmp_path) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["bench", "tools", "--models", "m", "--runs", "100000000", "--out", str(tmp_path)])
    assert stop.value.code == 2
    assert "--runs: '100000000' is not an integer from 1 to 10000" in capsys.readouterr().err


def test_the_bounds_themselves_are_taken() -> None:
    from router.cli import build_parser

    args = build_parser().parse_args(["bench", "tools", "--models", "m", "--turns", "1000", "--runs", "10000"])
    assert (args.turns, args.runs) == (1000, 10000)
