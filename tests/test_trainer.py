"""trainer.py end to end on a small synthetic dataset: it learns, logs the
model card's lines, fills the run folder, resumes, stops on NaN, and refuses
user mistakes before training."""

import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import checkpoints
import evaluation
import input_ops
import model as model_lib
import train_loop
import trainer
from datasets import store

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The fields Huawei's ModelZoo scripts cut out of each line.
LINE = re.compile(
    r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\]  \[(train|val  ) step +(\d+)\] "
    r"Supervised loss: (-?\d+\.\d{5}) D loss: (-?\d+\.\d{5}) G loss: (-?\d+\.\d{5}) "
    r"Accuracy: (\d\.\d{5}) \((\d+\.\d{3}) sec/batch, (\d+\.\d{3}) instances/sec\) $")
MODEL_CARD_LINE = ("[2021-12-10 13:42:13,501]  [train step 44871] Supervised loss: 0.10064 "
                   "D loss: 0.55640 G loss: -0.00838 Accuracy: 1.00000 (0.021 sec/batch, "
                   "1546.661 instances/sec) ")


def step_lines(run_dir):
    with open(os.path.join(run_dir, "train.log")) as f:
        return [LINE.match(line.rstrip("\n")) for line in f if "step " in line and "] Sup" in line]


def test_model_card_line_matches_the_pattern():
    assert LINE.match(MODEL_CARD_LINE)
    assert train_loop.step_line("train", 44871, 0.10064, 0.5564, -0.00838, 1.0, 0.021, 32) \
        .startswith(" [train step 44871] Supervised loss: 0.10064 D loss: 0.55640 G loss: "
                    "-0.00838 Accuracy: 1.00000 (0.021 sec/batch, 1523.810 instances/sec) ")


@pytest.mark.slow
def test_short_training_learns_the_easy_classes(trained):
    run_dir, status = trained
    assert status == 0
    lines = step_lines(run_dir)
    assert lines and all(lines), "every step line must match the model card's format"
    val = [m for m in lines if m.group(1) == "val  "]
    train = [m for m in lines if m.group(1) == "train"]
    assert [int(m.group(2)) for m in val] == list(range(0, 300, 25))
    assert [int(m.group(2)) for m in train] == list(range(1, 300, 10))
    # The test batches are scored with batch norm in inference mode (moving
    # averages), as evaluation does. Step 0 is the untrained classifier:
    # about chance (0.1). The classes are trivially separable: a healthy run
    # scores 1.0 on every test batch from step 50 and on the whole test
    # split. (A run learning 10x too slowly, e.g. a learning rate off by
    # 10, still reaches 0.92 on the last three batches and 0.91 on the split.)
    assert float(val[0].group(6)) <= 0.35
    late = np.mean([float(m.group(6)) for m in val[-6:]])  # steps 150-275, 192 examples
    assert late >= 0.97 and late >= float(val[0].group(6)) + 0.6
    with open(os.path.join(run_dir, "config.json")) as f:
        saved = json.load(f)
    cache = input_ops.prepare_tfrecords(store.open_dataset(saved["dataset"]), progress=False)
    result, _, _ = evaluation.evaluate(os.path.join(run_dir, "model-300"),
                                       model_lib.config_of_run(saved), cache, "test", 100)
    assert result.num_examples == 200 and result.accuracy >= 0.97
    # D's loss, averaged over five logged steps at each end (one step's is
    # noisy): healthy, 3.74 at steps 1-41 and 0.72 at steps 251-291 (0.19 of
    # it); 10x too slow, 0.52 of it.
    d_loss = [float(m.group(4)) for m in train]
    assert np.mean(d_loss[-5:]) <= 0.35 * np.mean(d_loss[:5])


