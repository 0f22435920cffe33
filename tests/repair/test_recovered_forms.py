"""Damaged call markup from public reports that is unambiguous given the declared tools, recovered; the same
shapes naming no declared tool stay text."""

from __future__ import annotations

from typing import Any

import pytest

from repair import ContentDelta, StreamRepairer, repair_message
from repair.formats import qwen3_coder
from tests.repair.helpers import assert_stream_matches, calls_of, ids
from tests.repair.incremental_helpers import assert_incremental_matches
from tests.repair.work import Work


def _tool(name: str, *props: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": {
        "type": "object", "properties": {p: {"type": "string"} for p in props}, "required": list(props[:1])}}}


SHELL = [_tool("send_command_to_shell", "command")]
BROWSER = [_tool("browser_action", "task")]
RUN = [_tool("run_command", "command")]


def _ok(text: str, tools: list[dict[str, Any]], want: list[tuple[str, dict[str, Any]]], kinds: list[str]) -> None:
    r = repair_message(text, tools, id_factory=ids)
    assert calls_of(r) == want
    assert r.errors == [] and not r.content
    assert sorted({x.kind for x in r.repairs}) == sorted(kinds)
    assert_stream_matches(text, tools)


def test_glm_key_glued_to_the_name() -> None:
    text = "<tool_call>send_command_to_shellcommand</arg_key><arg_value>echo test</arg_value></tool_call>"
    _ok(text, SHELL, [("send_command_to_shell", {"command": "echo test"})], ["opening_tag"])


def test_glm_key_after_the_name_without_its_opener() -> None:
    text = "<tool_call>browser_action task</arg_key><arg_value>...</arg_value></tool_call>"
    _ok(text, BROWSER, [("browser_action", {"task": "..."})], ["opening_tag"])


def test_glm_call_opener_written_for_the_key_opener() -> None:
    text = ('<tool_call>run_command<tool_call>command</arg_key><arg_value>echo "whoami: $(whoami)"</arg_value>'
            '</tool_call>')
    _ok(text, RUN, [("run_command", {"command": 'echo "whoami: $(whoami)"'})], ["opening_tag"])


def test_glm_missing_key_opener_needs_a_declared_tool() -> None:
    for text, tools in (
        ("<tool_call>send_command_to_shellcmd</arg_key><arg_value>echo test</arg_value></tool_call>", SHELL),
        ("<tool_call>other_tool task</arg_key><arg_value>x</arg_value></tool_call>", BROWSER),
        ("<tool_call>other<tool_call>command</arg_key><arg_value>x</arg_value></tool_call>", RUN),
    ):
        r = repair_message(text, tools, id_factory=ids)
        assert r.tool_calls == [] and r.content == text
        assert_stream_matches(text, tools)


WRITE = [_tool("write", "content")]


def test_kimi_call_marker_inside_a_json_string() -> None:
    text = ('<|tool_calls_section_begin|><|tool_call_begin|>functions.write:0<|tool_call_argument_begin|>'
            '{"content": "use <|tool_call_begin|> to start"}<|tool_call_end|><|tool_calls_section_end|>')
    _ok(text, WRITE, [("write", {"content": "use <|tool_call_begin|> to start"})], [])
    two = text.replace("<|tool_calls_section_end|>", "<|tool_call_begin|>functions.write:1"
                       '<|tool_call_argument_begin|>{"content": "b <|tool_call_end|>"}<|tool_call_end|>'
                       "<|tool_calls_section_end|>")
    _ok(two, WRITE, [("write", {"content": "use <|tool_call_begin|> to start"}),
                     ("write", {"content": "b <|tool_call_end|>"})], [])


EXEC = [_tool("exec", "command", "workdir")]
GET_WEATHER = [_tool("get_weather", "location")]


