"""A key pasted into the wrong setting (base_url, type, a number, a line of its own that YAML reads as a setting's
name) is not one the config names as a secret, but an error that quotes what it found there would put it on stderr,
in the log and in a reload's answer: a value shaped like a key is never quoted."""

from __future__ import annotations

import aiohttp
import pytest

from router.config import ConfigError, parse_config

KEY = "sk-proj-Q7w9Zk2mXp4rT8vBn5Hc3Lq1"
PROVIDER = "  up: {{type: openai, base_url: 'http://127.0.0.1:9/v1'{extra}}}\n"


def _config(server: str = "", provider: str = "", models: str = "  - {name: m, provider: up}\n") -> str:
    return (f"server: {{{server}}}\n" if server else "") + "providers:\n" + PROVIDER.format(extra=provider) + \
        "models:\n" + models


@pytest.mark.parametrize("text", [
    _config().replace("base_url: 'http://127.0.0.1:9/v1'", f"base_url: {KEY}"),
    _config().replace("type: openai", f"type: {KEY}"),
    _config(provider=f", retries: {KEY}"),
    _config(server=f"log_level: {KEY}"),
    _config(models=f"  - {{name: m, provider: up, ttl: {KEY}}}\n"),
    _config().replace("  up: {", "  up:\n    " + KEY + ":\n    x: {"),  # its own line: a setting's name
    "providers:\n  up:\n    type: openai\n    base_url: 'http://127.0.0.1:9/v1'\n    " + KEY + ":\n"
    "models:\n  - {name: m, provider: up}\n",
    _config(models=f"  - {{name: m, provider: {KEY}}}\n"),
    _config(provider=f", api_key: *{KEY}"),  # YAML's error names the alias it read
    _config(provider=f", api_key: !{KEY} x"),  # or the tag
])
def test_a_key_in_the_wrong_setting_is_not_quoted(text: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(text, env={})
    said = str(err.value)
    own = KEY[len("sk-proj-"):]
    assert not [own[i:i + 8] for i in range(len(own) - 7) if own[i:i + 8] in said], said
    assert "invalid config" in said or "invalid YAML" in said


def test_a_value_not_shaped_like_a_key_is_still_quoted() -> None:
    with pytest.raises(ConfigError, match="'sometimes'"):
        parse_config(_config(provider=", retries: sometimes"), env={})


async def test_a_reload_of_a_file_with_a_key_in_the_wrong_setting_does_not_answer_it(router, fakes, tmp_path) -> None:
    from router.state import STATE

    up = await fakes()
    path = tmp_path / "config.yaml"
    good = _config().replace("http://127.0.0.1:9/v1", up.url)
    path.write_text(good)
    r = await router(good)
    r.app[STATE].config_path = str(path)
    path.write_text(good.replace("type: openai", f"type: {KEY}"))
    async with aiohttp.ClientSession() as s, s.post(r.url + "/admin/reload") as resp:
        body = await resp.text()
        assert resp.status == 400 and "invalid_config" in body
    assert KEY[8:20] not in body, body
