"""The options the router starts its MLX workers with: what the config may set, and what a model's `engine_args`
may say, are what the worker's own command line accepts."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from engines.supervisor.launch import plan_launch
from engines.worker.cli import add_arguments
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
