"""`agentgate probe` against the real router in front of a fake backend that drifts at scripted turns."""

from __future__ import annotations

import json
import socket
from collections import Counter
from typing import Any

import pytest

from router.cli import main
from router.probe import ProbeSettings, Workspace, generate_tasks, run_probe
from tests.fakes.openai_upstream import Step
from tests.probe.drift import Drift, interrupted_cli
from tests.waiting import in_own_thread

TURNS = 9
# valid calls for three turns, then one break of each kind, then valid again
BREAKS = {4: "no_close", 5: "single_quotes", 6: "undeclared", 7: "plain"}
EXPECTED_ON = {4: ("repaired", None), 5: ("repaired", None), 6: ("invalid", "unknown_name"),
               7: ("invalid", "no_call")}
EXPECTED_OFF = {4: ("invalid", "malformed_call"), 5: ("invalid", "malformed_call"),
                6: ("invalid", "unknown_name"), 7: ("invalid", "no_call")}


def config(url: str, *models: str, extra: str = "") -> str:
    rows = "".join(f"  - {{name: {m}, provider: lab, model: up-{m}}}\n" for m in models)
    return f"{extra}providers:\n  lab: {{type: openai, base_url: '{url}', retries: 0}}\nmodels:\n{rows}"


async def drifting(fakes: Any, router: Any, *, turns: int = TURNS, breaks: dict[int, str] | None = None,
                   extra: str = "") -> tuple[Any, Any]:
    up = await fakes()
    scripted = BREAKS if breaks is None else breaks
    up.default = Drift([0], turns, per_model={"up-drift": scripted, "up-steady": {}})
    r = await router(config(up.url, "drift", "steady", extra=extra))
    return up, r


BAD_GATEWAY = Step(status=502, json={"error": {"message": "bad gateway"}})


def backend_fails_turn_two(up: Any) -> None:
    """The next probe's second request (its turn 2, or a bench's first conversation's) is the backend's 502; the
    first is answered as the drift script says."""
    drift = up.default
    up.push(lambda body: drift(body), BAD_GATEWAY)


async def cli(*argv: str) -> int:
    return await in_own_thread(main, list(argv), timeout=120)


def statuses(report: Any) -> dict[int, tuple[str, str | None]]:
    return {t.turn: (t.status, t.failure) for t in report.turns}


async def test_each_break_is_reported_at_its_turn_and_repair_on_differs_from_off_exactly_where_expected(
        fakes, router) -> None:
    _, r = await drifting(fakes, router)
    on = await run_probe(ProbeSettings("drift", r.url + "/v1", turns=TURNS, seed=0))
    off = await run_probe(ProbeSettings("drift", r.url + "/v1", turns=TURNS, seed=0, repair=False))
    assert on.error is None and off.error is None
    steady = {n: ("valid", None) for n in range(1, TURNS + 1)}
    assert statuses(on) == {**steady, **EXPECTED_ON}
    assert statuses(off) == {**steady, **EXPECTED_OFF}
    # a repairable break: with repair on the router's repair kinds are reported; with it off, the probe's own
    # diagnosis of the broken text names the same kinds
    for n in (4, 5):
        assert on.turns[n - 1].repairs and on.turns[n - 1].repairs == off.turns[n - 1].diagnosis
        assert on.turns[n - 1].on_task and not off.turns[n - 1].calls
    assert "single_quotes" in on.turns[4].repairs
    assert all(t.repairs == [] for t in on.turns if t.status != "repaired")
    assert on.to_dict()["summary"]["failed_turns"] == [6, 7]
    assert off.to_dict()["summary"]["failed_turns"] == [4, 5, 6, 7]
    assert on.to_dict()["summary"]["repairs"] == dict(Counter(on.turns[3].repairs + on.turns[4].repairs))
    assert not on.ok and not off.ok
    assert [t.cached_tokens for t in on.turns] == [100 * (n - 1) for n in range(1, TURNS + 1)]
    assert on.turns[6].detail.startswith("plain text")


