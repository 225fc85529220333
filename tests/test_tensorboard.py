"""The real `tensorboard` shows what trainer.py writes.

What a user relies on: after `pip install -r requirements.txt`, training and
then `tensorboard --logdir <folder of runs>` lists the run, its loss/...
scalars at the steps --write_summary_step wrote them with the values the
event file holds, and the img/fake and img/real grids as PNGs (tags
img/fake/image and img/real/image: TF 1.x names image summaries so). This test
trains a short run on a tiny MNIST in the real file format, starts the
installed tensorboard on loopback with its default data loading, and reads
all of that over TensorBoard's HTTP API (the routes the web page uses),
cross-checked against the event file read with summary_iterator.
"""

import glob
import io
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
import tensorflow.compat.v1 as tf
from PIL import Image

import download
import fakedata
import trainer

pytestmark = pytest.mark.slow  # every test here trains or runs commands

STEPS, SUMMARY_STEP, BATCH = 20, 10, 16
RUN = "mnist"  # the run folder's name under --logdir, which TensorBoard calls the run
DEADLINE = 120  # seconds for TensorBoard to start and load the run (it imports TensorFlow)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Loopback only: never through a proxy the environment may name.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def tensorboard_executable():
    """The tensorboard installed beside this Python, else the one on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "tensorboard")
    found = shutil.which(beside) or shutil.which("tensorboard")
    assert found, ("no tensorboard executable beside %s or on PATH: "
                   "pip install -r requirements.txt" % sys.executable)
    return found


def event_file_contents(run_dir):
    """({scalar tag: [(step, wall time, value)]}, {image tag: {step: Summary.Image}})
    read from the run's event files with TensorFlow alone."""
    scalars, images = {}, {}
    for path in sorted(glob.glob(os.path.join(run_dir, "events.out.tfevents.*"))):
        for event in tf.train.summary_iterator(path):
            for value in event.summary.value:
                kind = value.WhichOneof("value")
                if kind == "simple_value":
                    scalars.setdefault(value.tag, []).append(
                        (event.step, event.wall_time, value.simple_value))
                elif kind == "image":
                    images.setdefault(value.tag, {})[event.step] = value.image
    return scalars, images


class TensorBoard(object):
    """`tensorboard --logdir <logdir>` on 127.0.0.1 at a port the OS picks;
    stopped (with its data server) on exit."""

    def __init__(self, logdir, work_dir):
        self.command = [tensorboard_executable(), "--logdir", logdir, "--host", "127.0.0.1",
                        "--port", "0", "--reload_interval", "1"]
        self.log_path = os.path.join(work_dir, "tensorboard.log")
        # TMPDIR: its .tensorboard-info files go to the test's folder.
        self.env = dict(os.environ, TMPDIR=work_dir)
        self.process, self.url = None, None

    def stderr(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def fail(self, what):
        raise AssertionError("%s\n$ %s\n%s" % (what, " ".join(self.command), self.stderr()))

    def __enter__(self):
        with open(self.log_path, "wb") as log:
            # Its own process group, so that stopping it also stops the data
            # server it starts.
            self.process = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, env=self.env,
                                            start_new_session=True)
        self.deadline = time.time() + DEADLINE
        try:
            while True:
                match = re.search(r"TensorBoard \S+ at (http://127\.0\.0\.1:\d+/)", self.stderr())
                if match:
                    self.url = match.group(1)
                    return self
                if self.process.poll() is not None:
                    self.fail("tensorboard exited with status %d before serving"
                              % self.process.returncode)
                if time.time() > self.deadline:
                    self.fail("tensorboard did not start serving within %d s" % DEADLINE)
                time.sleep(0.2)
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(30)

    def get(self, route, **query):
        """The body of GET <route>?<query> (bytes)."""
        url = self.url + route.lstrip("/")
        if query:
            url += "?" + urllib.parse.urlencode(query)
        with OPENER.open(url, timeout=30) as response:
            return response.read()

    def json(self, route, **query):
        return json.loads(self.get(route, **query))

    def wait_for(self, route, ready, **query):
        """GET route as JSON until ready(body) (TensorBoard loads runs in the
        background); fail with its output if the deadline passes first."""
        last = None
        while True:
            try:
                last = self.json(route, **query)
                if ready(last):
                    return last
            except (urllib.error.URLError, ValueError) as e:  # not loaded yet: 400/500
                last = e
            if self.process.poll() is not None:
                self.fail("tensorboard exited with status %d" % self.process.returncode)
            if time.time() > self.deadline:
                self.fail("GET %s?%s did not answer as expected within %d s; it last "
                          "answered %r" % (route, urllib.parse.urlencode(query), DEADLINE, last))
            time.sleep(0.3)


