"""The SSGAN of the reference (clvrai/SSGAN-Tensorflow): networks, losses and
train ops, in three stages that hand each other named values:

    model = build_model(images, labels, model_config, training=True)   # SSGANModel
    losses = build_losses(model, global_step)                          # SSGANLosses
    train_ops = build_train_ops(losses, global_step, optim_config)     # TrainOps

The discriminator is a (K+1)-way classifier: K real classes and "fake".
"""

import collections

import numpy as np
import tensorflow.compat.v1 as tf

import ops

D_SCOPE = "Discriminator"
G_SCOPE = "Generator"
D_CHANNELS = (32, 64, 128, 256, 256, 512)  # then 512 for deeper layers
G_FC_UNITS = 1024
FAKE_LABEL_ALPHA = 0.9  # probability mass on "fake" in D's target for generated images
RECON_WEIGHT_START = 10.0
RECON_ANNEAL_STEPS = 1500

ModelConfig = collections.namedtuple(
    "ModelConfig", "image_shape num_classes n_z norm_type deconv_type bn_decay")
ModelConfig.__doc__ = """What the networks need: image_shape (H, W, C), num_classes K,
n_z (noise size), norm_type, deconv_type, bn_decay (batch-norm moving-average decay)."""

OptimConfig = collections.namedtuple(
    "OptimConfig", "learning_rate_d learning_rate_g beta1 clip_norm")


