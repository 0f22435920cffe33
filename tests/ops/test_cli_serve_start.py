"""`agentgate serve` stopped by SIGTERM before it listens (`systemctl stop` while it imports and loads the config):
the process died by the signal, with no word and exit status 143, where serve's help promises 0 for a stop by
SIGTERM. It now says it stopped before serving and exits 0. The signal is sent by the process to itself as the
config loads, so it always lands in that window."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from router.cli import main

ROOT = Path(__file__).resolve().parents[2]
CONFIG = "providers:\n  up: {type: openai, base_url: 'http://127.0.0.1:9/v1'}\nmodels:\n  - {name: m, provider: up}\n"
TERM_AS_IT_LOADS = (
    "import os, signal, sys, router.commands.serve as serve\n"
    "load = serve.load_config\n"
    "def loading(path):\n"
    "    os.kill(os.getpid(), signal.SIGTERM)\n"
    "    return load(path)\n"
    "serve.load_config = loading\n"
    "from router.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n")


def test_sigterm_while_starting_is_a_clean_stop(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    proc = subprocess.run([sys.executable, "-c", TERM_AS_IT_LOADS, "serve", "-c", str(path), "--port", "0"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert (proc.returncode, proc.stdout) == (0, "")
    assert proc.stderr.splitlines() == ["agentgate: stopped by SIGTERM while starting: nothing was served"]


def test_serve_leaves_sigterm_as_it_found_it(tmp_path: Path, capsys) -> None:
    """Called in a process that handles SIGTERM itself (this one), serve restores that handler as it returns."""
    before = signal.getsignal(signal.SIGTERM)
    assert main(["serve", "-c", str(tmp_path / "missing.yaml")]) == 2
    assert signal.getsignal(signal.SIGTERM) is before
    capsys.readouterr()
