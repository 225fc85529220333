"""The SSGAN of the reference (clvrai/SSGAN-Tensorflow): networks, losses and
train ops, in three stages that hand each other named values:

    model = build_model(images, labels, model_config, training=True)   # SSGANModel
    losses = build_losses(model, global_step)                          # SSGANLosses
    train_ops = build_train_ops(losses, global_step, optim_config)     # TrainOps

The discriminator is a (K+1)-way classifier: K real classes and "fake".
"""

import collections
import os

import numpy as np
import tensorflow.compat.v1 as tf

import ops
import optimizers
import precision

D_SCOPE = "Discriminator"
G_SCOPE = "Generator"
D_CHANNELS = (32, 64, 128, 256, 256, 512)  # then 512 for deeper layers
G_FC_UNITS = 1024
FAKE_LABEL_ALPHA = 0.9  # probability mass on "fake" in D's target for generated images
RECON_WEIGHT_START = 10.0
RECON_ANNEAL_STEPS = 1500
EMA_NAME = "ExponentialMovingAverage"  # suffix of the moving averages' variable names

ARCHS = ("reference", "paper")

ModelConfig = collections.namedtuple(
    "ModelConfig", "image_shape num_classes n_z norm_type deconv_type bn_decay arch "
                   "dataset_name minibatch_kernels")
ModelConfig.__new__.__defaults__ = ("reference", "", 0)
ModelConfig.__doc__ = """What the networks need: image_shape (H, W, C), num_classes K,
n_z (noise size), norm_type, deconv_type, bn_decay (batch-norm moving-average decay)
(these four for the reference networks), arch ("reference" or "paper"),
dataset_name (picks the paper's conv widths: SVHN or CIFAR10), minibatch_kernels
(0: no minibatch discrimination layer in D)."""

def config_from_flags(flags, image_shape, num_classes):
    """The ModelConfig of a run's flags (a dict: TrainConfig._asdict() or a
    saved config.json; runs from before --arch get the reference networks)."""
    return ModelConfig(tuple(image_shape), num_classes, flags["n_z"], flags["norm_type"],
                       flags["deconv_type"], flags["bn_decay"], flags.get("arch", "reference"),
                       os.path.basename(os.path.normpath(flags["dataset"])).upper(),
                       flags.get("minibatch_kernels", 0))


OptimConfig = collections.namedtuple(
    "OptimConfig", "learning_rate_d learning_rate_g beta1 clip_norm lr_decay_start total_steps "
                   "historical_weight ema_decay loss_scaling optimizer")
OptimConfig.__new__.__defaults__ = (0, 0, 0.0, 0.0, False, "adam")
OptimConfig.__doc__ = """Adam learning rates and beta1, the global-norm clip
(0: none); optimizer: "adam" (TensorFlow's) or "paper_adam" (see optimizers.py);
lr_decay_start / total_steps: linear decay of both rates to 0 between these
steps (0: constant); historical_weight: weight of the historical-averaging
penalty (0: off); ema_decay: decay of the moving average of D's weights
kept for evaluation (0: none); loss_scaling: dynamic loss scaling of both
losses (float16 training; see precision.DynamicLossScale)."""


