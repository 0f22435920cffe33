"""Request fields Anthropic's Messages API bounds beyond their type, refused with its 400s (the field named), and
what it takes still taken."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from router.dialects.anthropic_in import parse_request
from router.errors import ApiError


def body(**extra: Any) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}], **extra}


def refused(doc: dict[str, Any]) -> ApiError:
    with pytest.raises(ApiError) as caught:
        parse_request(doc)
    assert caught.value.status == 400
    return caught.value


@pytest.mark.parametrize(("stops", "message"), [
    (["END", ""], "stop_sequences: each stop sequence must be non-empty"),
    (["\n"], "stop_sequences: each stop sequence must contain non-whitespace"),
    (["END", " \t"], "stop_sequences: each stop sequence must contain non-whitespace"),
])
def test_an_empty_or_blank_stop_sequence_is_refused_as_anthropic_refuses_it(stops: list[str], message: str) -> None:
    err = refused(body(stop_sequences=stops))
    assert err.message == message and err.param == "stop_sequences"


def test_a_stop_sequence_with_whitespace_around_text_is_taken() -> None:
    assert parse_request(body(stop_sequences=["\nHuman:", " END "])).chat["stop"] == ["\nHuman:", " END "]
    assert refused(body(stop_sequences=["END", 3])).param == "stop_sequences"


PATTERN = "String should match pattern '^[a-zA-Z0-9_-]{1,128}$'"


@pytest.mark.parametrize("name", ["mcp.docs.read", "read page", "x" * 129, "naïve"])
def test_a_tool_name_anthropic_would_not_take_is_refused_naming_the_tool(name: str) -> None:
    tools = [{"name": "ok", "input_schema": {"type": "object"}},
             {"type": "custom", "name": name, "input_schema": {"type": "object"}}]
    err = refused(body(tools=tools))
    assert err.message == f"tools.1.custom.name: {PATTERN}" and err.param == "tools"


def test_a_tool_name_of_letters_digits_dashes_and_underscores_is_taken() -> None:
    tools = [{"name": name, "input_schema": {"type": "object"}} for name in ("mcp__docs__read-page", "x" * 128, "_")]
    assert [t["function"]["name"] for t in parse_request(body(tools=tools)).chat["tools"]] == [
        "mcp__docs__read-page", "x" * 128, "_"]


def test_the_documented_request_schema_refuses_them_too() -> None:
    spec = yaml.safe_load((Path(__file__).resolve().parents[2] / "router" / "openapi.yaml").read_text())
    schema = spec["components"]["schemas"]["MessagesRequest"]
    tool = {"name": "ok", "input_schema": {"type": "object"}}
    jsonschema.validate(body(stop_sequences=["\nHuman:"], tools=[tool]), schema)
    for bad in (body(stop_sequences=[""]), body(stop_sequences=["\n"]), body(tools=[{**tool, "name": "a.b"}]),
                body(tools=[{**tool, "name": "x" * 129}])):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
