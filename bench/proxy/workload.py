"""The agent-shaped workload of bench/proxy: what a coding agent sends on a mid-conversation turn, and the three
kinds of answer an upstream gives it.

The request is deterministic: a system prompt, 22 tools with the kind of schemas coding agents declare (~20 KB of
`tools`), and a multi-turn history with tool calls and their results (~40 KB body in all). The answers: a native
tool call (`tool_calls`, valid against its schema: nothing to repair), a tool call written as text (Hermes markup
with a string where the schema wants an integer: needs repair), and prose (no call).

The same turn is also spelled as the agent CLIs send it: an Anthropic Messages request as Claude Code sends it
(`messages_request`: system blocks, tool_use / tool_result blocks, `input_schema` tools) and a Responses request as
Codex sends it (`responses_request`: instructions, message / function_call / function_call_output items, flat
function tools, `store: false`), with the native tool call answered in each dialect (`dialect_answer`,
`dialect_sse`) for an upstream that speaks it.
"""

from __future__ import annotations

import json
from typing import Any

MODEL_UPSTREAM = "bench"


def _s(desc: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "description": desc, **extra}


def _i(desc: str, **extra: Any) -> dict[str, Any]:
    return {"type": "integer", "description": desc, **extra}


def _b(desc: str) -> dict[str, Any]:
    return {"type": "boolean", "description": desc}


_NOTES = (
    " Usage notes: prefer this tool over shell equivalents when it fits; results are returned verbatim and may be"
    " truncated when they are very long, in which case narrow the request. Paths are absolute; relative paths are"
    " resolved against the workspace root. Never use this tool to reach outside the workspace, and never use it to"
    " read or print secrets such as API keys, tokens or credentials."
)


def _tool(name: str, desc: str, props: dict[str, Any], required: list[str], notes: int = 1) -> dict[str, Any]:
    return {"type": "function", "function": {
        "name": name, "description": desc + _NOTES * notes,
        "parameters": {"type": "object", "properties": props, "required": required, "additionalProperties": False},
    }}


