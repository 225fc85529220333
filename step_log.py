"""Which numbers a [train] log line shows, and from which step: each read
where it cannot race.

A training step updates one network (D or G) in one session.run. A number
the step's gradients need is computed before the update, but one they do not
need (G's feature matching on D's step: a second D pass; D's loss on G's
step: a G pass on the first z) reads the trained network's weights before or
after its update, depending on the session's scheduling, so the same seed
could log different numbers. Here D's numbers (supervised loss, D loss,
accuracy, the unlabeled loss) come from D steps and G's (G loss, feature
matching) from G steps: a line due after step n takes each network's
numbers from its first step at or after n. A line missing a half when the
run saves a checkpoint or ends takes that network's latest numbers (nan if
it has none), so a resumed run prints the lines an uninterrupted one does.
No TensorFlow here: the loop fetches the tensors this asks for.
"""

import collections

NAMES = ("supervised_loss", "d_loss", "g_loss", "accuracy", "loss_unl", "feature_matching")
G_NAMES = ("g_loss", "feature_matching")  # G's step computes these; D's the others

Line = collections.namedtuple("Line", "step values sec_per_batch")
Line.__doc__ = """A finished log line: the step it names, the numbers of `names` in
order, and the mean seconds per step since the line before."""


class StepLog(object):
    """The log lines due and the numbers they wait for.

    names: the numbers a line shows, from NAMES, in their order.
    g_trains: whether G has steps of its own; if not (the supervised
      baseline) G's numbers are nan: D's step would read them from its own
      weights while it changes them, and G has no loss it trains on."""

    def __init__(self, names, g_trains=True):
        unknown = sorted(set(names) - set(NAMES))
        if unknown:
            raise ValueError("StepLog: unknown numbers %s (known: %s)" % (unknown, NAMES))
        self.names = tuple(names)
        self._sides = {False: [n for n in names if n not in G_NAMES],
                       True: [n for n in names if n in G_NAMES] if g_trains else []}
        self._read = set(self._sides[False] + self._sides[True])
        self._pending = []  # [step, {name: value}, sec_per_batch] in step order
        self._latest = {}

    def side(self, trains_g):
        """The names a step of G (trains_g) or D computes before its update."""
        return list(self._sides[trains_g])

    def wanted(self, trains_g):
        """The names to fetch in this step: its network's, if a due line
        still lacks them."""
        side = self.side(trains_g)
        if side and any(side[0] not in values for _, values, _ in self._pending):
            return side
        return []

    def due(self, step, sec_per_batch):
        """A line naming `step` is due (it waits for its numbers)."""
        self._pending.append([step, {}, sec_per_batch])

    def record(self, trains_g, values):
        """This step's numbers: `values` of self.side(trains_g), in its
        order (none when it fetched none). Returns the lines now complete."""
        fetched = dict(zip(self.side(trains_g), values))
        self._latest.update(fetched)
        for _, line_values, _ in self._pending:
            for name, value in fetched.items():
                line_values.setdefault(name, value)
        done = 0
        while done < len(self._pending) and len(self._pending[done][1]) == len(self._read):
            done += 1
        return self._pop(done)

    def flush(self):
        """Every due line, its missing numbers the latest of their network's."""
        return self._pop(len(self._pending))

    def _pop(self, count):
        lines = []
        for step, values, sec in self._pending[:count]:
            lines.append(Line(step, [values[n] if n in values else
                                     self._latest.get(n, float("nan")) for n in self.names],
                              sec))
        del self._pending[:count]
        return lines


class OncePerNetwork(object):
    """Something each network's step computes once after it falls due, in
    that network's first step from then: the training summaries, whose ops
    sit in the network's own step as the log lines' numbers do."""

    def __init__(self, networks):
        self.networks = tuple(networks)
        self._due = set()

    def arm(self):
        """Due again in each network's next step."""
        self._due = set(self.networks)

    def take(self, network):
        """Whether this step of `network` computes it (once per arm)."""
        if network not in self._due:
            return False
        self._due.discard(network)
        return True