def _kimi(*calls: tuple[str, str]) -> str:
    """A Kimi K2 section of calls given as (id, arguments)."""
    body = "".join(f"<|tool_call_begin|>{i}<|tool_call_argument_begin|>{a}<|tool_call_end|>" for i, a in calls)
    return f"<|tool_calls_section_begin|>{body}<|tool_calls_section_end|>"


def test_kimi_ids_a_client_cleaned_still_name_the_tool() -> None:
    """Kimi-K2.5 (sglang#21377, verbatim) and Kimi-K2.7-Code (exo#2281) copy the ids a client cleaned in the history
    (`functions.exec:5` as `functionsexec5` or `functions_exec_5`); the id only wraps a declared tool's name."""
    text = _kimi(("functionsexec5", '{"command": "ls -la ~/.claude 2>/dev/null || echo \\"Not found in ~/.claude\\""}'),
                 ("functionsexec6", '{"command": "ls -la ~/.config/claude-code"}'),
                 ("functionsexec7", '{"command": "ls -la ~/.claude.json 2>/dev/null || echo \\"Not found\\""}'))
    _ok(text, EXEC, [("exec", {"command": 'ls -la ~/.claude 2>/dev/null || echo "Not found in ~/.claude"'}),
                     ("exec", {"command": "ls -la ~/.config/claude-code"}),
                     ("exec", {"command": 'ls -la ~/.claude.json 2>/dev/null || echo "Not found"'})],
        ["name_normalised"])
    r = repair_message(text, EXEC, id_factory=ids)
    assert [x.detail for x in r.repairs][:1] == ["'functionsexec5' -> 'exec'"]
    for written in ("functions_get_weather_1", "functions.get_weather_12", "functionsget_weather"):
        _ok(_kimi((written, '{"location": "Paris"}')), GET_WEATHER, [("get_weather", {"location": "Paris"})],
            ["name_normalised"])


def test_kimi_cleaned_ids_naming_no_one_tool_are_not_calls() -> None:
    """A declared name that looks like an id is taken as it is; a cleaned id that two declared tools could stand for
    (`tool` call 2, or `tool2`) or that names none stays text."""
    both = [_tool("get_weather", "location"), _tool("get_weather_1", "location")]
    _ok(_kimi(("functions.get_weather_1:0", '{"location": "Paris"}')), both,
        [("get_weather_1", {"location": "Paris"})], [])
    for written, tools in (("functionstool2", [_tool("tool", "a"), _tool("tool2", "a")]),
                           ("functions_get_weather_1", both), ("functionsexec5", GET_WEATHER),
                           ("toolsexec5", EXEC)):
        text = _kimi((written, '{"a": "x"}'))
        r = repair_message(text, tools, id_factory=ids)
        assert r.tool_calls == [] and r.content == text, written
        assert [e.kind for e in r.errors] == ["unknown_name"]
        assert_stream_matches(text, tools)


def _typed(name: str, **props: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": {
        "type": "object", "properties": {p: {"type": t} for p, t in props.items()}, "required": list(props)}}}


WEATHER = [_typed("get_weather", location="string", days="integer")]
BASH = [_typed("bash", command="string", description="string")]
READ = [_typed("read", filePath="string", limit="integer", offset="integer")]


def test_minimax_m3_namespaced_tags() -> None:
    ns = "]<]minimax[>["
    text = (f"I'll check the time.{ns}<tool_call>\n{ns}<invoke name=\"get_weather\">\n{ns}<location>Paris{ns}"
            f"</location>\n{ns}<days>3{ns}</days>\n{ns}</invoke>\n{ns}</tool_call>")
    r = repair_message(text, WEATHER, id_factory=ids)
    assert calls_of(r) == [("get_weather", {"location": "Paris", "days": 3})]
    assert r.content == "I'll check the time." and r.errors == []
    assert_stream_matches(text, WEATHER)


def test_bare_invoke_with_parameters_named_by_their_tags() -> None:
    text = '<invoke name="bash">\n  <command>bun test</command>\n  <description>Run tests</description>\n</invoke>'
    _ok(text, BASH, [("bash", {"command": "bun test", "description": "Run tests"})], ["opening_tag"])


