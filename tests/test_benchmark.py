"""scripts/benchmark.py: its FLOP count against a hand count (its smoke runs, with\nevery precision and mode, are the README's commands in test_readme.py)."""

import os
import re
import subprocess
import sys

import benchmark_script as bench
import pytest
import tensorflow.compat.v1 as tf

import model as model_lib
from conftest import load_script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_discriminator_flops_match_a_hand_count():
    # MNIST D, per image: 2 * output pixels * k * k * C_in * C_out per conv.
    by_hand = (2 * 14 * 14 * 32 * 9 * 1 + 2 * 7 * 7 * 64 * 9 * 32 + 2 * 4 * 4 * 128 * 9 * 64
               + 2 * 2 * 2 * 256 * 9 * 128 + 2 * 1 * 1 * 256 * 9 * 256
               + 2 * 64 * 256 + 2 * 11 * 64)
    assert by_hand == 7851648
    with tf.Graph().as_default():
        discriminator = model_lib.Discriminator(10, fast_convolutions=False)
        logits = discriminator(tf.zeros([5, 28, 28, 1]), training=False)
        assert bench.graph_flops([logits]) == 5 * by_hand
    # As executed, the 2x2 -> 1x1 conv multiplies the 4 taps that meet the image.
    model, executed = bench.inference_flops(bench.parse_args([]), 5)
    assert model == by_hand
    assert executed == by_hand - 2 * 1 * 1 * 256 * 5 * 256


def test_gradient_flops_are_counted():
    with tf.Graph().as_default():
        x = tf.zeros([2, 8, 8, 3])
        w = tf.get_variable("w", [3, 3, 3, 4])
        y = tf.nn.conv2d(x, w, [1, 1, 1, 1], "SAME")
        forward = 2 * 2 * 8 * 8 * 4 * 9 * 3
        assert bench.graph_flops([y]) == forward
        # d sum(y^2) needs y itself; the input and filter gradients each cost
        # what the forward conv does.
        assert bench.graph_flops(tf.gradients(tf.reduce_sum(y * y), [x, w])) == 3 * forward
        # d sum(y) does not need y: only the two gradient convs run.
        assert bench.graph_flops(tf.gradients(tf.reduce_sum(y), [x, w])) == 2 * forward


def test_broadcast_batch_matmul_flops():
    with tf.Graph().as_default():
        a, b = tf.zeros([6, 4]), tf.zeros([3, 4, 5])  # [6, 4] x each of 3 [4, 5]
        assert bench.graph_flops([tf.matmul(a, b)]) == 3 * 2 * 6 * 4 * 5


@pytest.mark.slow
def test_model_flops_are_the_references_and_executed_ones_fewer():
    args = bench.parse_args(["--image_shape", "16", "16", "1", "--n_z", "8"])
    model, executed = bench.training_flops(args, 4)
    # The reference's G upsampling blocks: resize by 2, then a 3x3 conv
    # (per image; 16x16 needs 4 blocks from 1x1, channels halving from 1024).
    g_convs = sum(2 * (2 * h) ** 2 * 9 * c * (c // 2)
                  for h, c in ((1, 1024), (2, 512), (4, 256), (8, 128)))
    # A D step runs them (x1), a G step also differentiates them (x3): a mean
    # of 2x, plus the little the rest of the model costs at 16x16.
    assert 2 * g_convs < model < 2.1 * g_convs
    assert executed < 0.5 * model


@pytest.mark.slow
def test_paper_mlp_step_flops_match_a_hand_count():
    # Multiply-adds per image. D: 784-1000-500-250-250-250-10; G: 100-500-500-784.
    d = 784 * 1000 + 1000 * 500 + 500 * 250 + 2 * 250 * 250 + 250 * 10
    g = 100 * 500 + 500 * 500 + 500 * 784
    d_features = d - 250 * 10  # up to the last 250-unit layer
    # D step: G's samples, D forward on the labeled, unlabeled and generated
    # images, D's weight gradients, and its input gradients except the first
    # layer's (nothing below it trains).
    d_step = g + 3 * d + 3 * d + 3 * (d - 784 * 1000)
    # G step: G forward, D's features of G's unlabeled batch and of fresh
    # samples, their input gradients down to the pixels, G's weight gradients
    # and its input gradients above the noise.
    g_step = g + 2 * d_features + d_features + g + (g - 100 * 500)
    args = bench.parse_args(["--arch", "paper"])
    model, executed = bench.training_flops(args, 4)
    assert model == executed == (2 * d_step + 2 * g_step) / 2.0
    assert list(bench.inference_flops(args, 4)) == [2 * d, 2 * d]


@pytest.mark.slow
def test_resume_benchmark_times_a_real_resume(data):
    """scripts/benchmark_resume.py --trainer: the run it resumes really is
    at the step (the trainer trains step + 1 after restoring it)."""
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "benchmark_resume.py"), "--dataset",
         data["easy"], "--trainer", "--steps", "7"], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, universal_newlines=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = re.findall(r"^(\d+) +([\d.]+)$", done.stdout, re.M)
    assert [r[0] for r in rows] == ["7"] and float(rows[0][1]) > 0


def test_input_benchmark_prints_preparation_times_and_examples_per_second(data, capsys):
    """scripts/benchmark_input.py, tiny: the times of writing a synthetic
    dataset and its TFRecord cache, then examples/sec per batch size
    (docs/performance.md, "Input pipeline"); with --dataset, no writing."""
    script = load_script("benchmark_input_script", "benchmark_input.py")
    timing = ["--batch_sizes", "4", "16", "--seconds", "0.2", "--warmup_batches", "2"]
    assert script.main(["--num_examples", "140"] + timing) == 0
    out = capsys.readouterr().out
    assert re.search(r"^wrote data\.hdf5 \(140 examples\): \d+\.\d s$", out, re.M), out
    assert re.search(r"^TFRecord cache \(read data\.hdf5 \+ convert, or reuse\): \d+\.\d s$", out,
                     re.M), out
    assert re.search(r"^batch +examples/sec$", out, re.M), out
    rows = re.findall(r"^(\d+) +(\d+)$", out, re.M)
    assert [r[0] for r in rows] == ["4", "16"] and all(int(r[1]) > 0 for r in rows), out
    assert script.main(["--dataset", data["easy"]] + timing) == 0
    out = capsys.readouterr().out
    assert "wrote data.hdf5" not in out and "TFRecord cache" in out
    assert [r[0] for r in re.findall(r"^(\d+) +(\d+)$", out, re.M)] == ["4", "16"], out


@pytest.mark.slow
def test_cluster_benchmark_prints_each_settings_instances_per_second(data, capsys):
    """scripts/benchmark_cluster.py at its smallest (one step, a 1-worker
    cluster, 8x8 images): one process and 1 ps + 1 worker, each with the
    instances/sec of its [train step] lines (docs/performance.md, "A cluster
    on one machine")."""
    script = load_script("benchmark_cluster_script", "benchmark_cluster.py")
    assert script.main(["--dataset", data["rgb"], "--steps", "1", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^setting +instances/s$", out, re.M), out
    rates = dict(re.findall(r"^(one process|1 ps \+ 1 worker) +(\S+)$", out, re.M))
    assert sorted(rates) == ["1 ps + 1 worker", "one process"], out
    assert all(float(rate) > 0 for rate in rates.values()), out  # nan: no [train step] line
