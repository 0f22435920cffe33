"""Config values that reach headers, logs, URLs and `check` output: a token written as a base_url's user name is
a secret like a password is, and names that end up in response headers hold no control characters."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from router.config import ConfigError, parse_config
from router.config.model import shown_url
from tests.waiting import line_matching

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "gw-token-7c41d9e2aa"
BASIC = base64.b64encode(f"{TOKEN}:".encode()).decode()
MODELS = "models:\n  - {name: m, provider: up}\n"


def provider(url: str, extra: str = "") -> str:
    return f"providers:\n  up: {{type: openai, base_url: '{url}'{extra}}}\n"


def refused(text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as err:
        parse_config(text, env=env or {})
    return str(err.value)


# --- a token as a base_url's user name ------------------------------------------------------------------------------

@pytest.mark.parametrize(("url", "shown"), [
    (f"https://{TOKEN}@gw.internal/v1", "https://[redacted]@gw.internal/v1"),
    (f"https://{TOKEN}:@gw.internal/v1", "https://[redacted]@gw.internal/v1"),  # an empty password: the same
    (f"{TOKEN}@gw.internal/v1", "[redacted]@gw.internal/v1"),
    ("https://user:pw-secret@gw.internal/v1", "https://user:[redacted]@gw.internal/v1"),
    ("https://gw.internal/v1", "https://gw.internal/v1"),
])
def test_a_user_name_without_a_password_is_shown_redacted(url: str, shown: str) -> None:
    assert shown_url(url) == shown


def test_a_user_name_without_a_password_is_a_provider_secret() -> None:
    config = parse_config(provider(f"https://{TOKEN}@gw.internal/v1") + MODELS, env={})
    assert {TOKEN, BASIC} <= set(config.providers["up"].secrets)
    escaped = parse_config(provider("https://gw%2Dtoken%2D7c41d9e2aa@gw.internal/v1") + MODELS, env={})
    assert TOKEN in escaped.providers["up"].secrets  # as sent: the percent-escapes undone
    with_password = parse_config(provider("https://someuser:pw-secret-123@gw.internal/v1") + MODELS, env={})
    assert "someuser" not in with_password.providers["up"].secrets  # a user name beside a password is shown


def test_check_shows_a_base_url_without_its_user_token(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(provider(f"http://{TOKEN}@127.0.0.1:9/v1") + MODELS)
    proc = subprocess.run([sys.executable, "-m", "router", "check", "-c", str(path)], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, check=False)
    out = proc.stdout + proc.stderr
    assert "http://[redacted]@127.0.0.1:9/v1" in proc.stdout, out
    assert TOKEN not in out and BASIC not in out


@pytest.fixture
async def echo() -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """An upstream on 127.0.0.1 answering every request with a 500 whose message quotes the Authorization header it
    got (as some gateways do); the factory returns its `host:port`."""
    runners: list[web.AppRunner] = []

    async def handle(request: web.Request) -> web.Response:
        got = request.headers.get("Authorization", "")
        return web.json_response({"error": {"message": f"bad credentials: {got}", "type": "server_error"}}, status=500)

    async def make() -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return f"127.0.0.1:{port}"

    yield make
    for r in runners:
        await r.cleanup()


@pytest.mark.parametrize("stream", [False, True])
async def test_an_echoed_basic_header_of_a_user_token_is_redacted(echo, router, stream: bool) -> None:
    host = await echo()
    r = await router(provider(f"http://{TOKEN}@{host}/v1", ", retries: 0") + MODELS)
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": stream}
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/chat/completions", json=body) as resp:
        text = await resp.text()
        headers = "\n".join(f"{k}: {v}" for k, v in resp.headers.items())
    assert resp.status >= 400 and "bad credentials" in text, text
    for form in (TOKEN, BASIC, BASIC.rstrip("=")):
        assert form not in text and form not in headers


# --- names that reach headers, logs and the console -----------------------------------------------------------------

UP = "providers:\n  up: {type: openai, base_url: 'http://127.0.0.1:9/v1'}\n"
BAD_NAMES = ['"up\\r\\nX-Injected: 1"', '"up\\nx"', '"up\\tx"', '"up\\u0000x"', '"up\\u007fx"', '"up\\u0085x"',
             '"up\\u2028x"', '" up"', '"up "', "''"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_provider_name_that_cannot_be_a_header_value_is_refused(name: str) -> None:
    """A provider's name is sent in `x-agentgate-provider`: one with a line break loaded, then every answer from
    it was a 500 (the header could not be written)."""
    message = refused(f"providers:\n  {name}: {{type: openai, base_url: 'http://127.0.0.1:9/v1'}}\n"
                      f"models:\n  - {{name: m, provider: {name}}}\n")
    assert "providers: provider name" in message and "control character" in message, message
    assert "Traceback" not in message and "\n" not in message  # one line


@pytest.mark.parametrize(("entry", "where"), [
    ("{name: %s, provider: up}", "models[0].name"),
    ("{name: m, provider: up, aliases: [ok, %s]}", "models[0].aliases[1]"),
    ("{name: m, provider: up, model: %s}", "models[0].model"),
    ("{name: m, replicas: [{provider: up, model: %s}]}", "models[0].replicas[0].model"),
    ("{name: %s, engine: mlx, model: 'tiny:demo'}", "models[0].name"),  # its provider: engine:NAME
])
@pytest.mark.parametrize("name", ['"m\\r\\nX-Injected: 1"', '"m\\u0000"', '" m"'])
def test_a_model_name_with_a_control_character_is_refused(entry: str, where: str, name: str) -> None:
    message = refused(UP + "models:\n  - " + entry % name + "\n")
    assert f"{where}: " in message and "control character" in message, message


def test_a_client_key_name_with_a_control_character_is_refused() -> None:
    message = refused("server: {api_keys: [{key: sk-client-123456, name: \"team\\nb\"}]}\n" + UP + MODELS)
    assert "server.api_keys[0].name: " in message and "sk-client-123456" not in message


@pytest.mark.parametrize("name", ["up", "éte-提供者", "my provider", "a/b:c@d"])
def test_printable_names_load(name: str) -> None:
    config = parse_config(f"providers:\n  '{name}': {{type: openai, base_url: 'http://127.0.0.1:9/v1'}}\n"
                          f"models:\n  - {{name: '{name}', provider: '{name}', aliases: ['{name}-2']}}\n", env={})
    assert name in config.providers and config.models[0].name == name


async def test_a_printable_unicode_provider_name_is_in_the_answers_header(fakes, router) -> None:
    up = await fakes("up")
    r = await router(f"providers:\n  'été': {{type: openai, base_url: '{up.url}/v1'}}\n"
                     "models:\n  - {name: m, provider: 'été'}\n")
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/chat/completions", json=body) as resp:
        assert resp.status == 200, await resp.text()
        raw = dict(resp.raw_headers)[b"x-agentgate-provider"]
    assert raw == "été".encode()


# --- a client key whose variable is unset ---------------------------------------------------------------------------

SET_KEY = "sk-client-set-5f0a7c31"


async def _serve_lines(path: Path, env: dict[str, str]) -> list[str]:
    """The log lines of `agentgate serve` on 127.0.0.1 from start-up to the end of a SIGTERM's drain."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "router", "serve", "--config", str(path), "--port", "0", "--log-format", "text",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=str(ROOT), env=env)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        await line_matching(proc.stdout, r"listening url=", lines)
        proc.send_signal(signal.SIGTERM)
        lines += (await asyncio.wait_for(proc.stdout.read(), 30)).decode().splitlines()
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return lines