class Discriminator(object):
    """Image -> K+1 logits.

    ceil(log2(min(H, W))) 3x3 stride-2 convs (channels 32, 64, 128, 256, 256,
    512, 512, ...), each conv -> leaky ReLU -> norm; a 1x1 conv to a quarter of
    the last channels (leaky ReLU, no norm); a 1x1 conv to K+1 logits. Where
    the convs leave more than 1x1 (very non-square images) the logits are
    averaged over space.
    """

    def __init__(self, num_classes, norm_type="batch", bn_decay=0.99, name=D_SCOPE,
                 minibatch_kernels=0):
        self.num_classes = num_classes
        self.norm_type = norm_type
        self.bn_decay = bn_decay
        self.name = name
        self.minibatch_kernels = minibatch_kernels
        # each example's outputs depend on it alone (see build_model): not
        # with batch statistics or minibatch discrimination
        self.batch_independent = norm_type != "batch" and not minibatch_kernels

    def __call__(self, images, training, update_stats=True, return_features=False,
                 init=False):
        """images [B, H, W, C] in [-1, 1] -> logits [B, K+1] (and the features
        [B, channels] before the last layer if return_features). With
        minibatch discrimination the spatially averaged features pass through
        it and a dense layer gives the logits. `init` only concerns the
        minibatch layer's data-dependent initialisation."""
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
            if self.minibatch_kernels:
                logits = ops.fully_connected(
                    ops.minibatch_discrimination(features, self.minibatch_kernels, init=init),
                    self.num_classes + 1, name="logits")
            else:
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

    def __call__(self, z, training, update_stats=True, init=False):
        """z [B, n_z] in [-1, 1] -> images [B, H, W, C] in [-1, 1] (`init`:
        nothing to initialise from data here)."""
        del init
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
            # resize_bilinear returns float32 whatever its input's dtype
            return tf.cast(tf.image.resize_bilinear(x, [height, width]), x.dtype)


def networks(config):
    """(discriminator, generator) for a ModelConfig: the reference's or the
    paper's (paper_nets). Both open the D_SCOPE / G_SCOPE variable scopes."""
    if config.arch == "paper":
        import paper_nets
        return paper_nets.networks(config.image_shape, config.num_classes,
                                   config.dataset_name, config.minibatch_kernels)
    if config.arch != "reference":
        raise ValueError("arch must be one of %s, got %r" % (ARCHS, config.arch))
    return (Discriminator(config.num_classes, config.norm_type, config.bn_decay,
                          minibatch_kernels=config.minibatch_kernels),
            Generator(config.image_shape, config.deconv_type, config.norm_type, config.bn_decay))


SSGANModel = collections.namedtuple(
    "SSGANModel", "labeled_images labels labeled_logits real_images real_logits real_features "
                  "fake_images fake_logits fake_features num_classes "
                  "matching_real_features matching_fake_features")
SSGANModel.__doc__ = """The networks applied to one training step's batches:
labeled_images [B, H, W, C] with labels [B] int32 and labeled_logits [B, K+1];
real_images, the unlabeled real batch, with real_logits [B, K+1] and D's
features real_features [B, F]; fake_images, fake_logits, fake_features of
G's batch; num_classes K. With every label in use, the labeled batch is the
real batch (the same tensors). matching_real_features and
matching_fake_features [B, F]: what G's feature matching compares, D's
features of a second unlabeled batch and of a second generated batch (the
paper's G step), or real_features and fake_features when there is none."""


def has_unlabeled_batch(model):
    """Whether the model sees a separate unlabeled batch (semi-supervised)."""
    return model.real_logits is not model.labeled_logits


def sample_noise(batch_size, n_z, seed=None):
    """z ~ U(-1, 1)^n_z, [batch_size, n_z]."""
    return tf.random_uniform([batch_size, n_z], minval=-1.0, maxval=1.0, seed=seed)


def _batch_size(images):
    size = images.shape.as_list()[0]
    return size if size is not None else tf.shape(images)[0]


def _apply_d(discriminator, batches, training, update_stats, concat=True):
    """D's (logits, features) of each batch in `batches` (None entries give
    None). A D whose outputs for an example depend on that example alone
    (discriminator.batch_independent) sees the batches concatenated, in one
    pass with one matmul per layer instead of one per batch: the same values
    and gradients, with fewer and larger operations. concat=False keeps the
    passes apart, so a loss on one batch computes that batch's pass alone."""
    present = [b for b in batches if b is not None]
    sizes = [b.shape.as_list()[0] for b in present]
    if concat and training and len(present) > 1 and None not in sizes and \
            getattr(discriminator, "batch_independent", False):
        logits, features = discriminator(tf.concat(present, 0), training,
                                         update_stats=update_stats, return_features=True)
        parts = iter(zip(tf.split(logits, sizes), tf.split(features, sizes)))
        return [None if b is None else next(parts) for b in batches]
    outputs = []
    for i, batch in enumerate(batches):
        # batch norm's moving statistics come from the first (real) batch only
        outputs.append(None if batch is None else discriminator(
            batch, training, update_stats=update_stats and i == 0, return_features=True))
    return outputs


