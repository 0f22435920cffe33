"""What a new user meets on each sub-command's error paths: one line that names the problem and exit status 2, never
a traceback. An option a sub-command does not know was answered with the usage of `agentgate` itself (`COMMAND
...`), which lists none of that command's options; it is now the command's own usage and error line."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from router.cli import COMMANDS, main

MINIMAL = "providers:\n  up: {type: openai, base_url: 'http://127.0.0.1:9/v1'}\nmodels:\n  - {name: m, provider: up}\n"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as done:  # argparse: --help, a bad option
        code = int(done.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_has_help(command: str, capsys) -> None:
    code, out, err = run(capsys, command, "--help")
    assert code == 0 and out.startswith(f"usage: agentgate {command}") and err == ""


@pytest.mark.parametrize("argv", [["check"], ["serve"], ["engine", "--model", "tiny:demo"], ["repair"],
                                  ["probe", "m"], ["bench", "tools", "--models", "m"]])
def test_an_unknown_option_is_the_commands_own_error(argv: list[str], capsys) -> None:
    code, out, err = run(capsys, *argv, "--no-such-option")
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.startswith(f"usage: agentgate {argv[0]} ")
    assert err.splitlines()[-1] == f"agentgate {argv[0]}: error: unrecognized arguments: --no-such-option"


def test_an_unknown_command_names_the_commands(capsys) -> None:
    code, _, err = run(capsys, "chek")
    assert code == 2 and "invalid choice: 'chek'" in err.splitlines()[-1] and "'check'" in err


@pytest.mark.parametrize("command", ["check", "serve"])
def test_a_missing_config_is_one_line(command: str, tmp_path: Path, capsys) -> None:
    code, out, err = run(capsys, command, "-c", str(tmp_path / "nope.yaml"))
    assert (code, out) == (2, "")
    assert err.splitlines() == [f"agentgate: {tmp_path / 'nope.yaml'}: cannot read config: No such file or directory"]


@pytest.mark.parametrize("command", ["check", "serve"])
def test_a_config_that_does_not_parse_names_its_line(command: str, tmp_path: Path, capsys) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(MINIMAL.replace("models:", "models: [\n"))
    code, out, err = run(capsys, command, "-c", str(path))
    assert (code, out) == (2, "") and len(err.splitlines()) == 1
    assert err.startswith(f"agentgate: {path}: line 5, column 3: ") and "invalid YAML" in err


def test_engine_with_a_missing_model_folder(tmp_path: Path, capsys) -> None:
    code, out, err = run(capsys, "engine", "--model", str(tmp_path / "no-model"))
    assert (code, out) == (2, "")
    assert err.splitlines() == [f"agentgate engine: no such model folder: {tmp_path / 'no-model'}"]


def test_probe_against_a_port_with_nothing_listening(capsys) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    code, out, err = run(capsys, "probe", "m", "--base-url", url, "--turns", "1")
    assert code == 2 and "INCOMPLETE" in out
    assert err.splitlines() == [f"agentgate probe: cannot reach {url}/chat/completions: "
                                + err.split("/chat/completions: ", 1)[1].rstrip("\n")]
    assert "Traceback" not in err


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_bench_concurrency_below_one(value: str, tmp_path: Path, capsys) -> None:
    code, out, err = run(capsys, "bench", "tools", "--models", "m", "--concurrency", value, "--out",
                         str(tmp_path / "out"))
    assert (code, out) == (2, "") and not (tmp_path / "out").exists()
    assert err.splitlines()[-1] == f"agentgate bench: error: argument --concurrency: '{value}' is not an integer of " \
                                   "at least 1"


@pytest.mark.parametrize("command", ["serve", "check", "repair", "probe", "bench"])
def test_the_help_lists_the_exit_statuses(command: str, capsys) -> None:
    """They were in the modules' docstrings only: a script author reading --help could not tell 1 from 2."""
    _, out, _ = run(capsys, command, "--help")
    statuses = out.split("exit status:\n", 1)[1].splitlines()
    codes = [line.split()[0] for line in statuses if line.startswith("  ") and line.split()[0].isdigit()]
    assert codes and "2" in codes and codes == sorted(codes, key=int)


def test_a_missing_tools_file_is_said_as_a_missing_replay_file_is(tmp_path: Path, capsys) -> None:
    """--tools said `[Errno 2] No such file or directory: 'PATH'` after the path it had already quoted."""
    missing = tmp_path / "tools.json"
    for option in ("--tools", "--replay"):
        code, out, err = run(capsys, "repair", option, str(missing))
        assert (code, out) == (2, "")
        assert err.splitlines() == [f"agentgate repair: cannot read {option} '{missing}': No such file or directory"]
