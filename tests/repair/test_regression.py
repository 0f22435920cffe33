"""The regression corpus, case by case: every output from another project's tests or a public bug report is
scored on exactly what its source asserts (tests/repair/regression.py). Cases in data/differences.json are where
agentgate deliberately differs (kind "policy" or "auto") or is known to fail still (kind "open"); they must
still not pass by accident, so the list stays true."""

from __future__ import annotations

import zlib

import pytest

from tests.repair.helpers import assert_stream_matches
from tests.repair.incremental_helpers import assert_incremental_matches
from tests.repair.regression import Case, agentgate_calls, differences, load, verdict

CASES = load()
DIFFS = differences()


def test_corpus_loaded() -> None:
    assert len(CASES) >= 346
    assert len({c.id for c in CASES}) == len(CASES)
    assert all(c.source for c in CASES)
    assert set(DIFFS) <= {c.id for c in CASES}
    assert all(d["kind"] in ("policy", "auto", "open") and d["why"] for d in DIFFS.values())


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.id}-{c.family}")
def test_case(case: Case) -> None:
    calls = agentgate_calls(case)
    why = verdict(case, calls)
    diff = DIFFS.get(case.id)
    if diff is None:
        assert why is None, f"{case.source}: {why}"
        return
    assert why is not None, f"{case.id} now passes: remove it from data/differences.json"
    if diff["kind"] == "open":
        pytest.xfail(diff["why"])


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.id}-{c.family}")
def test_case_streamed(case: Case) -> None:
    """Streaming gives exactly the one-shot result for these outputs too (1-char chunks and one random)."""
    if not case.text:
        pytest.skip("an empty output is no stream")
    assert_stream_matches(case.text, case.tools, seed=zlib.crc32(case.id.encode()), count=1)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.id}-{c.family}")
def test_case_streamed_incrementally(case: Case) -> None:
    """With incremental=True (calls and reasoning streamed as generated) the client's answer is the one-shot one."""
    if not case.text:
        pytest.skip("an empty output is no stream")
    assert_incremental_matches(case.text, case.tools, seed=zlib.crc32(case.id.encode()), count=1)