def build_model(images, labels, config, training, z=None, unlabeled_images=None,
                matching_images=None, d_getter=None, dtype=tf.float32, concat_d=True):
    """Applies G and D to a step's batches.

    Args:
      images: [B, H, W, C] float32 in [-1, 1], the labeled batch.
      labels: [B] int class indices.
      config: ModelConfig.
      training: Python bool. In training, batch norm uses batch statistics,
        and the moving averages are updated from real images (D; from the
        unlabeled batch when there is one) and from the generated batch (G);
        Gaussian noise and dropout are on. In inference, none of that.
      z: optional noise [B, n_z]; drawn fresh each run if None.
      unlabeled_images: optional [B', H, W, C] unlabeled real batch; None
        when every training image is labeled (images then serve as both).
      matching_images: optional [B'', H, W, C] second unlabeled batch for G's
        feature matching, compared with a second generated batch of fresh
        noise: the paper's G step, which draws its own data and samples
        rather than reusing D's.
      d_getter: optional custom getter for D's variables (e.g. to read their
        moving averages for evaluation).
      dtype: what the networks compute in (float32, bfloat16 or float16; see
        precision.py). Variables stay float32; the model's images, logits
        and features are float32 whatever the dtype.
      concat_d: whether D may see its batches as one (see _apply_d); False
        when only the labeled batch's loss is trained (the supervised
        baseline), which then neither runs G nor D on the other batches.
    """
    expected = list(config.image_shape)
    for batch in (images, unlabeled_images, matching_images):
        if batch is not None and batch.shape.as_list()[1:] != expected:
            raise ValueError("build_model: images have shape %s but the model expects [B] + %s"
                             % (batch.shape, expected))
    real = images if unlabeled_images is None else unlabeled_images
    if z is None:
        z = sample_noise(_batch_size(real), config.n_z)
    discriminator, generator = networks(config)
    getter = precision.variable_getter(dtype)

    def to32(outputs):
        return [tf.cast(t, tf.float32) for t in outputs]
    with tf.variable_scope(tf.get_variable_scope(), custom_getter=getter):
        fake = generator(tf.cast(z, dtype), training, update_stats=True)
        if matching_images is not None:
            matching_fake = generator(tf.cast(sample_noise(_batch_size(matching_images),
                                                           config.n_z), dtype),
                                      training, update_stats=False)
    # The getter that casts is innermost, so it casts what d_getter returns.
    with tf.variable_scope(tf.get_variable_scope(), custom_getter=d_getter), \
            tf.variable_scope(tf.get_variable_scope(), custom_getter=getter):
        labeled_c = None if unlabeled_images is None else tf.cast(images, dtype)
        real_out, labeled_out, fake_out = _apply_d(
            discriminator, [tf.cast(real, dtype), labeled_c, fake], training, True, concat_d)
        real_logits, real_features = to32(real_out)
        fake_logits, fake_features = to32(fake_out)
        labeled_logits = real_logits if labeled_out is None else to32(labeled_out)[0]
        matching_real_features, matching_fake_features = real_features, fake_features
        if matching_images is not None:
            # Two passes: one would also carry gradients back through the real rows.
            matching_real_features, matching_fake_features = [tf.cast(discriminator(
                batch, training, update_stats=False, return_features=True)[1], tf.float32)
                for batch in (tf.cast(matching_images, dtype), matching_fake)]
    return SSGANModel(images, tf.cast(labels, tf.int32), labeled_logits, real, real_logits,
                      real_features, tf.cast(fake, tf.float32), fake_logits, fake_features,
                      config.num_classes, matching_real_features, matching_fake_features)


