"""TensorBoard summaries and image grids, made in one place."""

import math

import tensorflow.compat.v1 as tf

from losses import real_probability
from step_log import G_NAMES

MAX_GRID_IMAGES = 64


def image_grid(images, columns=None):
    """[N, H, W, C] -> [1, rows * H, columns * W, C], row-major, N = rows * columns
    (columns defaults to ceil(sqrt(N)); missing cells are left at -1)."""
    n, height, width, channels = images.shape.as_list()
    columns = columns or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(float(n) / columns))
    if rows * columns > n:
        images = tf.concat([images, -tf.ones([rows * columns - n, height, width, channels])], 0)
    grid = tf.reshape(images, [rows, columns, height, width, channels])
    grid = tf.transpose(grid, [0, 2, 1, 3, 4])
    return tf.reshape(grid, [1, rows * height, columns * width, channels])


def to_uint8(images):
    """[-1, 1] floats -> uint8 pixels (x + 1) * 127.5, rounded and clipped."""
    return tf.cast(tf.clip_by_value(tf.round((images + 1.0) * 127.5), 0, 255), tf.uint8)


def encode_grid_png(images, columns=None):
    """A PNG (string scalar) of the images in a grid (see image_grid)."""
    return tf.image.encode_png(to_uint8(image_grid(images, columns))[0])


# Loss fields -> TensorBoard tags; the reference's names where it had them.
SCALAR_TAGS = [
    ("accuracy", "loss/accuracy"),
    ("gan_loss", "loss/GAN_loss"),
    ("supervised_loss", "loss/S_loss"),
    ("d_loss", "loss/d_loss"),
    ("d_loss_real", "loss/d_loss_real"),
    ("d_loss_fake", "loss/d_loss_fake"),
    ("g_loss", "loss/g_loss"),
    ("recon_weight", "loss/recon_weight"),
    ("loss_lab", "loss/loss_lab"),
    ("loss_unl", "loss/loss_unl"),
    ("feature_matching", "loss/feature_matching"),
]


def health_scalars(model, train_ops):
    """{tag: scalar} of the signals that show a GAN's health: D's mean
    probability that the unlabeled real batch and the generated batch are
    real (a collapse drives them to 1 and 0: D then tells every sample from
    the data and the unlabeled loss teaches the classifier nothing), the
    mean of D's features on both (what feature matching compares), and each
    network's gradient norm before clipping."""
    k = model.num_classes
    return {
        "health/d_real_probability": tf.reduce_mean(real_probability(model.unlabeled_logits, k)),
        "health/d_fake_probability": tf.reduce_mean(real_probability(model.fake_logits, k)),
        "health/feature_mean_real": tf.reduce_mean(model.unlabeled_features),
        "health/feature_mean_fake": tf.reduce_mean(model.fake_features),
        "health/d_grad_norm": train_ops.d_grad_norm,
        "health/g_grad_norm": train_ops.g_grad_norm,
    }


G_HEALTH = ("health/g_grad_norm",)  # G's step computes it; D's the other health scalars


def training_summaries(losses, model, learning_rate=None, health=None):
    """TensorBoard: a loss/... scalar for each field the losses have (the
    reference's tags for its losses), train/learning_rate, the `health`
    scalars ({tag: scalar}, see health_scalars) and img/fake, img/real grids
    (up to 64 images). Returns two merged summary ops, (D's, G's): each holds
    what that network's step computes before its update, so that a summary
    neither reads weights the step is changing nor draws batches of another
    network's streams (G's has G's losses and gradient norm)."""
    fields = losses._asdict()
    health = health or {}
    sides = ([], [])
    for name, tag in SCALAR_TAGS:
        if name in fields:
            sides[name in G_NAMES].append(tf.summary.scalar(tag, fields[name]))
    if learning_rate is not None:
        sides[0].append(tf.summary.scalar("train/learning_rate", learning_rate))
    for tag in sorted(health):
        sides[tag in G_HEALTH].append(tf.summary.scalar(tag, health[tag]))
    for tag, images in (("img/fake", model.fake_images), ("img/real", model.unlabeled_images)):
        grid = image_grid(images[:MAX_GRID_IMAGES])
        sides[0].append(tf.summary.image(tag, to_uint8(grid), max_outputs=1))
    return tuple(tf.summary.merge(values) for values in sides)
