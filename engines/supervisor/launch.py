"""Turn an EngineSpec into a concrete launch: argv, environment, endpoint and readiness URL."""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .process import isolated_env
from .types import Endpoint, EngineSpec

_PLACEHOLDER = re.compile(r"\$\{(PORT|MODEL)\}")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_MAX_SOCKET_PATH = 100  # sun_path is 104 (macOS) / 108 (Linux) bytes including the terminator


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    env: dict[str, str]
    endpoint: Endpoint
    health_url: str
    socket_path: Path | None = None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the child binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def socket_path(runtime_dir: Path, name: str) -> Path:
    """`<runtime_dir>/<name>.sock`; names with characters unsafe in a file name, or too long for a socket
    address, get a sanitised name with a short hash so distinct names never share a socket."""
    safe = _UNSAFE.sub("_", name)
    if safe != name:
        safe = f"{safe[:40]}-{_digest(name)}"
    path = runtime_dir / f"{safe}.sock"
    if len(os.fsencode(path)) > _MAX_SOCKET_PATH:
        path = runtime_dir / f"{_digest(name)}.sock"
    if len(os.fsencode(path)) > _MAX_SOCKET_PATH:
        raise ValueError(f"runtime directory {str(runtime_dir)!r} is too long for a Unix socket path")
    return path


def expand_command(command: str | Sequence[str], *, port: int, model: str | None) -> list[str]:
    """Split a command string like a shell would (no shell runs it) and substitute ${PORT} and ${MODEL}."""
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    if not argv:
        raise ValueError("command is empty")
    values = {"PORT": str(port), "MODEL": model or ""}
    argv = [_PLACEHOLDER.sub(lambda m: values[m.group(1)], arg) for arg in argv]
    argv[0] = os.path.expanduser(argv[0])
    return argv


def kv_dir(state_dir: Path, name: str) -> Path:
    """`<state_dir>/kv/<name>`: where an MLX engine keeps its prefix cache across unloads and restarts."""
    safe = _UNSAFE.sub("_", name)
    return state_dir / "kv" / (safe if safe == name else f"{safe[:40]}-{_digest(name)}")


def plan_launch(spec: EngineSpec, *, runtime_dir: Path, python: str, state_dir: Path | None = None) -> Launch:
    """Raises ValueError when the spec cannot be launched (empty command, socket path too long). With a
    `state_dir`, MLX engines keep their prefix cache on disk under it (unless their args choose a --kv-dir)."""
    env = {**os.environ, **spec.env}
    if spec.kind == "mlx":
        assert spec.model is not None
        sock = socket_path(runtime_dir, spec.name)
        argv = [python, "-m", "engines", "--model", spec.model, "--socket", str(sock), "--name", spec.name]
        if spec.tool_format:
            argv += ["--tool-format", spec.tool_format]
        if state_dir is not None and not _sets(spec.args, "--kv-dir"):
            argv += ["--kv-dir", str(kv_dir(state_dir, spec.name))]
        if spec.max_body_containers is not None and not _sets(spec.args, "--max-body-containers"):
            argv += ["--max-body-containers", str(spec.max_body_containers)]
        if spec.max_body_bytes is not None and not _sets(spec.args, "--max-body-mb"):
            argv += ["--max-body-mb", str(spec.max_body_bytes / 2**20)]  # exact: a power-of-two divisor
        argv += list(spec.args)
        env.setdefault("PYTHONUNBUFFERED", "1")
        env = isolated_env(env)  # `-m engines` from the router's directory must not import files found there
        return Launch(argv, env, Endpoint("http://localhost/v1", str(sock)), f"http://localhost{spec.health_path}",
                      sock)
    assert spec.command is not None
    port = free_port()
    argv = expand_command(spec.command, port=port, model=spec.model)
    env["PORT"] = str(port)
    base = f"http://127.0.0.1:{port}"
    return Launch(argv, env, Endpoint(f"{base}/v1"), f"{base}{spec.health_path}")


def _sets(args: Sequence[str], option: str) -> bool:
    """Whether a model's own `engine_args` give `option` (`--opt VALUE` or `--opt=VALUE`)."""
    return any(a.split("=")[0] == option for a in args)


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:10]
