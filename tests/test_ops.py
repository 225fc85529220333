"""ops.py: layers against independent NumPy computations."""

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import ops


def run(tensors, feed=None):
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        return sess.run(tensors, feed)


def test_huber_by_hand():
    with tf.Graph().as_default():
        labels = tf.constant([0.0, 0.0, 1.0, -1.0])
        predictions = tf.constant([0.5, 3.0, 1.0, 1.0])
        # |r| = 0.5 -> 0.125; 3 -> 3 - 0.5; 0 -> 0; 2 -> 2 - 0.5
        np.testing.assert_allclose(run(ops.huber_loss(labels, predictions)),
                                   [0.125, 2.5, 0.0, 1.5])
        with pytest.raises(ValueError, match=r"labels have shape \(2,\) but predictions \(3,\)"):
            ops.huber_loss(tf.zeros([2]), tf.zeros([3]))


@pytest.mark.parametrize("method", ["bilinear", "nn"])
@pytest.mark.parametrize("size", [(1, 1), (2, 2), (3, 2), (4, 5)])
def test_upsample_conv_equals_resize_then_conv(method, size):
    # The separable matmul form must equal TF's resize then conv2d, values and
    # gradients (with respect to the input and both variables).
    # Small batches take the per-tap matmul form, larger ones and unknown
    # batch sizes the transposed-kernel form.
    rs = np.random.RandomState(sum(size))
    x = rs.randn(3, size[0], size[1], 5).astype(np.float32)
    dy = rs.randn(3, 2 * size[0], 2 * size[1], 4).astype(np.float32)
    with tf.Graph().as_default():
        inputs = tf.constant(x)
        if size == (4, 5):
            inputs = tf.placeholder_with_default(inputs, [None, 4, 5, 5])
        y = ops.upsample_conv2d(inputs, 4, method, name="up")
        with tf.variable_scope("up/conv", reuse=True):
            w, b = tf.get_variable("weights"), tf.get_variable("biases")
        with tf.variable_scope(tf.get_variable_scope(), reuse=True):
            plain = ops.upsample_conv2d(inputs, 4, method, name="up", fast=False)
        assert [op.type for op in plain.graph.get_operations() if op.type == "Conv2D"] == ["Conv2D"]
        resize = tf.image.resize_bilinear if method == "bilinear" else \
            tf.image.resize_nearest_neighbor
        reference = tf.nn.conv2d(resize(inputs, [2 * size[0], 2 * size[1]]), w, [1] * 4,
                                 "SAME") + b
        grads = tf.gradients(y, [inputs, w, b], dy)
        reference_grads = tf.gradients(reference, [inputs, w, b], dy)
        got, want, same_as_plain, grads, reference_grads = run(
            [y, reference, plain, grads, reference_grads])
    assert got.shape == (3, 2 * size[0], 2 * size[1], 4)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(same_as_plain, want, rtol=1e-5, atol=1e-5)
    for g, r in zip(grads, reference_grads):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("method", ["bilinear", "nn"])
def test_the_resize_path_keeps_bfloat16_and_avoids_tf115s_missing_kernel(method):
    """The literal resize-then-conv path in bfloat16: the layer computes in
    bfloat16 (bilinear resize returns float32), and no nearest-neighbour
    resize runs on bfloat16 (TF 1.15 has no such kernel); values equal the
    float32 resize of the same bfloat16 numbers."""
    x = np.random.RandomState(0).randn(2, 3, 3, 4).astype(np.float32)
    with tf.Graph().as_default() as graph:
        inputs = tf.cast(tf.constant(x), tf.bfloat16)
        y = ops.upsample_conv2d(inputs, 5, method, name="up", fast=False)
        resized = ops._resize(inputs, [6, 6], method)
        assert y.dtype == resized.dtype == tf.bfloat16
        assert not [op for op in graph.get_operations() if op.type == "ResizeNearestNeighbor"
                    and op.get_attr("T") == tf.bfloat16]
        resize = tf.image.resize_bilinear if method == "bilinear" else \
            tf.image.resize_nearest_neighbor
        want = resize(tf.cast(inputs, tf.float32), [6, 6])
        got, want = run([tf.cast(resized, tf.float32), want])
    np.testing.assert_allclose(got, want, rtol=1e-2, atol=1e-2)  # bfloat16's 8 bits
    if method == "nn":
        np.testing.assert_array_equal(got, want)  # a copy: exact


@pytest.mark.parametrize("size, k, s", [((2, 2), 3, 2), ((1, 1), 3, 2), ((1, 1), 1, 1),
                                        ((2, 1), 3, 2), ((3, 3), 3, 3), ((3, 3), 3, 2)])
