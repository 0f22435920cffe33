"""Configs that `check` must refuse at load, with a line naming the place, rather than a config that loads and then
fails at serve time, on a reload, or on every request (a 500, a traceback, a bind to every interface)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from router.config import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]
UP = "providers:\n  up: {type: openai, base_url: 'http://127.0.0.1:9/v1'%s}\n"
MODELS = "models:\n  - {name: m, provider: up}\n"


def refused(text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as err:
        parse_config(text, env=env or {})
    return str(err.value)


def test_a_fallback_names_a_model_not_a_wildcard_pattern() -> None:
    text = UP % "" + "models:\n  - {name: m, provider: up, fallbacks: ['w-*']}\n  - {name: 'w-*', provider: up}\n"
    assert "models[0].fallbacks[0]: 'w-*' is a wildcard pattern" in refused(text)


@pytest.mark.parametrize(("server", "where"), [
    ("port: 18731.0", "server.port"),
    ("capture: {max_entries: 5.0}", "server.capture"),
    ("max_body_mb: .inf", "server.max_body_mb"),
    ("max_body_mb: .nan", "server.max_body_mb"),
    ("idle_timeout: .inf", "server.idle_timeout"),
])
def test_integers_are_integers_and_numbers_finite(server: str, where: str) -> None:
    assert where in refused(f"server: {{{server}}}\n" + UP % "" + MODELS)


def test_a_model_output_limit_is_a_positive_integer() -> None:
    assert parse_config(UP % "" + "models:\n  - {name: m, provider: up, max_output_tokens: 16000}\n"
                        ).models[0].max_output_tokens == 16000
    for value in ("0", "1.5", "'a lot'"):
        assert "models[0]" in refused(UP % "" + f"models:\n  - {{name: m, provider: up, max_output_tokens: {value}}}\n")


def test_an_unset_variable_in_the_host_is_an_error_not_every_interface() -> None:
    assert "server.host: environment variable HOST_VAR is not set" in refused(
        "server: {host: '${HOST_VAR}'}\n" + UP % "" + MODELS)
    cfg = parse_config("server: {api_keys: ['${KEY_VAR}']}\n" + UP % "" + MODELS, env={})
    assert cfg.server.api_keys == ()  # an unset client key still means that key does not exist


def test_keys_lose_the_line_break_around_them_and_refuse_one_inside() -> None:
    cfg = parse_config("server: {api_keys: ['${CK}']}\n" + UP % ", api_key: '${UK}'" + MODELS,
                       env={"UK": "sk-provider-123\n", "CK": " sk-client-456\r\n"})
    assert cfg.providers["up"].api_key == "sk-provider-123" and cfg.server.api_keys[0].key == "sk-client-456"
    message = refused(UP % ", api_key: '${UK}'" + MODELS, env={"UK": "sk-pro\nvider-123"})
    assert "providers.up.api_key: holds a control character" in message and "vider-123" not in message


@pytest.mark.parametrize(("headers", "where"), [
    ('{X-A: "a\\nb-secret"}', "providers.up.headers.X-A"),
    ("{123: abc}", "providers.up.headers"),
    ("{'X A': abc}", "providers.up.headers"),
])
def test_provider_headers_are_names_and_one_line_values(headers: str, where: str) -> None:
    message = refused(UP % f", headers: {headers}" + MODELS)
    assert where in message and "secret" not in message


def test_a_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"# caf\xe9\n" + (UP % "" + MODELS).encode())
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_config(path)


def test_serve_refuses_a_port_past_the_range(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(UP % "" + MODELS)
    proc = subprocess.run([sys.executable, "-m", "router", "serve", "-c", str(path), "--port", "70000"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    assert proc.returncode == 2 and "--port: '70000' is not a port number" in proc.stderr


def test_a_key_in_the_wrong_shape_is_not_quoted() -> None:
    """A reload's answer and the log carry this message: a key written as `{bob: KEY}` or read by YAML as a number
    is named by its place, never shown."""
    message = refused("server:\n  api_keys: [{bob: NEWCLIENTKEY-abcdef123}]\n"
                      + UP % ", api_key: 12345678901234567890" + MODELS)
    assert "server.api_keys[0]" in message and "providers.up.api_key: expected string, got int" in message
    assert "NEWCLIENTKEY" not in message and "1234567890" not in message


async def test_a_password_in_a_base_url_is_never_shown(fakes, router) -> None:
    import aiohttp

    up = await fakes("up")
    text = (UP % "").replace("'http://127.0.0.1:9/v1'", f"'http://user:URLSECRET%40x@{up.url[7:]}'") + MODELS
    cfg = parse_config(text)
    provider = cfg.providers["up"]
    assert "URLSECRET" not in provider.shown_url and provider.shown_url.startswith("http://user:[redacted]@")
    assert {"URLSECRET%40x", "URLSECRET@x"} <= set(provider.secrets)
    r = await router(text)
    async with aiohttp.ClientSession() as s, s.get(r.url + "/ui/api/state") as resp:
        body = await resp.text()
    assert resp.status == 200 and "user:[redacted]@" in body and "URLSECRET" not in body


async def test_the_basic_token_a_base_url_password_is_sent_as_is_never_shown(fakes, router) -> None:
    """An upstream that echoes the Authorization header it got echoes `Basic base64(user:password)`: that token
    is the password too (it reached the client in the router's 502 message)."""
    import base64

    import openai

    from tests.fakes.openai_upstream import Step

    up = await fakes("up")
    token = base64.b64encode(b"user:URLSECRET@x").decode()
    up.push(Step(status=500, json={"error": {"message": f"bad credentials: Basic {token}"}}))
    url = f"'http://user:URLSECRET%40x@{up.url[7:]}'"
    text = (UP % ", retries: 0").replace("'http://127.0.0.1:9/v1'", url) + MODELS
    r = await router(text)
    with pytest.raises(openai.APIStatusError) as info:
        await r.client().chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert up.requests[0].headers["Authorization"] == f"Basic {token}"
    assert token not in str(info.value.body) and token not in info.value.message


@pytest.mark.parametrize("url", ["htps://user:URLSECRET@lab.internal/v1", "user:URLSECRET@lab.internal/v1"])
def test_a_refused_base_url_is_shown_without_its_password(url: str) -> None:
    """The error of a base_url that is not http(s) quoted it whole (at start-up, and in a reload's 400 answer, its
    log line and the console's log, where only the old config's secrets were scrubbed)."""
    message = refused((UP % "").replace("'http://127.0.0.1:9/v1'", repr(url)) + MODELS)
    assert "URLSECRET" not in message and "user:[redacted]@lab.internal/v1" in message


@pytest.mark.parametrize("url", ["https://lab.internal/v1?key=URLSECRET", "https://lab.internal/v1#URLSECRET",
                                 "http://user:URLSECRET@lab.internal/v1?key=URLSECRET"])
def test_a_base_url_with_a_query_is_refused_without_showing_it(url: str) -> None:
    """A key put in base_url's query (`?key=...`) was accepted, then every request went to `...?key=KEY/chat/
    completions` (the paths are appended): refused at load, the query never quoted."""
    message = refused((UP % "").replace("'http://127.0.0.1:9/v1'", repr(url)) + MODELS)
    assert "URLSECRET" not in message and ("lab.internal/v1?[redacted]" in message or "v1#[redacted]" in message)
    assert "query or fragment" in message


def test_check_shows_a_base_url_without_its_password(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text((UP % "").replace("'http://127.0.0.1:9/v1'", "'http://user:URLSECRET@127.0.0.1:9/v1'") + MODELS)
    proc = subprocess.run([sys.executable, "-m", "router", "check", "-c", str(path)], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, check=False)
    assert "user:[redacted]@127.0.0.1:9/v1" in proc.stdout and "URLSECRET" not in proc.stdout + proc.stderr


def test_command_line_numbers_are_checked_before_use() -> None:
    """`agentgate engine --port 99999` listened on 34463 (wrapped), and --cache-bytes 1e999 was a traceback."""
    import argparse

    from engines.worker.cli import parse_size, port

    for bad in ("99999", "-5", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            port(bad)
    for bad in ("1e999", "inf", "9e30g"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_size(bad)
    assert port("0") == 0 and parse_size("2GiB") == 2 << 30


def test_a_config_nested_too_deep_is_one_line() -> None:
    assert "nested too deep" in refused("a: " + "[" * 2000 + "]" * 2000 + "\n" + UP % "" + MODELS)


@pytest.mark.parametrize(("repair", "where", "allowed"), [
    ("{format: hermess}", "models[0].repair.format", "'hermes'"),
    ("{format: ''}", "models[0].repair.format", "'auto'"),
])
def test_a_repair_setting_is_checked_at_load_with_the_allowed_values(repair: str, where: str, allowed: str) -> None:
    """A typo in a repair setting was accepted, then every request declaring tools for that model was a 500."""
    message = refused(UP % "" + f"models:\n  - {{name: m, provider: up, repair: {repair}}}\n")
    assert f"{where}: " in message and allowed in message
    for good in ("auto", "hermes"):  # the ones the repair library knows pass
        parse_config(UP % "" + f"models:\n  - {{name: m, provider: up, repair: {{format: {good}}}}}\n", env={})


def test_an_error_in_a_replica_names_the_replica() -> None:
    message = refused(UP % "" + "models:\n  - name: pool\n    model: q\n"
                      "    replicas: [{provider: up}, {provider: mac2}]\n")
    assert "models[0].replicas[1].provider: unknown provider 'mac2'" in message
    single = refused(UP % "" + "models:\n  - {name: m, provider: nope}\n")
    assert "models[0].provider: unknown provider 'nope'" in single


def _readme_yaml() -> list[str]:
    import re

    return re.findall(r"^```yaml\n(.*?)^```", (ROOT / "README.md").read_text(), re.S | re.M)


def test_the_readme_config_examples_validate() -> None:
    """Every YAML example of the README loads as shown: a whole document, or model entries, which are checked with
    the first example's providers."""
    import yaml

    blocks = _readme_yaml()
    assert blocks, "the README has no YAML examples"
    base = yaml.safe_load(blocks[0])
    for block in blocks:
        doc = yaml.safe_load(block)
        if isinstance(doc, list):
            doc = {"providers": base["providers"], "models": doc}
        parse_config(yaml.safe_dump(doc), source="README.md", env={})


VARS = ("server:\n  port: ${AG_PORT:-9000}\n  max_body_mb: \"${AG_BODY_MB:-32}\"\n  access_log: ${AG_LOG:-false}\n"
        "  capture: ${AG_CAPTURE:-true}\n" + UP % ", retries: '${AG_RETRIES:-3}'" + MODELS)


def test_a_variable_can_give_a_number_or_a_boolean() -> None:
    """`${VAR}` in a number or boolean setting was refused ("expected integer, got str"), default or not."""
    cfg = parse_config(VARS, env={})
    assert (cfg.server.port, cfg.server.max_body_bytes, cfg.server.access_log) == (9000, 32 * 1024 * 1024, False)
    assert cfg.server.capture is not None and cfg.providers["up"].policy.retries == 3
    cfg = parse_config(VARS, env={"AG_PORT": "9123", "AG_BODY_MB": "16.5", "AG_LOG": "true", "AG_CAPTURE": "false",
                                  "AG_RETRIES": "0"})
    assert (cfg.server.port, cfg.server.max_body_bytes, cfg.server.access_log) == (9123, int(16.5 * 1024 * 1024), True)
    assert cfg.server.capture is None and cfg.providers["up"].policy.retries == 0
    # a string setting stays the text the variable holds, even when it reads as a number
    cfg = parse_config("server: {host: '${AG_HOST}'}\n" + UP % ", api_key: '${AG_KEY}'" + MODELS,
                       env={"AG_HOST": "127.0.0.1", "AG_KEY": "12345678"})
    assert cfg.server.host == "127.0.0.1" and cfg.providers["up"].api_key == "12345678"


def test_an_error_in_an_expanded_setting_shows_the_expanded_value_never_a_key() -> None:
    message = refused(VARS, env={"AG_PORT": "80x80"})
    assert "server.port: expected integer, got str '80x80'" in message and "${" not in message
    assert "server.port: environment variable AG_P is not set" in refused(
        "server: {port: '${AG_P}'}\n" + UP % "" + MODELS)
    message = refused(UP % ", api_key: '${AG_KEY}'" + MODELS.replace("provider: up", "provider: up, preload: x"),
                      env={"AG_KEY": "sk-secret-9876"})
    assert "sk-secret" not in message
    message = refused("server: {api_keys: [{key: '${CK}', name: 5}]}\n" + UP % "" + MODELS, env={"CK": "sk-cl-555"})
    assert "sk-cl-555" not in message


@pytest.mark.parametrize(("model", "said"), [
    ("/no/such/model", "no such model folder: /no/such/model"),
    ("./no-such-dir", "no such model folder: ./no-such-dir"),
    ("tiny:nope", "tiny:demo, tiny:random[:seed] or tiny:script=<text>"),
    ("tiny:random:x", "tiny:demo, tiny:random[:seed] or tiny:script=<text>"),
])
def test_engine_refuses_a_model_it_cannot_have_in_one_line(model: str, said: str) -> None:
    """`agentgate engine --model /no/such/model` printed a traceback ending in the hub's repo-id message."""
    proc = subprocess.run([sys.executable, "-m", "router", "engine", "--model", model, "--port", "0"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and said in proc.stderr, proc.stderr
    assert "Repo id" not in proc.stderr and "listening" not in proc.stderr


def test_check_says_which_engines_cannot_start(tmp_path: Path) -> None:
    """`check` listed engine entries that cannot start here as plain "(mlx engine)", while the running router's
    /v1/models marked them unavailable with a reason."""
    path = tmp_path / "c.yaml"
    path.write_text("models:\n  - {name: nopath, engine: mlx, model: /no/such/path}\n"
                    "  - {name: hub, engine: mlx, model: mlx-community/No-Such-Model-4bit}\n"
                    "  - {name: badtiny, engine: mlx, model: 'tiny:nope'}\n"
                    "  - {name: demo, engine: mlx, model: 'tiny:demo'}\n"
                    "  - {name: smart, fallbacks: [nopath]}\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    proc = subprocess.run([sys.executable, "-m", "router", "check", "-c", str(path)], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, check=False, env=env)
    rows = {line.split()[0]: line for line in proc.stdout.split("\nmodels:\n")[1].split("\n\n")[0].splitlines()}
    assert "UNAVAILABLE: model path '/no/such/path' does not exist" in rows["nopath"]
    assert "UNAVAILABLE" in rows["hub"] and "HF_HUB_OFFLINE" in rows["hub"]
    assert "UNAVAILABLE" in rows["badtiny"] and "tiny:demo" in rows["badtiny"]
    assert "UNAVAILABLE" not in rows["demo"] and "UNAVAILABLE" in rows["smart"]
    assert proc.returncode == 0, proc.stdout + proc.stderr  # one model is available
    path.write_text("models:\n  - {name: nopath, engine: mlx, model: /no/such/path}\n")
    proc = subprocess.run([sys.executable, "-m", "router", "check", "-c", str(path)], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, check=False, env=env)
    assert proc.returncode == 1 and "no model is available" in proc.stdout


SECTION_KEY = "sk-provider-SECRET-0123456789abcdef"


@pytest.mark.parametrize("text", [
    # providers written as a list (LiteLLM's habit)
    "providers:\n  - {name: openai, type: openai, base_url: 'https://api.openai.com/v1',"
    " api_key: '${OPENAI_API_KEY}'}\nmodels: [{name: m, provider: openai}]\n",
    # one provider written as a list item
    "providers:\n  openai:\n    - {type: openai, base_url: 'https://api.openai.com/v1', api_key: '${OPENAI_API_KEY}'}\n"
    "models: [{name: m, provider: openai}]\n",
    # the server section written as a list
    "server:\n  - api_keys: ['${OPENAI_API_KEY}']\n",
    # a literal key in a provider's headers, the section misplaced
    "providers:\n  - {name: a, type: openai, headers: {Authorization: 'Bearer sk-provider-SECRET-0123456789abcdef'}}\n",
    # a mapping where one of a few values goes (an enum), holding a token under a name of its own
    "models: [{name: m, engine: {model: x, token: '${OPENAI_API_KEY}'}}]\n",
    # a value no schema check quotes, but a later check does: a key where a provider's name goes
    "providers:\n  openai: {type: openai, base_url: 'https://api.openai.com/v1', api_key: '${OPENAI_API_KEY}'}\n"
    "models: [{name: m, provider: '${OPENAI_API_KEY}'}]\n",
])
def test_an_error_on_a_section_never_quotes_a_key_it_holds(text: str) -> None:
    """A section in the wrong shape is named by its type, never quoted: it holds the keys expanded into it."""
    message = refused(text, env={"OPENAI_API_KEY": SECTION_KEY})
    assert SECTION_KEY not in message and "0123456789abcdef" not in message
    assert "invalid config" in message


def test_a_quoted_container_is_named_by_its_type() -> None:
    assert "server: expected object, got list\n" in refused("server:\n  - api_keys: [abc]\n") + "\n"
    assert "models[0].engine: expected one of 'mlx', got dict" in refused(
        "models: [{name: m, engine: {model: x}}]\n")


ENGINE = "models:\n  - {name: local, engine: mlx, model: 'tiny:demo', engine_args: %s}\n"


@pytest.mark.parametrize(("args", "said"), [
    ('["--max-batch", "0"]', "argument --max-batch: '0' is not an integer of at least 1"),
    ('["--max-batchs", "8"]', "unrecognized arguments: --max-batchs 8"),
    ('["--blas", "fast"]', "argument --blas: invalid choice: 'fast'"),
    ('["--tool-format", "qwen"]', "unknown --tool-format 'qwen'"),
    ('["--cache-bytes"]', "argument --cache-bytes: expected one argument"),
    ('["--port", "9000"]', "--socket and --port are chosen by the router"),
    ('["--host", "0.0.0.0"]', "--host is chosen by the router"),
    ('["--model", "other"]', "--model and --name come from the entry"),
])
def test_engine_args_the_worker_refuses_are_refused_at_load(args: str, said: str) -> None:
    """`check` said ok for engine_args the worker exits on at launch (and a reload to them restarted a running
    engine into that failure): the model was down until the file was fixed."""
    assert f"models[0].engine_args: {said}" in refused(ENGINE % args)


def test_engine_args_the_worker_takes_load() -> None:
    args = '["--max-context", "16384", "--kv-dir", "/tmp/kv", "--no-constrain", "--cache-bytes", "4GiB"]'
    assert parse_config(ENGINE % args).models[0].engine is not None
