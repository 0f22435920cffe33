"""Hunyuan-A13B's answer wrapper: `<think>\n...\n</think>\n<answer>\n...\n</answer>` (its calls, `<tool_calls>[...]
</tool_calls>`, inside the answer: read as `minimax`'s). The tags leave the content, as vLLM's `hunyuan_a13b`
reasoning parser takes them out, when they wrap the answer: `<answer>` right after a think block that opens the text
(decided there: a stream sends the answer on as it comes), `</answer>` after it at a line start with nothing but
whitespace after it. Anywhere else (in prose, in code, with no think block before it) an `<answer>` is the text's
own, and so is a `</answer>` with text after it."""

from __future__ import annotations

from repair.formats.common import Ctx, skip_ws
from repair.formats.spec import Format
from repair.markers import Kind, Lit
from repair.types import Parsed, Segment

FAMILY = "minimax"  # (vLLM's and SGLang's `hunyuan_a13b` tool parser: see `wrapped`)
OPEN, CLOSE = "<answer>", "</answer>"
_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"


def answer_at(text: str, ctx: Ctx | None = None) -> int:
    """Where the answer's `<answer>` begins: right after a think block that opens the text; -1 when none does."""
    i = skip_ws(text, 0)
    if not text.startswith(_THINK_OPEN, i):
        return -1
    close = ctx.find(_THINK_CLOSE, i) if ctx is not None else text.find(_THINK_CLOSE, i)
    if close == -1:
        return -1
    at = skip_ws(text, close + len(_THINK_CLOSE))
    return at if text.startswith(OPEN, at) else -1


def parse_open(text: str, p: int, ctx: Ctx) -> Parsed | None:
    if answer_at(text, ctx) != p:
        return None
    end = p + len(OPEN)
    return Parsed(end, [Segment(p, end, "content", FAMILY)])


def parse_close(text: str, p: int, ctx: Ctx) -> Parsed | None:
    end = p + len(CLOSE)
    if skip_ws(text, end) != len(text) or not -1 < answer_at(text, ctx) < p:
        return None
    return Parsed(end, [Segment(p, end, "content", FAMILY)])


FORMAT = Format(
    (),
    (Kind("hunyuan_answer", (Lit(OPEN),), parse_open, line_start=True, unfenced=True),
     Kind("hunyuan_answer_end", (Lit(CLOSE),), parse_close, line_start=True, unfenced=True)))