def test_minimax_invoke_whose_section_opener_is_missing() -> None:
    text = ('Read the traits:\n<invoke name="read">\n<parameter name="filePath">a.py</parameter>\n'
            '<parameter name="limit">80</parameter>\n<parameter name="offset">1</parameter>\n</invoke>\n'
            '</minimax:tool_call>')
    r = repair_message(text, READ, id_factory=ids)
    assert calls_of(r) == [("read", {"filePath": "a.py", "limit": 80, "offset": 1})]
    assert r.content == "Read the traits:" and r.errors == []
    assert_stream_matches(text, READ)


def test_bare_invoke_in_a_sentence_or_naming_no_tool_is_text() -> None:
    for text in ('The model writes <invoke name="bash"><command>ls</command></invoke> to call it.',
                 '<invoke name="other">\n<command>ls</command>\n</invoke>',
                 'Use `<invoke name="bash">` like this:\n<invoke name="shell">\n</invoke>',
                 '<invoke name="bash">\n<command>ls</command>\n<invoke name="bash">\nand so on',
                 '<invoke name="bash">\n<command>ls</command>\nand so on',
                 '<invoke name="bash"> opens the call.',
                 '<invoke name="bash">\n<parameter name="command">ls</parameter>\nthen prose'):
        r = repair_message(text, BASH, id_factory=ids)
        assert r.tool_calls == [] and r.content == text and r.errors == []
        assert_stream_matches(text, BASH)


_WHOLE = '<invoke name="bash">\n<command>ls</command>\n<description>List</description>\n</invoke>'


@pytest.mark.parametrize("text", [
    '<invoke name="bash">\n<parameter name="command">bun test</parameter>\n',
    '<invoke name="bash">\n<parameter name="command">bun te',
    '<invoke name="bash">\n<parameter name="command">bun test</parameter>\n<parameter na',
    '<invoke name="bash">\n<parameter name="command">bun test</parameter>\n</inv',
    '<invoke name="bash">\n<command>bun test</command>\n<descr',
    '<invoke name="bash">\n<command>bun test</command>\n<description>Run',
    '<invoke name="bash">\n<command>bun test</comm',
    "Running the tests.\n" + '<invoke name="bash">',
    '<invoke name="bash">\n<command>ls</command>\n<invoke name="bash">\n',
    _WHOLE + '\n<invoke name="bash">\n<command>pw',
])
def test_bare_invoke_cut_off_by_the_end_of_the_text_is_reported(text: str) -> None:
    """A bare <invoke> cut off by the end of the text (max_tokens) is text reported `truncated`, as the same call
    in <minimax:tool_call> is; the whole calls before it are kept."""
    r = repair_message(text, BASH, id_factory=ids)
    whole = text.startswith(_WHOLE)
    assert calls_of(r) == ([("bash", {"command": "ls", "description": "List"})] if whole else [])
    assert [e.kind for e in r.errors] == ["truncated"]
    assert r.content == (text[len(_WHOLE) + 1:] if whole else text)
    assert_stream_matches(text, BASH)
    assert_incremental_matches(text, BASH)
    if text.startswith("<invoke") and text.count("<invoke") == 1:
        sectioned = repair_message("<minimax:tool_call>\n" + text, BASH, id_factory=ids)
        assert [e.kind for e in sectioned.errors] == ["truncated"]


def _most_held(text: str, tools: list[dict[str, Any]]) -> int:
    """The most characters fed one at a time that a stream held back before its end."""
    sr = StreamRepairer(tools, id_factory=ids)
    out = worst = 0
    for fed, ch in enumerate(text, 1):
        out += sum(len(e.text) for e in sr.feed(ch) if isinstance(e, ContentDelta))
        worst = max(worst, fed - out)
    return worst


