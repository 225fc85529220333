"""train_ops.py: the paper's Adam against its update rule computed in NumPy
from openai/improved-gan's nn.adam_updates and against TensorFlow's Adam;
the learning-rate schedule and historical averaging by hand; D's and G's
steps touch only their own variables; the moving average of D's weights."""


import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import losses as losses_lib
import model as model_lib
import train_ops as train_ops_lib
from flag_table import ADAM_BETA1
from recipes import REFERENCE_CLIP_NORM


GRADS = [np.array([0.3, -2.0, 1e-6, 0.0], np.float32),
         np.array([-0.1, 0.5, 2e-6, 0.0], np.float32),
         np.array([0.2, -1.0, -1e-6, 0.0], np.float32)]
START = np.array([1.0, -0.5, 0.25, 2.0], np.float32)


def papers_adam(theta, grads, lr, mom1=0.5, mom2=0.999):
    """nn.adam_updates of openai/improved-gan, step by step in float64."""
    theta = theta.astype(np.float64)
    v = np.zeros_like(theta)   # the paper's name for the first moment
    mg = np.zeros_like(theta)  # and for the second
    for t, g in enumerate(grads, start=1):
        v = mom1 * v + (1.0 - mom1) * g
        mg = mom2 * mg + (1.0 - mom2) * np.square(g)
        v_hat = v / (1.0 - mom1 ** t)
        mg_hat = mg / (1.0 - mom2 ** t)
        theta = theta - lr * v_hat / np.sqrt(mg_hat + 1e-8)
    return theta


def apply_steps(kind, grads, lr=0.003, use_resource=False):
    with tf.Graph().as_default():
        var = tf.get_variable("theta", initializer=START, use_resource=use_resource)
        grad = tf.placeholder(tf.float32, START.shape)
        step = train_ops_lib.make_optimizer(kind, lr, "adam").apply_gradients([(grad, var)])
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for g in grads:
                sess.run(step, {grad: g})
            return sess.run(var), sorted(v.op.name for v in tf.global_variables())


@pytest.mark.parametrize("use_resource", [False, True])
def test_paper_adam_is_nn_adam_updates(use_resource):
    theta, _ = apply_steps("paper_adam", GRADS, use_resource=use_resource)
    np.testing.assert_allclose(theta, papers_adam(START, GRADS, 0.003), rtol=1e-6, atol=1e-8)


def test_epsilon_inside_the_root_keeps_tiny_gradients_from_moving_weights():
    # A weight whose gradients are 1e-6 moves by ~lr per step with TensorFlow's
    # Adam (m / sqrt(v) ~ 1), by ~lr / 100 with the paper's (floor 1e-4):
    # three steps of lr 0.003.
    tf_theta, _ = apply_steps("adam", GRADS)
    paper_theta, _ = apply_steps("paper_adam", GRADS)
    moved_tf, moved_paper = abs(tf_theta[2] - START[2]), abs(paper_theta[2] - START[2])
    assert moved_tf > 0.003
    assert moved_paper < 0.05 * 0.003
    assert moved_tf > 20 * moved_paper
    # zero gradients move neither; large ones move both alike
    assert tf_theta[3] == paper_theta[3] == START[3]
    np.testing.assert_allclose(tf_theta[:2], paper_theta[:2], rtol=1e-4)


def test_same_variables_as_tensorflows_adam_so_runs_can_switch():
    _, tf_names = apply_steps("adam", GRADS[:1])
    _, paper_names = apply_steps("paper_adam", GRADS[:1])
    assert tf_names == paper_names
    assert "theta/adam" in paper_names and "theta/adam_1" in paper_names


def test_unknown_optimizer_is_refused():
    with pytest.raises(ValueError, match="paper_adam"):
        train_ops_lib.make_optimizer("sgd", 0.1, "x")


def test_learning_rate_schedule():
    with tf.Graph().as_default():
        step = tf.placeholder(tf.int64, [])
        rate = train_ops_lib.learning_rate_schedule(0.1, step, 60, 100)
        constant = train_ops_lib.learning_rate_schedule(0.1, step, 0, 100)
        with tf.Session() as sess:
            got = [sess.run(rate, {step: s}) for s in (0, 60, 80, 100, 120)]
            assert sess.run(constant, {step: 99}) == pytest.approx(0.1)
    np.testing.assert_allclose(got, [0.1, 0.1, 0.05, 0.0, 0.0], atol=1e-7)