@pytest.mark.slow
def test_run_folder_holds_config_checkpoints_events_and_samples(trained, data):
    run_dir, _ = trained
    import json
    with open(os.path.join(run_dir, "config.json")) as f:
        config = json.load(f)
    assert config["image_shape"] == [16, 16, 1] and config["num_classes"] == 10
    assert config["max_training_steps"] == 300 and config["dataset"] == data["easy"]
    assert tf.train.latest_checkpoint(run_dir).endswith("model-300")
    for step in (100, 200, 300):
        assert os.path.isfile(os.path.join(run_dir, "model-%d.index" % step))
        with open(os.path.join(run_dir, "samples-%d.png" % step), "rb") as f:
            header = f.read(24)
        assert header[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")
        assert (width, height) == (8 * 16, 8 * 16)  # 64 samples in an 8 x 8 grid
        import h5py
        with h5py.File(os.path.join(run_dir, "g_img_%d.hdf5" % step), "r") as h5:
            assert h5["image"].shape == (64, 16, 16, 1)
    tags, steps = set(), set()
    for path in glob.glob(os.path.join(run_dir, "events.out.tfevents.*")):
        for event in tf.train.summary_iterator(path):
            for value in event.summary.value:
                tags.add(value.tag)
                steps.add(event.step)
    expected = {"loss/accuracy", "loss/GAN_loss", "loss/S_loss", "loss/d_loss",
                "loss/d_loss_real", "loss/d_loss_fake", "loss/g_loss", "loss/recon_weight"}
    assert expected <= tags
    # TF 1.x names image summaries <name>/image (as the reference's were).
    assert {"img/fake/image", "img/real/image"} <= tags
    assert {0, 50, 100, 250} <= steps


@pytest.mark.slow
def test_interrupted_run_saves_and_resumes_at_the_right_step(data, tmp_path):
    run_dir = str(tmp_path / "run")
    command = [sys.executable, "trainer.py", "--dataset", data["easy"], "--train_dir", run_dir,
               "--max_training_steps", "5000", "--log_step", "1", "--output_save_step", "1000"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    log_path = os.path.join(run_dir, "train.log")
    deadline = time.time() + 180
    while not (os.path.isfile(log_path) and "[train step   20]" in open(log_path).read()):
        if time.time() > deadline or process.poll() is not None:
            process.kill()
            pytest.fail("no [train step 20] line within 180 s (exit status %s): %s"
                        % (process.poll(), process.communicate()[1][-2000:]))
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    stopped = tf.train.latest_checkpoint(run_dir)
    assert stopped, err
    step = checkpoints.step_of(stopped)
    assert 20 <= step < 5000
    assert "resume with: python trainer.py --train_dir %s" % run_dir in err
    # Resume: the step count continues, and the saved flags are kept.
    assert trainer.main(["--train_dir", run_dir, "--dataset", data["easy"],
                         "--max_training_steps", str(step + 5)]) == 0
    assert tf.train.latest_checkpoint(run_dir).endswith("model-%d" % (step + 5))
    resumed = [m for m in step_lines(run_dir) if m.group(1) == "train"]
    numbers = [int(m.group(2)) for m in resumed]
    assert numbers[-5:] == list(range(step + 1, step + 6))  # --log_step 1 was kept
    with open(log_path) as f:
        assert "Resumed from %s at step %d" % (stopped, step) in f.read()


@pytest.mark.slow
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(trained, tmp_path, capsys):
    run_dir = str(tmp_path / "copy")
    shutil.copytree(trained[0], run_dir)
    status = trainer.main(["--train_dir", run_dir, "--max_training_steps", "340",
                           "--learning_rate_d", "1e30", "--learning_rate_g", "1e30"])
    assert status == 1
    err = capsys.readouterr().err
    # Huge but finite first, or NaN at once: either stops it.
    assert re.search(r"the [DG] loss (became NaN or Inf|passed 10000) at step 3\d\d", err), err
    assert "stopping without saving. Keep %s: the newest checkpoint from before the " \
           "trouble. Try lower" % os.path.join(run_dir, "model-300") in err
    assert tf.train.latest_checkpoint(run_dir).endswith("model-300")


@pytest.mark.slow
def test_checkpoint_initialises_a_new_run(trained, tmp_path, data, capsys):
    new_dir = str(tmp_path / "new")
    assert trainer.main(["--dataset", data["easy"], "--train_dir", new_dir,
                         "--checkpoint", trained[0], "--max_training_steps", "2"]) == 0
    err = capsys.readouterr().err
    assert "Initialised D and G from %s" % os.path.join(trained[0], "model-300") in err
    assert tf.train.latest_checkpoint(new_dir).endswith("model-2")


@pytest.mark.slow
@pytest.mark.parametrize("case", ["missing dataset", "other shape", "model flag", "batch",
                                  "no checkpoint", "checkpoint shape", "no gpu"])
def test_user_mistakes_stop_before_training_with_a_message(case, trained, data, tmp_path,
                                                           capsys):
    run_dir = trained[0]
    args, expected = {
        "missing dataset": (["--dataset", "SVHN", "--data_dir", str(tmp_path)],
                            "python download.py --dataset SVHN --data_dir %s" % tmp_path),
        "other shape": (["--dataset", data["rgb"], "--train_dir", run_dir],
                        "was trained on %s (16x16x1, 10 classes); rgb is 8x8x3, 10 classes"
                        % data["easy"]),
        "model flag": (["--dataset", data["easy"], "--train_dir", run_dir,
                        "--deconv_type", "nn", "--max_training_steps", "400"],
                       "was trained with --deconv_type bilinear"),
        "batch": (["--dataset", data["rgb"], "--batch_size", "64",
                   "--train_dir", str(tmp_path / "b")],
                  "--batch_size 64 is larger than the 40 examples of the test split"),
        "no checkpoint": (["--dataset", data["easy"], "--checkpoint", str(tmp_path / "nope"),
                           "--train_dir", str(tmp_path / "c")], "not found: expected"),
        "checkpoint shape": (["--dataset", data["rgb"], "--checkpoint", run_dir,
                              "--train_dir", str(tmp_path / "d")],
                             "does not fit this model"),
        "no gpu": (["--dataset", data["easy"], "--device", "gpu",
                    "--train_dir", str(tmp_path / "e")], "TensorFlow sees no GPU"),
    }[case]
    before = sorted(os.listdir(run_dir))
    assert trainer.main(args) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err
    assert sorted(os.listdir(run_dir)) == before
    assert not set(os.listdir(str(tmp_path))) & {"b", "c", "d", "e"}  # no run folder made




def _start_trainer(run_dir, data):
    """trainer.py in a subprocess, a step per log line, far from its last step."""
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep +
               os.environ.get("PATH", ""))
    return subprocess.Popen(
        [sys.executable, "trainer.py", "--dataset", data["easy"], "--train_dir", run_dir,
         "--max_training_steps", "100000", "--log_step", "1", "--output_save_step", "100000"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_in_log(process, run_dir, text, timeout=120):
    """Polls train.log (fast) until it holds `text`; returns the log."""
    log_path = os.path.join(run_dir, "train.log")
    deadline = time.time() + timeout
    while True:
        if os.path.isfile(log_path):
            with open(log_path) as f:
                found = f.read()
            if text in found:
                return found
        if time.time() > deadline or process.poll() is not None:
            process.kill()
            pytest.fail("no %r in train.log within %d s (exit status %s): %s"
                        % (text, timeout, process.poll(), process.communicate()[1][-2000:]))
        time.sleep(0.002)


@pytest.mark.slow
def test_sigterm_stops_after_the_current_step_and_saves(data, tmp_path):
    """What a scheduler's SIGTERM gets: the step under way finishes, a
    checkpoint of it is saved, and the trainer exits with status 143
    (128 + SIGTERM) saying how to resume."""
    run_dir = str(tmp_path / "run")
    process = _start_trainer(run_dir, data)
    _wait_in_log(process, run_dir, "[train step    3]")
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err[-3000:]
    with open(os.path.join(run_dir, "train.log")) as f:
        text = f.read()
    received = text.index("SIGTERM received: saving a checkpoint after this step, then stopping")
    steps = [int(s) for s in re.findall(r"\[train step +(\d+)\]", text)]
    after = [int(s) for s in re.findall(r"\[train step +(\d+)\]", text[received:])]
    assert steps == list(range(1, len(steps) + 1)) and steps[-1] >= 3
    # at most the step under way when the signal came, and the line before it
    # that waited for its numbers (step_log)
    assert len(after) <= 2
    last = steps[-1]
    saved = os.path.join(run_dir, "model-%d" % last)
    assert tf.train.latest_checkpoint(run_dir) == saved
    assert tf.train.load_checkpoint(saved).get_tensor("global_step") == last
    assert "Saved checkpoint %s and samples-%d.png" % (saved, last) in text[received:]
    assert "Stopped at step %d; resume with: python trainer.py --train_dir %s" % (last, run_dir) \
        in text
    assert "Traceback" not in err


@pytest.mark.slow
def test_a_second_ctrl_c_stops_at_once(data, tmp_path):
    """Ctrl-C, then Ctrl-C again while the trainer is stopping ("press Ctrl-C
    again to stop at once"): it does not finish stopping (no "Stopped at
    step" line, no exit status 130 of an orderly stop) but ends as Python
    ends on a Ctrl-C, by SIGINT, promptly."""
    run_dir = str(tmp_path / "run")
    process = _start_trainer(run_dir, data)
    _wait_in_log(process, run_dir, "[train step    3]")
    process.send_signal(signal.SIGINT)
    # The handler has run once it logs this; the save after the step is still ahead.
    _wait_in_log(process, run_dir, "SIGINT received: saving a checkpoint after this step, then "
                                   "stopping (press Ctrl-C again to stop at once)")
    process.send_signal(signal.SIGINT)
    second = time.time()
    _, err = process.communicate(timeout=60)
    took = time.time() - second
    assert process.returncode == -signal.SIGINT, (process.returncode, err[-3000:])
    assert "KeyboardInterrupt" in err
    with open(os.path.join(run_dir, "train.log")) as f:
        text = f.read()
    assert "Stopped at step" not in text and "Training finished" not in text
    assert took < 20, took
