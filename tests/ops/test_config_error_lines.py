"""A config error as `serve` and `check` print it: one error was two lines (`agentgate: invalid config:`, then the
error indented under it), where a missing file or broken YAML is one. One error is now one line naming the file
and the setting; several are a header, then one line each."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.cli import main

REST = "providers:\n  up: {type: openai, base_url: 'http://127.0.0.1:9/v1'}\nmodels:\n  - {name: m, provider: up}\n"


def printed(tmp_path: Path, text: str, command: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    code = main([command, "-c", str(path)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", ["check", "serve"])
def test_one_schema_error_is_one_line(command: str, tmp_path: Path, capsys) -> None:
    code, out, err = printed(tmp_path, "server: {port: 'eighty'}\n" + REST, command, capsys)
    assert (code, out) == (2, "")
    assert err.splitlines() == [f"agentgate: {tmp_path / 'config.yaml'}: invalid config: server.port: expected "
                                "integer, got str 'eighty'"]


@pytest.mark.parametrize("command", ["check", "serve"])
def test_one_error_found_after_the_schema_is_one_line(command: str, tmp_path: Path, capsys) -> None:
    code, _, err = printed(tmp_path, REST.replace("provider: up}", "provider: nope}"), command, capsys)
    assert code == 2
    assert err.splitlines() == [f"agentgate: {tmp_path / 'config.yaml'}: invalid config: models[0].provider: "
                                "unknown provider 'nope'; defined: up"]


def test_several_errors_are_a_header_then_one_line_each(tmp_path: Path, capsys) -> None:
    code, _, err = printed(tmp_path, "server: {port: 'eighty', log_level: loud}\n" + REST, "check", capsys)
    source = tmp_path / "config.yaml"
    assert code == 2
    assert err.splitlines() == [f"agentgate: {source}: invalid config, 2 errors:",
                                f"  {source}: server.log_level: expected one of 'debug', 'info', 'warning', 'error', "
                                "got 'loud'",
                                f"  {source}: server.port: expected integer, got str 'eighty'"]


def test_past_ten_errors_the_header_says_how_many_are_shown(tmp_path: Path, capsys) -> None:
    models = "".join(f"  - {{name: m{i}, provider: up, max_output_tokens: -1}}\n" for i in range(12))
    code, _, err = printed(tmp_path, REST + models, "check", capsys)
    lines = err.splitlines()
    assert code == 2 and lines[0] == f"agentgate: {tmp_path / 'config.yaml'}: invalid config, 12 errors (the first " \
                                     "10 shown):"
    assert len(lines) == 11 and all(line.startswith(f"  {tmp_path / 'config.yaml'}: models[") for line in lines[1:])