def tools() -> list[dict[str, Any]]:
    todo = {"type": "object", "properties": {
        "content": _s("What to do, in the imperative.", minLength=1),
        "status": _s("Where the item stands.", enum=["pending", "in_progress", "completed"]),
        "priority": _s("How urgent the item is.", enum=["high", "medium", "low"]),
        "id": _s("A stable identifier for the item."),
    }, "required": ["content", "status", "priority", "id"], "additionalProperties": False}
    edit = {"type": "object", "properties": {
        "old_string": _s("The exact text to replace."), "new_string": _s("The text to replace it with."),
        "replace_all": _b("Replace every occurrence (default false)."),
    }, "required": ["old_string", "new_string"], "additionalProperties": False}
    return [
        _tool("bash", "Executes a bash command in a persistent shell session with an optional timeout, ensuring"
              " proper handling and security measures. Before running, verify that parent directories exist;"
              " quote paths that contain spaces. Output beyond 30000 characters is truncated.", {
                  "command": _s("The command to execute."),
                  "timeout": _i("Optional timeout in milliseconds (max 600000).", minimum=1, maximum=600000),
                  "description": _s("Clear, concise description of what this command does in 5-10 words."),
                  "run_in_background": _b("Run the command in the background and read its output later."),
              }, ["command"], 2),
        _tool("read_file", "Reads a file from the local filesystem. By default it reads up to 2000 lines from the"
              " beginning of the file; you can give a line offset and limit for long files. Lines longer than 2000"
              " characters are truncated. Results are returned with line numbers starting at 1.", {
                  "file_path": _s("The absolute path to the file to read."),
                  "offset": _i("The line number to start reading from.", minimum=1),
                  "limit": _i("The number of lines to read.", minimum=1, maximum=5000),
              }, ["file_path"], 2),
        _tool("write_file", "Writes a file to the local filesystem, overwriting an existing file at that path. You"
              " must read an existing file before overwriting it.", {
                  "file_path": _s("The absolute path to the file to write."),
                  "content": _s("The content to write to the file."),
              }, ["file_path", "content"]),
        _tool("edit_file", "Performs exact string replacements in files. The edit fails if old_string is not"
              " unique in the file; give more surrounding context or use replace_all.", {
                  "file_path": _s("The absolute path to the file to modify."),
                  "old_string": _s("The text to replace."), "new_string": _s("The text to replace it with."),
                  "replace_all": _b("Replace all occurrences of old_string (default false)."),
              }, ["file_path", "old_string", "new_string"], 2),
        _tool("multi_edit", "Makes several edits to one file in one operation; edits apply in sequence and either"
              " all succeed or none is applied.", {
                  "file_path": _s("The absolute path to the file to modify."),
                  "edits": {"type": "array", "items": edit, "minItems": 1, "description": "The edits, in order."},
              }, ["file_path", "edits"]),
        _tool("glob", "Fast file pattern matching that works with any codebase size; returns matching file paths"
              " sorted by modification time.", {
                  "pattern": _s("The glob pattern to match files against, such as **/*.py."),
                  "path": _s("The directory to search in; the workspace root when omitted."),
              }, ["pattern"]),
        _tool("grep", "A search tool built on ripgrep: full regex syntax, file filtering by glob or type, and three"
              " output modes.", {
                  "pattern": _s("The regular expression pattern to search for in file contents."),
                  "path": _s("File or directory to search in."),
                  "glob": _s("Glob pattern to filter files, such as *.js or *.{ts,tsx}."),
                  "output_mode": _s("What to show.", enum=["content", "files_with_matches", "count"]),
                  "context_before": _i("Lines to show before each match.", minimum=0, maximum=50),
                  "context_after": _i("Lines to show after each match.", minimum=0, maximum=50),
                  "case_insensitive": _b("Case insensitive search."),
                  "type": _s("File type to search, such as py, js or rust."),
                  "head_limit": _i("Limit output to the first N lines or entries.", minimum=1),
                  "multiline": _b("Let patterns span lines."),
              }, ["pattern"], 2),
        _tool("list_dir", "Lists files and directories in a given path, with sizes; hidden entries are skipped"
              " unless asked for.", {
                  "path": _s("The absolute path to the directory to list."),
                  "ignore": {"type": "array", "items": {"type": "string"}, "description": "Glob patterns to skip."},
                  "show_hidden": _b("Include entries whose names begin with a dot."),
              }, ["path"]),
        _tool("web_fetch", "Fetches content from a URL and processes it with a prompt, returning the model's answer"
              " about the content. HTTP URLs are upgraded to HTTPS; results may be cached for 15 minutes.", {
                  "url": _s("The URL to fetch content from.", format="uri"),
                  "prompt": _s("The prompt to run on the fetched content."),
              }, ["url", "prompt"]),
        _tool("web_search", "Searches the web and returns result blocks with titles, URLs and snippets.", {
                  "query": _s("The search query to use.", minLength=2),
                  "allowed_domains": {"type": "array", "items": {"type": "string"}},
                  "blocked_domains": {"type": "array", "items": {"type": "string"}},
              }, ["query"]),
        _tool("todo_write", "Creates and manages a structured task list for the current session; use it for tasks"
              " with three or more steps, and mark items completed as soon as they are done.", {
                  "todos": {"type": "array", "items": todo, "description": "The updated todo list."},
              }, ["todos"], 2),
        _tool("notebook_edit", "Replaces, inserts or deletes one cell of a Jupyter notebook.", {
                  "notebook_path": _s("The absolute path to the notebook."),
                  "cell_id": _s("The ID of the cell to edit."),
                  "new_source": _s("The new source for the cell."),
                  "cell_type": _s("The type of the cell.", enum=["code", "markdown"]),
                  "edit_mode": _s("The kind of edit.", enum=["replace", "insert", "delete"]),
              }, ["notebook_path", "new_source"]),
        _tool("task", "Launches a sub-agent to handle a complex, multi-step task autonomously; the sub-agent has"
              " the same tools and reports back once.", {
                  "description": _s("A short (3-5 word) description of the task."),
                  "prompt": _s("The task for the agent to perform."),
                  "subagent_type": _s("The type of specialised agent.", enum=["general", "explore", "review"]),
              }, ["description", "prompt", "subagent_type"]),
        _tool("bash_output", "Retrieves output from a running or completed background shell.", {
                  "shell_id": _s("The ID of the background shell."),
                  "filter": _s("Optional regular expression to filter the output lines."),
              }, ["shell_id"]),
        _tool("kill_shell", "Kills a running background shell by its ID.", {
                  "shell_id": _s("The ID of the background shell to kill."),
              }, ["shell_id"]),
        _tool("apply_patch", "Applies a patch in the unified diff format to files in the workspace; fails without"
              " changing anything when a hunk does not apply.", {
                  "patch": _s("The patch, beginning with '*** Begin Patch' and ending with '*** End Patch'."),
              }, ["patch"]),
        _tool("update_plan", "Updates the plan shown to the user: a list of steps, each with a status.", {
                  "explanation": _s("Why the plan changed."),
                  "plan": {"type": "array", "items": {"type": "object", "properties": {
                      "step": _s("The step."), "status": _s("Its status.",
                                                           enum=["pending", "in_progress", "completed"]),
                  }, "required": ["step", "status"]}},
              }, ["plan"]),
        _tool("view_image", "Attaches a local image file to the conversation so that it can be inspected.", {
                  "path": _s("The absolute path to the image file."),
              }, ["path"]),
        _tool("run_tests", "Runs the project's test suite, or a selection of it, and returns a summary with the"
              " failures' output.", {
                  "selector": _s("A test selector, such as tests/test_api.py::test_create."),
                  "timeout": _i("Timeout in seconds.", minimum=1, maximum=3600),
                  "verbose": _b("Show every test's outcome."),
              }, []),
        _tool("git_diff", "Shows the working tree's changes against a revision.", {
                  "revision": _s("The revision to compare against (default HEAD)."),
                  "paths": {"type": "array", "items": {"type": "string"}, "description": "Limit to these paths."},
                  "stat": _b("Show a diffstat instead of the patch."),
              }, []),
        _tool("ask_user", "Asks the user a question and waits for the answer; use sparingly.", {
                  "question": _s("The question."),
                  "options": {"type": "array", "items": {"type": "string"}, "maxItems": 6},
              }, ["question"]),
        _tool("exit_plan_mode", "Presents the plan to the user for approval and leaves planning mode.", {
                  "plan": _s("The plan, in markdown."),
              }, ["plan"]),
    ]


