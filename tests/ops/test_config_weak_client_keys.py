"""A client key anyone could guess (under 16 characters, or a well-known placeholder such as "sk-1234") on a bind
other machines reach is a start-up warning, and a finding of `agentgate check` in the same words: the line names
the key's place in the config, never the key nor any part of it. On loopback, where only this machine connects,
nothing is said."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from router.cli import main
from router.config import parse_config
from router.config.notices import config_warnings

SHORT = "Zq9-wK4v"  # 8 characters
STRONG = "f3a91c07d2b84e6a9c15b7e0d4a2f861"  # 32 random characters
PROVIDERS = ("providers:\n  up: {type: openai, base_url: 'http://127.0.0.1:9/v1'}\n"
             "models:\n  - {name: m, provider: up}\n")


def config(host: str, *keys: str) -> str:
    listed = ", ".join(f"{{key: '{k}', name: k{i}}}" for i, k in enumerate(keys))
    return f"server: {{host: '{host}', api_keys: [{listed}]}}\n{PROVIDERS}"


def shows_part_of(text: str, key: str) -> bool:
    """Whether `text` holds the key, escaped or not, or any three characters of it in a row."""
    escaped = {json.dumps(key)[1:-1], repr(key)[1:-1], key.replace("-", "\\-")}
    return any(s in text for s in escaped) or any(key[i:i + 3] in text for i in range(len(key) - 2))


def weak_lines(host: str, *keys: str) -> list[str]:
    return [line for line in config_warnings(parse_config(config(host, *keys), env={})) if "guess" in line]


def test_a_short_key_on_a_network_bind_is_one_warning_naming_its_place() -> None:
    [line] = weak_lines("0.0.0.0", STRONG, SHORT)
    assert line.startswith("server.api_keys[1] (client key 'k1'): ") and "0.0.0.0" in line
    assert not shows_part_of(line, SHORT) and not shows_part_of(line, STRONG)


@pytest.mark.parametrize("placeholder", ["sk-1234", "changeme", "password", "test", "secret", "sk-xxx", "CHANGEME",
                                         "sk-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"])
def test_a_placeholder_is_warned_like_a_short_key(placeholder: str) -> None:
    [line] = weak_lines("192.0.2.7", placeholder)
    assert line.startswith("server.api_keys[0] (client key 'k0'): ")
    assert line == weak_lines("192.0.2.7", SHORT)[0]  # (the same words: which kind of weak key is not said)


def test_a_long_random_key_is_not_warned() -> None:
    assert weak_lines("0.0.0.0", STRONG) == []


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_loopback_stays_quiet(host: str) -> None:
    assert weak_lines(host, SHORT) == []


def test_check_says_it_once_on_stderr_and_once_in_its_report(tmp_path: Path, capsys) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(config("0.0.0.0", SHORT))
    code = main(["check", "-c", str(path)])
    out, err = capsys.readouterr()
    [line] = weak_lines("0.0.0.0", SHORT)
    assert code == 0
    assert err.splitlines() == [f"agentgate: {path}: warning: {line}"]
    assert out.count(line) == 1 and f"\nwarnings:\n  {line}\n" in out
    assert not shows_part_of(out + err, SHORT)


def test_loading_logs_it_once_without_the_key(caplog) -> None:
    with caplog.at_level("WARNING"):
        parse_config(config("0.0.0.0", SHORT), env={})
    said = [r.getMessage() for r in caplog.records if "server.api_keys[0]" in r.getMessage()]
    assert len(said) == 1 and not shows_part_of(caplog.text, SHORT)
