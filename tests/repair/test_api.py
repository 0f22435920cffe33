"""The public surface: families, template sniffing, upstream structured calls, policies, streaming events."""

from __future__ import annotations

import json

import pytest

from repair import (
    FAMILIES,
    ContentDelta,
    ReasoningDelta,
    StreamRepairer,
    ToolCallDelta,
    ToolIndex,
    family_for_parser_type,
    repair_message,
    sniff_template,
)
from tests.repair.corpus import TOOLS, render
from tests.repair.helpers import assert_stream_matches, calls_of, ids

RF = [("read_file", {"path": "a.py"})]


def test_families() -> None:
    assert set(FAMILIES) >= {
        "hermes", "qwen3_coder", "llama3", "pythonic", "mistral", "deepseek_v3", "deepseek_v31", "deepseek_v32",
        "deepseek_v4", "minimax_m2", "glm45", "kimi_k2", "harmony", "gemma4", "json", "text", "hy_v3", "longcat",
        "seed_oss", "olmo3", "apertus", "llama4_pythonic", "minimax", "granite", "internlm2", "phi4_mini",
        "gigachat3", "lmstudio", "step3", "kimi_k3"}
    assert len(set(FAMILIES)) == len(FAMILIES)


def test_registry_tables_are_derived() -> None:
    from repair.formats import _PARSER_TYPES, _TEMPLATES, REGISTRY

    assert set(_PARSER_TYPES.values()) <= set(FAMILIES)
    assert {t.family for t in _TEMPLATES} <= set(FAMILIES)
    assert {f for fmt in REGISTRY for f in fmt.families} == set(FAMILIES)
    keys = [k.key for fmt in REGISTRY for k in fmt.kinds]
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize(("name", "family"), [
    ("json_tools", "hermes"), ("qwen3_coder", "qwen3_coder"), ("pythonic", "pythonic"), ("mistral", "mistral"),
    ("kimi_k2", "kimi_k2"), ("kimi_k3", "kimi_k3"), ("glm47", "glm45"), ("function_gemma", "gemma4"),
    ("gemma4", "gemma4"),
    ("deepseek_v3", "deepseek_v3"), ("deepseek_v31", "deepseek_v31"), ("harmony", "harmony"), ("gpt_oss", "harmony"),
    ("llama3_json", "llama3"), ("Hermes", "hermes"), ("minimax_m2", "minimax_m2"), ("deepseek_v32", "deepseek_v32"),
    ("deepseek_v4", "deepseek_v4"), ("llama4_pythonic", "llama4_pythonic"), ("olmo3", "olmo3"), ("hy_v3", "hy_v3"),
    ("seed_oss", "seed_oss"), ("longcat", "longcat"), ("lfm2", "pythonic"), ("qwen3_xml", "qwen3_coder"),
    ("step3p5", "qwen3_coder"), ("hunyuan_a13b", "minimax"), ("granite-20b-fc", "granite_20b_fc"),
    ("gpt-oss", "harmony"), ("llama_nemotron_json", "nemotron_json"), ("nemotron_nano_v2", "nemotron_json"),
    ("nemotron_deci", "nemotron_json"), ("no_such_parser", None), ("", None),
])
def test_family_for_parser_type(name: str, family: str | None) -> None:
    assert family_for_parser_type(name) == family