SYSTEM = (
    "You are an interactive coding assistant working in the user's repository. Use the tools available to you to"
    " read, search and change code, run commands and tests, and report what you did.\n\n"
    "# Tone and style\nBe concise and direct. Explain non-trivial commands before running them. Do not add comments"
    " to code unless asked. Do not invent file paths or APIs: read the code first.\n\n"
    "# Doing tasks\n1. Search the codebase to understand it. 2. Make a plan with todo_write for multi-step work."
    " 3. Implement the change with the editing tools. 4. Verify it with the project's tests and linters."
    " 5. Never commit unless the user asks.\n\n"
    "# Tool use\nCall several independent tools in one reply when you can. Read a file before editing it. Prefer"
    " the dedicated search tools over shell pipelines. Quote paths with spaces.\n\n"
) * 3 + "<env>\nWorking directory: /home/dev/project\nIs directory a git repo: yes\nPlatform: linux\n</env>"


def _source(n: int) -> str:
    lines = [f"{i + 1:>5}\t" + line for i, line in enumerate((
        "from __future__ import annotations", "", "import asyncio", "import json", "from dataclasses import dataclass",
        "", "", "@dataclass", "class Job:", "    id: str", "    payload: dict[str, object]", "    attempts: int = 0",
        "", "", "class Queue:", '    """A bounded in-memory job queue with retries."""', "",
        "    def __init__(self, limit: int = 100) -> None:", "        self._items: asyncio.Queue[Job] = "
        "asyncio.Queue(limit)", "        self._failed: list[Job] = []", "",
        "    async def put(self, job: Job) -> None:", "        await self._items.put(job)", "",
        "    async def run(self, handler) -> None:", "        while True:", "            job = await self._items.get()",
        "            try:", "                await handler(job)", "            except Exception:",
        "                job.attempts += 1", "                if job.attempts < 3:",
        "                    await self._items.put(job)", "                else:",
        "                    self._failed.append(job)", "            finally:",
        "                self._items.task_done()",
    ) * n)]
    return "\n".join(lines)