def test_a_quoted_call_syntax_holds_the_stream_only_while_it_may_be_a_call() -> None:
    """A bare <invoke> tag, a stripped Gemma call: held until what follows says they are no call (the tag's end,
    the line's end), never to the stream's end."""
    more = "More explanation follows. " * 40
    for quote in ('In MiniMax XML you write <invoke name="foo"/> to call a tool.\n',
                  'In MiniMax XML you write <invoke name="bash"> to call a tool.\n',
                  '<invoke name="foo">\n<command>ls</command>\n</invoke>\n',
                  '<invoke name="bash"/> is the self-closing form.\n',
                  '<invoke name="bash" /> too.\n',
                  'The form is ]<]minimax[>[<invoke name="bash"> and so on.\n',
                  "Gemma writes call:f{q:x} in a sentence.\n",
                  "call:g{q:x, n:1} names no tool.\n",
                  "call:f{q:x} is written alone on its line.\n",
                  "call:f{q:x\ny}\n",
                  'call:f{q:<|"|>x<|"|>}\n',
                  "Like this:\n```\ncall:f{q:hello, n:1}\n```\n",
                  "Like this:\n~~~\ncall:f{q:hello, n:1}\n~~~\n"):
        text = quote + more
        r = repair_message(text, BASH + SEARCH, id_factory=ids)
        assert r.tool_calls == [] and r.content == text
        assert _most_held(text, BASH + SEARCH) < 80, quote
        assert_stream_matches(text, BASH + SEARCH)


SEARCH = [_typed("web_search", query="string"), _typed("f", q="string", n="integer")]


def test_gemma_call_with_special_tokens_stripped() -> None:
    text = "call:web_search{query:meet at 10:00, 11:00 tomorrow}"
    _ok(text, SEARCH, [("web_search", {"query": "meet at 10:00, 11:00 tomorrow"})], ["opening_tag"])
    _ok('call:f{q:"x", n:2}', SEARCH, [("f", {"q": "x", "n": 2})], ["opening_tag"])
    text = "Sure.\ncall:f{q:hello world, n:5}\nDone."
    r = repair_message(text, SEARCH, id_factory=ids)
    assert calls_of(r) == [("f", {"q": "hello world", "n": 5})] and r.errors == []
    assert_stream_matches(text, SEARCH)


def test_stripped_gemma_call_in_a_sentence_or_naming_no_tool_is_text() -> None:
    for text in ("I will call:f{q:x} now", "call:g{q:x}", "call:f{q:x} and more", "call:f{q:x\ny}"):
        r = repair_message(text, SEARCH, id_factory=ids)
        assert r.tool_calls == [] and r.content == text and r.errors == []
        assert_stream_matches(text, SEARCH)


def test_gemma_syntax_shown_in_a_fence_is_text() -> None:
    for text in ("Like this:\n```\ncall:f{q:hello, n:1}\n```\n", 'call:f{q:<|"|>x<|"|>, n:1}'):
        r = repair_message(text, SEARCH, id_factory=ids)
        assert r.tool_calls == [] and r.content == text and r.errors == []


def test_gemma_syntax_in_any_fenced_block_is_text() -> None:
    for text in ("Like this:\n~~~\ncall:f{q:hello, n:1}\n~~~\nThat is the syntax.",
                 "In a README:\n````markdown\n```\ncall:f{q:hello, n:1}\n````\nThat is the syntax.",
                 "In a README:\n~~~~\n~~~\ncall:f{q:hello, n:1}\n~~~~\n",
                 "Like this:\n```\n~~~\ncall:f{q:hello, n:1}\n```\n",
                 "Unclosed:\n~~~ text\ncall:f{q:hello, n:1}\n"):
        r = repair_message(text, SEARCH, id_factory=ids)
        assert r.tool_calls == [] and r.content == text and r.errors == [], text
        assert_stream_matches(text, SEARCH)