def data_init_ops(config, images, z, dtype=tf.float32):
    """The paper's data-dependent initialisation of the weight-normalised
    layers: D applied in init mode to `images` (a batch of training images)
    and G to `z`, computing in `dtype` as training will. Returns the ops to
    run once after the variables are initialised (an empty list for
    networks without such layers)."""
    discriminator, generator = networks(config)
    before = len(tf.get_collection(ops.WEIGHT_NORM_INIT))
    with tf.variable_scope(tf.get_variable_scope(),
                           custom_getter=precision.variable_getter(dtype)):
        generator(tf.cast(z, dtype), training=True, update_stats=False, init=True)
        discriminator(tf.cast(images, dtype), training=True, update_stats=False, init=True)
    return tf.get_collection(ops.WEIGHT_NORM_INIT)[before:]


# Losses: pure functions of tensors.

def check_logits(name, logits, num_classes):
    shape = logits.shape.as_list()
    if len(shape) != 2 or shape[1] != num_classes + 1:
        raise ValueError("%s: logits have shape %s, expected [B, %d] (K=%d classes + fake)"
                         % (name, logits.shape, num_classes + 1, num_classes))


def check_same_batch(name, a, b):
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
    check_logits("discriminator_losses", real_logits, num_classes)
    check_logits("discriminator_losses", fake_logits, num_classes)
    check_same_batch("discriminator_losses", real_logits, labels)
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
    check_logits("generator_gan_loss", fake_logits, num_classes)
    return tf.reduce_mean(-tf.nn.softplus(-fake_logits[:, num_classes]))


def reconstruction_loss(real_images, fake_images):
    """Mean elementwise Huber loss between the real and generated batches."""
    return tf.reduce_mean(ops.huber_loss(real_images, fake_images))


def reconstruction_weight(global_step, start=RECON_WEIGHT_START, steps=RECON_ANNEAL_STEPS):
    """start * clip((steps - step) / steps, 0, 1): 10 at step 0, 0 from step 1500."""
    step = tf.cast(global_step, tf.float32)
    return start * tf.clip_by_value((steps - step) / steps, 0.0, 1.0)


def unlabeled_real_loss(logits, num_classes):
    """Per-example -log P(not fake) = LSE(all K+1 logits) - LSE(K class
    logits): what the K+1-way classifier pays on an unlabeled real image.
    logits [B, K+1] -> [B]."""
    check_logits("unlabeled_real_loss", logits, num_classes)
    return (tf.reduce_logsumexp(logits, axis=1)
            - tf.reduce_logsumexp(logits[:, :num_classes], axis=1))


def real_probability(logits, num_classes):
    """P(not fake) of the K+1-way classifier, 1 - softmax(logits)[K] =
    sigmoid(LSE(l_k - l_K)) over the K class logits; the paper's D(x) =
    Z / (Z + 1) when the fake logit is 0. logits [B, K+1] -> [B]."""
    check_logits("real_probability", logits, num_classes)
    return tf.sigmoid(tf.reduce_logsumexp(
        logits[:, :num_classes] - logits[:, num_classes:], axis=1))


def supervised_loss(real_logits, labels, num_classes):
    """Logged, not optimised: mean Huber loss between one_hot(y) and
    sigmoid(real_logits[:, :K])."""
    check_logits("supervised_loss", real_logits, num_classes)
    return tf.reduce_mean(ops.huber_loss(tf.one_hot(labels, num_classes),
                                         tf.sigmoid(real_logits[:, :num_classes])))


def classification_accuracy(real_logits, labels, num_classes):
    """Fraction of the batch whose argmax over the K class logits is the label."""
    check_logits("classification_accuracy", real_logits, num_classes)
    predictions = tf.argmax(real_logits[:, :num_classes], axis=1, output_type=tf.int32)
    return tf.reduce_mean(tf.cast(tf.equal(predictions, tf.cast(labels, tf.int32)), tf.float32))


SSGANLosses = collections.namedtuple(
    "SSGANLosses", "d_loss d_loss_real d_loss_fake g_loss g_gan_loss recon_loss recon_weight "
                   "gan_loss supervised_loss accuracy")
