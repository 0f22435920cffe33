"""What a valid config allows but an operator most likely did not mean: said once it loads, never refused (each is
a working config someone may have chosen), naming the setting and never a key."""

from __future__ import annotations

from urllib.parse import urlsplit

from .auth import is_loopback, open_console_warning
from .model import MIN_SECRET, PUBLIC_HEADERS, ClientKey, Config, ProviderConfig


def config_warnings(config: Config) -> list[str]:
    """The warnings `config` deserves, one line each."""
    console = open_console_warning(config.server)
    return [*unknown_key_models(config), *keys_without_models(config), *([console] if console else []),
            *weak_client_keys(config), *clear_text_credentials(config)]


MIN_CLIENT_KEY = 16  # characters: a shorter client key is guessed
PLACEHOLDER_KEYS = frozenset({"sk-1234", "changeme", "password", "test", "secret", "sk-xxx"})
MIN_KEY_VARIETY = 6  # distinct characters: fewer is a placeholder padded out ("sk-xxxxxxxxxxxxxxxx")


def weak_client_keys(config: Config) -> list[str]:
    """One line per client key anyone could guess on a bind other machines reach (on loopback only this machine
    connects). Its place in the config is named, never the key nor anything of it (not even which kind of weak key
    it is: that would say what it is among a handful of placeholders)."""
    if is_loopback(config.server.host):
        return []
    return [_weak_line(key, config.server.host) for key in config.server.api_keys if weak_key(key.key)]


def _weak_line(key: ClientKey, host: str) -> str:
    return (f"{key.where or 'server.api_keys'} (client key {key.name!r}): this key is easily guessed (under "
            f"{MIN_CLIENT_KEY} characters, a well-known placeholder or a run of few characters) and {host!r} is "
            "reachable from other machines: anyone who guesses it can use every configured provider. Use a long "
            "random key (e.g. `openssl rand -hex 32`), or listen on 127.0.0.1")


def weak_key(key: str) -> bool:
    """Whether a client key is easily guessed: short, a well-known placeholder, or a handful of characters
    repeated."""
    return len(key) < MIN_CLIENT_KEY or key.lower() in PLACEHOLDER_KEYS or len(set(key)) < MIN_KEY_VARIETY


def clear_text_credentials(config: Config) -> list[str]:
    """One line per provider sending its credentials over plain http:// to another machine (an `http` written for
    `https`, or a LAN server given a real key): anyone on the way reads them. Settings named, never a value."""
    lines = []
    for p in config.providers.values():
        host = urlsplit(p.base_url).hostname or ""
        given = _credentials_given(p)
        if p.base_url.lower().startswith("http://") and given and not is_loopback(host):
            lines.append(f"providers.{p.name}: base_url is http:// to {host!r}, another machine, so {', '.join(given)} "
                         "cross the network unencrypted: use https:// (or a server on this machine)")
    return lines


def _credentials_given(p: ProviderConfig) -> list[str]:
    """The settings of `p` that hold a credential (`ProviderConfig.secrets`: no placeholder, no public header)."""
    authority = p.base_url.partition("://")[2].partition("/")[0]
    given = ["api_key"] if len(p.api_key or "") >= MIN_SECRET else []
    given += [f"headers.{k}" for k, v in p.headers if k.lower() not in PUBLIC_HEADERS and len(v) >= MIN_SECRET]
    return given + (["the base_url's user@ credentials"] if "@" in authority else [])


def keys_without_models(config: Config) -> list[str]:
    """One line per client key limited to no model (`models: []`): it may use nothing, neither a model nor an
    operator route (those need a key without `models:`)."""
    return [f"server.api_keys: client key {key.name!r} has models: [], so it may use no model (403 on every request); "
            "leave models: out to let it use every model"
            for key in config.server.api_keys if key.models == frozenset()]


def unknown_key_models(config: Config) -> list[str]:
    """One line per client key whose `models:` names something no model, alias or wildcard entry of `config` takes
    (a typo: the key gets 403 from the model it meant). Not refused: a key may list a model the config gains on a
    later reload, as a router's allowlist may be written ahead of its models."""
    exact = {n for m in config.models for n in (m.name, *m.aliases)}  # (a wildcard entry's own name included)
    prefixes = [m.name[:-1] for m in config.models if m.wildcard]
    return [_unknown_line(key, unknown) for key in config.server.api_keys
            if (unknown := sorted(n for n in key.models or () if not _served(n, exact, prefixes)))]


def _served(name: str, exact: set[str], prefixes: list[str]) -> bool:
    """Whether a request for `name` reaches an entry, as the routing table looks names up."""
    return name in exact or any(name.startswith(p) and len(name) > len(p) for p in prefixes)


def _unknown_line(key: ClientKey, unknown: list[str]) -> str:
    names = ", ".join(map(repr, unknown))
    return (f"server.api_keys: the models of client key {key.name!r} name {names}, which no model, alias or wildcard "
            "of this config takes (a typo? the model meant answers this key 403)")
