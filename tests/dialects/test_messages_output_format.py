"""Structured output asked with the structured-outputs beta's top-level `output_format` (the beta's first form,
which clients written for it send; since deprecated for `output_config.format`): it was dropped without a word, so
the model answered without the schema the client parses its answer with. It is the answer's format now, as
`output_config.format` is; both at once is refused, as the anthropic SDK refuses it."""

from __future__ import annotations

import pytest

from router.dialects.anthropic_in import parse_request
from tests.dialects.conftest import CFG, claude
from tests.dialects.test_messages_request_bounds import body, refused
from tests.fakes.openai_upstream import Step, completion

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
          "additionalProperties": False}
FORMAT = {"type": "json_schema", "schema": SCHEMA}
ASKED = {"type": "json_schema", "json_schema": {"name": "output", "schema": SCHEMA}}


def test_output_format_is_the_answers_format() -> None:
    assert parse_request(body(output_format=FORMAT)).chat["response_format"] == ASKED
    assert parse_request(body(output_format=FORMAT, output_config={"effort": "low"})).chat["response_format"] == ASKED
    assert "response_format" not in parse_request(body(output_format=None)).chat


@pytest.mark.parametrize("value", [{"type": "text"}, {"type": "json_schema"}, "json", []])
def test_a_malformed_one_is_refused_naming_it(value: object) -> None:
    assert refused(body(output_format=value)).param == "output_format"


def test_both_at_once_are_refused() -> None:
    err = refused(body(output_format=FORMAT, output_config={"format": FORMAT}))
    assert err.param == "output_format" and "output_config.format" in err.message


async def test_the_beta_request_reaches_the_upstream_with_its_schema(fakes, router):
    up = await fakes()
    up.push(Step(json=completion('{"city": "Paris"}', "m")))
    r = await router(CFG.format(url=up.url))
    msg = await claude(r.url).beta.messages.create(model="m", max_tokens=64, extra_body={"output_format": FORMAT},
                                                   betas=["structured-outputs-2025-11-13"],
                                                   messages=[{"role": "user", "content": "Where?"}])
    assert msg.content[0].text == '{"city": "Paris"}'  # type: ignore[union-attr]
    assert up.requests[0].body["response_format"] == ASKED
