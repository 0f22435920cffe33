"""What a config allows but an operator most likely did not mean is said once it loads (a warning in the log, or on
stderr before logging is set up), naming the setting and never a key or credential: a client key's `models:` naming
no model of the config (a typo: that key gets 403 from the model it meant) or none at all, `server.admin_auth: false`
on a bind other machines reach (the console and the operator routes answer them without a key), and a provider's
credentials sent over plain http:// to another machine."""

from __future__ import annotations

import logging

import pytest

from router.config import parse_config
from router.config.notices import config_warnings

KEY = "sk-client-typo-key-0451"
PROVIDERS = "providers:\n  up: {type: openai, base_url: 'http://127.0.0.1:9/v1'}\n"
MODELS = """models:
  - {name: coder, provider: up, aliases: [gpt-4o]}
  - {name: 'openai/*', provider: up}
  - {name: smart, fallbacks: [coder]}
"""


def keyed(models: str, server: str = "") -> str:
    return f"server: {{api_keys: [{{key: {KEY}, name: ci, models: {models}}}]{server}}}\n" + PROVIDERS + MODELS


def said(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "agentgate" and r.levelno == logging.WARNING]


def test_a_key_naming_an_unknown_model_is_a_warning_naming_the_key_and_the_name(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="agentgate"):
        config = parse_config(keyed("[coder, codr]"), env={})
    assert config.server.api_keys[0].models == frozenset({"coder", "codr"})  # loaded: a warning, not a refusal
    lines = said(caplog)
    assert len(lines) == 1 and "server.api_keys" in lines[0] and "'ci'" in lines[0], lines
    assert "'codr'" in lines[0] and "403" in lines[0] and "'coder'" not in lines[0]
    assert all(KEY not in line for line in caplog.messages)


@pytest.mark.parametrize("name", ["coder", "gpt-4o", "openai/*", "openai/gpt-4o-mini", "smart"])
def test_names_the_router_serves_are_no_warning(name: str) -> None:
    assert config_warnings(parse_config(keyed(f"['{name}']"), env={})) == []


@pytest.mark.parametrize("name", ["openai/", "openai", "gpt-4", "Coder"])
def test_names_no_entry_takes_are_warned_of(name: str) -> None:
    [line] = config_warnings(parse_config(keyed(f"['{name}']"), env={}))
    assert repr(name) in line


def test_a_key_without_models_or_a_string_key_is_no_warning() -> None:
    text = f"server: {{api_keys: [{KEY}, {{key: sk-other-key-0452, name: all}}]}}\n" + PROVIDERS + MODELS
    assert config_warnings(parse_config(text, env={})) == []


@pytest.mark.parametrize(("host", "keys", "admin_auth", "warned"), [
    ("0.0.0.0", True, False, True),
    ("192.0.2.7", True, False, True),
    ("127.0.0.1", True, False, False),  # only this machine reaches it
    ("localhost", True, False, False),
    ("0.0.0.0", True, True, False),
    ("0.0.0.0", False, False, False),  # no key at all: allow_unauthenticated's refusal and warning say it
])
def test_admin_auth_off_on_a_network_bind_is_a_warning(host: str, keys: bool, admin_auth: bool,
                                                       warned: bool) -> None:
    key = f"api_keys: [{KEY}], " if keys else "allow_unauthenticated: true, "
    text = f"server: {{host: '{host}', {key}admin_auth: {str(admin_auth).lower()}}}\n" + PROVIDERS + MODELS
    lines = config_warnings(parse_config(text, env={}))
    assert bool(lines) == warned, lines
    if warned:
        assert "server.admin_auth: false" in lines[0] and repr(host) in lines[0] and "/ui" in lines[0]
        assert KEY not in lines[0]


def test_a_key_limited_to_no_model_is_a_warning() -> None:
    """`models: []` leaves a key nothing: no model (403 on each) and no operator route (those need an unrestricted
    key)."""
    [line] = config_warnings(parse_config(keyed("[]"), env={}))
    assert "'ci'" in line and "models: []" in line and KEY not in line


async def test_a_reload_says_it_too(fakes, served, access_lines) -> None:
    """A reload's file is loaded in a worker thread: its warning reaches the log as the others do."""
    up = await fakes()
    text = f"server: {{api_keys: [{{key: {KEY}, name: ops}}, {{key: sk-ci-key-0453, name: ci, models: %s}}]}}\n" + \
        f"providers:\n  up: {{type: openai, base_url: '{up.url}'}}\n" + MODELS
    r = await served(text % "[coder]")
    assert not [d for d in access_lines.docs() if d["level"] == "warning"]
    r.write(text % "[coder, codr]")
    status, body = await r.reload(KEY)
    assert status == 200, body
    [warned] = [d for d in access_lines.docs() if d["level"] == "warning" and "'codr'" in d["msg"]]
    assert "'ci'" in warned["msg"] and KEY not in str(access_lines.lines) and "sk-ci-key" not in warned["msg"]


@pytest.mark.parametrize(("url", "extra", "warned"), [
    ("http://api.example.com/v1", ", api_key: sk-provider-clear-0454", True),
    ("http://10.0.0.5:8000/v1", ", headers: {X-Gateway-Token: gw-token-clear-0455}", True),
    ("http://user:pw-clear-0456@10.0.0.5:8000/v1", "", True),
    ("https://api.example.com/v1", ", api_key: sk-provider-clear-0454", False),
    ("http://127.0.0.1:8000/v1", ", api_key: sk-provider-clear-0454", False),  # never leaves this machine
    ("http://localhost:8000/v1", ", api_key: sk-provider-clear-0454", False),
    ("http://10.0.0.5:8000/v1", ", api_key: EMPTY", False),  # a placeholder a local server takes
    ("http://10.0.0.5:8000/v1", ", headers: {X-Title: agentgate}", False),  # public by nature
])
def test_a_credential_sent_unencrypted_beyond_this_machine_is_a_warning(url: str, extra: str, warned: bool) -> None:
    text = f"providers:\n  up: {{type: openai, base_url: '{url}'{extra}}}\nmodels:\n  - {{name: m, provider: up}}\n"
    lines = config_warnings(parse_config(text, env={}))
    assert bool(lines) == warned, lines
    if warned:
        assert "providers.up" in lines[0] and "http://" in lines[0] and "https://" in lines[0]
        assert "clear-04" not in lines[0] and "pw-" not in lines[0]
