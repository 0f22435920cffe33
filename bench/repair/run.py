"""Tool-call repair measured on outputs nobody here wrote: pass rates per family and per source.

    python bench/repair/run.py [--family F] [--show-failures] [--markdown]

Cases: tests/repair/data/*.jsonl (the tool-parser tests of vLLM, SGLang and mlx-lm as data, and outputs quoted in
public bug reports), each scored on exactly what its source asserts (see tests/repair/regression.py).

Columns:
  * pass / agentgate auto — `repair_message(text, tools)` with format detection per call (what the router does
    when no family is configured); a case passes when its check holds. "excl. differs" leaves out the cases below.
  * differs — cases where agentgate deliberately does something else (tests/repair/data/differences.json: a call
    the policy refuses, such as one whose required argument is missing; two negatives where agentgate emits a
    complete, valid call the peer's parser does not read); shown, and not counted as passes. Cases marked
    there as `open` (known failures: the text kept, no call invented) are not differences: they count as failures.
  * false calls — negatives (the source asserts no call) where agentgate emitted one, differences excluded.
  * mlx-lm — mlx-lm's own parser for that family (mlx_lm.tool_parsers, given the right family, the way its
    server applies it: text between the parser's start and end markers), where mlx-lm has one.
Then the time to repair 200 KB pathological outputs (median of several runs).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import re
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from repair import repair_message  # noqa: E402
from tests.repair.regression import Case, agentgate_calls, differences, load, verdict  # noqa: E402

# mlx-lm's parser module for each family it has one for (as its tokenizer loader would pick it).
MLX_PARSERS = {
    "hermes": "json_tools", "qwen3_coder": "qwen3_coder", "qwen3_xml": "qwen3_coder", "glm45": "glm47",
    "glm47": "glm47", "kimi_k2": "kimi_k2", "minimax_m2": "minimax_m2", "mistral": "mistral", "pythonic": "pythonic",
    "lfm2": "pythonic", "gemma4": "gemma4", "functiongemma": "function_gemma", "longcat": "longcat",
}


def mlx_calls(case: Case) -> list[tuple[str, Any]] | None:
    """mlx-lm's parser for the case's family applied as its server does; None when it has none."""
    mod_name = MLX_PARSERS.get(case.family)
    if mod_name is None:
        return None
    try:
        mod = importlib.import_module(f"mlx_lm.tool_parsers.{mod_name}")
    except Exception:
        return None
    start, end = mod.tool_call_start, mod.tool_call_end
    calls: list[tuple[str, Any]] = []
    pos = 0
    text = case.text
    while True:
        s = text.find(start, pos)
        if s == -1:
            break
        b = s + len(start)
        e = text.find(end, b) if end else -1
        body = text[b:e] if e != -1 else text[b:]
        pos = e + len(end) if e != -1 else len(text)
        try:
            parsed = mod.parse_tool_call(body, case.tools)
        except Exception:  # the server drops a call its parser cannot read (and crashes on some errors)
            continue
        for tc in parsed if isinstance(parsed, list) else [parsed]:
            if isinstance(tc, dict):
                args = tc.get("arguments")
                if isinstance(args, str):
                    try:
                        args = json.loads(args)
                    except ValueError:
                        pass
                calls.append((tc.get("name"), args))
        if e == -1:
            break
    return calls


def run_cases(cases: list[Case], show: bool) -> tuple[dict[str, Any], list[str]]:
    diffs = differences()
    rows: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    failures: list[str] = []
    for case in cases:
        keys = (f"family:{case.family}", f"source:{case.origin}", "all",
                *(("peer",) if case.origin != "bug reports" else ()))
        calls = agentgate_calls(case)
        why = verdict(case, calls)
        ok = why is None
        differs = not ok and case.id in diffs and diffs[case.id]["kind"] != "open"  # an open one is a failure
        false_call = case.negative and bool(calls) and not differs
        m = mlx_calls(case)
        for k in keys:
            r = rows[k]
            r["n"][0] += 1
            r["ag"][0] += ok
            r["differs"][0] += differs
            r["false"][0] += false_call
            r["neg"][0] += case.negative
            if m is not None:
                r["mlx_n"][0] += 1
                r["mlx"][0] += verdict(case, m) is None
                r["ag_on_mlx"][0] += ok
        if not ok and show:
            tag = f"differs ({diffs[case.id]['kind']})" if differs else "FAIL (open)" if case.id in diffs else "FAIL"
            failures.append(f"{tag} {case.id} [{case.family}] {case.source}\n    {why}\n    text: "
                            f"{case.text[:300]!r}")
    return rows, failures


def _rate(a: int, n: int) -> str:
    return f"{a / n:.2f}" if n else "—"


def table(rows: dict[str, Any], markdown: bool) -> str:
    head = ["", "cases", "pass", "differs", "agentgate auto", "excl. differs", "neg", "false calls",
            "mlx-lm (own family)", "agentgate on those"]
    lines = []
    order = ["all", *(("peer",) if "peer" in rows else ()), *sorted(k for k in rows if k.startswith("source:")),
             *sorted(k for k in rows if k.startswith("family:"))]
    names = {"all": "**all**", "peer": "**peer suites**"}
    for k in order:
        r = rows[k]
        n, ag, dif = r["n"][0], r["ag"][0], r["differs"][0]
        mn = r["mlx_n"][0]
        lines.append([names.get(k, k.split(":", 1)[-1]), str(n), str(ag), str(dif), _rate(ag, n),
                      _rate(ag, n - dif), str(r["neg"][0]), str(r["false"][0]),
                      f"{_rate(r['mlx'][0], mn)} ({r['mlx'][0]}/{mn})" if mn else "—",
                      f"{_rate(r['ag_on_mlx'][0], mn)} ({r['ag_on_mlx'][0]}/{mn})" if mn else "—"])
    if markdown:
        out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join(x) + " |" for x in lines]
        return "\n".join(out)
    widths = [max(len(h), *(len(x[i]) for x in lines)) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*head)] + [fmt.format(*x) for x in lines])


# --- pathological outputs --------------------------------------------------------------------------------------

TOOLS = [{"type": "function", "function": {"name": "write_file", "parameters": {
    "type": "object", "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
    "required": ["path", "content"]}}}]


def pathological() -> dict[str, str]:
    size = 200_000
    big = "x = 1\n    return {'a': [1, 2]}\n" * (size // 32)
    arg = json.dumps({"path": "a.py", "content": big[:size]})
    return {
        "unclosed <tool_call> x20000": ("<tool_call>{" * 20000)[:size],
        "deep brackets": ("[" * 100_000 + "]" * 100_000)[:size],
        "one 200 KB hermes call": f"<tool_call>{{\"name\": \"write_file\", \"arguments\": {arg}}}</tool_call>",
        "200 KB call, truncated": f"<tool_call>{{\"name\": \"write_file\", \"arguments\": {arg[: size - 10]}",
        "200 KB qwen3 XML call": "<tool_call><function=write_file><parameter=path>a.py</parameter><parameter=content>"
                                 + big[:size] + "</parameter></function></tool_call>",
        "markers of every family, mixed": ("<|tool_call_begin|>f<tool_call>name<arg_key>k</arg_key>[TOOL_CALLS]"
                                           "<|python_tag|>{\"name\": <function=x><｜DSML｜invoke name=\"a\">"
                                           "<minimax:tool_call><|tool_call>call:x{" * 1300)[:size],
        "prose 200 KB": ("Here is some text with {braces} and [brackets] (parens) and <tags>. " * 3000)[:size],
        "a line of quoted examples, a call": "Examples: " + '`{"name": "write_file"}` ' * (size // 26) + "\n"
                                             + '<tool_call>{"name": "write_file", "arguments": {"path": "a", '
                                               '"content": "b"}}</tool_call>',
        "calls with backticks, one line": ('<tool_call>{"name": "write_file", "arguments": {"path": "a", '
                                           '"content": "`b`"}}</tool_call> ' * (size // 88))[:size],
    }


def time_pathological(runs: int = 5) -> list[tuple[str, int, float, float]]:
    """(name, size, median CPU ms, median wall ms): CPU time is what the repair costs; wall time also counts
    whatever else the machine is running."""
    out = []
    for name, text in pathological().items():
        cpu, wall = [], []
        for _ in range(runs):
            c0, t0 = time.process_time(), time.perf_counter()
            repair_message(text, TOOLS)
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - t0)
        out.append((name, len(text), statistics.median(cpu) * 1000, statistics.median(wall) * 1000))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", help="only cases of this family (regex)")
    ap.add_argument("--show-failures", action="store_true")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--no-timing", action="store_true")
    args = ap.parse_args(argv)
    cases = load()
    if args.family:
        pat = re.compile(args.family)
        cases = [c for c in cases if pat.fullmatch(c.family)]
    rows, failures = run_cases(cases, args.show_failures)
    for f in failures:
        print(f)
    print(f"\nrepair bench, {dt.date.today().isoformat()}, {len(cases)} cases\n")
    print(table(rows, args.markdown))
    if not args.no_timing:
        print("\n200 KB pathological outputs (median of 5 runs):\n")
        for name, size, cpu_ms, wall_ms in time_pathological():
            print(f"  {name:<34} {size / 1000:6.0f} KB  {cpu_ms:7.1f} ms CPU  {wall_ms:7.1f} ms wall")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
