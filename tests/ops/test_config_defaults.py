"""`defaults:` takes the provider policy's settings only: a misspelt one (`retrys`, `timeout`) loaded and was
ignored without a word, where the same typo under a provider is refused."""

from __future__ import annotations

import pytest

from router.config import ConfigError, parse_config

REST = "providers:\n  up: {type: openai, base_url: 'http://127.0.0.1:9/v1'}\nmodels:\n  - {name: m, provider: up}\n"


@pytest.mark.parametrize(("defaults", "unknown"), [
    ("{retrys: 5}", "retrys"),
    ("{timeout: {connect: 1}}", "timeout"),
    ("{type: openai}", "type"),  # a provider's own setting, not a policy
])
def test_an_unknown_default_is_refused_naming_it_and_the_allowed_ones(defaults: str, unknown: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(f"defaults: {defaults}\n" + REST, env={})
    message = str(err.value)
    assert "defaults: unknown key" in message and repr(unknown) in message and "retries" in message, message
    assert "base_url" not in message  # the allowed keys are the policy's


def test_a_key_under_defaults_is_refused_unquoted() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config("defaults: {api_key: sk-default-key-0457}\n" + REST, env={})
    assert "defaults" in str(err.value) and "sk-default-key-0457" not in str(err.value)


def test_every_policy_setting_is_a_default() -> None:
    text = ("defaults: {timeouts: {connect: 5}, retries: 1, backoff: {base: 0.5}, breaker: {failures: 3}, "
            "max_concurrency: 8, max_queue: 9, queue_timeout: 7}\n" + REST)
    policy = parse_config(text, env={}).providers["up"].policy
    assert (policy.timeouts.connect, policy.retries, policy.backoff_base, policy.breaker_failures,
            policy.max_concurrency, policy.max_queue, policy.queue_timeout) == (5, 1, 0.5, 3, 8, 9, 7)