def test_gemma_call_after_a_closed_fence_is_a_call() -> None:
    for fenced in ("~~~\nx\n~~~", "````\n```\nx\n````", "```\nx\n````", "~~~\n```\nx\n~~~", "```py\nx\n``` \n"):
        text = f"Example:\n{fenced.rstrip()}\ncall:f{{q:hello, n:1}}"
        r = repair_message(text, SEARCH, id_factory=ids)
        assert calls_of(r) == [("f", {"q": "hello", "n": 1})], text
        assert_stream_matches(text, SEARCH)


def test_a_stripped_gemma_call_on_a_long_line_streams_as_one_shot() -> None:
    """A candidate decided by its line is held to the line's end for 4096 characters at most, then to the stream's
    end as any other: the same answer either way."""
    for text, made in (("Hi.\ncall:f{q:" + "x y " * 1300 + "} tail\nmore", False),
                       ("call:f{q:" + "x y " * 1300 + ", n:1}", True),
                       ("A.\ncall:f{q:" + "x y " * 900 + ", n:1}\nmore", True)):
        r = assert_stream_matches(text, SEARCH, count=1)
        assert bool(r.tool_calls) is made


TERMINAL = [_typed("terminal", command="string")]


def test_gemma_round_brackets_with_its_string_delimiters() -> None:
    """`call:terminal(command:<|"|>ls -a<|"|>)` (vllm-project/vllm#53642): the value is what lies between the
    delimiters, as in the braces form, never `|>ls -a<|`."""
    for value in ("ls -a", "rm -rf build", 'echo "a, b" (c)'):
        text = f'<|tool_call>call:terminal(command:<|"|>{value}<|"|>)<tool_call|>'
        _ok(text, TERMINAL, [("terminal", {"command": value})], [])
    text = "<start_function_call>call:terminal(command:<escape>ls -a<escape>)<end_function_call>"
    _ok(text, TERMINAL, [("terminal", {"command": "ls -a"})], [])


def test_gemma_round_brackets_with_its_delimiters_not_closed() -> None:
    for text, kind in (('<|tool_call>call:terminal(command:<|"|>ls -a<|"|><tool_call|>', "invalid_json"),
                       ('<|tool_call>call:terminal(command:<|"|>ls -a)<tool_call|>', "invalid_json"),
                       ('<|tool_call>call:terminal(command:<|"|>ls -a<|"|>', "truncated")):
        r = repair_message(text, TERMINAL, id_factory=ids)
        assert r.tool_calls == [] and r.content == text and [e.kind for e in r.errors] == [kind], text
        assert_stream_matches(text, TERMINAL)


FILES = [_typed("search_files", pattern="string", target="string"), _typed("Bash", command="string"),
         _typed("Edit", file_path="string", new_string="string")]


def test_gemma_opener_without_call() -> None:
    """`<|tool_call>:name{...}`, `call` left out (gemma-4-26B-A4B-it-NVFP4, vllm-project/vllm#53431)."""
    text = '<|tool_call>:search_files{pattern:<|"|>.env.example<|"|>,target:<|"|>files<|"|>}<tool_call|>'
    _ok(text, FILES, [("search_files", {"pattern": ".env.example", "target": "files"})], ["opening_tag"])


def test_gemma_opener_run_together_with_call() -> None:
    """`<tool_call:Name{...}` (nicedreamzapp/claude-code-local#45), a `>` closing it as a tag or not."""
    _ok('<tool_call:Bash{command:<|"|>mkdir -p /tmp/t<|"|>}<tool_call|>', FILES,
        [("Bash", {"command": "mkdir -p /tmp/t"})], ["opening_tag"])
    _ok("<tool_call:Bash{command:<|\"|>echo 'test 1'<|\"|>}><tool_call|>", FILES,
        [("Bash", {"command": "echo 'test 1'"})], ["opening_tag"])
    text = 'Editing.\n<tool_call:Edit{file_path:<|"|>/tmp/a.txt<|"|>,new_string:<|"|>bye<|"|>}<tool_call|>'
    r = repair_message(text, FILES, id_factory=ids)
    assert calls_of(r) == [("Edit", {"file_path": "/tmp/a.txt", "new_string": "bye"})]
    assert r.content == "Editing." and r.errors == []
    assert_stream_matches(text, FILES)


