"""Tool-call repair corpus: declared tools, expected calls, and raw model outputs in every supported format.

Well-formed outputs are rendered per family from expected calls (so every family is exercised with the same
awkward values); damaged outputs and negatives are written out by hand below.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

TOOLS: list[dict[str, Any]] = [
    {"type": "function", "function": {
        "name": "read_file", "description": "Read a file",
        "parameters": {"type": "object", "properties": {
            "path": {"type": "string"}, "limit": {"type": "integer"}, "offset": {"type": "integer", "minimum": 0}},
            "required": ["path"], "additionalProperties": False}}},
    {"type": "function", "function": {
        "name": "write_file", "description": "Write a file",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
                       "required": ["path", "content"]}}},
    {"type": "function", "function": {
        "name": "run_shell",
        "parameters": {"type": "object", "properties": {
            "command": {"type": "string"}, "timeout": {"type": "number"}, "background": {"type": "boolean"}},
            "required": ["command"]}}},
    {"type": "function", "function": {
        "name": "search",
        "parameters": {"type": "object", "properties": {
            "query": {"type": "string"},
            "filters": {"type": "object", "properties": {
                "lang": {"type": "string", "enum": ["py", "js", "go"]}, "max": {"type": "integer"}},
                "additionalProperties": False},
            "tags": {"type": "array", "items": {"type": "string"}}},
            "required": ["query"]}}},
    {"type": "function", "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {
            "location": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["location"]}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}},
    {"type": "function", "function": {
        "name": "list_dir",
        "parameters": {"type": "object", "properties": {
            "path": {"type": "string", "pattern": "^[^*]+$"}, "depth": {"type": "integer", "minimum": 0}},
            "required": ["path"]}}},
]

Call = tuple[str, dict[str, Any]]


@dataclass
class Case:
    id: str
    text: str
    calls: list[Call]
    content: str | None
    reasoning: str | None = None
    repairs: tuple[str, ...] = ()      # repair kinds that must be reported
    errors: tuple[str, ...] = ()       # failure kinds that must be reported
    format: str | None = None          # detected family, when asserted
    opts: dict[str, Any] = field(default_factory=dict)
    tools: list[dict[str, Any]] | None = None  # None: TOOLS
    outcome: str | None = None


# --- expected call sets ------------------------------------------------------------------------------------------

CALL_SETS: dict[str, list[Call]] = {
    "simple": [("read_file", {"path": "src/main.py"})],
    "awkward": [("write_file", {"path": "notes/it's.txt",
                                "content": 'line 1\nline "2"\n\tC:\\temp\\x {brace} </tag>'})],
    "nested": [("search", {"query": "tool calls", "filters": {"lang": "py", "max": 3}, "tags": ["a", "b"]})],
    "two": [("get_weather", {"location": "Paris"}), ("read_file", {"path": "a.py", "limit": 10})],
    "noargs": [("get_time", {})],
    "typed": [("run_shell", {"command": "ls -la", "timeout": 2.5, "background": False})],
    "unicode": [("write_file", {"path": "ü.txt", "content": "héllo 日本 — ok"})],
}

PROSE = ["", "I'll check that first.", "Let me look at the file.\n\nOne moment."]


def _j(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False)


def _text_value(v: Any) -> str:
    return v if isinstance(v, str) else _j(v)


def _xtml_type(v: Any) -> str:
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    return "object" if isinstance(v, dict) else "array" if isinstance(v, list) else "null"


def _kimi_k3(calls: list[Call]) -> str:
    body = "".join(
        f'<|open|>call tool="{n}" index="{i + 1}"<|sep|>'
        + "".join(f'<|open|>argument key="{k}" type="{_xtml_type(v)}"<|sep|>{_text_value(v)}<|close|>argument<|sep|>'
                  for k, v in a.items()) + "<|close|>call<|sep|>" for i, (n, a) in enumerate(calls))
    return f"<|open|>tools<|sep|>{body}<|close|>tools<|sep|><|close|>message<|sep|><|end_of_msg|>"


def _gemma(v: Any, q: str) -> str:
    if isinstance(v, str):
        return q + v + q
    if isinstance(v, dict):
        return "{" + ",".join(f"{k}:{_gemma(x, q)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ",".join(_gemma(x, q) for x in v) + "]"
    return _j(v)


def render(family: str, calls: list[Call]) -> str:
    if family == "hermes":
        return "\n".join(f"<tool_call>\n{_j({'name': n, 'arguments': a})}\n</tool_call>" for n, a in calls)
    if family == "qwen3_coder":
        out = []
        for n, a in calls:
            params = "".join(f"<parameter={k}>\n{_text_value(v)}\n</parameter>\n" for k, v in a.items())
            out.append(f"<tool_call>\n<function={n}>\n{params}</function>\n</tool_call>")
        return "\n".join(out)
    if family == "llama3":
        return "<|python_tag|>" + "; ".join(_j({"name": n, "parameters": a}) for n, a in calls)
    if family == "pythonic":
        body = ", ".join(f"{n}(" + ", ".join(f"{k}={v!r}" for k, v in a.items()) + ")" for n, a in calls)
        return f"<|tool_call_start|>[{body}]<|tool_call_end|>"
    if family == "mistral":
        return "[TOOL_CALLS]" + "".join(f"{n}[ARGS]{_j(a)}" for n, a in calls)
    if family == "mistral_json":
        return "[TOOL_CALLS] " + _j([{"name": n, "arguments": a} for n, a in calls])
    if family == "deepseek_v3":
        body = "".join(f"<｜tool▁call▁begin｜>function<｜tool▁sep｜>{n}\n```json\n{_j(a)}\n```<｜tool▁call▁end｜>"
                       for n, a in calls)
        return f"<｜tool▁calls▁begin｜>{body}<｜tool▁calls▁end｜>"
    if family == "deepseek_v31":
        body = "".join(f"<｜tool▁call▁begin｜>{n}<｜tool▁sep｜>{_j(a)}<｜tool▁call▁end｜>" for n, a in calls)
        return f"<｜tool▁calls▁begin｜>{body}<｜tool▁calls▁end｜>"
    if family == "glm45":
        return "\n".join(
            f"<tool_call>{n}\n" + "".join(f"<arg_key>{k}</arg_key>\n<arg_value>{_text_value(v)}</arg_value>\n"
                                          for k, v in a.items()) + "</tool_call>" for n, a in calls)
    if family == "kimi_k2":
        body = "".join(f"<|tool_call_begin|>functions.{n}:{i}<|tool_call_argument_begin|>{_j(a)}<|tool_call_end|>"
                       for i, (n, a) in enumerate(calls))
        return f"<|tool_calls_section_begin|>{body}<|tool_calls_section_end|>"
    if family == "kimi_k3":
        return _kimi_k3(calls)
    if family == "harmony":
        return "<|channel|>analysis<|message|>Need a tool.<|end|>" + "".join(
            f"<|start|>assistant<|channel|>commentary to=functions.{n} <|constrain|>json<|message|>{_j(a)}<|call|>"
            for n, a in calls)
    if family == "gemma4":
        return "".join(f"<|tool_call>call:{n}{_gemma(a, chr(60) + '|' + chr(34) + '|' + chr(62))}<tool_call|>"
                       for n, a in calls)
    if family == "json":
        return "\n".join(f"```json\n{_j({'name': n, 'arguments': a})}\n```" for n, a in calls)
    if family == "text":
        return "\n".join(f"[Tool call: {n}({_j(a)})]" for n, a in calls)
    raise ValueError(family)


RENDERED_FAMILIES = ("hermes", "qwen3_coder", "llama3", "pythonic", "mistral", "mistral_json", "deepseek_v3",
                     "deepseek_v31", "glm45", "kimi_k2", "kimi_k3", "harmony", "gemma4", "json", "text")


def _rendered_cases() -> list[Case]:
    cases = []
    for fi, fam in enumerate(RENDERED_FAMILIES):
        for si, (set_name, calls) in enumerate(CALL_SETS.items()):
            prose = PROSE[(fi + si) % len(PROSE)]
            text = (prose + "\n\n" if prose else "") + render(fam, calls)
            family = "mistral" if fam == "mistral_json" else fam
            generic = family in ("json", "text")
            cases.append(Case(
                id=f"{fam}-{set_name}", text=text, calls=calls, content=prose or None,
                reasoning="Need a tool." if fam == "harmony" else None,
                repairs=(f"format:{family}",) if generic else (), format=family,
                outcome="repaired" if generic else "valid"))
    return cases


# --- damaged outputs, written out ----------------------------------------------------------------------------------

RF = [("read_file", {"path": "a.py"})]
_H = '{"name": "read_file", "arguments": {"path": "a.py"}}'

HAND: list[Case] = [
    # hermes: tags
    Case("h-missing-close-eof", f"<tool_call>\n{_H}", RF, None, repairs=("truncated",), format="hermes"),
    Case("h-missing-close-prose", f"Sure.\n<tool_call>\n{_H}\nI will wait for the result.", RF,
         "Sure.\n\nI will wait for the result.", repairs=("closing_tag",)),
    Case("h-mangled-close-1", f"<tool_call>\n{_H}\n</tool_call", RF, None, repairs=("closing_tag",)),
    Case("h-mangled-close-2", f"<tool_call>{_H}</tool-call>\nDone.", RF, "Done.", repairs=("closing_tag",)),
    Case("h-mangled-close-3", f"<tool_call>{_H}<|/tool_call|>", RF, None, repairs=("closing_tag",)),
    Case("h-mangled-close-4", f"<tool_call>{_H}</toolcall>", RF, None, repairs=("closing_tag",)),
    Case("h-open-as-close", f"<tool_call>\n{_H}\n<tool_call>", RF, None, repairs=("closing_tag",)),
    Case("h-close-missing-between", f"<tool_call>{_H}\n<tool_call>" + '{"name": "get_time", "arguments": {}}'
         "</tool_call>", [*RF, ("get_time", {})], None, repairs=("closing_tag",)),
    Case("h-missing-open", f"{_H}\n</tool_call>", RF, None, repairs=("opening_tag",), format="hermes"),
    Case("h-missing-open-prose", f"Reading it now.\n{_H}</tool_call>", RF, "Reading it now.",
         repairs=("opening_tag",)),
    Case("h-missing-brace", '<tool_call>{"name": "read_file", "arguments": {"path": "a.py"}</tool_call>', RF, None,
         repairs=("json_syntax",)),
    Case("h-extra-brace", '<tool_call>{"name": "read_file", "arguments": {"path": "a.py"}}}</tool_call>', RF, None,
         repairs=("json_syntax",)),
    Case("h-truncated-complete-args", '<tool_call>\n{"name": "read_file", "arguments": {"path": "a.py"}', RF, None,
         repairs=("truncated",)),
    Case("h-truncated-in-args", '<tool_call>\n{"name": "write_file", "arguments": {"path": "a.py", "content": "de',
         [], '<tool_call>\n{"name": "write_file", "arguments": {"path": "a.py", "content": "de',
         errors=("truncated",), outcome="failed"),
    Case("h-truncated-after-open", "Let me check.\n<tool_call>", [], "Let me check.\n<tool_call>",
         errors=("truncated",)),
    Case("h-single-quotes", "<tool_call>{'name': 'read_file', 'arguments': {'path': 'a.py'}}</tool_call>", RF, None,
         repairs=("single_quotes",)),
    Case("h-single-quotes-apostrophe", "<tool_call>{'name': 'write_file', 'arguments': {'path': 'x', "
         "'content': 'it\\'s \"fine\"'}}</tool_call>", [("write_file", {"path": "x", "content": "it's \"fine\""})],
         None, repairs=("single_quotes",)),
    Case("h-python-literals", '<tool_call>{"name": "run_shell", "arguments": {"command": "make", "background": True}}'
         "</tool_call>", [("run_shell", {"command": "make", "background": True})], None,
         repairs=("python_literal",)),
    Case("h-python-none", "<tool_call>{'name': 'read_file', 'arguments': {'path': 'a.py', 'limit': None}}"
         "</tool_call>", [], "<tool_call>{'name': 'read_file', 'arguments': {'path': 'a.py', 'limit': None}}"
         "</tool_call>", errors=("schema_mismatch",)),
    Case("h-trailing-commas", '<tool_call>{"name": "search", "arguments": {"query": "x", "tags": ["a", "b",],},}'
         "</tool_call>", [("search", {"query": "x", "tags": ["a", "b"]})], None, repairs=("trailing_comma",)),
    Case("h-raw-newline", '<tool_call>{"name": "write_file", "arguments": {"path": "a.txt", "content": "one\ntwo"}}'
         "</tool_call>", [("write_file", {"path": "a.txt", "content": "one\ntwo"})], None,
         repairs=("json_syntax",)),
    Case("h-bad-escape", '<tool_call>{"name": "read_file", "arguments": {"path": "C:\\Users\\me\\x.py"}}</tool_call>',
         [("read_file", {"path": "C:\\Users\\me\\x.py"})], None, repairs=("json_syntax",)),
    Case("h-byte-exact", '<tool_call>{"name": "search", "arguments": {"query": "it\'s C:\\\\path"}}</tool_call>',
         [("search", {"query": "it's C:\\path"})], None, outcome="valid"),
    Case("h-unquoted-keys", '<tool_call>{name: "read_file", arguments: {path: "a.py"}}</tool_call>', RF, None,
         repairs=("json_syntax",)),
    Case("h-missing-comma", '<tool_call>{"name": "read_file" "arguments": {"path": "a.py"}}</tool_call>', RF, None,
         repairs=("json_syntax",)),
    Case("h-two-in-block", f"<tool_call>\n{_H}\n" + '{"name": "get_time", "arguments": {}}\n</tool_call>',
         [*RF, ("get_time", {})], None, repairs=("merged_calls",)),
    # a block holding a call that goes out and one that does not keeps its whole text in content: the text of the
    # call that did not go out is the client's only sight of it (found by review: the block's text was dropped)
    Case("h-merged-one-unknown", f'<tool_call>\n{_H}\n{{"name": "delete_all", "arguments": {{"force": true}}}}\n'
         "</tool_call>", RF, f'<tool_call>\n{_H}\n{{"name": "delete_all", "arguments": {{"force": true}}}}\n'
         "</tool_call>", repairs=("merged_calls",), errors=("unknown_name",)),
    Case("h-list-one-invalid", f'[{_H}, {{"name": "read_file", "arguments": {{"limit": 3}}}}]', RF,
         f'[{_H}, {{"name": "read_file", "arguments": {{"limit": 3}}}}]', errors=("schema_mismatch",)),
    Case("h-pythonic-one-unknown", "<|tool_call_start|>[read_file(path='a.py'), nuke(all=True)]<|tool_call_end|>", RF,
         "<|tool_call_start|>[read_file(path='a.py'), nuke(all=True)]<|tool_call_end|>", errors=("unknown_name",)),
    # prose written inside a call's markup after its arguments is content, as Hermes keeps it (found by review:
    # the section formats and harmony noted it as a syntax slip and dropped it)
    Case("ds-prose-after-args", "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>read_file<｜tool▁sep｜>"
         '{"path": "a.py"} I will wait for the result.<｜tool▁call▁end｜><｜tool▁calls▁end｜>', RF,
         "I will wait for the result."),
    Case("kimi-prose-after-args", "<|tool_calls_section_begin|><|tool_call_begin|>functions.read_file:0"
         '<|tool_call_argument_begin|>{"path": "a.py"} I will wait.<|tool_call_end|><|tool_calls_section_end|>', RF,
         "I will wait."),
    Case("harmony-prose-after-args", '<|channel|>commentary to=functions.read_file <|constrain|>json<|message|>'
         '{"path": "a.py"}\n\nThen I will summarize the result.', RF, "Then I will summarize the result."),
    # the first line after removed markup keeps its indentation (found by review: it was stripped, unlike the lines
    # after it, breaking an indented code block)
    Case("h-indent-after-call", f"Here is the plan:\n<tool_call>\n{_H}\n</tool_call>\n    for x in xs:\n"
         "        print(x)", RF, "Here is the plan:\n\n    for x in xs:\n        print(x)"),
    Case("think-indent-after", "<think>\nplan\n</think>\n    $ make test\n    $ make install", [],
         "    $ make test\n    $ make install", reasoning="plan", outcome="none"),
    # a Qwen3-Coder value framed by CRLF loses the whole CRLF on both sides (found by review: a lone "\r" was left)
    Case("qc-crlf-framing", "<tool_call>\r\n<function=write_file>\r\n<parameter=path>\r\nx\r\n</parameter>\r\n"
         "<parameter=content>\r\nfoo\r\n</parameter>\r\n</function>\r\n</tool_call>",
         [("write_file", {"path": "x", "content": "foo"})], None),
    Case("h-list-in-block", f"<tool_call>[{_H}, " + '{"name": "get_time", "arguments": {}}]</tool_call>',
         [*RF, ("get_time", {})], None, repairs=("merged_calls",)),
    Case("h-double-encoded", '<tool_call>{"name": "read_file", "arguments": "{\\"path\\": \\"a.py\\"}"}</tool_call>',
         RF, None, repairs=("double_encoded",)),
    Case("h-parameters-key", '<tool_call>{"name": "read_file", "parameters": {"path": "a.py"}}</tool_call>', RF,
         None, repairs=("parameters_key",)),
    Case("h-name-case", '<tool_call>{"name": "Read_File", "arguments": {"path": "a.py"}}</tool_call>', RF, None,
         repairs=("name_normalised",)),
    Case("h-name-prefix", '<tool_call>{"name": "functions.read_file", "arguments": {"path": "a.py"}}</tool_call>',
         RF, None, repairs=("name_normalised",)),
    Case("h-name-dash", '<tool_call>{"name": "read-file", "arguments": {"path": "a.py"}}</tool_call>', RF, None,
         repairs=("name_normalised",)),
    Case("h-name-typo", '<tool_call>{"name": "raed_file", "arguments": {"path": "a.py"}}</tool_call>', RF, None,
         repairs=("name_normalised",)),
    Case("h-coerce-int", '<tool_call>{"name": "read_file", "arguments": {"path": "a.py", "limit": "5"}}</tool_call>',
         [("read_file", {"path": "a.py", "limit": 5})], None, repairs=("coerced_type",)),
    Case("h-coerce-int-exact", '<tool_call>{"name": "read_file", "arguments": {"path": "a.py", "limit": '
         '"9007199254740993.0"}}</tool_call>', [("read_file", {"path": "a.py", "limit": 9007199254740993})], None,
         repairs=("coerced_type",)),  # found by review: "N.0" went through float and lost the last digit
    # a number written for a string parameter becomes the text the model wrote, not its float's repr (found by
    # review: 1.10 became "1.1", 1e3 "1000.0")
    Case("h-number-as-written", '<tool_call>{"name": "write_file", "arguments": {"path": "v", "content": 1.10}}'
         "</tool_call>", [("write_file", {"path": "v", "content": "1.10"})], None, repairs=("coerced_type",)),
    Case("h-exponent-as-written", '<tool_call>{"name": "write_file", "arguments": {"path": "v", "content": 1e3}}'
         "</tool_call>", [("write_file", {"path": "v", "content": "1e3"})], None, repairs=("coerced_type",)),
    Case("h-coerce-bool-number", '<tool_call>{"name": "run_shell", "arguments": {"command": "x", '
         '"background": "false", "timeout": "2.5"}}</tool_call>',
         [("run_shell", {"command": "x", "background": False, "timeout": 2.5})], None, repairs=("coerced_type",)),
    Case("h-coerce-json-string", '<tool_call>{"name": "search", "arguments": {"query": "q", '
         '"filters": "{\\"lang\\": \\"go\\"}", "tags": "[\\"x\\"]"}}</tool_call>',
         [("search", {"query": "q", "filters": {"lang": "go"}, "tags": ["x"]})], None, repairs=("coerced_type",)),
    Case("h-coerce-to-string", '<tool_call>{"name": "get_weather", "arguments": {"location": 75001}}</tool_call>',
         [("get_weather", {"location": "75001"})], None, repairs=("coerced_type",)),
    Case("h-think-call", "<think>The user wants a.py.\n<tool_call>\n" + _H + "\n</tool_call>\n</think>", RF, None,
         reasoning="The user wants a.py.", repairs=("think_block",)),
    Case("h-think-unclosed", "<think>I will read it.\n<tool_call>" + _H + "</tool_call>", RF, None,
         reasoning="I will read it.", repairs=("think_block",)),
    Case("h-think-then-call", "<think>Plan: <tool_call>" + _H + "</tool_call></think>\n<tool_call>"
         '{"name": "get_time", "arguments": {}}</tool_call>', [("get_time", {})], None,
         reasoning="Plan: <tool_call>" + _H + "</tool_call>", outcome="valid"),
    Case("h-think-prose", "<think>\nShort plan.\n</think>\n\nHere you go.", [], "Here you go.",
         reasoning="Short plan.", outcome="none"),
    Case("h-prose-around", "First.\n<tool_call>" + _H + "</tool_call>\nThen more.", RF, "First.\n\nThen more."),
    Case("h-inside-block-prose", "<tool_call>" + _H + "\nreading the file</tool_call>", RF, "reading the file"),
    Case("h-marker-in-string", '<tool_call>{"name": "write_file", "arguments": {"path": "t.md", "content": '
         '"Wrap calls in <tool_call> and </tool_call>."}}</tool_call>\nDone.',
         [("write_file", {"path": "t.md", "content": "Wrap calls in <tool_call> and </tool_call>."})], "Done."),
    Case("h-ws-before", "Text   \n\n  <tool_call>" + _H + "</tool_call>", RF, "Text"),
    # qwen3-coder
    Case("q-missing-param-close", "<tool_call>\n<function=write_file>\n<parameter=path>\na.txt\n"
         "<parameter=content>\nhello\n</parameter>\n</function>\n</tool_call>",
         [("write_file", {"path": "a.txt", "content": "hello"})], None, repairs=("closing_tag",)),
    Case("q-missing-function-close", "<tool_call>\n<function=read_file>\n<parameter=path>\na.py\n</parameter>\n"
         "</tool_call>", RF, None, repairs=("closing_tag",)),
    Case("q-missing-tool-call-close", "<tool_call>\n<function=read_file>\n<parameter=path>\na.py\n</parameter>\n"
         "</function>", RF, None, repairs=("truncated",)),
    Case("q-missing-open", "<function=read_file>\n<parameter=path>\na.py\n</parameter>\n</function>\n</tool_call>",
         RF, None, repairs=("opening_tag",), format="qwen3_coder"),
    Case("q-truncated-in-value", "<tool_call>\n<function=write_file>\n<parameter=path>\na.txt\n</parameter>\n"
         "<parameter=content>\nhel", [], "<tool_call>\n<function=write_file>\n<parameter=path>\na.txt\n"
         "</parameter>\n<parameter=content>\nhel", errors=("truncated",)),
    Case("q-multiline", "<tool_call>\n<function=write_file>\n<parameter=path>\nm.py\n</parameter>\n"
         "<parameter=content>\ndef f():\n    return 1\n\n</parameter>\n</function>\n</tool_call>",
         [("write_file", {"path": "m.py", "content": "def f():\n    return 1\n"})], None, outcome="valid"),
    Case("q-typed", "<tool_call>\n<function=read_file>\n<parameter=path>\n5\n</parameter>\n<parameter=limit>\n5\n"
         "</parameter>\n</function>\n</tool_call>", [("read_file", {"path": "5", "limit": 5})], None,
         outcome="valid"),
    Case("q-two-functions", "<tool_call>\n<function=get_time>\n</function>\n<function=read_file>\n<parameter=path>\n"
         "a.py\n</parameter>\n</function>\n</tool_call>", [("get_time", {}), *RF], None, repairs=("merged_calls",)),
    Case("q-llama-function-json", 'Calling.\n<function=read_file>{"path": "a.py"}</function>', RF, "Calling.",
         format="llama3", outcome="valid"),
    # llama3
    Case("l-bare-parameters", '{"name": "read_file", "parameters": {"path": "a.py"}}', RF, None, format="llama3",
         outcome="valid"),
    Case("l-eom", '<|python_tag|>{"name": "read_file", "parameters": {"path": "a.py"}}<|eom_id|>', RF, None,
         format="llama3", outcome="valid"),
    Case("l-two-semicolon", '{"name": "get_time", "parameters": {}}; {"name": "read_file", "parameters": '
         '{"path": "a.py"}}', [("get_time", {}), *RF], None, format="llama3"),
    Case("l-python-call", '<|python_tag|>read_file(path="a.py")', RF, None, format="llama3"),
    Case("l-bare-arguments-json", 'Here:\n{"name": "read_file", "arguments": {"path": "a.py"}}', RF, "Here:",
         repairs=("format:json",), format="json"),
    Case("l-pretty", 'I will call it:\n{\n  "name": "read_file",\n  "arguments": {\n    "path": "a.py"\n  }\n}\n',
         RF, "I will call it:", repairs=("format:json",)),
    Case("l-openai-shape", '{"type": "function", "function": {"name": "read_file", "arguments": "{\\"path\\": '
         '\\"a.py\\"}"}}', RF, None, repairs=("format:json", "double_encoded")),
    Case("l-type-first", '{"type": "function", "name": "read_file", "parameters": {"path": "a.py"}}', RF, None,
         format="llama3", outcome="valid"),
    Case("l-list", '[{"name": "get_time", "arguments": {}}, {"name": "read_file", "arguments": {"path": "a.py"}}]',
         [("get_time", {}), *RF], None, repairs=("format:json",)),
    # pythonic
    Case("p-bare", "[read_file(path='a.py')]", RF, None, format="pythonic", outcome="valid"),
    Case("p-bare-two", "Doing both.\n[get_time(), read_file(path=\"a.py\", limit=3)]",
         [("get_time", {}), ("read_file", {"path": "a.py", "limit": 3})], "Doing both."),
    Case("p-json-literals", "<|tool_call_start|>[run_shell(command='x', background=true)]<|tool_call_end|>",
         [("run_shell", {"command": "x", "background": True})], None, outcome="valid"),
    Case("p-missing-bracket", "<|tool_call_start|>[read_file(path='a.py')<|tool_call_end|>", RF, None,
         repairs=("json_syntax",)),
    Case("p-no-brackets", "<|tool_call_start|>read_file(path='a.py')<|tool_call_end|>", RF, None,
         repairs=("json_syntax",)),
    Case("p-missing-end", "<|tool_call_start|>[read_file(path='a.py')]", RF, None, repairs=("truncated",)),
    Case("p-truncated", "<|tool_call_start|>[read_file(path='a.p", [], "<|tool_call_start|>[read_file(path='a.p",
         errors=("truncated",)),
    Case("p-nested", "<|tool_call_start|>[search(query='q', filters={'lang': 'js', 'max': 2}, tags=['t'])]"
         "<|tool_call_end|>", [("search", {"query": "q", "filters": {"lang": "js", "max": 2}, "tags": ["t"]})],
         None),
    # mistral
    Case("m-call-id", '[TOOL_CALLS]read_file[CALL_ID]a1b2c3d4e[ARGS]{"path": "a.py"}', RF, None, format="mistral",
         outcome="valid"),
    Case("m-eos", '[TOOL_CALLS]read_file[ARGS]{"path": "a.py"}</s>', RF, None, outcome="valid"),
    Case("m-repeated-marker", '[TOOL_CALLS]get_time[ARGS]{}[TOOL_CALLS]read_file[ARGS]{"path": "a.py"}',
         [("get_time", {}), *RF], None),
    Case("m-string-args", '[TOOL_CALLS] [{"name": "read_file", "arguments": "{\\"path\\": \\"a.py\\"}"}]', RF,
         None, repairs=("double_encoded",)),
    Case("m-single-object", '[TOOL_CALLS] {"name": "read_file", "arguments": {"path": "a.py"}}', RF, None),
    Case("m-bad-json", "[TOOL_CALLS]read_file[ARGS]{'path': 'a.py',}", RF, None,
         repairs=("single_quotes", "trailing_comma")),
    # deepseek
    Case("d-ascii-bars", "<|tool▁calls▁begin|><|tool▁call▁begin|>read_file<|tool▁sep|>{\"path\": \"a.py\"}"
         "<|tool▁call▁end|><|tool▁calls▁end|>", RF, None, format="deepseek_v31"),
    Case("d-missing-section-end", "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>read_file<｜tool▁sep｜>"
         '{"path": "a.py"}<｜tool▁call▁end｜>', RF, None, repairs=("truncated",)),
    Case("d-missing-call-end", "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>read_file<｜tool▁sep｜>"
         '{"path": "a.py"}<｜tool▁calls▁end｜>', RF, None, repairs=("closing_tag",)),
    Case("d-v3-no-fence", "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>read_file\n"
         '{"path": "a.py"}<｜tool▁call▁end｜><｜tool▁calls▁end｜>', RF, None, format="deepseek_v3"),
    Case("d-missing-section-begin", "<｜tool▁call▁begin｜>read_file<｜tool▁sep｜>{\"path\": \"a.py\"}"
         "<｜tool▁call▁end｜>", RF, None, repairs=("opening_tag",)),
    Case("d-truncated", "Sure.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>read_file<｜tool▁sep｜>{\"path\": \"a.",
         [], "Sure.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>read_file<｜tool▁sep｜>{\"path\": \"a.",
         errors=("truncated",)),
    # glm
    Case("g-noargs", "<tool_call>get_time</tool_call>", [("get_time", {})], None, format="glm45", outcome="valid"),
    Case("g-47-compact", "<tool_call>read_file<arg_key>path</arg_key><arg_value>a.py</arg_value><arg_key>limit"
         "</arg_key><arg_value>7</arg_value></tool_call>", [("read_file", {"path": "a.py", "limit": 7})], None,
         outcome="valid"),
    Case("g-missing-value-close", "<tool_call>read_file\n<arg_key>path</arg_key>\n<arg_value>a.py\n"
         "<arg_key>limit</arg_key>\n<arg_value>2</arg_value>\n</tool_call>",
         [("read_file", {"path": "a.py", "limit": 2})], None, repairs=("closing_tag",)),
    Case("g-json-body", '<tool_call>read_file\n{"path": "a.py"}\n</tool_call>', RF, None, format="glm45"),
    # cut off after a complete value: more arguments may have followed, so nothing is emitted (as vLLM's glm4_moe)
    Case("g-missing-close", "<tool_call>read_file\n<arg_key>path</arg_key>\n<arg_value>a.py</arg_value>", [],
         "<tool_call>read_file\n<arg_key>path</arg_key>\n<arg_value>a.py</arg_value>", errors=("truncated",)),
    # kimi
    Case("k-missing-section-begin", '<|tool_call_begin|>functions.read_file:0<|tool_call_argument_begin|>'
         '{"path": "a.py"}<|tool_call_end|>', RF, None, repairs=("opening_tag",), format="kimi_k2"),
    Case("k-missing-section-end", '<|tool_calls_section_begin|><|tool_call_begin|>functions.read_file:0'
         '<|tool_call_argument_begin|>{"path": "a.py"}<|tool_call_end|>', RF, None, repairs=("truncated",)),
    Case("k-missing-call-end", '<|tool_calls_section_begin|><|tool_call_begin|>functions.read_file:0'
         '<|tool_call_argument_begin|>{"path": "a.py"}<|tool_calls_section_end|>', RF, None,
         repairs=("closing_tag",)),
    Case("k-no-prefix", '<|tool_calls_section_begin|><|tool_call_begin|>read_file:3<|tool_call_argument_begin|>'
         '{"path": "a.py"}<|tool_call_end|><|tool_calls_section_end|>', RF, None, outcome="valid"),
    # harmony
    Case("hm-final", "<|channel|>analysis<|message|>Simple question.<|end|><|start|>assistant<|channel|>final"
         "<|message|>The answer is 4.<|return|>", [], "The answer is 4.", reasoning="Simple question.",
         format="harmony", outcome="none"),
    Case("hm-to-in-header", '<|start|>assistant to=functions.read_file<|channel|>commentary json<|message|>'
         '{"path": "a.py"}<|call|>', RF, None, outcome="valid"),
    Case("hm-no-call-token", '<|channel|>commentary to=functions.read_file <|constrain|>json<|message|>'
         '{"path": "a.py"}', RF, None, outcome="valid"),
    Case("hm-preamble", "<|channel|>commentary<|message|>Checking the file.<|end|><|start|>assistant<|channel|>"
         'commentary to=functions.read_file <|constrain|>json<|message|>{"path": "a.py"}<|call|>', RF,
         "Checking the file."),
    # gemma
    Case("gm-function-gemma", "<start_function_call>call:read_file{path:<escape>a.py<escape>,limit:4}"
         "<end_function_call>", [("read_file", {"path": "a.py", "limit": 4})], None, format="gemma4",
         outcome="valid"),
    Case("gm-missing-close", '<|tool_call>call:read_file{path:<|"|>a.py<|"|>}', RF, None, repairs=("truncated",)),
    Case("gm-two-in-block", '<|tool_call>call:get_time{}call:read_file{path:<|"|>a.py<|"|>}<tool_call|>',
         [("get_time", {}), *RF], None, repairs=("merged_calls",)),
    Case("gm-braces-in-string", '<|tool_call>call:write_file{path:<|"|>b.js<|"|>,content:<|"|>f() { return {a:1} }'
         '<|"|>}<tool_call|>', [("write_file", {"path": "b.js", "content": "f() { return {a:1} }"})], None),
    # fenced / text forms
    Case("j-fence-plain", 'Running:\n```\n{"name": "read_file", "arguments": {"path": "a.py"}}\n```', RF,
         "Running:", repairs=("format:json",)),
    Case("j-fence-tool-call", '```tool_call\n{"name": "read_file", "arguments": {"path": "a.py"}}\n```', RF, None,
         repairs=("format:json",)),
    Case("t-plain", 'Tool call: read_file({"path": "a.py"})', RF, None, repairs=("format:text",), format="text"),
    Case("t-kwargs", "[Tool call: read_file(path=\"a.py\", limit=2)]\nwaiting", [("read_file",
         {"path": "a.py", "limit": 2})], "waiting", repairs=("format:text",)),
    Case("t-empty", "[Tool call: get_time()]", [("get_time", {})], None, repairs=("format:text",)),
    # request options
    Case("o-parallel-false", render("hermes", CALL_SETS["two"]), [CALL_SETS["two"][0]], None,
         repairs=("parallel_trimmed",), opts={"parallel_tool_calls": False}),
    Case("o-named-choice", render("hermes", CALL_SETS["two"]), [CALL_SETS["two"][1]],
         render("hermes", CALL_SETS["two"][:1]),
         errors=("not_allowed",), opts={"tool_choice": {"type": "function", "function": {"name": "read_file"}}}),
    Case("o-required-no-call", "I cannot do that.", [], "I cannot do that.", errors=("no_call",),
         opts={"tool_choice": "required"}),
    Case("o-choice-none", "Ok.\n" + render("hermes", RF), [], "Ok.\n" + render("hermes", RF),
         opts={"tool_choice": "none"}),
    Case("o-format-mismatch", render("kimi_k2", RF), RF, None, repairs=("format:kimi_k2",),
         opts={"format": "hermes"}),
    Case("o-format-match", render("kimi_k2", RF), RF, None, opts={"format": "kimi_k2"}, outcome="valid"),
    Case("o-bare-params-non-llama", '{"name": "read_file", "parameters": {"path": "a.py"}}', RF, None,
         repairs=("parameters_key", "format:json"), opts={"format": "hermes"}),
    # failures that keep the text
    Case("f-unknown-name", '<tool_call>{"name": "delete_all", "arguments": {}}</tool_call>', [],
         '<tool_call>{"name": "delete_all", "arguments": {}}</tool_call>', errors=("unknown_name",),
         outcome="failed"),
    Case("f-schema-missing-required", '<tool_call>{"name": "read_file", "arguments": {"limit": 3}}</tool_call>',
         [], '<tool_call>{"name": "read_file", "arguments": {"limit": 3}}</tool_call>', errors=("schema_mismatch",)),
    Case("f-schema-enum", '<tool_call>{"name": "get_weather", "arguments": {"location": "x", "unit": "kelvin"}}'
         "</tool_call>", [], '<tool_call>{"name": "get_weather", "arguments": {"location": "x", "unit": "kelvin"}}'
         "</tool_call>", errors=("schema_mismatch",)),
    Case("f-schema-pattern", '<tool_call>{"name": "list_dir", "arguments": {"path": "*"}}</tool_call>', [],
         '<tool_call>{"name": "list_dir", "arguments": {"path": "*"}}</tool_call>', errors=("schema_mismatch",)),
    Case("f-schema-nested", '<tool_call>{"name": "search", "arguments": {"query": "q", "filters": {"lang": "rust"}}}'
         "</tool_call>", [], '<tool_call>{"name": "search", "arguments": {"query": "q", "filters": {"lang": "rust"}}}'
         "</tool_call>", errors=("schema_mismatch",)),
    Case("f-invalid-json", "<tool_call>{name read_file args path}</tool_call>", [],
         "<tool_call>{name read_file args path}</tool_call>", errors=("invalid_json",)),
    Case("f-mixed", '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>\n<tool_call>{"name": "nope", '
         '"arguments": {}}</tool_call>', [("get_time", {})], '<tool_call>{"name": "nope", "arguments": {}}'
         "</tool_call>", errors=("unknown_name",)),
    Case("f-no-tools", render("hermes", RF), [], render("hermes", RF), errors=("unknown_name",), tools=[]),
    Case("f-no-tools-kimi", render("kimi_k2", RF), [], render("kimi_k2", RF), errors=("unknown_name",), tools=[]),
]

# --- negatives: no call may come out of these ------------------------------------------------------------------

NEGATIVE_TEXTS: list[str] = [
    "Hello! How can I help you today?",
    "The function f(x) = {x | x > 0} is defined on the positive reals.",
    'Here is a JSON sample: {"name": "Alice", "age": 30}',
    '{"name": "Bob", "arguments": {"x": 1}}',
    '```json\n{"name": "my-package", "version": "1.0.0", "dependencies": {}}\n```',
    "```python\ndef read_file(path):\n    return open(path).read()\n```",
    "Use a list comprehension:\n[print(x) for x in range(3)]",
    "[link text](https://example.com) and [another](#anchor)",
    "To call tools, use the <tool_call> tag with a JSON body.",
    "Models like Mistral emit the [TOOL_CALLS] token before calls.",
    "Kimi uses <|tool_calls_section_begin|> markers, as documented.",
    "Harmony messages start with <|channel|> and a channel name.",
    "The <think> tag is used for reasoning in some models.",
    "const obj = { name: 'x', run() { return [1, 2]; } };",
    "if (a[0] < b[1]) { return {\"name\": value}; }",
    "Tool call: the model decided not to call anything.",
    "[Tool call: this is just a sentence about tools]",
    '[{"id": 1, "value": "x"}, {"id": 2}]',
    "Python: `read_file(path)` reads a file; call it as read_file('a.py').",
    "Nested {{{{ braces }}}} and [[[[ brackets ]]]] everywhere.",
    "Use `<function=name>` syntax in Qwen3-Coder docs.",
    "A <|python_tag|> token appears in Llama templates.",
    "Gemma writes <|tool_call> in its templates.",
    "```\nplain fenced text\n```",
    "email me at a@b.c {not json}",
    "Call delete_everything() if you dare: [delete_everything(force=True)]",
    '{"name": "delete_everything", "arguments": {"force": true}}',
    "Windows path: C:\\Users\\me\\file.txt and it's fine.",
    "Numbers [1, 2, 3] and dict {'a': 1}.",
    "<tool_call>this is not a call at all, just words",
    "Some <unknown_tag>text</unknown_tag> markup.",
    # a model explaining or listing its tools makes no call (found by review: the schema became the arguments)
    'Here is the definition of the tool:\n```json\n{"type": "function", "function": {"name": "get_time", '
    '"parameters": {"type": "object", "properties": {}}}}\n```\nIt takes no arguments.',
    'The definition: {"name": "get_time", "parameters": {"type": "object", "properties": {}}} - no arguments.',
    'The "get_time" tool: {"name": "get_time", "description": "Returns the time"}',
    'Tool list:\n[{"name": "read_file", "description": "Read a file"}, {"name": "get_time", "description": ""}]',
]

def _target_tool(name: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": {
        "type": "object", "properties": {"target": {"type": "string"}}, "required": ["target"]}}}


# a call to a tool that was not declared, whose name differs from a declared one by a word of another meaning (found
# by review: a close-match rule renamed each to the declared tool, arguments and all)
_FLIPPED = [("unlock_door", "lock_door"), ("restart_server", "start_server"), ("get_config_value", "set_config_value"),
            ("install_package", "uninstall_package"), ("block_user", "lock_user"), ("enable_rule", "disable_rule")]

NEGATIVE_WITH_ERRORS: list[tuple[str, str, list[dict[str, Any]] | None]] = [
    *[(f'<tool_call>{{"name": "{written}", "arguments": {{"target": "prod"}}}}</tool_call>', "unknown_name",
       [_target_tool(declared)]) for written, declared in _FLIPPED],
    ('Broken JSON {"name": "read_file", "arguments": is just text here? no: "name" "x"', "truncated", None),
    ('<tool_call>{"name": "delete_everything", "arguments": {}}</tool_call>', "unknown_name", None),
    ("[TOOL_CALLS]delete_everything[ARGS]{}", "unknown_name", None),
    ('<|python_tag|>{"name": "read_file", "parameters": {"path": "a.py"}}', "unknown_name", []),
    ("<|tool_call_start|>[read_file(path='a.py')]<|tool_call_end|>", "unknown_name", []),
    ("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>read_file<｜tool▁sep｜>{}<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
     "unknown_name", []),
]


def negatives() -> list[Case]:
    cases = [Case(f"neg-{i}", t, [], t, outcome="none") for i, t in enumerate(NEGATIVE_TEXTS)]
    cases += [Case(f"neg-no-tools-{i}", t, [], t, outcome="none", tools=[])
              for i, t in enumerate(NEGATIVE_TEXTS[:8])]
    cases += [Case(f"neg-err-{i}", t, [], t, errors=(kind,), tools=tools, outcome="failed")
              for i, (t, kind, tools) in enumerate(NEGATIVE_WITH_ERRORS)]
    return cases


POSITIVE: list[Case] = _rendered_cases() + [c for c in HAND if c.calls]
FAILING: list[Case] = [c for c in HAND if not c.calls]
NEGATIVE: list[Case] = negatives()
ALL: list[Case] = POSITIVE + FAILING + NEGATIVE
