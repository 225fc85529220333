"""The networks: the reference's (clvrai/SSGAN-Tensorflow) conv nets and the
paper's (paper_nets.py), applied to a run's batches in one call:

    model = build_model(images, labels, model_config, training=True)   # SSGANModel

losses.py turns an SSGANModel into losses, train_ops.py those into training
steps. D has K+1 outputs: K real classes and "fake".
"""

import collections

import numpy as np
import tensorflow.compat.v1 as tf

import ops
import paper_nets
import precision
from flag_table import ARCHS, BN_DECAY, DECONV_TYPES
from names import D_SCOPE, EMA_NAME, G_SCOPE, dataset_name

D_CHANNELS = (32, 64, 128, 256, 256, 512)  # then 512 for deeper layers
G_FC_UNITS = 1024

ModelConfig = collections.namedtuple(
    "ModelConfig", "image_shape num_classes n_z norm_type deconv_type bn_decay arch "
                   "dataset_name minibatch_kernels fast_convolutions")
ModelConfig.__new__.__defaults__ = ("reference", "", 0, True)
ModelConfig.__doc__ = """What the networks need: image_shape (H, W, C), num_classes K,
n_z (noise size), norm_type, deconv_type, bn_decay (batch-norm moving-average decay)
(these four for the reference networks), arch ("reference" or "paper"),
dataset_name (picks the paper's conv widths: SVHN or CIFAR10), minibatch_kernels
(0: no minibatch discrimination layer in D), fast_convolutions (the reference
networks' convolutions in their faster equivalent forms: ops.conv2d's and
ops.upsample_conv2d's `fast`; False builds the literal ones, for counting
the model's FLOPs)."""


def config_from_flags(flags, image_shape, num_classes):
    """The ModelConfig of a run's flags (a dict: TrainConfig._asdict() or a
    saved config.json). A config.json without "arch" or "minibatch_kernels"
    describes the reference networks without minibatch discrimination, the
    only networks a run could train without those flags."""
    return ModelConfig(tuple(image_shape), num_classes, flags["n_z"], flags["norm_type"],
                       flags["deconv_type"], flags["bn_decay"], flags.get("arch", "reference"),
                       dataset_name(flags["dataset"]),
                       flags.get("minibatch_kernels", 0))


def config_of_run(saved):
    """The ModelConfig of a run's saved config.json (a dict)."""
    return config_from_flags(saved, saved["image_shape"], saved["num_classes"])


