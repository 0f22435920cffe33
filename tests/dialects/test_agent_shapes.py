"""Requests shaped like the coding agents' own (Codex on Responses, Claude Code on Messages): namespaced, custom and
hosted tools, images and files in tool results, system messages mid-conversation. Real router, fake upstream."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import aiohttp
import anthropic
import openai
import pytest

from router.api.translated import fit_to_route
from router.dialects.common import IMAGE_PLACEHOLDER, place_system
from tests.dialects.conftest import CFG, claude
from tests.fakes.openai_upstream import Step, chunk, completion

PNG = "data:image/png;base64,iVBORw0KGgo="
GRAMMAR = 'start: "*** Begin Patch" LF body "*** End Patch"'
CODEX_TOOLS = [
    {"type": "function", "name": "exec_command", "description": "Run a command.", "strict": False,
     "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]}},
    {"type": "namespace", "name": "multi_agent_v1", "description": "Sub-agents.", "tools": [
        {"type": "function", "name": "spawn_agent", "description": "Spawn one.",
         "parameters": {"type": "object", "properties": {"task": {"type": "string"}}}},
        {"type": "function", "name": "close_agent", "parameters": {"type": "object", "properties": {}}}]},
    {"type": "custom", "name": "apply_patch", "description": "Edit files.",
     "format": {"type": "grammar", "syntax": "lark", "definition": GRAMMAR}},
    {"type": "web_search", "external_web_access": False},
]


def call(i: int, name: str, args: dict[str, Any]) -> dict[str, Any]:
    return {"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}


async def post(url: str, path: str, body: dict[str, Any], headers: dict[str, str] | None = None,
               ) -> tuple[int, Any, dict[str, str]]:
    async with aiohttp.ClientSession() as s, s.post(url + path, json=body, headers=headers or {}) as resp:
        raw = await resp.read()
        doc = json.loads(raw) if resp.content_type == "application/json" else raw.decode()
        return resp.status, doc, dict(resp.headers)


def sse_items(text: str) -> list[dict[str, Any]]:
    events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    return [e["item"] for e in events if e["type"] == "response.output_item.done"]


async def test_codex_tools_are_flattened_and_calls_come_back_as_declared(fakes, router):
    up = await fakes()
    calls = [call(1, "multi_agent_v1__spawn_agent", {"task": "t"}), call(2, "apply_patch", {"input": "*** Begin"})]
    up.push(Step(json=completion(None, "m", tool_calls=calls, finish_reason="tool_calls")))
    r = await router(CFG.format(url=up.url))
    status, doc, headers = await post(r.url, "/v1/responses", {"model": "m", "input": "go", "tools": CODEX_TOOLS})
    assert status == 200, doc
    assert headers["x-agentgate-dropped-tools"] == "web_search"
    sent = up.requests[0].body
    names = [t["function"]["name"] for t in sent["tools"]]
    assert names == ["exec_command", "multi_agent_v1__spawn_agent", "multi_agent_v1__close_agent", "apply_patch"]
    patch = sent["tools"][3]["function"]
    assert patch["parameters"]["required"] == ["input"] and GRAMMAR in patch["description"]
    fn, custom = doc["output"]
    assert (fn["type"], fn["namespace"], fn["name"], fn["call_id"]) == \
        ("function_call", "multi_agent_v1", "spawn_agent", "call_1")
    assert json.loads(fn["arguments"]) == {"task": "t"}
    assert (custom["type"], custom["name"], custom["input"], custom["call_id"]) == \
        ("custom_tool_call", "apply_patch", "*** Begin", "call_2")


async def test_streamed_calls_come_back_as_declared(fakes, router):
    up = await fakes()
    up.push(Step(sse=[
        chunk("m", {"role": "assistant", "content": ""}),
        chunk("m", {"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {
            "name": "multi_agent_v1__close_agent", "arguments": "{}"}}]}),
        chunk("m", {"tool_calls": [{"index": 1, "id": "call_2", "type": "function", "function": {
            "name": "apply_patch", "arguments": '{"input": "*** Begin'}}]}),
        chunk("m", {"tool_calls": [{"index": 1, "function": {"arguments": ' Patch"}'}}]}),
        chunk("m", {}, "tool_calls")]))
    r = await router(CFG.format(url=up.url))
    status, text, _ = await post(r.url, "/v1/responses",
                                 {"model": "m", "input": "go", "tools": CODEX_TOOLS, "stream": True})
    assert status == 200
    fn, custom = sse_items(text)
    assert (fn["type"], fn["namespace"], fn["name"]) == ("function_call", "multi_agent_v1", "close_agent")
    assert (custom["type"], custom["name"], custom["input"]) == ("custom_tool_call", "apply_patch", "*** Begin Patch")
    assert "response.custom_tool_call_input.done" in text
    final = json.loads(next(ln for ln in text.splitlines() if '"response.completed"' in ln)[6:])["response"]
    assert [o["type"] for o in final["output"]] == ["function_call", "custom_tool_call"]


MCP_TOOLS = [  # how Codex declares MCP servers' tools: one namespace per server
    {"type": "namespace", "name": "mcp__filesystem_enterprise_gateway", "description": "Files.", "tools": [
        {"type": "function", "name": "search_files_recursively_with_content_matching", "strict": False,
         "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}]},
    {"type": "namespace", "name": "mcp__docs.v2", "tools": [
        {"type": "function", "name": "read.page", "parameters": {"type": "object", "properties": {}}}]},
    {"type": "namespace", "name": "mcp__fs", "tools": [
        {"type": "function", "name": "read", "parameters": {"type": "object", "properties": {}}}]},
]
OPENAI_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")


def openai_names(answer: Callable[[dict[str, Any], list[str]], Step]) -> Callable[[dict[str, Any]], Step]:
    """A step that refuses, as OpenAI does, a function name outside ^[a-zA-Z0-9_-]{1,64}$; else `answer` (given the
    names sent)."""
    def step(body: dict[str, Any]) -> Step:
        names = [t["function"]["name"] for t in body.get("tools") or []]
        for i, name in enumerate(names):
            if not OPENAI_TOOL_NAME.fullmatch(name):
                return Step(status=400, json={"error": {
                    "message": f"Invalid 'tools[{i}].function.name': string does not match pattern.",
                    "type": "invalid_request_error", "param": f"tools[{i}].function.name", "code": "invalid_value"}})
        return answer(body, names)
    return step


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_namespaced_names_past_the_function_name_rule_are_made_valid_and_map_back(fakes, router, stream):
    """A namespace's `<namespace>__<name>` longer than 64 characters (an MCP server and tool each valid on their
    own) or holding characters outside [a-zA-Z0-9_-] failed every turn upstream; such a name is now a valid one of
    its own (a readable part and a digest), and the calls made under it come back with `namespace` and the
    function's name, whole and streamed; the same call resent in the history, and a tool_choice naming it, go under
    that name again. A name that was valid stays as it was."""
    up = await fakes()

    def answer(body: dict[str, Any], names: list[str]) -> Step:
        calls = [call(i, n, {"q": "TODO"}) for i, n in enumerate(names[:2])]
        if not stream:
            return Step(json=completion(None, "m", tool_calls=calls, finish_reason="tool_calls"))
        return Step(sse=[chunk("m", {"role": "assistant", "content": ""}),
                         *[chunk("m", {"tool_calls": [{"index": i, **c}]}) for i, c in enumerate(calls)],
                         chunk("m", {}, "tool_calls")])

    up.push(openai_names(answer), openai_names(lambda body, names: Step(json=completion("done", "m"))))
    r = await router(CFG.format(url=up.url))
    status, doc, _ = await post(r.url, "/v1/responses", {"model": "m", "input": "find TODOs", "tools": MCP_TOOLS,
                                                         "stream": stream, "store": False})
    assert status == 200, doc
    names = [t["function"]["name"] for t in up.requests[0].body["tools"]]
    assert all(OPENAI_TOOL_NAME.fullmatch(n) for n in names) and len(set(names)) == 3
    assert names[0].startswith("mcp__") and "search_files_recursively_with_content_matching" in names[0]
    assert names[2] == "mcp__fs__read"
    items = sse_items(doc) if stream else doc["output"]
    assert [(i["type"], i["namespace"], i["name"]) for i in items] == [
        ("function_call", "mcp__filesystem_enterprise_gateway", "search_files_recursively_with_content_matching"),
        ("function_call", "mcp__docs.v2", "read.page")]

    history = ["find TODOs", *items, *[{"type": "function_call_output", "call_id": i["call_id"], "output": "none"}
                                       for i in items]]
    history[0] = {"type": "message", "role": "user", "content": "find TODOs"}
    choice = {"type": "function", "namespace": "mcp__docs.v2", "name": "read.page"}
    status, doc, _ = await post(r.url, "/v1/responses", {"model": "m", "input": history, "tools": MCP_TOOLS,
                                                         "tool_choice": choice, "store": False})
    assert status == 200, doc
    resent = up.requests[1].body
    assert [c["function"]["name"] for c in resent["messages"][1]["tool_calls"]] == names[:2]
    assert [t["function"]["name"] for t in resent["tools"]] == names
    assert resent["tool_choice"] == {"type": "function", "function": {"name": names[1]}}


async def test_codex_history_round_trips_with_an_image_tool_result(fakes, router):
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    history = [
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Be careful."}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "look"}]},
        {"type": "reasoning", "summary": [], "encrypted_content": "opaque"},
        {"type": "function_call", "namespace": "multi_agent_v1", "name": "spawn_agent", "call_id": "c1",
         "arguments": "{}"},
        {"type": "function_call", "name": "view_image", "call_id": "c2", "arguments": '{"path": "a.png"}'},
        {"type": "custom_tool_call", "name": "apply_patch", "call_id": "c3", "input": "*** Begin Patch"},
        {"type": "function_call_output", "call_id": "c1", "output": "spawned"},
        {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_image", "image_url": PNG}]},
        {"type": "custom_tool_call_output", "call_id": "c3", "output": "Done!"},
        {"type": "web_search_call", "status": "completed", "action": {"type": "search", "query": "q"}},
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Mode changed."}]},
    ]
    status, doc, headers = await post(r.url, "/v1/responses",
                                      {"model": "m", "input": history, "tools": CODEX_TOOLS, "store": False})
    assert status == 200, doc
    assert headers["x-agentgate-dropped-tools"] == "web_search,web_search_call"
    msgs = up.requests[0].body["messages"]
    assert msgs[0] == {"role": "system", "content": "Be careful."}
    assert msgs[1] == {"role": "user", "content": "look"}
    assert [(c["id"], c["function"]["name"]) for c in msgs[2]["tool_calls"]] == \
        [("c1", "multi_agent_v1__spawn_agent"), ("c2", "view_image"), ("c3", "apply_patch")]
    assert json.loads(msgs[2]["tool_calls"][2]["function"]["arguments"]) == {"input": "*** Begin Patch"}
    assert [(m["role"], m.get("tool_call_id")) for m in msgs[3:6]] == [("tool", "c1"), ("tool", "c2"), ("tool", "c3")]
    assert "image" in msgs[4]["content"]
    assert msgs[6]["role"] == "user" and msgs[6]["content"][1] == {"type": "image_url", "image_url": {"url": PNG}}
    assert msgs[7] == {"role": "user", "content": "Mode changed."}  # a system message after a reply


async def test_allowed_tools_restricts_what_the_model_sees(fakes, router):
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    choice = {"type": "allowed_tools", "mode": "required",
              "tools": [{"type": "function", "name": "exec_command"}, {"type": "custom", "name": "apply_patch"}]}
    status, doc, _ = await post(r.url, "/v1/responses",
                                {"model": "m", "input": "go", "tools": CODEX_TOOLS, "tool_choice": choice})
    assert status == 200, doc
    sent = up.requests[0].body
    assert [t["function"]["name"] for t in sent["tools"]] == ["exec_command", "apply_patch"]
    assert sent["tool_choice"] == "required" and doc["tool_choice"] == choice


async def test_input_file_becomes_text_or_a_placeholder(fakes, router):
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    content = [{"type": "input_text", "text": "read these"},
               {"type": "input_file", "filename": "notes.txt", "file_data": "data:text/plain;base64,aGVsbG8="},
               {"type": "input_file", "filename": "paper.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}]
    status, doc, _ = await post(r.url, "/v1/responses",
                                {"model": "m", "input": [{"role": "user", "content": content}]})
    assert status == 200, doc
    text = up.requests[0].body["messages"][0]["content"]
    assert "notes.txt:\nhello" in text and "[file omitted: paper.pdf (application/pdf)" in text


CLAUDE_TOOLS = [
    {"name": "Read", "description": "Read a file.", "input_schema": {"type": "object", "properties": {
        "file_path": {"type": "string"}}, "required": ["file_path"]}},
    {"type": "bash_20250124", "name": "bash"},
    {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"},
    {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
]


async def test_claude_code_shaped_request(fakes, router):
    up = await fakes()
    up.push(Step(json=completion(None, "m", tool_calls=[
        call(1, "str_replace_based_edit_tool", {"command": "view", "path": "/a.py"})], finish_reason="tool_calls")))
    r = await router(CFG.format(url=up.url))
    body = {
        "model": "m", "max_tokens": 100, "system": [{"type": "text", "text": "You are helpful."}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]},
                     {"role": "system", "content": "Agent types: a, b."}],
        "tools": CLAUDE_TOOLS, "thinking": {"type": "adaptive"}, "output_config": {"effort": "high"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "metadata": {"user_id": '{"device_id": "d", "session_id": "s"}'}, "top_k": 5,
    }
    status, doc, headers = await post(r.url, "/v1/messages", body, {"anthropic-version": "2023-06-01"})
    assert status == 200, doc
    assert headers["x-agentgate-dropped-tools"] == "web_search_20250305"
    sent = up.requests[0].body
    assert sent["messages"] == [{"role": "system", "content": "You are helpful.\n\nAgent types: a, b."},
                                {"role": "user", "content": "hi"}]
    assert "user" not in sent and "top_k" not in sent and "thinking" not in sent
    fns = {t["function"]["name"]: t["function"]["parameters"] for t in sent["tools"]}
    assert list(fns) == ["Read", "bash", "str_replace_based_edit_tool"]
    assert fns["bash"]["properties"]["command"]["type"] == "string"
    assert {"command", "path", "old_str", "new_str", "view_range"} <= set(fns["str_replace_based_edit_tool"][
        "properties"])
    [block] = doc["content"]
    assert (block["type"], block["name"], block["input"]) == \
        ("tool_use", "str_replace_based_edit_tool", {"command": "view", "path": "/a.py"})


WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 8}
READ = CLAUDE_TOOLS[0]


@pytest.mark.parametrize(("tools", "choice", "sent_tools", "sent_choice"), [
    ([WEB_SEARCH], {"type": "tool", "name": "web_search"}, None, None),  # Claude Code's WebSearch, exactly
    ([WEB_SEARCH], {"type": "any"}, None, None),
    ([READ, WEB_SEARCH], {"type": "tool", "name": "web_search"}, ["Read"], "auto"),
], ids=["tool-web_search", "any-server-tools-only", "tool-web_search-beside-a-function"])
async def test_a_tool_choice_forcing_a_server_tool_is_dropped_with_it(fakes, router, tools, choice, sent_tools,
                                                                     sent_choice):
    """A tool_choice forcing a server tool (naming it; `any` when every tool is one) goes with the tool, reported
    as a dropped `tool_choice`: the model chooses among the tools left (it was a 400, "tool_choice type 'tool'
    needs 'tools'", which broke Claude Code's WebSearch)."""
    up = await fakes()
    up.push(Step(json=completion("No search here.", "m")))
    r = await router(CFG.format(url=up.url))
    raw = await claude(r.url).messages.with_raw_response.create(
        model="m", max_tokens=64, tools=tools, tool_choice=choice,
        messages=[{"role": "user", "content": "Perform a web search for: x"}])
    msg = await raw.parse()
    assert [b.type for b in msg.content] == ["text"] and msg.stop_reason == "end_turn"
    assert raw.headers["x-agentgate-dropped-tools"] == "tool_choice,web_search_20250305"
    sent = up.requests[0].body
    assert [t["function"]["name"] for t in sent.get("tools", [])] == (sent_tools or [])
    assert sent.get("tool_choice") == sent_choice


async def test_a_tool_choice_for_an_undeclared_tool_is_still_400(fakes, router):
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    ask = [{"role": "user", "content": "x"}]
    for tools, choice in (([WEB_SEARCH], {"type": "tool", "name": "web_fetch"}),
                          ([READ], {"type": "tool", "name": "web_search"}), ([], {"type": "any"})):
        with pytest.raises(anthropic.BadRequestError) as bad:
            await claude(r.url).messages.create(model="m", max_tokens=5, tools=tools, tool_choice=choice,
                                                messages=ask)  # type: ignore[arg-type]
        assert "tool_choice" in bad.value.message
    with pytest.raises(openai.BadRequestError) as oa:
        await r.client().responses.create(model="m", input="x", tool_choice="required")
    assert oa.value.body["param"] == "tool_choice"  # type: ignore[index]
    assert not up.requests
    up.push(Step(json=completion("ok", "m")))
    msg = await claude(r.url).messages.create(model="m", max_tokens=5, tools=[READ, WEB_SEARCH],
                                              tool_choice={"type": "any"}, messages=ask)  # type: ignore[arg-type]
    assert msg.content and up.requests[0].body["tool_choice"] == "required"  # a function is left to force


@pytest.mark.parametrize("choice", ["required", {"type": "web_search"},
                                    {"type": "allowed_tools", "mode": "required", "tools": [{"type": "web_search"}]}],
                         ids=["required", "hosted", "allowed_tools"])
async def test_a_responses_tool_choice_forcing_a_hosted_tool_is_dropped_with_it(fakes, router, choice):
    """`required` when every tool is hosted (a 400, "tool_choice 'required' needs 'tools'"), or a tool_choice
    naming a hosted tool: dropped with the tools and reported."""
    up = await fakes()
    up.push(Step(json=completion("No search here.", "m")))
    r = await router(CFG.format(url=up.url))
    raw = await r.client().responses.with_raw_response.create(model="m", input="search x", tool_choice=choice,
                                                              tools=[{"type": "web_search"}])
    resp = raw.parse()
    assert resp.status == "completed" and resp.output_text == "No search here."
    assert raw.headers["x-agentgate-dropped-tools"] == "tool_choice,web_search"
    assert "tools" not in up.requests[0].body and "tool_choice" not in up.requests[0].body


async def test_tool_result_image_and_pdf(fakes, router):
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    pdf = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
           "title": "spec.pdf"}
    body = {"model": "m", "max_tokens": 50, "messages": [
        {"role": "user", "content": "shot"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Read",
                                           "input": {"file_path": "/s.png"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                pdf]}]}]}
    status, doc, _ = await post(r.url, "/v1/messages", body)
    assert status == 200, doc
    msgs = up.requests[0].body["messages"]
    assert msgs[2]["role"] == "tool" and "[file omitted: spec.pdf (application/pdf)" in msgs[2]["content"]
    assert msgs[3]["role"] == "user" and msgs[3]["content"][0]["type"] == "image_url"


