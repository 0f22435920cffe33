"""A key with a line break or another control character (read from a file with Windows line endings, pasted with its
newline) cannot go in an Authorization header: aiohttp refused it on the first request and `agentgate probe` and
`agentgate bench` ended in a traceback. Now refused before any request, the key never shown."""

from __future__ import annotations

import pytest

from router.cli import main
from tests.probe.test_probe import free_port

KEY = "sk-probe-key-0123456789"


@pytest.mark.parametrize("bad", [KEY + "\r", KEY + "\n", "sk-a\x00b", "sk-\tkey"])
def test_a_key_with_a_control_character_is_refused_before_any_turn(bad: str, capsys, tmp_path, monkeypatch) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    for command in (["probe", "m"], ["bench", "tools", "--models", "m", "--out", str(tmp_path / "out")]):
        assert main([*command, "--base-url", url, "--api-key", bad]) == 2
        err = capsys.readouterr().err
        assert "--api-key" in err and "control character" in err and "Traceback" not in err and bad not in err
        if "\x00" in bad:  # (no environment variable can hold one)
            continue
        monkeypatch.setenv("AGENTGATE_API_KEY", bad)  # the default, read when the parser is built
        assert main([*command, "--base-url", url]) == 2
        err = capsys.readouterr().err
        assert "$AGENTGATE_API_KEY" in err and "Traceback" not in err and bad not in err
        monkeypatch.delenv("AGENTGATE_API_KEY")
    assert not (tmp_path / "out").exists()