def test_conv_onto_one_pixel_equals_tf_conv(size, k, s):
    # D's last convolutions (2x2 -> 1x1, then 1x1 convs) run as one matmul of
    # the taps that meet the image; it must be TF's 'SAME' convolution.
    rs = np.random.RandomState(k + s)
    with tf.Graph().as_default():
        x = tf.constant(rs.randn(4, size[0], size[1], 5).astype(np.float32))
        y = ops.conv2d(x, 6, k=k, s=s, name="c")
        with tf.variable_scope("c", reuse=True):
            w, b = tf.get_variable("weights"), tf.get_variable("biases")
        reference = tf.nn.conv2d(x, w, [1, s, s, 1], "SAME") + b
        assert y.shape.as_list() == reference.shape.as_list()
        matmul_only = not [op for op in y.graph.get_operations() if op.type == "Conv2D"
                           and op.name.startswith("c/")]
        assert matmul_only == (size != (3, 3) or s == 3)
        dy = tf.constant(rs.randn(*reference.shape.as_list()).astype(np.float32))
        got, want = run([[y] + tf.gradients(y, [x, w, b], dy),
                         [reference] + tf.gradients(reference, [x, w, b], dy)])
    for g, r in zip(got, want):
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-5)


def test_conv_and_transpose_shapes():
    with tf.Graph().as_default():
        x = tf.zeros([2, 7, 5, 3])
        assert ops.conv2d(x, 8, name="c").shape.as_list() == [2, 4, 3, 8]
        assert ops.conv2d_transpose(x, 6, name="t").shape.as_list() == [2, 14, 10, 6]
        assert ops.fully_connected(tf.zeros([2, 1, 1, 9]), 4).shape.as_list() == [2, 1, 1, 4]


def test_batch_norm_train_and_inference_by_hand():
    x = np.arange(2 * 1 * 2 * 3, dtype=np.float32).reshape(2, 1, 2, 3) ** 1.5
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    with tf.Graph().as_default():
        with tf.variable_scope("layer", reuse=tf.AUTO_REUSE):  # as the networks share them
            y_train = ops.batch_norm(tf.constant(x), training=True, decay=0.9, name="bn")
            y_infer = ops.batch_norm(tf.constant(x), training=False, name="bn")
        updates = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
        assert len(updates) == 2
        with tf.variable_scope("layer/bn", reuse=True):
            moving_mean = tf.get_variable("moving_mean")
            moving_var = tf.get_variable("moving_variance")
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            got = sess.run(y_train)
            np.testing.assert_allclose(got, (x - mean) / np.sqrt(var + 1e-3), rtol=1e-4,
                                       atol=1e-4)
            # Inference: the moving averages (0 and 1 at first), not the batch.
            np.testing.assert_allclose(sess.run(y_infer), x / np.sqrt(1 + 1e-3), rtol=1e-5)
            sess.run(updates)
            m, v = sess.run([moving_mean, moving_var])
            np.testing.assert_allclose(m, 0.1 * mean, rtol=1e-5)
            # The update uses the batch variance (TF may apply Bessel's correction).
            n = x.size // 3
            assert np.allclose(v, 0.9 + 0.1 * var, rtol=1e-4) or \
                np.allclose(v, 0.9 + 0.1 * var * n / (n - 1), rtol=1e-4)
            sess.run([moving_mean.assign([1.0, 2.0, 3.0]), moving_var.assign([4.0, 4.0, 4.0])])
            np.testing.assert_allclose(sess.run(y_infer),
                                       (x - [1.0, 2.0, 3.0]) / np.sqrt(4 + 1e-3), rtol=1e-5)


def test_batch_norm_without_update_adds_no_update_ops():
    with tf.Graph().as_default():
        ops.batch_norm(tf.zeros([2, 2, 2, 3]), training=True, update_stats=False)
        assert tf.get_collection(tf.GraphKeys.UPDATE_OPS) == []


def test_instance_norm_normalises_each_example():
    rs = np.random.RandomState(0)
    x = (rs.randn(2, 4, 3, 2) * [1.0, 5.0] + [3.0, -2.0]).astype(np.float32)
    with tf.Graph().as_default():
        y = ops.instance_norm(tf.constant(x))
        with tf.variable_scope("instance_norm", reuse=True):
            scale, offset = tf.get_variable("scale"), tf.get_variable("offset")
        got, s, o = run([y, scale, offset])
    mean = x.mean(axis=(1, 2), keepdims=True)
    var = x.var(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(got, s * (x - mean) / np.sqrt(var + 1e-6) + o, rtol=1e-4,
                               atol=1e-5)


def test_unknown_norm_or_method_is_refused():
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match="norm_type must be one of"):
            ops.activate_and_normalize(tf.zeros([1, 2, 2, 1]), None, "layer", True)
        with pytest.raises(ValueError, match="'bilinear' or 'nn'"):
            ops.upsample_conv2d(tf.zeros([1, 2, 2, 1]), 3, "cubic")