def test_historical_average_penalty_and_update():
    with tf.Graph().as_default():
        v = tf.get_variable("v", initializer=tf.constant([1.0, 2.0]))
        penalty, update = train_ops_lib.historical_average([v], "test")
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            assert sess.run(penalty) == 0.0  # no history yet
            sess.run(update)  # history: [1, 2]
            sess.run(v.assign([3.0, 6.0]))
            assert sess.run(penalty) == pytest.approx(2 ** 2 + 4 ** 2)
            sess.run(update)  # history mean: [2, 4]
            assert sess.run(penalty) == pytest.approx(1 ** 2 + 2 ** 2)


# Layers.

@pytest.mark.slow
def test_ema_weights_differ_from_raw_and_feed_evaluation():
    config = model_lib.ModelConfig((8, 8, 1), 3, 4, "batch", "bilinear", 0.9, "paper")
    rs = np.random.RandomState(0)
    with tf.Graph().as_default():
        step = tf.train.get_or_create_global_step()
        images = tf.constant(rs.uniform(-1, 1, (6, 8, 8, 1)).astype(np.float32))
        labels = tf.constant([0, 1, 2, 0, 1, 2])
        model = model_lib.build_model(images, labels, config, training=True)
        losses = losses_lib.build_improved_gan_losses(model)
        train = train_ops_lib.build_train_ops(losses, step, train_ops_lib.OptimConfig(
            0.01, 0.01, ADAM_BETA1, REFERENCE_CLIP_NORM, ema_decay=0.9))
        raw_logits = model_lib.build_model(images, labels, config, training=False).unlabeled_logits
        ema_logits = model_lib.build_model(
            images, labels, config, training=False,
            d_getter=model_lib.ema_getter(train.ema)).unlabeled_logits
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            sess.run(train.sync_averages)
            np.testing.assert_allclose(*sess.run([raw_logits, ema_logits]), rtol=1e-5)
            for _ in range(20):
                sess.run(train.d_train)
            raw, ema = sess.run([raw_logits, ema_logits])
            assert not np.allclose(raw, ema)
            # the EMA logits are D's output with every weight set to its average
            for v in train.d_vars:
                sess.run(v.assign(train.ema.average(v)))
            np.testing.assert_allclose(sess.run(raw_logits), ema, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_d_step_changes_only_d_and_g_step_only_g():
    with tf.Graph().as_default():
        tf.set_random_seed(1)
        config = model_lib.ModelConfig((16, 16, 1), 3, 8, "batch", "bilinear", 0.99)
        step = tf.train.get_or_create_global_step()
        images = tf.random_uniform([4, 16, 16, 1], -1, 1)
        model = model_lib.build_model(images, tf.constant([0, 1, 2, 0]), config, training=True)
        optim = train_ops_lib.OptimConfig(1e-3, 1e-3, ADAM_BETA1, REFERENCE_CLIP_NORM)
        ops = train_ops_lib.build_train_ops(losses_lib.build_ssgan_losses(model, step), step,
                                            optim)
        assert ops.d_vars and ops.g_vars
        assert not set(ops.d_vars) & set(ops.g_vars)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for train_op, changed, unchanged in ((ops.d_train, ops.d_vars, ops.g_vars),
                                                 (ops.g_train, ops.g_vars, ops.d_vars)):
                before = sess.run(changed + unchanged)
                sess.run(train_op)
                after = sess.run(changed + unchanged)
                n = len(changed)
                assert all(not np.array_equal(b, a) for b, a in zip(before[:n], after[:n]))
                assert all(np.array_equal(b, a) for b, a in zip(before[n:], after[n:]))
            assert sess.run(step) == 2


def test_stray_trainable_variable_is_refused():
    with tf.Graph().as_default():
        tf.get_variable("stray", [1])
        with pytest.raises(ValueError, match="outside Discriminator/ and Generator/.*stray"):
            train_ops_lib.split_variables()