@pytest.mark.parametrize(("template", "family"), [
    ("{%- if tools %}<tools>{{ tool }}</tools> <tool_call>\n{\"name\": {{ tool_call.name }}}\n</tool_call>", "hermes"),
    ("<tool_call>\n<function={{ tool_call.name }}>\n<parameter={{ k }}>\n{{ v }}\n</parameter>", "qwen3_coder"),
    ("<tool_call>{{ tc.name }}<arg_key>{{ k }}</arg_key><arg_value>{{ v }}</arg_value></tool_call>", "glm45"),
    ("<|tool_calls_section_begin|><|tool_call_begin|>{{ id }}<|tool_call_argument_begin|>", "kimi_k2"),
    ("{{ '<|open|>tools<|sep|>' }}{% for tc in tool_calls %}<|open|>call tool=\"{{ tc.name }}\"", "kimi_k3"),
    ("'<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + name + '\\n' + '```json' + '\\n'", "deepseek_v3"),
    ("'<｜tool▁call▁begin｜>' + name + '<｜tool▁sep｜>' + tool['function']['arguments']", "deepseek_v31"),
    ("{{ '[TOOL_CALLS]' }}{{ tool_calls | tojson }}", "mistral"),
    ("<|start_header_id|>ipython<|end_header_id|> {\"name\": function name, \"parameters\": dict}", "llama3"),
    ("<|start|>assistant<|channel|>commentary to=functions.{{ name }}<|message|>", "harmony"),
    ("<|tool_call>call:{{ name }}{ {{ args }} }<tool_call|>", "gemma4"),
    ("<|tool_call_start|>[{{ calls }}]<|tool_call_end|>", "pythonic"),
    ("<minimax:tool_call>\n<invoke name=\"{{ name }}\">", "minimax_m2"),
    ("{{ '<｜DSML｜function_calls>' }}<｜DSML｜invoke name=", "deepseek_v32"),
    ("<seed:tool_call>\n<function={{ name }}>\n<parameter={{ k }}>", "seed_oss"),
    ("<longcat_tool_call>{{ name }}<longcat_arg_key>", "longcat"),
    ("<tool_calls>\n<tool_call>{{ name }}<tool_sep>\n<arg_key>", "hy_v3"),
    ("<|python_start|>[{{ calls }}]<|python_end|>", "llama4_pythonic"),
    ("{%- if tool_calls %}<TOOLCALL>{{ tool_calls | tojson }}</TOOLCALL>{%- endif %}", "nemotron_json"),
    ("{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}", None),
])
def test_sniff_template(template: str, family: str | None) -> None:
    assert sniff_template(template) == family


def test_message_and_outcome() -> None:
    r = repair_message("Let me see.\n" + render("hermes", RF), TOOLS, id_factory=ids)
    assert r.outcome == "valid"
    assert r.message() == {"role": "assistant", "content": "Let me see.", "tool_calls": [
        {"id": "call_0", "type": "function", "function": {"name": "read_file", "arguments": '{"path": "a.py"}'}}]}
    plain = repair_message("hi", TOOLS)
    assert plain.outcome == "none" and plain.message() == {"role": "assistant", "content": "hi"}
    assert repair_message(None, TOOLS).content is None


def test_default_ids_are_unique() -> None:
    r = repair_message(render("hermes", RF * 3), TOOLS)
    got = [c["id"] for c in r.tool_calls]
    assert len(set(got)) == 3 and all(i.startswith("call_") for i in got)


def test_tool_index_reuse_gives_same_result() -> None:
    index = ToolIndex(TOOLS)
    for text in (render("qwen3_coder", RF), '<tool_call>{"name": "read-file", "arguments": {"path": 1}}</tool_call>'):
        assert repair_message(text, index, id_factory=ids) == repair_message(text, TOOLS, id_factory=ids)
    schema = index.get("read_file")
    assert schema.validator() is schema.validator()


def test_bad_options_raise() -> None:
    with pytest.raises(ValueError, match="format"):
        repair_message("x", TOOLS, format="nope")
    with pytest.raises(ValueError, match="mode"):
        repair_message("x", TOOLS, mode="fix")
    with pytest.raises(ValueError):
        StreamRepairer(TOOLS, format="nope")


# --- upstream structured tool_calls ----------------------------------------------------------------------------

def _tc(name: str, arguments: object, cid: str | None = "up_1", key: str = "arguments") -> dict:
    call: dict = {"type": "function", "function": {"name": name, key: arguments}}
    if cid:
        call["id"] = cid
    return call


