"""The paper's Adam against its update rule computed in NumPy from
openai/improved-gan's nn.adam_updates, and against TensorFlow's Adam."""

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import optimizers

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
        step = optimizers.make_optimizer(kind, lr, "adam").apply_gradients([(grad, var)])
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
        optimizers.make_optimizer("sgd", 0.1, "x")
