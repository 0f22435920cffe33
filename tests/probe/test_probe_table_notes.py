"""A backend error that is a page of text (nginx's 502 page, a proxy's HTML) went into the report's note column with
its line breaks: each turn's row spilled over several lines of the table."""

from __future__ import annotations

from tests.fakes.openai_upstream import Step
from tests.probe.test_probe import cli

PAGE = b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\n<center><h1>502 Bad Gateway</h1></center>\n"


async def test_a_multi_line_error_stays_on_its_turns_row(fakes, capsys) -> None:
    up = await fakes()
    up.default = lambda body: Step(status=502, raw=PAGE)
    assert await cli("probe", "m", "--base-url", up.url, "--turns", "2") == 2
    lines = capsys.readouterr().out.splitlines()
    rows = [line for line in lines if line.split()[:2] in (["1", "ERROR"], ["2", "ERROR"])]
    assert len(rows) == 2 and all("<head><title>502 Bad Gateway</title></head> <body>" in row for row in rows)
    assert lines[2:4] == rows  # the header line, then one line per turn
