"""Qwen3-Coder's opener slip (`<parameter=name>` for `<function=name>`) is a call unless it sits inside an open
<function=...> block, where it is that call's parameter. Only a real header opens a block: one outside inline code
with a body after it; a header quoted in a code span or named in a sentence opens nothing."""

from __future__ import annotations

import pytest

from repair import repair_message
from tests.repair.helpers import assert_stream_matches, calls_of, ids

TOOLS = [{"type": "function", "function": {"name": name, "parameters": {
    "type": "object", "properties": {key: {"type": "string"}}, "required": [key]}}}
    for name, key in (("bash", "command"), ("read_file", "path"))]
SLIP = "<parameter=bash>\n<parameter=command>\nls\n</parameter>\n</function>"


@pytest.mark.parametrize("before", [
    "Calls look like `<function=name>`, so:\n",
    "Written as ``<function=bash>\n<parameter=command>`` it would be the usual form; here:\n",
    "I will write <function=bash> for it.\n",
], ids=["inline_code", "code_span_with_body", "sentence"])
def test_a_header_quoted_before_the_slip_opens_no_block(before: str) -> None:
    text = before + SLIP
    r = repair_message(text, TOOLS, id_factory=ids)
    assert calls_of(r) == [("bash", {"command": "ls"})]
    assert "opening_tag" in {x.kind for x in r.repairs}
    assert r.content is not None and r.content.startswith(before.rstrip("\n"))
    assert_stream_matches(text, TOOLS)


@pytest.mark.parametrize("header", ["<function=read_file>", "<function=read_file"], ids=["whole", "without_gt"])
def test_a_real_unclosed_header_keeps_the_slip_its_parameter(header: str) -> None:
    """`<function=read_file>` (or with its '>' left out, as the parser reads it too) with its parameters and no
    </function>: a `<parameter=bash>` after it is no call of its own (the read_file call is read as far as it goes;
    the rest stays text)."""
    text = header + "\n<parameter=path>\na.py\n</parameter>\nand then\n" + SLIP
    r = repair_message(text, TOOLS, id_factory=ids)
    assert calls_of(r) == [("read_file", {"path": "a.py"})]
    assert r.content is not None and SLIP in r.content
    assert_stream_matches(text, TOOLS)


def test_a_real_header_behind_a_quoted_one_keeps_the_block_open() -> None:
    text = "<function=read_file>\n<parameter=path>\na.py\n</parameter>\nnot `<function=x>` but\n" + SLIP
    r = repair_message(text, TOOLS, id_factory=ids)
    assert calls_of(r) == [("read_file", {"path": "a.py"})]
    assert r.content is not None and SLIP in r.content
