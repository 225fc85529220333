"""The paper's objective, layers and training helpers against values worked
out by hand (plain Python / NumPy, from the definitions, not from the code)."""

import math

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import improved_gan
import model as ssgan
import ops
import paper_nets

# K = 2 classes; the last column is the "fake" logit.
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
        loss = run(improved_gan.labeled_loss(tf.constant(LOGITS), tf.constant([0, 1]), 2))
    # -log softmax over the K class logits (the fake logit plays no part)
    expected = np.mean([-math.log(math.exp(1.0) / (math.exp(1.0) + math.exp(2.0))),
                        -math.log(math.exp(-1.0) / (math.exp(0.0) + math.exp(-1.0)))])
    assert loss == pytest.approx(expected, rel=1e-6)


def test_unlabeled_loss_is_the_real_vs_fake_log_loss():
    with tf.Graph().as_default():
        plain, smoothed = run([
            improved_gan.unlabeled_loss(tf.constant(LOGITS), tf.constant(FAKE), 2),
            improved_gan.unlabeled_loss(tf.constant(LOGITS), tf.constant(FAKE), 2, 0.9)])
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
        loss = run(improved_gan.unlabeled_loss(tf.constant(LOGITS), tf.constant(FAKE), 2))
    assert loss == pytest.approx(paper, rel=1e-6)


def test_losses_are_stable_for_huge_logits():
    big = [[500.0, -500.0, 0.0], [-800.0, -900.0, 0.0]]
    with tf.Graph().as_default():
        values = run([improved_gan.unlabeled_loss(tf.constant(big), tf.constant(big), 2),
                      improved_gan.labeled_loss(tf.constant(big), tf.constant([1, 0]), 2)])
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
        a = run([improved_gan.labeled_loss(tf.constant(LOGITS), tf.constant([0, 1]), 2),
                 improved_gan.unlabeled_loss(tf.constant(LOGITS), tf.constant(FAKE), 2)])
        b = run([improved_gan.labeled_loss(tf.constant(shifted), tf.constant([0, 1]), 2),
                 improved_gan.unlabeled_loss(tf.constant(shifted), tf.constant(FAKE), 2)])
    np.testing.assert_allclose(a, b, rtol=1e-5)


def test_feature_matching_by_hand_and_zero_for_matching_means():
    with tf.Graph().as_default():
        real = tf.constant([[1.0, 2.0], [3.0, 4.0]])
        fake = tf.constant([[0.0, 0.0], [2.0, 2.0]])
        same_mean = tf.constant([[2.0, 0.0], [2.0, 6.0], [2.0, 3.0]])  # mean [2, 3]
        l2, l1, zero = run([improved_gan.feature_matching_loss(real, fake),
                            improved_gan.feature_matching_loss(real, fake, "l1"),
                            improved_gan.feature_matching_loss(real, same_mean)])
    # means [2, 3] and [1, 1]: differences 1 and 2
    assert l2 == pytest.approx((1 + 4) / 2.0)
    assert l1 == pytest.approx((1 + 2) / 2.0)
    assert zero == 0.0


def test_loss_shape_errors_name_both_shapes():
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match=r"\(2, 3\).*\[B, 4\]"):
            improved_gan.labeled_loss(tf.zeros([2, 3]), tf.zeros([2], tf.int32), 3)
        with pytest.raises(ValueError, match=r"\(2, 5\).*\(2, 4\)"):
            improved_gan.feature_matching_loss(tf.zeros([2, 5]), tf.zeros([2, 4]))


def test_unlabeled_real_loss_of_the_reference_is_minus_log_p_real():
    with tf.Graph().as_default():
        values = run(ssgan.unlabeled_real_loss(tf.constant(LOGITS), 2))
    for row, value in zip(LOGITS, values):
        p_fake = math.exp(row[-1]) / sum(math.exp(l) for l in row)
        assert value == pytest.approx(-math.log(1 - p_fake), rel=1e-6)


def test_learning_rate_schedule():
    with tf.Graph().as_default():
        step = tf.placeholder(tf.int64, [])
        rate = improved_gan.learning_rate_schedule(0.1, step, 60, 100)
        constant = improved_gan.learning_rate_schedule(0.1, step, 0, 100)
        with tf.Session() as sess:
            got = [sess.run(rate, {step: s}) for s in (0, 60, 80, 100, 120)]
            assert sess.run(constant, {step: 99}) == pytest.approx(0.1)
    np.testing.assert_allclose(got, [0.1, 0.1, 0.05, 0.0, 0.0], atol=1e-7)


def test_historical_average_penalty_and_update():
    with tf.Graph().as_default():
        v = tf.get_variable("v", initializer=tf.constant([1.0, 2.0]))
        penalty, update = improved_gan.historical_average([v], "test")
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            assert sess.run(penalty) == 0.0  # no history yet
            sess.run(update)  # history: [1, 2]
            sess.run(v.assign([3.0, 6.0]))
            assert sess.run(penalty) == pytest.approx(2 ** 2 + 4 ** 2)
            sess.run(update)  # history mean: [2, 4]
            assert sess.run(penalty) == pytest.approx(1 ** 2 + 2 ** 2)