SSGANLosses.__doc__ = """Scalars: d_loss (D minimises), g_loss (G minimises:
g_gan_loss + recon_weight * recon_loss), gan_loss = d_loss + g_loss (logged),
supervised_loss and accuracy (logged, on the labeled batch)."""


def build_losses(model, global_step, unlabeled_weight=1.0):
    """SSGANLosses of an SSGANModel at `global_step` (for the annealing).

    The reference's losses, on the labeled batch. With a separate unlabeled
    batch (semi-supervised), D also pays unlabeled_weight * -log P(not fake)
    on it, and G's reconstruction term pairs its images with that batch."""
    k = model.num_classes
    d_loss_real, d_loss_fake = discriminator_losses(model.labeled_logits, model.fake_logits,
                                                    model.labels, k)
    d_loss = tf.reduce_mean(d_loss_real + d_loss_fake)
    if has_unlabeled_batch(model):
        d_loss += unlabeled_weight * tf.reduce_mean(unlabeled_real_loss(model.real_logits, k))
    g_gan_loss = generator_gan_loss(model.fake_logits, k)
    recon_loss = reconstruction_loss(model.real_images, model.fake_images)
    recon_weight = reconstruction_weight(global_step)
    g_loss = g_gan_loss + recon_weight * recon_loss
    return SSGANLosses(
        d_loss=d_loss, d_loss_real=tf.reduce_mean(d_loss_real),
        d_loss_fake=tf.reduce_mean(d_loss_fake), g_loss=g_loss, g_gan_loss=g_gan_loss,
        recon_loss=recon_loss, recon_weight=recon_weight, gan_loss=d_loss + g_loss,
        supervised_loss=supervised_loss(model.labeled_logits, model.labels, k),
        accuracy=classification_accuracy(model.labeled_logits, model.labels, k))


# Train ops.

TrainOps = collections.namedtuple(
    "TrainOps", "d_train g_train d_vars g_vars ema sync_averages learning_rate d_grad_norm "
                "g_grad_norm d_train_without_ema")
TrainOps.__doc__ = """d_train / g_train: one optimisation step of D / G, each
incrementing the global step and running its batch-norm updates (and the
historical-average and moving-average updates when on). ema: the
tf.train.ExponentialMovingAverage of D's trainable variables, or None.
sync_averages: sets the moving averages to the current weights (run after
any initialisation that changes the weights). learning_rate: D's current rate.
d_grad_norm / g_grad_norm: the global norm of each network's gradients
before clipping (fetching one computes that network's gradients).
d_train_without_ema: d_train without the moving-average update, for the
workers of a cluster other than the chief (the average lives on the
parameter servers and must move once per step, not once per worker)."""


def ema_getter(ema):
    """A custom getter that reads each averaged variable's moving average."""
    def getter(getter, *args, **kwargs):  # TensorFlow passes the next getter as `getter`
        variable = getter(*args, **kwargs)
        average = ema.average(variable) if ema is not None else None
        return variable if average is None else average
    return getter