def test_structured_valid_passes_through_byte_for_byte() -> None:
    args = '{"path":"a.py","limit":2}'
    r = repair_message(None, TOOLS, tool_calls=[_tc("read_file", args)])
    assert r.tool_calls == [{"id": "up_1", "type": "function", "function": {"name": "read_file", "arguments": args}}]
    assert r.outcome == "valid" and r.repairs == []


@pytest.mark.parametrize(("call", "kinds"), [
    (_tc("read_file", '{"path": "a.py",}'), {"trailing_comma"}),
    (_tc("read_file", "{'path': 'a.py'}"), {"single_quotes"}),
    (_tc("read_file", json.dumps(json.dumps({"path": "a.py"}))), {"double_encoded"}),
    (_tc("read_file", {"path": "a.py"}, key="parameters"), {"parameters_key"}),
    (_tc("Read_File", '{"path": "a.py"}'), {"name_normalised"}),
    (_tc("read_file", '{"path": "a.py", "limit": "9"}'), {"coerced_type"}),
])
def test_structured_repairs(call: dict, kinds: set[str]) -> None:
    r = repair_message(None, TOOLS, tool_calls=[call], id_factory=ids)
    assert kinds <= {x.kind for x in r.repairs}
    assert r.tool_calls[0]["function"]["name"] == "read_file" and r.tool_calls[0]["id"] == "up_1"
    assert json.loads(r.tool_calls[0]["function"]["arguments"])["path"] == "a.py"
    assert r.outcome == "repaired"


@pytest.mark.parametrize(("call", "kind"), [
    (_tc("read_file", '{"path": "a.py", "content": "cut'), "truncated"),
    (_tc("nope", "{}"), "unknown_name"),
    (_tc("read_file", '{"limit": 1}'), "schema_mismatch"),
    (_tc("read_file", "hello"), "invalid_json"),
    # numbers past what Python converts (4300 digits) or a float holds stay strings: a mismatch, not a ValueError
    (_tc("read_file", '{"path": "a.py", "limit": "%s"}' % ("9" * 5000)), "schema_mismatch"),
    (_tc("run_shell", '{"command": "ls", "timeout": "%s"}' % ("9" * 5000)), "schema_mismatch"),
    (_tc("run_shell", '{"command": "ls", "timeout": "1e999"}'), "schema_mismatch"),
    ("not a call", "invalid_json"),
])
def test_structured_failures(call: object, kind: str) -> None:
    r = repair_message("", TOOLS, tool_calls=[call])  # type: ignore[list-item]
    assert r.tool_calls == [] and [e.kind for e in r.errors] == [kind] and r.outcome == "failed"


def test_structured_calls_when_no_tools_declared() -> None:
    r = repair_message(None, [], tool_calls=[_tc("read_file", "{}")])
    assert r.tool_calls == [] and r.errors[0].kind == "unknown_name"


def test_structured_and_text_calls_combine() -> None:
    r = repair_message(render("hermes", [("get_time", {})]), TOOLS, tool_calls=[_tc("read_file", '{"path": "x"}')],
                       id_factory=ids)
    assert [c["id"] for c in r.tool_calls] == ["up_1", "call_1"]
    assert calls_of(r) == [("read_file", {"path": "x"}), ("get_time", {})]


def test_duplicate_upstream_ids_are_made_unique() -> None:
    r = repair_message(None, TOOLS, tool_calls=[_tc("get_time", "{}", "call_1"), _tc("get_time", "{}", "call_1")],
                       id_factory=ids)
    assert len({c["id"] for c in r.tool_calls}) == 2


