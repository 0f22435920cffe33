"""The Vercel AI SDK on agentgate, in two majors (ai v5, which many tools still use, and v7, the current one, each
pinned with the providers made for it), through each of its providers the router serves:
@ai-sdk/openai-compatible (chat), @ai-sdk/openai's Responses model and @ai-sdk/anthropic (Messages). It runs
tests/agents/aisdk_client.mjs, with generateText and then streamText, in a private network namespace like the CLIs:
a tool loop with a native call and a text call the router repairs; the Responses model with `store` on, which sends
the earlier steps' output back as `item_reference` items; a Response whose upstream reported no usage; a
streamed Messages tool loop whose reasoning must reach the model's next turn; and the Responses model's reasoning,
which it shows from a reasoning summary alone."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.agents.conftest import BASE_ENV, SDKS, describe
from tests.agents.models import AISDK_FINAL, AISDK_PROSE, AISDK_THOUGHT

MODES = ("generate", "stream")
SDK = pytest.mark.parametrize("sdk", SDKS, ids=["v5", "v7"])  # agent_cli's names for the two majors
Client = Callable[[str], list[str]]
Runner = Callable[[dict[str, Any]], dict[str, Any]]


def _run(agent_cli: Client, run_agents: Runner, tmp_path: Path, sdk: str, kind: str, provider: str,
         options: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One plan: the fake model playing `kind`, the SDK program (the major `sdk`) run with generateText then
    streamText; the result and what the SDK saw in each run."""
    client = agent_cli(sdk)
    home = tmp_path / "home"
    home.mkdir()
    env = {**BASE_ENV, "HOME": str(home)}
    result = run_agents({"model": "aisdk", "context": {"kind": kind}, "steps": [
        {"argv": [*client, provider, mode, json.dumps(options)], "cwd": str(tmp_path), "env": env, "timeout": 60}
        for mode in MODES]})
    seen: list[dict[str, Any]] = []
    for run in result["runs"]:
        assert run["rc"] == 0 and run["stdout"].strip(), describe(result)
        seen.append(json.loads(run["stdout"].strip().splitlines()[-1]))
    return result, seen


@SDK
@pytest.mark.parametrize("provider", ["compat", "responses", "anthropic"])
def test_tool_loop_with_a_repaired_call(agent_cli: Client, run_agents: Runner, tmp_path: Path, sdk: str,
                                        provider: str) -> None:
    """A native call, a call written as text with a string for an integer (repaired, the argument made an
    integer), then the answer. The Responses model keeps `store` on (its default): its later steps send the earlier
    output back as `item_reference` items, which the router refused with a 400 before (v5 refers to every output
    item so, v7 to the messages only: it sends function calls whole)."""
    options: dict[str, Any] = {"providerOptions": {"openai": {"store": True}}} if provider == "responses" else {}
    result, seen = _run(agent_cli, run_agents, tmp_path, sdk, "loop", provider, options)
    for sdk in seen:
        assert sdk["errors"] == [] and sdk["executed"] == [{"a": 2, "b": 3}, {"a": 4, "b": 5}], sdk
        assert sdk["finishReason"] == "stop" and sdk["text"] == AISDK_FINAL, sdk
        assert [s["finishReason"] for s in sdk["steps"]] == ["tool-calls", "tool-calls", "stop"], sdk["steps"]
    assert len(result["requests"]) == 6  # three steps, twice
    for body in result["requests"][2::3]:  # each third step: both calls, each with its result
        assert sum(len(m.get("tool_calls") or []) for m in body["messages"] if m["role"] == "assistant") == 2
        assert [m["content"] for m in body["messages"] if m["role"] == "tool"] == ["5", "9"], body["messages"]
    endpoint = {"compat": "chat", "responses": "responses", "anthropic": "messages"}[provider]
    records = [a for a in result["access"] if a.get("endpoint") == endpoint]
    assert len(records) == 6 and all(a["status"] == 200 for a in records), records
    assert sum("format:hermes" in (a.get("repairs") or []) for a in records) == 2, records
    if provider == "responses":  # the third step names the second one's message (`Adding again.`) by its id
        assert all(len(sdk["sent"]) == 3 and "item_reference" in sdk["sent"][2] for sdk in seen), seen