async def test_tool_results_of_executed_calls_go_back_with_the_next_turn(fakes, router) -> None:
    up, r = await drifting(fakes, router)
    report = await run_probe(ProbeSettings("drift", r.url + "/v1", turns=TURNS, seed=0))
    assert len(up.requests) == TURNS
    tasks = generate_tasks(0, TURNS)
    ws = Workspace(seed=0)
    expected = {n: ws.execute(t.tool, t.arguments) for n, t in enumerate(tasks, 1) if n not in (6, 7)}
    for n in range(2, TURNS + 1):
        messages = up.requests[n - 1].body["messages"]
        assert messages[0]["role"] == "system"
        assert messages[-1] == {"role": "user", "content": tasks[n - 1].prompt}
        assert sum(m["role"] == "user" for m in messages) == n
        prev = messages[-2]
        if n - 1 in expected:  # the previous turn made a valid call: its result comes back
            assert prev["role"] == "tool" and json.loads(prev["content"]) == json.loads(expected[n - 1])
            assert messages[-3]["tool_calls"][0]["id"] == prev["tool_call_id"]
        else:  # no call: the text the model wrote
            assert prev["role"] == "assistant" and "tool_calls" not in prev
        body = up.requests[n - 1].body
        assert body["tools"] and body["tool_choice"] == "auto"
    assert report.turns[3].calls[0]["name"] == tasks[3].tool


async def test_stream_measures_time_to_first_token(fakes, router) -> None:
    up, r = await drifting(fakes, router)
    on = await run_probe(ProbeSettings("drift", r.url + "/v1", turns=TURNS, seed=0, stream=True))
    off = await run_probe(ProbeSettings("drift", r.url + "/v1", turns=TURNS, seed=0, stream=True,
                                        repair=False))
    assert all(req.body["stream"] is True for req in up.requests)
    for t in on.turns + off.turns:
        assert t.ttft_s is not None and 0 <= t.ttft_s <= t.latency_s
        assert t.repairs is None  # the router reports repair kinds on non-stream answers only
    # repaired calls still arrive as valid calls; the failures are the same as without streaming
    steady = {n: ("valid", None) for n in range(1, TURNS + 1)}
    assert statuses(on) == {**steady, 6: ("invalid", "unknown_name"), 7: ("invalid", "no_call")}
    assert statuses(off) == {**steady, **EXPECTED_OFF}
    assert on.turns[0].cached_tokens == 0 and on.turns[8].cached_tokens == 800


async def test_a_backend_can_be_probed_directly(fakes) -> None:
    up = await fakes()
    up.default = Drift([5], 6, breaks={2: "single_quotes"})
    report = await run_probe(ProbeSettings("anything", up.url, turns=6, seed=5))
    assert statuses(report)[2] == ("invalid", "malformed_call")
    assert sum(t.valid for t in report.turns) == 5