def _call(cid: str, name: str, args: dict[str, Any]) -> dict[str, Any]:
    return {"id": cid, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}


def messages() -> list[dict[str, Any]]:
    grep_out = "\n".join(f"src/jobs/{m}.py:{10 + i}:    await queue.put(Job(id=new_id(), payload=payload))"
                         for i, m in enumerate(["api", "worker", "cli", "cron", "admin", "webhooks"] * 6))
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Jobs that fail three times disappear. Make failed jobs retry with exponential"
         " backoff and keep them inspectable; add a test."},
        {"role": "assistant", "content": "I'll look at how the queue handles failures.",
         "tool_calls": [_call("call_1", "grep", {"pattern": "queue.put", "path": "/home/dev/project/src",
                                                  "output_mode": "content"})]},
        {"role": "tool", "tool_call_id": "call_1", "content": grep_out},
        {"role": "assistant", "content": None,
         "tool_calls": [_call("call_2", "read_file", {"file_path": "/home/dev/project/src/jobs/queue.py"})]},
        {"role": "tool", "tool_call_id": "call_2", "content": _source(6)},
        {"role": "assistant", "content": "The retry happens immediately. Let me check the tests.",
         "tool_calls": [_call("call_3", "read_file", {"file_path": "/home/dev/project/tests/test_queue.py"})]},
        {"role": "tool", "tool_call_id": "call_3", "content": _source(3)},
        {"role": "assistant", "content": None, "tool_calls": [
            _call("call_4", "bash", {"command": "python -m pytest -q tests/test_queue.py", "timeout": 120000,
                                     "description": "Run the queue tests"})]},
        {"role": "tool", "tool_call_id": "call_4",
         "content": "...F.\n=== FAILURES ===\n___ test_retry_gives_up ___\nAssertionError: job vanished\n"
                    "1 failed, 4 passed in 0.41s"},
        {"role": "user", "content": "Go ahead, and keep the public API unchanged."},
    ]


def request(*, with_tools: bool, stream: bool, model: str) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": messages(), "stream": stream, "temperature": 0.2,
                            "max_tokens": 4096}
    if with_tools:
        body["tools"] = tools()
        body["tool_choice"] = "auto"
        body["parallel_tool_calls"] = True
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


def small_request(*, stream: bool, model: str) -> dict[str, Any]:
    """The old bench request: one short user message, no tools."""
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}


# --- upstream answers ---------------------------------------------------------------------------------------------

NATIVE_ARGS = {"file_path": "/home/dev/project/src/jobs/queue.py",
               "old_string": "                if job.attempts < 3:\n                    await self._items.put(job)",
               "new_string": "                if job.attempts < self._max_attempts:\n"
                             "                    await asyncio.sleep(self._backoff(job.attempts))\n"
                             "                    await self._items.put(job)"}
TEXT_CALL = ("I'll run the failing test again with more output.\n<tool_call>\n"
             '{"name": "bash", "arguments": {"command": "python -m pytest -q tests/test_queue.py -x -vv", '
             '"timeout": "120000", "description": "Rerun the failing queue test"}}\n</tool_call>')
PROSE = ("The queue retries a failed job immediately and drops it after the third attempt, which is why the test"
         " sees it vanish. I will add an exponential backoff between attempts and keep exhausted jobs in a"
         " dead-letter list that callers can inspect; the public API stays as it is.")
USAGE = {"prompt_tokens": 9812, "completion_tokens": 61, "total_tokens": 9873}
ANSWERS = ("native", "text", "prose")


