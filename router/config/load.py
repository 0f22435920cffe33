"""Read, expand, validate and resolve a config file into `model.Config`.

Errors name the file, the path inside the document and what was expected.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import logging
import math
import os
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import yaml

from engines.supervisor.types import EngineSpec
from engines.worker.cli import engine_args_problem
from engines.worker.settings import WorkerSettings
from repair.formats import FAMILIES

from .key_shapes import without_key_shapes
from .model import (
    ANTHROPIC_BASE_URL,
    PUBLIC_HEADERS,
    CaptureConfig,
    ClientKey,
    Config,
    EnginesConfig,
    ModelConfig,
    Policy,
    ProviderConfig,
    RepairPolicy,
    ServerConfig,
    Target,
    engine_credentials,
    engine_provider,
    shown_url,
)
from .notices import config_warnings

log = logging.getLogger("agentgate")

_ENGINE_VARS = frozenset({"PORT", "MODEL"})
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
Missing = dict[tuple[str | int, ...], list[str]]  # where in the document -> the unset variables named there


class ConfigError(Exception):
    """A config that cannot be used; the message says where and why."""


@cache
def schema() -> dict[str, Any]:
    text = resources.files("router.config").joinpath("schema.json").read_text()
    return dict(json.loads(text))


def _is_integer(checker: Any, value: object) -> bool:
    """An integer is an int: JSON Schema's own reading also takes 5.0, which a deque's maxlen or a port refuses."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(checker: Any, value: object) -> bool:
    """A number is finite: YAML's .inf and .nan would pass every bound a schema states, and break what uses them."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


_TYPES = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine_many({"integer": _is_integer, "number": _is_number})
_Validator = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
    jsonschema.Draft202012Validator, type_checker=_TYPES)


def _allowed(err: jsonschema.ValidationError) -> list[str]:
    """The keys the object `err` refused a key of takes: its schema's own, or those of the definition it refers to
    (`defaults:` is the provider policy's, `$ref` and `unevaluatedProperties`)."""
    at = err.schema if isinstance(err.schema, Mapping) else {}
    ref = at.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        at = schema()["$defs"].get(ref.removeprefix("#/$defs/"), {})
    return list(at.get("properties", {}))


def _where(path: list[str | int] | Any) -> str:
    parts = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
    return parts.lstrip(".") or "<document root>"


def _expand(node: Any, env: Mapping[str, str], path: tuple[str | int, ...], missing: Missing,
            expanded: set[tuple[str | int, ...]]) -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string; record unset variables by path, and the paths of the
    strings that held a variable (`expanded`)."""
    if isinstance(node, str):
        if "${" not in node:
            return node
        unset: list[str] = []

        in_command = "command" in path

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if in_command and name in _ENGINE_VARS:  # substituted by the supervisor when it starts the command
                return m.group(0)
            value = env.get(name)
            if value:
                return value
            if default is not None:
                return default
            unset.append(name)
            return ""

        out = _ENV.sub(sub, node)
        if unset:
            missing[path] = unset
        if out != node:
            expanded.add(path)
        return out
    if isinstance(node, dict):
        return {k: _expand(v, env, (*path, str(k)), missing, expanded) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand(v, env, (*path, i), missing, expanded) for i, v in enumerate(node)]
    return node


def _typed(doc: Any, path: tuple[str | int, ...]) -> bool:
    """Read the expanded string at `path` as YAML reads a plain value (`9000` a number, `true` a boolean), where
    the schema wants something other than a string there; whether that gave a number or a boolean."""
    *parents, last = path
    node = doc
    try:
        for key in parents:
            node = node[key]
        value = yaml.safe_load(node[last])
    except (LookupError, TypeError, yaml.YAMLError):
        return False
    if not isinstance(value, (bool, int, float)):
        return False
    node[last] = value
    return True


def _errors(doc: Any, expanded: set[tuple[str | int, ...]]) -> list[jsonschema.ValidationError]:
    """The schema's errors, after reading as YAML would each expanded string that a number or a boolean is
    expected in place of (the file's `port: ${PORT:-9000}` is a string until the environment's text is read)."""
    validator = _Validator(schema())
    tried: set[tuple[str | int, ...]] = set()
    while True:
        errors = list(validator.iter_errors(doc))
        retype = {path for e in errors if (path := tuple(e.absolute_path)) in expanded and path not in tried
                  and isinstance(e.instance, str)}
        if not retype:
            return sorted(errors, key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
        tried |= retype
        if not [path for path in retype if _typed(doc, path)]:
            return sorted(errors, key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))


def _missing_under(missing: Missing, prefix: tuple[str | int, ...]) -> list[str]:
    names: list[str] = []
    for path, vars_ in missing.items():
        if path[: len(prefix)] == prefix:
            names.extend(v for v in vars_ if v not in names)
    return names


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: cannot read config: not UTF-8 text (byte {exc.start})") from None
    return parse_config(text, source=str(p), env=env)


def parse_config(text: str, *, source: str = "<memory>", env: Mapping[str, str] | None = None) -> Config:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)  # (it may quote a token: `*sk-...` an alias's name)
        raise ConfigError(without_key_shapes(f"{source}:{where}: invalid YAML: {problem}")) from None
    except RecursionError:
        raise ConfigError(f"{source}: invalid config: nested too deep") from None
    if doc is None:
        doc = {}
    environ = os.environ if env is None else env
    try:
        config = _resolve(doc, environ, source)
    except ConfigError as exc:  # its message goes to stderr, a reload's answer and the log: never with a key, nor
        # with a value shaped like one (a key pasted into the wrong setting, or on a line of its own: a setting's name)
        raise ConfigError(without_key_shapes(_scrub(str(exc), _doc_secrets(doc, environ)))) from None
    for line in config_warnings(config):  # (before logging is set up, on stderr: `check`, `serve`'s start)
        log.warning("%s: %s", source, line)
    return config


def _resolve(raw: Any, env: Mapping[str, str], source: str) -> Config:
    """The config the parsed document `raw` states, its variables expanded from `env`."""
    missing: Missing = {}
    expanded: set[tuple[str | int, ...]] = set()
    doc = _expand(raw, env, (), missing, expanded)
    # an unset provider variable disables that provider, and an unset client key means that key does not exist;
    # any other unset variable is an error (an unset `host: ${HOST}` would otherwise bind every interface)
    leftovers = {p: v for p, v in missing.items() if p[:1] != ("providers",) and p[:2] != ("server", "api_keys")}
    if leftovers:
        path, names = next(iter(leftovers.items()))
        raise _fail(source, _where(list(path)), f"environment variable {', '.join(names)} is not set")
    errors = _errors(doc, expanded)
    if errors:
        raise _invalid(source, [f"{_where(e.absolute_path)}: {_describe(e)}" for e in errors])
    return _build(doc, source, missing, expanded)


_SHOWN_ERRORS = 10  # schema errors listed; the header says how many there are


def _invalid(source: str, problems: list[str]) -> ConfigError:
    """The error for `problems` ("PATH: what is wrong") found in `source`: one line for one, as a missing file or
    broken YAML is; for several a header, then one line each."""
    if len(problems) == 1:
        return ConfigError(f"{source}: invalid config: {problems[0]}")
    shown = problems[:_SHOWN_ERRORS]
    more = f" (the first {len(shown)} shown)" if len(problems) > len(shown) else ""
    lines = [f"{source}: invalid config, {len(problems)} errors{more}:", *(f"  {source}: {p}" for p in shown)]
    return ConfigError("\n".join(lines))


_SECRET_KEYS = frozenset({"api_key", "api_keys", "key", "headers", "env"})  # (an engine's env: tokens)
_MIN_SECRET = 4  # a shorter value under those keys is not looked for in a message (it would mangle the words)


def _doc_secrets(raw: Any, env: Mapping[str, str]) -> list[str]:
    """Every value the document holds under a key or credential setting, wherever that setting is (a section in
    the wrong shape included): as written, as expanded and each variable's value; longest first."""
    found: set[str] = set()
    _collect(raw, None, found)
    for text in list(found):
        names = [m.group(1) for m in _ENV.finditer(text)]
        if names:
            found.add(_ENV.sub(lambda m: env.get(m.group(1)) or m.group(2) or "", text))
            found.update(env.get(name) or "" for name in names)
    forms = {form for s in found if len(s) >= _MIN_SECRET for form in (s, repr(s)[1:-1], json.dumps(s)[1:-1])}
    return sorted(forms, key=len, reverse=True)


_KEY_FIELDS = frozenset({"key", "name", "models"})  # a client key's entry: only its `key` is secret


def _collect(node: Any, owner: str | None, found: set[str]) -> None:
    """Add to `found` the scalars under the secret setting `owner` (None: not under one yet)."""
    if isinstance(node, dict):
        for k, v in node.items():
            key = str(k)
            if owner is None:
                _collect(v, key if key in _SECRET_KEYS else None, found)
            elif owner == "api_keys" and key in _KEY_FIELDS - {"key"}:
                continue  # a client key's name and models are shown as they are
            else:
                if owner not in ("headers", "env") and key not in _KEY_FIELDS:
                    found.add(key)  # a key written as a mapping's key (`api_key: {sk-...: x}`)
                _collect(v, owner, found)
    elif isinstance(node, list):
        for v in node:
            _collect(v, owner, found)
    elif owner is not None and isinstance(node, (str, int, float)) and not isinstance(node, bool):
        found.add(str(node))


def _scrub(text: str, secrets: list[str]) -> str:
    for s in secrets:
        text = text.replace(s, "[redacted]")
    return text


def _shown(value: Any) -> str:
    """A value found, as an error quotes it: a scalar as written, a mapping or list by its type only (it can hold
    a whole section, keys included)."""
    return type(value).__name__ if isinstance(value, (dict, list)) else repr(value)


def _message(err: jsonschema.ValidationError) -> str:
    """jsonschema's own message, with a mapping or list it quotes named by its type."""
    if not isinstance(err.instance, (dict, list)):
        return err.message
    return err.message.replace(repr(err.instance), _shown(err.instance))


def _describe(err: jsonschema.ValidationError) -> str:
    """What is wrong at the error's place. The value found is quoted, except where keys and credentials go: a key
    written in the wrong shape must not reach a reload's answer or the log."""
    if _SECRET_KEYS.intersection(p for p in err.absolute_path if isinstance(p, str)):
        if err.validator == "type":
            return f"expected {err.validator_value}, got {type(err.instance).__name__}"
        if err.validator == "oneOf":
            return "expected a key (a string) or an object {key:, name:, models:}"
        return f"not valid here (the {err.validator!r} check failed; the value is not shown)"
    path = list(err.absolute_path)
    if path and path[-1] == "base_url" and isinstance(err.instance, str) and shown_url(err.instance) != err.instance:
        shown = shown_url(err.instance)  # never a password it holds
        return err.message.replace(repr(err.instance), repr(shown)).replace(err.instance, shown)
    if err.validator in ("additionalProperties", "unevaluatedProperties"):
        return f"unknown key ({err.message.split('(')[-1].rstrip(')')}); allowed: " + ", ".join(sorted(_allowed(err)))
    if err.validator == "maximum" and _in_seconds(err):
        return (f"{err.instance:g} seconds is more than a day: at most {err.validator_value:g} (a longer wait holds a "
                "request, a connection or a provider practically forever)")
    if err.validator == "enum" and isinstance(err.validator_value, list):
        return f"expected one of {', '.join(map(repr, err.validator_value))}, got {_shown(err.instance)}"
    if err.validator == "type":
        shown = "" if isinstance(err.instance, (dict, list)) else f" {err.instance!r}"
        return f"expected {err.validator_value}, got {type(err.instance).__name__}{shown}"
    if err.validator == "oneOf" and err.context:
        return "; or ".join(sorted({_message(c) for c in err.context}))
    return _message(err)


def _in_seconds(err: jsonschema.ValidationError) -> bool:
    """Whether the setting `err` is about is a duration (the schema's `seconds`)."""
    return isinstance(err.schema, Mapping) and err.schema.get("description") == "seconds"


def _given(raw: Mapping[str, Any], *keys: str, **renamed: str) -> dict[str, Any]:
    """The settings `raw` states, as keyword arguments for a model.py dataclass (`renamed`: field=file key). A
    setting the file leaves out is not passed, so its default is the dataclass's: defaults are stated only there."""
    out = {k: raw[k] for k in keys if k in raw}
    out.update({name: raw[key] for name, key in renamed.items() if key in raw})
    return out


def _fail(source: str, path: str, message: str) -> ConfigError:
    return _invalid(source, [f"{path}: {message}"])


_NOT_IN_NAMES = frozenset({"Cc", "Zl", "Zp"})  # control characters (C0, DEL, C1) and Unicode line breaks
NAME_RULE = ("a name is sent in response headers (x-agentgate-provider) and written in logs and the console, so it "
             "is one line of printable text: not empty, no control character (line break, tab, NUL), no space at "
             "either end")


def _name_problem(name: str) -> str | None:
    """What makes `name` unusable as a provider, model or key name, or None."""
    if not name:
        return "is empty"
    if any(unicodedata.category(c) in _NOT_IN_NAMES for c in name):
        return "holds a control character"
    if name != name.strip():
        return "begins or ends with a space"
    return None


def _check_names(names: Iterable[tuple[str, Any]], source: str, subject: str = "") -> None:
    """Refuse each (place, name) of `names` whose name cannot be written as a header value, in the file's words."""
    for where, name in names:
        problem = _name_problem(name) if isinstance(name, str) else None
        if problem:
            raise _fail(source, where, f"{subject}{name!r} {problem}: {NAME_RULE}")


def _build(doc: dict[str, Any], source: str, missing: Missing, expanded: set[tuple[str | int, ...]]) -> Config:
    server = _server(doc.get("server", {}), source, missing, expanded)
    defaults = _policy(doc.get("defaults", {}), Policy())
    providers = {name: _provider(name, raw, defaults, missing, source)
                 for name, raw in doc.get("providers", {}).items()}
    engines = doc.get("engines", {})
    models = _with_body_limit(_models(doc.get("models", []), engines, providers, source), server)
    providers.update(_engine_providers(models, defaults))
    _check_fallbacks(models, source)
    settings = _given(engines, "max_loaded", "memory_budget_gb", "runtime_dir", "state_dir")
    return Config(server=server, providers=providers, models=tuple(models), engines=EnginesConfig(**settings),
                  source=source)


# --- server --------------------------------------------------------------------------------------------------------

_MB = 1024 * 1024
_SCALED = {  # field: (file key, unit)
    "max_body_bytes": ("max_body_mb", _MB),
    "max_upstream_body_bytes": ("max_upstream_body_mb", _MB),
    "max_upstream_event_bytes": ("max_upstream_event_mb", _MB),
    "max_stream_repair_chars": ("max_stream_repair_kchars", 1024),
}


def _server(srv: Mapping[str, Any], source: str, missing: Missing,
            expanded: set[tuple[str | int, ...]]) -> ServerConfig:
    scaled: dict[str, Any] = {name: int(srv[key] * unit) for name, (key, unit) in _SCALED.items() if key in srv}
    if "idle_timeout" in srv:
        scaled["idle_timeout"] = float(srv["idle_timeout"])
    if "host" in srv:
        _check_host(srv["host"], source)
    return ServerConfig(
        api_keys=_client_keys(srv.get("api_keys", []), source, missing, expanded),
        unset_key_vars=tuple(_missing_under(missing, ("server", "api_keys"))),
        capture=_capture(srv.get("capture", False)),
        **_given(srv, "host", "port", "metrics_auth", "admin_auth", "log_format", "log_level", "access_log",
                 "allow_unauthenticated", "max_body_containers"),
        **scaled,
    )


def _check_host(host: str, source: str) -> None:
    """Refuse a `server.host` that is no host name or IP address to listen on (a URL, `host:port`, `[::1]`): it
    failed only at start, after `check` said ok and the start-up refusal called it reachable from other machines."""
    problem = _host_problem(host)
    if problem:
        raise _fail(source, "server.host", f"{host[:200]!r} {problem}: server.host is a host name or an IP address")


def _host_problem(host: str) -> str | None:
    if any(c.isspace() or unicodedata.category(c) in _NOT_IN_NAMES for c in host):
        return "holds a space or control character"
    if "://" in host:
        return f"is a URL (write {urlsplit(host).hostname or ''!r}; the port goes in server.port)"
    if host.startswith("["):
        return f"is in brackets (write {host.strip('[]').partition(']')[0]!r}, without them)"
    if "/" in host:
        return "holds a path"
    name, colon, port = host.rpartition(":")
    if colon and ":" not in name:
        return f"holds a port ({port[:20]!r}): write the host alone, the port in server.port"
    if colon:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return "has colons but is no IP address"
    return None


def _client_keys(entries: list[str | dict[str, Any]], source: str, missing: Missing,
                 expanded: set[tuple[str | int, ...]]) -> tuple[ClientKey, ...]:
    """The client keys that exist: one naming an unset variable does not (not the text around it: `sk-${KEY}`
    would be the key `sk-`)."""
    keys: list[ClientKey] = []
    for i, entry in enumerate(entries):
        item = {"key": entry} if isinstance(entry, str) else entry
        path = ("server", "api_keys", i, *(() if isinstance(entry, str) else ("key",)))
        secret = _secret(item["key"], source, f"server.api_keys[{i}]")
        if path in missing:
            continue
        if not secret:
            _written_empty(expanded, path, source, f"server.api_keys[{i}]")
            continue
        _check_names([(f"server.api_keys[{i}].name", item.get("name"))], source)
        models = item.get("models")
        key = ClientKey(name=item.get("name", f"key{i}"), key=secret,
                        models=frozenset(models) if models is not None else None, where=f"server.api_keys[{i}]")
        for other in keys:
            if other.name == key.name:
                raise _fail(source, f"server.api_keys[{i}].name", f"{key.name!r} names another key already; "
                            "every key needs its own name")
            if other.key == key.key:
                raise _fail(source, f"server.api_keys[{i}]", f"the same key as {other.name!r}; every key must "
                            "be different")
        keys.append(key)
    return tuple(keys)


def _written_empty(expanded: set[tuple[str | int, ...]], path: tuple[str | int, ...], source: str, where: str) -> None:
    """Refuse a client key written empty (no variable in it): left out as an unset variable's is, it could leave
    the router requiring no key at all, where the file shows one was meant."""
    if path not in expanded:
        raise _fail(source, where, "the key is empty: write the key, or ${VAR} to take it from the environment "
                    "(a variable that is not set leaves the key out)")


def _capture(raw: bool | Mapping[str, Any]) -> CaptureConfig | None:
    if raw is False:
        return None
    if raw is True:
        return CaptureConfig()
    file = str(Path(raw["file"]).expanduser()) if raw.get("file") else None
    return CaptureConfig(file=file, **_given(raw, "max_entries", "max_file_mb"))


# --- providers -----------------------------------------------------------------------------------------------------

def _policy(raw: Mapping[str, Any], base: Policy) -> Policy:
    """`raw`'s resilience settings over `base` (the dataclass defaults, or the file's `defaults:`)."""
    return replace(
        base,
        timeouts=replace(base.timeouts, **_given(raw.get("timeouts", {}), "connect", "first_byte", "idle", "total")),
        **_given(raw, "retries", "max_concurrency", "max_queue", "queue_timeout"),
        **_given(raw.get("backoff", {}), "max_retry_after", backoff_base="base", backoff_max="max"),
        **_given(raw.get("breaker", {}), breaker_failures="failures", breaker_cooldown="cooldown"),
    )


def _provider(name: object, raw: Mapping[str, Any], defaults: Policy, missing: Missing,
              source: str) -> ProviderConfig:
    if not isinstance(name, str):
        raise _fail(source, "providers", f"provider name {name!r} must be a string (quote it)")
    _check_names([("providers", name)], source, "provider name ")
    if name.startswith(engine_provider("")):
        raise _fail(source, "providers", f"provider name {name!r} starts with {engine_provider('')!r}, the names of "
                    "engine models' own providers: choose another name")
    unset = _missing_under(missing, ("providers", name))
    reason = f"environment variable {', '.join(unset)} is not set" if unset else None
    url = raw.get("base_url", "").strip()
    if not url and not reason:
        if raw["type"] != "anthropic":
            raise _fail(source, f"providers.{name}.base_url", "required for an openai provider")
        url = ANTHROPIC_BASE_URL
    if url and not reason:
        url = _base_url(url, source, f"providers.{name}.base_url")
    api_key = _secret(raw.get("api_key") or "", source, f"providers.{name}.api_key")
    headers = _headers(raw.get("headers") or {}, source, f"providers.{name}.headers")
    _one_authorization(url, api_key if raw["type"] != "anthropic" else "", headers, source, f"providers.{name}")
    _one_credential(raw["type"], api_key, headers, source, f"providers.{name}")
    return ProviderConfig(name=name, type=raw["type"], base_url=url.rstrip("/"), api_key=api_key or None,
                          headers=headers, policy=_policy(raw, defaults), disabled_reason=reason)


def _base_url(url: str, source: str, where: str) -> str:
    """`url` checked as one every request can be sent to (the API's paths are appended to it); quoted in an error
    without a password or token it holds."""
    plain = shown_url(url)[:200]
    shown = repr(plain)
    if any(c.isspace() or unicodedata.category(c) in _NOT_IN_NAMES for c in url):
        raise _fail(source, where, f"{shown} holds a space or control character (a line break?): a URL is one word")
    if not url.lower().startswith(("http://", "https://")):
        scheme, sep, _ = plain.partition("://")
        hint = f"{scheme[:20]!r} is not http or https" if sep else f"did you mean 'http://{plain}'?"
        raise _fail(source, where, f"{shown} is not an http:// or https:// URL ({hint})")
    if "?" in url or "#" in url:
        raise _fail(source, where, f"{shown} has a query or fragment: the API's paths are appended to base_url, so "
                    "every request would miss them (a key goes in api_key, or in headers)")
    problem = _url_problem(url)
    if problem:
        raise _fail(source, where, f"{shown} {problem}")
    return url


def _url_problem(url: str) -> str | None:
    """Why no request can be sent to the http(s) URL `url`, or None."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        if "port" in str(exc).lower():
            return "has a port that is not a number from 1 to 65535"
        return f"is not a valid URL ({exc})"
    if not parts.hostname:
        return "has no host (write http://HOST[:PORT]/PATH)"
    if port == 0:
        return "has a port that is not a number from 1 to 65535"
    return None


def _one_authorization(url: str, bearer: str, headers: tuple[tuple[str, str], ...], source: str, where: str) -> None:
    """Refuse credentials in base_url (`user:password@`, sent as `Authorization: Basic`) beside another
    Authorization header, the provider's key (`bearer`) or a configured one: a request carries one, and the
    client library refused every request (a 500 each). Neither value is quoted."""
    if "@" not in url.partition("://")[2].partition("/")[0]:
        return
    if bearer or any(k.lower() == "authorization" for k, _ in headers):
        said = "api_key" if bearer else "headers.Authorization"
        raise _fail(source, f"{where}.base_url", f"holds credentials (user:password@), sent as the Authorization "
                    f"header, and {said} sets that header too: a request carries one Authorization, keep one")


_CREDENTIAL_HEADER = {"openai": "Authorization", "anthropic": "x-api-key"}  # what a provider's api_key is sent as


def _one_credential(kind: str, api_key: str, headers: tuple[tuple[str, str], ...], source: str, where: str) -> None:
    """Refuse an api_key beside a configured header of the name it is sent as: one would replace the other (the
    router sent the key; OpenAI's SDK and LiteLLM send the explicit header), so keep one. Neither value is quoted."""
    sent_as = _CREDENTIAL_HEADER[kind]
    written = next((k for k, _ in headers if k.lower() == sent_as.lower()), None)
    if api_key and written is not None:
        raise _fail(source, where, f"api_key is sent as the {sent_as} header and headers.{written} sets it too: a "
                    "request carries one, keep either (the values are not shown)")


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP header name (RFC 9110's token)
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # what no header value may hold (a tab may)


def _secret(value: str, source: str, where: str) -> str:
    """A key as sent in a header: without the spaces or newline around it (a secret file's last line usually ends
    in one); a control character inside it is refused, never quoted."""
    value = value.strip()
    if _CONTROL.search(value):
        raise _fail(source, where, "holds a control character (a line break?); a key is one line of text")
    _ascii(value, source, where)
    return value


def _ascii(value: str, source: str, where: str) -> None:
    """Refuse a credential holding a character beyond ASCII (not quoted): a byte-order mark from a file, a zero-width
    space or an ellipsis copied from a page. Sent as it is, the provider refused every request; a client key so
    written no HTTP client sends."""
    found = next(((i, c) for i, c in enumerate(value) if not c.isascii()), None)
    if found is not None:
        i, c = found
        what = f"U+{ord(c):04X}, {unicodedata.name(c, 'unnamed')}, at position {i + 1}"
        raise _fail(source, where, f"holds a character that is not ASCII ({what}): a key is ASCII text (copied with "
                    "an invisible character, or read from a file saved with a byte-order mark?)")


def _headers(raw: Mapping[Any, str], source: str, where: str) -> tuple[tuple[str, str], ...]:
    """A provider's extra headers, each name an HTTP token and each value one line, without the spaces or newline
    around it, as a key's (values unquoted: they are often credentials)."""
    seen: dict[str, str] = {}
    for name in raw:
        problem = _header_name_problem(name)
        if problem:
            raise _fail(source, where, f"{problem}: a header name is letters, digits and -!#$%&'*+.^_`|~ (the rest "
                        "is not shown: a whole 'Name: value' line written as the name holds a key)")
        first = seen.setdefault(name.lower(), name)
        if first != name:
            raise _fail(source, f"{where}.{name}", f"sets the header {first!r} twice (header names are not "
                        "case-sensitive; one value would be dropped): keep one")
    return tuple((name, _header_value(name, value, source, f"{where}.{name}")) for name, value in raw.items())


def _header_name_problem(name: object) -> str | None:
    """What makes `name` no header name, quoting it only up to the first character a name cannot hold."""
    if not isinstance(name, str):
        return f"a header name is text, not {type(name).__name__} (quote it)"
    valid = _TOKEN.match(name)
    prefix = valid.group(0) if valid else ""
    if prefix == name:
        return None
    if not prefix:
        return f"a header name cannot start with {name[0]!r}"
    return f"{prefix[:100]!r} is followed by {name[len(prefix)]!r}, not a header name"


def _header_value(name: str, value: str, source: str, where: str) -> str:
    value = value.strip()
    if _CONTROL.search(value):
        raise _fail(source, where, "holds a control character (a line break?); a header value is one line of text")
    if name.lower() not in PUBLIC_HEADERS:  # (may be a credential)
        _ascii(value, source, where)
    return value


def _engine_providers(models: list[ModelConfig], defaults: Policy) -> dict[str, ProviderConfig]:
    """One provider per engine model. A local engine failing is not transient: no retries (a crash answers 502,
    the next request restarts it)."""
    return {engine_provider(m.name): ProviderConfig(name=engine_provider(m.name), type="engine",
                                                    policy=replace(defaults, retries=0), engine=m.name,
                                                    credentials=engine_credentials(m.engine))
            for m in models if m.engine is not None}


# --- models --------------------------------------------------------------------------------------------------------

def _models(raws: list[dict[str, Any]], engines: Mapping[str, Any], providers: Mapping[str, ProviderConfig],
            source: str) -> list[ModelConfig]:
    models: list[ModelConfig] = []
    seen: dict[str, str] = {}
    for i, raw in enumerate(raws):
        where = f"models[{i}]"
        model = _model(raw, where, engines, providers, source)
        places = [(f"{where}.name", model.name), *((f"{where}.aliases[{j}]", a) for j, a in enumerate(model.aliases))]
        for place, n in places:
            if n in seen:
                raise _fail(source, place, f"{n!r} is already defined by {seen[n]}")
            seen[n] = place
        if model.wildcard and (model.aliases or model.fallbacks):
            raise _fail(source, where, "a wildcard model takes no aliases or fallbacks")
        models.append(model)
    return models


def _model(raw: Mapping[str, Any], where: str, engines: Mapping[str, Any], providers: Mapping[str, ProviderConfig],
           source: str) -> ModelConfig:
    name = raw["name"]
    aliases = ((f"{where}.aliases[{i}]", a) for i, a in enumerate(raw.get("aliases", [])))
    _check_names([(f"{where}.name", name), *aliases, (f"{where}.model", raw.get("model"))], source)
    given = _given(raw.get("repair", {}), "mode", "format", "on_failure", "retries")
    if given.get("mode") is False:  # YAML reads a bare `mode: off` as false
        given["mode"] = "off"
    fmt = given.get("format", "auto")
    if fmt != "auto" and fmt not in FAMILIES:  # the repair library refuses it on every request declaring tools
        raise _fail(source, f"{where}.repair.format", f"unknown tool-call format {fmt!r}; expected 'auto' or one "
                    f"of {', '.join(map(repr, FAMILIES))}")
    repair = RepairPolicy(**given)
    engine = _engine_spec(raw, name, engines, repair, source, where)
    if engine is None:
        _no_engine_settings(raw, source, where)
    targets = _targets(raw, engine, providers, source, where)
    if not targets and not raw.get("fallbacks"):
        raise _fail(source, where, "a model needs a provider, replicas, an engine/command, or fallbacks")
    if not targets:
        _no_hop_settings(raw, source, where)
    return ModelConfig(name=name, targets=targets, fallbacks=tuple(raw.get("fallbacks", [])),
                       aliases=tuple(raw.get("aliases", [])), repair=repair, engine=engine,
                       **_given(raw, "description", "max_output_tokens"))


_ENGINE_ONLY = ("ttl", "start_timeout", "memory_gb", "health", "engine_args", "env")  # settings of a served process


def _no_engine_settings(raw: Mapping[str, Any], source: str, where: str) -> None:
    """Refuse an engine's setting on an entry that runs none (a provider, replicas, a fallback chain): ignored, it
    let an operator believe a remote model would be unloaded after its ttl, or given an environment."""
    if raw.get("preload"):
        raise _fail(source, f"{where}.preload", "only an engine entry (engine: or command:) can be preloaded")
    for key in _ENGINE_ONLY:
        if key in raw:
            raise _fail(source, f"{where}.{key}", "only an engine entry (engine: or command:) takes it: this model "
                        "runs no process of its own")


def _no_hop_settings(raw: Mapping[str, Any], source: str, where: str) -> None:
    """Refuse what only an entry that sends requests uses on a pure fallback chain: each hop is sent with its own
    entry's upstream model name and output limit, so one written on the chain was ignored."""
    for key in ("model", "max_output_tokens"):
        if key in raw:
            raise _fail(source, f"{where}.{key}", "a fallback chain (no provider, replicas or engine) sends no request "
                        "of its own: each of its fallbacks is sent with its own entry's settings; set it there")


def _with_body_limit(models: list[ModelConfig], server: ServerConfig) -> list[ModelConfig]:
    """The models with the router's body limits in their engine specs, which pass them to the MLX workers they
    launch: a body the router lets through is not refused by a worker at a lower limit (a `command:` server has its
    own options). The size limit never goes below the worker's own default: a translated body (Messages,
    Responses) is written with spaces and may be larger than the one received."""
    size = max(server.max_body_bytes, WorkerSettings.max_body_bytes)
    return [replace(m, engine=replace(m.engine, max_body_containers=server.max_body_containers, max_body_bytes=size))
            if m.engine is not None and m.engine.kind == "mlx" else m for m in models]


def _targets(raw: Mapping[str, Any], engine: EngineSpec | None, providers: Mapping[str, ProviderConfig],
             source: str, where: str) -> tuple[Target, ...]:
    if engine is not None:
        if "provider" in raw or "replicas" in raw:
            raise _fail(source, where, "an engine model takes no provider or replicas")
        return (Target(engine_provider(engine.name), engine.name),)
    targets: list[tuple[str, Target]] = []  # (where the file names its provider, the target)
    if "provider" in raw:
        targets.append((f"{where}.provider", Target(raw["provider"], raw.get("model"))))
    for i, r in enumerate(raw.get("replicas", [])):
        _check_names([(f"{where}.replicas[{i}].model", r.get("model"))], source)
        targets.append((f"{where}.replicas[{i}].provider", Target(r["provider"], r.get("model", raw.get("model")))))
    for place, t in targets:
        if t.provider not in providers:
            raise _fail(source, place, f"unknown provider {t.provider!r}; defined: " + ", ".join(sorted(providers)))
    return tuple(t for _, t in targets)


def _engine_spec(raw: Mapping[str, Any], name: str, engines: Mapping[str, Any], repair: RepairPolicy, source: str,
                 where: str) -> EngineSpec | None:
    """The supervisor's spec of an engine model (`engine: mlx` or `command:`), validated once, by EngineSpec."""
    if "engine" not in raw and "command" not in raw:
        return None
    if "engine" in raw and "command" in raw:
        raise _fail(source, where, "use either engine: mlx or command:, not both")
    command = raw.get("command")
    try:
        spec = EngineSpec(
            name=name, kind="mlx" if "engine" in raw else "command",
            command=tuple(command) if isinstance(command, list) else command,
            env=dict(raw.get("env") or {}), tool_format=None if repair.format == "auto" else repair.format,
            **{**_given(engines, "start_timeout"),  # the file's engines-wide value, then the model's own
               **_given(raw, "model", "ttl", "start_timeout", "memory_gb", "preload", health_path="health",
                        args="engine_args")},
        )
    except ValueError as exc:
        raise _fail(source, where, str(exc)) from None
    problem = engine_args_problem(spec.args) if spec.kind == "mlx" else None
    if problem:  # the worker would exit at launch: a reload to this file would stop a running engine for nothing
        raise _fail(source, f"{where}.engine_args", problem)
    return spec


def _check_fallbacks(models: list[ModelConfig], source: str) -> None:
    by_name = {m.name: m for m in models}
    for m in models:
        for alias in m.aliases:
            by_name.setdefault(alias, m)
    for i, m in enumerate(models):
        for j, fb in enumerate(m.fallbacks):
            if fb not in by_name:
                raise _fail(source, f"models[{i}].fallbacks[{j}]", f"unknown model {fb!r}; {_offered(fb, by_name)}")
            if by_name[fb].wildcard:
                raise _fail(source, f"models[{i}].fallbacks[{j}]", f"{fb!r} is a wildcard pattern: a fallback names "
                            "one model (a wildcard entry needs the name a request asked for)")
    _check_cycles(models, by_name, source)


_OFFERED_MAX = 20  # model names listed after an unknown fallback


def _offered(name: str, by_name: Mapping[str, ModelConfig]) -> str:
    """What an unknown fallback `name` may have meant: the near names, else the models a fallback can name."""
    names = sorted(n for n, m in by_name.items() if not m.wildcard)
    near = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    if near:
        return f"did you mean {' or '.join(map(repr, near))}?"
    more = f" and {len(names) - _OFFERED_MAX} more" if len(names) > _OFFERED_MAX else ""
    return f"defined: {', '.join(map(repr, names[:_OFFERED_MAX]))}{more}"


def _check_cycles(models: list[ModelConfig], by_name: Mapping[str, ModelConfig], source: str) -> None:
    def visit(m: ModelConfig, stack: tuple[str, ...]) -> None:
        if m.name in stack:
            raise _fail(source, "models", "fallback cycle: " + " -> ".join((*stack, m.name)))
        for fb in m.fallbacks:
            visit(by_name[fb], (*stack, m.name))

    for m in models:
        visit(m, ())
