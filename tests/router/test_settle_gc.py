"""Once serving, the router's start-up objects are out of the cyclic collector's reach and young objects are
collected less often (run in a child process: freezing the test process would keep its garbage forever)."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
import gc, json
from router.app import GC_YOUNG_THRESHOLD, settle_gc
before = gc.get_threshold()
settle_gc()
print(json.dumps({"before": before, "after": gc.get_threshold(), "frozen": gc.get_freeze_count(),
                  "young": GC_YOUNG_THRESHOLD}))
"""


def test_settle_gc_freezes_start_up_and_raises_the_young_threshold() -> None:
    out = json.loads(subprocess.run([sys.executable, "-c", SCRIPT], check=True, capture_output=True, text=True,
                                    timeout=120).stdout)
    assert out["frozen"] > 1000  # the imported modules and what they built
    assert out["after"] == [out["young"], *out["before"][1:]] and out["young"] > out["before"][0]