# Layers.

def _init_then_apply(layer, x):
    """Runs the layer's data-dependent init on x, then returns its normal
    output on the same x."""
    with tf.variable_scope("layer", reuse=tf.AUTO_REUSE):
        layer(x, True)
        init_ops = tf.get_collection(ops.WEIGHT_NORM_INIT)
        y = layer(x, False)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(init_ops)
        return sess.run(y)


@pytest.mark.parametrize("kind", ["dense", "conv", "deconv", "dense_0.1"])
def test_weight_norm_init_gives_unit_variance_pre_activations(kind):
    rs = np.random.RandomState(0)
    with tf.Graph().as_default():
        if kind.startswith("dense"):
            x = tf.constant(rs.normal(3.0, 5.0, (200, 30)).astype(np.float32))
            stdv = 0.1 if kind == "dense_0.1" else 1.0
            y = _init_then_apply(lambda x, init: ops.weight_norm_dense(
                x, 20, init=init, init_stdv=stdv), x)
            axes = 0
        else:
            stdv = 1.0
            x = tf.constant(rs.normal(-2.0, 4.0, (16, 8, 8, 3)).astype(np.float32))
            layer = ops.weight_norm_conv2d if kind == "conv" else \
                ops.weight_norm_conv2d_transpose
            y = _init_then_apply(lambda x, init: layer(x, 6, init=init), x)
            axes = (0, 1, 2)
    np.testing.assert_allclose(y.mean(axis=axes), 0.0, atol=1e-4)
    np.testing.assert_allclose(y.std(axis=axes), stdv, rtol=1e-3)


def test_minibatch_discrimination_shapes_and_batch_dependence():
    rs = np.random.RandomState(1)
    batch = rs.normal(size=(6, 10)).astype(np.float32)
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None, 10])
        with tf.variable_scope("mb", reuse=tf.AUTO_REUSE):
            ops.minibatch_discrimination(x, num_kernels=7, dim_per_kernel=3, init=True)
            init_ops = tf.get_collection(ops.WEIGHT_NORM_INIT)
            y = ops.minibatch_discrimination(x, num_kernels=7, dim_per_kernel=3)
        assert y.shape.as_list() == [None, 17]
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            sess.run(init_ops, {x: batch})
            out = sess.run(y, {x: batch})
            other = batch.copy()
            other[1:] = batch[1]  # the rest of the batch collapses onto one example
            out_other = sess.run(y, {x: other})
    np.testing.assert_array_equal(out[:, :10], batch)  # the features pass through
    np.testing.assert_allclose(out[:, 10:].mean(axis=0), 0.0, atol=1e-5)  # init: mean 0
    # example 0 is unchanged, but what it sees of the batch is not
    assert not np.allclose(out[0, 10:], out_other[0, 10:])


@pytest.mark.parametrize("shape,dataset,widths,features", [
    ((28, 28, 1), "MNIST", None, 250), ((16, 12, 1), "x", None, 250),
    ((32, 32, 3), "CIFAR10", (96, 192), 192), ((32, 32, 3), "SVHN", (64, 128), 128)])
def test_paper_networks_shapes(shape, dataset, widths, features):
    with tf.Graph().as_default():
        d, g = paper_nets.networks(shape, 10, dataset, minibatch_kernels=5)
        images = g(tf.random_uniform([4, 100], -1, 1), training=True)
        logits, feats = d(images, training=True, return_features=True)
        assert images.shape.as_list() == [None, *shape] or \
            images.shape.as_list()[1:] == list(shape)
        assert logits.shape.as_list()[1:] == [11] and feats.shape.as_list()[1:] == [features]
        if widths:
            assert d.widths == widths
        values = run([images, logits])
    assert values[0].min() >= -1 and values[0].max() <= 1
    np.testing.assert_array_equal(values[1][:, -1], 0.0)  # the fake logit is fixed at 0


def test_paper_networks_refuse_other_colour_shapes():
    with pytest.raises(ValueError, match="8x8x3.*--arch reference"):
        paper_nets.check_image_shape((8, 8, 3))


def test_ema_weights_differ_from_raw_and_feed_evaluation():
    config = ssgan.ModelConfig((8, 8, 1), 3, 4, "batch", "bilinear", 0.9, "paper")
    rs = np.random.RandomState(0)
    with tf.Graph().as_default():
        step = tf.train.get_or_create_global_step()
        images = tf.constant(rs.uniform(-1, 1, (6, 8, 8, 1)).astype(np.float32))
        labels = tf.constant([0, 1, 2, 0, 1, 2])
        model = ssgan.build_model(images, labels, config, training=True)
        losses = improved_gan.build_losses(model)
        train = ssgan.build_train_ops(losses, step, ssgan.OptimConfig(
            0.01, 0.01, 0.5, 20.0, ema_decay=0.9))
        raw_logits = ssgan.build_model(images, labels, config, training=False).real_logits
        ema_logits = ssgan.build_model(images, labels, config, training=False,
                                       d_getter=ssgan.ema_getter(train.ema)).real_logits
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