async def test_cli_json_report_and_exit_status(fakes, router, capsys) -> None:
    _, r = await drifting(fakes, router)
    assert await cli("probe", "steady", "--base-url", r.url + "/v1", "--turns", "5", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is True and doc["summary"]["validity_rate"] == 1.0 and len(doc["turns"]) == 5
    assert set(doc) >= {"model", "base_url", "seed", "turns_requested", "repair", "stream", "error",
                        "summary"}
    assert set(doc["turns"][0]) >= {"turn", "task", "expected_tool", "status", "valid", "failure", "repairs",
                                    "diagnosis", "calls", "latency_s", "ttft_s", "cached_tokens", "on_task"}

    assert await cli("probe", "drift", "--base-url", r.url + "/v1", "--turns", str(TURNS), "--json",
                     "--no-repair") == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["repair"] is False and doc["summary"]["failed_turns"] == [4, 5, 6, 7]
    assert doc["summary"]["failures"] == {"malformed_call": 2, "no_call": 1, "unknown_name": 1}

    assert await cli("probe", "drift", "--base-url", r.url + "/v1", "--turns", str(TURNS)) == 1
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[-1] == "FAIL" and "at turn(s) 6,7" in out
    assert any(line.split()[:2] == ["4", "repaired"] for line in lines)
    assert any(line.split()[:3] == ["6", "INVALID", "-"] and "unknown_name" in line for line in lines)
    assert err == ""  # no progress bar when stderr is not a terminal


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_unreachable_and_refused_stop_the_probe_with_status_2(fakes, router, capsys) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    assert await cli("probe", "m", "--base-url", url, "--json") == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["turns"] == [] and "cannot reach" in doc["error"]

    up, r = await drifting(fakes, router, extra="server:\n  api_keys: ['s3cret-probe-key']\n")
    assert await cli("probe", "nope", "--base-url", r.url + "/v1", "--api-key", "s3cret-probe-key") == 2
    out, err = capsys.readouterr()
    assert "HTTP 404" in err and "stopped" in out and len(up.requests) == 0
    assert await cli("probe", "steady", "--base-url", r.url + "/v1", "--api-key", "wrong", "--json") == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["error"].startswith("HTTP 401") and len(doc["turns"]) == 1
    assert "s3cret" not in json.dumps(doc)
    assert await cli("probe", "steady", "--base-url", r.url + "/v1", "--api-key", "s3cret-probe-key",
                     "--turns", "3", "--json") == 0
    capsys.readouterr()


async def test_upstream_errors_are_failed_turns_and_the_conversation_goes_on(fakes, router) -> None:

    up, r = await drifting(fakes, router)
    drift = up.default
    up.push(lambda body: drift(body), Step(status=400, json={"error": {"message": "context too long",
                                                                       "type": "invalid_request_error",
                                                                       "code": "context_length"}}))
    report = await run_probe(ProbeSettings("steady", r.url + "/v1", turns=4, seed=0))
    assert statuses(report) == {1: ("valid", None), 2: ("error", "http_400"), 3: ("valid", None),
                                4: ("valid", None)}
    assert "context too long" in report.turns[1].detail and report.error is None


@pytest.mark.parametrize("bad", ["0", "-3", "x"])
def test_turns_must_be_positive(bad: str, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["probe", "m", "--turns", bad])
    assert "--turns" in capsys.readouterr().err


async def test_router_verdicts_and_stream_errors_are_reported(fakes, router) -> None:
    from tests.fakes.openai_upstream import chunk

    up = await fakes()
    drift = Drift([0], 4, per_model={"up-strict": {2: "undeclared"}, "up-drift": {}})
    up.default = drift
    r = await router(config(up.url, "drift") + "  - {name: strict, provider: lab, model: up-strict, "
                     "repair: {on_failure: error}}\n")
    strict = await run_probe(ProbeSettings("strict", r.url + "/v1", turns=4, seed=0))
    assert statuses(strict) == {1: ("valid", None), 2: ("invalid", "invalid_tool_call"), 3: ("valid", None),
                                4: ("valid", None)}
    assert "unknown_name" in strict.turns[1].detail

    up.push(drift, Step(sse=[chunk("up-drift", {"role": "assistant", "content": "Let me"}),
                             {"error": {"message": "engine crashed", "type": "server_error"}}]))
    broken = await run_probe(ProbeSettings("drift", r.url + "/v1", turns=3, seed=0, stream=True))
    assert [t.status for t in broken.turns] == ["valid", "error", "valid"]
    assert broken.turns[1].failure == "upstream_error_mid_stream"
    assert "engine crashed" in broken.turns[1].detail


async def test_required_tool_choice_and_constraint_opt_out_reach_the_backend(fakes, router) -> None:
    up, r = await drifting(fakes, router, turns=2)
    await run_probe(ProbeSettings("drift", r.url + "/v1", turns=2, seed=0, tool_choice="required",
                                  constrain=False))
    assert [req.body["tool_choice"] for req in up.requests] == ["required", "required"]
    assert all(req.headers.get("x-agentgate-constrain") == "off" for req in up.requests)


@pytest.mark.parametrize("bad", ["127.0.0.1:8080/v1", "ftp://127.0.0.1/v1", "http://", "localhost", "http://[::1/v1"])
def test_a_base_url_that_is_not_http_stops_before_any_turn(bad: str, capsys) -> None:
    """A URL without a scheme ran every turn as a transport failure and exited 1 (a turn failed)."""
    for command in (["probe", "m"], ["bench", "tools", "--models", "m"]):
        with pytest.raises(SystemExit) as stop:
            main([*command, "--base-url", bad, "--turns", "2"])
        err = capsys.readouterr().err
        assert stop.value.code == 2 and "--base-url" in err and "http://" in err.splitlines()[-1]
        assert "Traceback" not in err


PASSWORD = "pr0be-pass-7788"


async def test_a_password_in_the_base_url_is_never_shown(fakes, router, capsys, tmp_path) -> None:
    """The report's header, its JSON, an unreachable URL's message and bench's tools.json quoted the base URL
    whole, a basic-auth password included."""
    _, r = await drifting(fakes, router)
    url = r.url.replace("http://", f"http://probe:{PASSWORD}@") + "/v1"
    assert await cli("probe", "steady", "--base-url", url, "--turns", "2", "--api-key", "") == 0
    out, err = capsys.readouterr()
    assert "probe:[redacted]@" in out and PASSWORD not in out + err
    assert await cli("probe", "steady", "--base-url", url, "--turns", "2", "--api-key", "", "--json") == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["base_url"].startswith("http://probe:[redacted]@") and PASSWORD not in out + err
    gone = f"http://probe:{PASSWORD}@127.0.0.1:{free_port()}/v1"
    assert await cli("probe", "steady", "--base-url", gone, "--api-key", "") == 2
    out, err = capsys.readouterr()
    assert "cannot reach" in err and PASSWORD not in out + err
    assert await cli("bench", "tools", "--models", "steady", "--base-url", url, "--turns", "1", "--runs", "1",
                     "--api-key", "", "--out", str(tmp_path)) == 0
    out, err = capsys.readouterr()
    assert PASSWORD not in out + err + "".join(p.read_text() for p in tmp_path.iterdir())


def test_a_key_beside_a_password_in_the_base_url_is_refused_before_any_turn(capsys, tmp_path) -> None:
    """Both go in the Authorization header: every turn raised aiohttp's ValueError, a traceback."""
    url = f"http://probe:{PASSWORD}@127.0.0.1:{free_port()}/v1"
    for command in (["probe", "m"], ["bench", "tools", "--models", "m", "--out", str(tmp_path / "out")]):
        assert main([*command, "--base-url", url, "--api-key", "sk-probe-key"]) == 2
        err = capsys.readouterr().err
        assert "--api-key" in err and "--base-url" in err and "Traceback" not in err and PASSWORD not in err
    assert not (tmp_path / "out").exists()


def test_an_invalid_address_in_the_base_url_stops_the_probe_before_any_turn(capsys) -> None:
    """aiohttp refuses such a URL on every request: each turn was a transport error and the probe exited 1."""
    assert main(["probe", "m", "--base-url", "http://256.1.1.1/v1", "--turns", "3", "--json"]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["turns"] == [] and "256.1.1.1" in doc["error"]


async def test_a_run_whose_every_turn_the_backend_failed_is_not_judged(fakes, router, capsys) -> None:
    """Every turn a 503: the probe exited 1 ("a turn failed") and printed FAIL with 3 failed turns, though an
    error turn is the backend's failure, not the model's."""

    up = await fakes()
    up.default = lambda body: Step(status=503, json={"error": {"message": "overloaded", "type": "server_error"}})
    r = await router(config(up.url, "steady"))
    assert await cli("probe", "steady", "--base-url", r.url + "/v1", "--turns", "3") == 2
    out, err = capsys.readouterr()
    assert out.splitlines()[-1] == "INCOMPLETE" and ", 0 failed, 3 not judged (http_503 3)" in out
    assert "3 of 3 turns could not be judged" in err and "not the model's" in err
    assert await cli("probe", "steady", "--base-url", r.url + "/v1", "--turns", "3", "--json") == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["verdict"] == "incomplete" and doc["ok"] is False and len(doc["turns"]) == 3


async def test_an_error_turn_beside_valid_ones_is_not_judged_and_a_model_failure_still_fails(
        fakes, router, capsys) -> None:

    up, r = await drifting(fakes, router)
    drift = up.default
    up.push(lambda body: drift(body), Step(status=502, json={"error": {"message": "bad gateway"}}))
    assert await cli("probe", "steady", "--base-url", r.url + "/v1", "--turns", "4", "--json") == 2
    assert json.loads(capsys.readouterr().out)["verdict"] == "incomplete"
    up.push(lambda body: drift(body), Step(status=502, json={"error": {"message": "bad gateway"}}))
    assert await cli("probe", "drift", "--base-url", r.url + "/v1", "--turns", "7", "--json") == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["verdict"] == "fail" and doc["summary"]["errors"] == 1


@pytest.mark.parametrize("as_json", [False, True])
async def test_ctrl_c_prints_the_turns_done_marked_incomplete(fakes, tmp_path, as_json: bool) -> None:
    """SIGINT exited 130 and printed none of the turns the probe had judged."""
    up = await fakes()
    # two turns answered, then the third waits for Ctrl-C
    rc, out, err = await interrupted_cli(up, ["probe", "m", "--base-url", up.url, *(["--json"] if as_json else [])],
                                         answered=3)
    assert rc == 130
    if as_json:
        doc = json.loads(out)
        assert [t["turn"] for t in doc["turns"]] == [1, 2] and doc["summary"]["valid"] == 2
        assert doc["verdict"] == "incomplete" and doc["error"] == "interrupted" and doc["ok"] is False
    else:
        text = out.decode()
        assert "2/2 valid" in text and "stopped: interrupted" in text and text.rstrip().endswith("INCOMPLETE")
        assert "interrupted after 2 of 40 turns" in err.decode()