@pytest.mark.parametrize(("keys", "env", "named"), [
    ("['${AG_TEST_CLIENT_KEY}']", {}, ["AG_TEST_CLIENT_KEY"]),  # no key left: none is required on loopback
    ("['${AG_TEST_CLIENT_KEY}']", {"AG_TEST_CLIENT_KEY": ""}, ["AG_TEST_CLIENT_KEY"]),
    (f"[{SET_KEY}, {{key: '${{AG_TEST_TEAM_KEY}}', name: team}}]", {}, ["AG_TEST_TEAM_KEY"]),
    ("['${AG_TEST_A:-}', '${AG_TEST_B}']", {}, ["AG_TEST_B"]),  # a default written empty is meant, not unset
])
async def test_a_client_key_whose_variable_is_unset_is_one_warning_at_start_up(tmp_path: Path, keys: str,
                                                                              env: dict[str, str],
                                                                              named: list[str]) -> None:
    """README: a client key whose variable is unset does not exist, so a router on loopback whose every key is
    unset requires none. It stays so, but an operator who expected keys is told which variable, never a value."""
    path = tmp_path / "c.yaml"
    path.write_text(f"server: {{api_keys: {keys}}}\n" + provider("http://127.0.0.1:9/v1") + MODELS)
    base = {k: v for k, v in os.environ.items() if not k.startswith("AG_TEST_")}
    lines = await _serve_lines(path, {**base, **env})
    warned = [line for line in lines if "WARNING" in line and "AG_TEST_" in line]
    assert len(warned) == 1, "\n".join(lines)
    assert all(name in warned[0] for name in named) and "AG_TEST_A" not in warned[0]
    assert SET_KEY not in "\n".join(lines)


