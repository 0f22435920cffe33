"""What the agent tests share: the pinned clients (the CLIs and the AI SDK, installed by install.sh when missing), the
private network namespace every client runs in, and a tiny valid PNG for the image tool results."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("AGENTGATE_TEST_AGENTS", Path.home() / ".cache" / "agentgate-test-agents"))
CODEX_VERSION, CLAUDE_VERSION = "0.171.0", "2.1.332"  # keep in step with install.sh
AISDK_VERSION, AISDK7_VERSION = "5.0.277", "7.0.173"  # `ai`, two majors (install.sh pins their providers)
AISDK_PACKAGES = ("ai", "@ai-sdk/openai-compatible", "@ai-sdk/openai", "@ai-sdk/anthropic", "zod")
_DIRS = {"codex": f"codex-{CODEX_VERSION}", "claude": f"claude-code-{CLAUDE_VERSION}",
         "aisdk": f"aisdk-{AISDK_VERSION}", "aisdk7": f"aisdk-{AISDK7_VERSION}"}  # each one's folder in CACHE
SDKS = ("aisdk", "aisdk7")  # the AI SDK's majors, as agent_cli names them
ROUTER = "127.0.0.1:8080"  # inside the private namespace nothing else listens
# Every client runs with these, plus its own opt-outs: no telemetry, no update checks, HOME in a temporary folder.
BASE_ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "NO_COLOR": "1", "TERM": "dumb",
            "HF_HUB_OFFLINE": "1"}


_tried: set[str] = set()


def _failed_lately(name: str) -> bool:
    """Whether install.sh failed for `name` within the hour (its log is there): not tried again so soon."""
    log = CACHE / f"{_DIRS[name]}.log"
    return log.exists() and time.time() - log.stat().st_mtime < 3600


def _binary(name: str) -> Path | None:
    if name in SDKS:  # the SDK's node_modules folder, every package of it there
        modules = CACHE / _DIRS[name] / "node_modules"
        return modules if all((modules / p / "package.json").exists() for p in AISDK_PACKAGES) else None
    if name == "codex":
        found = CACHE / _DIRS[name] / "node_modules" / "@openai" / "codex" / "bin" / "codex.js"
        return found if found.exists() else None
    scope = CACHE / _DIRS[name] / "node_modules" / "@anthropic-ai"
    return next((p for p in sorted(scope.glob("claude-code-linux-*/claude")) if os.access(p, os.X_OK)), None)


@pytest.fixture(scope="session")
def agent_cli() -> Callable[[str], list[str]]:
    """The argv prefix that runs a pinned agent CLI (for "aisdk" and "aisdk7": aisdk_client.mjs with the pinned AI
    SDK of that major); installs it when missing, skips (saying why) when it cannot."""
    def get(name: str) -> list[str]:
        path = _binary(name)
        if path is None and name not in _tried and not _failed_lately(name):  # prepare.sh usually tried already
            _tried.add(name)
            subprocess.run(["bash", str(HERE / "install.sh"), name], check=False, timeout=900)
            path = _binary(name)
        if path is None:
            pytest.skip(f"the {name} client is not installed and npm could not install it (tests/agents/install.sh)")
        node = shutil.which("node")
        if path.suffix == ".js" or name in SDKS:
            if node is None:
                pytest.skip("node is not on PATH")
            return [node, str(HERE / "aisdk_client.mjs"), str(path)] if name in SDKS else [node, str(path)]
        return [str(path)]
    return get


def _netns_prefix() -> list[str]:
    prefix = ["unshare", "--net"] if os.geteuid() == 0 else ["unshare", "--net", "--map-root-user"]
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("unshare and ip are needed to run the agent CLIs without network access")
    probe = subprocess.run([*prefix, "ip", "link", "set", "lo", "up"], capture_output=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a private network namespace: {probe.stderr.decode(errors='replace')[:200]}")
    return prefix


@pytest.fixture(scope="session")
def netns() -> list[str]:
    return _netns_prefix()


@pytest.fixture
def run_agents(netns: list[str], tmp_path: Path) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Runs a plan (the fake model to play, the client commands) through driver.py inside a fresh private network
    namespace, returns its result."""
    def run(plan: dict[str, Any]) -> dict[str, Any]:
        plan_path, result_path = tmp_path / "plan.json", tmp_path / "result.json"
        plan_path.write_text(json.dumps(plan))
        env = {**BASE_ENV, "HOME": str(tmp_path / "driver-home"), "AGENTGATE_STATE_DIR": str(tmp_path / "state"),
               "PYTHONPATH": str(HERE.parents[1])}
        budget = sum(s.get("timeout", 120) for s in plan["steps"]) + 60
        proc = subprocess.run([*netns, sys.executable, str(HERE / "driver.py"), str(plan_path), str(result_path)],
                              env=env, capture_output=True, timeout=budget)
        assert proc.returncode == 0 and result_path.exists(), proc.stderr.decode(errors="replace")[-3000:]
        return json.loads(result_path.read_text())
    return run


def png(path: Path, size: int = 16) -> Path:
    """A small valid RGB PNG (a red square)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    rows = b"".join(b"\x00" + b"\xff\x00\x00" * size for _ in range(size))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    return path


def describe(result: dict[str, Any]) -> str:
    """The clients' output, for assertion messages."""
    return "\n\n".join(f"$ {' '.join(r['argv'][-3:])}\nrc={r['rc']}\n{r['stdout'][-1500:]}\n{r['stderr'][-1500:]}"
                       for r in result["runs"])


README = HERE.parents[1] / "README.md"


def readme_block(heading: str, lang: str) -> str:
    """The first ```lang block after the line starting with `heading` in the README: the tests run what it says."""
    text = README.read_text()
    start = text.index(f"\n{heading}")
    begin = text.index(f"```{lang}\n", start) + len(lang) + 4
    return text[begin:text.index("```", begin)]


def readme_env(heading: str) -> dict[str, str]:
    """The variables the README's `export` lines set."""
    env: dict[str, str] = {}
    for line in readme_block(heading, "sh").splitlines():
        if line.startswith("export "):
            for word in line.split("#", 1)[0].split()[1:]:
                name, _, value = word.partition("=")
                env[name] = value
    return env
