"""The probe's parts on their own: calculator, workspace, seeded tasks, and the checks of a reply."""

from __future__ import annotations

import io
import json

import pytest

from router.probe.calc import CalcError, evaluate
from router.probe.check import check_call, check_message, diagnose_text
from router.probe.report import Progress, percentile
from router.probe.tasks import generate_tasks
from router.probe.toolset import TOOL_NAMES, TOOLS, Workspace


def call(name: str, arguments: object) -> dict[str, object]:
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": "c1", "type": "function", "function": {"name": name, "arguments": args}}


@pytest.mark.parametrize(("expr", "value"), [
    ("(17 + 4) * 3", 63), ("7 / 2", 3.5), ("2 ** 10 - 1", 1023), ("-(3 - 5) % 3", 2),
    ("sqrt(16) + max(1, 2)", 6), ("10 // 4", 2),
])
def test_calculator_evaluates_arithmetic(expr: str, value: float) -> None:
    assert evaluate(expr) == value


@pytest.mark.parametrize("expr", ["__import__('os').system('true')", "(1).__class__", "open('x')", "a + 1",
                                  "9 ** 9999", "1 / 0", "[1, 2]", "lambda: 1", "True + 1", "1 +",
                                  # powers of powers: a model's call must not keep the router's loop busy for minutes
                                  "(((((9**64)**64)**64)**64)**64)", "(999**64)**64", "2**60 * 2**60 * 2**60 * 2**60"
                                  " * 2**60 * 2**60 * 2**60 * 2**60 * 2**60 * 2**60 * 2**60 * 2**60 * 2**60 * 2**60"
                                  " * 2**60 * 2**60 * 2**60 * 2**60"])
def test_calculator_refuses_anything_but_arithmetic(expr: str) -> None:
    with pytest.raises(CalcError):
        evaluate(expr)


def test_a_schema_valid_call_that_a_tool_cannot_take_is_an_error_result() -> None:
    """10.0 passes the schema where an integer goes; whatever a tool makes of a call, the turn gets a result (the
    probe and the bench went down with a traceback)."""
    ws = Workspace(seed=3)
    assert "matches" in json.loads(ws.execute("search_files", {"query": "restock", "max_results": 10.0}))
    assert "error" in json.loads(ws.execute("read_file", {"path": "x", "unexpected": 1}))


def test_workspace_is_deterministic_and_stateful() -> None:
    def session(ws: Workspace) -> list[str]:
        calls = [("kv_set", {"key": "owner", "value": "alice"}), ("kv_get", {"key": "owner"}),
                 ("kv_delete", {"key": "owner"}), ("kv_get", {"key": "owner"}),
                 ("write_file", {"path": "notes/a.md", "content": "restock soon"}),
                 ("read_file", {"path": "./notes/a.md"}), ("search_files", {"query": "RESTOCK"}),
                 ("get_time", {}), ("get_time", {"utc_offset_hours": 2}),
                 ("calculator", {"expression": "1 / 0"})]
        return [ws.execute(name, args) for name, args in calls]

    first, again = session(Workspace(seed=3)), session(Workspace(seed=3))
    assert first == again
    assert json.loads(first[1]) == {"key": "owner", "value": "alice"}
    assert "error" in json.loads(first[3])
    assert json.loads(first[5])["content"] == "restock soon"
    assert {m["path"] for m in json.loads(first[6])["matches"]} >= {"notes/a.md", "src/app.py"}
    t0, t1 = json.loads(first[7])["time"], json.loads(first[8])["time"]
    assert t0.endswith("+00:00") and t1.endswith("+02:00") and t0 != t1  # the clock moves a minute per call
    assert json.loads(first[9])["error"].startswith("calculation failed")
    assert json.loads(Workspace(seed=4).execute("get_time", {}))["time"] != t0


