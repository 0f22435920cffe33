"""The size settings the router turns into byte or character counts: a value past what a count can be (1e308, or
YAML's .inf) was an OverflowError traceback at load; now the config is refused, naming the key."""

from __future__ import annotations

import pytest

from router.config import ConfigError, parse_config

PROVIDER = ("providers:\n  lab: {type: openai, base_url: 'http://127.0.0.1:9/v1'}\n"
            "models:\n  - {name: m, provider: lab}\n")
KEYS = ["max_body_mb", "max_upstream_body_mb", "max_upstream_event_mb", "max_stream_repair_kchars"]


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("value", ["1.0e+308", ".inf", "1.0e+12"])
def test_a_size_past_any_count_is_refused_at_load(key: str, value: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(f"server: {{{key}: {value}}}\n" + PROVIDER)
    assert f"server.{key}" in str(err.value)


@pytest.mark.parametrize("key", KEYS)
def test_a_large_size_still_loads(key: str) -> None:
    assert parse_config(f"server: {{{key}: 1048576}}\n" + PROVIDER) is not None
