"""A local engine is given credentials too: a token in its `env` (HF_TOKEN), a key on its command line
(`--api-key` of vLLM or llama-server). An engine that prints them (vLLM logs its arguments as it starts; a failing
one prints its usage with them) had them in the client's 503, `/ready`, the console and the log."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import aiohttp
import pytest

from router.config import parse_config
from router.config.model import all_secrets
from router.logs import keep_out_of_logs, setup_logging

FLAG_KEY = "engine-flag-key-Zq8Wm3Xv7Bn1Lp4Rt6"
ENV_TOKEN = "engine-env-token-abcdefghijklmnop"
SAID = "import sys, os; print('bad arguments', sys.argv[1:], os.environ['HF_TOKEN'], file=sys.stderr); sys.exit(2)"


def _config() -> str:
    command = json.dumps([sys.executable, "-c", SAID, "--port", "1", "--api-key", FLAG_KEY])
    return f"""
models:
  - {{name: local, command: {command}, env: {{HF_TOKEN: {ENV_TOKEN}, CUDA_VISIBLE_DEVICES: '0'}},
      start_timeout: 20}}
"""


def _leaks(text: str) -> list[str]:
    return [s for s in (FLAG_KEY, ENV_TOKEN, FLAG_KEY[-12:], ENV_TOKEN[-12:]) if s in text]


def test_an_engines_credentials_are_its_providers_secrets() -> None:
    config = parse_config(_config(), env={})
    engine = next(p for p in config.providers.values() if p.type == "engine")
    assert set(engine.secrets) == {FLAG_KEY, ENV_TOKEN}  # not the device number, nor the port
    one_arg = parse_config(_config().replace(f'"--api-key", "{FLAG_KEY}"', f'"--api-key={FLAG_KEY}"'), env={})
    assert FLAG_KEY in next(p for p in one_arg.providers.values() if p.type == "engine").secrets


async def test_an_engine_that_prints_its_credentials_does_not_show_them(router) -> None:
    r = await router(_config())
    body = {"model": "local", "messages": [{"role": "user", "content": "x"}]}
    async with aiohttp.ClientSession() as s:
        async with s.post(r.url + "/v1/chat/completions", json=body) as resp:
            answer = await resp.text()
            assert resp.status == 503 and "bad arguments" in answer and "[redacted]" in answer, answer
            assert not _leaks(answer), answer
        for path in ("/ready", "/ui/api/state", "/ui/api/log"):
            async with s.get(r.url + path) as resp:
                text = await resp.text()
                assert resp.status == 200 and "bad arguments" in text, (path, text[:300])
                assert not _leaks(text), (path, text)


async def test_a_secret_sent_as_a_request_id_is_not_in_the_consoles_requests(router) -> None:
    """The router keeps a request id holding a client key out (`api/common.py`); one holding another configured
    secret (here an engine's) is what the client chose, but the console does not show it."""
    r = await router(_config())
    async with aiohttp.ClientSession() as s:
        async with s.post(r.url + "/v1/chat/completions", headers={"x-request-id": FLAG_KEY},
                          json={"model": "nope", "messages": []}) as resp:
            assert resp.status in (400, 404)
        async with s.get(r.url + "/ui/api/requests") as resp:
            text = await resp.text()
            assert resp.status == 200 and "[redacted]" in text and not _leaks(text), text


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    setup_logging("text", "info")
    root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
    yield stream
    keep_out_of_logs(())
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize("fmt", ["text", "json"])
async def test_the_log_never_holds_a_configured_secret(router, log_stream, fmt) -> None:
    """Whatever logs it (here the engine's own output, relayed line by line), the log's lines are written without
    the config's secrets: client keys, providers' keys, engines' credentials."""
    from router.logs import JsonFormatter, TextFormatter

    logging.getLogger().handlers[0].setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    config = parse_config(_config(), env={})
    keep_out_of_logs(all_secrets(config))
    r = await router(_config())
    async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/chat/completions", json={
            "model": "local", "messages": [{"role": "user", "content": "x"}]}) as resp:
        await resp.read()
    logging.getLogger("agentgate").warning("quoted: %s", json.dumps({"k": FLAG_KEY}))
    for handler in logging.getLogger().handlers:
        handler.flush()
    written = log_stream.getvalue()
    assert "bad arguments" in written and "quoted" in written, written[-2000:]
    assert not _leaks(written), written[-2000:]


def test_a_short_client_key_is_not_looked_for_in_the_log() -> None:
    config = parse_config(_config() + "server: {api_keys: [test, sk-client-long-enough-0001]}\n", env={})
    assert "sk-client-long-enough-0001" in all_secrets(config) and "test" not in all_secrets(config)
