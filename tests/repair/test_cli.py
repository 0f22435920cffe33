"""`agentgate repair`, run as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.repair.corpus import TOOLS, render

ROOT = Path(__file__).resolve().parents[2]


def _run(args: list[str], stdin: str | bytes) -> subprocess.CompletedProcess[bytes]:
    data = stdin.encode() if isinstance(stdin, str) else stdin
    return subprocess.run([sys.executable, "-m", "router", "repair", *args], input=data, capture_output=True,
                          cwd=ROOT, timeout=120, check=False)


@pytest.fixture
def tools_file(tmp_path: Path) -> Path:
    p = tmp_path / "tools.json"
    p.write_text(json.dumps(TOOLS))
    return p


def test_single_message(tools_file: Path) -> None:
    raw = "Checking.\n" + '<tool_call>{"name": "read_file", "arguments": {"path": "a.py", "limit": "3"}}</tool_call>'
    proc = _run(["--tools", str(tools_file)], raw)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert set(doc) == {"content", "tool_calls", "reasoning_content", "repairs", "errors", "format"}
    assert doc["content"] == "Checking."
    assert doc["tool_calls"] == [{"id": "call_0", "type": "function",
                                  "function": {"name": "read_file", "arguments": '{"path": "a.py", "limit": 3}'}}]
    assert doc["repairs"] == [{"kind": "coerced_type", "detail": 'limit: "3" -> integer', "call_index": 0}]
    assert doc["errors"] == [] and doc["format"] == "hermes"


def test_format_option(tools_file: Path) -> None:
    proc = _run(["--tools", str(tools_file), "--format", "hermes"], render("kimi_k2", [("get_time", {})]))
    doc = json.loads(proc.stdout)
    assert doc["tool_calls"][0]["function"]["name"] == "get_time"
    assert [r["kind"] for r in doc["repairs"]] == ["format:kimi_k2"]
    bad = _run(["--format", "nope"], "x")
    assert bad.returncode == 2


def test_missing_tools_file(tmp_path: Path) -> None:
    proc = _run(["--tools", str(tmp_path / "missing.json")], "x")
    assert proc.returncode == 2 and b"cannot read --tools" in proc.stderr


def test_jsonl_with_bad_lines(tools_file: Path) -> None:
    lines = [
        json.dumps({"id": "a", "tools": TOOLS, "text": render("qwen3_coder", [("read_file", {"path": "x"})])}),
        "this is not json",
        json.dumps([1, 2]),
        json.dumps({"id": "b", "tools": [], "text": render("hermes", [("read_file", {"path": "x"})])}),
        json.dumps({"id": "c", "tools": "nope", "text": "x"}),
        "",
        json.dumps({"id": "d", "text": "[TOOL_CALLS]get_time[ARGS]{}"}),
        json.dumps({"id": "e", "tools": TOOLS, "text": 5}),
    ]
    proc = _run(["--jsonl", "--tools", str(tools_file)], "\n".join(lines) + "\n")
    assert proc.returncode == 1, proc.stderr  # some lines reported failures
    out = [json.loads(x) for x in proc.stdout.decode().splitlines()]
    assert len(out) == 7
    for doc in out:
        assert {"id", "content", "tool_calls", "repairs", "errors"} <= set(doc)
    by_id = {d["id"]: d for d in out}
    assert by_id["a"]["tool_calls"][0]["function"] == {"name": "read_file", "arguments": '{"path": "x"}'}
    assert by_id["b"]["tool_calls"] == [] and by_id["b"]["errors"][0]["kind"] == "unknown_name"
    assert by_id["c"]["errors"][0]["kind"] == "bad_input"
    assert by_id["d"]["tool_calls"][0]["function"]["name"] == "get_time"
    assert by_id["e"]["errors"][0]["kind"] == "bad_input"
    anonymous = [d for d in out if d["id"] is None]
    assert len(anonymous) == 2 and all(d["errors"][0]["kind"] == "bad_input" for d in anonymous)


def test_jsonl_many_lines(tools_file: Path) -> None:
    texts = [render("hermes", [("read_file", {"path": f"f{i}.py"})]) if i % 3 else f"plain answer {i}"
             for i in range(3000)]
    data = "".join(json.dumps({"id": i, "tools": TOOLS, "text": t}) + "\n" for i, t in enumerate(texts))
    proc = _run(["--jsonl"], data)
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(x) for x in proc.stdout.decode().splitlines()]
    assert [d["id"] for d in out] == list(range(3000))
    assert sum(1 for d in out if d["tool_calls"]) == 2000


def test_invalid_utf8_does_not_crash(tools_file: Path) -> None:
    proc = _run(["--tools", str(tools_file)], b"caf\xe9 <tool_call>")
    assert proc.returncode == 1  # a failure reported, not a crash
    assert json.loads(proc.stdout)["errors"][0]["kind"] == "truncated"


def test_main_entry_point(tools_file: Path, capsys: pytest.CaptureFixture[str],
                          monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from router.cli import main

    raw = render("pythonic", [("get_time", {})]).encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
    assert main(["repair", "--tools", str(tools_file)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["tool_calls"][0]["function"]["name"] == "get_time" and doc["format"] == "pythonic"


def test_jsonl_where_no_line_is_usable_is_unusable_input() -> None:
    """Exit 1 says repair reported a failure; input none of whose lines could be read is exit 2."""
    proc = _run(["--jsonl"], 'not json\n[1, 2]\n{"id": "x", "text": 5}\n')
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stdout.decode().splitlines()) == 3 and b"no usable line" in proc.stderr
    proc = _run(["--jsonl"], "\n\n")
    assert proc.returncode == 2 and b"no usable line" in proc.stderr


@pytest.mark.parametrize("mode", [[], ["--jsonl"]])
def test_a_closed_stdin_is_one_line_not_a_traceback(tools_file: Path, mode: list[str]) -> None:
    """`agentgate repair <&-` (sys.stdin is None) raised AttributeError."""
    proc = subprocess.run(["sh", "-c", 'exec "$0" -m router repair "$@" <&-', sys.executable, "--tools",
                           str(tools_file), *mode], capture_output=True, cwd=ROOT, timeout=120, check=False)
    assert proc.returncode == 2 and proc.stdout == b"", proc.stderr
    assert proc.stderr.decode().splitlines() == [
        "agentgate repair: stdin is closed; the input is read from stdin (e.g. < raw.txt)"]


def test_replay_of_objects_that_are_not_captures(tmp_path: Path) -> None:
    """JSON objects that are no capture were replayed as "unchanged" captures, each row marked "<- changed"."""
    path = tmp_path / "not.jsonl"
    path.write_text('{"hello": "world"}\n{"foo": 1}\n')
    proc = subprocess.run([sys.executable, "-m", "router", "repair", "--replay", str(path)], capture_output=True,
                          cwd=ROOT, timeout=120, check=False, text=True)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "<- changed" not in proc.stdout and "0 unchanged" in proc.stdout and "2 unreadable" in proc.stdout
    assert proc.stdout.count("not a capture") == 2
    capture = {"id": 7, "model": "m", "outcome": "repaired", "text": "plain answer", "tools": []}
    path.write_text(json.dumps(capture) + "\n")
    proc = subprocess.run([sys.executable, "-m", "router", "repair", "--replay", str(path)], capture_output=True,
                          cwd=ROOT, timeout=120, check=False, text=True)
    assert proc.returncode == 0 and "<- changed" in proc.stdout and "0 unchanged, 1 otherwise changed" in proc.stdout
