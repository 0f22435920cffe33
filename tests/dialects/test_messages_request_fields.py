"""The checks of a Messages request's fields, its messages' placing and its text count, as the engine worker's
checks make them (`engines.wire.check_type`): a value of its type is taken, anything else is the same 400."""

from __future__ import annotations

import math
from typing import Any

import pytest

from router.dialects.anthropic_in import Translations, parse_request
from router.errors import ApiError


def body(**extra: Any) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}], **extra}


def refused(doc: dict[str, Any], **kw: Any) -> ApiError:
    with pytest.raises(ApiError) as err:
        parse_request(doc, **kw)
    assert err.value.status == 400
    return err.value


@pytest.mark.parametrize(("field", "value"), [
    ("model", 3), ("model", ""), ("model", None), ("messages", {}), ("messages", []), ("stream", 1),
    ("stream", "yes"), ("max_tokens", 0), ("max_tokens", True), ("max_tokens", 1.0), ("temperature", True),
    ("temperature", 1.5), ("temperature", -0.1), ("temperature", math.nan), ("temperature", math.inf),
    ("temperature", "0.5"), ("top_p", 2), ("top_k", -1), ("top_k", False), ("top_k", 1.0),
    ("stop_sequences", "x"), ("metadata", []), ("thinking", "on"), ("output_config", []),
])
def test_a_field_of_another_type_or_out_of_range_is_refused_naming_it(field: str, value: object) -> None:
    doc = body()
    if value is None:
        del doc[field]
    else:
        doc[field] = value
    assert refused(doc).param == field


def test_values_of_their_type_are_taken() -> None:
    req = parse_request(body(stream=False, temperature=1, top_p=0.5, top_k=0, stop_sequences=["END"],
                             metadata={"user_id": "u"}, output_config={"effort": "high"}))
    assert req.chat["temperature"] == 1 and type(req.chat["temperature"]) is int
    assert req.chat["top_p"] == 0.5 and req.chat["top_k"] == 0 and req.chat["stop"] == ["END"]
    assert req.effort == "high" and not req.stream
    absent = parse_request(body())
    assert all(k not in absent.chat for k in ("temperature", "top_p", "top_k", "stop", "response_format"))


def test_a_count_needs_no_max_tokens_but_refuses_a_bad_one() -> None:
    doc = body()
    del doc["max_tokens"]
    assert "max_tokens" not in parse_request(doc, count_only=True).chat
    assert refused(body(max_tokens=0), count_only=True).param == "max_tokens"


def test_output_config_gives_its_effort_and_format() -> None:
    schema = {"type": "object"}
    req = parse_request(body(output_config={"effort": "low", "format": {"type": "json_schema", "schema": schema}}))
    assert req.effort == "low"
    assert req.chat["response_format"] == {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}
    assert refused(body(output_config={"effort": 3})).param == "output_config"
    assert refused(body(output_config={"format": {"type": "text"}})).param == "output_config"


def test_the_system_text_comes_first_and_a_mid_conversation_system_message_is_placed() -> None:
    turns = [{"role": "user", "content": [{"type": "text", "text": "a"}]},
             {"role": "assistant", "content": [{"type": "text", "text": "b"}]},
             {"role": "user", "content": "c"}]
    plain = parse_request(body(system=[{"type": "text", "text": "S"}], messages=turns), Translations())
    assert plain.chat["messages"] == [{"role": "system", "content": "S"}, {"role": "user", "content": "a"},
                                      {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    early = [{"role": "system", "content": "early"}, *turns[:2],
             {"role": "system", "content": [{"type": "text", "text": "late"}]}, turns[2]]
    placed = parse_request(body(system="S", messages=early), Translations())
    assert placed.chat["messages"] == [{"role": "system", "content": "S\n\nearly"}, {"role": "user", "content": "a"},
                                       {"role": "assistant", "content": "b"}, {"role": "user", "content": "late"},
                                       {"role": "user", "content": "c"}]
    assert parse_request(body(system=""), Translations()).chat["messages"] == [{"role": "user", "content": "hi"}]


def test_the_estimate_counts_utf8_bytes_of_ascii_and_other_text_alike() -> None:
    memos = Translations()
    for text in ("plain words", "naïve — 日本語 🙂"):
        turn = [{"role": "user", "content": [{"type": "text", "text": text}]}]
        as_blocks = parse_request(body(system=[{"type": "text", "text": text}], messages=turn), memos)
        as_strings = parse_request(body(system=text, messages=[{"role": "user", "content": text}]), memos)
        assert as_blocks.text_bytes == as_strings.text_bytes == 2 * len(text.encode())
