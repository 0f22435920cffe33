"""A lone value where the schema asks for an array becomes a list of one (Home Assistant's `"domain": "light"` for
a list of strings: its own validator wraps a lone value), reported `coerced_type`. Only where the schema's type is
array, or array or null (an anyOf picks it only when no other branch takes the value), when the items take the
value (after the item's own coercion: `"5"` is `[5]` for integer items), and never for null, a blank string, a
string written as a literal (a list written badly, an object, a quoted string), or an object the item schema does not
declare."""

from __future__ import annotations

from typing import Any

import pytest

from repair import repair_message
from repair.schema import ToolSchema
from tests.repair.helpers import assert_stream_matches, calls_of, ids
from tests.repair.incremental_helpers import assert_every_split_matches

STRINGS = {"type": "array", "items": {"type": "string"}}


def _schema(prop: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": {"v": prop, "name": {"type": "string"}}, **extra}


WRAPPED = {
    "string for strings": (STRINGS, "light", ["light"]),
    "string for untyped items": ({"type": "array"}, "light", ["light"]),
    "string for integers": ({"type": "array", "items": {"type": "integer"}}, "5", [5]),
    "integer for integers": ({"type": "array", "items": {"type": "integer"}}, 5, [5]),
    "number for strings": (STRINGS, 2.5, ["2.5"]),
    "boolean for booleans": ({"type": "array", "items": {"type": "boolean"}}, True, [True]),
    "string for booleans": ({"type": "array", "items": {"type": "boolean"}}, "false", [False]),
    "string for an enum": ({"type": "array", "items": {"enum": ["light", "switch"]}}, "light", ["light"]),
    "object for objects": ({"type": "array", "items": {"type": "object", "properties": {"id": {"type": "integer"}},
                                                       "required": ["id"]}}, {"id": 3}, [{"id": 3}]),
    "object coerced for objects": ({"type": "array", "items": {"type": "object",
                                                               "properties": {"id": {"type": "integer"}}}},
                                   {"id": "3"}, [{"id": 3}]),
    "list alias": ({"type": "list", "items": {"type": "str"}}, "light", ["light"]),
    "optional list (anyOf with null)": ({"anyOf": [STRINGS, {"type": "null"}]}, "light", ["light"]),
    "optional list (type list with null)": ({"type": ["array", "null"], "items": {"type": "string"}}, "light",
                                            ["light"]),
    "through a $ref": ({"$ref": "#/$defs/domains"}, "light", ["light"]),
}


@pytest.mark.parametrize("prop, value, want", WRAPPED.values(), ids=WRAPPED.keys())
def test_a_lone_value_becomes_a_list_of_one(prop: dict[str, Any], value: Any, want: list[Any]) -> None:
    tool = ToolSchema("t", _schema(prop, **{"$defs": {"domains": STRINGS}}))
    args, changes, error = tool.conform({"v": value, "name": "lamp"})
    assert error is None
    assert args == {"v": want, "name": "lamp"}
    assert any(c.startswith("v: ") and "array" in c for c in changes), changes


KEPT = {
    "null": (STRINGS, None),
    "null, untyped items": ({"type": "array"}, None),
    "blank string": (STRINGS, ""),
    "spaces": (STRINGS, "  "),
    "a list written badly": (STRINGS, '["light", "switch"'),
    "a quoted string": (STRINGS, '"light"'),
    "a single-quoted string": (STRINGS, "'light'"),
    "an object's text for strings": (STRINGS, '{"domain": "light"}'),
    "an object's text for objects": ({"type": "array", "items": {"type": "object"}}, '{"domain": "light"}'),
    "an item the items refuse": ({"type": "array", "items": {"type": "integer"}}, "five"),
    "not in the items' enum": ({"type": "array", "items": {"enum": ["light", "switch"]}}, "fan"),
    "an object for strings": (STRINGS, {"domain": "light"}),
    "an object for untyped items": ({"type": "array"}, {"domain": "light"}),
    "an object for items that do not say object": ({"type": "array", "items": {"required": ["id"]}}, {"id": 1}),
    "array or integer": ({"type": ["array", "integer"], "items": {"type": "string"}}, "light"),
    "too few items": ({"type": "array", "items": {"type": "string"}, "minItems": 2}, "light"),
    "tuple items": ({"type": "array", "prefixItems": [{"type": "string"}], "items": False}, "light"),
}


@pytest.mark.parametrize("prop, value", KEPT.values(), ids=KEPT.keys())
def test_no_list_is_made_where_it_would_guess(prop: dict[str, Any], value: Any) -> None:
    tool = ToolSchema("t", _schema(prop))
    args, changes, error = tool.conform({"v": value})
    assert error is not None and changes == [] and args == {"v": value}


def test_a_value_another_branch_takes_stays_as_it_is() -> None:
    """anyOf [list of strings, string]: the string is valid as it is and stays a string."""
    tool = ToolSchema("t", _schema({"anyOf": [STRINGS, {"type": "string"}]}, required=["v", "name"]))
    assert tool.conform({"v": "light", "name": 3}) == ({"v": "light", "name": "3"}, ["name: 3 -> string"], None)
    both = ToolSchema("t", _schema({"type": ["array", "string"], "items": {"type": "string"}}))
    assert both.conform({"v": "light", "name": 3}) == ({"v": "light", "name": "3"}, ["name: 3 -> string"], None)


def test_nested_arrays_wrap_at_their_own_level() -> None:
    schema = _schema({"type": "array", "items": {"type": "object", "properties": {"tags": STRINGS}}})
    tool = ToolSchema("t", schema)
    args, changes, error = tool.conform({"v": [{"tags": "a"}, {"tags": ["b"]}]})
    assert error is None and args == {"v": [{"tags": ["a"]}, {"tags": ["b"]}]}
    assert len(changes) == 1 and changes[0].startswith("v/0/tags: ")


HASS = [{"type": "function", "function": {"name": "HassTurnOn", "parameters": {
    "type": "object", "properties": {
        "name": {"type": "string"}, "area": {"type": "string"},
        "domain": {"type": "array", "items": {"type": "string"}},
        "brightness": {"type": "array", "items": {"type": "integer"}}},
    "required": []}}}]

MESSAGES = {
    "hermes": ('<tool_call>\n{"name": "HassTurnOn", "arguments": {"domain": "light", "area": "Living Room"}}\n'
               '</tool_call>', {"domain": ["light"], "area": "Living Room"}),
    "hermes, integer items": ('<tool_call>\n{"name": "HassTurnOn", "arguments": {"brightness": "40"}}\n</tool_call>',
                              {"brightness": [40]}),
    "llama 3 bare json": ('{"name": "HassTurnOn", "parameters": {"domain": "light", "name": "salt lamp"}}',
                          {"domain": ["light"], "name": "salt lamp"}),
    "qwen3-coder": ("<tool_call>\n<function=HassTurnOn>\n<parameter=domain>\nlight\n</parameter>\n"
                    "<parameter=brightness>\n40\n</parameter>\n</function>\n</tool_call>",
                    {"domain": ["light"], "brightness": [40]}),
    "glm": ("<tool_call>HassTurnOn\n<arg_key>domain</arg_key>\n<arg_value>light</arg_value>\n</tool_call>",
            {"domain": ["light"]}),
}


@pytest.mark.parametrize("text, args", MESSAGES.values(), ids=MESSAGES.keys())
def test_the_call_is_made_one_shot_and_streamed(text: str, args: dict[str, Any]) -> None:
    r = repair_message(text, HASS, id_factory=ids)
    assert calls_of(r) == [("HassTurnOn", args)]
    assert r.errors == [] and "coerced_type" in [x.kind for x in r.repairs]
    assert_stream_matches(text, HASS, seed=7)
    assert_every_split_matches(text, HASS, seed=7)


@pytest.mark.parametrize("text", [
    '<tool_call>\n{"name": "HassTurnOn", "arguments": {"brightness": "bright"}}\n</tool_call>',
    '<tool_call>\n<function=HassTurnOn>\n<parameter=domain>\n"light"\n</parameter>\n</function>\n</tool_call>',
], ids=["items refuse it", "quoted xml value"])
def test_a_lone_value_that_would_be_a_guess_still_fails_the_call(text: str) -> None:
    r = repair_message(text, HASS, id_factory=ids)
    assert r.tool_calls == [] and [e.kind for e in r.errors] == ["schema_mismatch"] and r.content == text
    assert_stream_matches(text, HASS, seed=7)


# what a review found the first version of the wrap doing

INT, INTS = {"type": "integer"}, {"type": "array", "items": {"type": "integer"}}
ONE_OR_MANY = {  # "X or a list of X": the value converted for X is the reading, as before the wrap
    "integer or integers": ({"anyOf": [INT, INTS]}, "5", 5),
    "string or strings": ({"anyOf": [{"type": "string"}, STRINGS]}, 5, "5"),
    "boolean or strings": ({"anyOf": [{"type": "boolean"}, STRINGS]}, "true", True),
    "number or numbers": ({"anyOf": [{"type": "number"}, {"type": "array", "items": {"type": "number"}}]}, "2.5",
                          2.5),
    "object or objects": ({"anyOf": [{"type": "object", "properties": {"a": INT}},
                                     {"type": "array", "items": {"type": "object", "properties": {"a": INT}}}]},
                          {"a": "1"}, {"a": 1}),
}


@pytest.mark.parametrize("prop, value, want", ONE_OR_MANY.values(), ids=ONE_OR_MANY.keys())
def test_one_or_a_list_of_one_takes_the_value_as_the_one(prop: dict[str, Any], value: Any, want: Any) -> None:
    args, changes, error = ToolSchema("t", _schema(prop)).conform({"v": value})
    assert error is None and args == {"v": want} and changes


NOT_MEANT = {
    "a point for a list of points": ({"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
                                     [1, 2]),
    "a row for a list of rows": ({"type": "array", "items": {"type": "array", "items": {"type": "string"}}},
                                 ["Alice", "30"]),
    "a string for a list of lists": ({"type": "array", "items": STRINGS}, "x"),
    "a list with commas": (STRINGS, "light, switch"),
    "a list without spaces": (STRINGS, "light,switch"),
    "a list in lines": (STRINGS, "light\nswitch"),
    "a markdown list": (STRINGS, "- light"),
    "a tuple written": (STRINGS, "('a', 'b')"),
    "null written": (STRINGS, "null"),
    "None written": (STRINGS, "None"),
}


@pytest.mark.parametrize("prop, value", NOT_MEANT.values(), ids=NOT_MEANT.keys())
def test_no_list_is_made_of_what_may_be_a_list_or_another_level(prop: dict[str, Any], value: Any) -> None:
    args, changes, error = ToolSchema("t", _schema(prop)).conform({"v": value})
    assert error is not None and args == {"v": value} and not any("one item" in c for c in changes)


def test_a_schema_whose_array_branches_refer_to_themselves_is_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each wrap tried every branch again below it: three array branches of a recursive anyOf took ~6 s for one
    string (the router repairs on its event loop); counted here in calls, not timed."""
    import repair.schema as schema_module

    calls = 0
    real = schema_module._coerce

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(schema_module, "_coerce", counted)
    node = {"anyOf": [{"type": "object", "required": ["f"]},
                      {"type": "array", "items": {"$ref": "#/$defs/n"}, "minItems": 2},
                      {"type": "array", "items": {"$ref": "#/$defs/n"}, "maxItems": 1},
                      {"type": "array", "items": {"$ref": "#/$defs/n"}, "uniqueItems": True}]}
    tool = ToolSchema("t", _schema({"$ref": "#/$defs/n"}, **{"$defs": {"n": node}}))
    tool.conform({"v": "a"})
    assert calls < 200, calls
