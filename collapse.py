"""Noticing, while it trains, that the paper's semi-supervised GAN has collapsed.

A healthy D never quite tells the generated images from the real ones: on
MNIST-100 its unlabeled (real vs generated) loss stays between about 0.08
and 0.5 for the whole run, and G's feature matching between 2 and 10. In a
collapse D wins outright: the unlabeled loss drops to 1e-4 - 1e-5 and stays
there, feature matching jumps 20-200-fold (G's samples are far from the
data in D's features), and since every generated image is recognised, the
unlabeled loss stops teaching the classifier and test accuracy falls from
then on. The detector watches the two values the trainer logs and says so
once, with the step, instead of letting a user find out hours later.
"""

import collections

UNLABELED_LOSS_FLOOR = 1e-3  # early training dips to ~0.01; collapsed runs sit at 1e-4 - 1e-5
PATIENCE = 5  # consecutive log lines below the floor before warning
MATCHING_JUMP = 10.0  # feature matching this many times its healthy median
HEALTHY_HISTORY = 50  # healthy feature-matching values kept for the median


def _median(values):
    values = sorted(values)
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else 0.5 * (values[middle - 1] + values[middle])


class CollapseDetector(object):
    """Fed the unlabeled loss and the feature matching of each log line,
    reports a collapse: the unlabeled loss below `floor` for `patience`
    lines in a row while feature matching is at least `jump` times its
    median over the healthy lines before (when there were fewer than three
    healthy lines, the loss alone decides). It warns once per collapse;
    `patience` lines above the floor in a row end it, and a later collapse
    is reported again."""

    def __init__(self, floor=UNLABELED_LOSS_FLOOR, patience=PATIENCE, jump=MATCHING_JUMP):
        self.floor = floor
        self.patience = patience
        self.jump = jump
        self._healthy = collections.deque(maxlen=HEALTHY_HISTORY)
        self._streak = []
        self._warned = False
        self._recovering = 0

    def update(self, step, unlabeled_loss, feature_matching):
        """One log line's values; returns the warning text when this line
        completes a collapse, else None."""
        low = unlabeled_loss < self.floor  # NaN counts as healthy: the trainer stops on it
        if self._warned:
            # A collapsed GAN has the odd line above the floor; it has
            # recovered only after `patience` of them in a row.
            self._recovering = 0 if low else self._recovering + 1
            if self._recovering >= self.patience:
                self._warned, self._streak = False, []
            return None
        if not low:
            self._healthy.append(feature_matching)
            self._streak = []
            return None
        self._streak.append((step, unlabeled_loss, feature_matching))
        if len(self._streak) < self.patience:
            return None
        matching = _median([m for _, _, m in self._streak[-self.patience:]])
        baseline = _median(self._healthy) if len(self._healthy) >= 3 else None
        if baseline is not None and not matching >= self.jump * baseline:
            return None
        self._warned, self._recovering = True, 0
        start = self._streak[0][0]
        before = ("; it was %.3g before" % baseline) if baseline is not None else ""
        return ("The GAN has collapsed (from step %d): D's unlabeled real-vs-generated loss has "
                "stayed below %g for %d log lines (%.2g at step %d), so D tells every generated "
                "image from the real ones and the unlabeled images no longer teach the "
                "classifier; G's feature matching is %.3g%s. Test accuracy usually falls from "
                "here: the checkpoints from before step %d are the ones to keep "
                "(docs/reproducing.md: \"A collapsing GAN\")."
                % (start, self.floor, len(self._streak), unlabeled_loss, step, feature_matching,
                   before, start))
