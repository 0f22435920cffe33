"""The fake upstream answering as a model for each agent: it reads the conversation it is sent (the chat form
agentgate produced) and plays one scripted session, stateless, so a retried request gets the same answer.

Each session: a native tool call, a malformed call written as text (agentgate must repair it), two calls in
parallel, a call whose result is an image, and a final answer; a resumed session answers from the full history.
Streamed, the malformed call and the parallel calls come event by event (agentgate repairs them as they arrive) and
the rest in one write (a stream whose first read holds all of it is repaired as one answer): the agents see both.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tests.fakes.openai_upstream import Step, chunk, completion

FINAL = "ALL DONE: four files written"
IMAGE_SEEN = "and the image seen"
RESUMED = "RESUMED: the earlier session is intact"
RESUME_MARK = "RESUME-CHECK"
PATCH_MARK = "PATCH-CHECK"
PATCHED = "PATCHED: apply_patch ran"
PATCH = "*** Begin Patch\n*** Add File: patched.txt\n+patched\n*** End Patch\n"
Model = Callable[[dict[str, Any]], Step]


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def saw_image(body: dict[str, Any]) -> bool:
    return any(isinstance(m.get("content"), list) and any(p.get("type") == "image_url" for p in m["content"])
               for m in body.get("messages", []))


def reply(body: dict[str, Any], text: str | None = None, calls: list[tuple[str, dict[str, Any]]] = (),
          paced: bool = False) -> Step:
    """One answer, streamed when asked: text, or tool calls (several at once when given several); `paced`, its
    events 5 ms apart instead of in one write."""
    model = str(body.get("model"))
    tool_calls = [{"index": i, "id": f"call_{len(body.get('messages', []))}_{i}", "type": "function",
                   "function": {"name": name, "arguments": json.dumps(args)}} for i, (name, args) in enumerate(calls)]
    finish = "tool_calls" if tool_calls else "stop"
    if not body.get("stream"):
        plain = [{k: v for k, v in c.items() if k != "index"} for c in tool_calls]
        return Step(json=completion(text, model, tool_calls=plain or None, finish_reason=finish))
    events = [chunk(model, {"role": "assistant", "content": ""})]
    if text:
        events += [chunk(model, {"content": piece}) for piece in (text[:7], text[7:])]
    events += [chunk(model, {"tool_calls": [c]}) for c in tool_calls]
    events.append(chunk(model, {}, finish))
    events.append({**chunk(model, {}), "choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": 9,
                                                                 "total_tokens": 59}})
    return Step(sse=events, interval=0.005 if paced else 0.0)


def session(body: dict[str, Any], native: tuple[str, dict[str, Any]], broken: str,
            parallel: list[tuple[str, dict[str, Any]]], image: tuple[str, dict[str, Any]]) -> Step:
    messages = body.get("messages", [])
    if not body.get("tools"):  # side requests (titles, summaries, quota checks): plain text
        return reply(body, "ok")
    last_user = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    if messages and messages[-1].get("role") == "user" and RESUME_MARK in text_of(last_user.get("content")):
        return reply(body, f"{RESUMED}, {IMAGE_SEEN if saw_image(body) else 'no image in it'}.")
    done = sum(1 for m in messages if m.get("role") == "tool")
    if done == 0:
        return reply(body, calls=[native])
    if done == 1:
        return reply(body, broken, paced=True)
    if done == 2:
        return reply(body, calls=parallel, paced=True)
    if done == 4:
        return reply(body, calls=[image])
    return reply(body, f"{FINAL} {IMAGE_SEEN if saw_image(body) else 'but no image arrived'}.")


def codex(ctx: dict[str, Any]) -> Model:
    def model(body: dict[str, Any]) -> Step:
        messages = body.get("messages", [])
        if body.get("tools") and any(PATCH_MARK in text_of(m.get("content")) for m in messages
                                     if m.get("role") == "user"):
            done = sum(1 for m in messages if m.get("role") == "tool")
            if done == 0:  # a function inside Codex's multi_agent_v1 namespace, then the free-form apply_patch
                return reply(body, calls=[("multi_agent_v1__close_agent", {"target": "no-such-agent"})])
            if done == 1:
                return reply(body, calls=[("apply_patch", {"input": PATCH})])
            return reply(body, PATCHED)
        return session(
            body, ("exec_command", {"cmd": "printf native > native.txt"}),
            "Writing it now.\n<tool_call>{'name': 'exec_command', 'arguments': "
            "{'cmd': 'printf repaired > repaired.txt'}}</tool_call>",
            [("exec_command", {"cmd": "printf a > a.txt"}), ("exec_command", {"cmd": "printf b > b.txt"})],
            ("view_image", {"path": ctx["image"]}))
    return model


def claude_code(ctx: dict[str, Any]) -> Model:
    work = ctx["work"]

    def model(body: dict[str, Any]) -> Step:
        return session(
            body, ("Bash", {"command": "printf native > native.txt", "description": "Write native.txt"}),
            'Writing it now.\n<tool_call>{"name": "Write", "arguments": {"file_path": "' + work + '/repaired.txt", '
            '"content": "repaired",}}</tool_call>',
            [("Bash", {"command": "printf a > a.txt", "description": "a"}),
             ("Bash", {"command": "printf b > b.txt", "description": "b"})],
            ("Read", {"file_path": ctx["image"]}))
    return model


def python_agent(ctx: dict[str, Any]) -> Model:
    def model(body: dict[str, Any]) -> Step:
        return session(
            body, ("write_file", {"name": "native.txt", "text": "native"}),
            "<tool_call>{'name': 'write_file', 'arguments': {'name': 'repaired.txt', 'text': 'repaired'}}"
            "</tool_call>",
            [("write_file", {"name": "a.txt", "text": "a"}), ("write_file", {"name": "b.txt", "text": "b"})],
            ("screenshot", {}))
    return model


CUT_DONE = "CUT-CHECK: nothing ran"
# per agent: the tool, and its arguments, which the token limit cuts right after `touch cut-ran.txt` (inside the
# command string): run as they are cut, the command makes the file
CUT_CALLS = {"Bash": '{"description": "Make the files", "command": "touch cut-ran.txt; touch the-rest.txt',
             "exec_command": '{"cmd": "touch cut-ran.txt; touch the-rest.txt',
             "write_file": '{"name": "cut-ran.txt", "text": "hello wor'}


def cut(ctx: dict[str, Any]) -> Model:
    """One streamed call cut by the token limit inside its arguments (finish_reason "length"), paced so that its
    header and pieces go out as they come; then, to anything after it, a final answer."""
    served: list[int] = []

    def model(body: dict[str, Any]) -> Step:
        names = {(t.get("function") or {}).get("name") for t in body.get("tools") or []}
        name = next((n for n in CUT_CALLS if n in names), None)
        if name is None or served or not body.get("stream"):
            return reply(body, CUT_DONE)
        served.append(1)
        model_name, args = str(body.get("model")), CUT_CALLS[name]
        events = [chunk(model_name, {"role": "assistant", "content": ""}),
                  chunk(model_name, {"tool_calls": [{"index": 0, "id": "call_cut", "type": "function",
                                                     "function": {"name": name, "arguments": ""}}]}),
                  *[chunk(model_name, {"tool_calls": [{"index": 0, "function": {"arguments": args[i:i + 8]}}]})
                    for i in range(0, len(args), 8)],
                  chunk(model_name, {}, "length")]
        return Step(sse=events, interval=0.005)
    return model


AISDK_FINAL = "FINAL: 5 and 9"
AISDK_PROSE = "Just prose, no usage."
AISDK_THOUGHT = "I should add them."


def ai_sdk(ctx: dict[str, Any]) -> Model:
    """The AI SDK's tool loop (tests/agents/aisdk_client.mjs, one tool `add`), by `ctx["kind"]`: "loop", a native
    call, then a text call agentgate repairs (a string for an integer), then the answer; "reasoning", reasoning
    with a native call, then the answer; "nousage", prose with no usage reported (no `usage` member, no usage
    chunk)."""
    kind = ctx["kind"]

    def model(body: dict[str, Any]) -> Step:
        done = sum(1 for m in body.get("messages", []) if m.get("role") == "tool")
        if kind == "nousage":
            return _without_usage(reply(body, AISDK_PROSE))
        if kind == "reasoning" and done == 0:
            return _with_reasoning(reply(body, calls=[("add", {"a": 2, "b": 3})]), AISDK_THOUGHT)
        if done == 0:
            return reply(body, calls=[("add", {"a": 2, "b": 3})])
        if kind == "loop" and done == 1:
            return reply(body, 'Adding again.\n<tool_call>{"name": "add", "arguments": {"a": "4", "b": 5}}</tool_call>',
                         paced=True)
        return reply(body, AISDK_FINAL if kind == "loop" else f"FINAL after {done} results")
    return model


def _without_usage(step: Step) -> Step:
    if step.json is not None:
        del step.json["usage"]
    if step.sse is not None:
        step.sse = [e for e in step.sse if "usage" not in e]
    return step


def _with_reasoning(step: Step, text: str) -> Step:
    """The answer with `text` as its reasoning (streamed: first, in two pieces)."""
    if step.json is not None:
        step.json["choices"][0]["message"]["reasoning_content"] = text
    if step.sse is not None:
        model = step.sse[0]["model"]
        step.sse[1:1] = [chunk(model, {"reasoning_content": piece}) for piece in (text[:5], text[5:])]
    return step


CODEX_THOUGHT = "THOUGHT-MARK: the file needs writing first."
CODEX_THOUGHT_DONE = "THOUGHT-DONE: written"


def codex_reasoning(ctx: dict[str, Any]) -> Model:
    """A thinking model for Codex: reasoning (`reasoning_content`) with a native call, then, once its result is
    back, the answer; anything else (side requests) gets a word."""
    def model(body: dict[str, Any]) -> Step:
        if not body.get("tools"):
            return reply(body, "ok")
        if not any(m.get("role") == "tool" for m in body.get("messages", [])):
            return _with_reasoning(reply(body, calls=[("exec_command", {"cmd": "printf thought > thought.txt"})]),
                                   CODEX_THOUGHT)
        return reply(body, CODEX_THOUGHT_DONE)
    return model


MODELS: dict[str, Callable[[dict[str, Any]], Model]] = {"codex": codex, "claude": claude_code,
                                                          "agents": python_agent, "cut": cut, "aisdk": ai_sdk,
                                                          "codex_reasoning": codex_reasoning}
