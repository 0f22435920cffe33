"""The worker's command line refuses, in one line and with exit status 2, a `--model` it could never load, before
it listens or loads anything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engines.worker.cli import main, model_problem

ROOT = Path(__file__).resolve().parents[2]


def _run(capsys: pytest.CaptureFixture[str], model: str) -> tuple[int, str]:
    code = main(["--model", model, "--port", "0"])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("files", "said"), [
    ({}, "holds no config.json"),
    ({"README.md": "# notes"}, "holds no config.json"),
    ({"config.json": "{}"}, "holds no model*.safetensors weights"),
    ({"config.json": "{}", "weights.bin": ""}, "holds no model*.safetensors weights"),
])
def test_a_folder_without_a_model_is_one_line(files: dict[str, str], said: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A folder that exists but holds no model was loaded on the model thread: mlx-lm's FileNotFoundError was
    logged with its traceback, after the worker listened, and the worker exited 1."""
    folder = tmp_path / "model"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    code, err = _run(capsys, str(folder))
    assert code == 2 and err.splitlines() == [f"agentgate engine: not a model folder: {folder} {said}"], err
    assert "Traceback" not in err and "listening" not in err


def test_a_file_given_as_the_model_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "model.safetensors"
    path.write_text("")
    code, err = _run(capsys, str(path))
    assert code == 2 and err.splitlines() == [f"agentgate engine: not a model folder: {path} is a file"], err


def test_a_model_folder_passes(tiny_models: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    assert model_problem(str(tiny_models["random"])) is None
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    assert model_problem("mlx-community/Some-Model-4bit") is None  # a hub id, found or fetched by the hub library


def test_an_empty_model_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """`--model ''` is the current folder to pathlib: it was loaded as one."""
    code, err = _run(capsys, "")
    assert code == 2 and err.splitlines() == ["agentgate engine: --model is empty: give a model folder, a Hugging "
                                              "Face id or a tiny: spec"], err


def test_a_kv_dir_that_is_a_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--kv-dir` naming a file started the worker with the disk cache off and a warning in the log, the option the
    user gave set aside; it is refused before listening, as a missing model folder is."""
    path = tmp_path / "kv"
    path.write_text("")
    for kv_dir in (path, path / "sub"):
        code = main(["--model", "tiny:random", "--port", "0", "--kv-dir", str(kv_dir)])
        err = capsys.readouterr().err
        assert code == 2 and err.splitlines() == [f"agentgate engine: --kv-dir {kv_dir}: {path} is a file, not a "
                                                  "folder"], err


@pytest.mark.parametrize(("config", "said"), [
    ("{", "config.json is not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2"),
    ("[1, 2]", "config.json is not a JSON object"),
])
def test_a_config_json_mlx_lm_cannot_read_is_one_line(config: str, said: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """A model folder whose config.json does not parse was loaded: mlx-lm's JSONDecodeError was logged with its
    traceback after the worker listened, and the worker exited 1."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(config)
    (folder / "model.safetensors").write_text("")
    code, err = _run(capsys, str(folder))
    assert code == 2 and err.splitlines() == [f"agentgate engine: not a model folder: {folder} {said}"], err


def test_a_hub_model_missing_offline_is_one_line(tmp_path: Path) -> None:
    """`--model org/name` with HF_HUB_OFFLINE set and the model not in the hub cache listened, then logged the hub
    library's LocalEntryNotFoundError with its traceback and exited 1."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    env.pop("HF_HUB_CACHE", None)
    proc = subprocess.run([sys.executable, "-m", "engines", "--model", "mlx-community/No-Such-Model-4bit", "--port",
                           "0"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120, check=False)
    said = "agentgate engine: mlx-community/No-Such-Model-4bit is not in the local hub cache and HF_HUB_OFFLINE is set"
    assert proc.returncode == 2 and said in proc.stderr.splitlines(), proc.stderr
    assert "Traceback" not in proc.stderr and "listening" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("variable", ["AGENTGATE_CACHE", "XDG_CACHE_HOME", "HOME"])
def test_a_tiny_model_its_cache_cannot_hold_is_one_line(variable: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """With the cache folder unwritable (here: a file where a folder of its path should be), `tiny:demo` listened,
    then failed building its model on the model thread: the NotADirectoryError was logged with its traceback and the
    worker exited 1. It is refused before listening, naming the folder and the variable that moves it."""
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    for name in ("AGENTGATE_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, str(blocker / "sub"))
    folder = {"AGENTGATE_CACHE": blocker / "sub" / "tiny", "XDG_CACHE_HOME": blocker / "sub" / "agentgate" / "tiny",
              "HOME": blocker / "sub" / ".cache" / "agentgate" / "tiny"}[variable]
    code, err = _run(capsys, "tiny:demo")
    assert code == 2 and err.splitlines() == [
        f"agentgate engine: cannot build tiny:demo: its cache folder {folder} cannot be created ({blocker} is a "
        "file, not a folder); set AGENTGATE_CACHE to a writable folder"], err


async def test_a_tiny_build_failing_on_the_model_thread_is_logged_in_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A cache folder that could not be written once the worker listened (it was checked before) failed the load
    with the file system's error and its traceback in the log."""
    from engines.worker.server import WorkerSettings, serve, wait_ready

    blocker = tmp_path / "blocker"
    blocker.write_text("")
    monkeypatch.setenv("AGENTGATE_CACHE", str(blocker / "cache"))
    worker = await serve(WorkerSettings(model="tiny:random:4"), port=0)
    try:
        with pytest.raises(RuntimeError, match=r"cannot build tiny:random:4 in .*set AGENTGATE_CACHE"):
            await wait_ready(worker.app)
    finally:
        await worker.close()
    failed = [r for r in caplog.records if r.getMessage().startswith("loading the model failed")]
    assert len(failed) == 1 and failed[0].exc_info is None and "AGENTGATE_CACHE" in failed[0].getMessage()


@pytest.mark.parametrize(("argv", "said"), [
    (["--model", "/no/such/model"], "no such model folder: /no/such/model"),
    (["--model", "tiny:nope"], "unknown tiny model spec 'tiny:nope'"),
    (["--model", "tiny:demo", "--tool-format", "nope"], "unknown --tool-format 'nope'"),
    (["--model", "tiny:demo", "--kv-dir", "/dev/null/kv"], "--kv-dir /dev/null/kv: /dev/null is a file"),
])
def test_a_refused_start_imports_neither_mlx_nor_the_server(argv: list[str], said: str) -> None:
    """What the worker refuses before listening (its model, --tool-format, --kv-dir) was checked after it had
    imported its HTTP server, mlx-lm and transformers, a second and more of a start that was to print one line."""
    shown = ("mlx.core", "mlx_lm", "transformers", "engines.worker.server")
    code = (f"import sys; from engines.worker.cli import main; code = main({[*argv, '--port', '0']!r}); "
            f"print(*[m for m in {shown!r} if m in sys.modules]); sys.exit(code)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          check=False, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 2 and f"agentgate engine: {said}" in proc.stderr, proc.stderr
    assert proc.stdout.split() == [], proc.stdout