@SDK
def test_responses_without_upstream_usage(agent_cli: Client, run_agents: Runner, tmp_path: Path, sdk: str) -> None:
    """An upstream that reports no usage gave a Response with `"usage": null`, which the SDK refuses (generateText
    threw "Invalid JSON response"; streamText could not read `response.completed`: finish reason "unknown")."""
    options = {"providerOptions": {"openai": {"store": False}}}
    _, seen = _run(agent_cli, run_agents, tmp_path, sdk, "nousage", "responses", options)
    for sdk in seen:
        assert sdk["errors"] == [] and sdk["text"] == AISDK_PROSE and sdk["finishReason"] == "stop", sdk
        assert sdk["usage"]["inputTokens"] == 0 and sdk["usage"]["outputTokens"] > 0, sdk["usage"]


@SDK
def test_messages_reasoning_goes_back_in_a_streamed_tool_loop(agent_cli: Client, run_agents: Runner,
                                                              tmp_path: Path, sdk: str) -> None:
    """The upstream's reasoning reaches @ai-sdk/anthropic as a thinking block with an empty signature, and the SDK
    keeps it in its history only with a signature, which it reads from a stream's `signature_delta` alone: without
    one, a streamed loop's next turn reached the model without the reasoning (`reasoning_content`)."""
    result, seen = _run(agent_cli, run_agents, tmp_path, sdk, "reasoning", "anthropic", {"maxOutputTokens": 1000})
    for sdk in seen:
        assert sdk["errors"] == [] and sdk["executed"] == [{"a": 2, "b": 3}], sdk
        assert sdk["steps"][0]["reasoningText"] == AISDK_THOUGHT, sdk["steps"][0]
    assert not any("unsupported reasoning metadata" in run["stderr"] for run in result["runs"]), describe(result)
    assert len(result["requests"]) == 4  # two steps, twice
    for body in result["requests"][1::2]:
        assistant = next(m for m in body["messages"] if m["role"] == "assistant")
        assert assistant.get("reasoning_content") == AISDK_THOUGHT, assistant


@pytest.mark.parametrize("store", [True, False], ids=["stored", "stateless"])
def test_responses_reasoning_shows_as_its_summary(agent_cli: Client, run_agents: Runner, tmp_path: Path,
                                                  store: bool) -> None:
    """The Responses model reads a reasoning item's `summary` alone (its `content` never): asked for a summary
    (`reasoningSummary`), the router gives the reasoning as one, and the SDK shows it (before, `reasoningText` was
    empty). Its next turn gives the upstream the reasoning once: from the router's store (the item named by an
    `item_reference`), or from the item sent back with its summary and encrypted_content (`store: false`). v7
    only: v5 sends `reasoning` only for a model id it knows as a reasoning model (o-series, gpt-5) and has no
    `forceReasoning`, so it never asks for a summary from a model named `coder`."""
    options = {"maxOutputTokens": 1000, "providerOptions": {"openai": {
        "forceReasoning": True, "reasoningSummary": "auto", "store": store}}}
    result, seen = _run(agent_cli, run_agents, tmp_path, "aisdk7", "reasoning", "responses", options)
    for sdk in seen:
        assert sdk["errors"] == [] and sdk["executed"] == [{"a": 2, "b": 3}], sdk
        assert sdk["steps"][0].get("reasoningText") == AISDK_THOUGHT, sdk["steps"][0]
    assert len(result["requests"]) == 4  # two steps, twice
    for body in result["requests"][1::2]:
        assistant = [m for m in body["messages"] if m["role"] == "assistant"]
        assert [m.get("reasoning_content") for m in assistant] == [AISDK_THOUGHT], body["messages"]
