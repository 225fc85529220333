"""The divergence stop: the rule on hand-made signs, the signs the graph
computes, and runs on the stand-in NPU, whose chip saturates float16
instead of making Inf or NaN (tests/standins)."""

import os
import re

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import divergence
import precision
from divergence import LOSS_BOUND, SKIPPED_IN_A_ROW, DivergenceWatch
from test_ascend import train, two_cards

HEALTHY = (0, 0, 0, 0)
SKIPPED = (0, 0, 1, 0)


def test_a_healthy_run_and_a_few_skipped_steps_go_on():
    watch = DivergenceWatch()
    for step in range(200):
        # A healthy float16 run: a few skipped steps at the start (the scale
        # comes down from 2**15) and after a spike, never many in a row.
        skipped = step < 6 or step % 50 == 7
        assert watch.check("D" if step % 2 == 0 else "G", step,
                           SKIPPED if skipped else HEALTHY) is None


def test_steps_skipped_in_a_row_stop_and_say_since_when():
    watch = DivergenceWatch()
    assert watch.check("D", 0, SKIPPED) is None
    assert watch.check("D", 2, HEALTHY) is None  # the row restarts
    steps = list(range(10, 10 + 2 * SKIPPED_IN_A_ROW, 2))
    for step in steps:
        # G's steps in between are healthy: each network has its own row.
        assert watch.check("G", step + 1, HEALTHY) is None
        verdict = watch.check("D", step, SKIPPED)
    assert verdict is not None and verdict.since == 10
    assert verdict.reason == ("%d D steps in a row overflowed and were skipped (steps 10 to %d)"
                              % (SKIPPED_IN_A_ROW, steps[-1]))


def test_each_sign_names_itself_and_the_cards_that_showed_it():
    two = DivergenceWatch(cards=2)
    assert two.check("G", 7, (1, 0, 0, 0)) == (
        "the G loss became NaN or Inf at step 7 on 1 of the 2 cards", 7)
    assert two.check("D", 8, (0, 2, 0, 0)) == (
        "the D loss passed 10000 at step 8 on 2 of the 2 cards, which no healthy run reaches "
        "(float16 saturates at 65504)", 8)
    one = DivergenceWatch()
    for step in (4, 6):
        assert one.check("D", step, SKIPPED) is None
    assert one.check("D", 8, (0, 0, 1, 1)) == (
        "D's step 8 overflowed with its loss scale at its floor (1): its gradients pass "
        "float16's range (3 steps skipped since step 4)", 4)


def test_the_graphs_signs():
    """sign_vector against values worked out by hand: NaN and Inf are not
    finite (Inf is past the bound too), a loss past the bound in either
    sign counts, a skipped step at
    a scale of 1 is at the floor and at 2 is not."""
    cases = [(np.nan, None, [1, 0, 0, 0]), (np.inf, None, [1, 1, 0, 0]),
             (-2 * LOSS_BOUND, None, [0, 1, 0, 0]), (0.7, None, [0, 0, 0, 0]),
             (0.7, (True, 1.0), [0, 0, 1, 1]), (0.7, (True, 2.0), [0, 0, 1, 0]),
             (0.7, (False, 1.0), [0, 0, 0, 0])]
    with tf.Graph().as_default():
        counter = tf.Variable(0.0)
        train_op = tf.assign_add(counter, 1.0).op
        built = [divergence.sign_vector(
            tf.constant(loss, tf.float32), train_op,
            None if health is None else precision.StepHealth(tf.constant(health[0]),
                                                             tf.constant(health[1])))
            for loss, health, _ in cases]
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            values = sess.run(built)
            assert sess.run(counter) == 1.0  # the step ran (once, for all the fetches)
    assert [v.tolist() for v in values] == [expected for _, _, expected in cases]


def test_the_float16_paths_health_reports_a_skipped_step_and_the_scale():
    """On the CPU's float16 path a step whose gradients overflow is skipped
    and halves the scale; StepHealth, read after the step, says both."""
    import train_ops as train_ops_lib
    from collections import namedtuple
    with tf.Graph().as_default():
        with tf.variable_scope("Discriminator"):
            w = tf.get_variable("w", [], initializer=tf.constant_initializer(1.0))
        with tf.variable_scope("Generator"):
            v = tf.get_variable("v", [], initializer=tf.constant_initializer(1.0))
        size = tf.placeholder(tf.float32, [])
        step = tf.train.get_or_create_global_step()
        losses = namedtuple("L", "d_loss g_loss")(size * w, v * v)
        ops = train_ops_lib.build_train_ops(
            losses, step, train_ops_lib.OptimConfig(1e-3, 1e-3, 0.5, 0.0, loss_scaling=True))
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            fine = sess.run([ops.d_train, ops.d_health], {size: 1.0})[1]
            overflow = sess.run([ops.d_train, ops.d_health], {size: 1e35})[1]
    assert (bool(fine.skipped), fine.loss_scale) == (False, precision.LOSS_SCALE_INITIAL)
    assert (bool(overflow.skipped), overflow.loss_scale) == (True,
                                                            precision.LOSS_SCALE_INITIAL / 2)


