"""gpt-oss harmony: <|start|>assistant<|channel|>commentary to=functions.x <|constrain|>json<|message|>{...}<|call|>.

The analysis channel becomes reasoning, final (and commentary without a recipient) becomes content.
"""

from __future__ import annotations

import re

from repair.formats.common import Ctx, add_notes, issue, skip_ws, stray_prose
from repair.formats.spec import Format, Template, aliases
from repair.markers import Kind, Lit, Name, OneOf
from repair.salvage import Decoded, Failed, decode_at
from repair.types import Parsed, RawCall, Segment

FAMILY = "harmony"
START = "<|start|>"
CHANNEL = "<|channel|>"
MESSAGE = "<|message|>"
START_MARKERS = (CHANNEL, START)
_ENDS = ("<|end|>", "<|call|>", "<|return|>")
_STOPS = (*_ENDS, START, CHANNEL)
_HEADER = re.compile(
    r"(?:<\|start\|>(?P<role>[^<\s]{0,64})(?P<pre>[^<]{0,200}))?"
    r"(?:<\|channel\|>(?P<chan>[^<\s]{0,64})(?P<post>[^<]{0,200}))?"
    r"(?:<\|constrain\|>[^<]{0,64})?"
    r"<\|message\|>"
)
_RECIPIENT = re.compile(r"\bto=([^\s<]+)")
_NEXT_WORD = re.compile(r"[ \t]+([^\s<{]+)")
_MAX_WORDS = 8
_HEADER_WORDS = frozenset({"json", "commentary"})  # the header's own words after a name (its constraint, channel)


def _spaced_name(name: str, text: str, at: int, end: int, ctx: Ctx) -> tuple[str, int]:
    """The recipient's name, run on over the words of its header after it (from `at`, not past `end`: those before
    the header's next token), and where it ends: the longest declared tool's name they spell whole (LM Studio's
    plugins declare names with spaces: `to=functions.Web Search Images <|constrain|>json` calls 'Web Search
    Images' beside 'Web Search'); else, where a longer run of them (up to the header's own words, `json`,
    `commentary`) spells none but is a near miss of a declared name by the name-drift rules (`repair.names`: `Read
    Files` for 'Read File', where 'Read' alone is declared too), the longest such run (resolved as a call's name
    is, reported `name_normalised`); else as cut at its first space."""
    runs = [(name, at)]
    own = 0  # the runs that hold only the name's words
    k, joined = at, name
    for _ in range(_MAX_WORDS):
        m = _NEXT_WORD.match(text, k, end)
        if m is None:
            break
        if not own and m.group(1).lower() in _HEADER_WORDS:
            own = len(runs)
        joined, k = f"{joined} {m.group(1)}", m.end()
        runs.append((joined, k))
    tools = ctx.index.tools
    best = next((i for i in range(len(runs) - 1, 0, -1) if runs[i][0] in tools), 0)
    for i in range((own or len(runs)) - 1, best, -1):
        if ctx.index.resolve(runs[i][0]) is not None:
            return runs[i]
    return runs[best]


def parse(text: str, p: int, ctx: Ctx) -> Parsed | None:
    n = len(text)
    m = _HEADER.match(text, p)
    if m is None or m.end() == p + len(MESSAGE):
        return None
    bs = m.end()
    stops = [(at, tok) for tok in _STOPS if (at := ctx.find(tok, bs)) != -1]
    be, tok = min(stops) if stops else (n, "")
    end = be + len(tok) if tok in _ENDS else be
    channel = (m.group("chan") or "").strip()
    pre = m.group("pre") or ""
    header = pre + " " + (m.group("post") or "")
    rm = _RECIPIENT.search(header)
    body = text[bs:be]
    if rm is not None:
        recipient = rm.group(1)
        name = recipient[len("functions."):] if recipient.startswith("functions.") else recipient
        # the words after the recipient up to its part's end: the role's header ends at <|channel|>
        name = _spaced_name(name, header, rm.end(), len(pre) if rm.end() <= len(pre) else len(header), ctx)[0]
        if name.endswith("json") and ctx.index.resolve(name) is None and ctx.index.resolve(name[:-4]) is not None:
            name = name[:-4]  # "to=functions.shelljson": the constraint glued to the name
        call = RawCall(name=name, family=FAMILY)
        prose = ""  # written after the arguments, before the call's end
        if not body.strip():
            call.arguments = {}
        else:
            # a marker bounds the arguments: one bracket missing before it is closed, as in the other formats
            got = decode_at(text, bs, be, max_closers=0 if be >= n else 1, budget=ctx.budget)
            if isinstance(got, Failed):
                call.failure = issue(got.kind, got.detail)
                if got.kind == "truncated":
                    end = n
            else:
                call.arguments = got.value
                add_notes(call, got.repairs)
                prose = stray_prose(call, text[got.end:be])
        if tok in (START, CHANNEL) and skip_ws(text, be) < n:
            call.repairs.append(issue("closing_tag", "<|call|> missing"))
        return Parsed(end, [Segment(p, end, "calls", FAMILY, [call], text=prose)])
    kind = "reasoning" if channel == "analysis" else "content"
    return Parsed(end, [Segment(p, end, kind, FAMILY, text=body)])


_STRIPPED = re.compile(r"commentary to=([^\s<{]{1,200})")
_STRIPPED_TAIL = re.compile(r"[ \t]*(?:<\|constrain\|>)?[ \t]*(?:json)?[ \t]*(?:<\|message\|>)?")
_CALL_END = re.compile(r"[ \t\r\n]*<\|(?:call|end)\|>")
_CALL_END_TOKEN = re.compile(r"<\|(?:call|end)\|>")