async def test_no_warning_when_every_client_key_is_set(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("server: {api_keys: ['${AG_TEST_CLIENT_KEY}']}\n" + provider("http://127.0.0.1:9/v1") + MODELS)
    lines = await _serve_lines(path, {**os.environ, "AG_TEST_CLIENT_KEY": SET_KEY})
    assert not [line for line in lines if "AG_TEST_CLIENT_KEY" in line or "client key" in line.lower()]
    assert SET_KEY not in "\n".join(lines)


@pytest.mark.parametrize(("entry", "env"), [
    ("'sk-${AG_TEST_TEAM}'", {}),  # was the key "sk-"
    ("{key: '${AG_TEST_A}${AG_TEST_B}', name: team}", {"AG_TEST_A": "abcdefgh"}),  # was A's value alone
])
def test_a_client_key_naming_an_unset_variable_does_not_exist(entry: str, env: dict[str, str]) -> None:
    """A key written around a variable that is unset was the text left around it: a key anyone could guess."""
    config = parse_config(f"server: {{api_keys: [{SET_KEY}, {entry}]}}\n" + UP + MODELS, env=env)
    assert [k.key for k in config.server.api_keys] == [SET_KEY]
    assert config.server.unset_key_vars and "AG_TEST_A" not in config.server.unset_key_vars


# --- base_url: a URL every request can use --------------------------------------------------------------------------

FROM_ENV = "providers:\n  up: {type: openai, base_url: '${AG_TEST_URL}'}\n" + MODELS


@pytest.mark.parametrize(("url", "said"), [
    ("http://", "no host"),
    ("https:///v1", "no host"),
    ("http://127.0.0.1:99999/v1", "port"),
    ("http://127.0.0.1:abc/v1", "port"),
    ("http://[::1/v1", "not a valid URL"),
    ("http://host name/v1", "space or control character"),
    ("http://127.0.0.1:9/v\n1", "space or control character"),
    ("http://127.0.0.1:9/v1\x7f", "space or control character"),
    (f"http://user:pw\t{TOKEN}@127.0.0.1:9/v1", "space or control character"),
])
def test_a_base_url_no_request_could_use_is_refused_at_load(url: str, said: str) -> None:
    """Each of these loaded, then every request to the provider was a 502 ("failed (protocol)" or "(connect)")."""
    message = refused(FROM_ENV, env={"AG_TEST_URL": url})
    assert "providers.up.base_url: " in message and said in message, message
    assert TOKEN not in message and "Traceback" not in message


def test_a_base_url_loses_the_spaces_and_line_break_around_it() -> None:
    """A variable read from a file usually ends in a newline: it was sent as `/v1%0A/chat/completions`."""
    config = parse_config(FROM_ENV, env={"AG_TEST_URL": " http://127.0.0.1:9/v1/\n"})
    assert config.providers["up"].base_url == "http://127.0.0.1:9/v1"


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/v1", "https://[::1]:8443/v1", "https://exa\u00e9mple.com/v1",
                                 "HTTPS://api.example.com", "http://localhost/v1/%7Euser"])
def test_usable_base_urls_load(url: str) -> None:
    assert parse_config(FROM_ENV, env={"AG_TEST_URL": url}).providers["up"].base_url == url


@pytest.mark.parametrize("name", ["engine:local", "engine:other"])
def test_a_provider_name_in_the_engines_namespace_is_refused(name: str) -> None:
    """`engine:NAME` is the provider of engine model NAME: a configured provider named so was replaced by the engine
    without a word, and the models naming it were answered by the local engine."""
    message = refused(f"providers:\n  '{name}': {{type: openai, base_url: 'https://api.example.com/v1'}}\n"
                      "models:\n  - {name: local, engine: mlx, model: 'tiny:demo'}\n"
                      f"  - {{name: cloud, provider: '{name}', model: gpt}}\n")
    assert f"providers: provider name {name!r}" in message and "engine:" in message, message


# --- a provider's headers -------------------------------------------------------------------------------------------

def with_headers(headers: str, extra: str = "") -> str:
    url = "http://127.0.0.1:9/v1"
    return f"providers:\n  up: {{type: openai, base_url: '{url}', headers: {headers}{extra}}}\n" + MODELS


def test_a_header_value_loses_the_line_break_around_it_as_a_key_does() -> None:
    """A header value read from a secret file (`${VAR}` ending in a newline) was refused as holding a control
    character, where api_key, read the same way, loses it."""
    config = parse_config(with_headers("{X-Api-Key: '${AG_TEST_HKEY}'}"), env={"AG_TEST_HKEY": " hk-0123456789\r\n"})
    assert config.providers["up"].headers == (("X-Api-Key", "hk-0123456789"),)
    message = refused(with_headers("{X-Api-Key: '${AG_TEST_HKEY}'}"), env={"AG_TEST_HKEY": "hk-01234\n56789"})
    assert "providers.up.headers.X-Api-Key: holds a control character" in message and "56789" not in message