def completion(kind: str) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "assistant", "content": None}
    finish = "stop"
    if kind == "native":
        msg["content"] = "Now I'll add the backoff."
        msg["tool_calls"] = [{"id": "call_9", "type": "function",
                              "function": {"name": "edit_file", "arguments": json.dumps(NATIVE_ARGS)}}]
        finish = "tool_calls"
    else:
        msg["content"] = TEXT_CALL if kind == "text" else PROSE
    return {"id": "chatcmpl-bench", "object": "chat.completion", "created": 1, "model": MODEL_UPSTREAM,
            "choices": [{"index": 0, "message": msg, "finish_reason": finish}], "usage": USAGE}


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": MODEL_UPSTREAM,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def _pieces(text: str, n: int) -> list[str]:
    step = max(1, -(-len(text) // n))
    return [text[i:i + step] for i in range(0, len(text), step)]


def sse(kind: str) -> str:
    """The same answer as an SSE stream of ~12-24 events, usage last, then [DONE]."""
    events = [_chunk({"role": "assistant", "content": ""})]
    if kind == "native":
        events.append(_chunk({"content": "Now I'll add the backoff."}))
        args = json.dumps(NATIVE_ARGS)
        events.append(_chunk({"tool_calls": [{"index": 0, "id": "call_9", "type": "function",
                                              "function": {"name": "edit_file", "arguments": ""}}]}))
        events += [_chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}) for p in _pieces(args, 12)]
        events.append(_chunk({}, "tool_calls"))
    else:
        text = TEXT_CALL if kind == "text" else PROSE
        events += [_chunk({"content": p}) for p in _pieces(text, 16)]
        events.append(_chunk({}, "stop"))
    events.append({**_chunk({}), "choices": [], "usage": USAGE})
    return "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"


def sse_events(data: bytes) -> list[bytes]:
    """A stream's events, each with its blank line (as an upstream writing one event at a time sends them)."""
    return [event + b"\n\n" for event in data.split(b"\n\n") if event]


# --- the same turn as the agent CLIs send it ------------------------------------------------------------------------

def messages_request(*, stream: bool, model: str) -> dict[str, Any]:
    """The turn as Claude Code sends it to /v1/messages."""
    history = messages()
    out: list[dict[str, Any]] = []
    for m in history[1:]:
        if m["role"] == "assistant":
            blocks: list[dict[str, Any]] = [{"type": "text", "text": m["content"]}] if m.get("content") else []
            blocks += [{"type": "tool_use", "id": c["id"], "name": c["function"]["name"],
                        "input": json.loads(c["function"]["arguments"])} for c in m.get("tool_calls") or []]
            out.append({"role": "assistant", "content": blocks})
            continue
        block = {"type": "tool_result", "tool_use_id": m["tool_call_id"], "content": m["content"]} \
            if m["role"] == "tool" else {"type": "text", "text": m["content"]}
        if out and out[-1]["role"] == "user":  # results and the user's words after them: one user turn
            out[-1]["content"].append(block)
        else:
            out.append({"role": "user", "content": [block]})
    tools_ = [{"name": t["function"]["name"], "description": t["function"]["description"],
               "input_schema": t["function"]["parameters"]} for t in tools()]
    return {"model": model, "max_tokens": 32000, "temperature": 1,
            "system": [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}],
            "messages": out, "tools": tools_, "metadata": {"user_id": "bench-user"}, "stream": stream}


def responses_request(*, stream: bool, model: str) -> dict[str, Any]:
    """The turn as Codex sends it to /v1/responses."""
    items: list[dict[str, Any]] = []
    for m in messages()[1:]:
        if m["role"] == "tool":
            items.append({"type": "function_call_output", "call_id": m["tool_call_id"], "output": m["content"]})
            continue
        if m.get("content"):
            kind = "input_text" if m["role"] == "user" else "output_text"
            items.append({"type": "message", "role": m["role"], "content": [{"type": kind, "text": m["content"]}]})
        items += [{"type": "function_call", "call_id": c["id"], "name": c["function"]["name"],
                   "arguments": c["function"]["arguments"]} for c in m.get("tool_calls") or []]
    tools_ = [{"type": "function", "name": t["function"]["name"], "description": t["function"]["description"],
               "strict": False, "parameters": t["function"]["parameters"]} for t in tools()]
    return {"model": model, "instructions": SYSTEM, "input": items, "tools": tools_, "tool_choice": "auto",
            "parallel_tool_calls": False, "store": False, "stream": stream, "include": [],
            "prompt_cache_key": "bench-session"}


def _anthropic_message() -> dict[str, Any]:
    return {"id": "msg_bench", "type": "message", "role": "assistant", "model": MODEL_UPSTREAM,
            "content": [{"type": "text", "text": "Now I'll add the backoff."},
                        {"type": "tool_use", "id": "toolu_9", "name": "edit_file", "input": NATIVE_ARGS}],
            "stop_reason": "tool_use", "stop_sequence": None,
            "usage": {"input_tokens": USAGE["prompt_tokens"], "output_tokens": USAGE["completion_tokens"]}}


