"""`agentgate check`'s report lists what the config deserves a warning for (a client key's models naming no model,
`admin_auth: false` beyond loopback, a key sent over plain http), as well as what serve warns as it starts: those
went to stderr only, so a report kept or piped (`check > report.txt`) said `ok` and nothing else. The exit status
stays 0: the config loads and serve starts with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.cli import main

PROVIDERS = ("providers:\n  up: {type: openai, base_url: 'http://127.0.0.1:9/v1'}\n"
             "models:\n  - {name: m, provider: up}\n")


def report(tmp_path: Path, server: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    path = tmp_path / "config.yaml"
    path.write_text(f"server: {server}\n{PROVIDERS}")
    code = main(["check", "-c", str(path)])
    return code, capsys.readouterr().out.splitlines()


def warnings_section(lines: list[str]) -> list[str]:
    start = lines.index("warnings:") + 1
    end = lines.index("", start) if "" in lines[start:] else len(lines)
    return lines[start:end]


def test_a_config_warning_is_listed_in_the_report(tmp_path: Path, capsys) -> None:
    code, lines = report(tmp_path, "{api_keys: [{key: sk-check-report-1, name: ci, models: [mm]}]}", capsys)
    assert code == 0 and ": ok" in lines[0]
    assert warnings_section(lines) == ["  server.api_keys: the models of client key 'ci' name 'mm', which no model, "
                                       "alias or wildcard of this config takes (a typo? the model meant answers this "
                                       "key 403)"]
    assert "sk-check-report-1" not in "\n".join(lines)


def test_the_start_up_warnings_are_listed_too(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("AG_REPORT_UNSET_KEY", raising=False)
    text = ("{host: 0.0.0.0, admin_auth: false, api_keys: ['${AG_REPORT_UNSET_KEY}', "
            "{key: sk-check-report-2, name: ops}]}")
    code, lines = report(tmp_path, text, capsys)
    listed = warnings_section(lines)
    assert code == 0 and len(listed) == 2
    assert listed[0].startswith("  client key environment variable AG_REPORT_UNSET_KEY is not set")
    assert listed[1].startswith("  server.admin_auth: false on '0.0.0.0', reachable from other machines")


def test_a_config_without_warnings_has_no_warnings_section(tmp_path: Path, capsys) -> None:
    code, lines = report(tmp_path, "{port: 8080}", capsys)
    assert code == 0 and "warnings:" not in lines


def test_on_stderr_a_config_warning_is_written_as_checks_other_warnings(tmp_path: Path, capsys) -> None:
    """It was the bare line the logger writes before logging is set up (`FILE: setting: ...`), beside check's own
    `agentgate: FILE: warning: ...` lines."""
    path = tmp_path / "config.yaml"
    path.write_text("server: {api_keys: [{key: sk-check-report-3, name: ci, models: [mm]}]}\n" + PROVIDERS)
    assert main(["check", "-c", str(path)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"agentgate: {path}: warning: server.api_keys: the models of client "
                                               "key 'ci' name 'mm'"), err
