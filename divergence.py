"""When a run has diverged: the stop rule, built to survive float16 saturation.

A loss that becomes NaN or Inf is the plain sign. On the Ascend 910 it may
never come: the chip computes float16 in saturation mode (an overflow gives
+-65504, not Inf), so a diverged network shows instead as a loss that is
huge but finite, and as loss-scaled steps that overflow and are skipped,
each halving the loss scale, until the scale sits at its floor of 1 and
every step is still skipped. The global step moves on and checkpoints keep
being written, so a run that does not look for these signs trains nothing
for as long as it is allowed to.

    signs = sign_vector(loss, train_op, health)   # in the graph, after the step
    watch = DivergenceWatch(cards)
    stop = watch.check("D", step, values)          # per step: a Divergence or None

On several cards the signs are summed over the cards (ascend.agreement_ops)
before `check`, so that every card reaches the same verdict after the same
step.
"""

import collections

import tensorflow.compat.v1 as tf

# Beyond any healthy loss of these models (D's cross-entropies stay near 1,
# feature matching below a few hundred even in a collapse) and below
# float16's 65504, so that a loss made of saturated logits passes it.
LOSS_BOUND = 1e4
# Overflowing (skipped) steps of one network in a row. The dynamic loss scale
# halves on each, so from 2**15 it reaches its floor in 15; a healthy run
# skips a few steps at its start and after a spike, not 20 in a row.
SKIPPED_IN_A_ROW = 20

Signs = collections.namedtuple("Signs", "nonfinite beyond_bound skipped at_floor")
Signs.__doc__ = """One step's signs of divergence, each the number of cards
showing it (0 or 1 on one card): the loss is NaN or Inf; its magnitude
passes LOSS_BOUND; the step overflowed and was skipped; it was skipped with
the loss scale at its floor (1): the gradients themselves pass float16's
range, and no smaller scale is left to try."""

Divergence = collections.namedtuple("Divergence", "reason since")
Divergence.__doc__ = """Why the run stops (a sentence) and the first step of
the trouble: checkpoints up to `since` hold weights from before it."""


def sign_vector(loss, train, health=None):
    """Float32 [4] tensor of the Signs of the step `train` (0 or 1 each),
    read after it ran. health: the step's precision.StepHealth, or None for
    a step without loss scaling (nothing is ever skipped)."""
    with tf.control_dependencies([train]):
        loss = tf.identity(loss)
        signs = [tf.logical_not(tf.is_finite(loss)), tf.abs(loss) > LOSS_BOUND]
        if health is None:
            signs += [tf.constant(False), tf.constant(False)]
        else:
            signs += [health.skipped, tf.logical_and(health.skipped, health.loss_scale <= 1.0)]
        return tf.stack([tf.cast(s, tf.float32) for s in signs])


class DivergenceWatch(object):
    """The stop rule over the steps of a run, for one process (on several
    cards, given the signs summed over them)."""

    def __init__(self, cards=1):
        self.cards = cards
        self._skipped = {}  # network -> (skipped steps in a row, the first of them)

    def check(self, network, step, values):
        """`network` ("D" or "G") ran step `step` (the global step before it)
        and showed `values` (Signs' four numbers): a Divergence if the run
        must stop, else None."""
        signs = Signs(*[int(round(v)) for v in values])
        row, first = self._skipped.get(network, (0, step))
        row, first = (row + 1, first if row else step) if signs.skipped else (0, step)
        self._skipped[network] = (row, first)

        def where(count):
            return " on %d of the %d cards" % (count, self.cards) if self.cards > 1 else ""
        if signs.nonfinite:
            return Divergence("the %s loss became NaN or Inf at step %d%s"
                              % (network, step, where(signs.nonfinite)), step)
        if signs.beyond_bound:
            return Divergence("the %s loss passed %g at step %d%s, which no healthy run "
                              "reaches (float16 saturates at 65504)"
                              % (network, LOSS_BOUND, step, where(signs.beyond_bound)), step)
        if signs.at_floor:
            return Divergence("%s's step %d overflowed with its loss scale at its floor (1)%s: "
                              "its gradients pass float16's range (%s steps skipped since "
                              "step %d)" % (network, step, where(signs.at_floor), row, first),
                              first)
        if row >= SKIPPED_IN_A_ROW:
            return Divergence("%d %s steps in a row overflowed and were skipped (steps %d to "
                              "%d)%s" % (row, network, first, step, where(signs.skipped)), first)
        return None
