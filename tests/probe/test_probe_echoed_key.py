"""A backend that quotes the credentials it was sent in its error message (`Incorrect API key provided: sk-...`,
some servers quote the Authorization header whole): `agentgate probe` and `agentgate bench` printed the key in the
turn's note, the stop reason, the JSON report and bench's result files."""

from __future__ import annotations

import base64
import json
from typing import Any

from tests.fakes.openai_upstream import Step
from tests.probe.test_probe import cli

KEY = "sk-probe-echoed-0123456789abcdef"
PASSWORD = "echoed-pass-5566"


def echoing(status: int) -> Any:
    def answer(body: Any) -> Step:
        basic = base64.b64encode(f"probe:{PASSWORD}".encode()).decode()
        message = f"Incorrect API key provided: {KEY} (Basic {basic}, password {PASSWORD})"
        return Step(status=status, json={"error": {"message": message, "type": "invalid_request_error"}})
    return answer


async def test_a_key_the_backend_quotes_in_an_error_is_never_shown(fakes, capsys, tmp_path) -> None:
    up = await fakes()
    up.default = echoing(401)  # fatal: the probe stops with it
    for json_flag in ([], ["--json"]):
        assert await cli("probe", "m", "--base-url", up.url, "--api-key", KEY, "--turns", "2", *json_flag) == 2
        out, err = capsys.readouterr()
        assert "Incorrect API key provided: [redacted]" in out + err and KEY not in out + err
    up.default = echoing(400)  # an error turn: the conversation goes on
    assert await cli("probe", "m", "--base-url", up.url, "--api-key", KEY, "--turns", "2", "--json") == 2
    out, err = capsys.readouterr()
    assert json.loads(out)["summary"]["errors"] == 2 and KEY not in out + err
    assert await cli("bench", "tools", "--models", "m", "--base-url", up.url, "--api-key", KEY, "--turns", "1",
                     "--runs", "1", "--out", str(tmp_path)) == 2  # its turns could not be judged
    out, err = capsys.readouterr()
    assert KEY not in out + err + "".join(p.read_text() for p in tmp_path.iterdir())


async def test_a_password_the_backend_quotes_in_an_error_is_never_shown(fakes, capsys) -> None:
    up = await fakes()
    up.default = echoing(401)
    url = up.url.replace("http://", f"http://probe:{PASSWORD}@")
    assert await cli("probe", "m", "--base-url", url, "--api-key", "", "--turns", "1", "--json") == 2
    out, err = capsys.readouterr()
    basic = base64.b64encode(f"probe:{PASSWORD}".encode()).decode()
    assert PASSWORD not in out + err and basic not in out + err and "[redacted]" in json.loads(out)["error"]


async def test_a_key_quoted_in_a_streams_error_event_is_never_shown(fakes, capsys) -> None:
    from tests.fakes.openai_upstream import chunk

    up = await fakes()
    up.push(Step(sse=[chunk("m", {"role": "assistant", "content": ""}),
                      {"error": {"message": f"upstream refused the key {KEY}", "code": 401}}]))
    assert await cli("probe", "m", "--base-url", up.url, "--api-key", KEY, "--turns", "1", "--stream",
                     "--json") == 2
    out, err = capsys.readouterr()
    turn = json.loads(out)["turns"][0]
    assert turn["detail"] == "upstream refused the key [redacted]" and KEY not in out + err