@pytest.mark.parametrize("incremental", [False, True])
def test_an_upstream_id_the_conversation_holds_is_replaced(incremental: bool) -> None:
    """`taken_ids`: the ids of the conversation's earlier calls (a server numbering calls per reply reuses them)."""
    calls = [_tc("get_time", "{}", "call_0"), _tc("get_time", '{"tz": "UTC"}', "call_1")]
    whole = repair_message(None, TOOLS, tool_calls=calls, taken_ids={"call_0"})
    assert whole.tool_calls[0]["id"] not in ("call_0", "call_1") and whole.tool_calls[1]["id"] == "call_1"
    sr = StreamRepairer(TOOLS, taken_ids={"call_0"}, incremental=incremental)
    events = sr.feed_tool_calls([{"index": i, **c} for i, c in enumerate(calls)]) + sr.finish()
    sent = [e.id for e in events if getattr(e, "id", None)]
    assert sent[0] not in ("call_0", "call_1") and sent[1] == "call_1"
    assert sr.result is not None and [c["id"] for c in sr.result.tool_calls] == sent


# --- policies --------------------------------------------------------------------------------------------------

def test_detect_mode_changes_nothing_but_reports() -> None:
    broken = '<tool_call>{"name": "read_file", "arguments": {"path": "a.py", "limit": "2"}}</tool_call>'
    r = repair_message(broken, TOOLS, mode="detect")
    assert r.content == broken and r.tool_calls == [] and [x.kind for x in r.repairs] == ["coerced_type"]
    assert r.outcome == "repaired"
    valid = render("hermes", RF)
    d = repair_message(valid, TOOLS, mode="detect", id_factory=ids)
    assert calls_of(d) == RF and d.content is None and d.outcome == "valid"
    think = "<think>hm</think>" + valid
    d2 = repair_message(think, TOOLS, mode="detect")
    assert d2.content == "<think>hm</think>" and d2.reasoning_content is None


def test_tool_choice_none_keeps_text_without_errors() -> None:
    text = "Here:\n" + render("hermes", RF)
    r = repair_message(text, TOOLS, tool_choice="none")
    assert r.tool_calls == [] and r.content == text and r.errors == []


def _up(name: object, args: object, cid: str = "up_1") -> dict:
    return {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}


def test_tool_choice_none_writes_structured_calls_as_text() -> None:
    """An upstream that ignores "none" (Ollama) sends structured calls: they come as text after the content, one
    JSON line each, reported as `tool_choice_none`; no call goes out, and a call in the text stays unreported."""
    written = render("hermes", RF)
    calls = [_up("read_file", '{"path": "a.py"}'), _up("get_time", {"tz": "UTC"}, "up_2"),  # (Ollama: an object)
             _up("nope", "not json"), _up("get_time", ""), "junk"]
    r = repair_message("Here:\n" + written, TOOLS, tool_choice="none", tool_calls=calls)
    assert r.tool_calls == [] and r.errors == [] and r.outcome == "repaired"
    assert r.content == "Here:\n" + written + "\n" + "\n".join([
        '{"name": "read_file", "arguments": {"path": "a.py"}}', '{"name": "get_time", "arguments": {"tz": "UTC"}}',
        '{"name": "nope", "arguments": "not json"}', '{"name": "get_time", "arguments": {}}'])
    assert [(i.kind, i.call_index) for i in r.repairs] == [("tool_choice_none", k) for k in range(4)]
    alone = repair_message(None, TOOLS, tool_choice="none", tool_calls=calls[:1])
    assert alone.content == '{"name": "read_file", "arguments": {"path": "a.py"}}'
    resent = repair_message("ok\n", TOOLS, tool_choice="none", tool_calls=[_up("read_file", '{"pa{"path": "a.py"}')])
    assert resent.content == 'ok\n{"name": "read_file", "arguments": {"path": "a.py"}}'  # (no second line break)


