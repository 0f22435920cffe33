"""A short run of bench/soak/run.py (the router as a real subprocess under mixed load and client cancels), with
the soak's own targets: no errors, no RSS or fd growth after warm-up, nothing stuck, nothing logged as an error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the soak reads /proc")
def test_short_soak_meets_the_targets(tmp_path):
    out = tmp_path / "soak.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "soak" / "run.py"), "--duration", "15",
                           "--concurrency", "16", "--warmup", "3", "--window", "5", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads(out.read_text())
    detail = proc.stdout[-3000:]
    assert r["requests"] > 1000, detail  # the run did real work
    assert r["cancels"] > 100, detail  # and clients did hang up mid-request
    assert r["errors"] == 0, detail
    assert r["fd_growth"] <= 4 and r["fds_end"] <= r["fds_start"] + 4, detail
    assert r["rss_growth"] < 0.10, detail
    assert r["stuck"] == 0 and r["upstream_active"] == 0, detail
    assert r["log_errors"] == 0 and r["router_alive"], detail
    assert len(r["windows"]) == 3 and all(w["requests"] > 0 for w in r["windows"]), detail
    assert proc.returncode == 0 and r["ok"], detail
