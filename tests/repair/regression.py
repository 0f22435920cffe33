"""The regression corpus: raw model outputs nobody here wrote, with what their source asserts about them.

`data/peer_tool_parsers.jsonl` holds the tool-parser test cases of vLLM, SGLang and mlx-lm as data (each case
names its source test: `repo:path:test`); `data/wild.jsonl` holds outputs quoted in public bug reports (each
names its report URL). `check` says exactly what the source asserts: `count` (exact number of calls), `min`,
`names` by index, full `args` by index, or an argument `subset` by index. A case with `count: 0` is a negative.

`data/differences.json` lists the cases where agentgate deliberately does something other than the source
asserts, with the reason (see repair/README.md, "Where agentgate differs from other parsers").
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data"
SOURCES = ("peer_tool_parsers.jsonl", "wild.jsonl")


@dataclass
class Case:
    id: str
    source: str
    family: str
    tools: list[dict[str, Any]]
    text: str
    expect: list[dict[str, Any]]
    check: dict[str, Any]
    tools_synth: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def origin(self) -> str:
        """The project whose test (or the site whose report) the case comes from."""
        head = self.source.split(":", 1)[0]
        if head.startswith("http"):
            return "bug reports"
        return {"vllm-project/vllm": "vLLM", "sgl-project/sglang": "SGLang", "ml-explore/mlx-lm": "mlx-lm"}.get(
            head, head)

    @property
    def negative(self) -> bool:
        return self.check.get("count") == 0


def load(names: tuple[str, ...] = SOURCES) -> list[Case]:
    cases: list[Case] = []
    for name in names:
        path = DATA / name
        if not path.exists():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            d = json.loads(line)
            known = {"id", "source", "family", "tools", "text", "expect", "check", "tools_synth"}
            cases.append(Case(d["id"], d["source"], d["family"], d["tools"], d["text"], d["expect"], d["check"],
                              bool(d.get("tools_synth")), {k: v for k, v in d.items() if k not in known}))
    return cases


def differences() -> dict[str, dict[str, str]]:
    """id -> {"kind": "policy" | "auto", "why": ...}: where agentgate deliberately differs from the source."""
    path = DATA / "differences.json"
    if not path.exists():
        return {}
    raw: dict[str, dict[str, str]] = json.loads(path.read_text(encoding="utf-8"))
    return raw


# --- scoring -----------------------------------------------------------------------------------------------------

def same(a: Any, b: Any) -> bool:
    """JSON equality: numbers compare numerically, booleans only to booleans."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def verdict(case: Case, calls: list[tuple[str, Any]]) -> str | None:
    """None when `calls` (name, decoded arguments) satisfy what the case asserts, else why not."""
    chk = case.check
    if chk.get("count") is not None and len(calls) != chk["count"]:
        return f"{len(calls)} calls, expected {chk['count']}"
    if chk.get("min") is not None and len(calls) < chk["min"]:
        return f"{len(calls)} calls, expected at least {chk['min']}"
    for i, name in (chk.get("names") or {}).items():
        k = int(i)
        if k >= len(calls) or calls[k][0] != name:
            return f"call {k}: name {calls[k][0] if k < len(calls) else None!r}, expected {name!r}"
    for i, args in (chk.get("args") or {}).items():
        k = int(i)
        if k >= len(calls) or not same(calls[k][1], args):
            got = calls[k][1] if k < len(calls) else None
            return f"call {k}: arguments {json.dumps(got)[:200]}, expected {json.dumps(args)[:200]}"
    for i, sub in (chk.get("subset") or {}).items():
        k = int(i)
        got = calls[k][1] if k < len(calls) else None
        if not isinstance(got, dict) or any(key not in got or not same(got[key], v) for key, v in sub.items()):
            return f"call {k}: arguments {json.dumps(got)[:200]} lack {json.dumps(sub)[:200]}"
    return None


def agentgate_calls(case: Case, format: str = "auto") -> list[tuple[str, Any]]:
    from repair import repair_message

    r = repair_message(case.text, case.tools, format=format)
    return [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in r.tool_calls]