@pytest.mark.parametrize("incremental", [False, True])
def test_tool_choice_none_streams_the_same_text(incremental: bool) -> None:
    sr = StreamRepairer(TOOLS, tool_choice="none", incremental=incremental, id_factory=ids)
    events = sr.feed("Sure.") + sr.feed_tool_calls([{"index": 0, "id": "up_1", "function": {
        "name": "read_file", "arguments": '{"path"'}}]) + sr.feed_arguments(0, ': "a.py"}') + sr.finish()
    expected = repair_message("Sure.", TOOLS, tool_choice="none", tool_calls=[_up("read_file", '{"path": "a.py"}')],
                              id_factory=ids)
    assert all(isinstance(e, ContentDelta) for e in events)
    assert "".join(e.text for e in events if isinstance(e, ContentDelta)) == expected.content
    assert expected.content == 'Sure.\n{"name": "read_file", "arguments": {"path": "a.py"}}'
    assert sr.result == expected


def test_tool_choice_named_and_required() -> None:
    r = repair_message(render("hermes", [("get_time", {})]), TOOLS,
                       tool_choice={"type": "function", "function": {"name": "read_file"}})
    assert r.tool_calls == [] and {e.kind for e in r.errors} == {"not_allowed", "no_call"}
    ok = repair_message(render("hermes", RF), TOOLS, tool_choice="required")
    assert len(ok.tool_calls) == 1 and ok.errors == []
    # a custom tool named (OpenAI's {"type": "custom", "custom": {"name"}}; the router hands its tool over as a
    # function of one string `input`): a call to another tool is not what was asked for
    r = repair_message(render("hermes", [("get_time", {})]), TOOLS,
                       tool_choice={"type": "custom", "custom": {"name": "read_file"}})
    assert r.tool_calls == [] and {e.kind for e in r.errors} == {"not_allowed", "no_call"}


def test_parallel_false_keeps_first_and_drops_markup() -> None:
    two = render("hermes", [("get_time", {}), *RF])
    r = repair_message(two, TOOLS, parallel_tool_calls=False, id_factory=ids)
    assert calls_of(r) == [("get_time", {})] and r.content is None
    assert [(x.kind, x.call_index) for x in r.repairs] == [("parallel_trimmed", 1)]


def test_failed_call_keeps_text_and_index() -> None:
    text = render("hermes", [("get_time", {})]) + "\n" + '<tool_call>{"name": "nope", "arguments": {}}</tool_call>'
    r = repair_message(text, TOOLS, id_factory=ids)
    assert calls_of(r) == [("get_time", {})]
    assert r.content == '<tool_call>{"name": "nope", "arguments": {}}</tool_call>'
    assert [(e.kind, e.call_index) for e in r.errors] == [("unknown_name", 1)]


def test_json_repair_does_not_invent_structure() -> None:
    for body in ("{hello world}", "{,}", '{"a" "b" "c"}', "[nothing here]"):
        r = repair_message(f"<tool_call>{body}</tool_call>", TOOLS)
        assert r.tool_calls == [], body
        assert r.content == f"<tool_call>{body}</tool_call>"


def test_format_preference() -> None:
    text = '{"name": "read_file", "parameters": {"path": "a.py"}}'
    assert repair_message(text, TOOLS).format == "llama3"
    assert repair_message(text, TOOLS, format="llama3").outcome == "valid"
    r = repair_message(text, TOOLS, format="hermes")
    assert {"parameters_key", "format:json"} <= {x.kind for x in r.repairs}


# --- streaming -------------------------------------------------------------------------------------------------

def test_prose_streams_at_once_and_calls_come_at_finish() -> None:
    sr = StreamRepairer(TOOLS, id_factory=ids)
    assert sr.feed("Hello there. ") == [ContentDelta("Hello there.")]
    assert sr.feed("Now <too") == [ContentDelta(" Now")]
    assert sr.feed("l_call>") == []
    assert sr.feed('{"name": "read_file", "arguments": {"path": "a.py"}}</tool_call> bye') == []
    events = sr.finish()
    assert events == [ContentDelta("\n\nbye"), ToolCallDelta(0, "call_0", "read_file", '{"path": "a.py"}')]
    assert sr.result.content == "Hello there. Now\n\nbye"
    with pytest.raises(RuntimeError):
        sr.feed("more")


