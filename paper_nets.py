"""The Improved-GAN paper's own networks (openai/improved-gan), selected by
--arch paper:

- grayscale images (MNIST, Fashion-MNIST, any 1-channel size): the MLPs of
  train_mnist_feature_matching.py. D: Gaussian noise (0.3) on the input, then
  weight-normalised dense 1000-500-250-250-250 with ReLU, each followed by
  Gaussian noise (0.5), then a weight-normalised dense layer to K logits.
  G: 100-d noise -> dense 500 -> dense 500 (batch norm, softplus) -> a
  weight-normalised dense layer to the pixels with a sigmoid.
  The noise samples and the hidden layers' outputs are named (input_noise,
  noise1..noise5, relu1..relu5 in D's scope), so that a test can read what
  a training step drew and decided
  (tests/test_paper_equivalence.py); nn.DenseLayer normalises with no
  epsilon under the root, the paper's other weight-norm layers with 1e-6.
- 32x32 colour images (CIFAR-10, SVHN): the conv nets of
  train_cifar_feature_matching.py / train_svhn_feature_matching.py. D: dropout
  0.2, three 3x3 convs of width w1 (the last stride 2), dropout 0.5, three of
  width w2 (the last stride 2), dropout 0.5, a 3x3 'valid' conv, two NIN (1x1)
  layers, global average pooling, a dense layer to K logits; every layer
  weight-normalised, leaky ReLU 0.2. (w1, w2) = (96, 192) for CIFAR-10 and
  (64, 128) for SVHN. G: dense 4x4x512, then 5x5 stride-2 transposed convs to
  256 and 128 channels (batch norm, ReLU) and to 3 channels (weight norm, tanh).

Both discriminators return K+1 logits whose last ("fake") column is 0: the
paper's K-logit classifier, in the shape the rest of the code expects. The
paper's data lives in [0, 1] for MNIST; here pixels are in [-1, 1], so the MLPs
map x -> (x + 1) / 2 on the way in and out, keeping the paper's noise levels
meaningful. Weight-norm layers support the paper's data-dependent
initialisation: call the network once with init=True on a data batch and run
the ops in the ops.WEIGHT_NORM_INIT collection.
"""

import numpy as np
import tensorflow.compat.v1 as tf

import ops
from names import D_SCOPE, G_SCOPE

MLP_UNITS = (1000, 500, 250, 250, 250)
MLP_INPUT_NOISE = 0.3
MLP_HIDDEN_NOISE = 0.5
MLP_DENSE_STDDEV = 0.1  # nn.DenseLayer's theta ~ N(0, 0.1)
G_MLP_UNITS = (500, 500)
CONV_WIDTHS = {"CIFAR10": (96, 192), "SVHN": (64, 128)}
G_CONV_CHANNELS = (512, 256, 128)  # at 4x4, 8x8, 16x16


def conv_widths(dataset_name):
    """(w1, w2) of the paper's conv discriminator for a dataset name."""
    return CONV_WIDTHS.get(dataset_name.upper(), CONV_WIDTHS["CIFAR10"])


def check_image_shape(image_shape):
    """Raises ValueError unless the paper has networks for this shape."""
    height, width, channels = image_shape
    if channels == 1 or (height, width, channels) == (32, 32, 3):
        return
    raise ValueError("--arch paper has networks for grayscale images (the MNIST MLPs) and "
                     "for 32x32x3 images (the CIFAR-10/SVHN conv nets), not %dx%dx%d; use "
                     "--arch reference" % (height, width, channels))


class MLPDiscriminator(object):
    """[B, H, W, 1] in [-1, 1] -> K+1 logits (last 0); features: the last
    250-unit layer's output (before its noise), which the paper matches."""

    def __init__(self, num_classes, minibatch_kernels=0, name=D_SCOPE):
        self.num_classes = num_classes
        self.minibatch_kernels = minibatch_kernels
        self.name = name
        # each example's outputs depend on it alone (see model.build_model)
        self.batch_independent = not minibatch_kernels

    def __call__(self, images, training, update_stats=True, return_features=False,
                 init=False):
        del update_stats  # no batch norm here
        with tf.variable_scope(self.name, reuse=tf.AUTO_REUSE):
            x = (tf.reshape(images, [-1, int(np.prod(images.shape.as_list()[1:]))]) + 1) / 2
            x = ops.gaussian_noise(x, MLP_INPUT_NOISE, training, name="input_noise")
            for i, units in enumerate(MLP_UNITS):
                x = tf.nn.relu(ops.weight_norm_dense(x, units, init=init,
                                                     stddev=MLP_DENSE_STDDEV, epsilon=0.0,
                                                     name="dense%d" % (i + 1)),
                               name="relu%d" % (i + 1))
                features = x
                x = ops.gaussian_noise(x, MLP_HIDDEN_NOISE, training, name="noise%d" % (i + 1))
            if self.minibatch_kernels:
                x = ops.minibatch_discrimination(x, self.minibatch_kernels, init=init)
            logits = ops.weight_norm_dense(x, self.num_classes, init=init, train_scale=True,
                                           stddev=MLP_DENSE_STDDEV, epsilon=0.0, name="logits")
            logits = _append_fake_logit(logits)
        return (logits, features) if return_features else logits