def test_text_only_backends_get_placeholders_and_no_top_k():
    parts = [{"type": "text", "text": "see"}, {"type": "image_url", "image_url": {"url": PNG}}]
    chat = {"model": "m", "top_k": 3, "messages": [{"role": "user", "content": parts}]}
    engine = fit_to_route(chat, {"engine"})
    assert engine["messages"] == [{"role": "user", "content": f"see\n{IMAGE_PLACEHOLDER}"}] and engine["top_k"] == 3
    openai_side = fit_to_route(chat, {"openai"})
    assert openai_side["messages"] == chat["messages"] and "top_k" not in openai_side


def test_place_system():
    msgs = [{"role": "user", "content": "a"}, {"role": "system", "content": "s1"},
            {"role": "developer", "content": [{"type": "text", "text": "s2"}]},
            {"role": "assistant", "content": "b"}, {"role": "system", "content": "late"}]
    assert place_system(msgs) == [{"role": "system", "content": "s1\n\ns2"}, {"role": "user", "content": "a"},
                                  {"role": "assistant", "content": "b"}, {"role": "user", "content": "late"}]


async def test_a_call_recovered_from_text_is_reported_as_a_repair(fakes, router):
    up = await fakes()
    up.push(Step(json=completion('<tool_call>{"name": "exec_command", "arguments": {"cmd": "ls"}}</tool_call>', "m")))
    r = await router(CFG.format(url=up.url))
    status, doc, headers = await post(r.url, "/v1/responses", {"model": "m", "input": "go", "tools": CODEX_TOOLS[:1]})
    assert status == 200, doc
    assert [o["type"] for o in doc["output"]] == ["function_call"]
    assert headers["x-agentgate-repairs"] == "format:hermes"


