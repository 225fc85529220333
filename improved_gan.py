"""The Improved-GAN paper's semi-supervised objective (Salimans et al. 2016,
openai/improved-gan), as pure functions of logits and features:

    losses = build_losses(model, unlabeled_weight=1.0)   # ImprovedGANLosses

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

from model import check_logits, check_same_batch, classification_accuracy

FEATURE_NORMS = ("l2", "l1")


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


def build_losses(model, unlabeled_weight=1.0, real_label=1.0, feature_norm="l2"):
    """ImprovedGANLosses of a model.SSGANModel: D's losses from its labeled,
    unlabeled and generated logits, G's feature matching from its
    matching_real_features and matching_fake_features."""
    k = model.num_classes
    loss_lab = labeled_loss(model.labeled_logits, model.labels, k)
    loss_unl = unlabeled_loss(model.real_logits, model.fake_logits, k, real_label)
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


# Training helpers from the paper: historical averaging, the learning-rate
# schedule, an exponential moving average of D's weights.

HISTORY_SCOPE = "HistoricalAverage"


def historical_average(variables, name):
    """The paper's historical averaging: a penalty sum_i ||theta_i - mean_t theta_i||^2
    pulling each parameter towards the mean of its past values.

    Returns (penalty scalar, update op). The update folds the current values
    into the running means; run it after each optimisation step. The penalty
    is 0 until the first update (no history yet).
    """
    with tf.variable_scope(HISTORY_SCOPE + "/" + name):
        count = tf.get_variable("count", [], initializer=tf.zeros_initializer(),
                                trainable=False)
        means = [tf.get_variable(v.op.name, v.shape, initializer=tf.zeros_initializer(),
                                 trainable=False) for v in variables]
    penalty = tf.add_n([tf.reduce_sum(tf.square(v - m)) for v, m in zip(variables, means)])
    penalty *= tf.cast(count > 0, tf.float32)
    updates = [tf.assign_add(m, (v - m) / (count + 1.0)) for v, m in zip(variables, means)]
    with tf.control_dependencies(updates):
        update = tf.assign_add(count, 1.0)
    return penalty, update


def learning_rate_schedule(base_rate, global_step, decay_start, total_steps):
    """The paper's CIFAR/SVHN schedule: constant, then linear decay to 0 from
    step decay_start to total_steps (their 1200 epochs decay from epoch 800:
    lr * min(3 - epoch / 400, 1)). decay_start <= 0 keeps it constant."""
    if decay_start <= 0 or decay_start >= total_steps:
        return tf.constant(base_rate, tf.float32)
    step = tf.cast(global_step, tf.float32)
    fraction = (float(total_steps) - step) / float(total_steps - decay_start)
    return base_rate * tf.clip_by_value(fraction, 0.0, 1.0)
