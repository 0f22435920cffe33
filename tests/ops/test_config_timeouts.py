"""Every timeout and wait the config sets is bounded above at load (a day), not only below: `1.0e+308` loaded and
held a stalled upstream, a queued request or an open breaker practically forever. At the bound, requests are
answered as with the defaults."""

from __future__ import annotations

import aiohttp
import pytest

from router.config import ConfigError, parse_config
from tests.fakes.openai_upstream import Step

DAY = 86400


def up(url: str, policy: str = "") -> str:
    return f"providers:\n  up: {{type: openai, base_url: '{url}'{policy}}}\n"


MODELS = "models:\n  - {name: m, provider: up}\n"
ENGINE = "models:\n  - {name: e, command: 'serve --port ${PORT}'%s}\n"


def refused(text: str) -> str:
    with pytest.raises(ConfigError) as err:
        parse_config(text, env={})
    return str(err.value)


def placed(value: str) -> list[tuple[str, str]]:
    """(config, the setting's place) for each timeout or wait the config sets, to `value` seconds."""
    u = "http://127.0.0.1:9/v1"
    return [
        (f"server: {{idle_timeout: {value}}}\n" + up(u) + MODELS, "server.idle_timeout"),
        *[(f"defaults: {{timeouts: {{{k}: {value}}}}}\n" + up(u) + MODELS, f"defaults.timeouts.{k}")
          for k in ("connect", "first_byte", "idle", "total")],
        *[(up(u, f", timeouts: {{{k}: {value}}}") + MODELS, f"providers.up.timeouts.{k}")
          for k in ("connect", "first_byte", "idle", "total")],
        (up(u, f", queue_timeout: {value}") + MODELS, "providers.up.queue_timeout"),
        (up(u, f", breaker: {{cooldown: {value}}}") + MODELS, "providers.up.breaker.cooldown"),
        *[(up(u, f", backoff: {{{k}: {value}}}") + MODELS, f"providers.up.backoff.{k}")
          for k in ("base", "max", "max_retry_after")],
        (f"engines: {{start_timeout: {value}}}\n" + ENGINE % "", "engines.start_timeout"),
        (ENGINE % f", start_timeout: {value}", "models[0].start_timeout"),
    ]


@pytest.mark.parametrize(("text", "where"), placed("1.0e+308") + placed(str(DAY + 1)))
def test_a_timeout_over_a_day_is_refused_naming_the_setting(text: str, where: str) -> None:
    message = refused(text)
    assert f"{where}: " in message and "86400" in message and "a day" in message, message
    assert "\n" not in message  # one line: the setting's


@pytest.mark.parametrize(("text", "where"), placed(str(DAY)))
def test_a_day_is_allowed(text: str, where: str) -> None:
    parse_config(text, env={})


LONGEST = f"""
server: {{idle_timeout: {DAY}}}
providers:
  up: {{type: openai, base_url: '%s', queue_timeout: {DAY},
        timeouts: {{connect: {DAY}, first_byte: {DAY}, idle: {DAY}, total: {DAY}}}, breaker: {{cooldown: {DAY}}},
        backoff: {{base: 0.01, max: 0.02, max_retry_after: {DAY}}}}}
models:
  - {{name: m, provider: up}}
"""


@pytest.mark.parametrize("stream", [False, True])
async def test_the_longest_timeouts_answer_as_the_defaults_do(fakes, router, stream: bool) -> None:
    upstream = await fakes()
    r = await router(LONGEST % upstream.url)
    body = {"model": "m", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
    answered = "data: [DONE]" if stream else "echo: hi"
    async with aiohttp.ClientSession() as s:
        async with s.post(r.url + "/v1/chat/completions", json=body) as resp:
            assert resp.status == 200 and answered in await resp.text()
        upstream.push(Step(status=500))  # retried (after the backoff), then answered
        async with s.post(r.url + "/v1/chat/completions", json=body) as resp:
            assert resp.status == 200 and answered in await resp.text()
    assert len(upstream.requests) == 3