def test_false_alarm_is_released() -> None:
    sr = StreamRepairer(TOOLS)
    assert sr.feed("a <tool") == [ContentDelta("a")]
    assert sr.feed("box> b") == [ContentDelta(" <toolbox> b")]
    assert sr.feed(' {"name": "Alice"}') == [ContentDelta(' {"name": "Alice"}')]


def test_result_before_finish_raises() -> None:
    with pytest.raises(RuntimeError):
        _ = StreamRepairer(TOOLS).result


def test_stream_reasoning_and_think() -> None:
    sr = StreamRepairer(TOOLS, id_factory=ids)
    events = sr.feed_reasoning("upstream thoughts")
    assert events == [ReasoningDelta("upstream thoughts")]
    events += sr.feed("<think>more</think>Answer")
    events += sr.finish()
    assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == "upstream thoughts\n\nmore"
    assert "".join(e.text for e in events if isinstance(e, ContentDelta)) == "Answer"
    assert sr.result == repair_message("<think>more</think>Answer", TOOLS, reasoning_content="upstream thoughts")


def test_stream_tool_call_fragments() -> None:
    deltas = [
        [{"index": 0, "id": "up_9", "type": "function", "function": {"name": "read_", "arguments": ""}}],
        [{"index": 0, "function": {"name": "file", "arguments": '{"path": '}}],
        [{"index": 0, "function": {"arguments": '"a.py",}'}}],
        [{"index": 1, "id": "up_10", "function": {"name": "get_time", "arguments": "{}"}}],
    ]
    sr = StreamRepairer(TOOLS, id_factory=ids)
    for d in deltas:
        assert sr.feed_tool_calls(d) == []
    events = sr.finish()
    assert events == [ToolCallDelta(0, "up_9", "read_file", '{"path": "a.py"}'),
                      ToolCallDelta(1, "up_10", "get_time", "{}")]
    expected = repair_message(None, TOOLS, id_factory=ids, tool_calls=[
        {"id": "up_9", "type": "function", "function": {"name": "read_file", "arguments": '{"path": "a.py",}'}},
        {"id": "up_10", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}])
    assert sr.result == expected


@pytest.mark.parametrize("opts", [{"mode": "detect"}, {"parallel_tool_calls": False}, {"format": "mistral"},
                                  {"tool_choice": "none"}, {"tool_choice": "required"}])
def test_stream_matches_with_options(opts: dict) -> None:
    text = "Let me.\n" + render("hermes", [("get_time", {}), *RF]) + "\n<think>x</think>"
    assert_stream_matches(text, TOOLS, seed=7, **opts)


def test_a_kept_call_its_schema_refuses_keeps_its_place() -> None:
    """`keep_failed_calls`: a structured call to a declared tool whose arguments its schema refuses stays where the
    upstream put it (a stream sends it there: its header went out before its arguments failed); one to an
    undeclared tool comes after the valid calls (a stream cannot start it, and sends it at its end)."""
    calls = [{"id": "up0", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
             {"id": "up1", "type": "function", "function": {"name": "nope", "arguments": '{"a": 1}'}},
             {"id": "up2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]
    r = repair_message(None, TOOLS, tool_calls=calls, keep_failed_calls=True, id_factory=ids)
    assert [c["id"] for c in r.tool_calls] == ["up0", "up2", "up1"]
    assert [e.kind for e in r.errors] == ["schema_mismatch", "unknown_name"]
    one = repair_message(None, TOOLS, tool_calls=calls, keep_failed_calls=True, parallel_tool_calls=False)
    assert [c["id"] for c in one.tool_calls] == ["up2"]  # none beside a valid call