def test_tasks_are_seeded_and_their_reference_calls_are_valid_and_run_cleanly() -> None:
    assert generate_tasks(7, 40) == generate_tasks(7, 40)
    assert generate_tasks(7, 40) != generate_tasks(8, 40)
    assert generate_tasks(7, 10) == generate_tasks(7, 40)[:10]  # a longer probe extends a shorter one
    used = set()
    for seed in range(12):
        ws = Workspace(seed=seed)
        for task in generate_tasks(seed, 60):
            check = check_call(call(task.tool, task.arguments))
            assert check.failure is None, (task, check)
            assert "error" not in json.loads(ws.execute(task.tool, task.arguments)), task
            used.add(task.tool)
    assert used == set(TOOL_NAMES)


def test_call_checks_name_json_and_schema() -> None:
    assert check_call(call("kv_get", {"key": "a"})).failure is None
    assert check_call(call("get_time", "")).failure is None  # no arguments at all: an empty object
    assert check_call(call("run_shell", {"cmd": "ls"})).failure == "unknown_name"
    assert check_call(call("kv_get", "{'key': 'a'}")).failure == "invalid_json"
    assert check_call(call("kv_get", "[1]")).failure == "invalid_json"
    assert check_call(call("kv_get", {"key": 3})).failure == "schema_mismatch"
    extra = check_call(call("kv_get", {"key": "a", "verbose": True}))
    assert extra.failure == "schema_mismatch" and "verbose" in extra.detail
    assert check_call(call("get_time", {"utc_offset_hours": 40})).failure == "schema_mismatch"
    both = check_message({"role": "assistant", "content": None,
                          "tool_calls": [call("kv_get", {"key": "a"}), call("nope", {})]})
    assert both.failure == "unknown_name" and [c.failure for c in both.calls] == [None, "unknown_name"]


def test_text_replies_are_diagnosed() -> None:
    assert diagnose_text("All done.").failure == "no_call"
    assert diagnose_text("").failure == "no_call"
    quoted = diagnose_text("<tool_call>\n{'name': 'kv_get', 'arguments': {'key': 'a'}}\n</tool_call>")
    assert quoted.failure == "malformed_call" and "single_quotes" in quoted.diagnosis
    plain = diagnose_text('<tool_call>\n{"name": "kv_get", "arguments": {"key": "a"}}\n</tool_call>')
    assert plain.failure == "unparsed_call"
    undeclared = '<tool_call>\n{"name": "rm", "arguments": {}}\n</tool_call>'
    assert diagnose_text(undeclared).failure == "unknown_name"
    assert {t["function"]["name"] for t in TOOLS} == set(TOOL_NAMES)


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([float(i) for i in range(1, 101)], 95) == 95.0


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_draws_on_a_terminal_only() -> None:
    tty = Tty()
    bar = Progress(4, "probe m", out=tty)
    for status in ("valid", "repaired", "invalid", "valid"):
        bar.advance(status)
    bar.close()
    text = tty.getvalue()
    assert text.count("\r") == 4 and "4/4" in text and "valid 2  repaired 1  failed 1" in text
    assert text.endswith("\n")
    plain = io.StringIO()
    quiet = Progress(4, out=plain)
    quiet.advance("valid")
    quiet.close()
    assert plain.getvalue() == ""
    off = Tty()
    Progress(4, out=off, enabled=False).advance("valid")
    assert off.getvalue() == ""


def test_probe_and_bench_options_are_checked_before_a_run(tmp_path) -> None:
    """--timeout 0, -1 or nan meant no timeout at all (inf a traceback), --temperature nan sent invalid JSON on
    every turn, and a --out naming a file failed with a traceback after the whole bench had run."""
    import argparse
    import subprocess
    import sys
    from pathlib import Path

    from router.commands.probe import seconds, temperature

    for bad in ("0", "-1", "nan", "inf", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            seconds(bad)
    for bad in ("nan", "inf", "-0.5", "2.5"):
        with pytest.raises(argparse.ArgumentTypeError):
            temperature(bad)
    assert seconds("0.5") == 0.5 and temperature("0") == 0.0
    taken = tmp_path / "taken"
    taken.write_text("x")
    proc = subprocess.run([sys.executable, "-m", "router", "bench", "--models", "m", "--base-url",
                           "http://127.0.0.1:9/v1", "--out", str(taken)], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2], timeout=60, check=False)
    assert proc.returncode == 2 and "--out" in proc.stderr and "Traceback" not in proc.stderr
