"""`agentgate probe --json`: the summary counted an error turn (the backend's 502, which the probe cannot judge)
among the model's failures (`failed_turns`, `failures`), where the text report and the verdict keep them apart."""

from __future__ import annotations

import json

from tests.probe.test_probe import backend_fails_turn_two, cli, drifting


async def test_the_json_summary_keeps_error_turns_apart_from_the_models_failures(fakes, router, capsys) -> None:
    up, r = await drifting(fakes, router)
    backend_fails_turn_two(up)  # turn 2: the backend fails; turns 6 and 7: the model does
    assert await cli("probe", "drift", "--base-url", r.url + "/v1", "--turns", "7", "--json") == 1
    summary = json.loads(capsys.readouterr().out)["summary"]
    assert (summary["invalid"], summary["failed_turns"]) == (2, [6, 7])
    assert summary["failures"] == {"no_call": 1, "unknown_name": 1}
    assert (summary["errors"], summary["error_turns"], summary["error_kinds"]) == (1, [2], {"http_502": 1})

    backend_fails_turn_two(up)
    assert await cli("probe", "drift", "--base-url", r.url + "/v1", "--turns", "7") == 1
    out = capsys.readouterr().out  # the text report says the same
    assert "2 failed (no_call 1, unknown_name 1) at turn(s) 6,7, 1 not judged (http_502 1) at turn(s) 2" in out


async def test_the_bench_shows_error_turns_apart_from_the_models_failures(fakes, router, tmp_path, capsys) -> None:
    import csv

    up, r = await drifting(fakes, router, turns=7)
    backend_fails_turn_two(up)
    out_dir = tmp_path / "out"
    assert await cli("bench", "tools", "--models", "drift", "--base-url", r.url + "/v1", "--turns", "7", "--runs",
                     "1", "--concurrency", "1", "--out", str(out_dir)) == 2  # a turn could not be judged
    out = capsys.readouterr().out
    assert "drift repair on: repairs" in out and "; failures no_call 1, unknown_name 1; not judged http_502 1" in out
    with (out_dir / "tools-summary.csv").open() as f:
        on = next(csv.DictReader(f))
    assert (on["failures"], on["errors"], on["error_kinds"]) == ("no_call=1 unknown_name=1", "1", "http_502=1")