HOSTILE_TYPES = ["x\r\nSet-Cookie: a=1", "web_search\x7f", "caf\u00e9", "a" * 100_000]


async def test_the_dropped_tools_header_is_printable_and_bounded_on_every_route(fakes, router):
    """A dropped tool's type is the client's text: in the header it is printable ASCII, each type cut short, the
    whole value bounded with a count of what did not fit (a CR/LF/DEL was a 500 after the upstream answered, a
    long type a header no client could read)."""
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    many = [f"hosted_tool_{i:03}" for i in range(60)]
    requests = [("/v1/responses", {"model": "m", "input": "hi", "tools": [{"type": t} for t in HOSTILE_TYPES]}),
                ("/v1/messages", {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],
                                  "tools": [{"type": t, "name": f"n{i}"} for i, t in enumerate(HOSTILE_TYPES)]}),
                ("/v1/responses", {"model": "m", "input": "hi", "tools": [{"type": t} for t in many]})]
    for path, body in requests:
        up.push(Step(json=completion("ok", "m")))
        status, doc, headers = await post(r.url, path, body)
        assert status == 200, doc
        value = headers["x-agentgate-dropped-tools"]
        assert value and len(value) <= 512 and all(" " <= c <= "~" for c in value), value
    assert value.endswith(" more") and "hosted_tool_000" in value  # the last: 60 types, a count of the rest
    status, doc, headers = await post(r.url, "/v1/responses", {"model": "m", "input": "hi",
                                                               "tools": [{"type": "web_search"}]})
    assert headers["x-agentgate-dropped-tools"] == "web_search"

