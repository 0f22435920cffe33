"""What Anthropic's Messages API refuses in a conversation's history, refused with its 400s before any upstream is
asked, and what it takes (or what our own answers give a client to send back) still taken."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from router.dialects.anthropic_in import parse_request
from router.errors import ApiError
from tests.dialects.conftest import CFG
from tests.dialects.test_messages import anthropic_error
from tests.fakes.openai_upstream import Step, completion

ASK = {"role": "user", "content": "Three colours as a JSON list."}


def body(*messages: dict[str, Any]) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 64, "messages": [ASK, *messages]}


async def post(url: str, doc: dict[str, Any], path: str = "/v1/messages") -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.post(url + path, data=json.dumps(doc).encode(),
                                                    headers={"Content-Type": "application/json"}) as resp:
        return resp.status, await resp.json()


def refused(doc: dict[str, Any]) -> ApiError:
    with pytest.raises(ApiError) as caught:
        parse_request(doc)
    assert caught.value.status == 400 and caught.value.param == "messages"
    return caught.value


@pytest.mark.parametrize("content", ['["red", ', "[\n", [{"type": "text", "text": '["red",\n'}],
                                     [{"type": "text", "text": "["}, {"type": "text", "text": "red "}]])
def test_a_prefill_ending_in_whitespace_is_continued(content: Any) -> None:
    """Anthropic refuses it; clients send one (opencode, avante.nvim, crewAI hit that 400), and a local model goes on
    from whitespace as from any text: a prefill, continued."""
    assert parse_request(body({"role": "assistant", "content": content})).prefill


def test_whitespace_before_the_end_or_in_an_earlier_assistant_turn_is_taken() -> None:
    assert parse_request(body({"role": "assistant", "content": '[ "red",'})).prefill
    assert parse_request(body({"role": "assistant", "content": [{"type": "text", "text": "red \n"},
                                                                {"type": "text", "text": "["}]})).prefill
    earlier = parse_request(body({"role": "assistant", "content": "Sure: \n"}, {"role": "user", "content": "go"}))
    assert not earlier.prefill


async def test_the_route_answers_a_prefill_ending_in_whitespace_as_any_prefill(fakes, router):
    """As a prefill without it (this route reaches an OpenAI-type provider, which continues none: its 400; a route
    to local engines continues both, see test_messages_prefill)."""
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    for path in ("/v1/messages", "/v1/messages/count_tokens"):
        spaced = await post(r.url, body({"role": "assistant", "content": "[ "}), path=path)
        plain = await post(r.url, body({"role": "assistant", "content": "["}), path=path)
        assert spaced[0] == plain[0] and spaced[1].get("error") == plain[1].get("error"), (spaced, plain)


def use(call_id: str, city: str = "Paris") -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": "get_weather", "input": {"city": city}}


def result(call_id: str) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": call_id, "content": "sunny"}


def test_a_tool_use_id_twice_in_one_turn_is_refused_naming_the_second() -> None:
    err = refused(body({"role": "assistant", "content": [{"type": "text", "text": "Both."}, use("toolu_a"),
                                                         use("toolu_b", "Oslo"), use("toolu_a", "Rome")]},
                       {"role": "user", "content": [result("toolu_a"), result("toolu_b")]}))
    assert err.message == "messages.1.content.3: `tool_use` ids must be unique"


def test_an_id_an_earlier_turn_used_is_taken() -> None:
    """A server numbering its calls per reply (`call_0` on every turn) gives such a history through a route whose
    tool-call repair is off (repair gives a new call a fresh id then): the client sends back what it got."""
    turn = [{"role": "assistant", "content": [use("call_0")]}, {"role": "user", "content": [result("call_0")]}]
    req = parse_request(body(*turn, *turn))
    assert [c["id"] for m in req.chat["messages"] for c in m.get("tool_calls", ())] == ["call_0", "call_0"]


async def test_the_route_refuses_a_repeated_id_before_any_upstream(fakes, router):
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    status, doc = await post(r.url, body({"role": "assistant", "content": [use("toolu_a"), use("toolu_a")]},
                                         {"role": "user", "content": [result("toolu_a")]}))
    assert status == 400
    assert anthropic_error(doc, "invalid_request_error") == "messages.1.content.1: `tool_use` ids must be unique"
    assert up.requests == []


@pytest.mark.parametrize(("messages", "sent"), [
    ([{"role": "user", "content": [{"type": "text", "text": ""}]}], [{"role": "user", "content": ""}]),
    ([{"role": "user", "content": [{"type": "text", "text": "hi"},
                                   {"type": "text", "text": "", "cache_control": {"type": "ephemeral"}}]}],
     [{"role": "user", "content": "hi"}]),
    ([ASK, {"role": "assistant", "content": [{"type": "text", "text": ""}, use("toolu_a")]},
      {"role": "user", "content": [result("toolu_a")]}],
     [ASK, {"role": "assistant", "content": None, "tool_calls": [
         {"id": "toolu_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
      {"role": "tool", "tool_call_id": "toolu_a", "content": "sunny"}]),
])
def test_an_empty_text_block_says_nothing(messages: list[dict[str, Any]], sent: list[dict[str, Any]]) -> None:
    """Anthropic refuses an empty text block, but Claude Code's histories hold them (anthropics/claude-code#53473,
    #60009: once one is in a session every later turn fails there); a local model loses nothing without it: left
    out."""
    assert parse_request({"model": "m", "max_tokens": 8, "messages": messages}).chat["messages"] == sent


async def test_an_answer_with_no_content_comes_back_and_is_taken(fakes, router):
    """Anthropic refuses an empty assistant turn but for the last one; our answer is one when the model said nothing
    (no text, whitespace alone, no call), and its client sends it back as it got it: it is taken, and goes upstream
    as an empty assistant message."""
    up = await fakes()
    up.push(Step(json=completion(" \n", "m")))
    up.push(Step(json=completion("Red.", "m")))
    r = await router(CFG.format(url=up.url))
    status, first = await post(r.url, body())
    assert status == 200 and first["content"] == []
    for empty in (first["content"], ""):
        status, doc = await post(r.url, body({"role": "assistant", "content": empty},
                                             {"role": "user", "content": "Again?"}))
        assert status == 200, doc
        up.push(Step(json=completion("Red.", "m")))
    assert up.requests[1].body["messages"][1] == {"role": "assistant", "content": ""}


async def test_the_route_takes_an_empty_text_block(fakes, router):
    up = await fakes()
    up.push(Step(json=completion("Red.", "m")))
    r = await router(CFG.format(url=up.url))
    history = body({"role": "assistant", "content": "Red."},
                   {"role": "user", "content": [{"type": "text", "text": "Sure?"}, {"type": "text", "text": ""}]})
    status, doc = await post(r.url, history, "/v1/messages/count_tokens")
    assert status == 200, doc
    status, doc = await post(r.url, history)
    assert status == 200, doc
    assert up.requests[0].body["messages"][-1] == {"role": "user", "content": "Sure?"}


@pytest.mark.parametrize("call_id", ["functions.get_weather:0", "call 1", "toolu_ä"])
def test_a_tool_use_id_from_another_provider_is_taken(call_id: str) -> None:
    """Anthropic refuses ids outside `^[a-zA-Z0-9_-]+$`; an Anthropic-compatible provider's answers carry them (Kimi
    K2's `functions.Bash:0`), and a session moved from one to a translated route sends them back: they go upstream
    as the call's id, which chat upstreams take."""
    turn = parse_request(body({"role": "assistant", "content": [{"type": "text", "text": "Checking."}, use(call_id)]},
                              {"role": "user", "content": [result(call_id)]}))
    assert [m.get("tool_call_id") for m in turn.chat["messages"]][-1] == call_id


def test_the_ids_our_answers_give_are_taken() -> None:
    """`tool_use_id` keeps an upstream's id only when it matches, else makes a `toolu_…` one."""
    ids = ["toolu_01A", "call_00_abc", "D681PevKs", "chatcmpl-tool-9f"]
    turns = [m for i in ids for m in ({"role": "assistant", "content": [use(i)]},
                                      {"role": "user", "content": [result(i)]})]
    assert parse_request(body(*turns)).chat["messages"][2]["tool_call_id"] == "toolu_01A"
