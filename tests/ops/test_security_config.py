"""Credentials in a config that cannot work as written are refused at load, never quoted: not a router that
answers every request with a 500, nor one left open."""

from __future__ import annotations

import pytest

from router.config import ConfigError, parse_config

PASSWORD = "pw-5e8d1c-secret"
MODELS = "models:\n  - {name: m, provider: up}\n"


def refused(text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as err:
        parse_config(text, env=env or {})
    return str(err.value)


def provider(kind: str, url: str, extra: str = "") -> str:
    return f"providers:\n  up: {{type: {kind}, base_url: '{url}'{extra}}}\n"


@pytest.mark.parametrize(("kind", "extra"), [
    ("openai", ", api_key: sk-provider-123456"),
    ("openai", ", headers: {authorization: 'Bearer sk-provider-123456'}"),
    ("anthropic", ", headers: {Authorization: 'Bearer sk-provider-123456'}"),
])
def test_base_url_credentials_beside_an_authorization_header_are_refused(kind: str, extra: str) -> None:
    message = refused(provider(kind, f"http://user:{PASSWORD}@127.0.0.1:9/v1", extra) + MODELS)
    assert "providers.up.base_url" in message and "Authorization" in message
    assert PASSWORD not in message and "sk-provider-123456" not in message


@pytest.mark.parametrize(("kind", "url", "extra"), [
    ("openai", f"http://user:{PASSWORD}@127.0.0.1:9/v1", ""),  # the URL's credentials alone
    ("anthropic", f"http://user:{PASSWORD}@127.0.0.1:9/v1", ", api_key: sk-provider-123456"),  # x-api-key beside
    ("openai", "http://127.0.0.1:9/v1", ", api_key: sk-provider-123456"),
])
def test_one_authorization_is_fine(kind: str, url: str, extra: str) -> None:
    assert parse_config(provider(kind, url, extra) + MODELS, env={}).providers["up"].base_url == url


UP = provider("openai", "http://127.0.0.1:9/v1")


@pytest.mark.parametrize("entry", ["''", "'   '", "{key: '', name: team}", "{key: '\t', name: team}"])
def test_a_client_key_written_empty_is_refused_not_an_open_router(entry: str) -> None:
    message = refused(f"server: {{api_keys: [{entry}]}}\n" + UP + MODELS)  # (the only key: no key required)
    assert "server.api_keys[0]" in message and "empty" in message


@pytest.mark.parametrize(("entry", "env"), [
    ("'${KEY}'", {}),  # unset: that key does not exist (README)
    ("'${KEY}'", {"KEY": ""}),
    ("'${KEY:-}'", {}),
    ("{key: '${KEY}', name: team}", {}),
])
def test_a_client_key_from_an_unset_variable_is_left_out(entry: str, env: dict[str, str]) -> None:
    config = parse_config(f"server: {{api_keys: [sk-client-123456, {entry}]}}\n" + UP + MODELS, env=env)
    assert [k.key for k in config.server.api_keys] == ["sk-client-123456"]
