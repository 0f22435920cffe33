"""The resolved configuration: plain frozen dataclasses, built once by `load.py`."""

from __future__ import annotations

import base64
import re
import shlex
from dataclasses import dataclass, field
from urllib.parse import unquote

from engines.supervisor.types import EngineSpec

from .key_shapes import KEY_SHAPES

ANTHROPIC_BASE_URL = "https://api.anthropic.com/v1"  # an anthropic provider without base_url

MIN_SECRET = 8  # characters: a shorter provider credential is a placeholder, not looked for (`secrets`)
# headers whose values are public by nature (an app's title and site, API versions and betas): not looked for in
# answers. Any other configured header may carry a credential, whatever its name (X-Gateway-Token, Api-Key).
PUBLIC_HEADERS = frozenset({"accept", "accept-language", "anthropic-beta", "anthropic-version", "content-type",
                            "http-referer", "openai-beta", "referer", "user-agent", "x-title"})


@dataclass(frozen=True)
class ClientKey:
    name: str
    key: str = field(repr=False)
    models: frozenset[str] | None = None  # None: every model
    where: str = field(default="", compare=False)  # its place in the config: "server.api_keys[2]"


@dataclass(frozen=True)
class CaptureConfig:
    """`server.capture`: keep raw upstream outputs of repaired and failed tool calls (redacted) for inspection."""

    max_entries: int = 200
    file: str | None = None  # also append them to this JSONL file
    max_file_mb: float = 64.0  # then the file is rotated once (FILE.1)


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    api_keys: tuple[ClientKey, ...] = ()
    max_body_bytes: int = 32 * 1024 * 1024
    max_body_containers: int = 500_000  # objects and arrays in a body over 1 MiB (each costs ~30x its bytes)
    metrics_auth: bool = False
    admin_auth: bool = True
    log_format: str = "json"
    log_level: str = "info"
    access_log: bool = True
    max_upstream_body_bytes: int = 64 * 1024 * 1024  # a non-stream or error body, decompressed
    max_upstream_event_bytes: int = 16 * 1024 * 1024  # one SSE event (line) of an upstream stream
    max_stream_repair_chars: int = 1024 * 1024  # text one stream keeps for tool-call repair
    allow_unauthenticated: bool = False  # serve without client keys beyond loopback (logged as a warning)
    idle_timeout: float = 75.0  # a client connection idle this long (no request, a stalled body) is closed
    capture: CaptureConfig | None = None  # None: off
    unset_key_vars: tuple[str, ...] = ()  # the environment variables of client keys left out, being unset


@dataclass(frozen=True)
class Timeouts:
    connect: float = 10.0
    first_byte: float = 600.0
    idle: float = 300.0
    total: float | None = None


@dataclass(frozen=True)
class Policy:
    """Per-provider resilience settings."""

    timeouts: Timeouts = Timeouts()
    retries: int = 2
    backoff_base: float = 0.25
    backoff_max: float = 8.0
    max_retry_after: float = 30.0
    breaker_failures: int = 5
    breaker_cooldown: float = 30.0
    max_concurrency: int = 256
    max_queue: int = 1024
    queue_timeout: float = 60.0


def _userinfo(url: str) -> tuple[str, str]:
    """The user and password of a `scheme://user:password@host/...` URL ("" for each it lacks)."""
    authority = url.partition("://")[2].partition("/")[0]
    if "@" not in authority:
        return "", ""
    user, _, password = authority.rpartition("@")[0].partition(":")
    return user, password


def shown_url(url: str) -> str:
    """`url` as it may be shown: the password of a `user:password@` in it replaced (with or without a scheme), the
    whole user name of a `user@` without a password (a token written there: it is the credential), and so is a
    query or fragment (where a provider's key may be put: `?key=...`)."""
    cut = min((i for i in (url.find("?"), url.find("#")) if i >= 0), default=-1)
    url, tail = (url, "") if cut < 0 else (url[:cut], url[cut] + "[redacted]")
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    authority, slash, path = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if not at:
        return url + tail
    user, _, password = userinfo.partition(":")
    shown = f"{user}:[redacted]" if password else "[redacted]"
    return f"{scheme}{sep}{shown}@{host}{slash}{path}{tail}"


def _basic_token(user: str, password: str) -> str:
    """The token of `Authorization: Basic` for `user` and `password`, as aiohttp encodes it (latin-1 first)."""
    pair = f"{user}:{password}"
    try:
        raw = pair.encode("latin-1")
    except UnicodeEncodeError:
        raw = pair.encode()
    return base64.b64encode(raw).decode()


_CREDENTIAL_NAME = re.compile(r"(?i)key|token(?!i[sz])|secret|passw|credential")  # not --tokenizer


