"""Wire forms beyond the regression corpus: each recovered with the content around it kept, identically streamed."""

from __future__ import annotations

import json

import pytest

from repair import repair_message
from tests.repair.helpers import assert_stream_matches, calls_of, ids

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city"]}}}]
CALL = [("get_weather", {"city": "Paris", "days": 2})]

FORMS = {
    "step3": ('Checking.\n<｜tool_calls_begin｜><｜tool_call_begin｜>function<｜tool_sep｜>'
              '<steptml:invoke name="get_weather"><steptml:parameter name="city">Paris</steptml:parameter>'
              '<steptml:parameter name="days">2</steptml:parameter></steptml:invoke><｜tool_call_end｜>'
              "<｜tool_calls_end｜>"),
    "dsml_v4": ('Checking.\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name="get_weather">\n'
                '<｜DSML｜parameter name="city" string="true">Paris</｜DSML｜parameter>\n'
                '<｜DSML｜parameter name="days" string="false">2</｜DSML｜parameter>\n</｜DSML｜invoke>\n'
                "</｜DSML｜tool_calls>"),
    "minimax_m2": ('Checking.\n<minimax:tool_call>\n<invoke name="get_weather">\n<parameter name="city">Paris'
                   '</parameter>\n<parameter name="days">2</parameter>\n</invoke>\n</minimax:tool_call>'),
    "hy_v3": "Checking.\n<tool_calls>\n<tool_call>get_weather<tool_sep>\n<arg_key>city</arg_key>\n<arg_value>Paris"
             "</arg_value>\n<arg_key>days</arg_key>\n<arg_value>2</arg_value>\n</tool_call>\n</tool_calls>",
    "longcat": "Checking.\n<longcat_tool_call>get_weather\n<longcat_arg_key>city</longcat_arg_key>\n<longcat_arg_value>"
               "Paris</longcat_arg_value>\n<longcat_arg_key>days</longcat_arg_key>\n<longcat_arg_value>2"
               "</longcat_arg_value>\n</longcat_tool_call>",
    "seed_oss": "<seed:think>The user wants weather.</seed:think>Checking.\n<seed:tool_call>\n<function=get_weather>\n"
                "<parameter=city>Paris</parameter>\n<parameter=days>2</parameter>\n</function>\n</seed:tool_call>",
    "seed_attributes": ('Checking.\n<seed:tool_call>\n  <function name="get_weather">\n'
                        '    <parameter name="city" string="true">Paris</parameter>\n'
                        '    <parameter name="days" string="false">2</parameter>\n  </function>\n</seed:tool_call>'),
    "olmo3": "Checking.\n<function_calls>get_weather(city='Paris', days=2)</function_calls>",
    "llama4": "Checking.\n<|python_start|>[get_weather(city='Paris', days=2)]<|python_end|>",
    "apertus": 'Checking.\n<|tools_prefix|>[{"get_weather": {"city": "Paris", "days": 2}}]<|tools_suffix|>',
    "mistral_no_args_tag": 'Checking.\n[TOOL_CALLS]get_weather{"city": "Paris", "days": 2}',
    "harmony_stripped": 'Checking.\ncommentary to=functions.get_weather json{"city": "Paris", "days": 2}',
    "harmony_stripped_recipient_first": ('Checking.\nassistant to=functions.get_weather commentary json\n'
                                         '{"city": "Paris", "days": 2}'),
    "harmony_recipient_first_partly_stripped": ('Checking.\nto=functions.get_weather<|channel|>commentary json'
                                                '<|message|>{"city": "Paris", "days": 2}<|call|>'),
    "minimax_arrow": ('Checking.\n[TOOL_CALL]\n{tool => "get_weather", args => {\n  --city "Paris"\n  --days 2\n}}\n'
                      "[/TOOL_CALL]"),
    "minimax_arrow_json": ('Checking.\n[TOOL_CALL]\n{tool => "get_weather", args => {"city": "Paris", "days": 2}}\n'
                           "[/TOOL_CALL]"),
    "gemma_paren": 'Checking.\n<|tool_call>call:get_weather(city="Paris", days=2)<tool_call|>',
    "tool_code": 'Checking.\n```tool_code\nget_weather(city="Paris", days=2)\n```',
    "tool_code_list": 'Checking.\n```tool_code\n[get_weather(city="Paris", days=2)]\n```',
    "glm_key_value": "Checking.\n<tool_call>get_weather city=Paris days=2</tool_call>",
    "internlm2": 'Checking.\n<|action_start|><|plugin|>\n{"name": "get_weather", "parameters": {"city": "Paris", '
                 '"days": 2}}<|action_end|>',
    "lmstudio": 'Checking.\n[TOOL_REQUEST]{"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}'
                "[END_TOOL_REQUEST]",
    "nemotron_json": 'Checking.\n<TOOLCALL>[{"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}]'
                     "</TOOLCALL>",
    "nemotron_pythonic": "Checking.\n<TOOLCALL>[get_weather(city=\"Paris\", days=2)]</TOOLCALL>",
    "nemotron_pythonic_bare": "Checking.\n<TOOLCALL>get_weather(city='Paris', days=2)</TOOLCALL>",
    "nemotron_mini_pythonic": "Checking.\n<toolcall> [get_weather(city='Paris', days=2)] </toolcall>",
    "nemotron_mini": 'Checking.\n <toolcall> {"name": "get_weather", "arguments": {\n  "city": "Paris",\n'
                     '  "days": 2\n}} </toolcall>',
}


