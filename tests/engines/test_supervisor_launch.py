"""How an EngineSpec becomes a command line: worker argv, ${PORT}/${MODEL} substitution, socket names."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

from engines.supervisor.launch import expand_command, plan_launch, socket_path
from engines.supervisor.lifecycle import EngineSpec, Supervisor
from engines.worker.cli import add_arguments
from router.config import parse_config


def test_worker_launch_uses_python_m_engines_and_a_socket(tmp_path: Path) -> None:
    spec = EngineSpec(name="coder", kind="mlx", model="mlx-community/Qwen3-4B-4bit", tool_format="qwen3_coder",
                      args=["--max-batch", "16"], env={"MLX_FLAG": "1"})
    launch = plan_launch(spec, runtime_dir=tmp_path, python="/py")
    sock = str(tmp_path / "coder.sock")
    assert launch.argv == ["/py", "-m", "engines", "--model", "mlx-community/Qwen3-4B-4bit", "--socket", sock,
                           "--name", "coder", "--tool-format", "qwen3_coder", "--max-batch", "16"]
    assert launch.endpoint.base_url == "http://localhost/v1" and launch.endpoint.unix_socket == sock
    assert launch.health_url == "http://localhost/health" and launch.env["MLX_FLAG"] == "1"



def test_worker_launch_keeps_its_kv_cache_under_the_state_folder(tmp_path: Path) -> None:
    spec = EngineSpec(name="org/coder", kind="mlx", model="m")
    argv = plan_launch(spec, runtime_dir=tmp_path, python="/py", state_dir=tmp_path / "state").argv
    kv = Path(argv[argv.index("--kv-dir") + 1])
    assert kv.parent == tmp_path / "state" / "kv" and "/" not in kv.name
    mine = EngineSpec(name="c", kind="mlx", model="m", args=["--kv-dir=/elsewhere"])
    assert plan_launch(mine, runtime_dir=tmp_path, python="/py", state_dir=tmp_path).argv.count("--kv-dir") == 0

def _worker_options(spec: EngineSpec, tmp_path: Path) -> argparse.Namespace:
    """The options the worker launched for `spec` runs with, read by its own command line."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(plan_launch(spec, runtime_dir=tmp_path, python="/py").argv[3:])


def _worker_limit(spec: EngineSpec, tmp_path: Path) -> int:
    """The body-container limit the worker launched for `spec` runs with."""
    return int(_worker_options(spec, tmp_path).max_body_containers)


def test_the_routers_body_container_limit_reaches_its_mlx_workers(tmp_path: Path) -> None:
    """A raised `server.max_body_containers` let a body through the router that its local engines still refused
    at their default (500,000); a model's own `engine_args` still choose, and a changed limit restarts the engine."""
    models = ("models:\n  - {name: a, engine: mlx, model: 'tiny:demo'}\n"
              "  - {name: b, engine: mlx, model: 'tiny:demo', engine_args: ['--max-body-containers=7']}\n")
    raised = {m.name: m.engine for m in parse_config("server: {max_body_containers: 2000000}\n" + models).models}
    assert raised["a"] is not None and raised["b"] is not None
    assert _worker_limit(raised["a"], tmp_path) == 2_000_000
    assert _worker_limit(raised["b"], tmp_path) == 7
    default = parse_config(models).models[0].engine
    assert default is not None and _worker_limit(default, tmp_path) == 500_000
    assert default.launch_key() != raised["a"].launch_key()


def test_the_routers_body_size_limit_reaches_its_mlx_workers(tmp_path: Path) -> None:
    """A `server.max_body_mb` above the worker's 64 MiB let a body through the router that its local engines refused
    with a 413; a lower one leaves the worker at 64 MiB (a translated body may grow), `engine_args` still choose."""
    models = ("models:\n  - {name: a, engine: mlx, model: 'tiny:demo'}\n"
              "  - {name: b, engine: mlx, model: 'tiny:demo', engine_args: ['--max-body-mb=0.5']}\n")
    raised = {m.name: m.engine for m in parse_config("server: {max_body_mb: 100.5}\n" + models).models}
    assert raised["a"] is not None and raised["b"] is not None
    assert _worker_options(raised["a"], tmp_path).max_body_bytes == int(100.5 * 2**20)
    assert _worker_options(raised["b"], tmp_path).max_body_bytes == 2**19
    default = parse_config("server: {max_body_mb: 8}\n" + models).models[0].engine
    assert default is not None and _worker_options(default, tmp_path).max_body_bytes == 64 * 2**20
    assert default.launch_key() != raised["a"].launch_key()


def test_command_launch_substitutes_port_and_model(tmp_path: Path) -> None:
    spec = EngineSpec(name="llama", kind="command", model="/models/q.gguf", health_path="ready",
                      command="llama-server -m '${MODEL}' --port ${PORT} --alias 'two words' $HOME")
    launch = plan_launch(spec, runtime_dir=tmp_path, python=sys.executable)
    port = launch.env["PORT"]
    assert launch.argv == ["llama-server", "-m", "/models/q.gguf", "--port", port, "--alias", "two words", "$HOME"]
    assert launch.endpoint.base_url == f"http://127.0.0.1:{port}/v1" and launch.endpoint.unix_socket is None
    assert launch.health_url == f"http://127.0.0.1:{port}/ready"
    assert expand_command(["srv", "--listen=127.0.0.1:${PORT}"], port=8123, model=None) == [
        "srv", "--listen=127.0.0.1:8123"]


def test_socket_names_are_safe_distinct_and_short(tmp_path: Path) -> None:
    a, b = socket_path(tmp_path, "org/model:q4"), socket_path(tmp_path, "org_model_q4")
    assert a.parent == tmp_path and "/" not in a.name and a != b
    long = socket_path(tmp_path, "x" * 200)
    assert long.parent == tmp_path and len(str(long)) <= 100
    with pytest.raises(ValueError, match="too long"):
        socket_path(tmp_path / ("d" * 120), "m")


def test_specs_are_validated_and_compare_by_value() -> None:
    with pytest.raises(ValueError, match="kind"):
        EngineSpec(name="x", kind="docker")
    with pytest.raises(ValueError, match="needs a model"):
        EngineSpec(name="x", kind="mlx")
    with pytest.raises(ValueError, match="needs a command"):
        EngineSpec(name="x", kind="command")
    a = EngineSpec(name="x", kind="command", command=["srv", "${PORT}"], env=(("K", "V"),))
    b = EngineSpec(name="x", kind="command", command=("srv", "${PORT}"), env={"K": "V"})
    assert a == b and hash(a) == hash(b)
    assert EngineSpec(name="x", kind="command", command="srv", ttl=5).launch_key() == EngineSpec(
        name="x", kind="command", command="srv", ttl=50).launch_key()
    with pytest.raises(ValueError, match="duplicate"):
        Supervisor([a, b])
    with pytest.raises(ValueError, match="max_loaded"):
        Supervisor([], max_loaded=0)
