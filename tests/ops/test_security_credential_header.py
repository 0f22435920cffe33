"""A provider's `api_key` beside a configured header of the same name (`Authorization` for an OpenAI provider,
`x-api-key` for an Anthropic one) is refused at load, naming the provider and both settings, neither value: one
replaced the other without a word (OpenAI's SDK, and LiteLLM's `extra_headers`, send the explicit header; the
router sent the key), so a gateway token written on purpose was never sent."""

from __future__ import annotations

import pytest

from router.config import ConfigError, parse_config

KEY = "sk-provider-key-7e1d90"
TOKEN = "Bearer configured-token-5a2c"
MODELS = "models:\n  - {name: m, provider: up}\n"


def provider(kind: str, extra: str) -> str:
    return f"providers:\n  up: {{type: {kind}, base_url: 'http://127.0.0.1:9/v1'{extra}}}\n"


@pytest.mark.parametrize(("kind", "header"), [
    ("openai", "Authorization"), ("openai", "authorization"), ("anthropic", "x-api-key"), ("anthropic", "X-API-KEY"),
])
def test_a_key_beside_its_own_header_is_refused_naming_both(kind: str, header: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(provider(kind, f", api_key: {KEY}, headers: {{{header}: '{TOKEN}'}}") + MODELS, env={})
    message = str(err.value)
    assert "providers.up" in message and "api_key" in message and f"headers.{header}" in message, message
    assert KEY not in message and "configured-token" not in message


@pytest.mark.parametrize(("kind", "extra"), [
    ("anthropic", f", api_key: {KEY}, headers: {{Authorization: '{TOKEN}'}}"),  # x-api-key and a gateway's token
    ("openai", f", api_key: {KEY}, headers: {{x-api-key: 'gw-token-5a2c77'}}"),
    ("openai", f", headers: {{Authorization: '{TOKEN}'}}"),  # the header alone: the credential
    ("openai", ", api_key: '${UNSET_PROVIDER_KEY}', headers: {Authorization: 'Bearer gw-token-5a2c77'}"),
])
def test_different_headers_or_one_credential_load(kind: str, extra: str) -> None:
    parse_config(provider(kind, extra) + MODELS, env={})