class MLPGenerator(object):
    """z [B, n_z] in [-1, 1] -> images [B, H, W, 1] in [-1, 1]."""

    def __init__(self, image_shape, name=G_SCOPE):
        self.image_shape = tuple(image_shape)
        self.name = name

    def __call__(self, z, training, update_stats=True, init=False):
        del training, update_stats  # batch statistics always, as the paper's G
        pixels = int(np.prod(self.image_shape))
        with tf.variable_scope(self.name, reuse=tf.AUTO_REUSE):
            x = (z + 1) / 2  # the paper's noise is U(0, 1)
            for i, units in enumerate(G_MLP_UNITS):
                with tf.variable_scope("dense%d" % (i + 1)):
                    w = tf.get_variable("weights", [int(x.shape[1]), units], x.dtype,
                                        initializer=tf.glorot_uniform_initializer())
                    x = tf.nn.softplus(ops.batch_norm_no_scale(tf.matmul(x, w)))
            # the paper's nn.l2normalize(LL.DenseLayer(...)): weight norm with a
            # trained scale, no data init, and Lasagne's Glorot-uniform weights
            x = tf.sigmoid(ops.weight_norm_dense(
                x, pixels, train_scale=True, initializer=tf.glorot_uniform_initializer(),
                name="output"))
            return tf.reshape(x * 2 - 1, [-1] + list(self.image_shape))


class ConvDiscriminator(object):
    """[B, 32, 32, 3] in [-1, 1] -> K+1 logits (last 0); features: the
    globally pooled last layer, which the paper matches."""

    def __init__(self, num_classes, widths=CONV_WIDTHS["CIFAR10"], minibatch_kernels=0,
                 name=D_SCOPE):
        self.num_classes = num_classes
        self.widths = tuple(widths)
        self.minibatch_kernels = minibatch_kernels
        self.name = name
        self.batch_independent = not minibatch_kernels

    def __call__(self, images, training, update_stats=True, return_features=False,
                 init=False):
        del update_stats

        def conv(x, channels, name, s=1, padding=1, k=3):
            return ops.leaky_relu(ops.weight_norm_conv2d(x, channels, k=k, s=s, padding=padding,
                                                         init=init, name=name))
        w1, w2 = self.widths
        with tf.variable_scope(self.name, reuse=tf.AUTO_REUSE):
            x = ops.dropout(images, 0.2, training)
            x = conv(x, w1, "conv1")
            x = conv(x, w1, "conv2")
            x = conv(x, w1, "conv3", s=2)
            x = ops.dropout(x, 0.5, training)
            x = conv(x, w2, "conv4")
            x = conv(x, w2, "conv5")
            x = conv(x, w2, "conv6", s=2)
            x = ops.dropout(x, 0.5, training)
            x = conv(x, w2, "conv7", padding="VALID")
            x = conv(x, w2, "nin1", padding="VALID", k=1)
            x = conv(x, w2, "nin2", padding="VALID", k=1)
            features = tf.reduce_mean(x, axis=[1, 2])
            x = features
            if self.minibatch_kernels:
                x = ops.minibatch_discrimination(x, self.minibatch_kernels, init=init)
            logits = ops.weight_norm_dense(x, self.num_classes, init=init, train_scale=True,
                                           init_stdv=0.1, name="logits")
            logits = _append_fake_logit(logits)
        return (logits, features) if return_features else logits


class ConvGenerator(object):
    """z [B, n_z] in [-1, 1] -> images [B, 32, 32, 3] in [-1, 1]."""

    def __init__(self, image_shape=(32, 32, 3), name=G_SCOPE):
        self.image_shape = tuple(image_shape)
        self.name = name

    def __call__(self, z, training, update_stats=True, init=False):
        del training, update_stats
        with tf.variable_scope(self.name, reuse=tf.AUTO_REUSE):
            x = (z + 1) / 2
            with tf.variable_scope("dense"):
                w = tf.get_variable("weights", [int(x.shape[1]), 4 * 4 * G_CONV_CHANNELS[0]],
                                    x.dtype, tf.random_normal_initializer(0.0, 0.05))
                x = tf.nn.relu(ops.batch_norm_no_scale(tf.matmul(x, w)))
            x = tf.reshape(x, [-1, 4, 4, G_CONV_CHANNELS[0]])
            for i, channels in enumerate(G_CONV_CHANNELS[1:]):
                with tf.variable_scope("deconv%d" % (i + 1)):
                    w = tf.get_variable("weights", [5, 5, channels, int(x.shape[-1])],
                                        x.dtype, tf.random_normal_initializer(0.0, 0.05))
                    size = int(x.shape[1]) * 2
                    x = tf.nn.conv2d_transpose(
                        x, w, tf.stack([tf.shape(x)[0], size, size, channels]), [1, 2, 2, 1],
                        "SAME")
                    x = tf.reshape(x, [-1, size, size, channels])
                    x = tf.nn.relu(ops.batch_norm_no_scale(x))
            x = ops.weight_norm_conv2d_transpose(x, self.image_shape[-1], k=5, s=2, init=init,
                                                 train_scale=True, init_stdv=0.1, name="output")
            return tf.tanh(x)


def _append_fake_logit(logits):
    """[B, K] -> [B, K+1] with a zero "fake" logit: with D(x) = Z / (Z + 1),
    Z = sum exp(l_k), the paper's K-logit model is this (K+1)-way softmax."""
    return tf.concat([logits, tf.zeros_like(logits[:, :1])], axis=1)


def networks(image_shape, num_classes, dataset_name="", minibatch_kernels=0):
    """(discriminator, generator) of the paper for this image shape."""
    check_image_shape(image_shape)
    if image_shape[-1] == 1:
        return (MLPDiscriminator(num_classes, minibatch_kernels),
                MLPGenerator(image_shape))
    return (ConvDiscriminator(num_classes, conv_widths(dataset_name), minibatch_kernels),
            ConvGenerator(image_shape))
