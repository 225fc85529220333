"""Layers of the SSGAN networks, written with tf.get_variable and tf.nn only,
so they build the same graph on TF 1.15 and on TF 2.x (compat.v1).

Every layer opens its own variable scope; tensors are NHWC. Layers compute in
their input's dtype (float32, or bfloat16 / float16 under --precision): they
ask tf.get_variable for weights of that dtype, and precision.variable_getter
stores those as float32 and casts them on reading. Normalisation parameters
and statistics (batch, instance and weight norm) stay float32.
Initialisers follow the reference: Glorot-uniform weights for convolutions
and fully connected layers (slim's default), truncated normal (stddev 0.01)
for transposed convolutions, zero biases.
"""

import weakref
import zlib

import numpy as np
import tensorflow.compat.v1 as tf

from flag_table import BN_DECAY, NORM_TYPES

BATCH_NORM_EPSILON = 1e-3  # contrib.layers.batch_norm's default, as the reference used
INSTANCE_NORM_EPSILON = 1e-6
# Faster forms of the same functions (False: the reference's formulation):


def leaky_relu(x, leak=0.2):
    """max(x, leak * x): the reference's lrelu (0.2), with its gradient (the
    slope leak where x <= 0, else 1) read from the output, as ReluGrad does.

    TensorFlow's own gradient, LeakyReluGrad, reads the input: after a conv and
    a bias, that is the BiasAdd, which grappler's remapper fuses away with the
    conv and the activation. On a graph that needs a conv's input gradient but
    not its filter's (D in G's step) the remapper then gives up on the whole
    graph ("remapper failed ... fanout ... LeakyReluGrad exist for missing node
    .../BiasAdd") and applies none of its fusions there."""
    @tf.custom_gradient
    def activation(inputs):
        outputs = tf.nn.leaky_relu(inputs, alpha=leak)

        def slope(upstream):  # outputs > 0 exactly where inputs > 0
            positive = tf.cast(outputs > 0, upstream.dtype)
            return upstream * (positive * (1.0 - leak) + leak)
        return outputs, slope
    return activation(x)


def huber_loss(labels, predictions, delta=1.0):
    """Elementwise Huber loss: 0.5 r^2 where |r| < delta, else delta (|r| - delta / 2).

    Args:
      labels, predictions: tensors of the same shape.
    Returns:
      Tensor of that shape (not reduced).
    """
    if labels.shape.is_fully_defined() and predictions.shape.is_fully_defined() and \
            labels.shape.as_list() != predictions.shape.as_list():
        raise ValueError("huber_loss: labels have shape %s but predictions %s"
                         % (labels.shape, predictions.shape))
    residual = tf.abs(predictions - labels)
    return tf.where(residual < delta, 0.5 * tf.square(residual),
                    delta * residual - 0.5 * delta * delta)


def add_bias(y, b):
    """y + b over the last axis. In float32 tf.nn.bias_add, which oneDNN fuses
    into the convolution; in 16-bit dtypes a broadcast add, because
    BiasAddGrad sums bfloat16 in bfloat16 (2-3% off over a batch of
    feature maps) while the add's gradient (a reduce_sum) sums in float32."""
    if y.dtype == tf.float32:
        return tf.nn.bias_add(y, b)
    return y + b


def _channels(x):
    return int(x.shape[-1])


def conv2d(x, out_channels, k=3, s=2, name="conv", fast=True):
    """k x k convolution with stride s, 'SAME' padding, plus bias.

    [B, H, W, C] -> [B, ceil(H / s), ceil(W / s), out_channels]. fast: onto a
    1 x 1 output, one matmul instead of tf.nn.conv2d (see _conv2d_same); the
    same variables and values either way.
    """
    with tf.variable_scope(name):
        w = tf.get_variable("weights", [k, k, _channels(x), out_channels], x.dtype,
                            initializer=tf.glorot_uniform_initializer())
        b = tf.get_variable("biases", [out_channels], x.dtype, initializer=tf.zeros_initializer())
        return add_bias(_conv2d_same(x, w, s, fast), b)


