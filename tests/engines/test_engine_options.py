"""The options the router starts its MLX workers with: what the config may set, and what a model's `engine_args`
may say, are what the worker's own command line accepts."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from engines.supervisor.launch import plan_launch
from engines.worker.cli import add_arguments, engine_args_problem, main
from router.cli import build_parser
from router.config import ConfigError, parse_config

MODEL = "models:\n  - {name: a, engine: mlx, model: 'tiny:demo'}\n"
MOST_MB = 2**30  # the worker's --max-body-mb refuses more


def _worker_options(config: str, tmp_path: Path) -> argparse.Namespace:
    spec = parse_config(config).models[0].engine
    assert spec is not None
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(plan_launch(spec, runtime_dir=tmp_path, python="/py").argv[3:])


@pytest.mark.parametrize("value", [MOST_MB + 1, "1.0e+12", "1.0e+308"])
def test_a_body_limit_no_worker_accepts_is_refused_at_load(value: object) -> None:
    """`server.max_body_mb` past 2^30 MiB was loaded, and every MLX engine then failed to start on its
    `--max-body-mb` (1e308 was an OverflowError); now the config is refused, naming the key."""
    with pytest.raises(ConfigError) as err:
        parse_config(f"server: {{max_body_mb: {value}}}\n" + MODEL)
    assert "server.max_body_mb" in str(err.value)


def test_the_largest_body_limit_reaches_the_worker(tmp_path: Path) -> None:
    assert _worker_options(f"server: {{max_body_mb: {MOST_MB}}}\n" + MODEL, tmp_path).max_body_bytes == 2**50


@pytest.mark.parametrize("args", [["--max-body-m", "5"], ["--max-body-m=5"], ["--kv-d", "/elsewhere"],
                                  ["--max-body-c", "7"]])
def test_an_abbreviated_option_is_refused_at_load(args: list[str]) -> None:
    """argparse took `--max-body-m 5` as `--max-body-mb`, which the launch did not see as given: the worker got both
    options, and the entry's limit lost to the router's (or the router's to the entry's, by order)."""
    problem = engine_args_problem(args)
    assert problem is not None and args[0].split("=")[0] in problem
    quoted = ", ".join(f"'{a}'" for a in args)
    with pytest.raises(ConfigError) as err:
        parse_config(f"models:\n  - {{name: a, engine: mlx, model: 'tiny:demo', engine_args: [{quoted}]}}\n")
    assert args[0].split("=")[0] in str(err.value)
    assert engine_args_problem(["--max-body-mb", "5", "--kv-dir", "/elsewhere", "--max-body-containers", "7"]) is None


def test_the_worker_command_line_refuses_an_abbreviated_option(capsys: pytest.CaptureFixture[str]) -> None:
    """Refused by argparse, before anything runs (--socket with --host would stop it next, were it accepted)."""
    with pytest.raises(SystemExit) as done:
        main(["--model", "tiny:demo", "--socket", "/nowhere/w.sock", "--host", "::1", "--max-body-m", "5"])
    assert done.value.code == 2 and "unrecognized arguments: --max-body-m 5" in capsys.readouterr().err


def test_agentgate_engine_refuses_an_abbreviated_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(["engine", "--model", "tiny:demo", "--max-body-m", "5"])
    assert done.value.code == 2 and "--max-body-m" in capsys.readouterr().err
