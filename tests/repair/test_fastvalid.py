"""repair.fastvalid gives exactly what jsonschema's is_valid gives, on generated schemas and values."""

from __future__ import annotations

import jsonschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from repair.fastvalid import compile_check
from repair.schema import ToolSchema

TYPES = ["string", "number", "integer", "boolean", "object", "array", "null"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.sampled_from([0.0, 1.0, 2.5, -1.5, 1e300]),
                    st.sampled_from(["", "a", "ab", "abc", "x1", "1", "true"]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), inner, max_size=4)),
    max_leaves=10)


def _schemas() -> st.SearchStrategy:
    leaf = st.one_of(
        st.booleans(),
        st.fixed_dictionaries({"type": st.one_of(st.sampled_from(TYPES), st.lists(st.sampled_from(TYPES), min_size=1,
                                                                                   max_size=3, unique=True))}),
        st.fixed_dictionaries({"enum": st.lists(scalars, min_size=1, max_size=4)}),
        st.fixed_dictionaries({"const": scalars}),
        st.fixed_dictionaries({"minLength": st.integers(0, 3)}),
        st.fixed_dictionaries({"maxLength": st.integers(0, 3)}),
        st.fixed_dictionaries({"minimum": st.integers(-2, 2)}), st.fixed_dictionaries({"maximum": st.floats(-2, 2)}),
        st.fixed_dictionaries({"exclusiveMinimum": st.integers(-2, 2)}),
        st.fixed_dictionaries({"exclusiveMaximum": st.integers(-2, 2)}),
        st.fixed_dictionaries({"minItems": st.integers(0, 3), "maxItems": st.integers(0, 3)}),
        st.fixed_dictionaries({"minProperties": st.integers(0, 2), "maxProperties": st.integers(0, 3)}),
        st.fixed_dictionaries({"pattern": st.sampled_from(["^a", "b", "[0-9]", "^$"])}),
        st.fixed_dictionaries({"required": st.lists(st.sampled_from(["a", "b", "c"]), unique=True, max_size=3)}),
        st.fixed_dictionaries({"format": st.sampled_from(["date-time", "uri"]), "description": st.just("d")}),
        st.fixed_dictionaries({"uniqueItems": st.booleans()}),  # not implemented: jsonschema decides
    )

    def extend(inner: st.SearchStrategy) -> st.SearchStrategy:
        return st.one_of(
            st.fixed_dictionaries({"type": st.just("object"),
                                   "properties": st.dictionaries(st.sampled_from(["a", "b", "c"]), inner, max_size=3)},
                                  optional={"required": st.lists(st.sampled_from(["a", "b", "d"]), unique=True),
                                            "additionalProperties": inner}),
            st.fixed_dictionaries({"items": inner}, optional={"type": st.just("array")}),
            st.fixed_dictionaries({"anyOf": st.lists(inner, min_size=1, max_size=3)}),
            st.fixed_dictionaries({"oneOf": st.lists(inner, min_size=1, max_size=3)}),
            st.fixed_dictionaries({"allOf": st.lists(inner, min_size=1, max_size=3)}),
            st.fixed_dictionaries({"not": inner}),
            st.tuples(inner, inner).map(lambda t: {**t[0], **t[1]} if all(isinstance(x, dict) for x in t) else t[0]),
        )

    return st.recursive(leaf, extend, max_leaves=8)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_schemas(), st.lists(values, min_size=1, max_size=6),
       st.sampled_from([jsonschema.Draft202012Validator, jsonschema.Draft7Validator]))
def test_same_answer_as_jsonschema(schema, instances, cls) -> None:
    validator = cls(schema)
    check = compile_check(validator)
    if check is None:
        return
    for value in instances:
        assert check(value) == validator.is_valid(value), (schema, value)


def test_what_it_leaves_to_jsonschema() -> None:
    for schema in ({"$ref": "#/$defs/a", "$defs": {"a": {"type": "string"}}}, {"patternProperties": {"^a": {}}},
                   {"uniqueItems": True}, {"prefixItems": [{"type": "string"}]}, {"if": {}, "then": {}}):
        assert compile_check(jsonschema.Draft202012Validator(schema)) is None, schema
    assert compile_check(jsonschema.Draft4Validator({"type": "integer"})) is None  # 1.0 is no integer there
    assert compile_check(jsonschema.Draft7Validator({"items": [{"type": "string"}]})) is None


def test_tool_schema_errors_unchanged() -> None:
    tool = ToolSchema("bash", {"type": "object", "properties": {"timeout": {"type": "integer", "maximum": 600000},
                                                                 "command": {"type": "string"}},
                               "required": ["command"], "additionalProperties": False})
    assert tool.first_error({"command": "ls", "timeout": 5}) is None
    assert tool._fast is not None
    assert tool.first_error({"command": "ls", "timeout": "5"}) == "timeout: '5' is not of type 'integer'"
    assert tool.first_error({"timeout": 5}) == "'command' is a required property"
    assert tool.conform({"command": "ls", "timeout": "5"}) == ({"command": "ls", "timeout": 5}, tool.conform(
        {"command": "ls", "timeout": "5"})[1], None)
