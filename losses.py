"""Both methods' losses, as pure functions of logits, features and labels,
each with its shape checks:

    losses = build_ssgan_losses(model, global_step)        # --method ssgan: SSGANLosses
    losses = build_improved_gan_losses(model, unlabeled_weight=1.0)  # ImprovedGANLosses

`model` is model.build_model's SSGANModel.

The reference (clvrai/SSGAN-Tensorflow, --method ssgan): D is a (K+1)-way
classifier, K real classes and "fake", trained with cross-entropy against
one-hot targets (generated images: alpha on "fake", the rest spread over the
classes); G minimises its GAN loss plus an annealed Huber reconstruction term.

The paper (Salimans et al. 2016, openai/improved-gan, --method improved_gan):
D is a K-class classifier whose "fake" logit is fixed at 0: with
Z(x) = sum_k exp(l_k(x)), D(x) = Z / (Z + 1) is the probability that x is
real. Given K+1 logits (the reference networks' or the paper's, whose last
column is 0), `class_logits` subtracts the fake logit, which leaves every
softmax unchanged. LSE below is logsumexp over the K class logits.

  loss_lab = -mean(l_y) + mean(LSE(l_lab))                 labeled cross-entropy
  loss_unl = -0.5 mean(LSE(l_unl)) + 0.5 mean(softplus(LSE(l_unl)))
             + 0.5 mean(softplus(LSE(l_gen)))              real vs generated
  D minimises loss_lab + w * loss_unl; G minimises feature matching:
  mean((E[f(x_unl)] - E[f(G(z))])^2) (l2, MNIST) or mean(|...|) (l1, CIFAR/SVHN)
  over an intermediate layer f of D.
"""

import collections

import tensorflow.compat.v1 as tf

import ops
from flag_table import FEATURE_NORMS
from model import has_unlabeled_batch

FAKE_LABEL_ALPHA = 0.9  # probability mass on "fake" in D's target for generated images
RECON_WEIGHT_START = 10.0
RECON_ANNEAL_STEPS = 1500


# Shape checks.

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


def supervised_huber_loss(real_logits, labels, num_classes):
    """Logged, not optimised: mean Huber loss between one_hot(y) and
    sigmoid(real_logits[:, :K])."""
    check_logits("supervised_huber_loss", real_logits, num_classes)
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


def build_ssgan_losses(model, global_step, unlabeled_weight=1.0):
    """SSGANLosses of an SSGANModel at `global_step` (for the annealing).

    The reference's losses, on the labeled batch. With a separate unlabeled
    batch (semi-supervised), D also pays unlabeled_weight * -log P(not fake)
    on it, and G's reconstruction term pairs its images with that batch."""
    k = model.num_classes
    d_loss_real, d_loss_fake = discriminator_losses(model.labeled_logits, model.fake_logits,
                                                    model.labels, k)
    d_loss = tf.reduce_mean(d_loss_real + d_loss_fake)
    if has_unlabeled_batch(model):
        d_loss += unlabeled_weight * tf.reduce_mean(unlabeled_real_loss(model.unlabeled_logits, k))
    g_gan_loss = generator_gan_loss(model.fake_logits, k)
    recon_loss = reconstruction_loss(model.unlabeled_images, model.fake_images)
    recon_weight = reconstruction_weight(global_step)
    g_loss = g_gan_loss + recon_weight * recon_loss
    return SSGANLosses(
        d_loss=d_loss, d_loss_real=tf.reduce_mean(d_loss_real),
        d_loss_fake=tf.reduce_mean(d_loss_fake), g_loss=g_loss, g_gan_loss=g_gan_loss,
        recon_loss=recon_loss, recon_weight=recon_weight, gan_loss=d_loss + g_loss,
        supervised_loss=supervised_huber_loss(model.labeled_logits, model.labels, k),
        accuracy=classification_accuracy(model.labeled_logits, model.labels, k))


# The paper's (--method improved_gan).
def class_logits(logits, num_classes):
    """[B, K+1] -> [B, K]: the class logits with the fake logit moved to 0."""
    check_logits("class_logits", logits, num_classes)
    return logits[:, :num_classes] - logits[:, num_classes:]