def _stripped_arguments(text: str, k: int, ctx: Ctx) -> Decoded | Failed:
    """The arguments at `k` of a call with its special tokens stripped; where `<|call|>` (or `<|end|>`) was kept
    and follows them, one bracket missing before it is closed, as where the tokens are all there."""
    got = decode_at(text, k, len(text), max_closers=0, budget=ctx.budget)
    if not isinstance(got, Failed):
        return got
    ce = ctx.find(_CALL_END_TOKEN, k)
    if ce == -1:
        return got
    closed = decode_at(text, k, ce, max_closers=1, budget=ctx.budget)
    if isinstance(closed, Failed) or text[closed.end:ce].strip(" \t\r\n"):
        return got
    return closed


def parse_stripped(text: str, p: int, ctx: Ctx) -> Parsed | None:
    """A harmony call with its special tokens removed (servers decoding with skip_special_tokens):
    `...assistantcommentary to=functions.get_weather json{"city": "Paris"}`."""
    m = _STRIPPED.match(text, p)
    return None if m is None else _stripped_call(text, p, m, _STRIPPED_TAIL, ctx)


_RECIPIENT_FIRST = re.compile(r"(?:assistant[ \t]?)?to=functions\.([^\s<{]{1,200})")
_RECIPIENT_FIRST_TAIL = re.compile(
    r"[ \t]*(?:<\|channel\|>)?[ \t]*commentary[ \t]*(?:<\|constrain\|>)?[ \t]*(?:json)?[ \t]*(?:<\|message\|>)?")


def _header_on_line(text: str, p: int, end: int) -> bool:
    """Whether the line of a recipient-first candidate holds the header's `commentary` (which `_RECIPIENT_FIRST_TAIL`
    needs on the recipient's line): where it does not, the handler refuses it and a stream sends the line."""
    return text.find("commentary", p, end) != -1


def parse_recipient_first(text: str, p: int, ctx: Ctx) -> Parsed | None:
    """The same with the recipient in the role's header, before the channel (harmony allows it there):
    `assistant to=functions.exec_command commentary json\n{"cmd": "ls"}`."""
    m = _RECIPIENT_FIRST.match(text, p)
    return None if m is None else _stripped_call(text, p, m, _RECIPIENT_FIRST_TAIL, ctx)


def _stripped_call(text: str, p: int, m: re.Match[str], tail: re.Pattern[str], ctx: Ctx) -> Parsed | None:
    """The call whose recipient `m` read (its first word), the rest of its header `tail`: the recipient read on
    over its next words as with the tokens (`_spaced_name`), the header then, the arguments right after it. None
    where no arguments follow, or the recipient names no declared tool (a kind that found it by its words alone)."""
    n = len(text)
    recipient = m.group(1)
    name = recipient[len("functions."):] if recipient.startswith("functions.") else recipient
    name, k = _spaced_name(name, text, m.end(), n, ctx)
    t = tail.match(text, k)
    if t is None:  # (the recipient-first header's `commentary` missing: a sentence naming `to=functions.X`)
        return None
    k = skip_ws(text, t.end())
    if k >= n or text[k] != "{" or ctx.index.resolve(name) is None:
        return None
    call = RawCall(name=name, family=FAMILY)
    got = _stripped_arguments(text, k, ctx)
    if isinstance(got, Failed):
        call.failure = issue(got.kind, got.detail)
        return Parsed(n if got.kind == "truncated" else max(got.end, k + 1),
                      [Segment(p, n if got.kind == "truncated" else max(got.end, k + 1), "calls", FAMILY, [call])])
    call.arguments = got.value
    add_notes(call, got.repairs)
    em = _CALL_END.match(text, got.end)
    end = em.end() if em is not None else got.end
    return Parsed(end, [Segment(p, end, "calls", FAMILY, [call])])


FORMAT = Format(
    (FAMILY,),
    (Kind("harmony", (OneOf(START_MARKERS),), parse),
     Kind("harmony_stripped", (Lit("commentary to="), Name(64, (" ", "<", "{"))), parse_stripped, generic=True),
     Kind("harmony_stripped_recipient", (OneOf(("assistant to=functions.", "assistantto=functions.")),
                                         Name(64, (" ", "\t", "<"))), parse_recipient_first, generic=True,
          line_check=_header_on_line),
     Kind("harmony_stripped_recipient_bare", (Lit("to=functions."), Name(64, (" ", "\t", "<"))),
          parse_recipient_first, line_start=True, generic=True, line_check=_header_on_line),
     # the same where the recipient's first word names no tool and only its words with spaces may (`Web Search`):
     # the handler reads them and refuses a name that resolves to no declared tool
     Kind("harmony_stripped_spaced", (Lit("commentary to=functions."),), parse_stripped, generic=True),
     Kind("harmony_stripped_recipient_spaced", (OneOf(("assistant to=functions.", "assistantto=functions.")),),
          parse_recipient_first, generic=True, line_check=_header_on_line),
     Kind("harmony_stripped_recipient_bare_spaced", (Lit("to=functions."),), parse_recipient_first, line_start=True,
          generic=True, line_check=_header_on_line)),
    aliases(FAMILY, "harmony", "gpt_oss", "openai"),
    (Template(FAMILY, (CHANNEL, MESSAGE), rank=1),))