def test_gemma_run_together_opener_in_a_sentence_or_naming_no_tool_is_text() -> None:
    for text in ('Gemma slips into <tool_call:Bash{command:<|"|>ls<|"|>}<tool_call|> at times.',
                 '<tool_call:Other{command:<|"|>ls<|"|>}<tool_call|>'):
        r = repair_message(text, FILES, id_factory=ids)
        assert r.tool_calls == [] and r.content == text and r.errors == []
        assert_stream_matches(text, FILES)


CITY = [_tool("get_weather", "city")]
_JSON_CALL = '{"name": "get_weather", "arguments": {"city": "Paris"}}'


def test_json_call_in_tool_call_written_with_a_hyphen() -> None:
    """The bare object was taken, but `<tool-call>` stayed in the content."""
    _ok(f"<tool-call>\n{_JSON_CALL}\n</tool-call>", CITY, [("get_weather", {"city": "Paris"})], ["opening_tag"])


def test_json_call_in_a_tool_tag() -> None:
    text = f"<tool>{_JSON_CALL}</tool>"
    _ok(text, CITY, [("get_weather", {"city": "Paris"})], ["opening_tag"])
    assert_incremental_matches(text, CITY)


def test_json_call_list_in_a_tool_tag_after_prose() -> None:
    text = f"Checking.\n<tool>[{_JSON_CALL}]</tool>"
    r = repair_message(text, CITY, id_factory=ids)
    assert calls_of(r) == [("get_weather", {"city": "Paris"})] and r.content == "Checking."
    assert_stream_matches(text, CITY)


def test_tool_tags_around_json_naming_no_tool_are_text() -> None:
    for text in (f"<tool>{_JSON_CALL.replace('get_weather', 'get_time')}</tool>", "Wrap it: <tool-call>{}</tool-call>",
                 "<tool>search</tool>"):
        r = repair_message(text, CITY, id_factory=ids)
        assert r.tool_calls == [] and r.errors == [] and r.content == text
        assert_stream_matches(text, CITY)


# Qwen3.6 on SGLang's qwen3_coder parser (sgl-project/sglang#27336): a value's closer written wrong leaked into the
# value ({"city": "上海\n</parameter..."}).
DAYS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city"]}}}]
DRIFTED = ("</parameter1>", "</parameter/>", "</parameter", "</parameter_function>", "</parameterfunction>")


def _qwen(city_block: str, rest: str = "<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>") -> str:
    return f"<tool_call>\n<function=get_weather>\n<parameter=city>\n{city_block}\n{rest}"


def test_a_closer_written_wrong_is_not_part_of_the_value() -> None:
    for marker in DRIFTED:
        for text in (_qwen(f"上海\n{marker}"), _qwen(f"上海\n{marker}", "</function>\n</tool_call>")):
            r = repair_message(text, DAYS, id_factory=ids)
            assert calls_of(r)[0][1]["city"] == "上海", (marker, r.tool_calls)
            assert r.errors == [] and not r.content and "closing_tag" in {x.kind for x in r.repairs}
            assert_stream_matches(text, DAYS)


def test_a_closed_value_ending_like_a_closer_is_kept() -> None:
    for value in ("<config>\n  <p>1</p>\n</parameters>", "x </parameterList>", "a </parameter1> b"):
        r = repair_message(_qwen(f"{value}\n</parameter>"), DAYS, id_factory=ids)
        assert calls_of(r) == [("get_weather", {"city": value, "days": 3})]