class Discriminator(object):
    """Image -> K+1 logits.

    ceil(log2(min(H, W))) 3x3 stride-2 convs (channels 32, 64, 128, 256, 256,
    512, 512, ...), each conv -> leaky ReLU -> norm; a 1x1 conv to a quarter of
    the last channels (leaky ReLU, no norm); a 1x1 conv to K+1 logits. Where
    the convs leave more than 1x1 (very non-square images) the logits are
    averaged over space.
    """

    def __init__(self, num_classes, norm_type="batch", bn_decay=0.99, name=D_SCOPE):
        self.num_classes = num_classes
        self.norm_type = norm_type
        self.bn_decay = bn_decay
        self.name = name

    def __call__(self, images, training, update_stats=True, return_features=False):
        """images [B, H, W, C] in [-1, 1] -> logits [B, K+1] (and the features
        [B, channels] before the last layer if return_features)."""
        num_layers = int(np.ceil(np.log2(min(images.shape.as_list()[1:3]))))
        with tf.variable_scope(self.name, reuse=tf.AUTO_REUSE):
            x = images
            channels = D_CHANNELS[0]
            for i in range(num_layers):
                channels = D_CHANNELS[i] if i < len(D_CHANNELS) else D_CHANNELS[-1]
                with tf.variable_scope("conv%d" % (i + 1)):
                    x = ops.conv2d(x, channels, k=3, s=2)
                    x = ops.activate_and_normalize(x, ops.leaky_relu, self.norm_type, training,
                                                   update_stats, self.bn_decay)
            with tf.variable_scope("conv%d" % (num_layers + 1)):
                x = ops.leaky_relu(ops.conv2d(x, channels // 4, k=1, s=1))
            features = tf.reduce_mean(x, axis=[1, 2])
            with tf.variable_scope("conv%d" % (num_layers + 2)):
                logits = ops.conv2d(x, self.num_classes + 1, k=1, s=1)
            logits = tf.reduce_mean(logits, axis=[1, 2])  # [B, 1, 1, K+1] -> [B, K+1]
        if return_features:
            return logits, features
        return logits


class Generator(object):
    """Noise -> image.

    z [B, n_z] -> fully connected 1024 (leaky ReLU) at 1x1 -> ceil(log2(max(H, W)))
    upsampling blocks (x2 each; channels halve from 1024, never below C;
    ReLU -> norm) -> 1x1 conv to C with tanh -> bilinear resize to H x W.
    """

    def __init__(self, image_shape, deconv_type="bilinear", norm_type="batch", bn_decay=0.99,
                 name=G_SCOPE):
        if deconv_type not in ops.DECONV_TYPES:
            raise ValueError("deconv_type must be one of %s, got %r"
                             % (ops.DECONV_TYPES, deconv_type))
        self.image_shape = tuple(image_shape)
        self.deconv_type = deconv_type
        self.norm_type = norm_type
        self.bn_decay = bn_decay
        self.name = name

    def _upsample(self, x, channels, k=3, s=2):
        if self.deconv_type == "transpose":
            return ops.conv2d_transpose(x, channels, k=k, s=s)
        return ops.upsample_conv2d(x, channels, self.deconv_type, k=k, s=s)

    def __call__(self, z, training, update_stats=True):
        """z [B, n_z] in [-1, 1] -> images [B, H, W, C] in [-1, 1]."""
        height, width, channels = self.image_shape
        num_blocks = int(np.ceil(np.log2(max(height, width))))
        with tf.variable_scope(self.name, reuse=tf.AUTO_REUSE):
            x = tf.reshape(z, [-1, 1, 1, int(z.shape[-1])])
            with tf.variable_scope("fc"):
                x = ops.leaky_relu(ops.fully_connected(x, G_FC_UNITS))
            for i in range(num_blocks):
                with tf.variable_scope("deconv%d" % (i + 1)):
                    x = self._upsample(x, max(channels, int(x.shape[-1]) // 2))
                    x = ops.activate_and_normalize(x, tf.nn.relu, self.norm_type, training,
                                                   update_stats, self.bn_decay)
            with tf.variable_scope("deconv%d" % (num_blocks + 2)):
                x = tf.tanh(self._upsample(x, channels, k=1, s=1))
            return tf.image.resize_bilinear(x, [height, width])


SSGANModel = collections.namedtuple(
    "SSGANModel", "real_images labels fake_images real_logits fake_logits num_classes")
SSGANModel.__doc__ = """The networks applied to one batch:
real_images [B, H, W, C], labels [B] int32, fake_images [B, H, W, C],
real_logits / fake_logits [B, K+1], num_classes K."""


def sample_noise(batch_size, n_z, seed=None):
    """z ~ U(-1, 1)^n_z, [batch_size, n_z]."""
    return tf.random_uniform([batch_size, n_z], minval=-1.0, maxval=1.0, seed=seed)


def build_model(images, labels, config, training, z=None):
    """Applies G and D to a batch.

    Args:
      images: [B, H, W, C] float32 in [-1, 1].
      labels: [B] int class indices.
      config: ModelConfig.
      training: Python bool. In training, batch norm uses batch statistics,
        and the moving averages are updated from real images (D) and from the
        generated batch (G); in inference, the moving averages are used.
      z: optional noise [B, n_z]; drawn fresh each run if None.
    """
    expected = list(config.image_shape)
    if images.shape.as_list()[1:] != expected:
        raise ValueError("build_model: images have shape %s but the model expects [B] + %s"
                         % (images.shape, expected))
    batch_size = images.shape.as_list()[0]
    if z is None:
        z = sample_noise(batch_size if batch_size is not None else tf.shape(images)[0],
                         config.n_z)
    generator = Generator(config.image_shape, config.deconv_type, config.norm_type,
                          config.bn_decay)
    discriminator = Discriminator(config.num_classes, config.norm_type, config.bn_decay)
    fake_images = generator(z, training, update_stats=True)
    real_logits = discriminator(images, training, update_stats=True)
    fake_logits = discriminator(fake_images, training, update_stats=False)
    return SSGANModel(images, tf.cast(labels, tf.int32), fake_images, real_logits, fake_logits,
                      config.num_classes)


# Losses: pure functions of tensors.

def _check_logits(name, logits, num_classes):
    shape = logits.shape.as_list()
    if len(shape) != 2 or shape[1] != num_classes + 1:
        raise ValueError("%s: logits have shape %s, expected [B, %d] (K=%d classes + fake)"
                         % (name, logits.shape, num_classes + 1, num_classes))


def _check_same_batch(name, a, b):
    if a.shape[0] is not None and b.shape[0] is not None and int(a.shape[0]) != int(b.shape[0]):
        raise ValueError("%s: batch sizes differ, %s vs %s" % (name, a.shape, b.shape))


def discriminator_losses(real_logits, fake_logits, labels, num_classes,
                         alpha=FAKE_LABEL_ALPHA):
    """Per-example D losses of the reference.

    Real images: softmax cross-entropy against [one_hot(y), 0]. Generated
    images: against [(1 - alpha) / K, ..., (1 - alpha) / K, alpha].

    Args:
      real_logits, fake_logits: [B, K+1].
      labels: [B] int class indices.
    Returns:
      (d_loss_real [B], d_loss_fake [B]).
    """
    _check_logits("discriminator_losses", real_logits, num_classes)
    _check_logits("discriminator_losses", fake_logits, num_classes)
    _check_same_batch("discriminator_losses", real_logits, labels)
    real_target = tf.one_hot(labels, num_classes + 1)  # never hot at index K
    fake_target = tf.constant([(1.0 - alpha) / num_classes] * num_classes + [alpha])
    fake_target = tf.ones_like(fake_logits) * fake_target
    d_loss_real = tf.nn.softmax_cross_entropy_with_logits_v2(
        labels=real_target, logits=real_logits)
    d_loss_fake = tf.nn.softmax_cross_entropy_with_logits_v2(
        labels=tf.stop_gradient(fake_target), logits=fake_logits)
    return d_loss_real, d_loss_fake


def generator_gan_loss(fake_logits, num_classes):
    """The reference's G loss: mean(log(sigmoid(fake_logits[:, K]))), which G
    minimises (pushing D's "fake" score down); computed as -softplus(-x)."""
    _check_logits("generator_gan_loss", fake_logits, num_classes)
    return tf.reduce_mean(-tf.nn.softplus(-fake_logits[:, num_classes]))


def reconstruction_loss(real_images, fake_images):
    """Mean elementwise Huber loss between the real and generated batches."""
    return tf.reduce_mean(ops.huber_loss(real_images, fake_images))


def reconstruction_weight(global_step, start=RECON_WEIGHT_START, steps=RECON_ANNEAL_STEPS):
    """start * clip((steps - step) / steps, 0, 1): 10 at step 0, 0 from step 1500."""
    step = tf.cast(global_step, tf.float32)
    return start * tf.clip_by_value((steps - step) / steps, 0.0, 1.0)


def supervised_loss(real_logits, labels, num_classes):
    """Logged, not optimised: mean Huber loss between one_hot(y) and
    sigmoid(real_logits[:, :K])."""
    _check_logits("supervised_loss", real_logits, num_classes)
    return tf.reduce_mean(ops.huber_loss(tf.one_hot(labels, num_classes),
                                         tf.sigmoid(real_logits[:, :num_classes])))


def classification_accuracy(real_logits, labels, num_classes):
    """Fraction of the batch whose argmax over the K class logits is the label."""
    _check_logits("classification_accuracy", real_logits, num_classes)
    predictions = tf.argmax(real_logits[:, :num_classes], axis=1, output_type=tf.int32)
    return tf.reduce_mean(tf.cast(tf.equal(predictions, tf.cast(labels, tf.int32)), tf.float32))


SSGANLosses = collections.namedtuple(
    "SSGANLosses", "d_loss d_loss_real d_loss_fake g_loss g_gan_loss recon_loss recon_weight "
                   "gan_loss supervised_loss accuracy")
SSGANLosses.__doc__ = """Scalars: d_loss (D minimises), g_loss (G minimises:
g_gan_loss + recon_weight * recon_loss), gan_loss = d_loss + g_loss (logged),
supervised_loss and accuracy (logged)."""


def build_losses(model, global_step):
    """SSGANLosses of an SSGANModel at `global_step` (for the annealing)."""
    k = model.num_classes
    d_loss_real, d_loss_fake = discriminator_losses(model.real_logits, model.fake_logits,
                                                    model.labels, k)
    d_loss = tf.reduce_mean(d_loss_real + d_loss_fake)
    g_gan_loss = generator_gan_loss(model.fake_logits, k)
    recon_loss = reconstruction_loss(model.real_images, model.fake_images)
    recon_weight = reconstruction_weight(global_step)
    g_loss = g_gan_loss + recon_weight * recon_loss
    return SSGANLosses(
        d_loss=d_loss, d_loss_real=tf.reduce_mean(d_loss_real),
        d_loss_fake=tf.reduce_mean(d_loss_fake), g_loss=g_loss, g_gan_loss=g_gan_loss,
        recon_loss=recon_loss, recon_weight=recon_weight, gan_loss=d_loss + g_loss,
        supervised_loss=supervised_loss(model.real_logits, model.labels, k),
        accuracy=classification_accuracy(model.real_logits, model.labels, k))


# Train ops.

TrainOps = collections.namedtuple("TrainOps", "d_train g_train d_vars g_vars")
TrainOps.__doc__ = """d_train / g_train: one optimisation step of D / G, each
incrementing the global step and running its batch-norm updates."""


def split_variables():
    """(D's trainable variables, G's), selected by scope; raises if any
    trainable variable belongs to neither."""
    trainable = tf.trainable_variables()
    d_vars = [v for v in trainable if v.name.startswith(D_SCOPE + "/")]
    g_vars = [v for v in trainable if v.name.startswith(G_SCOPE + "/")]
    left = sorted(set(v.name for v in trainable) - set(v.name for v in d_vars + g_vars))
    if left:
        raise ValueError("trainable variables outside %s/ and %s/: %s" % (D_SCOPE, G_SCOPE, left))
    return d_vars, g_vars


def _minimize(loss, variables, learning_rate, beta1, clip_norm, global_step, update_ops, name,
              wrap_optimizer=None):
    with tf.name_scope(name):
        optimizer = tf.train.AdamOptimizer(learning_rate, beta1=beta1, name=name + "_adam")
        if wrap_optimizer is not None:
            optimizer = wrap_optimizer(optimizer)
        grads_and_vars = optimizer.compute_gradients(loss, var_list=variables)
        grads = [g for g, _ in grads_and_vars]
        grads, _ = tf.clip_by_global_norm(grads, clip_norm)
        with tf.control_dependencies(update_ops):
            return optimizer.apply_gradients(zip(grads, variables), global_step=global_step)


def build_train_ops(losses, global_step, config, wrap_optimizer=None):
    """Adam (beta1 from config) on D's and G's losses, gradients clipped to a
    global norm of config.clip_norm; each op also runs the batch-norm moving
    average updates made so far in the graph (D's from real images, G's).
    `wrap_optimizer` (e.g. the NPU's all-reducing NPUDistributedOptimizer)
    wraps both Adam optimizers."""
    d_vars, g_vars = split_variables()
    updates = tf.get_collection(tf.GraphKeys.UPDATE_OPS)

    def target(update):  # the variable an update assigns to, e.g. Discriminator/.../moving_mean
        op = update if isinstance(update, tf.Operation) else update.op
        return op.inputs[0].name
    d_updates = [u for u in updates if target(u).startswith(D_SCOPE + "/")]
    g_updates = [u for u in updates if target(u).startswith(G_SCOPE + "/")]
    left = sorted(set(target(u) for u in updates) - set(target(u) for u in d_updates + g_updates))
    if left:
        raise ValueError("batch-norm updates outside %s/ and %s/: %s" % (D_SCOPE, G_SCOPE, left))
    # Both steps keep every moving average current: D's statistics come from the
    # real batch, which is there on G steps too, and G's from its own output.
    d_train = _minimize(losses.d_loss, d_vars, config.learning_rate_d, config.beta1,
                        config.clip_norm, global_step, d_updates + g_updates, "d_optimize",
                        wrap_optimizer)
    g_train = _minimize(losses.g_loss, g_vars, config.learning_rate_g, config.beta1,
                        config.clip_norm, global_step, d_updates + g_updates, "g_optimize",
                        wrap_optimizer)
    return TrainOps(d_train, g_train, d_vars, g_vars)
