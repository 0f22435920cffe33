"""The probe's user tasks: one per turn, generated from the seed alone, each needing exactly one tool call.

Each task carries the reference call that fulfils it, so a report can tell whether the model picked the tool
the task asked for (and a scripted test backend can answer the task correctly).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from .toolset import INITIAL_FILES

SYSTEM_PROMPT = (
    "You are a careful software agent working in a small code workspace. You have tools for arithmetic, a "
    "key-value store, the workspace files and the clock. For every user request, call exactly one tool with "
    "arguments that match its schema; do not answer from memory and do not ask questions."
)

_KEYS = ("build_status", "owner", "release", "region", "retries", "ticket", "branch", "on_call", "budget",
         "color")
_VALUES = ("green", "alice", "2.4.2", "eu-west", "5", "INV-1042", "feature/restock", "bob", "1200", "teal",
           "pending", "carol", "us-east", "3.0.0-rc1", "blocked")
_WORDS = ("release", "restock", "region", "checklist", "store", "warehouse", "test", "retries")
_NOTES = ("standup", "retro", "plan", "ideas", "risks", "handover")
_LINES = ("Ship the restock fix on Friday.", "Ask ops to double the retries.",
          "Region stays eu-west for now.", "Release 2.4.2 needs a changelog.",
          "Warehouse counts look right again.")

# (tool, weight): the mix of tasks over a conversation.
_MIX: tuple[tuple[str, int], ...] = (
    ("calculator", 3), ("kv_set", 3), ("kv_get", 2), ("kv_delete", 1), ("read_file", 2), ("write_file", 2),
    ("search_files", 2), ("get_time", 1),
)


@dataclass(frozen=True)
class Task:
    turn: int  # 1-based
    prompt: str
    tool: str  # the tool the task asks for
    arguments: dict[str, Any] = field(default_factory=dict)  # the reference call's arguments


def generate_tasks(seed: int, turns: int) -> list[Task]:
    """`turns` tasks for `seed`; the same inputs always give the same tasks."""
    rng = random.Random(seed)
    keys: list[str] = []
    files = sorted(INITIAL_FILES)
    tasks: list[Task] = []
    tools = [tool for tool, _ in _MIX]
    weights = [weight for _, weight in _MIX]
    for turn in range(1, turns + 1):
        tool = rng.choices(tools, weights)[0]
        if tool in ("kv_get", "kv_delete") and not keys:
            tool = "kv_set"
        prompt, args = _make(tool, rng, keys, files)
        tasks.append(Task(turn, prompt, tool, args))
    return tasks


def _make(tool: str, rng: random.Random, keys: list[str], files: list[str]) -> tuple[str, dict[str, Any]]:
    if tool == "calculator":
        a, b, c = rng.randint(2, 999), rng.randint(2, 99), rng.randint(2, 30)
        expr = rng.choice((f"({a} + {b}) * {c}", f"{a} * {b} - {c}", f"{a} / {c}", f"{b} ** 2 + {a}",
                           f"({a} - {b}) // {c}", f"{a} % {c} + {b}"))
        prompt = rng.choice((f"What is {expr}? Use the calculator.",
                             f"Compute {expr} with the calculator tool.",
                             f"I need the exact value of {expr}; work it out with the calculator."))
        return prompt, {"expression": expr}
    if tool == "kv_set":
        key, value = rng.choice(_KEYS), rng.choice(_VALUES)
        if key not in keys:
            keys.append(key)
        prompt = rng.choice((f"Remember that {key} is \"{value}\": store it in the key-value store.",
                             f"Set the key {key} to \"{value}\" in the key-value store.",
                             f"Save \"{value}\" under the key {key}."))
        return prompt, {"key": key, "value": value}
    if tool == "kv_get":
        key = rng.choice(keys)
        prompt = rng.choice((f"What is stored under the key {key}? Look it up in the key-value store.",
                             f"Read the key {key} from the key-value store."))
        return prompt, {"key": key}
    if tool == "kv_delete":
        key = keys.pop(rng.randrange(len(keys)))
        return f"Delete the key {key} from the key-value store; it is stale.", {"key": key}
    if tool == "read_file":
        path = rng.choice(files)
        prompt = rng.choice((f"Show me the contents of {path}.", f"Open {path} and read it.",
                             f"Read the file {path}."))
        return prompt, {"path": path}
    if tool == "write_file":
        path = f"notes/{rng.choice(_NOTES)}-{rng.randint(1, 99)}.md"
        content = rng.choice(_LINES)
        if path not in files:
            files.append(path)
        prompt = f"Create the file {path} containing exactly this text: {content}"
        return prompt, {"path": path, "content": content}
    if tool == "search_files":
        word = rng.choice(_WORDS)
        prompt = rng.choice((f"Search all files for \"{word}\".",
                             f"Which lines in the workspace mention \"{word}\"? Use the file search."))
        return prompt, {"query": word}
    offset = rng.choice((0, 0, 1, 2, -5, 9))
    zone = "UTC" if offset == 0 else f"UTC{offset:+d}"
    return f"What time is it now in {zone}? Use the clock.", {"utc_offset_hours": offset}
