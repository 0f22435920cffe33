"""Claude Code's tool search (ENABLE_TOOL_SEARCH: MCP tools declared with `defer_loading`, its ToolSearch answering
with `tool_reference` blocks, beta `advanced-tool-use-2025-11-20`) and `search_result` blocks, through the real
`anthropic` SDK. A translated route refused both (400 "tool_result content must be text, image or document
blocks"), ending the session on its first tool search; Anthropic's API takes them, and the pass-through still
forwards them as they are."""

from __future__ import annotations

import anthropic
import pytest

from tests.dialects.conftest import CFG, claude
from tests.fakes.anthropic_upstream import API_KEY
from tests.fakes.openai_upstream import Step, completion

BETA = {"anthropic-beta": "advanced-tool-use-2025-11-20"}
OBJ = {"type": "object", "properties": {"x": {"type": "string"}}}
SEARCH = {"name": "ToolSearch", "description": "search tools",
          "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}
LOADED = {"name": "mcp__many__tool_7", "description": "tool 7", "input_schema": OBJ, "defer_loading": True}
NOT_YET = {"name": "mcp__many__tool_8", "description": "tool 8", "input_schema": OBJ, "defer_loading": True}
FOUND = {"type": "search_result", "source": "https://docs.example/a", "title": "Doc A",
         "content": [{"type": "text", "text": "first"}, {"type": "text", "text": "second"}]}
HISTORY = [
    {"role": "user", "content": "go"},
    {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "ToolSearch",
                                       "input": {"query": "select:mcp__many__tool_7"}}]},
    {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1",
         "content": [{"type": "tool_reference", "tool_name": "mcp__many__tool_7"}, FOUND]},
        {"type": "text", "text": "Tool loaded."}]},
]


def _names(body: dict) -> list[str]:
    return [t["function"]["name"] for t in body.get("tools", [])]


async def test_a_tool_search_answer_loads_the_tool_it_names(fakes, router):
    up = await fakes()
    call = {"id": "call_1", "type": "function", "function": {"name": "mcp__many__tool_7", "arguments": '{"x": "y"}'}}
    up.push(Step(json=completion("Searching.", "m")),
            Step(json=completion(None, "m", tool_calls=[call], finish_reason="tool_calls")))
    r = await router(CFG.format(url=up.url))
    c = claude(r.url)
    tools = [SEARCH, LOADED, NOT_YET]
    await c.messages.create(model="m", max_tokens=64, tools=tools, messages=HISTORY[:1],  # type: ignore[arg-type]
                            extra_headers=BETA)
    assert _names(up.requests[0].body) == ["ToolSearch"]  # deferred: not declared before a search loads them
    out = await c.messages.create(model="m", max_tokens=64, tools=tools, messages=HISTORY,  # type: ignore[arg-type]
                                  extra_headers=BETA)
    sent = up.requests[1].body
    assert _names(sent) == ["ToolSearch", "mcp__many__tool_7"]
    tool_msg = next(m for m in sent["messages"] if m["role"] == "tool")
    assert tool_msg["content"] == ("Tool mcp__many__tool_7 loaded: it can be called now.\n"
                                   "Doc A\nhttps://docs.example/a\n\nfirst\nsecond")
    assert out.stop_reason == "tool_use" and out.content[0].name == "mcp__many__tool_7"  # type: ignore[union-attr]
    assert out.content[0].input == {"x": "y"}  # type: ignore[union-attr]
    await c.messages.create(model="m", max_tokens=64, tools=tools, messages=HISTORY,  # type: ignore[arg-type]
                            extra_headers=BETA)  # the history's translation found again: it still loads the tool
    assert _names(up.requests[2].body) == ["ToolSearch", "mcp__many__tool_7"]


async def test_a_search_result_a_user_sends_is_read_as_text(fakes, router):
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    await claude(r.url).messages.create(model="m", max_tokens=64, messages=[  # type: ignore[misc]
        {"role": "user", "content": [FOUND, {"type": "text", "text": "Summarize."}]}])
    assert up.requests[0].body["messages"][-1]["content"] == "Doc A\nhttps://docs.example/a\n\nfirst\nsecond\n\nSummarize."


async def test_with_anthropics_own_tool_search_every_deferred_tool_is_declared(fakes, router):
    """Its search runs on Anthropic's side: dropped on a translated route, so nothing could load a deferred tool;
    they are all declared. What it found in an earlier turn (a `tool_search_tool_result`) counts as loaded."""
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    c = claude(r.url)
    regex = {"type": "tool_search_tool_regex_20251119", "name": "tool_search_tool_regex"}
    raw = await c.messages.with_raw_response.create(model="m", max_tokens=64, tools=[regex, LOADED, NOT_YET],  # type: ignore[list-item]
                                                    messages=HISTORY[:1], extra_headers=BETA)
    assert raw.headers["x-agentgate-dropped-tools"] == "tool_search_tool_regex_20251119"
    assert _names(up.requests[0].body) == ["mcp__many__tool_7", "mcp__many__tool_8"]
    searched = [{"role": "user", "content": "go"}, {"role": "assistant", "content": [
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "tool_search_tool_regex", "input": {"query": "7"}},
        {"type": "tool_search_tool_result", "tool_use_id": "srvtoolu_1", "content": {
            "type": "tool_search_tool_search_result",
            "tool_references": [{"type": "tool_reference", "tool_name": "mcp__many__tool_7"}]}},
        {"type": "text", "text": "Found it."}]}, {"role": "user", "content": "use it"}]
    await c.messages.create(model="m", max_tokens=64, tools=[SEARCH, LOADED, NOT_YET],  # type: ignore[arg-type]
                            messages=searched, extra_headers=BETA)
    assert _names(up.requests[1].body) == ["ToolSearch", "mcp__many__tool_7"]


@pytest.mark.parametrize("block", [{"type": "tool_reference"}, {"type": "search_result", "content": "text"}])
async def test_a_malformed_block_is_a_400_naming_it(fakes, router, block):
    up = await fakes()
    r = await router(CFG.format(url=up.url))
    bad = [*HISTORY[:2], {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                                       "content": [block]}]}]
    with pytest.raises(anthropic.BadRequestError) as info:
        await claude(r.url).messages.create(model="m", max_tokens=64, tools=[SEARCH],  # type: ignore[arg-type]
                                            messages=bad)
    assert "messages.2.content.0.tool_result.content.0" in info.value.message and not up.requests


async def test_the_pass_through_forwards_them_as_they_are(fake_anthropic, router):
    fake = await fake_anthropic()
    r = await router(f"""
providers:
  claude: {{type: anthropic, base_url: '{fake.url}', api_key: '{API_KEY}', retries: 0}}
models:
  - {{name: sonnet, provider: claude, model: claude-sonnet-4-5}}
""")
    tools = [SEARCH, LOADED, NOT_YET]
    await claude(r.url).messages.create(model="sonnet", max_tokens=64, tools=tools,  # type: ignore[arg-type]
                                        messages=HISTORY, extra_headers=BETA)
    (sent,) = fake.requests
    assert sent.body["tools"] == tools and sent.body["messages"] == HISTORY
    assert sent.headers["anthropic-beta"] == BETA["anthropic-beta"]
