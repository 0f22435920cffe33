"""`agentgate check` on a config `serve` starts with but warns about (a client key naming an unset variable, no key
beyond loopback): check said `ok` and nothing else, so the warning was first seen in the running router's log. It
now prints what serve would warn, one line each on stderr, and still exits 0: the config is valid and serve
starts. Its help says what each exit status means."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.cli import main

PROVIDERS = ("providers:\n  up: {type: openai, base_url: 'http://127.0.0.1:9/v1'}\n"
             "models:\n  - {name: m, provider: up}\n")


def check(tmp_path: Path, server: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    path = tmp_path / "config.yaml"
    path.write_text(f"server: {server}\n{PROVIDERS}")
    code = main(["check", "-c", str(path)])
    out, err = capsys.readouterr()
    return code, out, err


def test_an_unset_client_key_variable_is_warned(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("AG_CHECK_UNSET_KEY", raising=False)
    code, out, err = check(tmp_path, "{api_keys: ['${AG_CHECK_UNSET_KEY}']}", capsys)
    assert code == 0 and ": ok" in out.splitlines()[0]
    assert err.splitlines() == [f"agentgate: {tmp_path / 'config.yaml'}: warning: client key environment variable "
                                "AG_CHECK_UNSET_KEY is not set: no client key is left, so requests to 127.0.0.1 "
                                "need none"]


def test_serving_without_keys_beyond_loopback_is_warned(tmp_path: Path, capsys) -> None:
    code, _, err = check(tmp_path, "{host: 0.0.0.0, allow_unauthenticated: true}", capsys)
    assert code == 0 and len(err.splitlines()) == 1
    assert "warning: serving WITHOUT client keys on 0.0.0.0 (server.allow_unauthenticated: true)" in err


def test_a_config_without_warnings_says_nothing_on_stderr(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("AG_CHECK_SET_KEY", "sk-client-check-123")
    code, out, err = check(tmp_path, "{api_keys: ['${AG_CHECK_SET_KEY}']}", capsys)
    assert (code, err) == (0, "") and "sk-client-check-123" not in out


def test_the_help_gives_the_exit_statuses(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["check", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "exit status: 0 valid (warnings, if any, on stderr" in text and "2 invalid or unreadable" in text