def _response(status: str, output: list[dict[str, Any]]) -> dict[str, Any]:
    """A Responses object as OpenAI sends it (the request's tools echoed)."""
    return {"id": "resp_bench", "object": "response", "created_at": 1, "status": status, "error": None,
            "model": MODEL_UPSTREAM, "output": output, "parallel_tool_calls": False, "tool_choice": "auto",
            "tools": responses_request(stream=False, model="")["tools"], "store": False,
            "usage": {"input_tokens": USAGE["prompt_tokens"], "output_tokens": USAGE["completion_tokens"],
                      "total_tokens": USAGE["total_tokens"]} if status == "completed" else None}


_TEXT_ITEM = {"type": "message", "id": "msg_bench", "status": "completed", "role": "assistant",
              "content": [{"type": "output_text", "text": "Now I'll add the backoff.", "annotations": []}]}
_CALL_ITEM = {"type": "function_call", "id": "fc_bench", "call_id": "call_9", "name": "edit_file",
              "arguments": json.dumps(NATIVE_ARGS), "status": "completed"}


def dialect_answer(route: str) -> dict[str, Any]:
    """The native tool call as an upstream speaking `route` ("messages" or "responses") answers it."""
    return _anthropic_message() if route == "messages" else _response("completed", [_TEXT_ITEM, _CALL_ITEM])


def dialect_sse(route: str) -> str:
    """The same answer as that upstream streams it (the arguments in 12 pieces, like `sse("native")`)."""
    pieces = _pieces(json.dumps(NATIVE_ARGS), 12)
    if route == "messages":
        start = {**_anthropic_message(), "content": [], "stop_reason": None}
        events: list[tuple[str, dict[str, Any]]] = [
            ("message_start", {"type": "message_start", "message": start}),
            ("content_block_start", {"type": "content_block_start", "index": 0,
                                     "content_block": {"type": "text", "text": ""}}),
            ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                     "delta": {"type": "text_delta", "text": "Now I'll add the backoff."}}),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {
                "type": "tool_use", "id": "toolu_9", "name": "edit_file", "input": {}}})]
        events += [("content_block_delta", {"type": "content_block_delta", "index": 1,
                                            "delta": {"type": "input_json_delta", "partial_json": p}}) for p in pieces]
        events += [("content_block_stop", {"type": "content_block_stop", "index": 1}),
                   ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"},
                                      "usage": {"output_tokens": USAGE["completion_tokens"]}}),
                   ("message_stop", {"type": "message_stop"})]
    else:
        call_start = {**_CALL_ITEM, "arguments": "", "status": "in_progress"}
        events = [("response.created", {"type": "response.created", "response": _response("in_progress", [])}),
                  ("response.in_progress", {"type": "response.in_progress",
                                            "response": _response("in_progress", [])}),
                  ("response.output_item.added", {"type": "response.output_item.added", "output_index": 0,
                                                  "item": {**_TEXT_ITEM, "content": [], "status": "in_progress"}}),
                  ("response.output_text.delta", {"type": "response.output_text.delta", "item_id": "msg_bench",
                                                  "output_index": 0, "content_index": 0,
                                                  "delta": "Now I'll add the backoff."}),
                  ("response.output_item.done", {"type": "response.output_item.done", "output_index": 0,
                                                 "item": _TEXT_ITEM}),
                  ("response.output_item.added", {"type": "response.output_item.added", "output_index": 1,
                                                  "item": call_start})]
        events += [("response.function_call_arguments.delta", {"type": "response.function_call_arguments.delta",
                                                               "item_id": "fc_bench", "output_index": 1,
                                                               "delta": p}) for p in pieces]
        events += [("response.output_item.done", {"type": "response.output_item.done", "output_index": 1,
                                                  "item": _CALL_ITEM}),
                   ("response.completed", {"type": "response.completed",
                                           "response": _response("completed", [_TEXT_ITEM, _CALL_ITEM])})]
    return "".join(f"event: {name}\ndata: {json.dumps(doc)}\n\n" for name, doc in events)
