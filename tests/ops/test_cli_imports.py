"""A command imports its own module only: `agentgate serve` imported the modules of check, probe and bench too
(each ~0.2-0.4 s: config checking, the probe's client, the bench's tables) before it started, and `agentgate --help`
imported all six. Each command runs in a fresh interpreter here, as a user's does."""

from __future__ import annotations

import subprocess
import sys

import pytest

from router.cli import COMMANDS

CODE = ("import sys\nfrom router.cli import parse\n"
        "try:\n    parse(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('router.commands.'))))")


def imported(*argv: str) -> tuple[set[str], str]:
    done = subprocess.run([sys.executable, "-c", CODE, *argv], capture_output=True, text=True, timeout=60, check=True)
    *shown, last = done.stdout.splitlines()
    return set(last.split()), "\n".join(shown)


def own(module: str) -> set[str]:
    """The command modules that importing `module` alone brings in (check uses serve's loading, bench probe's)."""
    code = (f"import sys, {module}\n"
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('router.commands.'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    return set(done.stdout.split())


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_command_imports_only_its_own_module(command: str) -> None:
    mods, _ = imported(command, "--help")
    assert mods == own(COMMANDS[command][0]) and len(mods) < len(COMMANDS)


def test_the_top_level_help_lists_every_command_and_imports_none() -> None:
    mods, shown = imported("--help")
    assert mods == set()
    for name, (_, help_text) in COMMANDS.items():
        assert f"    {name}" in shown and help_text in shown


def test_an_unknown_command_imports_none() -> None:
    mods, _ = imported("chek")
    assert mods == set()