@pytest.mark.parametrize("name", list(FORMS))
def test_form(name: str) -> None:
    text = FORMS[name]
    r = repair_message(text, TOOLS, id_factory=ids)
    assert calls_of(r) == CALL, (r.errors, r.content)
    assert r.content == "Checking."
    assert r.errors == []
    assert_stream_matches(text, TOOLS)


def test_samples_in_prose_are_left_alone() -> None:
    for text in ("Gemma writes `call:get_weather{city:<|\"|>Paris<|\"|>}` for that.",
                 "The tag <tools> lists what you may call.", "Use <function_calls> blocks, e.g. in docs.",
                 "Wrap calls in <TOOLCALL>tags</TOOLCALL> there.",
                 "```tool_code\nprint('hello')\n```",
                 "It posts to=functions.get_weather commentary, not a call.",
                 'Send it to=functions.get_weather as {"city": "Paris"}.',
                 "MiniMax wraps calls in [TOOL_CALL] and [/TOOL_CALL] markers."):
        r = repair_message(text, TOOLS)
        assert r.tool_calls == [] and r.errors == [] and r.content == text


ECS = [{"type": "function", "function": {"name": "get_ecs_instructions", "parameters": {
    "type": "object", "properties": {"data": {"type": "object"}}, "required": ["data"]}}}]
# gpt-oss-20b's arguments quoted in lmstudio-ai/lmstudio-bug-tracker#942: 15 `{`, 14 `}`, then its <|call|>
ECS_ARGS = ('{"data":{"envs":{"sd":{"namespaces":{"main":{"resources":{"requests":{"cpu":"100m","memory":"128Mi"},'
            '"limits":{"cpu":"200m","memory":"256Mi"}}}}},"pr":{"namespaces":{"main":{"resources":{"requests":'
            '{"cpu":"500m","memory":"512Mi"},"limits":{"cpu":"1","memory":"1Gi"}}}}}}}')
ANY = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
NESTED = '{"data":{"a":{"b":1}}'  # one `}` short


def test_harmony_call_one_bracket_short_before_its_call_token_is_closed() -> None:
    text = ("<|start|>assistant<|channel|>commentary to=functions.get_ecs_instructions<|constrain|>json<|message|>"
            + ECS_ARGS + "<|call|>")
    r = repair_message(text, ECS, id_factory=ids)
    assert calls_of(r) == [("get_ecs_instructions", json.loads(ECS_ARGS + "}"))], r.errors
    assert [x.kind for x in r.repairs] == ["json_syntax"] and r.content is None
    assert_stream_matches(text, ECS)


@pytest.mark.parametrize("text", [
    "<|tool_calls_section_begin|><|tool_call_begin|>functions.f:0<|tool_call_argument_begin|>" + NESTED
    + "<|tool_call_end|><|tool_calls_section_end|>",
    '<tool_call>{"name":"f","arguments":' + NESTED + "}</tool_call>",
    "<|channel|>commentary to=functions.f <|constrain|>json<|message|>" + NESTED + "<|call|>",
    "<|channel|>commentary to=functions.f <|constrain|>json<|message|>" + NESTED + "<|end|>",
    "commentary to=functions.f json" + NESTED + "<|call|>",
], ids=["kimi_k2", "hermes", "harmony", "harmony_end", "harmony_stripped"])
def test_one_bracket_short_before_a_call_end_marker_is_closed_in_every_format(text: str) -> None:
    r = repair_message(text, ANY, id_factory=ids)
    assert calls_of(r) == [("f", {"data": {"a": {"b": 1}}})], r.errors
    assert "json_syntax" in {x.kind for x in r.repairs} and not r.content
    assert_stream_matches(text, ANY)


@pytest.mark.parametrize("text", [
    "<|channel|>commentary to=functions.f <|constrain|>json<|message|>" + NESTED,
    "<|channel|>commentary to=functions.f <|constrain|>json<|message|>" + NESTED[:-1] + "<|call|>",
    '<|channel|>commentary to=functions.f <|constrain|>json<|message|>{"data":{"a":"x<|call|>',
    "commentary to=functions.f json" + NESTED,
    "commentary to=functions.f json" + NESTED + " and then <|call|>",
], ids=["cut", "two_short", "in_a_string", "stripped_cut", "stripped_text_before"])
def test_harmony_arguments_not_closed_where_no_marker_ends_them_cleanly(text: str) -> None:
    """Cut off by the end of the text, two brackets short, inside a string or with text before the marker: no call."""
    r = repair_message(text, ANY, id_factory=ids)
    assert r.tool_calls == [] and r.content == text and r.errors
    assert_stream_matches(text, ANY)


def test_seed_attribute_form_cut_off_is_truncated() -> None:
    """Doubao-Seed's <function name="f"> form (sipeed/picoclaw#3153) cut off before </function>: more parameters may
    have followed, so no call, its text kept."""
    text = ('<seed:tool_call>\n<function name="get_weather">\n<parameter name="city" string="true">Paris</parameter>\n')
    r = repair_message(text, TOOLS, id_factory=ids)
    assert r.tool_calls == [] and [e.kind for e in r.errors] == ["truncated"] and r.content == text
    assert_stream_matches(text, TOOLS)
