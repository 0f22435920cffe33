"""Keeping a provider's credentials out of what reaches the client: upstream bodies and upstream headers.

`scrub_body` redacts a secret from a body whether it appears literally or JSON-escaped (`\\u0073k-...`): the
literal form by a byte replace, the escaped forms by decoding the JSON and redacting the decoded strings. A part
of a secret that gives it away (a key quoted cut short or masked but for a long beginning or end, as providers quote
the key they refused) is redacted with it (`cut_partials`).
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
from typing import Any, AnyStr

from .resilience import parse_retry_after

REDACTED = "[redacted]"
MAX_RETRY_AFTER = 86_400  # a longer Retry-After is cut to a day

_MEDIA_TYPES = frozenset({
    "application/json", "text/event-stream", "text/plain", "text/html", "application/problem+json",
    "application/x-ndjson", "application/octet-stream",
})
_REPAIR_KINDS = re.compile(r"[a-z][a-z0-9_]{0,47}(,[a-z][a-z0-9_]{0,47}){0,15}")


def _secrets(secrets: str | Iterable[str | None] | None) -> tuple[str, ...]:
    """The secrets given, each once (a tuple: what `secret_forms` and `escaped_pattern` cache by)."""
    if secrets is None:
        return ()
    items = [secrets] if isinstance(secrets, str) else list(secrets)
    return tuple(sorted({s for s in items if s}))


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
def whole_forms(secrets: tuple[str, ...]) -> tuple[str, ...]:
    """What spells one of `secrets` whole in text, longest first: each secret, and its base64 spellings (an
    upstream echoing the `Authorization` header it got, or a Basic token, writes the key in base64)."""
    forms = {s for s in secrets if s}
    for s in secrets:
        if len(s) >= MIN_BASE64_SECRET:
            forms |= _base64_cores(s.encode())
    return tuple(sorted(forms, key=len, reverse=True))


@functools.lru_cache(maxsize=64)
def secret_forms(secrets: tuple[str, ...]) -> tuple[str, ...]:
    """What text holding one of `secrets` holds, longest first: `whole_forms`, and the shortest beginning and end
    of each secret that give it away (`partial_spellings`: a key quoted cut short). Replacing these alone leaves
    the rest of a key cut short around them: `cut_partials` takes all of it."""
    forms = set(whole_forms(secrets))
    for _, head, tail in partial_spellings(secrets):
        forms |= {head, tail}
    return tuple(sorted(forms, key=len, reverse=True))


PARTIAL = 5  # characters of a secret's own (past its public prefix) at its beginning or end that give it away;
# fewer are what a provider's masked key shows ("sk-proj-****...WBcA")
MIN_OWN = 16  # a secret with fewer characters of its own has no partial spelling looked for (a placeholder)
MIN_HEAD = 8  # nor a beginning shorter than this (every key of a provider begins "AIzaSy")
MIN_TAIL = 8  # nor an end shorter than this: five characters stand in text by chance (a word, a number)
_PUBLIC_FIXED = ("AIzaSy",)  # public prefixes not made of lower-case segments (every Google API key begins so)
_PUBLIC_SEGMENT = re.compile(r"[a-z0-9]{1,8}[-_]")  # "sk-", "proj-", "ant-", "api03-": what every key begins with


def _public_prefix(secret: str) -> int | None:
    """How many characters of `secret` are the public prefix of its kind ("sk-proj-", "sk-ant-api03-", "gsk_"):
    up to three short lower-case segments, each ended by "-" or "_", as many as leave `MIN_OWN` characters after
    them; None when even the whole secret is shorter than that."""
    ends, at = [0], 0
    for fixed in _PUBLIC_FIXED:
        if secret.startswith(fixed):
            ends, at = [len(fixed)], len(fixed)
            break
    for _ in range(3):
        m = _PUBLIC_SEGMENT.match(secret, at)
        if m is None:
            break
        at = m.end()
        ends.append(at)
    fits = [end for end in ends if len(secret) - end >= MIN_OWN]
    return max(fits) if fits else None


@functools.lru_cache(maxsize=64)
def partial_spellings(secrets: tuple[str, ...]) -> tuple[tuple[str, str, str], ...]:
    """(secret, head, tail) for each of `secrets` long enough and generated-looking: `head` the shortest beginning
    of it that gives it away (its public prefix and `PARTIAL` characters more, at least `MIN_HEAD`), `tail` its last
    `MIN_TAIL` characters. Any text that holds one and goes on (head) or began (tail) as the secret does is a part
    of it."""
    out = []
    for s in sorted({s for s in secrets if s}, key=len, reverse=True):
        public = _public_prefix(s)
        if public is not None and _random_looking(s[public:]) and not _jwt(s):
            out.append((s, s[:max(public + PARTIAL, MIN_HEAD)], s[-max(PARTIAL, MIN_TAIL):]))
    return tuple(out)


def _jwt(secret: str) -> bool:
    """Whether `secret` is a JSON Web Token: its beginning is the header every token of its kind shares
    ("eyJhbGci..."), so no part of it gives it away (the token is looked for whole)."""
    return secret.startswith("eyJ") and secret.count(".") == 2


def _random_looking(own: str) -> bool:
    """Whether a secret's own characters mix at least two of digits, capitals and small letters, as a generated
    key's do: a key of words (a local server's placeholder, "sk-no-key-required") has its words everywhere, and a
    part of it gives nothing away."""
    kinds = (any(c.isdigit() for c in own), any(c.isupper() for c in own), any(c.islower() for c in own))
    return sum(kinds) >= 2


@functools.lru_cache(maxsize=64)
def _partial_bytes(secrets: tuple[str, ...]) -> tuple[tuple[bytes, bytes, bytes], ...]:
    return tuple((s.encode(), h.encode(), t.encode()) for s, h, t in partial_spellings(secrets))


def part_around(text: AnyStr, start: int, end: int, secret: AnyStr, head: bool) -> tuple[int, int]:
    """The run of `text` around `text[start:end]` (a head or a tail of `secret`, see `partial_spellings`) that
    is a part of `secret`: a head goes on as the secret does, a tail began as it did."""
    n = len(secret)
    if head:
        while end - start < n and end < len(text) and text[end:end + 1] == secret[end - start:end - start + 1]:
            end += 1
        return start, end
    while end - start < n and start > 0 and text[start - 1:start] == secret[n - (end - start) - 1:n - (end - start)]:
        start -= 1
    return start, end


def cut_partials(text: AnyStr, secrets: tuple[str, ...]) -> AnyStr:
    """`text` (str or bytes) with every beginning or end of a secret that gives it away (a key quoted cut short,
    or masked in the middle but for more than a few characters: see `partial_spellings`) replaced by
    `[redacted]`; a whole secret is one such part."""
    if isinstance(text, str):
        parts: tuple[tuple[Any, Any, Any], ...] = partial_spellings(secrets)
        redacted: Any = REDACTED
    else:
        parts, redacted = _partial_bytes(secrets), REDACTED.encode()
    for secret, head, tail in parts:
        for needle, is_head in ((head, True), (tail, False)):
            i = text.find(needle)
            if i < 0:
                continue
            out, at = [], 0
            while i >= 0:
                start, end = part_around(text, i, i + len(needle), secret, is_head)
                start = max(start, at)
                out += [text[at:start], redacted]
                at = end
                i = text.find(needle, end)
            out.append(text[at:])
            text = text[:0].join(out)
    return text


def _hex(value: int, digits: int) -> str:
    return "".join(f"[{d}{d.upper()}]" if d.isalpha() else d for d in f"{value:0{digits}x}")


@functools.lru_cache(maxsize=64)
def escaped_pattern(secrets: tuple[str, ...]) -> re.Pattern[str] | None:
    """What spells one of `secrets` with any of its characters written as a JSON `\\uXXXX` escape or a
    percent-encoding (as text: a model can write them, and repair decodes them), any case of hex digits."""
    alternatives = []
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        alternatives.append("".join(_char_pattern(c) for c in secret))
    return re.compile("|".join(alternatives)) if alternatives else None


def _char_pattern(c: str) -> str:
    """The spellings of one character of a secret: itself, `\\uXXXX`, `%XX`, and `\\/`, `\\"` or `\\\\` for
    those three."""
    if ord(c) >= 128:
        return re.escape(c)
    short = f"|\\\\{re.escape(c)}" if c in _SHORT_ESCAPABLE else ""
    return f"(?:{re.escape(c)}|\\\\u{_hex(ord(c), 4)}|%{_hex(ord(c), 2)}{short})"


_SHORT_ESCAPABLE = frozenset('/"\\')  # what JSON also writes as a backslash and itself


def scrub_text(text: str, secrets: str | Iterable[str | None] | None) -> str:
    """`text` (already decoded) with every secret replaced by `[redacted]`: literal, in base64, or spelled with
    JSON escapes or percent-encodings."""
    found = _secrets(secrets)
    for s in whole_forms(found):
        if s in text:
            text = text.replace(s, REDACTED)
    if found and ("\\" in text or "%" in text):
        pattern = escaped_pattern(found)
        if pattern is not None:
            text = pattern.sub(REDACTED, text)
    return cut_partials(text, found)  # (after the escaped spellings: a secret's end is not one of them cut short)


def scrub_literal(data: bytes, secrets: str | Iterable[str | None] | None) -> bytes:
    """`data` with every literal occurrence of a secret (or of its base64 spelling), and of a part of one that
    gives it away (`cut_partials`), redacted (for bytes we encoded ourselves, where a decoded secret shows
    literally)."""
    found = _secrets(secrets)
    return cut_partials(_whole_literal(data, found), found)


def _whole_literal(data: bytes, found: tuple[str, ...]) -> bytes:
    for s in whole_forms(found):
        raw = s.encode()
        if raw in data:
            data = data.replace(raw, REDACTED.encode())
    return data


SHORT_HELD = 4  # held text this short goes out as it is when its channel ends: no secret is told by its first 4


class SecretGate:
    """The text a stream sends on its channels (content, reasoning, each call's arguments, ...), with every secret
    redacted even when no one piece holds it whole: a piece's end that could begin a secret (literally, or spelled
    with JSON escapes or percent-encodings, an escape cut short included) waits for the next piece on its channel.
    What the router sends is judged, after repair decoded escapes in the model's text and joined pieces the
    upstream sent apart. Each channel remembers the end of what it sent: a secret that begins there (what a
    channel held went out early, see `release`) has the rest of it redacted. Base64 spellings are redacted within
    a piece."""

    __slots__ = ("_any", "_behind", "_firsts", "_parts", "_public", "_sent", "_window", "held", "secrets")
    # `_sent`: for a channel that let out the beginning of a spelling (`release`, or its end), the end of what it
    # sent since (up to `_window` characters): a secret that began there is cut when it goes on, and how much of it
    # went out counts (once more than SHORT_HELD characters of one, the rest is `[redacted]`)

    def __init__(self, secrets: tuple[str, ...]) -> None:
        self.secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))
        forms = secret_forms(self.secrets)
        escaped = escaped_pattern(self.secrets)
        alternatives = [re.escape(f) for f in forms] + ([escaped.pattern] if escaped is not None else [])
        self._any = re.compile("|".join(alternatives)) if alternatives else None
        # a head or tail found (`partial_spellings`): its secret, and whether it is the head
        self._parts = {needle: (s, needle == head) for s, head, tail in partial_spellings(self.secrets)
                       for needle in (head, tail)}
        # the longest public prefix of a key with parts: a beginning no longer than it tells no key
        self._public = max((_public_prefix(s) or 0 for s, _, _ in partial_spellings(self.secrets)), default=0)
        self._behind: set[Any] = set()  # channels whose `_sent` is only the last MIN_TAIL - 1 characters sent
        firsts = {s[0] for s in self.secrets} | {"\\", "%"}
        self._firsts = re.compile("[" + "".join(re.escape(c) for c in sorted(firsts)) + "]")
        self._window = 6 * max((len(s) for s in self.secrets), default=0)  # the longest spelling
        self.held: dict[Any, str] = {}
        self._sent: dict[Any, str] = {}  # the end of what each channel sent (up to `_window` characters)

    def text(self, channel: Any, text: str, final: bool = False) -> str:
        """What of `text` (and of what `channel` held) goes out now; `final`: all of it (the channel ends)."""
        held = self.held.pop(channel, "")
        if not held and not text:
            return text
        sent = self._sent.get(channel, "")
        combined = sent + held + text
        start = len(sent)
        if combined.find(REDACTED, start) >= 0:
            combined = self._absorbed(combined, start)
        out: list[str] = []
        at = start  # what is written up to here
        end = len(combined)
        last = 0  # where the last secret found ends
        if self._any is not None:
            for m in self._any.finditer(combined):
                if m.end() <= at:  # (sent before, or in a part of a secret already cut)
                    continue
                cut_from, cut_to = m.start(), m.end()
                part = self._parts.get(m.group())
                if part is not None:  # the whole part of the secret around it (what went out stays out)
                    cut_from, cut_to = part_around(combined, cut_from, cut_to, part[0], part[1])
                    if part[1] and cut_to == end and not final and cut_to - cut_from < len(part[0]):
                        break  # the secret may go on in the next piece: held from its beginning (below)
                out.append(combined[at:max(cut_from, at)])
                out.append(REDACTED)
                at = last = cut_to
        begins = self._spelling_begins(combined, max(last, end - self._window, 0))
        keep = end - max(begins, start)
        out.append(combined[at:end - keep])
        if keep and final:  # the channel ends on the beginning of a secret: cut short, or not one (when short)
            out.append(combined[end - keep:] if end - begins <= SHORT_HELD else REDACTED)
            self._sent[channel] = combined[max(0, end - self._window):]
            self._behind.discard(channel)
            return "".join(out)
        if keep:
            self.held[channel] = combined[end - keep:]
        if sent and channel not in self._behind and len(combined) - keep - start < self._window:  # remembered
            self._sent[channel] = combined[max(0, end - keep - self._window):end - keep]  # while a secret begun in
            # it could still go on
        elif self._parts:
            # the last characters sent: a key's end that comes over two pieces is found (what went out stays out)
            self._behind.add(channel)
            self._sent[channel] = combined[max(0, end - keep - MIN_TAIL + 1):end - keep]
        elif sent:
            del self._sent[channel]
        return "".join(out)

    def _absorbed(self, combined: str, start: int) -> str:
        """`combined` without the beginning of a secret (more than SHORT_HELD characters of it, from `start` on)
        that stands right before a `[redacted]`: the end of that secret, cut before the gate saw it (an event is
        redacted whole first, and `cut_partials` takes the end of a secret it finds there), whose beginning came
        in an earlier piece (held here, or joined to it by repair)."""
        out, at = [], 0
        p = combined.find(REDACTED, start)
        while p >= 0:
            begins = self._spelling_begins(combined[:p], max(start, at, p - self._window))
            out.append(combined[at:begins if p - begins > max(SHORT_HELD, self._public) else p])
            at = p
            p = combined.find(REDACTED, p + len(REDACTED))
        out.append(combined[at:])
        return "".join(out)

    def release(self, channel: Any) -> str:
        """What `channel` held, to go out now though its text may not have ended (another kind of text comes
        next): as it is while no more than SHORT_HELD characters of one secret went out, else `[redacted]`."""
        held = self.held.pop(channel, "")
        return self.text(channel, held, final=True) if held else ""

    def _spelling_begins(self, text: str, lo: int) -> int:
        """Where the longest end of `text` (from `lo` on) that begins a spelling of a secret starts; len(text) when
        none does."""
        for m in self._firsts.finditer(text, lo):
            i = m.start()
            if any(_spells_start(text, i, s, 0) for s in self.secrets):
                return i
        return len(text)

    def flush(self) -> dict[Any, str]:
        """What the channels held, to go out now (the stream ends): each as `release` gives it."""
        return {channel: self.release(channel) for channel in list(self.held)}


def _spells_start(text: str, i: int, secret: str, j: int) -> bool:
    """Whether `text[i:]` begins a spelling of `secret[j:]` (each character as it is, as a JSON `\\uXXXX` escape,
    a percent-encoding, or `\\/`, `\\"`, `\\\\` for those, the last escape possibly cut short) without spelling all
    of it."""
    n = len(text)
    while i < n:
        if j == len(secret):
            return False
        c = secret[j]
        ch = text[i]
        if ch in "\\%" and ord(c) < 128:  # an escape, or the character itself when it is "\\" or "%"
            spellings = [f"\\u{ord(c):04x}", f"\\{c}"] if ch == "\\" else [f"%{ord(c):02x}"]
            for want in spellings:
                if want == f"\\{c}" and c not in _SHORT_ESCAPABLE:
                    continue
                got = text[i:i + len(want)].lower()
                if got == want[:len(got)].lower():
                    if len(got) < len(want):  # cut short at the end
                        return True
                    if _spells_start(text, i + len(want), secret, j + 1):
                        return True
            if ch != c:
                return False
        elif ch != c:
            return False
        i += 1
        j += 1
    return j < len(secret)


def scrub_value(value: Any, secrets: str | Iterable[str | None] | None) -> Any:
    """A JSON value with every string in it (keys too) scrubbed as `scrub_text` does; `value` itself when none
    changed."""
    found = _secrets(secrets)
    return _scrub_doc(value, found)[0] if found else value


def _scrub_doc(node: Any, secrets: tuple[str, ...]) -> tuple[Any, bool]:
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
    body = _whole_literal(body, found)
    forms = secret_forms(found)  # their base64 spellings, and the parts that give one away, too
    marker = b"\\" if any(c in _SHORT_ESCAPED for s in forms for c in s) else b"\\u"
    if marker not in body and b"%" not in body:  # no escape that could spell a secret: the byte replace saw it all
        return cut_partials(body, found)
    raws = [s.encode() for s in forms]
    if not _spelled(body, raws):
        return cut_partials(body, found)  # (after the escapes: a secret's end is not one of them cut short)
    try:
        doc, changed = _scrub_doc(json.loads(body), found)
    except (ValueError, RecursionError):
        return WITHHELD
    out = json.dumps(doc, ensure_ascii=False).encode("utf-8", "backslashreplace") if changed else body
    return WITHHELD if _spelled(out, raws) else cut_partials(out, found)


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