def engine_credentials(spec: EngineSpec) -> tuple[str, ...]:
    """What an engine is given to authenticate, never shown: the values of its environment variables named as
    credentials (HF_TOKEN, OPENAI_API_KEY), the values its command line and engine_args give options so named
    (`--api-key K`, `--hf-token=K`), and any word of them shaped like a key; each of `MIN_SECRET` characters or
    more (not a device number, not a port)."""
    command: list[str] = list(spec.command or ()) if not isinstance(spec.command, str) else _words(spec.command)
    words = [*command, *spec.args]
    found = [v for k, v in spec.env.items() if _CREDENTIAL_NAME.search(k) or KEY_SHAPES.fullmatch(v)]
    for i, word in enumerate(words):
        option, given, value = word.partition("=")
        if word.startswith("-") and _CREDENTIAL_NAME.search(option):
            found.append(value if given else words[i + 1] if i + 1 < len(words) else "")
        elif KEY_SHAPES.fullmatch(word):
            found.append(word)
    return tuple(dict.fromkeys(s for s in found if len(s) >= MIN_SECRET))


def _words(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:  # an unclosed quote
        return command.split()


def all_secrets(config: Config) -> tuple[str, ...]:
    """Every secret `config` holds, longest first: the client keys, and each provider's (an engine's included);
    each of `MIN_SECRET` characters or more (a client key "test", looked for in every log line, would redact the
    model "test-model" from it; so short a key is warned about as it loads)."""
    found = {k.key for k in config.server.api_keys} | {s for p in config.providers.values() for s in p.secrets}
    return tuple(sorted((s for s in found if len(s) >= MIN_SECRET), key=len, reverse=True))


def engine_provider(model: str) -> str:
    """The name of the provider that serves engine model `model`."""
    return f"engine:{model}"


@dataclass(frozen=True)
class ProviderConfig:
    name: str
    type: str  # "openai" | "anthropic" | "engine"
    base_url: str = ""
    api_key: str | None = field(default=None, repr=False)
    headers: tuple[tuple[str, str], ...] = ()
    policy: Policy = Policy()
    disabled_reason: str | None = None  # set when unusable (e.g. its key env var is unset)
    engine: str | None = None  # for type "engine": the engine (model entry) name
    credentials: tuple[str, ...] = field(default=(), repr=False)  # for type "engine": `engine_credentials`

    @property
    def secrets(self) -> tuple[str, ...]:
        """What this provider is given to authenticate, never shown: its key, its headers' values (but the public
        ones: `PUBLIC_HEADERS`) and the credential of a base_url's `user:password@` (the password) or `user@` (a
        token as the user name), with the Basic token it is sent as (an upstream that echoes the Authorization
        header it got echoes that). Each of `MIN_SECRET` characters or more: a shorter value is a placeholder (the
        "EMPTY", "ollama" or "x" a local server takes), which guards nothing and, looked for in answers, corrupted
        every one holding it ("index" with the key "x")."""
        user, password = _userinfo(self.base_url)
        credential = password or user
        found = [self.api_key or "", *(v for k, v in self.headers if k.lower() not in PUBLIC_HEADERS), credential,
                 unquote(credential), *self.credentials]
        if credential:
            found.append(_basic_token(unquote(user), unquote(password)))
        return tuple(dict.fromkeys(s for s in found if len(s) >= MIN_SECRET))

    @property
    def shown_url(self) -> str:
        """base_url as it may be shown (console, `check`): a password, or a user name without one, replaced."""
        return shown_url(self.base_url)


@dataclass(frozen=True)
class RepairPolicy:
    mode: str = "repair"  # repair | detect | off
    format: str = "auto"
    on_failure: str = "content"  # content | error | retry
    retries: int = 1


@dataclass(frozen=True)
class Target:
    provider: str
    model: str | None  # upstream model name; None = the requested name (wildcards: the suffix)


@dataclass(frozen=True)
class ModelConfig:
    name: str
    targets: tuple[Target, ...] = ()  # replicas of this model (balanced), empty for a pure fallback chain
    fallbacks: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    repair: RepairPolicy = RepairPolicy()
    engine: EngineSpec | None = None  # a local model served by a supervised process (our MLX worker or a command)
    description: str = ""
    max_output_tokens: int | None = None  # the output limit an Anthropic provider is asked for when the client sets
    # none (None: the model's maximum, by its name: `anthropic_out.default_max_tokens`)

    @property
    def wildcard(self) -> bool:
        return self.name.endswith("*")


@dataclass(frozen=True)
class EnginesConfig:
    max_loaded: int | None = None
    memory_budget_gb: float | None = None
    runtime_dir: str | None = None
    state_dir: str | None = None  # engines' KV cache on disk; "" turns it off


@dataclass(frozen=True)
class Config:
    server: ServerConfig
    providers: dict[str, ProviderConfig]
    models: tuple[ModelConfig, ...]
    engines: EnginesConfig = EnginesConfig()
    source: str = "<memory>"
