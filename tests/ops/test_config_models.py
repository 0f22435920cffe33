"""The models section's refusals point at the line to change: a name or alias defined twice, across providers
too, and a fallback naming no model."""

from __future__ import annotations

import pytest

from router.config import ConfigError, parse_config

PROVIDERS = """providers:
  a: {type: openai, base_url: 'http://127.0.0.1:9/v1'}
  b: {type: openai, base_url: 'http://127.0.0.1:8/v1'}
"""


def refused(models: str) -> str:
    with pytest.raises(ConfigError) as err:
        parse_config(PROVIDERS + "models:\n" + models, env={})
    return str(err.value)


@pytest.mark.parametrize(("models", "where", "first"), [
    ("  - {name: m, provider: a}\n  - {name: m, provider: b}\n", "models[1].name", "models[0].name"),
    ("  - {name: m, provider: a}\n  - {name: n, provider: b, aliases: [x, m]}\n", "models[1].aliases[1]",
     "models[0].name"),
    ("  - {name: m, provider: a, aliases: [x]}\n  - {name: x, provider: b}\n", "models[1].name",
     "models[0].aliases[0]"),
    ("  - {name: m, provider: a, aliases: [x, x]}\n", "models[0].aliases[1]", "models[0].aliases[0]"),
    ("  - {name: m, provider: a, aliases: [m]}\n", "models[0].aliases[0]", "models[0].name"),
])
def test_a_name_defined_twice_names_both_places(models: str, where: str, first: str) -> None:
    message = refused(models)
    assert f"{where}: " in message and f"already defined by {first}" in message, message


def test_a_fallback_naming_no_model_is_placed_and_near_names_offered() -> None:
    message = refused("  - {name: coder, provider: a}\n  - {name: smart, provider: b, fallbacks: [coder, codr]}\n")
    assert "models[1].fallbacks[1]: unknown model 'codr'" in message and "did you mean 'coder'?" in message, message


def test_a_fallback_naming_nothing_near_lists_the_models() -> None:
    message = refused("  - {name: coder, provider: a, aliases: [gpt-4o]}\n"
                      "  - {name: x, provider: b, fallbacks: [zz]}\n")
    assert "models[1].fallbacks[0]: unknown model 'zz'" in message and "'coder', 'gpt-4o', 'x'" in message, message


@pytest.mark.parametrize("setting", ["ttl: 60", "start_timeout: 5", "memory_gb: 4", "health: /h", "engine_args: [--x]",
                                     "env: {HF_TOKEN: hf-secret-token-0458}"])
@pytest.mark.parametrize("entry", ["provider: a", "replicas: [{provider: a}, {provider: b}]", "fallbacks: [m]"])
def test_an_engine_setting_on_a_model_with_no_engine_is_refused(setting: str, entry: str) -> None:
    """As `preload` is: ignored, it let an operator believe a remote model was unloaded after its ttl, or given env."""
    message = refused(f"  - {{name: m, provider: a}}\n  - {{name: x, {entry}, {setting}}}\n")
    key = setting.partition(":")[0]
    assert f"models[1].{key}: " in message and "engine" in message, message
    assert "hf-secret" not in message


def test_engine_settings_on_an_engine_entry_load() -> None:
    entry = ("{name: e, command: 'serve --port ${PORT}', ttl: 60, start_timeout: 5, memory_gb: 4, "
             "health: /h, env: {A: b}}")
    config = parse_config(PROVIDERS + f"models:\n  - {entry}\n", env={})
    assert config.models[0].engine is not None and config.models[0].engine.ttl == 60


@pytest.mark.parametrize("setting", ["model: up-x", "max_output_tokens: 4096"])
def test_a_hop_setting_on_a_pure_fallback_chain_is_refused(setting: str) -> None:
    """A chain without provider, replicas or engine sends nothing itself: each hop is sent with its own entry's
    upstream name and output limit, so one written on the chain was ignored."""
    message = refused(f"  - {{name: m, provider: a}}\n  - {{name: chain, fallbacks: [m], {setting}}}\n")
    assert f"models[1].{setting.partition(':')[0]}: " in message and "fallbacks" in message, message