def ema_restore_map(variables, use_ema):
    """{checkpoint name: variable} restoring D's trainable variables from
    their moving averages (use_ema) and everything else as saved."""
    trainable = set(v.op.name for v in tf.trainable_variables())
    names = {}
    for variable in variables:
        name = variable.op.name
        if use_ema and name in trainable and name.startswith(D_SCOPE + "/"):
            name += "/" + EMA_NAME
        names[name] = variable
    return names


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
              wrap_optimizer=None, historical_weight=0.0, loss_scaling=False,
              optimizer_kind="adam"):
    """One optimisation step of `variables` on `loss`; returns (the step op,
    the global norm of the gradients before clipping)."""
    loss_scale = precision.DynamicLossScale(name + "_loss_scale") if loss_scaling else None
    with tf.name_scope(name):
        history_update = None
        if historical_weight > 0:
            import improved_gan
            penalty, history_update = improved_gan.historical_average(variables, name)
            loss = loss + historical_weight * penalty
        optimizer = optimizers.make_optimizer(optimizer_kind, learning_rate, name + "_adam",
                                              beta1)
        if wrap_optimizer is not None:
            optimizer = wrap_optimizer(optimizer)
        if loss_scale is not None:
            loss = loss_scale.scaled(loss)
        # GATE_GRAPH: every gradient is computed before any weight changes. The
        # variables are updated in place, so without a gate an update can run
        # while a gradient still to be computed reads the weight (the matmul
        # gradient of the layer below, the weight norm's); that corrupts
        # gradients now and then, and without clipping the GAN collapses
        # within a few thousand steps. TensorFlow's default, GATE_OP, gates
        # each op's gradients together instead, which also computes a
        # matmul's gradient for its input where nothing uses it (D's first
        # layer, D's weights in G's step): 16-19% more FLOPs.
        grads_and_vars = optimizer.compute_gradients(
            loss, var_list=variables, gate_gradients=tf.train.Optimizer.GATE_GRAPH)
        grads = [g for g, _ in grads_and_vars]
        if loss_scale is not None:
            grads, finite = loss_scale.unscale(grads)
        if clip_norm > 0:
            grads, grad_norm = tf.clip_by_global_norm(grads, clip_norm)
        else:
            grad_norm = tf.global_norm(grads)
        # A wrapper's apply_gradients may also build ops that run apart from the
        # step (SyncReplicasOptimizer's init ops and the chief's queue runner,
        # which applies the aggregated gradients): under the updates' control
        # dependency every run of those would read batches and move the
        # batch-norm statistics again. So with a wrapper they are grouped after.
        with tf.control_dependencies(update_ops if wrap_optimizer is None else []):
            if loss_scale is None:
                step = optimizer.apply_gradients(zip(grads, variables), global_step=global_step)
            else:  # an overflowing step changes no weight, only the scale (and the step count)
                applied = precision.apply_if_finite(
                    finite, lambda: optimizer.apply_gradients(zip(grads, variables)))
                with tf.control_dependencies([applied, loss_scale.update(finite)]):
                    step = tf.group(tf.assign_add(global_step, 1))
        if wrap_optimizer is not None:
            step = tf.group(step, *update_ops)
        if history_update is None:
            return step, grad_norm
        with tf.control_dependencies([step]):
            return tf.group(history_update), grad_norm


def build_train_ops(losses, global_step, config, wrap_optimizer=None):
    """Adam (config.optimizer, beta1 from config) on D's and G's losses,
    gradients clipped to a global norm of config.clip_norm (0: not); each op also runs the batch-norm moving
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
    import improved_gan
    rates = [improved_gan.learning_rate_schedule(rate, global_step, config.lr_decay_start,
                                                 config.total_steps)
             for rate in (config.learning_rate_d, config.learning_rate_g)]
    d_train, d_grad_norm = _minimize(losses.d_loss, d_vars, rates[0], config.beta1,
                        config.clip_norm, global_step, d_updates + g_updates, "d_optimize",
                        wrap_optimizer, config.historical_weight, config.loss_scaling,
                        config.optimizer)
    g_train, g_grad_norm = _minimize(losses.g_loss, g_vars, rates[1], config.beta1,
                        config.clip_norm, global_step, d_updates + g_updates, "g_optimize",
                        wrap_optimizer, config.historical_weight, config.loss_scaling,
                        config.optimizer)
    ema, sync = None, tf.no_op(name="sync_averages")
    d_train_without_ema = d_train
    if config.ema_decay > 0:
        # num_updates warms the average up: decay min(ema_decay, (1 + t) / (10 + t)),
        # so early checkpoints are not dominated by the initial weights.
        ema = tf.train.ExponentialMovingAverage(config.ema_decay, num_updates=global_step,
                                                name=EMA_NAME)
        with tf.control_dependencies([d_train]):
            d_train = ema.apply(d_vars)
        sync = tf.group(*[tf.assign(ema.average(v), v) for v in d_vars], name="sync_averages")
    return TrainOps(d_train, g_train, d_vars, g_vars, ema, sync, rates[0], d_grad_norm,
                    g_grad_norm, d_train_without_ema)
