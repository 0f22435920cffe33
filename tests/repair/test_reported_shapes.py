"""Call shapes seen in public bug reports (tests/repair/data/wild.jsonl names each report), read or left as text
on purpose: each test is the shape reduced to what decides it, streamed too."""

from __future__ import annotations

from typing import Any

from repair import repair_message
from tests.repair.helpers import assert_stream_matches, calls_of, ids


def _tool(name: str, props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        params["required"] = required
    return {"type": "function", "function": {"name": name, "parameters": params}}


_S = {"type": "string"}
SEARCH = _tool("Web Search", {"query": _S, "pageSize": {"type": "integer"}}, ["query"])
IMAGES = _tool("Image Search", {"query": _S}, ["query"])


def test_harmony_recipient_named_with_spaces() -> None:
    """LM Studio's plugins declare tools named with spaces ('Web Search'); gpt-oss writes the name as declared in
    the recipient, where a space would otherwise end it (lmstudio-bug-tracker#876)."""
    text = ('<|start|>assistant<|channel|>commentary to=functions.Web Search <|constrain|>json<|message|>'
            '{ "query": "Fractal Design", "pageSize": 10 }')
    r = repair_message(text, [SEARCH, IMAGES], id_factory=ids)
    assert calls_of(r) == [("Web Search", {"query": "Fractal Design", "pageSize": 10})]
    assert r.errors == [] and not r.content
    assert_stream_matches(text, [SEARCH, IMAGES])


def test_harmony_recipient_words_that_name_no_tool_stay_unknown() -> None:
    """Only words that spell a declared name whole join the recipient: 'Web Lookup' names no tool."""
    text = ('<|start|>assistant<|channel|>commentary to=functions.Web Lookup <|constrain|>json<|message|>'
            '{"query": "x"}<|call|>')
    r = repair_message(text, [SEARCH], id_factory=ids)
    assert r.tool_calls == [] and [e.kind for e in r.errors] == ["unknown_name"]
    assert r.content == text
    assert_stream_matches(text, [SEARCH])


TERMINAL = _tool("terminal", {"command": _S}, ["command"])


def test_function_element_name_then_json_arguments() -> None:
    """Gemma 3 and Qwen3.6 on mlx-omni-server name the tool in a <function> element and write its arguments as
    a bare JSON object after it, inside <tool_call> (mlx-omni-server#126)."""
    text = ('Let me check.\n<tool_call>\n<function>terminal</function>\n{"command": "lsof -i :10240"}\n'
            '</tool_call>')
    r = repair_message(text, [TERMINAL], id_factory=ids)
    assert calls_of(r) == [("terminal", {"command": "lsof -i :10240"})]
    assert r.errors == [] and r.content == "Let me check."
    assert_stream_matches(text, [TERMINAL])


def test_function_element_naming_no_tool_stays_text() -> None:
    text = '<tool_call>\n<function>rm_everything</function>\n{"path": "/"}\n</tool_call>'
    r = repair_message(text, [TERMINAL], id_factory=ids)
    assert r.tool_calls == [] and [e.kind for e in r.errors] == ["unknown_name"]
    assert r.content == text
    assert_stream_matches(text, [TERMINAL])


def test_function_element_without_arguments_object_is_not_read() -> None:
    """The element alone, or followed by prose, is no call with these arguments: nothing is invented."""
    for text in ("<tool_call>\n<function>terminal</function>\n</tool_call>",
                 "<tool_call>\n<function>terminal</function> then ls\n</tool_call>"):
        r = repair_message(text, [TERMINAL], id_factory=ids)
        assert r.tool_calls == []
        assert r.content == text
        assert_stream_matches(text, [TERMINAL])


GREP = _tool("grep", {"pattern": _S, "path": _S, "include": _S}, ["pattern"])


def test_gemma4_single_quoted_value_with_a_dangling_delimiter() -> None:
    """Gemma 4 opened a value with a single quote and closed it with the quote and then its own <|"|>, no opener
    for it (ollama#15315; Ollama's repair reads the same, ollama#15374): the stray delimiter is dropped."""
    text = '<|tool_call>call:grep{include:<|"|>*.py<|"|>,pattern:\':\\s*\\w+\'<|"|>}<tool_call|>'
    r = repair_message(text, [GREP], id_factory=ids)
    assert calls_of(r) == [("grep", {"include": "*.py", "pattern": ":\\s*\\w+"})]
    assert r.errors == [] and not r.content
    assert "json_syntax" in [i.kind for i in r.repairs]
    assert_stream_matches(text, [GREP])


def test_gemma4_delimiter_opening_a_value_is_not_dropped() -> None:
    """A <|"|> that opens the next value after a single-quoted one is that value's delimiter, read as one."""
    text = "<|tool_call>call:grep{include:'*.py',pattern:<|\"|>a'b<|\"|>}<tool_call|>"
    r = repair_message(text, [GREP], id_factory=ids)
    assert calls_of(r) == [("grep", {"include": "*.py", "pattern": "a'b"})]


BASH = _tool("bash", {"command": _S, "description": _S}, ["command"])


def test_gemma4_last_value_left_open_before_the_brace() -> None:
    """Gemma 4 opened its last string with <|"|> and went straight on to the object's brace and the call's end
    (ollama#15315; Ollama's repair reads the same): the value runs to that brace."""
    for text, want in (('<|tool_call>call:bash{command:<|"|>ls}<tool_call|>', {"command": "ls"}),
                       ('<|tool_call>call:bash{description:<|"|>list<|"|>,command:<|"|>ls -la}<tool_call|>',
                        {"description": "list", "command": "ls -la"})):
        r = repair_message(text, [BASH], id_factory=ids)
        assert calls_of(r) == [("bash", want)]
        assert r.errors == [] and not r.content
        assert "json_syntax" in [i.kind for i in r.repairs]
        assert_stream_matches(text, [BASH])


def test_gemma4_value_left_open_is_read_only_before_the_call_end() -> None:
    """Not read when the text ends there (more may have been coming: truncated), nor when the open value is not
    the last one (where it ends is then a guess)."""
    cut = '<|tool_call>call:bash{command:<|"|>ls}'
    r = repair_message(cut, [BASH], id_factory=ids)
    assert r.tool_calls == [] and [e.kind for e in r.errors] == ["truncated"]
    mid = '<|tool_call>call:bash{command:<|"|>ls,description:<|"|>list<|"|>}<tool_call|>'
    r = repair_message(mid, [BASH], id_factory=ids)
    assert r.tool_calls == [] and r.content == mid


BASH_GLOB = [BASH, _tool("glob", {"pattern": _S}, ["pattern"])]


def test_kimi_section_end_cut_short_at_the_end_is_markup() -> None:
    """Kimi-K2 through OpenRouter ended its section with `<|tool_calls_section_end|` and nothing more (opencode#8851):
    the cut marker is the section's, not content."""
    text = ("I'll look first. <|tool_calls_section_begin|> <|tool_call_begin|> functions.bash:0 "
            '<|tool_call_argument_begin|> {"command": "ls -la"} <|tool_call_end|> <|tool_call_begin|> functions.glob:1 '
            '<|tool_call_argument_begin|> {"pattern": "*.json"} <|tool_call_end|> <|tool_calls_section_end|')
    r = repair_message(text, BASH_GLOB, id_factory=ids)
    assert calls_of(r) == [("bash", {"command": "ls -la"}), ("glob", {"pattern": "*.json"})]
    assert r.content == "I'll look first."
    assert [(i.kind, i.detail) for i in r.repairs] == [
        ("closing_tag", "<|tool_calls_section_end|> cut short at the end of the text")]
    assert_stream_matches(text, BASH_GLOB)


def test_kimi_text_after_an_unended_section_stays() -> None:
    """Prose after the calls, with no section end, is content as before; so is a marker's start followed by more."""
    for tail, kept in ((" Then I'll read it.", "Then I'll read it."),
                       (" <|tool_calls_section_end|x", "<|tool_calls_section_end|x")):
        text = ('<|tool_calls_section_begin|><|tool_call_begin|>functions.bash:0<|tool_call_argument_begin|>'
                '{"command": "ls"}<|tool_call_end|>' + tail)
        r = repair_message(text, BASH_GLOB, id_factory=ids)
        assert calls_of(r) == [("bash", {"command": "ls"})]
        assert r.content == kept


EXTRACT = _tool("web_extract", {"urls": {"type": "array", "items": _S}}, ["urls"])


def test_invoke_parameter_tag_misspelt_one_letter() -> None:
    """MiniMax-M2.5 named its one parameter in a tag one letter short, <paramete name="urls">, closed by the same
    (hermes-agent#28647): the tag is one slip from `parameter` and names one of the tool's parameters."""
    text = '<invoke name="web_extract">\n<paramete name="urls">["https://arxiv.org/abs/2106.09685"]</paramete>\n</invoke>'
    r = repair_message(text, [EXTRACT], id_factory=ids)
    assert calls_of(r) == [("web_extract", {"urls": ["https://arxiv.org/abs/2106.09685"]})]
    assert r.errors == [] and not r.content
    assert ("opening_tag", "parameter 'urls' in a misspelt tag <paramete>") in [(i.kind, i.detail) for i in r.repairs]
    assert_stream_matches(text, [EXTRACT])
    in_section = f"<minimax:tool_call>\n{text}\n</minimax:tool_call>"
    assert calls_of(repair_message(in_section, [EXTRACT])) == calls_of(r)


def test_invoke_child_tags_that_are_not_a_misspelt_parameter_stay() -> None:
    """A tag further from `parameter` (<param>, <input>), or naming no parameter of the tool, is not read as one."""
    for tag, key in (("input", "urls"), ("paramsx", "urls"), ("paramete", "url")):
        text = (f'<invoke name="web_extract">\n<{tag} name="{key}">["https://a.b"]</{tag}>\n</invoke>\n'
                '<minimax:tool_call>')
        r = repair_message(text, [EXTRACT], id_factory=ids)
        assert r.tool_calls == [], tag
        assert r.content == text


CMD = _tool("bash", {"command": _S}, ["command"])
_ELEMENT = ('<function>\n<name>bash</name>\n<parameter name="command" string="true">opencrabs --version 2>/dev/null'
            ' || echo "..."</｜｜DSML｜｜parameter>\n')


def test_element_call_closed_by_dsml_tokens() -> None:
    """DeepSeek-V4-Flash wrote its call as elements, <function><name>bash</name><parameter ...>, and closed the
    parameter, the invoke and the section with DSML tokens (opencrabs#419): the tokens mark it as the model's
    call."""
    text = _ELEMENT + "</｜｜DSML｜｜invoke>\n</｜｜DSML｜｜tool_calls>"
    r = repair_message(text, [CMD], id_factory=ids)
    assert calls_of(r) == [("bash", {"command": 'opencrabs --version 2>/dev/null || echo "..."'})]
    assert r.errors == [] and not r.content
    assert_stream_matches(text, [CMD])


def test_element_call_without_dsml_tokens_stays_text() -> None:
    """The same elements closed by plain tags, naming no declared tool, or inside a sentence are XML the model
    wrote, not a call."""
    plain = '<function>\n<name>bash</name>\n<parameter name="command">ls</parameter>\n</function>'
    other = _ELEMENT.replace("<name>bash</name>", "<name>rm_rf</name>") + "</｜｜DSML｜｜invoke>"
    quoted = "Write it as " + _ELEMENT.replace("\n", " ") + "</｜｜DSML｜｜invoke>"
    for text in (plain, other, quoted):
        r = repair_message(text, [CMD], id_factory=ids)
        assert r.tool_calls == [], text
        assert r.content == text
        assert_stream_matches(text, [CMD])