class Discriminator(object):
    """Image -> K+1 logits.

    ceil(log2(min(H, W))) 3x3 stride-2 convs (channels 32, 64, 128, 256, 256,
    512, 512, ...), each conv -> leaky ReLU -> norm; a 1x1 conv to a quarter of
    the last channels (leaky ReLU, no norm); a 1x1 conv to K+1 logits. Where
    the convs leave more than 1x1 (very non-square images) the logits are
    averaged over space.
    """

    def __init__(self, num_classes, norm_type="batch", bn_decay=BN_DECAY, name=D_SCOPE,
                 minibatch_kernels=0, fast_convolutions=True):
        self.num_classes = num_classes
        self.fast = fast_convolutions
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
                    x = ops.conv2d(x, channels, k=3, s=2, fast=self.fast)
                    x = ops.activate_and_normalize(x, ops.leaky_relu, self.norm_type, training,
                                                   update_stats, self.bn_decay)
            with tf.variable_scope("conv%d" % (num_layers + 1)):
                x = ops.leaky_relu(ops.conv2d(x, channels // 4, k=1, s=1, fast=self.fast))
            features = tf.reduce_mean(x, axis=[1, 2])
            if self.minibatch_kernels:
                logits = ops.fully_connected(
                    ops.minibatch_discrimination(features, self.minibatch_kernels, init=init),
                    self.num_classes + 1, name="logits")
            else:
                with tf.variable_scope("conv%d" % (num_layers + 2)):
                    logits = ops.conv2d(x, self.num_classes + 1, k=1, s=1, fast=self.fast)
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

    def __init__(self, image_shape, deconv_type="bilinear", norm_type="batch", bn_decay=BN_DECAY,
                 name=G_SCOPE, fast_convolutions=True):
        if deconv_type not in DECONV_TYPES:
            raise ValueError("deconv_type must be one of %s, got %r"
                             % (DECONV_TYPES, deconv_type))
        self.image_shape = tuple(image_shape)
        self.deconv_type = deconv_type
        self.norm_type = norm_type
        self.bn_decay = bn_decay
        self.name = name
        self.fast = fast_convolutions

    def _upsample(self, x, channels, k=3, s=2):
        if self.deconv_type == "transpose":
            return ops.conv2d_transpose(x, channels, k=k, s=s)
        return ops.upsample_conv2d(x, channels, self.deconv_type, k=k, s=s, fast=self.fast)

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
        return paper_nets.networks(config.image_shape, config.num_classes,
                                   config.dataset_name, config.minibatch_kernels)
    if config.arch != "reference":
        raise ValueError("arch must be one of %s, got %r" % (ARCHS, config.arch))
    return (Discriminator(config.num_classes, config.norm_type, config.bn_decay,
                          minibatch_kernels=config.minibatch_kernels,
                          fast_convolutions=config.fast_convolutions),
            Generator(config.image_shape, config.deconv_type, config.norm_type, config.bn_decay,
                      fast_convolutions=config.fast_convolutions))


SSGANModel = collections.namedtuple(
    "SSGANModel", "labeled_images labels labeled_logits unlabeled_images unlabeled_logits "
                  "unlabeled_features fake_images fake_logits fake_features num_classes "
                  "matching_real_features matching_fake_features")
SSGANModel.__doc__ = """The networks applied to one training step's batches:
labeled_images [B, H, W, C] with labels [B] int32 and labeled_logits [B, K+1];
unlabeled_images, the unlabeled real batch, with unlabeled_logits [B, K+1]
and D's features unlabeled_features [B, F]; fake_images, fake_logits,
fake_features of G's batch; num_classes K. With every label in use, the
labeled batch is the unlabeled batch (the same tensors). matching_real_features and
matching_fake_features [B, F]: what G's feature matching compares, D's
features of a second unlabeled batch and of a second generated batch (the
paper's G step), or unlabeled_features and fake_features when there is none."""


def has_unlabeled_batch(model):
    """Whether the model sees a separate unlabeled batch (semi-supervised)."""
    return model.unlabeled_logits is not model.labeled_logits


def sample_noise(batch_size, n_z, name=None):
    """z ~ U(-1, 1)^n_z, [batch_size, n_z], keyed (ops.noise_key); `name`
    names the sample."""
    return ops.random_uniform([batch_size, n_z], -1.0, 1.0, name=name)


def _batch_size(images):
    size = images.shape.as_list()[0]
    return size if size is not None else tf.shape(images)[0]


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
    _check_image_shapes(config, (images, unlabeled_images, matching_images))
    real = images if unlabeled_images is None else unlabeled_images
    if z is None:
        z = sample_noise(_batch_size(real), config.n_z, name="z")
    discriminator, generator = networks(config)
    getter = precision.variable_getter(dtype)
    with tf.variable_scope(tf.get_variable_scope(), custom_getter=getter):
        fake = generator(tf.cast(z, dtype), training, update_stats=True)
        matching_fake = None if matching_images is None else _second_fake_batch(
            generator, _batch_size(matching_images), config.n_z, training, dtype)
    # The getter that casts is innermost, so it casts what d_getter returns.
    with tf.variable_scope(tf.get_variable_scope(), custom_getter=d_getter), \
            tf.variable_scope(tf.get_variable_scope(), custom_getter=getter):
        separate_labeled = None if unlabeled_images is None else images
        d_outputs = _discriminate(discriminator, real, separate_labeled, fake, matching_images,
                                  matching_fake, training, dtype, concat_d)
    return SSGANModel(labeled_images=images, labels=tf.cast(labels, tf.int32),
                      unlabeled_images=real, fake_images=tf.cast(fake, tf.float32),
                      num_classes=config.num_classes, **d_outputs)


def _check_image_shapes(config, batches):
    """Raises ValueError unless each batch (None: absent) is [B] + config.image_shape."""
    expected = list(config.image_shape)
    for batch in batches:
        if batch is not None and batch.shape.as_list()[1:] != expected:
            raise ValueError("build_model: images have shape %s but the model expects [B] + %s"
                             % (batch.shape, expected))


def _second_fake_batch(generator, batch_size, n_z, training, dtype):
    """G's batch of fresh noise for the paper's G step (feature matching),
    in `dtype`; it leaves the batch-norm statistics to the first batch."""
    matching_z = sample_noise(batch_size, n_z, name="matching_z")
    return generator(tf.cast(matching_z, dtype), training, update_stats=False)


def _discriminate(discriminator, real, labeled, fake, matching_real, matching_fake, training,
                  dtype, concat_d):
    """D's outputs for build_model, float32, as a dict of SSGANModel fields.
    `labeled` None: the real batch is the labeled one. `matching_real` None:
    G's feature matching compares the real and the fake batch's features."""
    labeled = None if labeled is None else tf.cast(labeled, dtype)
    real_out, labeled_out, fake_out = _apply_d(
        discriminator, [tf.cast(real, dtype), labeled, fake], training, True, concat_d)
    real_logits, real_features = _to_float32(real_out)
    fake_logits, fake_features = _to_float32(fake_out)
    labeled_logits = real_logits if labeled_out is None else _to_float32(labeled_out)[0]
    matching_real_features, matching_fake_features = real_features, fake_features
    if matching_real is not None:
        # Two passes: one would also carry gradients back through the real rows.
        matching_real_features, matching_fake_features = [tf.cast(discriminator(
            batch, training, update_stats=False, return_features=True)[1], tf.float32)
            for batch in (tf.cast(matching_real, dtype), matching_fake)]
    return dict(labeled_logits=labeled_logits, unlabeled_logits=real_logits,
                unlabeled_features=real_features, fake_logits=fake_logits,
                fake_features=fake_features, matching_real_features=matching_real_features,
                matching_fake_features=matching_fake_features)


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


def _to_float32(tensors):
    return [tf.cast(t, tf.float32) for t in tensors]


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


def ema_getter(ema):
    """A custom getter that reads each averaged variable's moving average."""
    def getter(getter, *args, **kwargs):  # TensorFlow passes the next getter as `getter`
        variable = getter(*args, **kwargs)
        average = ema.average(variable) if ema is not None else None
        return variable if average is None else average
    return getter


def model_variables(variables):
    """D's and G's variables among `variables`, without the moving averages:
    what --checkpoint restores into a new run."""
    return [v for v in variables if v.op.name.startswith((D_SCOPE + "/", G_SCOPE + "/"))
            and not v.op.name.endswith("/" + EMA_NAME)]

