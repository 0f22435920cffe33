"""Keeping a provider's credentials out of what reaches the client: upstream bodies and upstream headers.

`scrub_body` redacts a secret from a body whether it appears literally or JSON-escaped (`\\u0073k-...`): the
literal form by a byte replace, the escaped forms by decoding the JSON and redacting the decoded strings.
`safe_headers` rebuilds the few upstream response headers the router uses from validated values; nothing an
upstream sends is copied as is.
"""

from __future__ import annotations

import base64
import functools
import json
import math
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any

from .resilience import parse_retry_after

REDACTED = "[redacted]"
MAX_RETRY_AFTER = 86_400  # a longer Retry-After is cut to a day

_MEDIA_TYPES = frozenset({
    "application/json", "text/event-stream", "text/plain", "text/html", "application/problem+json",
    "application/x-ndjson", "application/octet-stream",
})
_REPAIR_KINDS = re.compile(r"[a-z][a-z0-9_]{0,47}(,[a-z][a-z0-9_]{0,47}){0,15}")


def _secrets(secrets: str | Iterable[str | None] | None) -> list[str]:
    if secrets is None:
        return []
    items = [secrets] if isinstance(secrets, str) else list(secrets)
    return list(secret_forms(tuple(sorted({s for s in items if s}))))


MIN_BASE64_SECRET = 12  # a shorter secret's base64 spelling is too short to look for without false hits


