"""SIGKILL anywhere: a training run killed at random moments (during start-up,
between steps, in the middle of a checkpoint write) and resumed each time
finishes with exactly the weights of a run never interrupted and has logged
its lines, resumes each time from the newest checkpoint on disk, and leaves no
partial files and no held lock behind: for the paper's recipe (noise layers,
G's z, the moving average) and the reference's (G's z, batch norm)."""

import fcntl
import os
import random
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import checkpoints
from conftest import RESUMABLE_RUNS, RESUMABLE_STEPS, checkpoint_values, train_lines
from names import LOCK_FILE

pytestmark = pytest.mark.slow  # every test here trains or runs commands

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = RESUMABLE_STEPS  # a checkpoint every other step makes kills during a save likely
KILLS = {"paper": ["mid-save", "between steps", "start-up", "mid-save"],
         "reference": ["mid-save", "between steps", "mid-save"]}


def writing(name):
    """A file TensorFlow's Saver writes and then renames."""
    return name.startswith("model-") and (".tempstate" in name or ".tmp" in name)


def listing(run_dir):
    return os.listdir(run_dir) if os.path.isdir(run_dir) else []


def trained_steps(text):
    return [int(s) for s in re.findall(r"\[train step +(\d+)\]", text)]


def saved_steps(text):
    return [int(s) for s in re.findall(r"Saved checkpoint \S+model-(\d+) ", text)]


def wait_for(condition, process, timeout=120):
    """Polls `condition` as fast as it can; False if the process ended first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.001)
    raise AssertionError("the trainer neither got there nor ended in %d s" % timeout)


def log_text(run_dir):
    path = os.path.join(run_dir, "train.log")
    if not os.path.isfile(path):
        return ""
    with open(path) as f:
        return f.read()


def kill_at(mode, rng, process, run_dir):
    """Kills the trainer at a moment chosen by `mode`; returns what the run
    folder held at that moment (None if the run ended first)."""
    if mode == "start-up":  # before or while the graph is built and restored
        time.sleep(rng.uniform(0.5, 4.0))
    elif mode == "mid-save":  # TensorFlow's temporary checkpoint files exist
        old = set(listing(run_dir))  # an earlier kill's, until the trainer removes them
        if not wait_for(lambda: any(writing(n) for n in set(listing(run_dir)) - old),
                        process):
            return None
    else:  # a random moment between steps
        seen = len(trained_steps(log_text(run_dir)))
        if not wait_for(lambda: len(trained_steps(log_text(run_dir))) > seen + 2, process):
            return None
        time.sleep(rng.uniform(0.0, 0.2))
    if process.poll() is not None:
        return None
    process.send_signal(signal.SIGKILL)
    process.wait()
    return listing(run_dir)


def lock_is_free(run_dir):
    path = os.path.join(run_dir, LOCK_FILE)
    if not os.path.isfile(path):
        return True
    with open(path) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
    return True


@pytest.mark.parametrize("recipe", sorted(KILLS))
def test_sigkill_at_random_moments_loses_nothing_past_the_last_save(recipe, data, uninterrupted,
                                                                    tmp_path):
    run_dir = str(tmp_path / "killed")
    command = [sys.executable, os.path.join(ROOT, "trainer.py"), "--dataset", data["easy"],
               "--train_dir", run_dir, "--max_training_steps", str(STEPS)] + RESUMABLE_RUNS[recipe]
    rng = random.Random(15)
    modes = KILLS[recipe]
    kills, mid_save, runs = [], 0, 0
    resume_points = []
    for mode in modes + [None]:
        before = log_text(run_dir)
        newest, _ = checkpoints.newest_loadable(run_dir) if os.path.isdir(run_dir) else \
            (None, [])
        resume_points.append(checkpoints.step_of(newest) if newest else 0)
        with open(str(tmp_path / ("stderr%d" % runs)), "w") as err:
            process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL,
                                       stderr=err)
        runs += 1
        if mode is None:
            assert process.wait(300) == 0, open(err.name).read()
            break
        held = kill_at(mode, rng, process, run_dir)
        if held is None:  # finished before the kill: nothing to test any more
            break
        kills.append(mode)
        this_run = log_text(run_dir)[len(before):]
        if mode == "mid-save" and any(writing(n) for n in held):  # written, not renamed
            mid_save += 1
        # The kernel releases the flock of a killed process.
        assert lock_is_free(run_dir)
        # Whatever was saved and logged before the kill is kept.
        newest, _ = checkpoints.newest_loadable(run_dir)
        saved = saved_steps(this_run)
        if saved:
            assert newest is not None and checkpoints.step_of(newest) >= saved[-1]
        steps = trained_steps(this_run)
        if newest is not None and steps:
            assert checkpoints.step_of(newest) <= steps[-1]
    assert len(kills) >= len(modes) - 1, kills  # the run outlived most of the kills
    assert mid_save >= 1, "no kill hit a checkpoint write"

    text = log_text(run_dir)
    # Each process trained from the step it resumed at, without a gap or a
    # repeat, and resumed at the newest checkpoint the kill left.
    segments = re.split(r"Run folder: ", text)[1:]
    assert len(segments) >= 2
    for segment in segments:
        steps = trained_steps(segment)
        resumed = re.search(r"Resumed from \S+model-(\d+) at step (\d+)", segment)
        start = int(resumed.group(2)) if resumed else 0
        assert start in resume_points
        if steps:
            assert steps == list(range(start + 1, steps[-1] + 1))
    assert trained_steps(segments[-1])[-1] == STEPS
    assert "Training finished at step %d" % STEPS in segments[-1]
    # Nothing partial is left, and the lock is free.
    leftovers = [n for n in listing(run_dir) if writing(n) or n.endswith(".tmp")
                 or n.startswith("checkpoint.tmp")]
    assert not leftovers, leftovers
    assert lock_is_free(run_dir)
    assert all(checkpoints.unreadable(p) is None for p in checkpoints.saved_up_to(run_dir, STEPS))

    # The same variables, bit for bit, as a run never interrupted (D's and G's
    # weights, batch-norm statistics, Adam's moments, moving averages), and
    # every step's line as it printed them.
    whole = uninterrupted(recipe)
    a = checkpoint_values(os.path.join(whole, "model-%d" % STEPS))
    b = checkpoint_values(os.path.join(run_dir, "model-%d" % STEPS))
    assert sorted(a) == sorted(b) and len(a) > 20
    different = [n for n in a if not np.array_equal(a[n], b[n])]
    assert not different, different
    assert train_lines(run_dir) == train_lines(whole)