def test_a_whole_header_line_written_as_the_name_is_not_quoted() -> None:
    """`headers: {"Authorization: Bearer KEY": ...}` was refused quoting the name, the key in it."""
    message = refused(with_headers("{'Authorization: Bearer sk-hdr-0123456789': ''}"))
    assert "providers.up.headers: " in message and "'Authorization'" in message and "':'" in message, message
    assert "sk-hdr" not in message and "0123456789" not in message


@pytest.mark.parametrize("headers", ["{Authorization: 'Bearer a-12345678', authorization: 'Bearer b-12345678'}",
                                     "{X-Org: a, x-org: b}"])
def test_a_header_set_twice_in_another_case_is_refused(headers: str) -> None:
    """Header names are not case-sensitive: one of the two values was dropped without a word."""
    message = refused(with_headers(headers))
    assert "providers.up.headers." in message and "twice" in message, message
    assert "12345678" not in message


# --- which header values are secrets --------------------------------------------------------------------------------

PUBLIC = "{X-Title: 'Weather Helper', HTTP-Referer: 'https://myapp.example', anthropic-beta: 'tools-2024-05-16'}"


def test_public_header_values_are_not_secrets_and_credentials_are() -> None:
    headers = "{X-Title: 'Weather Helper', X-Gateway-Token: 'gw-hdr-0123456789', Api-Key: 'ak-0123456789'}"
    secrets = parse_config(with_headers(headers), env={}).providers["up"].secrets
    assert "Weather Helper" not in secrets and {"gw-hdr-0123456789", "ak-0123456789"} <= set(secrets)


async def test_an_answer_quoting_a_public_header_value_is_not_redacted(fakes, router) -> None:
    """OpenRouter's app title and referer (X-Title, HTTP-Referer) were taken for keys: every answer naming the app
    or its site had them replaced by [redacted]."""
    from tests.fakes.openai_upstream import Step, completion

    up = await fakes("up")
    said = "Weather Helper says hi from https://myapp.example (tools-2024-05-16)"
    up.push(Step(json=completion(said, "m")))
    r = await router(with_headers(PUBLIC).replace("http://127.0.0.1:9", up.url))
    reply = await r.client().chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert reply.choices[0].message.content == said


# --- keys are ASCII -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["\ufeffsk-provider-0123456789", "sk-provider-\u200b0123456789",
                                   "sk-provider-0123456789\u2026"])
@pytest.mark.parametrize(("text", "where"), [
    ("providers:\n  up: {type: openai, base_url: 'http://127.0.0.1:9/v1', api_key: '${AG_TEST_K}'}\n" + MODELS,
     "providers.up.api_key"),
    ("providers:\n  up: {type: openai, base_url: 'http://127.0.0.1:9/v1', headers: {X-Api-Key: '${AG_TEST_K}'}}\n"
     + MODELS, "providers.up.headers.X-Api-Key"),
    ("server: {api_keys: ['${AG_TEST_K}']}\n" + UP + MODELS, "server.api_keys[0]"),
])
def test_a_key_holding_an_invisible_or_non_ascii_character_is_refused(text: str, where: str, value: str) -> None:
    """A key read from a file saved with a byte-order mark, or copied from a page with a zero-width space or an
    ellipsis, loaded: the provider refused every request (401), and no HTTP client could send such a client key."""
    message = refused(text, env={"AG_TEST_K": value})
    assert f"{where}: " in message and "ASCII" in message and "U+" in message, message
    assert "0123456789" not in message and "sk-provider" not in message


@pytest.mark.parametrize(("url", "hint"), [
    ("htps://lab.internal/v1", "'htps' is not http or https"),
    ("ftp://lab.internal/v1", "'ftp' is not http or https"),
    ("lab.internal:8000/v1", "did you mean 'http://lab.internal:8000/v1'?"),
])
def test_a_base_url_scheme_error_suggests_only_what_can_work(url: str, hint: str) -> None:
    """A URL with another scheme was answered "did you mean 'http://htps://...'?"."""
    message = refused(FROM_ENV, env={"AG_TEST_URL": url})
    assert "providers.up.base_url: " in message and hint in message and "http://htps" not in message, message


def test_a_refusal_to_serve_without_keys_names_the_unset_variables() -> None:
    """Beyond loopback, a config whose every key variable is unset is refused: the refusal said "every key's
    environment variable is unset" without saying which one."""
    from router.config.auth import open_relay_refusal, reload_refusal

    text = "server: {host: 0.0.0.0, api_keys: ['${AG_TEST_CLIENT_KEY}']}\n" + UP + MODELS
    new = parse_config(text, env={}).server
    old = parse_config(text, env={"AG_TEST_CLIENT_KEY": SET_KEY}).server
    for refusal in (open_relay_refusal(new), reload_refusal(old, new)):
        assert refusal is not None and "AG_TEST_CLIENT_KEY" in refusal and SET_KEY not in refusal
