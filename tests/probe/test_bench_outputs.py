"""`agentgate bench`: results it cannot write once the bench ran (a file in --out it cannot replace, a full disk)
ended the run with a traceback; now a message that names the file, and exit status 2."""

from __future__ import annotations

from tests.probe.test_probe import cli


async def test_results_that_cannot_be_written_are_a_message_not_a_traceback(fakes, tmp_path, capsys) -> None:
    up = await fakes()
    out = tmp_path / "out"
    (out / "tools.json").mkdir(parents=True)  # in the way of the JSON results
    assert await cli("bench", "tools", "--models", "m", "--base-url", up.url, "--turns", "1", "--runs", "1",
                     "--out", str(out)) == 2
    stdout, err = capsys.readouterr()
    assert "bench tools: 1 model(s)" in stdout  # the table was printed before
    assert err.startswith("agentgate bench: cannot write the results: ") and "tools.json" in err
    assert "Traceback" not in err


async def test_turns_the_backend_failed_make_the_bench_incomplete(fakes, tmp_path, capsys) -> None:
    """Every answer a 503: the bench exited 0, its validity rates (0 %) read as the models' own, where `agentgate
    probe` exits 2 for a turn it could not judge."""
    from tests.fakes.openai_upstream import Step

    up = await fakes()
    up.default = lambda body: Step(status=503, json={"error": {"message": "overloaded", "type": "server_error"}})
    out = tmp_path / "out"
    assert await cli("bench", "tools", "--models", "m", "--base-url", up.url, "--turns", "2", "--runs", "1",
                     "--out", str(out)) == 2
    stdout, err = capsys.readouterr()
    assert "not judged http_503 2" in stdout and (out / "tools.json").exists()
    assert "agentgate bench: 4 of 4 turns could not be judged: the backend failed them (http_503 4)" in err
