"""scripts/benchmark.py: its FLOP count against a hand count, and a smoke run."""

import os
import re
import subprocess
import sys

import tensorflow.compat.v1 as tf

import benchmark_script as bench
import model as ssgan

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_discriminator_flops_match_a_hand_count():
    # MNIST D, per image: 2 * output pixels * k * k * C_in * C_out per conv.
    by_hand = (2 * 14 * 14 * 32 * 9 * 1 + 2 * 7 * 7 * 64 * 9 * 32 + 2 * 4 * 4 * 128 * 9 * 64
               + 2 * 2 * 2 * 256 * 9 * 128 + 2 * 1 * 1 * 256 * 9 * 256
               + 2 * 64 * 256 + 2 * 11 * 64)
    assert by_hand == 7851648
    with tf.Graph().as_default():
        logits = ssgan.Discriminator(10)(tf.zeros([5, 28, 28, 1]), training=False)
        assert bench.graph_flops([logits]) == 5 * by_hand


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


def test_smoke_run_prints_the_table():
    result = subprocess.run(
        [sys.executable, "scripts/benchmark.py", "--smoke", "--train_batches", "4",
         "--infer_batches", "4", "--image_shape", "16", "16", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(re.match(r"^training\s+4\s+\d+\.\d", l) for l in lines), result.stdout
    assert any(re.match(r"^inference\s+4\s+\d+\.\d", l) for l in lines), result.stdout
    assert "float32 matmul rate" in result.stdout
