"""Request fields of `POST /v1/responses` that OpenAI bounds or restricts, answered as OpenAI answers them: a 400
naming the field at fault, before anything goes upstream."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.dialects.conftest import CFG


async def _refused(url: str, body: dict[str, Any]) -> dict[str, Any]:
    """The error of a request the router must refuse with a 400."""
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/responses", json=body) as resp:
        assert resp.status == 400, await resp.text()
        doc = await resp.json()
    assert set(doc) == {"error"} and doc["error"]["type"] == "invalid_request_error", doc
    error: dict[str, Any] = doc["error"]
    return error


async def _accepted(url: str, body: dict[str, Any]) -> dict[str, Any]:
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/responses", json=body) as resp:
        assert resp.status == 200, await resp.text()
        doc: dict[str, Any] = await resp.json()
    return doc


async def test_metadata_is_bounded_as_openai_bounds_it(fakes, router):
    """`metadata` holds at most 16 pairs, keys of at most 64 characters and string values of at most 512: a value
    of another type (an integer past 64 bits was taken and echoed) or past a bound is a 400 naming the field."""
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    base = {"model": "m", "input": "hi", "store": False}
    cases = [
        ({f"k{i}": "v" for i in range(17)}, "metadata", "object_above_max_properties", "at most 16 properties"),
        ({"big": 2 ** 70}, "metadata.big", "invalid_type", "expected a string, but got an integer"),
        ({"n": None}, "metadata.n", "invalid_type", "but got null"),
        ({"o": {"a": "b"}}, "metadata.o", "invalid_type", "but got an object"),
        ({"l": ["x"]}, "metadata.l", "invalid_type", "but got an array"),
        ({"t": True}, "metadata.t", "invalid_type", "but got a boolean"),
        ({"v": "é" * 513}, "metadata.v", "string_above_max_length", "maximum length 512, but got a string with "
                                                                   "length 513"),
        ({"k" * 65: "v"}, "metadata", "property_name_above_max_length", "maximum length 64, but got a string "
                                                                        "with length 65"),
    ]
    for metadata, param, code, said in cases:
        err = await _refused(r.url, {**base, "metadata": metadata})
        assert (err["param"], err["code"]) == (param, code), (metadata, err)
        assert said in err["message"], err["message"]
    long_key = await _refused(r.url, {**base, "metadata": {"k" * 100_000: "v"}})
    assert len(long_key["message"]) < 300  # (the key is not echoed whole)
    assert not up.requests
    edge = {f"{i:02d}" + "k" * 62: "é" * 512 for i in range(16)}
    doc = await _accepted(r.url, {**base, "metadata": edge})
    assert doc["metadata"] == edge


INCLUDABLE = ["file_search_call.results", "web_search_call.results", "web_search_call.action.sources",
              "message.input_image.image_url", "computer_call_output.output.image_url",
              "code_interpreter_call.outputs", "reasoning.encrypted_content", "message.output_text.logprobs"]


async def test_include_takes_values_newer_than_the_router(fakes, router):
    """OpenAI refuses an `include` value it does not know; the openai-agents SDK passes any string on purpose ("so
    callers can pass through new server-supported flags before the local SDK updates its enum union"), and one
    OpenAI adds later must not end a client's requests here. Taken, as the documented values are (those agentgate
    has nothing to add for change nothing); an entry that is no string stays OpenAI's 400."""
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    base = {"model": "m", "input": "hi", "store": False}
    err = await _refused(r.url, {**base, "include": [7]})
    assert (err["param"], err["code"]) == ("include[0]", "invalid_type")
    assert not up.requests
    doc = await _accepted(r.url, {**base, "include": [*INCLUDABLE, "reasoning.summary_tokens", "usage"]})
    assert doc["status"] == "completed"


