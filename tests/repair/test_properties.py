"""Properties: arbitrary text never raises, results keep their invariants, streaming always agrees with the
one-shot path, and adversarial inputs finish."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from repair import StreamRepairer, repair_message
from tests.repair.corpus import TOOLS
from tests.repair.helpers import ids, stream
from tests.repair.work import Work

DECLARED = {t["function"]["name"] for t in TOOLS}

FRAGMENTS = [
    "<tool_call>", "</tool_call>", "</tool_call", "<tool_call|>", "<|tool_call>", "<function=", "<function=read_file>",
    "</function>", "<parameter=path>", "</parameter>", "<arg_key>", "</arg_key>", "<arg_value>", "</arg_value>",
    "<|python_tag|>", "<|eom_id|>", "<|tool_call_start|>", "<|tool_call_end|>", "[TOOL_CALLS]", "[ARGS]",
    "[CALL_ID]", "<｜tool▁calls▁begin｜>", "<｜tool▁call▁begin｜>", "<｜tool▁sep｜>", "<｜tool▁call▁end｜>",
    "<｜tool▁calls▁end｜>", "<|tool_calls_section_begin|>", "<|tool_call_begin|>", "<|tool_call_argument_begin|>",
    "<|tool_call_end|>", "<|tool_calls_section_end|>", "<|start|>assistant", "<|channel|>", "analysis", "final",
    "commentary to=functions.read_file", "<|constrain|>json", "<|message|>", "<|end|>", "<|call|>", "<|return|>",
    "call:read_file", '<|"|>', "<start_function_call>", "<escape>", "<think>", "</think>", "```json", "```", "\n",
    "\n\n", " ", "{", "}", "[", "]", "(", ")", '"', "'", ":", ",", ";", "\\", "\\n", '{"name": "read_file"',
    '"arguments": {', '"path": "a.py"', "read_file", "get_time", "Read_File", "functions.", "[read_file(",
    "path='x'", "Tool call: ", "[Tool call: get_time(", "True", "None", "null", "5", "2.5", "é", "日本", "\t", "`",
    "`x`",
]

texts = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=6)), max_size=40).map("".join)


def _check_invariants(text: str | None, tools: list | None, r) -> None:
    assert r.content is None or isinstance(r.content, str)
    assert r.reasoning_content is None or isinstance(r.reasoning_content, str)
    assert r.outcome in ("none", "valid", "repaired", "failed")
    if not tools:
        assert r.tool_calls == []
    seen = set()
    for c in r.tool_calls:
        assert c["type"] == "function"
        assert c["function"]["name"] in DECLARED
        assert isinstance(json.loads(c["function"]["arguments"]), dict)
        assert c["id"] not in seen
        seen.add(c["id"])
    untouched = not (r.tool_calls or r.repairs or r.errors or r.reasoning_content or r.format)
    if untouched and "<think>" not in (text or ""):
        assert r.content == text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_arbitrary_text_never_raises(text: str) -> None:
    for tools in (TOOLS, None):
        r = repair_message(text, tools, id_factory=ids)
        _check_invariants(text, tools, r)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts)
def test_text_around_markers_never_raises(text: str) -> None:
    for tools in (TOOLS, None):
        r = repair_message(text, tools, id_factory=ids)
        _check_invariants(text, tools, r)
        d = repair_message(text, tools, id_factory=ids, mode="detect")
        _check_invariants(text, tools, d)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts, st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=30), st.booleans())
def test_stream_agrees_with_one_shot(text: str, sizes: list[int], with_tools: bool) -> None:
    tools = TOOLS if with_tools else None
    chunks, i, k = [], 0, 0
    while i < len(text):
        n = sizes[k % len(sizes)]
        chunks.append(text[i:i + n])
        i, k = i + n, k + 1
    expected = repair_message(text if chunks else None, tools, id_factory=ids)
    result, content, reasoning, calls = stream(chunks, tools)
    assert result == expected
    assert content == (expected.content or "")
    assert reasoning == (expected.reasoning_content or "")
    assert [c.name for c in calls] == [c["function"]["name"] for c in expected.tool_calls]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(
    json_values,
    st.fixed_dictionaries({"id": st.text(max_size=5), "type": st.just("function"), "function": st.fixed_dictionaries(
        {"name": st.sampled_from(["read_file", "get_time", "nope", "Read-File"]),
         "arguments": st.one_of(st.text(max_size=30), json_values)})})), max_size=4))
@example([{"id": "", "type": "function", "function": {"name": "get_time", "arguments": "null"}}])  # went out "null"
def test_structured_calls_never_raise(calls: list) -> None:
    r = repair_message(None, TOOLS, tool_calls=calls, id_factory=ids)
    _check_invariants(None, TOOLS, r)


def _adversarial() -> dict[str, str]:
    n = 65536
    return {k: v[:n] for k, v in {
        "braces": "{" * n,
        "brackets": "[" * n,
        "nested_calls": '{"name": "read_file", "arguments": {"x": [' * 2000,
        "repeated_markers": "<tool_call>" * 6000,
        "unclosed_calls": '<tool_call>{"name": "read_file", "arguments": {"path": "' * 1200,
        "unclosed_quotes": '"\\"' * 22000,
        "quotes_in_block": '<tool_call>{"a": "' + '\\"' * 33000,
        "single_quotes": "<tool_call>{'name': 'read_file', 'arguments': {'path': '" + "a'b" * 22000,
        "commas": '<tool_call>{"name": "read_file", "arguments": {"path": "a", ' + '"k": 1,' * 9000,
        "think": "<think>\n" * 8200,
        "pythonic": "\n[read_file(path='x')]" * 3200,
        "json_objects": '{"name": "read_file", "arguments": {"path": a}}\n' * 1400,
        "qwen": "<tool_call><function=read_file>\n<parameter=path>\n" * 1500,
        "glm": "<tool_call>read_file<arg_key>p</arg_key><arg_value>" * 1500,
        "deepseek": "<｜tool▁call▁begin｜>read_file<｜tool▁sep｜>{\"a\": [" * 1500,
        "mistral": '[TOOL_CALLS]read_file[ARGS]{"a": [' * 2200,
        "gemma": "<|tool_call>call:read_file{a:{b:{" * 2200,
        "whitespace": " " * n,
        "harmony_recipient": "assistant to=functions.read_file commentary json\n{\"path\": [" * 1200,
        "arrow": '[TOOL_CALL]\n{tool => "read_file", args => {\n--path "a' * 1500,
        "arrow_flags": '[TOOL_CALL]\n{tool => "read_file", args => {\n' + '--path x\n' * 7000,
        "harmony_recipients": "to=functions.read_file " * 3000,
    }.items()}


@pytest.mark.parametrize("name", list(_adversarial()))
def test_adversarial_inputs_finish(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each input is read a few times at most, with and without tools: forward searches read a few lengths of the
    text, and candidates and closing tags are looked at less than once a character (runaway work, not load)."""
    text = _adversarial()[name]
    assert len(text) >= 60000
    work = Work(monkeypatch, limit=16 * len(text))
    r = repair_message(text, TOOLS)
    r2 = repair_message(text, None)
    assert work.scanned <= 8 * len(text)
    assert work.candidates + work.closers <= len(text)
    monkeypatch.undo()
    _check_invariants(text, TOOLS, r)
    _check_invariants(text, None, r2)
    sr = StreamRepairer(TOOLS, id_factory=ids)
    for i in range(0, len(text), 64):
        sr.feed(text[i:i + 64])
    sr.finish()
    assert sr.result == repair_message(text, TOOLS, id_factory=ids)