def _vars(reader, net, suffix):
    names = [n for n in reader.get_variable_to_shape_map()
             if n.startswith("train/%s_optimize/" % net) and n.endswith(suffix)]
    assert len(names) == 1, names
    return reader.get_tensor(names[0])


@pytest.mark.slow
def test_a_steps_skip_depends_on_that_step_alone(standins, data, tmp_path, monkeypatch):
    """On the 910 the float status is device-wide and sticky. A chip where
    D's gradients and the evaluation pass overflow, with two G steps to each
    D step, summaries and the [val] line on every step, and sample grids
    saved: D's steps are skipped, and not one of G's (no gradient-norm
    summary runs D's backward pass in G's step, and the status is cleared
    after evaluation and samples)."""
    monkeypatch.delenv("RANK_SIZE", raising=False)
    monkeypatch.setenv("NPU_STANDIN_OVERFLOWING", r"^train/d_optimize/|^eval/")
    # A scale at which no gradient of this model overflows by itself (at 2**15
    # the first steps may): every overflow here is the chip's.
    monkeypatch.setattr(precision, "LOSS_SCALE_INITIAL", 2.0 ** 8)
    run_dir = str(tmp_path / "run")
    assert train(["--dataset", data["easy"], "--train_dir", run_dir, "--device", "npu",
                  "--max_training_steps", "6", "--update_rate", "2", "--write_summary_step", "1",
                  "--test_sample_step", "1", "--output_save_step", "3"],
                 {"ASCEND_DEVICE_ID": "0"}) == 0
    reader = tf.train.load_checkpoint(os.path.join(run_dir, "model-6"))
    # G's four steps (1, 2, 4, 5) all applied: Adam's beta1 ** (t + 1) at
    # t = 4, the scale never halved.
    assert _vars(reader, "g", "/beta1_power") == pytest.approx(0.5 ** 5)
    assert reader.get_tensor("train/g_optimize/loss_scale") == 2.0 ** 8
    # D's two steps (0, 3) skipped.
    assert _vars(reader, "d", "/beta1_power") == 0.5
    assert reader.get_tensor("train/d_optimize/loss_scale") == 2.0 ** 6


@pytest.mark.slow
def test_a_run_that_saturates_every_step_stops_every_card_after_the_same_step(
        standins, data, tmp_path, monkeypatch, capsys):
    """Two cards train two steps, then resume on a chip where every gradient
    overflows. Saturated, nothing is Inf or NaN and the loss stays finite:
    every step is skipped while the global step and the checkpoints move on.
    Both cards stop after the same step, when D's loss scale reaches its
    floor, with one error that names the checkpoint from before the
    skipping."""
    run_dir = str(tmp_path / "run")
    args = ["--dataset", data["easy"], "--device", "npu", "--train_dir", run_dir,
            "--output_save_step"]
    healthy = args + ["2", "--max_training_steps", "2"]
    assert two_cards(tmp_path, monkeypatch, "healthy", healthy, healthy)[:2] == (0, 0)
    capsys.readouterr()
    monkeypatch.setenv("NPU_STANDIN_OVERFLOWING", "^train/[dg]_optimize/")
    saturated = args + ["10", "--max_training_steps", "200"]
    status, other_status, other_log = two_cards(tmp_path, monkeypatch, "saturated",
                                                saturated, saturated)
    own_log = capsys.readouterr().err
    assert (status, other_status) == (1, 1), other_log
    # Each network's scale halves on each of its steps (every other global
    # step) until it reaches 1, from 2**15 (or less if the first two steps
    # overflowed by themselves).
    pattern = (r"([DG])'s step (\d+) overflowed with its loss scale at its floor \(1\) on 2 "
               r"of the 2 cards: its gradients pass float16's range \((\d+) steps skipped "
               r"since step (\d+)\); stopping without saving. Keep (\S+): the newest "
               r"checkpoint from before the trouble; the ones after it hold weights of the "
               r"skipped steps")
    verdicts = [re.findall(pattern, text) for text in (own_log, other_log)]
    assert len(verdicts[0]) == 1 and verdicts[0] == verdicts[1], (own_log, other_log)
    network, stop, skipped, since, keep = verdicts[0][0]
    assert since == {"D": "2", "G": "3"}[network] and 13 <= int(skipped) <= 15
    assert int(stop) == int(since) + 2 * (int(skipped) - 1)
    assert keep == os.path.join(run_dir, "model-2")
    assert tf.train.latest_checkpoint(run_dir).endswith("model-%d" % (int(stop) // 10 * 10))
    assert not re.search(r"NaN|nan", own_log + other_log)