async def test_previous_response_id_with_conversation_is_openai_s_mutually_exclusive_400(fakes, router):
    """Both together were told "'conversation' is not supported; continue a conversation with
    'previous_response_id'", which the request already did: it is now OpenAI's answer to sending both; one
    `conversation` alone is still refused as not supported here."""
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    base = {"model": "m", "input": "hi", "store": False}
    err = await _refused(r.url, {**base, "previous_response_id": "resp_1", "conversation": "conv_1"})
    assert err["code"] == "mutually_exclusive_parameters"
    assert err["message"] == ("Mutually exclusive parameters. Ensure you are only providing one of: "
                              "'previous_response_id' or 'conversation'.")
    err = await _refused(r.url, {**base, "conversation": {"id": "conv_1"}})
    assert (err["param"], err["code"]) == ("conversation", "unsupported_parameter")
    assert not up.requests


async def test_max_output_tokens_below_16_is_openai_s_400(fakes, router):
    """OpenAI's Responses API takes `max_output_tokens` from 16 (a limit under it was sent upstream as it came): a
    lower one is its 400, `integer_below_min_value`; 16 is taken and sent upstream as chat's `max_tokens`."""
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    base = {"model": "m", "input": "hi", "store": False}
    for value in (0, 1, 15):
        err = await _refused(r.url, {**base, "max_output_tokens": value})
        assert (err["param"], err["code"]) == ("max_output_tokens", "integer_below_min_value")
        assert err["message"] == ("Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, "
                                  f"but got {value} instead.")
    assert not up.requests
    doc = await _accepted(r.url, {**base, "max_output_tokens": 16})
    assert doc["max_output_tokens"] == 16 and up.requests[0].body["max_tokens"] == 16


async def test_an_empty_input_is_openai_s_400_unless_a_response_is_continued(fakes, router):
    """`input: ""` went upstream as an empty user message (an Anthropic upstream refuses one, naming a
    `messages.0` the client never sent); `[]` was a 400 of the router's own. Without `previous_response_id`
    both are now OpenAI's 400; with it, an empty string adds nothing to the conversation continued."""
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    for empty in ("", []):
        err = await _refused(r.url, {"model": "m", "input": empty})
        assert err["code"] == "missing_required_parameter", err
        assert err["message"] == ("One of \"input\" or \"previous_response_id\" or 'prompt' or 'conversation' must "
                                  "be provided."), err
    assert not up.requests
    first = await _accepted(r.url, {"model": "m", "input": "hi"})
    await _accepted(r.url, {"model": "m", "input": "", "previous_response_id": first["id"]})
    assert [m["role"] for m in up.requests[1].body["messages"]] == ["user", "assistant"]


async def test_an_unknown_verbosity_is_openai_s_400(fakes, router):
    """`text.verbosity` went upstream as chat's `verbosity` whatever it was (an OpenAI upstream then named
    `verbosity`, a field the client never sent): one OpenAI does not take is now its 400 naming `text.verbosity`."""
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    err = await _refused(r.url, {"model": "m", "input": "hi", "store": False, "text": {"verbosity": "loud"}})
    assert (err["param"], err["code"]) == ("text.verbosity", "invalid_value")
    assert err["message"] == "Invalid value: 'loud'. Supported values are: 'low', 'medium', and 'high'."
    assert not up.requests
    for level in ("low", "medium", "high"):
        doc = await _accepted(r.url, {"model": "m", "input": "hi", "store": False, "text": {"verbosity": level}})
        assert doc["text"]["verbosity"] == level


async def test_chat_messages_instead_of_input_are_told_where_they_moved(fakes, router):
    """A chat-shaped body (`messages`, no `input`) was told "'input' is required.": it is now OpenAI's answer,
    which says `messages` moved to `input`."""
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    err = await _refused(r.url, {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert err["code"] == "unsupported_parameter"
    assert err["message"].startswith("Unsupported parameter: 'messages'. In the Responses API, this parameter has "
                                     "moved to 'input'.")
    err = await _refused(r.url, {"model": "m"})
    assert (err["param"], err["code"]) == ("input", "missing_required_parameter")
    assert not up.requests