def _reference_scan(finder, text: str, start: int) -> tuple[int, int]:
    """scan_stream as one search of the whole partial pattern (what the per-character scan must equal)."""
    from repair.markers import MATCH, NO, PARTIAL

    hit = finder._find(text, start, None, -1, True)  # (a stream's: a line-decided candidate, its line open, may
    stop = hit[0] if hit is not None else len(text)  # still become a call: partial)
    m = finder._set.partial.search(text, max(start, len(text) - finder.max_len))
    if m is not None and m.start() < stop:
        return PARTIAL, m.start()
    if hit is not None:
        return (PARTIAL if hit[2] else MATCH), hit[0]
    return NO, len(text)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts, st.integers(min_value=0, max_value=40))
def test_stream_scan_agrees_with_one_partial_search(text: str, start: int) -> None:
    from repair.core import INSIDE_THINK, finder_for
    from repair.index import ToolIndex
    from repair.markers import CandidateFinder

    index = ToolIndex.of(TOOLS)
    start = min(start, len(text))
    for finder in (finder_for(index), finder_for(ToolIndex.of(None)), CandidateFinder(INSIDE_THINK, index.resolve)):
        for s in {0, start}:
            assert finder.scan_stream(text, s) == _reference_scan(finder, text, s)
            assert finder.scan_stream(text[:s], 0) == _reference_scan(finder, text[:s], 0)
