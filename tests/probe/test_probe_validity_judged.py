"""The validity rate of `agentgate probe` and `agentgate bench` counted the turns the backend failed (error turns: a
502, a timeout) in its denominator, though both keep them apart as `not judged`: one 502 in seven turns read as a
model 14 points less reliable. The rate is now over the judged turns (`judged` beside `turns`, in the JSON, the
text and the CSV alike), and is none at all when no turn could be judged."""

from __future__ import annotations

import csv
import json

from tests.probe.test_probe import BAD_GATEWAY, backend_fails_turn_two, cli, drifting


async def test_the_probe_rate_is_over_the_judged_turns_in_json_and_text(fakes, router, capsys) -> None:
    up, r = await drifting(fakes, router)
    backend_fails_turn_two(up)  # turn 2: the backend fails; turns 6 and 7: the model does
    assert await cli("probe", "drift", "--base-url", r.url + "/v1", "--turns", "7", "--json") == 1
    summary = json.loads(capsys.readouterr().out)["summary"]
    assert (summary["turns"], summary["judged"], summary["valid"], summary["errors"]) == (7, 6, 4, 1)
    assert summary["validity_rate"] == round(4 / 6, 4)

    backend_fails_turn_two(up)
    assert await cli("probe", "drift", "--base-url", r.url + "/v1", "--turns", "7") == 1
    out = capsys.readouterr().out
    assert "4/6 judged turns valid (66.7%)" in out and "1 not judged (http_502 1) at turn(s) 2" in out


async def test_a_probe_with_no_judged_turn_has_no_rate(fakes, router, capsys) -> None:
    up, r = await drifting(fakes, router)
    up.default = lambda body: BAD_GATEWAY
    assert await cli("probe", "drift", "--base-url", r.url + "/v1", "--turns", "2", "--json") == 2
    summary = json.loads(capsys.readouterr().out)["summary"]
    assert (summary["judged"], summary["validity_rate"], summary["on_task_rate"]) == (0, None, None)
    assert await cli("probe", "drift", "--base-url", r.url + "/v1", "--turns", "2") == 2
    out, err = capsys.readouterr()
    assert "no turn judged, 0 repaired, 0 failed, 2 not judged (http_502 2) at turn(s) 1,2" in out
    assert "Traceback" not in err


async def test_the_bench_rates_are_over_the_judged_turns_in_json_table_and_csv(fakes, router, tmp_path,
                                                                               capsys) -> None:
    up, r = await drifting(fakes, router, turns=7)
    backend_fails_turn_two(up)  # the first conversation (repair on), turn 2
    out_dir = tmp_path / "out"
    assert await cli("bench", "tools", "--models", "drift", "--base-url", r.url + "/v1", "--turns", "7", "--runs",
                     "1", "--concurrency", "1", "--out", str(out_dir)) == 2
    table = capsys.readouterr().out
    on = json.loads((out_dir / "tools.json").read_text())["groups"][0]
    assert on["repair"] is True and (on["turns"], on["judged"], on["valid"]) == (7, 6, 4)
    assert on["validity_rate"] == round(4 / 6, 4)
    assert on["buckets"][0] == {"turns": "1-10", "count": 7, "judged": 6, "valid": 4,
                                "validity_rate": round(4 / 6, 4)}
    assert on["by_turn"][1] is None and on["by_turn"][0] == 1.0  # turn 2 was not judged in its only run
    assert "66.7%" in table and "validity: valid turns of those judged" in table
    with (out_dir / "tools-summary.csv").open() as f:
        row = next(csv.DictReader(f))
    assert (row["turns"], row["judged"], row["validity_rate"]) == ("7", "6", str(round(4 / 6, 4)))