def test_tensorboard_serves_the_runs_scalars_and_images(tmp_path):
    started = time.time()
    source = tmp_path / "source"
    source.mkdir()
    fakedata.make_mnist_files(str(source))
    data_dir = str(tmp_path / "data")
    assert download.main(["--dataset", "MNIST", "--data_dir", data_dir, "--source", str(source),
                          "--skip_checksum", "--no_progress"]) == 0
    logdir = str(tmp_path / "runs")
    run_dir = os.path.join(logdir, RUN)
    assert trainer.main(["--dataset", "MNIST", "--data_dir", data_dir, "--train_dir", run_dir,
                         "--max_training_steps", str(STEPS), "--batch_size", str(BATCH),
                         "--write_summary_step", str(SUMMARY_STEP), "--log_step", "10",
                         "--test_sample_step", "10", "--output_save_step", str(STEPS)]) == 0
    trained = time.time()

    summary_steps = list(range(0, STEPS, SUMMARY_STEP))  # [0, 10]
    scalars, images = event_file_contents(run_dir)
    assert {"loss/d_loss", "loss/g_loss", "loss/accuracy", "loss/S_loss"} <= set(scalars)
    assert [step for step, _, _ in scalars["loss/d_loss"]] == summary_steps
    # TF 1.x image summaries are named <name>/image.
    assert set(images) == {"img/fake/image", "img/real/image"}

    def loaded_up(body):  # a series loaded up to the run's last summary
        return isinstance(body, list) and len(body) >= len(summary_steps)

    with TensorBoard(logdir, str(tmp_path)) as board:
        served = time.time()
        d_loss = board.wait_for("data/plugin/scalars/scalars", loaded_up,
                                run=RUN, tag="loss/d_loss")
        fakes = board.wait_for("data/plugin/images/images", loaded_up,
                               run=RUN, tag="img/fake/image", sample=0)
        loaded = time.time()

        assert board.json("data/runs") == [RUN]

        scalar_tags = board.json("data/plugin/scalars/tags")
        assert set(scalar_tags) == {RUN}
        assert set(scalar_tags[RUN]) == set(scalars)  # every scalar the trainer wrote

        # One series: [[wall time, step, value], ...], the event file's values.
        assert [step for _, step, _ in d_loss] == summary_steps
        assert all(isinstance(v, float) and math.isfinite(v) for _, _, v in d_loss)
        assert [(step, value) for _, step, value in d_loss] == \
            [(step, value) for step, _, value in scalars["loss/d_loss"]]
        assert [wall_time for wall_time, _, _ in d_loss] == \
            pytest.approx([wall_time for _, wall_time, _ in scalars["loss/d_loss"]], abs=1e-3)

        image_tags = board.json("data/plugin/images/tags")
        assert set(image_tags) == {RUN}
        assert set(image_tags[RUN]) == {"img/fake/image", "img/real/image"}
        assert image_tags[RUN]["img/fake/image"]["samples"] == 1  # one grid per step

        # The last grid's PNG, through the opaque query the list gives.
        assert [item["step"] for item in fakes] == summary_steps
        last = fakes[-1]
        png = board.get("data/plugin/images/individualImage?" + last["query"])
    finished = time.time()

    assert png[:8] == PNG_SIGNATURE
    assert png == images["img/fake/image"][last["step"]].encoded_image_string
    image = Image.open(io.BytesIO(png))
    image.load()
    # 16 generated 28 x 28 digits in a 4 x 4 grid, one channel.
    assert image.format == "PNG" and image.size == (4 * 28, 4 * 28) and image.mode == "L"
    print("data + training %.1f s, tensorboard start %.1f s, load %.1f s, queries and stop "
          "%.1f s" % (trained - started, served - trained, loaded - served, finished - loaded))