@pytest.mark.parametrize("kind", ["dense", "conv", "deconv"])
def test_weight_norm_is_g_times_v_over_its_norm_values_and_gradients(kind):
    # The layers scale their output by g / ||v||; computed here from the
    # definition, w = g v / ||v|| per output unit, in NumPy-made weights fed
    # to TensorFlow's plain ops.
    rs = np.random.RandomState(3)
    with tf.Graph().as_default():
        if kind == "dense":
            x = tf.constant(rs.normal(size=(5, 7)).astype(np.float32))
            with tf.variable_scope("layer"):
                y = ops.weight_norm_dense(x, 4, train_scale=True)
        else:
            x = tf.constant(rs.normal(size=(2, 6, 6, 3)).astype(np.float32))
            layer = ops.weight_norm_conv2d if kind == "conv" else ops.weight_norm_conv2d_transpose
            with tf.variable_scope("layer"):
                y = layer(x, 4, k=3, s=2, train_scale=True)
        v, g, b = [v for v in tf.global_variables()]
        sess = tf.Session()
        sess.run(tf.global_variables_initializer())
        sess.run([tf.assign(g, rs.uniform(0.5, 2.0, 4)), tf.assign(b, rs.normal(size=4))])
        v_np, g_np, b_np = sess.run([v, g, b])
        unit_axis = {"dense": 1, "conv": 3, "deconv": 2}[kind]
        other = tuple(a for a in range(v_np.ndim) if a != unit_axis)
        shape = [1] * v_np.ndim
        shape[unit_axis] = 4
        w_np = v_np * (g_np / np.sqrt(1e-6 + np.square(v_np).sum(axis=other))).reshape(shape)
        w = tf.constant(w_np)
        if kind == "dense":
            expected = tf.matmul(x, w) + b_np
        elif kind == "conv":
            expected = tf.nn.conv2d(x, w, [1, 2, 2, 1], "SAME") + b_np
        else:
            expected = tf.nn.conv2d_transpose(x, w, [2, 12, 12, 4], [1, 2, 2, 1], "SAME") + b_np
        weights = tf.constant(rs.normal(size=y.shape.as_list()).astype(np.float32))
        # d/dv and d/dg of a fixed projection, against the chain rule through w
        grads = tf.gradients(tf.reduce_sum(y * weights), [v, g, x])
        dw = tf.gradients(tf.reduce_sum(expected * weights), [w, x])
        got, want, dw_np = sess.run([y, expected, dw])
        norm = np.sqrt(1e-6 + np.square(v_np).sum(axis=other, keepdims=True))
        direction = v_np / norm
        dg_want = (dw_np[0] * direction).sum(axis=other)
        scale = g_np.reshape(shape) / norm
        dv_want = scale * (dw_np[0] - direction * (dw_np[0] * direction).sum(axis=other,
                                                                             keepdims=True))
        dv, dg, dx = sess.run(grads)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dg, dg_want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dv, dv_want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dx, dw_np[1], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("shape", [[4000, 50], [20, 101, 3]])
def test_standard_normal_has_the_normal_distribution(shape):
    with tf.Graph().as_default():
        tf.set_random_seed(1)  # the bounds are ~5 standard errors: fixed, not flaky
        step = tf.train.get_or_create_global_step()  # what the draws are keyed by
        sample = ops.standard_normal(shape)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            a = sess.run(sample)
            sess.run(tf.assign_add(step, 1))
            b = sess.run(sample)
    assert a.shape == tuple(shape) and a.dtype == np.float32
    assert not np.array_equal(a, b)  # fresh numbers every step
    x = a.ravel()
    # mean, variance, skewness and kurtosis of N(0, 1), within ~5 standard errors
    n = float(x.size)
    assert abs(x.mean()) < 5 / np.sqrt(n)
    assert abs(x.var() - 1) < 5 * np.sqrt(2 / n)
    assert abs(np.mean(x ** 3)) < 5 * np.sqrt(15 / n)
    assert abs(np.mean(x ** 4) - 3) < 5 * np.sqrt(96 / n)
    # the whole distribution: Kolmogorov-Smirnov distance to the normal CDF
    from scipy import stats
    assert stats.kstest(x, "norm").pvalue > 1e-3
    # the cos and sin halves of a row are independent of each other
    if shape[-1] % 2 == 0:
        half = shape[-1] // 2
        r = np.corrcoef(a[..., :half].ravel(), a[..., half:].ravel())[0, 1]
        assert abs(r) < 5 / np.sqrt(n / 2)