def _base64_cores(secret: bytes) -> set[str]:
    """The base64 text that spells `secret` wherever it stands in base64-encoded data: at each of the three
    alignments, the characters that depend on its bytes alone (standard and URL-safe alphabets)."""
    cores: set[str] = set()
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + secret).decode()
        start = (0, 2, 3)[shift]  # the characters that hold bits of the bytes before it
        end = 4 * ((shift + len(secret)) // 3)  # those that hold bits of the bytes after it
        core = encoded[start:end]
        cores.add(core)
        cores.add(core.replace("+", "-").replace("/", "_"))
    return cores


@functools.lru_cache(maxsize=64)
def secret_forms(secrets: tuple[str, ...]) -> tuple[str, ...]:
    """What spells one of `secrets` in text, longest first: each secret, and its base64 spellings (an upstream
    echoing the `Authorization` header it got, or a Basic token, writes the key in base64)."""
    forms = {s for s in secrets if s}
    for s in secrets:
        if len(s) >= MIN_BASE64_SECRET:
            forms |= _base64_cores(s.encode())
    return tuple(sorted(forms, key=len, reverse=True))


def _hex(value: int, digits: int) -> str:
    return "".join(f"[{d}{d.upper()}]" if d.isalpha() else d for d in f"{value:0{digits}x}")


@functools.lru_cache(maxsize=64)
def escaped_pattern(secrets: tuple[str, ...]) -> re.Pattern[str] | None:
    """What spells one of `secrets` with any of its characters written as a JSON `\\uXXXX` escape or a
    percent-encoding (as text: a model can write them, and repair decodes them), any case of hex digits."""
    alternatives = []
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        alternatives.append("".join(
            f"(?:{re.escape(c)}|\\\\u{_hex(ord(c), 4)}|%{_hex(ord(c), 2)})" if ord(c) < 128 else re.escape(c)
            for c in secret))
    return re.compile("|".join(alternatives)) if alternatives else None


def scrub_text(text: str, secrets: str | Iterable[str | None] | None) -> str:
    """`text` (already decoded) with every secret replaced by `[redacted]`: literal, in base64, or spelled with
    JSON escapes or percent-encodings."""
    found = _secrets(secrets)
    for s in found:
        if s in text:
            text = text.replace(s, REDACTED)
    if found and ("\\" in text or "%" in text):
        pattern = escaped_pattern(tuple(found))
        if pattern is not None:
            text = pattern.sub(REDACTED, text)
    return text


def scrub_literal(data: bytes, secrets: str | Iterable[str | None] | None) -> bytes:
    """`data` with every literal occurrence of a secret (or of its base64 spelling) redacted (for bytes we encoded
    ourselves, where a decoded secret shows literally)."""
    for s in _secrets(secrets):
        raw = s.encode()
        if raw in data:
            data = data.replace(raw, REDACTED.encode())
    return data


class SecretGate:
    """The text a stream sends on its channels (content, reasoning, each call's arguments, ...), with every secret
    redacted even when no one piece holds it whole: a piece's end that could begin a secret waits for the next
    piece on its channel (or `flush`). What the router sends is judged, after repair decoded escapes in the
    model's text and joined pieces the upstream sent apart. `forms`: `secret_forms` of the secrets; pieces are
    held for the secrets themselves (their base64 spellings are redacted within a piece)."""

    __slots__ = ("_forms", "held", "secrets")

    def __init__(self, secrets: tuple[str, ...]) -> None:
        self.secrets = tuple(s for s in secrets if s)
        self._forms = secret_forms(self.secrets)
        self.held: dict[Any, str] = {}

    def text(self, channel: Any, text: str, final: bool = False) -> str:
        """What of `text` (and of what `channel` held) goes out now; `final`: all of it (the channel ends)."""
        held = self.held.pop(channel, None)
        if held:
            text = held + text
        elif not text:
            return text
        for form in self._forms:
            if form in text:
                text = text.replace(form, REDACTED)
        if "\\" in text or "%" in text:
            pattern = escaped_pattern(self.secrets)
            if pattern is not None:
                text = pattern.sub(REDACTED, text)
        keep = 0 if final else self._start_at_end(text)
        if keep:
            self.held[channel] = text[-keep:]
            return text[:-keep]
        return text

    def _start_at_end(self, text: str) -> int:
        """The length of the longest end of `text` that a secret begins with (and is longer than)."""
        best = 0
        n = len(text)
        for secret in self.secrets:
            first = secret[0]
            at = text.rfind(first, max(0, n - len(secret) + 1))
            while at >= 0:
                if n - at > best and secret.startswith(text[at:]):
                    best = n - at
                at = text.rfind(first, max(0, n - len(secret) + 1), at)
        return best

    def flush(self) -> dict[Any, str]:
        """What the channels held, to go out now (the stream ends, or a channel's text ends)."""
        held, self.held = self.held, {}
        return held


def scrub_value(value: Any, secrets: str | Iterable[str | None] | None) -> Any:
    """A JSON value with every string in it (keys too) scrubbed as `scrub_text` does; `value` itself when none
    changed."""
    found = _secrets(secrets)
    return _scrub_doc(value, found)[0] if found else value


def _scrub_doc(node: Any, secrets: list[str]) -> tuple[Any, bool]:
    if isinstance(node, str):
        out = scrub_text(node, secrets)
        return out, out != node
    if isinstance(node, list):
        changed = False
        items = []
        for v in node:
            v2, c = _scrub_doc(v, secrets)
            items.append(v2)
            changed |= c
        return items, changed
    if isinstance(node, dict):
        changed = False
        obj = {}
        for k, v in node.items():
            k2, ck = _scrub_doc(k, secrets)
            v2, cv = _scrub_doc(v, secrets)
            obj[k2] = v2
            changed |= ck or cv
        return obj, changed
    return node, False


_SHORT_ESCAPED = frozenset('"\\/\b\f\n\r\t')  # what a JSON escape other than \uXXXX can stand for
WITHHELD = (b'{"error": {"message": "The upstream\'s answer held a configured credential; it was withheld.", '
            b'"type": "upstream_error", "code": "upstream_credential_withheld"}}')
_ESCAPE = re.compile(rb'\\(?:u([0-9a-fA-F]{4})|(["\\/bfnrt]))')
_ESCAPED_CHAR = {b'"': b'"', b"\\": b"\\", b"/": b"/", b"b": b"\b", b"f": b"\f", b"n": b"\n", b"r": b"\r",
                 b"t": b"\t"}


def _unescaped(match: re.Match[bytes]) -> bytes:
    code, short = match.group(1), match.group(2)
    if short is not None:
        return _ESCAPED_CHAR[short]
    return chr(int(code, 16)).encode("utf-8", "replace")


def _spelled(body: bytes, raws: list[bytes]) -> bool:
    """Whether a secret can be read in `body` once its JSON escapes, its percent-encoding, or both, are decoded
    (whatever the body is: JSON or not, parsable or not)."""
    forms = [body]
    if b"\\" in body:
        forms.append(_ESCAPE.sub(_unescaped, body))
        if b"\\" in forms[-1]:  # escapes written as text inside a JSON string (a model can)
            forms.append(_ESCAPE.sub(_unescaped, forms[-1]))
    if b"%" in forms[-1]:  # percent-encoded, its percent signs as they are or JSON-escaped
        forms += [urllib.parse.unquote_to_bytes(f) for f in list(forms) if b"%" in f]
        if b"\\" in forms[-1]:  # escapes percent-encoded
            forms.append(_ESCAPE.sub(_unescaped, forms[-1]))
    return any(r in f for f in forms[1:] for r in raws)


def scrub_body(body: bytes, secrets: str | Iterable[str | None] | None) -> bytes:
    """`body` with every secret redacted, literal, JSON-escaped or percent-encoded: the literal form by a byte
    replace, an escaped one by redacting the decoded JSON document's strings. A body in which a secret can still be
    read after that (not JSON, JSON the standard library refuses, a duplicate key, a percent-encoding) is withheld
    whole (`WITHHELD`, an OpenAI-shaped error)."""
    found = _secrets(secrets)
    if not found or not body:
        return body
    body = scrub_literal(body, found)
    marker = b"\\" if any(c in _SHORT_ESCAPED for s in found for c in s) else b"\\u"
    if marker not in body and b"%" not in body:  # no escape that could spell a secret: the byte replace saw it all
        return body
    raws = [s.encode() for s in found]
    if not _spelled(body, raws):
        return body
    try:
        doc, changed = _scrub_doc(json.loads(body), found)
    except (ValueError, RecursionError):
        return WITHHELD
    out = json.dumps(doc, ensure_ascii=False).encode("utf-8", "backslashreplace") if changed else body
    return WITHHELD if _spelled(out, raws) else out


@functools.lru_cache(maxsize=64)  # an upstream sends the same one or two values on every reply
def _content_type(value: str | None) -> str | None:
    if not value:
        return None
    media, _, params = value.partition(";")
    media = media.strip().lower()
    if media not in _MEDIA_TYPES:
        return "text/plain" if media.startswith("text/") else "application/octet-stream"
    charset = re.search(r"charset\s*=\s*\"?([A-Za-z0-9_-]+)", params)
    if charset and charset.group(1).lower() == "utf-8":
        return f"{media}; charset=utf-8"
    return media


def _retry_after(value: str | None) -> str | None:
    if not value or len(value) > 64:
        return None
    seconds = parse_retry_after(value)
    if seconds is None or math.isnan(seconds):
        return None
    return str(min(MAX_RETRY_AFTER, math.ceil(seconds)))


CONSTRAINT_LABELS = frozenset({"tools", "tools_lazy", "json", "none", "off", "fallback", "broken",
                               "unsupported_format", "unsupported_trigger", "no_trigger"})


def safe_headers(raw: Mapping[str, str], secrets: str | Iterable[str | None] | None = None) -> dict[str, str]:
    """The upstream response headers the router reads, rebuilt from validated values: `Content-Type` (one of a few
    media types), `Retry-After` (whole seconds), `x-agentgate-repairs` (repair kind names),
    `x-agentgate-constrained` (one of a local engine's constraint labels) and `x-agentgate-repaired` (a repair
    mode, "repair" or "detect"). Everything else is dropped."""
    out: dict[str, str] = {}
    ctype = _content_type(raw.get("Content-Type"))
    if ctype:
        out["Content-Type"] = ctype
    retry = _retry_after(raw.get("Retry-After"))
    if retry is not None:
        out["Retry-After"] = retry
    repairs = raw.get("x-agentgate-repairs")
    if repairs and _REPAIR_KINDS.fullmatch(repairs) and scrub_text(repairs, secrets) == repairs:
        out["x-agentgate-repairs"] = repairs
    constrained = raw.get("x-agentgate-constrained")
    if constrained in CONSTRAINT_LABELS:
        out["x-agentgate-constrained"] = constrained
    repaired = raw.get("x-agentgate-repaired")
    if repaired in ("repair", "detect"):
        out["x-agentgate-repaired"] = repaired
    return out
