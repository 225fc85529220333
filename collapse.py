"""Noticing, while it trains, that the paper's semi-supervised GAN has collapsed.

A healthy D never quite tells the generated images from the real ones: on
MNIST-100 its unlabeled (real vs generated) loss stays between about 0.02
and 0.5 for the whole run, and G's feature matching between 1 and 30
(in the first epochs the loss may dip towards 1e-3 for a line or two). In a
collapse D wins outright: the unlabeled loss drops to 1e-3 - 1e-5 and stays
there, feature matching climbs to 25-1,700 (G's samples are far from the
data in D's features), and since every generated image is recognised, the
unlabeled loss stops teaching the classifier and test accuracy falls from
then on. A collapse can come in the first epochs or after many. The
detector watches the two values the trainer logs and says so once, with the
step, instead of letting a user find out hours later.
"""

UNLABELED_LOSS_FLOOR = 1e-3  # healthy runs stay above ~0.01; collapsed ones sit at 1e-3 - 1e-5
PATIENCE = 5  # consecutive log lines below the floor before warning
MATCHING_JUMP = 10.0  # feature matching this many times its level in the first epoch
MATCHING_LARGE = 20.0  # or this large outright (MNIST's squared feature differences)


def _median(values):
    values = sorted(values)
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else 0.5 * (values[middle - 1] + values[middle])


class CollapseDetector(object):
    """Fed the unlabeled loss and the feature matching of each log line,
    reports a collapse: the unlabeled loss below `floor` for `patience`
    lines in a row while feature matching (their median) is at least
    `large`, or at least `jump` times its baseline: the median of the
    healthy lines of the first epoch (the lines up to step `epoch_steps`;
    when none of those was seen, as in a resumed run, the first `patience`
    healthy lines). Without a baseline yet, the loss alone decides. Unlike
    the median of recent lines, the first epoch's level is not raised by a
    climb that precedes a collapse. It warns once per collapse; `patience`
    lines above the floor in a row end it, and a later collapse is reported
    again."""

    def __init__(self, epoch_steps=0, floor=UNLABELED_LOSS_FLOOR, patience=PATIENCE,
                 jump=MATCHING_JUMP, large=MATCHING_LARGE):
        self.epoch_steps = epoch_steps
        self.floor = floor
        self.patience = patience
        self.jump = jump
        self.large = large
        self._first = []  # feature matching of the healthy lines the baseline comes from
        self._baseline_done = False
        self._streak = []
        self._warned = False
        self._recovering = 0

    def _baseline(self):
        return _median(self._first) if self._first else None

    def _note_healthy(self, step, feature_matching):
        if self._baseline_done:
            return
        if step <= self.epoch_steps:
            self._first.append(feature_matching)
            return
        if not self._first or not self.epoch_steps:  # no line of the first epoch was seen
            self._first.append(feature_matching)
            self._baseline_done = len(self._first) >= self.patience
            return
        self._baseline_done = True

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
            self._note_healthy(step, feature_matching)
            self._streak = []
            return None
        self._streak.append((step, unlabeled_loss, feature_matching))
        if len(self._streak) < self.patience:
            return None
        matching = _median([m for _, _, m in self._streak[-self.patience:]])
        baseline = self._baseline()
        if baseline is not None and not (matching >= self.large
                                         or matching >= self.jump * baseline):
            return None
        self._warned, self._recovering = True, 0
        start = self._streak[0][0]
        before = ("; it was %.3g in the first epoch" % baseline) if baseline is not None else ""
        return ("The GAN has collapsed (from step %d): D's unlabeled real-vs-generated loss has "
                "stayed below %g for %d log lines (%.2g at step %d), so D tells every generated "
                "image from the real ones and the unlabeled images no longer teach the "
                "classifier; G's feature matching is %.3g%s. Test accuracy usually falls from "
                "here: the checkpoints from before step %d are the ones to keep "
                "(docs/reproducing.md: \"A collapsing GAN\")."
                % (start, self.floor, len(self._streak), unlabeled_loss, step, feature_matching,
                   before, start))
