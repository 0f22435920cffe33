"""The corpus: every case gives the expected calls, content and reports, one-shot and streamed."""

from __future__ import annotations

import zlib

import pytest

from repair import repair_message
from tests.repair.corpus import ALL, NEGATIVE, POSITIVE, TOOLS, Case
from tests.repair.helpers import assert_stream_matches, calls_of, ids

MARKERS = ("<tool_call>", "</tool_call>", "<function=", "<parameter=", "<|python_tag|>", "<|tool_call_start|>",
           "[TOOL_CALLS]", "tool▁call", "<arg_key>", "<|tool_call_begin|>", "<|channel|>", "<|tool_call>",
           "<start_function_call>", "[Tool call:", "<think>")


def _tools(case: Case) -> list[dict]:
    return TOOLS if case.tools is None else case.tools


def test_corpus_size() -> None:
    assert len(POSITIVE) >= 150
    assert len(NEGATIVE) >= 30
    assert len({c.id for c in ALL}) == len(ALL)


@pytest.mark.parametrize("case", ALL, ids=lambda c: c.id)
def test_case(case: Case) -> None:
    r = repair_message(case.text, _tools(case), id_factory=ids, **case.opts)
    assert calls_of(r) == case.calls
    assert r.content == case.content
    assert r.reasoning_content == case.reasoning
    kinds = {x.kind for x in r.repairs}
    assert set(case.repairs) <= kinds, r.repairs
    assert set(case.errors) <= {x.kind for x in r.errors}, r.errors
    if not case.errors:
        assert r.errors == [], r.errors
    if case.format is not None:
        assert r.format == case.format
    if case.outcome is not None:
        assert r.outcome == case.outcome, (r.repairs, r.errors)
    if r.tool_calls:
        assert [c["id"] for c in r.tool_calls] == [f"call_{i}" for i in range(len(r.tool_calls))]
        if not r.errors:  # failed calls keep their text; promoted ones never leave markup behind
            assert not any(m in (r.content or "") for m in MARKERS)
        msg = r.message()
        assert msg["role"] == "assistant" and msg["tool_calls"] == r.tool_calls


@pytest.mark.parametrize("case", ALL, ids=lambda c: c.id)
def test_case_streamed(case: Case) -> None:
    assert_stream_matches(case.text, _tools(case), seed=zlib.crc32(case.id.encode()), **case.opts)
