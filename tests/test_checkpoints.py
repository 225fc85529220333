"""Finding checkpoints: a run folder named by a relative or an absolute
path, here or after it was moved, is the same run to every command."""

import os
import shutil
import subprocess
import sys

import pytest

import checkpoints
from config import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def moved(trained, tmp_path, monkeypatch):
    """The session's 300-step run, moved to <tmp>/elsewhere/run, with the
    current folder <tmp>."""
    run_dir, status = trained
    assert status == 0
    target = tmp_path / "elsewhere" / "run"
    shutil.copytree(run_dir, str(target))
    monkeypatch.chdir(str(tmp_path))
    return target


def test_checkpoint_file_holds_relative_paths(moved):
    with open(str(moved / "checkpoint")) as f:
        state = f.read()
    assert '"model-300"' in state and os.sep + "model-300" not in state


@pytest.mark.parametrize("relative", [True, False])
def test_a_run_folder_resolves_to_its_newest_checkpoint(moved, relative):
    folder = "elsewhere/run" if relative else str(moved)
    assert checkpoints.newest_complete(folder) == os.path.join(folder, "model-300")
    assert checkpoints.resolve(folder) == os.path.join(folder, "model-300")
    assert checkpoints.resolve(folder + "/model-200") == folder + "/model-200"


def test_an_incomplete_newest_checkpoint_is_passed_over(moved):
    for name in os.listdir(str(moved)):
        if name.startswith("model-300.data-"):
            os.remove(str(moved / name))
    assert checkpoints.resolve("elsewhere/run") == "elsewhere/run/model-200"
    with pytest.raises(ConfigError, match="checkpoint elsewhere/run/model-300 not found"):
        checkpoints.resolve("elsewhere/run/model-300")


def test_commands_take_the_moved_folder_by_its_relative_path(moved, tmp_path):
    def run(*args):
        result = subprocess.run([sys.executable] + list(args), cwd=str(tmp_path),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                universal_newlines=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        return result
    run(os.path.join(ROOT, "evaler.py"), "--checkpoint", "elsewhere/run",
        "--samples_per_class", "0")
    assert (moved / "eval-300-test.json").is_file()
    run(os.path.join(ROOT, "export.py"), "--checkpoint", "elsewhere/run", "--output", "m.pb")
    assert (tmp_path / "m.pb").is_file()
    result = run(os.path.join(ROOT, "trainer.py"), "--train_dir", "elsewhere/run",
                 "--max_training_steps", "305", "--log_step", "1")
    assert "resuming from elsewhere/run/model-300" in result.stderr
    assert (moved / "model-305.index").is_file()
