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
