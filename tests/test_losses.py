"""losses.py: both methods' losses against values worked out by hand (plain
Python / NumPy, from the definitions, not from the code): the reference's
(K+1-way cross-entropy, G's GAN loss, reconstruction) and the paper's
(labeled, unlabeled, feature matching), and their shape checks."""

import math

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import losses as losses_lib
import model as model_lib

LOGITS = [[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]]

FAKE = [[0.0, 0.0, 0.0], [2.0, -2.0, 1.0]]


def run(tensors, feed=None):
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        return sess.run(tensors, feed)


def d_real(row):
    """D(x) = Z / (Z + 1) with Z = sum_k exp(l_k - l_fake): the paper's
    probability that x is real, from its definition."""
    z = sum(math.exp(l - row[-1]) for l in row[:-1])
    return z / (z + 1.0)


def test_labeled_loss_is_the_class_cross_entropy():
    with tf.Graph().as_default():
        loss = run(losses_lib.labeled_loss(tf.constant(LOGITS), tf.constant([0, 1]), 2))
    # -log softmax over the K class logits (the fake logit plays no part)
    expected = np.mean([-math.log(math.exp(1.0) / (math.exp(1.0) + math.exp(2.0))),
                        -math.log(math.exp(-1.0) / (math.exp(0.0) + math.exp(-1.0)))])
    assert loss == pytest.approx(expected, rel=1e-6)


def test_unlabeled_loss_is_the_real_vs_fake_log_loss():
    with tf.Graph().as_default():
        plain, smoothed = run([
            losses_lib.unlabeled_loss(tf.constant(LOGITS), tf.constant(FAKE), 2),
            losses_lib.unlabeled_loss(tf.constant(LOGITS), tf.constant(FAKE), 2, 0.9)])
    real = [d_real(r) for r in LOGITS]
    fake = [d_real(r) for r in FAKE]
    expected = (0.5 * np.mean([-math.log(p) for p in real])
                + 0.5 * np.mean([-math.log(1 - p) for p in fake]))
    assert plain == pytest.approx(expected, rel=1e-6)
    # one-sided smoothing: real targets 0.9, generated keep 0
    expected = (0.5 * np.mean([-0.9 * math.log(p) - 0.1 * math.log(1 - p) for p in real])
                + 0.5 * np.mean([-math.log(1 - p) for p in fake]))
    assert smoothed == pytest.approx(expected, rel=1e-6)


def test_unlabeled_loss_matches_the_papers_formula():
    def lse(row):
        k = [l - row[-1] for l in row[:-1]]
        return math.log(sum(math.exp(v) for v in k))

    def softplus(v):
        return math.log1p(math.exp(v))
    paper = (-0.5 * np.mean([lse(r) for r in LOGITS])
             + 0.5 * np.mean([softplus(lse(r)) for r in LOGITS])
             + 0.5 * np.mean([softplus(lse(r)) for r in FAKE]))
    with tf.Graph().as_default():
        loss = run(losses_lib.unlabeled_loss(tf.constant(LOGITS), tf.constant(FAKE), 2))
    assert loss == pytest.approx(paper, rel=1e-6)


def test_losses_are_stable_for_huge_logits():
    big = [[500.0, -500.0, 0.0], [-800.0, -900.0, 0.0]]
    with tf.Graph().as_default():
        values = run([losses_lib.unlabeled_loss(tf.constant(big), tf.constant(big), 2),
                      losses_lib.labeled_loss(tf.constant(big), tf.constant([1, 0]), 2)])
    assert np.all(np.isfinite(values))
    # first real example: D = 1, -log D = 0; second: Z = e^-800, -log D = 800
    # first fake example: -log(1 - D) = 500; second: ~0
    assert values[0] == pytest.approx(0.5 * (0 + 800) / 2 + 0.5 * (500 + 0) / 2, rel=1e-6)
    # labels [1, 0]: -log softmax is 1000 for the first, ~0 for the second
    assert values[1] == pytest.approx((1000 + 0) / 2.0, rel=1e-6)


def test_a_shift_of_all_logits_changes_nothing():
    """The reference networks' K+1 logits and the paper's K (fake fixed at 0)
    give the same losses."""
    shifted = (np.array(LOGITS) + 3.7).tolist()
    with tf.Graph().as_default():
        a = run([losses_lib.labeled_loss(tf.constant(LOGITS), tf.constant([0, 1]), 2),
                 losses_lib.unlabeled_loss(tf.constant(LOGITS), tf.constant(FAKE), 2)])
        b = run([losses_lib.labeled_loss(tf.constant(shifted), tf.constant([0, 1]), 2),
                 losses_lib.unlabeled_loss(tf.constant(shifted), tf.constant(FAKE), 2)])
    np.testing.assert_allclose(a, b, rtol=1e-5)


def test_feature_matching_by_hand_and_zero_for_matching_means():
    with tf.Graph().as_default():
        real = tf.constant([[1.0, 2.0], [3.0, 4.0]])
        fake = tf.constant([[0.0, 0.0], [2.0, 2.0]])
        same_mean = tf.constant([[2.0, 0.0], [2.0, 6.0], [2.0, 3.0]])  # mean [2, 3]
        l2, l1, zero = run([losses_lib.feature_matching_loss(real, fake),
                            losses_lib.feature_matching_loss(real, fake, "l1"),
                            losses_lib.feature_matching_loss(real, same_mean)])
    # means [2, 3] and [1, 1]: differences 1 and 2
    assert l2 == pytest.approx((1 + 4) / 2.0)
    assert l1 == pytest.approx((1 + 2) / 2.0)
    assert zero == 0.0