def _conv2d_same(x, w, s, fast=True):
    """tf.nn.conv2d(x, w, stride s, 'SAME'); as one matmul when the output is
    a single pixel (a deep D layer: 2 x 2 -> 1 x 1), where the window covers
    the whole input and oneDNN's convolution kernels, its filter gradient
    above all, are an order of magnitude slower than the matmul they amount
    to."""
    _, height, width, c_in = x.shape.as_list()
    k, c_out = int(w.shape[0]), int(w.shape[-1])
    if not fast or -(-height // s) != 1 or -(-width // s) != 1 or \
            height > k or width > k:
        return tf.nn.conv2d(x, w, [1, s, s, 1], "SAME")
    # 'SAME' pads k - size in total, the smaller half before: the taps that
    # fall on the image start at row (k - height) // 2, column (k - width) // 2.
    top, left = (k - height) // 2, (k - width) // 2
    window = tf.reshape(w[top:top + height, left:left + width], [height * width * c_in, c_out])
    y = tf.matmul(tf.reshape(x, [-1, height * width * c_in]), window)
    return tf.reshape(y, [-1, 1, 1, c_out])


def conv2d_transpose(x, out_channels, k=3, s=2, name="deconv"):
    """k x k transposed convolution with stride s ('SAME'), plus bias.

    [B, H, W, C] -> [B, H * s, W * s, out_channels].
    """
    with tf.variable_scope(name):
        batch, height, width, _ = x.shape.as_list()
        w = tf.get_variable("weights", [k, k, out_channels, _channels(x)], x.dtype,
                            initializer=tf.truncated_normal_initializer(stddev=0.01))
        b = tf.get_variable("biases", [out_channels], x.dtype, initializer=tf.zeros_initializer())
        batch = batch if batch is not None else tf.shape(x)[0]
        output_shape = tf.stack([batch, height * s, width * s, out_channels])
        y = tf.nn.conv2d_transpose(x, w, output_shape, [1, s, s, 1], "SAME")
        y = tf.reshape(y, [-1, height * s, width * s, out_channels])  # static shape
        return add_bias(y, b)


def _resize(x, size, method):
    """Resized x in x's dtype. TensorFlow's bilinear resize returns float32
    whatever its input; TF 1.15's nearest-neighbour resize has no bfloat16
    kernel, so a bfloat16 x is resized in float32 (exactly: it copies values)."""
    if method == "bilinear":
        return tf.cast(tf.image.resize_bilinear(x, size), x.dtype)
    if method == "nn":
        if x.dtype == tf.bfloat16:
            return tf.cast(tf.image.resize_nearest_neighbor(tf.cast(x, tf.float32), size),
                           x.dtype)
        return tf.image.resize_nearest_neighbor(x, size)
    raise ValueError("upsampling method must be 'bilinear' or 'nn', got %r" % method)


def _resize_matrix(n, s, method):
    """A [s * n, n]: resizing one axis of length n by s is y = A x. Found by
    resizing the n one-hot images with TensorFlow itself, so it is exactly
    TF's resize (corner alignment and all)."""
    basis = tf.reshape(tf.eye(n), [n, n, 1, 1])  # n images of size n x 1
    return tf.transpose(tf.reshape(_resize(basis, [s * n, 1], method), [n, s * n]))


def _tap_matrix(n, s, k, method):
    """M [s * n, n * k], M[p, (h, d)] = A[p + d - k // 2, h]: the weight of
    input position h in what kernel tap d reads at output position p of a
    resize-by-s then 'SAME' k-tap convolution (0 where the tap reads padding)."""
    pad = k // 2
    a = tf.pad(_resize_matrix(n, s, method), [[pad, pad], [0, 0]])
    return tf.reshape(tf.stack([a[d:d + s * n] for d in range(k)], axis=2), [s * n, n * k])


def _weight_bound(x, k, c_out):
    """Whether a k x k upsampling conv of x to c_out channels has more kernel
    columns (k * k * c_out) than the batch has input pixels: the generator's
    first blocks at small batches."""
    batch, height, width, _ = x.shape.as_list()
    return batch is not None and batch * height * width < k * k * c_out


def _upsample_conv_separable(x, w, method, s):
    """conv2d(resize(x, s), w, 'SAME') without resizing.

    Resizing acts on space and the kernel's channel mixing on channels, so
    they commute: every input pixel is first multiplied by each of the k x k
    kernel taps (one matmul at the input's resolution, a quarter of the
    convolution's multiply-adds for s = 2), then the taps' results are
    resized, shifted and summed by two small matmuls with the constant
    matrices of _tap_matrix, one per image axis (resizing is separable).
    Equal to the resize-then-conv path up to float rounding, and 2-3x
    faster on CPUs for the generator's layers, forward and backward: the
    resize's gradient and convolutions over small maps are slow there.
    """
    _, height, width, c_in = x.shape.as_list()
    k, _, _, c_out = w.shape.as_list()
    if _weight_bound(x, k, c_out):  # one matmul per tap: the kernel is never transposed
        z = tf.matmul(tf.reshape(x, [1, -1, c_in]), tf.reshape(w, [k * k, c_in, c_out]))
        z = tf.transpose(tf.reshape(z, [k, k, -1, height, width, c_out]), [2, 3, 0, 4, 1, 5])
    else:
        taps = tf.reshape(tf.transpose(w, [2, 0, 1, 3]), [c_in, k * k * c_out])
        z = tf.matmul(tf.reshape(x, [-1, c_in]), taps)  # [B*H*W, (dy, dx, C_out)]
        z = tf.transpose(tf.reshape(z, [-1, height, width, k, k, c_out]), [0, 1, 3, 2, 4, 5])
    # z: [B, H, dy, W, dx, C_out], every input pixel times every tap.
    along_w = tf.cast(_tap_matrix(width, s, k, method), x.dtype)  # [sW, W*k]
    y = tf.matmul(along_w, tf.reshape(z, [-1, width * k, c_out]))  # [B*H*k, sW, C_out]
    along_h = tf.cast(_tap_matrix(height, s, k, method), x.dtype)  # [sH, H*k]
    y = tf.matmul(along_h, tf.reshape(y, [-1, height * k, s * width * c_out]))
    return tf.reshape(y, [-1, s * height, s * width, c_out])


def upsample_conv2d(x, out_channels, method, k=3, s=2, name="deconv", fast=True):
    """Resizes by s (bilinear or nearest neighbour), then a k x k stride-1 conv.

    [B, H, W, C] -> [B, H * s, W * s, out_channels]. fast: as separable
    matmuls without building the resized tensor (_upsample_conv_separable);
    otherwise the literal resize then conv2d, with the same variables and
    values (tests compare them; the benchmark counts the model's FLOPs on it).
    """
    with tf.variable_scope(name):
        if method not in ("bilinear", "nn"):
            raise ValueError("upsampling method must be 'bilinear' or 'nn', got %r" % method)
        height, width = x.shape.as_list()[1:3]
        if s == 1:  # resizing to the same size is the identity
            return conv2d(x, out_channels, k=k, s=1, name="conv", fast=fast)
        if not fast:
            return conv2d(_resize(x, [height * s, width * s], method), out_channels, k=k, s=1,
                          name="conv", fast=False)
        with tf.variable_scope("conv"):
            w = tf.get_variable("weights", [k, k, _channels(x), out_channels], x.dtype,
                                initializer=tf.glorot_uniform_initializer())
            b = tf.get_variable("biases", [out_channels], x.dtype,
                                initializer=tf.zeros_initializer())
            return add_bias(_upsample_conv_separable(x, w, method, s), b)


def fully_connected(x, out_units, name="fc"):
    """Dense layer over the last axis: [..., D] -> [..., out_units]."""
    with tf.variable_scope(name):
        shape = x.shape.as_list()
        w = tf.get_variable("weights", [shape[-1], out_units], x.dtype,
                            initializer=tf.glorot_uniform_initializer())
        b = tf.get_variable("biases", [out_units], x.dtype, initializer=tf.zeros_initializer())
        y = add_bias(tf.matmul(tf.reshape(x, [-1, shape[-1]]), w), b)
        return tf.reshape(y, [-1] + shape[1:-1] + [out_units])


def batch_norm(x, training, update_stats=True, decay=BN_DECAY, name="batch_norm"):
    """Batch normalisation of an NHWC tensor, with learned scale and offset.

    Args:
      x: [B, H, W, C].
      training: Python bool. True normalises with the batch's statistics;
        False with the moving averages.
      update_stats: in training, whether this call updates the moving
        averages. The update ops go to tf.GraphKeys.UPDATE_OPS; the train ops
        run them. The discriminator sees real and generated batches in
        separate calls, and only the real call should update its statistics,
        or inference would normalise with a mixture of the two.
      decay: moving-average decay per update.
    """
    with tf.variable_scope(name):
        channels = _channels(x)
        # float32 whatever x's dtype: fused batch norm takes bfloat16 / float16
        # x with float32 parameters and statistics.
        beta = tf.get_variable("beta", [channels], tf.float32, tf.zeros_initializer())
        gamma = tf.get_variable("gamma", [channels], tf.float32, tf.ones_initializer())
        moving_mean = tf.get_variable("moving_mean", [channels], tf.float32,
                                      tf.zeros_initializer(), trainable=False)
        moving_variance = tf.get_variable("moving_variance", [channels], tf.float32,
                                          tf.ones_initializer(), trainable=False)
        if not training:
            y, _, _ = tf.nn.fused_batch_norm(x, gamma, beta, mean=moving_mean,
                                             variance=moving_variance,
                                             epsilon=BATCH_NORM_EPSILON, is_training=False)
            return y
        y, mean, variance = tf.nn.fused_batch_norm(x, gamma, beta, epsilon=BATCH_NORM_EPSILON,
                                                   is_training=True)
        if update_stats:
            for moving, value in ((moving_mean, mean), (moving_variance, variance)):
                update = tf.assign_sub(moving, (moving - value) * (1.0 - decay))
                tf.add_to_collection(tf.GraphKeys.UPDATE_OPS, update)
        return y


def instance_norm(x, name="instance_norm"):
    """Normalises each example's channels over H and W, with learned scale and offset."""
    with tf.variable_scope(name):
        channels = _channels(x)
        scale = tf.get_variable("scale", [channels], tf.float32,
                                tf.random_normal_initializer(1.0, 0.02))
        offset = tf.get_variable("offset", [channels], tf.float32,
                                 tf.random_normal_initializer(0.0, 0.02))
        x32 = tf.cast(x, tf.float32)  # statistics in float32 whatever x's dtype
        mean, variance = tf.nn.moments(x32, axes=[1, 2], keep_dims=True)
        y = scale * (x32 - mean) * tf.rsqrt(variance + INSTANCE_NORM_EPSILON) + offset
        return tf.cast(y, x.dtype)


def activate_and_normalize(x, activation, norm_type, training, update_stats=True,
                           bn_decay=BN_DECAY):
    """The reference's order: activation first, then normalisation."""
    if activation is not None:
        x = activation(x)
    if norm_type == "batch":
        return batch_norm(x, training, update_stats, bn_decay)
    if norm_type == "instance":
        return instance_norm(x)
    if norm_type in ("None", None):
        return x
    raise ValueError("norm_type must be one of %s, got %r" % (NORM_TYPES, norm_type))


# Layers of the Improved-GAN paper's networks (openai/improved-gan): weight
# normalisation with data-dependent initialisation, Gaussian noise, dropout,
# minibatch discrimination.

WEIGHT_NORM_INIT = "weight_norm_init"  # graph collection of the init assign ops
WEIGHT_NORM_EPSILON = 1e-6


def _weight_norm_output(linear, v_shape, v_axes, init, train_scale, init_stdv, stddev,
                        initializer=None, epsilon=WEIGHT_NORM_EPSILON):
    """Shared body of the weight-normalised layers: w = g * v / ||v||, y = linear(w) + b.

    The layers here are linear in w and each unit's weights are scaled by
    one number, so y = linear(v) * (g / ||v||) + b: the scale multiplies the
    output (batch x units values) rather than the weights (inputs x units),
    once per call. Same function and gradients as normalising w first.

    In `init` mode (run once on a data batch before training) the output is
    standardised per unit instead, and assign ops setting g = init_stdv / std
    and b = -mean * init_stdv / std are added to the WEIGHT_NORM_INIT
    collection, so that afterwards the layer's pre-activations on that batch
    have mean 0 and standard deviation init_stdv. Init mode reads neither g
    nor b, so all layers' assigns can run in one session call.

    Args:
      linear: w -> the layer's linear output (units on its last axis) for
        float32 weights w of shape v_shape.
      v_axes: the axes of v summed for each unit's norm.
      initializer: of v; default N(0, stddev).
      epsilon: added to ||v||^2 under the root: the paper's WeightNormLayer and
        l2normalize have 1e-6, its nn.DenseLayer (the MNIST D) none.
    """
    units = v_shape[[i for i in range(len(v_shape)) if i not in v_axes][0]]
    # The norms are computed in float32 and only the product with the input
    # runs in the input's dtype (linear receives v in float32).
    v = tf.get_variable("v", v_shape, tf.float32,
                        initializer or tf.random_normal_initializer(0.0, stddev))
    g = tf.get_variable("g", [units], tf.float32, tf.ones_initializer(), trainable=train_scale)
    b = tf.get_variable("b", [units], tf.float32, tf.zeros_initializer())
    inv_norm = tf.rsqrt(epsilon + tf.reduce_sum(tf.square(v), axis=v_axes))
    y = linear(v)
    out_axes = list(range(len(y.shape) - 1))
    if init:
        t = tf.cast(y, tf.float32) * inv_norm  # the output of the unit-norm directions
        mean, variance = tf.nn.moments(t, axes=out_axes)
        inv_std = init_stdv * tf.rsqrt(variance + 1e-12)
        tf.add_to_collection(WEIGHT_NORM_INIT, tf.assign(g, inv_std))
        tf.add_to_collection(WEIGHT_NORM_INIT, tf.assign(b, -mean * inv_std))
        return tf.cast((t - mean) * inv_std, y.dtype)
    return add_bias(y * tf.cast(g * inv_norm, y.dtype), tf.cast(b, y.dtype))


def weight_norm_dense(x, units, init=False, train_scale=False, init_stdv=1.0, stddev=0.05,
                      initializer=None, epsilon=WEIGHT_NORM_EPSILON, name="dense"):
    """Weight-normalised dense layer [B, D] -> [B, units] (inputs of higher
    rank are flattened). g (per unit) is trained only if train_scale, as in
    the paper's code where hidden layers keep their data-initialised scale.
    v starts N(0, stddev), or from `initializer`; epsilon: see
    _weight_norm_output."""
    with tf.variable_scope(name):
        x = tf.reshape(x, [-1, int(np.prod(x.shape.as_list()[1:]))])
        return _weight_norm_output(lambda w: tf.matmul(x, tf.cast(w, x.dtype)),
                                   [int(x.shape[1]), units], (0,), init, train_scale,
                                   init_stdv, stddev, initializer, epsilon)


def weight_norm_conv2d(x, out_channels, k=3, s=1, padding="SAME", init=False,
                       train_scale=False, init_stdv=1.0, stddev=0.05, name="conv"):
    """Weight-normalised k x k convolution, [B, H, W, C] -> [B, H', W', out].
    padding: 'SAME', 'VALID', or an int p (p pixels of zeros on every side,
    as Theano's pad=p: a stride-2 3x3 conv with p=1 keeps pixel alignment
    symmetric, unlike TensorFlow's 'SAME')."""
    with tf.variable_scope(name):
        if isinstance(padding, int):
            x = tf.pad(x, [[0, 0], [padding, padding], [padding, padding], [0, 0]])
            padding = "VALID"
        return _weight_norm_output(
            lambda w: tf.nn.conv2d(x, tf.cast(w, x.dtype), [1, s, s, 1], padding),
            [k, k, _channels(x), out_channels], (0, 1, 2), init, train_scale, init_stdv,
            stddev)


def weight_norm_conv2d_transpose(x, out_channels, k=5, s=2, init=False, train_scale=False,
                                 init_stdv=1.0, stddev=0.05, name="deconv"):
    """Weight-normalised transposed convolution, [B, H, W, C] -> [B, sH, sW, out]."""
    with tf.variable_scope(name):
        batch, height, width, _ = x.shape.as_list()
        batch = batch if batch is not None else tf.shape(x)[0]
        output_shape = tf.stack([batch, height * s, width * s, out_channels])

        def linear(w):
            y = tf.nn.conv2d_transpose(x, tf.cast(w, x.dtype), output_shape, [1, s, s, 1],
                                       "SAME")
            return tf.reshape(y, [-1, height * s, width * s, out_channels])
        return _weight_norm_output(linear, [k, k, out_channels, _channels(x)], (0, 1, 3),
                                   init, train_scale, init_stdv, stddev)


def noise_key(step, stream=0, graph=None):
    """Keys the random draws of `graph` (default: the default graph) made
    after this call: G's z, Gaussian noise, dropout. A draw's numbers are a
    function of the graph's seed (tf.set_random_seed), `stream` (int: a
    card's rank or a cluster worker's index, so that each draws its own),
    the draw's name scope and `step` (an int64 scalar tensor, read once per
    run: the global step). Stateless random ops make no sequence that
    restarts with the process, so a run resumed at step n draws what an
    uninterrupted run drew at step n. Without a key, a graph's draws read
    its global step if it has one, else step 0."""
    _NOISE_KEYS[graph or tf.get_default_graph()] = (tf.cast(step, tf.int64), int(stream))


_NOISE_KEYS = weakref.WeakKeyDictionary()  # graph -> (step tensor, stream)


def _draw_seed(scope):
    """The stateless seed [step, draw] of the draw in name scope `scope`."""
    graph = tf.get_default_graph()
    if graph not in _NOISE_KEYS:
        step = tf.train.get_global_step(graph)
        noise_key(tf.constant(0, tf.int64) if step is None else step, graph=graph)
    step, stream = _NOISE_KEYS[graph]
    draw = zlib.crc32(("%s/%d/%s" % (graph.seed or 0, stream, scope)).encode("utf-8"))
    return tf.stack([step, tf.constant(draw, tf.int64)])


def random_uniform(shape, minval=0.0, maxval=1.0, name=None):
    """U[minval, maxval) float32 samples of `shape`, keyed (see noise_key);
    `name` names the sample, so that a test can read what a step drew."""
    with tf.name_scope(name, "uniform") as scope:
        unit = tf.random.stateless_uniform(shape, _draw_seed(scope))
        return tf.add(minval, (maxval - minval) * unit, name=scope)


def standard_normal(shape, name=None):
    """float32 N(0, 1) samples of `shape` [..., D], keyed (see noise_key). A
    static shape takes the Box-Muller transform: uniform pairs (u1, u2) give
    the independent normals sqrt(-2 ln u1) cos(2 pi u2) and sqrt(-2 ln u1)
    sin(2 pi u2). It is the transform TensorFlow's normal kernels apply one
    element at a time; written as tensor ops it is vectorised, and the
    paper's MLP discriminator draws 3,000 normals per image per pass: twice
    as fast on CPUs. u1 in (0, 1] as 1 - U[0, 1), so the tails end at 5.6
    sigma (TF's kernel clamps u1 at 1e-7: 5.7 sigma). `name` names the
    sample, so that a test can read the numbers a training step drew."""
    with tf.name_scope(name, "normal") as scope:
        if not isinstance(shape, (list, tuple)) or not all(isinstance(d, int) for d in shape):
            return tf.identity(tf.random.stateless_normal(shape, _draw_seed(scope)), name=scope)
        half = list(shape[:-1]) + [(shape[-1] + 1) // 2]
        radius = tf.sqrt(-2.0 * tf.log(1.0 - random_uniform(half, name="u1")))
        angle = (2.0 * np.pi) * random_uniform(half, name="u2")
        normal = tf.concat([radius * tf.cos(angle), radius * tf.sin(angle)], axis=-1)
        return tf.identity(normal[..., :shape[-1]], name=scope)


def gaussian_noise(x, stddev, training, name=None):
    """x + stddev * N(0, 1) noise in training; x at inference. `name` names
    the N(0, 1) sample (see standard_normal)."""
    if not training or stddev == 0:
        return x
    shape = x.shape.as_list() if x.shape.is_fully_defined() else tf.shape(x)
    return x + tf.cast(stddev * standard_normal(shape, name), x.dtype)


def dropout(x, rate, training, name="dropout"):
    """Drops a fraction `rate` of the units in training (keyed draws, see
    noise_key) and scales the rest by 1 / (1 - rate), as tf.nn.dropout does;
    identity at inference."""
    if not training or rate == 0:
        return x
    with tf.name_scope(name):
        shape = x.shape.as_list() if x.shape.is_fully_defined() else tf.shape(x)
        keep = tf.cast(random_uniform(shape, name="uniform") >= rate, x.dtype)
        return x * keep * tf.cast(1.0 / (1.0 - rate), x.dtype)


def batch_norm_no_scale(x, epsilon=1e-6, name="batch_norm"):
    """Batch normalisation with the batch's own statistics, a learned offset
    and no scale: the paper's generators (nn.batch_norm(..., g=None)), which
    normalise with batch statistics at sampling time too. x: [B, ..., C]."""
    with tf.variable_scope(name):
        beta = tf.get_variable("beta", [_channels(x)], tf.float32, tf.zeros_initializer())
        x32 = tf.cast(x, tf.float32)  # statistics in float32 whatever x's dtype
        mean, variance = tf.nn.moments(x32, axes=list(range(len(x.shape) - 1)))
        return tf.cast((x32 - mean) * tf.rsqrt(variance + epsilon) + beta, x.dtype)


def minibatch_discrimination(x, num_kernels=100, dim_per_kernel=5, init=False,
                             name="minibatch"):
    """The paper's minibatch discrimination: [B, A] -> [B, A + num_kernels].

    Each example's features are projected to num_kernels rows of
    dim_per_kernel; o_b(x_i) = sum_{j != i} exp(-||M_i,b - M_j,b||_1) says
    how close the other examples of the batch are, so D can see a generator
    that produces the same image again and again. The projection is weight
    normalised (a log scale per kernel row); in `init` mode the scale is set
    so that the mean nearest-neighbour distance is 2, and the offset so that
    the outputs have mean 0 on the init batch (assigns go to WEIGHT_NORM_INIT).
    """
    with tf.variable_scope(name):
        x = tf.cast(x, tf.float32)  # distances and exp in float32 whatever x's dtype
        features = int(x.shape[1])
        theta = tf.get_variable("theta", [features, num_kernels, dim_per_kernel], tf.float32,
                                tf.random_normal_initializer(0.0, 0.05))
        log_scale = tf.get_variable("log_scale", [num_kernels, dim_per_kernel], tf.float32,
                                    tf.zeros_initializer())
        b = tf.get_variable("b", [num_kernels], tf.float32, tf.constant_initializer(-1.0))
        direction = theta * tf.rsqrt(tf.reduce_sum(tf.square(theta), axis=0, keepdims=True))
        w = direction if init else direction * tf.exp(log_scale)
        m = tf.tensordot(x, w, [[1], [0]])  # [B, kernels, dim]
        # [B, kernels, B]: L1 distances between the rows of every pair of examples
        distance = tf.reduce_sum(tf.abs(tf.expand_dims(m, 3) - tf.expand_dims(
            tf.transpose(m, [1, 2, 0]), 0)), axis=2)
        batch = tf.shape(x)[0]
        distance += 1e6 * tf.expand_dims(tf.eye(batch), 1)  # leave each example out
        if init:
            scale = 0.5 * tf.reduce_mean(tf.reduce_min(distance, axis=2), axis=0)  # [kernels]
            distance /= tf.reshape(scale, [1, -1, 1])
            tf.add_to_collection(WEIGHT_NORM_INIT, tf.assign(
                log_scale, tf.tile(-tf.log(scale)[:, None], [1, dim_per_kernel])))
        closeness = tf.reduce_sum(tf.exp(-distance), axis=2)  # [B, kernels]
        if init:
            mean = tf.reduce_mean(closeness, axis=0)
            tf.add_to_collection(WEIGHT_NORM_INIT, tf.assign(b, -mean))
            closeness -= mean
        else:
            closeness += b
        return tf.concat([x, closeness], axis=1)
