"""Finding checkpoints: a run folder named by a relative or an absolute
path, here or after it was moved, is the same run to every command."""

import json
import os
import shutil
import subprocess
import sys

import pytest

import checkpoints
from errors import ConfigError

pytestmark = pytest.mark.slow  # every test here trains or runs commands

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
    assert checkpoints.newest_loadable(folder) == (os.path.join(folder, "model-300"), [])
    assert checkpoints.resolve(folder) == os.path.join(folder, "model-300")
    assert checkpoints.resolve(folder + "/model-200") == folder + "/model-200"


def test_an_incomplete_newest_checkpoint_is_passed_over(moved):
    for name in os.listdir(str(moved)):
        if name.startswith("model-300.data-"):
            os.remove(str(moved / name))
    assert checkpoints.resolve("elsewhere/run") == "elsewhere/run/model-200"
    with pytest.raises(ConfigError, match="checkpoint elsewhere/run/model-300 not found"):
        checkpoints.resolve("elsewhere/run/model-300")


def test_commands_take_the_moved_folder_by_its_relative_path(moved, tmp_path, capsys):
    """evaler, export and trainer (their main(), as the command line calls
    it) from another folder than the run's or the repository's."""
    import evaler
    import export
    import trainer
    assert evaler.main(["--checkpoint", "elsewhere/run", "--samples_per_class", "0"]) == 0
    assert json.load(open(str(moved / "eval-300-test.json")))["checkpoint"] == \
        "elsewhere/run/model-300"
    assert export.main(["--checkpoint", "elsewhere/run", "--output", "m.pb"]) == 0
    assert (tmp_path / "m.pb").is_file()
    assert trainer.main(["--train_dir", "elsewhere/run", "--max_training_steps", "305",
                         "--log_step", "1"]) == 0
    assert "resuming from elsewhere/run/model-300" in capsys.readouterr().err
    assert (moved / "model-305.index").is_file()


def _cut(path, keep=0.5):
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[:int(len(data) * keep)])


DAMAGE = {
    "data cut short": lambda run: _cut(str(run / "model-300.data-00000-of-00001")),
    "index cut short": lambda run: _cut(str(run / "model-300.index")),
    "index emptied": lambda run: _cut(str(run / "model-300.index"), 0),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_newest_checkpoint_is_skipped_loudly(damage, moved, caplog):
    DAMAGE[damage](moved)
    assert checkpoints.unreadable("elsewhere/run/model-300")
    assert checkpoints.unreadable("elsewhere/run/model-200") is None
    assert checkpoints.resolve("elsewhere/run") == "elsewhere/run/model-200"
    assert "Skipping checkpoint elsewhere/run/model-300: it does not load" in caplog.text
    with pytest.raises(ConfigError, match="checkpoint elsewhere/run/model-300 does not load"):
        checkpoints.resolve("elsewhere/run/model-300")


def test_a_garbled_checkpoint_file_still_finds_the_checkpoints(moved):
    with open(str(moved / "checkpoint"), "w") as f:
        f.write("model_checkpoint_path: \"model-3")  # cut mid-write
    assert checkpoints.resolve("elsewhere/run") == "elsewhere/run/model-300"


def test_trainer_resumes_from_the_newest_checkpoint_that_loads(moved, capsys):
    import trainer
    DAMAGE["data cut short"](moved)
    assert trainer.main(["--train_dir", "elsewhere/run", "--max_training_steps", "210",
                         "--log_step", "5"]) == 0
    err = capsys.readouterr().err
    assert "Skipping checkpoint elsewhere/run/model-300: it does not load" in err
    assert "resuming from elsewhere/run/model-200" in err and "Traceback" not in err
    assert (moved / "model-210.index").is_file()
    # The damaged checkpoint, newer than the resume point, is gone, and said so.
    assert "Removed what an interrupted save left in elsewhere/run: model-300" in err
    assert not [n for n in os.listdir(str(moved)) if n.startswith("model-300")]
    assert checkpoints.resolve("elsewhere/run") == "elsewhere/run/model-210"


def test_max_to_keep_counts_the_checkpoints_a_resumed_run_started_with(moved):
    import trainer
    assert trainer.main(["--train_dir", "elsewhere/run", "--max_training_steps", "320",
                         "--output_save_step", "10", "--max_to_keep", "3"]) == 0
    kept = sorted(n for n in os.listdir(str(moved)) if n.endswith(".index"))
    assert kept == ["model-300.index", "model-310.index", "model-320.index"]


def test_no_checkpoint_that_loads_is_a_clear_error(moved, capsys):
    import evaler
    import trainer
    for step in (100, 200, 300):
        _cut(str(moved / ("model-%d.data-00000-of-00001" % step)))
    before = sorted(os.listdir(str(moved)))
    assert trainer.main(["--train_dir", "elsewhere/run", "--max_training_steps", "400"]) == 2
    assert evaler.main(["--checkpoint", "elsewhere/run"]) == 2
    err = capsys.readouterr().err
    assert err.count("no checkpoint in elsewhere/run loads: model-300: ") == 2
    assert "Traceback" not in err
    assert sorted(os.listdir(str(moved))) == before


def test_a_full_disk_while_saving_keeps_the_last_checkpoint(moved, tmp_path):
    """A file-size limit (RLIMIT_FSIZE) stands in for a full disk: the
    checkpoint of step 305 cannot be written (its data file is ~80 MB)."""
    import resource

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (20 * 2 ** 20, 20 * 2 ** 20))

    command = [sys.executable, os.path.join(ROOT, "trainer.py"), "--train_dir", "elsewhere/run",
               "--max_training_steps", "310", "--output_save_step", "5"]
    full = subprocess.run(command, cwd=str(tmp_path), preexec_fn=limit_file_size,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=600)
    assert full.returncode == 1, full.stderr[-3000:]
    assert "Could not save the checkpoint of step 305 in elsewhere/run" in full.stderr
    assert "the disk is full or a file-size limit was reached" in full.stderr
    assert "the newest usable checkpoint is elsewhere/run/model-300" in full.stderr
    assert "Traceback" not in full.stderr
    assert not [n for n in os.listdir(str(moved)) if n.startswith("model-305")]
    assert checkpoints.resolve("elsewhere/run") == "elsewhere/run/model-300"
    freed = subprocess.run(command, cwd=str(tmp_path), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True, timeout=600)
    assert freed.returncode == 0, freed.stderr[-3000:]
    assert "resuming from elsewhere/run/model-300" in freed.stderr
    assert (moved / "model-310.index").is_file()