def draws(seed, step, stream, make):
    """What `make()` draws in a new graph of graph seed `seed`, keyed by
    (step, stream); twice, from two sessions."""
    with tf.Graph().as_default():
        tf.set_random_seed(seed)
        ops.noise_key(tf.constant(step, tf.int64), stream)
        sample = make()
        with tf.Session() as sess:
            first = sess.run(sample)
        with tf.Session() as sess:
            assert np.array_equal(sess.run(sample), first)  # no sequence: the key decides
    return first


@pytest.mark.parametrize("make", [
    lambda: ops.random_uniform([50, 8], -1.0, 1.0, name="z"),
    lambda: ops.standard_normal([50, 8], name="noise"),
    lambda: ops.standard_normal(tf.constant([50, 8]), name="noise"),  # a shape known at run time
    lambda: ops.dropout(tf.ones([50, 8]), 0.5, True)], ids=["uniform", "normal", "dynamic",
                                                             "dropout"])
def test_draws_are_keyed_by_the_seed_the_step_the_stream_and_the_name(make):
    """A resumed run draws at step n what an uninterrupted one drew there;
    each card or worker (stream) and each draw its own numbers."""
    base = draws(3, 12, 0, make)
    assert np.array_equal(draws(3, 12, 0, make), base)  # another process, the same key
    for other in (draws(4, 12, 0, make), draws(3, 13, 0, make), draws(3, 12, 1, make)):
        assert not np.array_equal(other, base)
    with tf.Graph().as_default():
        ops.noise_key(tf.constant(12, tf.int64), 0)
        first, second = make(), make()  # two draws of one graph: other names
        assert first.op.name != second.op.name
        a, b = run([first, second])
    assert not np.array_equal(a, b)


def test_random_uniform_covers_its_range_and_dropout_scales_what_it_keeps():
    with tf.Graph().as_default():
        ops.noise_key(tf.constant(5, tf.int64))
        uniform = ops.random_uniform([100000], -1.0, 1.0)
        x = tf.fill([400, 250], 2.0)
        dropped, clean = ops.dropout(x, 0.3, True), ops.dropout(x, 0.3, False)
        u, d, c = run([uniform, dropped, clean])
    assert -1.0 <= u.min() < -0.999 and 0.999 < u.max() < 1.0 and abs(u.mean()) < 0.01
    assert set(np.unique(d)) == {0.0, np.float32(2.0 / 0.7)}  # kept units scaled by 1 / (1 - rate)
    assert abs((d == 0).mean() - 0.3) < 0.01 and (c == 2.0).all()


def test_gaussian_noise_scales_and_switches_off_at_inference():
    with tf.Graph().as_default():
        x = tf.fill([500, 40], 3.0)
        noisy, clean = run([ops.gaussian_noise(x, 0.5, True), ops.gaussian_noise(x, 0.5, False)])
    assert abs(noisy.std() - 0.5) < 0.02 and abs(noisy.mean() - 3.0) < 0.02
    assert (clean == 3.0).all()


# The paper's layers: weight normalisation, minibatch discrimination.

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


def test_leaky_relu_keeps_grapplers_remapper_working(capfd):
    """The reference's leaky ReLU after a conv and a bias, differentiated for
    the conv's input alone (as G's step does through D): TensorFlow's graph
    optimiser completes, so no "remapper failed" line; and the values and
    slopes are leaky ReLU's, worked out by hand (0.2 at 0, as TensorFlow's)."""
    with tf.Graph().as_default():
        x = tf.constant([[-2.0, -0.5, 0.0, 0.5, 3.0]])
        y = ops.leaky_relu(x)
        slope = tf.gradients(tf.reduce_sum(y * [1.0, 2.0, 3.0, 4.0, 5.0]), x)[0]
        images = tf.random_uniform([4, 8, 8, 3], -1.0, 1.0)  # not constant-folded away
        filters = tf.get_variable("filters", [3, 3, 3, 4])
        bias = tf.get_variable("bias", [4])
        out = ops.leaky_relu(tf.nn.bias_add(tf.nn.conv2d(images, filters, [1, 1, 1, 1], "SAME"),
                                            bias))
        grad = tf.gradients(tf.reduce_sum(tf.square(out)), [images])[0]
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            sess.run(grad)
            values, slopes = sess.run([y, slope])
    assert "remapper failed" not in capfd.readouterr().err
    np.testing.assert_allclose(values, [[-0.4, -0.1, 0.0, 0.5, 3.0]], rtol=1e-6)
    np.testing.assert_allclose(slopes, [[0.2, 0.4, 0.6, 4.0, 5.0]], rtol=1e-6)