def test_a_long_unclosed_value_is_read_in_linear_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """200 KB of white space in a value without its </parameter>: the closer written wrong is looked for in the
    value's last characters only (searching the whole value for it read the white space again from each place),
    and the forward searches read the text a few times in all."""
    value = "a" + " " * 200_000 + "b"
    text = _qwen(value)
    work = Work(monkeypatch, limit=16 * len(text))
    work.watch(qwen3_coder, "_DRIFTED_END")
    r = repair_message(text, DAYS, id_factory=ids)
    assert calls_of(r) == [("get_weather", {"city": value, "days": 3})]
    assert work.window <= qwen3_coder._DRIFT_WINDOW
    assert work.scanned <= 8 * len(text)


GREP = [{"type": "function", "function": {"name": "Grep", "parameters": {"type": "object", "properties": {
    "pattern": {"type": "string"}, "-A": {"type": "number"}, "-n": {"type": "boolean"}, "--type": {"type": "string"}},
    "required": ["pattern"]}}}]


def test_minimax_m3_parameters_named_as_command_line_flags() -> None:
    """A grep tool's flags (`-A`, `-n`) as parameter names: MiniMax-M3 writes them as the tags' names, as it writes
    any other (the shape of vllm-project/vllm-ascend#12815, whose output is attached, not quoted: constructed)."""
    ns = "]<]minimax[>["
    text = (f"{ns}<tool_call>\n{ns}<invoke name=\"Grep\">\n{ns}<pattern>def main{ns}</pattern>\n{ns}<-A>3{ns}</-A>\n"
            f"{ns}<-n>true{ns}</-n>\n{ns}<--type>py{ns}</--type>\n{ns}</invoke>\n{ns}</tool_call>")
    r = repair_message(text, GREP, id_factory=ids)
    assert calls_of(r) == [("Grep", {"pattern": "def main", "-A": 3, "-n": True, "--type": "py"})]
    assert not r.content and r.errors == []
    assert_stream_matches(text, GREP)
    bare = '<invoke name="Grep">\n<pattern>x</pattern>\n<-A>2</-A>\n</invoke>'
    _ok(bare, GREP, [("Grep", {"pattern": "x", "-A": 2})], ["opening_tag"])


SAVE = [_typed("save_file", filename="string", content="string")]


def test_minimax_m3_first_parameter_without_its_opening_tag() -> None:
    """MiniMax-M3 checkpoints write an invoke's first parameter without its opening tag: the value right after
    the namespace token, closed by a tag naming one of the tool's parameters (vllm-project/vllm#51073)."""
    ns = "]<]minimax[>["
    text = (f'{ns}<tool_call>\n{ns}<invoke name="save_file">{ns}offerta.docx{ns}</filename>{ns}<content>Hello{ns}'
            f"</content>{ns}</invoke>{ns}</tool_call>")
    r = repair_message(text, SAVE, id_factory=ids)
    assert calls_of(r) == [("save_file", {"filename": "offerta.docx", "content": "Hello"})]
    assert not r.content and r.errors == [] and [x.kind for x in r.repairs] == ["opening_tag"]
    assert_stream_matches(text, SAVE)


@pytest.mark.parametrize("body", [
    "offerta.docx{ns}</name>{ns}<content>Hello{ns}</content>",  # closed by a tag naming no parameter
    "{ns}<content>Hello{ns}</content>offerta.docx{ns}</filename>",  # not the first parameter
    "offerta{ns}<b>docx{ns}</b>{ns}</filename>{ns}<content>Hello{ns}</content>",  # markup inside
])
def test_minimax_m3_value_without_a_tag_naming_a_parameter_is_no_argument(body: str) -> None:
    ns = "]<]minimax[>["
    text = f'{ns}<tool_call>{ns}<invoke name="save_file">{body.format(ns=ns)}{ns}</invoke>{ns}</tool_call>'
    r = repair_message(text, SAVE, id_factory=ids)
    assert r.tool_calls == [] and r.content == text
    assert_stream_matches(text, SAVE)
