"""`agentgate bench tools`: models × repair on/off × runs, as concurrent probe conversations."""

from __future__ import annotations

import asyncio
import csv
import importlib.util
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from router.cli import main
from tests.probe.drift import Drift, interrupted_cli
from tests.waiting import in_own_thread

TURNS, RUNS, CONCURRENCY = 12, 2, 3
ROOT = Path(__file__).resolve().parents[2]
BREAKS = {4: "no_close", 5: "single_quotes", 11: "plain"}


async def test_bench_ab_under_concurrent_load(fakes, router, tmp_path: Path, capsys) -> None:
    up = await fakes()
    drift = Drift(range(RUNS), TURNS, per_model={"up-drift": BREAKS, "up-steady": {}})
    up.default = drift
    # the first CONCURRENCY requests are held until all of them have arrived: the bench must really run
    # CONCURRENCY conversations at once (a sequential bench would never get past the first request)
    together = asyncio.Event()

    def held(body: Any) -> Any:
        if len(up.requests) >= CONCURRENCY:
            together.set()
        return replace(drift(body), gate=together)

    up.push(*[held] * CONCURRENCY)
    r = await router(f"providers:\n  lab: {{type: openai, base_url: '{up.url}', retries: 0}}\nmodels:\n"
                     "  - {name: drift, provider: lab, model: up-drift}\n"
                     "  - {name: steady, provider: lab, model: up-steady}\n")
    out_dir = tmp_path / "out"
    argv = ["bench", "tools", "--models", "drift,steady", "--base-url", r.url + "/v1", "--turns", str(TURNS),
            "--runs", str(RUNS), "--concurrency", str(CONCURRENCY), "--out", str(out_dir)]
    code = await in_own_thread(main, argv, timeout=60)
    assert code == 0
    assert len(up.requests) == 2 * 2 * RUNS * TURNS
    out = capsys.readouterr().out

    doc = json.loads((out_dir / "tools.json").read_text())
    assert doc["models"] == ["drift", "steady"] and doc["runs"] == RUNS and doc["concurrency"] == CONCURRENCY
    assert len(doc["conversations"]) == 2 * 2 * RUNS and doc["errors"] == []
    assert sorted({c["seed"] for c in doc["conversations"]}) == [0, 1]
    groups = {(g["model"], g["repair"]): g for g in doc["groups"]}
    assert list(groups) == [("drift", True), ("drift", False), ("steady", True), ("steady", False)]
    on, off = groups["drift", True], groups["drift", False]
    assert [b["turns"] for b in on["buckets"]] == ["1-10", "11-20"]
    assert [b["validity_rate"] for b in on["buckets"]] == [1.0, 0.5]
    assert [b["validity_rate"] for b in off["buckets"]] == [0.8, 0.5]
    assert on["validity_rate"] == round(11 / 12, 4) and off["validity_rate"] == 0.75
    assert on["repaired"] == 2 * RUNS and off["repaired"] == 0
    assert sum(on["repairs"].values()) >= 2 * RUNS and on["repairs"]["single_quotes"] == RUNS
    assert on["failures"] == {"no_call": RUNS}
    assert off["failures"] == {"malformed_call": 2 * RUNS, "no_call": RUNS}
    assert off["by_turn"][:6] == [1.0, 1.0, 1.0, 0.0, 0.0, 1.0] and off["by_turn"][10] == 0.0
    for model in ("steady",):
        for repair in (True, False):
            g = groups[model, repair]
            assert g["validity_rate"] == 1.0 and g["repairs"] == {} and g["failures"] == {}
    for g in doc["groups"]:
        assert g["turns"] == RUNS * TURNS and g["latency_p50_s"] <= g["latency_p95_s"]
        assert g["tokens_per_s"] > 0

    with (out_dir / "tools-turns.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 2 * RUNS * TURNS
    broken = {(row["repair"], row["turn"], row["status"], row["failure"]) for row in rows
              if row["model"] == "drift" and row["turn"] in ("4", "5", "11")}
    assert broken == {("on", "4", "repaired", ""), ("on", "5", "repaired", ""),
                      ("on", "11", "invalid", "no_call"), ("off", "4", "invalid", "malformed_call"),
                      ("off", "5", "invalid", "malformed_call"), ("off", "11", "invalid", "no_call")}
    with (out_dir / "tools-summary.csv").open() as f:
        summary = list(csv.DictReader(f))
    assert [(row["model"], row["repair"], row["valid_1-10"]) for row in summary] == [
        ("drift", "on", "1.0"), ("drift", "off", "0.8"), ("steady", "on", "1.0"), ("steady", "off", "1.0")]

    table = out.splitlines()
    assert table[1].split()[:5] == ["model", "repair", "valid", "1-10", "11-20"]
    assert table[2].split()[:5] == ["drift", "on", "91.7%", "100.0%", "50.0%"]
    assert table[3].split()[:5] == ["drift", "off", "75.0%", "80.0%", "50.0%"]
    assert "failures malformed_call 4, no_call 2" in out
    assert f"wrote {out_dir / 'tools.json'}" in out
    if importlib.util.find_spec("matplotlib") is None:
        assert "plot skipped: matplotlib is not installed" in out
        assert not (out_dir / "tools-validity.png").exists()
    else:
        assert (out_dir / "tools-validity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


async def test_bench_reports_conversations_that_could_not_run(fakes, router, tmp_path: Path, capsys) -> None:
    up = await fakes()
    up.default = Drift([0], 3)
    r = await router(f"providers:\n  lab: {{type: openai, base_url: '{up.url}', retries: 0}}\nmodels:\n"
                     "  - {name: steady, provider: lab, model: up-steady}\n")
    argv = ["bench", "tools", "--models", "steady,missing", "--base-url", r.url + "/v1", "--turns", "3",
            "--runs", "1", "--out", str(tmp_path)]
    assert await in_own_thread(main, argv) == 2
    out = capsys.readouterr().out
    assert "stopped: missing repair on run 0: HTTP 404" in out
    doc = json.loads((tmp_path / "tools.json").read_text())
    assert {(g["model"], g["repair"]): g["validity_rate"] for g in doc["groups"]} == {
        ("steady", True): 1.0, ("steady", False): 1.0, ("missing", True): None, ("missing", False): None}
    assert main(["bench", "tools", "--models", " , ", "--out", str(tmp_path)]) == 2


async def test_ctrl_c_writes_what_was_measured_marked_partial(fakes, tmp_path: Path) -> None:
    """SIGINT exited 130 and wrote nothing: every turn a long bench had measured was lost."""
    up = await fakes()
    out_dir = tmp_path / "results"
    # two turns answered, then the third waits: two conversations (repair on, off) in flight when Ctrl-C comes
    rc, out, _ = await interrupted_cli(up, ["bench", "tools", "--models", "m", "--base-url", up.url, "--turns", "40",
                                          "--runs", "1", "--out", str(out_dir)], answered=6)
    assert rc == 130
    doc = json.loads((out_dir / "tools.json").read_text())
    assert doc["partial"] is True
    assert [len(c["turns"]) for c in doc["conversations"]] == [2, 2]
    assert [g["valid"] for g in doc["groups"]] == [2, 2]
    assert "interrupted" in out.decode() and f"wrote {out_dir / 'tools.json'}" in out.decode()
    with (out_dir / "tools-turns.csv").open(newline="") as f:
        assert len(list(csv.DictReader(f))) == 4
