"""`server.host` is a host name or an IP address, checked at load: a URL, a `host:port` or a bracketed IPv6 address
loaded, `check` said ok, the start-up refusal called it "reachable from other machines" (it is no loopback name),
and with a key the bind failed only at start ("name or service not known")."""

from __future__ import annotations

import pytest

from router.config import ConfigError, parse_config

REST = "providers:\n  up: {type: openai, base_url: 'http://127.0.0.1:9/v1'}\nmodels:\n  - {name: m, provider: up}\n"


def loaded(host: str) -> str:
    return parse_config(f"server: {{host: '{host}'}}\n" + REST, env={}).server.host


@pytest.mark.parametrize(("host", "hint"), [
    ("http://127.0.0.1", "'127.0.0.1'"),
    ("https://gateway.example:8443/v1", "'gateway.example'"),
    ("127.0.0.1:8080", "server.port"),
    ("localhost:8080", "server.port"),
    ("[::1]", "'::1'"),
    (" 127.0.0.1", "space"),
    ("127.0.0.1 ", "space"),
    ("0.0.0.0/0", "path"),
    ("fe80::1::2", "IP address"),
])
def test_a_host_that_is_no_host_is_refused_at_load(host: str, hint: str) -> None:
    with pytest.raises(ConfigError) as err:
        loaded(host)
    message = str(err.value)
    assert "server.host: " in message and hint in message, message


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0", "::", "::1", "localhost", "mac2.local", "fe80::1%eth0",
                                  "10.0.0.5"])
def test_host_names_and_addresses_load(host: str) -> None:
    assert loaded(host) == host


def test_a_host_from_the_environment_is_checked_too() -> None:
    with pytest.raises(ConfigError, match=r"server\.host: .*server\.port"):
        parse_config("server: {host: '${AG_HOST}'}\n" + REST, env={"AG_HOST": "0.0.0.0:9000"})
