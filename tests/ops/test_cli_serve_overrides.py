"""`agentgate serve --host HOST` is judged as `server.host: HOST` would be. The override skipped the host check (a
URL or `host:port` given to --host failed only at the bind, as "name or service not known"), and the warning about
`admin_auth: false` beyond loopback judged the file's host: silent for `--host 0.0.0.0` over a file's 127.0.0.1,
and said for a file's 0.0.0.0 that `--host 127.0.0.1` had made loopback. The router itself is not started here:
`router.app.run` is replaced by one that says what it was given."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-serve-override-7d1e2a"
REST = "providers:\n  up: {type: openai, base_url: 'http://127.0.0.1:9/v1'}\nmodels:\n  - {name: m, provider: up}\n"
STUBBED = ("import sys, router.app as app; "
           "app.run = lambda config, **kw: print('SERVED', config.server.host, file=sys.stderr); "
           "from router.cli import main; sys.exit(main(sys.argv[1:]))")


def serve(tmp_path: Path, server: str, *options: str) -> tuple[int, list[str]]:
    path = tmp_path / "config.yaml"
    path.write_text(f"server: {server}\n{REST}")
    proc = subprocess.run([sys.executable, "-c", STUBBED, "serve", "-c", str(path), *options], capture_output=True,
                          text=True, cwd=ROOT, timeout=120, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout == "" and "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, proc.stderr.splitlines()


def messages(lines: list[str]) -> list[str]:
    return [json.loads(line)["msg"] for line in lines if line.startswith("{")]


@pytest.mark.parametrize(("host", "said"), [
    ("http://0.0.0.0", "--host 'http://0.0.0.0' is a URL (write '0.0.0.0'; the port goes in --port)"),
    ("127.0.0.1:9000", "--host '127.0.0.1:9000' holds a port ('9000'): write the host alone, the port in --port"),
    ("[::1]", "--host '[::1]' is in brackets (write '::1', without them)"),
])
def test_a_host_that_is_no_host_is_refused_before_serving(tmp_path: Path, host: str, said: str) -> None:
    code, lines = serve(tmp_path, f"{{api_keys: ['{KEY}']}}", "--host", host)
    assert code == 2
    assert lines == [f"agentgate: {said}: --host is a host name or an IP address"]


def test_admin_auth_off_is_warned_for_an_overridden_public_host(tmp_path: Path) -> None:
    code, lines = serve(tmp_path, f"{{admin_auth: false, api_keys: ['{KEY}']}}", "--host", "0.0.0.0")
    said = [m for m in messages(lines) if "admin_auth" in m]
    assert code == 0 and lines[-1] == "SERVED 0.0.0.0"
    assert len(said) == 1 and said[0].startswith(f"{tmp_path / 'config.yaml'}: server.admin_auth: false on '0.0.0.0'")
    assert KEY not in "\n".join(lines)


def test_admin_auth_off_is_not_warned_once_the_override_makes_the_host_loopback(tmp_path: Path) -> None:
    code, lines = serve(tmp_path, f"{{host: 0.0.0.0, admin_auth: false, api_keys: ['{KEY}']}}", "--host",
                        "127.0.0.1")
    assert code == 0 and lines[-1] == "SERVED 127.0.0.1"
    assert not [line for line in lines if "admin_auth" in line], lines


def test_the_files_own_warnings_are_written_in_the_log_format(tmp_path: Path) -> None:
    """Said as the config loads, before logging was set up, they were bare text among the JSON lines."""
    code, lines = serve(tmp_path, f"{{api_keys: [{{key: '{KEY}', name: ci, models: [mm]}}]}}")
    assert code == 0 and lines[-1] == "SERVED 127.0.0.1"
    assert all(line.startswith("{") for line in lines[:-1]), lines
    assert any("client key 'ci' name 'mm'" in m for m in messages(lines))



def test_a_refused_start_still_says_the_files_warnings(tmp_path: Path) -> None:
    code, lines = serve(tmp_path, f"{{api_keys: [{{key: '{KEY}', name: ci, models: [mm]}}]}}", "--host", "http://x")
    assert code == 2 and len(lines) == 2
    assert lines[0].startswith(f"{tmp_path / 'config.yaml'}: server.api_keys: the models of client key 'ci'")
    assert lines[1].startswith("agentgate: --host 'http://x' is a URL")


def test_the_log_level_applies_to_the_files_warnings(tmp_path: Path) -> None:
    code, lines = serve(tmp_path, f"{{api_keys: [{{key: '{KEY}', name: ci, models: [mm]}}]}}", "--log-level", "error")
    assert (code, lines) == (0, ["SERVED 127.0.0.1"])