def test_loss_shape_errors_name_both_shapes():
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match=r"\(2, 3\).*\[B, 4\]"):
            losses_lib.labeled_loss(tf.zeros([2, 3]), tf.zeros([2], tf.int32), 3)
        with pytest.raises(ValueError, match=r"\(2, 5\).*\(2, 4\)"):
            losses_lib.feature_matching_loss(tf.zeros([2, 5]), tf.zeros([2, 4]))


def test_unlabeled_real_loss_of_the_reference_is_minus_log_p_real():
    with tf.Graph().as_default():
        values = run(losses_lib.unlabeled_real_loss(tf.constant(LOGITS), 2))
    for row, value in zip(LOGITS, values):
        p_fake = math.exp(row[-1]) / sum(math.exp(l) for l in row)
        assert value == pytest.approx(-math.log(1 - p_fake), rel=1e-6)


LN2, LN3 = math.log(2.0), math.log(3.0)


def evaluate(tensor):
    with tf.Session() as sess:
        return sess.run(tensor)


def test_discriminator_losses_by_hand():
    with tf.Graph().as_default():
        # K = 2. Equal logits: softmax 1/3 each, so either target gives ln 3.
        # Fake logits [0, 0, ln 2]: softmax [1/4, 1/4, 1/2]; the target
        # [0.05, 0.05, 0.9] gives 0.1 ln 4 + 0.9 ln 2 = 1.1 ln 2.
        # Real logits [ln 3, 0, 0] with label 0: softmax 3/5 -> ln(5/3).
        real = tf.constant([[0.0, 0.0, 0.0], [LN3, 0.0, 0.0]])
        fake = tf.constant([[0.0, 0.0, 0.0], [0.0, 0.0, LN2]])
        d_real, d_fake = losses_lib.discriminator_losses(real, fake, tf.constant([1, 0]), 2)
        got_real, got_fake = evaluate([d_real, d_fake])
    np.testing.assert_allclose(got_real, [LN3, math.log(5.0 / 3.0)], rtol=1e-6)
    np.testing.assert_allclose(got_fake, [LN3, 1.1 * LN2], rtol=1e-6)


def test_generator_gan_loss_by_hand_and_stable():
    with tf.Graph().as_default():
        # mean(log sigmoid(x)) of the fake logit (index K = 1):
        # x = 0 -> ln 1/2; x = ln 3 -> ln 3/4; x = -200 -> -200 (not -inf).
        loss = losses_lib.generator_gan_loss(tf.constant([[9.0, 0.0], [9.0, LN3]]), 1)
        tiny = losses_lib.generator_gan_loss(tf.constant([[0.0, -200.0]]), 1)
        got, got_tiny = evaluate([loss, tiny])
    assert got == pytest.approx((-LN2 + math.log(0.75)) / 2, rel=1e-6)
    assert got_tiny == pytest.approx(-200.0)


def test_supervised_loss_and_accuracy_by_hand():
    with tf.Graph().as_default():
        # Zero logits: sigmoid 1/2 everywhere; the residual is 1/2 on every
        # class, Huber 0.125 each.
        s_loss = losses_lib.supervised_huber_loss(tf.zeros([2, 4]), tf.constant([0, 2]), 3)
        # The fake logit (last) is ignored by the accuracy, even when largest.
        logits = tf.constant([[0.0, 5.0, 1.0, 9.0], [3.0, 1.0, 2.0, 9.0]])
        accuracy = losses_lib.classification_accuracy(logits, tf.constant([1, 2]), 3)
        got_s, got_a = evaluate([s_loss, accuracy])
    assert got_s == pytest.approx(0.125)
    assert got_a == pytest.approx(0.5)


def test_reconstruction_weight_anneals_from_10_to_0_over_1500_steps():
    with tf.Graph().as_default():
        step = tf.placeholder(tf.int64, [])
        weight = losses_lib.reconstruction_weight(step)
        with tf.Session() as sess:
            got = [sess.run(weight, {step: s}) for s in (0, 750, 1499, 1500, 40000)]
    np.testing.assert_allclose(got, [10.0, 5.0, 10.0 / 1500, 0.0, 0.0], rtol=1e-5, atol=1e-7)


def test_reconstruction_loss_is_mean_huber():
    with tf.Graph().as_default():
        got = evaluate(losses_lib.reconstruction_loss(tf.constant([[0.0, 0.0]]),
                                                      tf.constant([[0.5, 3.0]])))
    assert got == pytest.approx((0.125 + 2.5) / 2)


def test_losses_name_both_shapes_on_mismatch():
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match=r"logits have shape \(4, 10\), expected \[B, 11\]"):
            losses_lib.generator_gan_loss(tf.zeros([4, 10]), 10)
        with pytest.raises(ValueError, match=r"batch sizes differ, \(4, 11\) vs \(3,\)"):
            losses_lib.discriminator_losses(tf.zeros([4, 11]), tf.zeros([4, 11]),
                                            tf.zeros([3], tf.int32), 10)
        config = model_lib.ModelConfig((28, 28, 1), 10, 8, "batch", "bilinear", 0.99)
        with pytest.raises(ValueError, match=r"images have shape \(2, 32, 32, 3\)"):
            model_lib.build_model(tf.zeros([2, 32, 32, 3]), tf.zeros([2], tf.int32), config, True)