def labeled_loss(logits, labels, num_classes):
    """mean over the batch of LSE(l) - l_y: softmax cross-entropy of the K
    class logits against the labels. logits [B, K+1], labels [B] int."""
    check_logits("labeled_loss", logits, num_classes)
    check_same_batch("labeled_loss", logits, labels)
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(labels, tf.int32), logits=class_logits(logits, num_classes)))


def unlabeled_loss(real_logits, fake_logits, num_classes, real_label=1.0):
    """The paper's GAN loss of D: 0.5 E[-log D(x)] + 0.5 E[-log(1 - D(G(z)))]
    with -log D = softplus(LSE) - LSE and -log(1 - D) = softplus(LSE).

    real_label < 1 is one-sided label smoothing: the real target becomes
    real_label, i.e. -real_label log D - (1 - real_label) log(1 - D)
    = softplus(LSE) - real_label * LSE; generated images keep target 0.

    Args:
      real_logits [B, K+1] of unlabeled real images, fake_logits [B', K+1].
    """
    lse_real = tf.reduce_logsumexp(class_logits(real_logits, num_classes), axis=1)
    lse_fake = tf.reduce_logsumexp(class_logits(fake_logits, num_classes), axis=1)
    return (0.5 * tf.reduce_mean(tf.nn.softplus(lse_real) - real_label * lse_real)
            + 0.5 * tf.reduce_mean(tf.nn.softplus(lse_fake)))


def feature_matching_loss(real_features, fake_features, norm="l2"):
    """Distance between the batch means of D's features on real and generated
    images: mean over features of the squared (l2) or absolute (l1)
    difference. real_features [B, F], fake_features [B', F]."""
    if real_features.shape[1:].as_list() != fake_features.shape[1:].as_list():
        raise ValueError("feature_matching_loss: real features have shape %s but fake %s"
                         % (real_features.shape, fake_features.shape))
    if norm not in FEATURE_NORMS:
        raise ValueError("feature matching norm must be one of %s, got %r"
                         % (FEATURE_NORMS, norm))
    difference = tf.reduce_mean(real_features, axis=0) - tf.reduce_mean(fake_features, axis=0)
    if norm == "l1":
        return tf.reduce_mean(tf.abs(difference))
    return tf.reduce_mean(tf.square(difference))


ImprovedGANLosses = collections.namedtuple(
    "ImprovedGANLosses", "d_loss loss_lab loss_unl g_loss feature_matching supervised_loss "
                         "accuracy")
ImprovedGANLosses.__doc__ = """Scalars: d_loss = loss_lab + w * loss_unl (D
minimises), g_loss = feature_matching (G minimises), supervised_loss (the
labeled loss, for the log line) and accuracy on the labeled batch."""


def build_improved_gan_losses(model, unlabeled_weight=1.0, real_label=1.0,
                              feature_norm="l2"):
    """ImprovedGANLosses of a model.SSGANModel: D's losses from its labeled,
    unlabeled and generated logits, G's feature matching from its
    matching_real_features and matching_fake_features."""
    k = model.num_classes
    loss_lab = labeled_loss(model.labeled_logits, model.labels, k)
    loss_unl = unlabeled_loss(model.unlabeled_logits, model.fake_logits, k, real_label)
    matching = feature_matching_loss(model.matching_real_features,
                                     model.matching_fake_features, feature_norm)
    # With weight 0 (the supervised baseline) the unlabeled and generated
    # batches stay out of D's step altogether, rather than being computed and
    # multiplied by 0.
    d_loss = loss_lab + unlabeled_weight * loss_unl if unlabeled_weight else loss_lab
    return ImprovedGANLosses(
        d_loss=d_loss, loss_lab=loss_lab, loss_unl=loss_unl,
        g_loss=matching, feature_matching=matching, supervised_loss=loss_lab,
        accuracy=classification_accuracy(model.labeled_logits, model.labels, k))
