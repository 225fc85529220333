"""Which network each step trains, said once:

    schedule = Schedule.of(config)
    schedule.trains_g(step)        # this step updates G (else D)
    schedule.steps_before(step)    # Steps(d, g) taken before it
    schedule.networks              # ("d", "g"), or ("d",) for the supervised baseline

The reference's order: step s trains G when s % (update_rate + 1) > 0, so
with --update_rate 1 one D step then one G step, the paper's iteration. The
supervised baseline trains D alone. No TensorFlow here: steps_before also
takes an integer tensor.
"""

import collections

Steps = collections.namedtuple("Steps", "d g")
Steps.__doc__ = "One value for D's training step and one for G's."


class Schedule(collections.namedtuple("Schedule", "g_trains update_rate")):
    """g_trains: whether G has steps (not in the supervised baseline);
    update_rate: G steps after each D step."""

    @classmethod
    def of(cls, config):
        return cls(config.method != "supervised", config.update_rate)

    @property
    def networks(self):
        """The networks whose steps the run takes."""
        return ("d", "g") if self.g_trains else ("d",)

    def trains_g(self, step):
        """Whether `step` updates G (else D)."""
        return self.g_trains and step % (self.update_rate + 1) > 0

    def steps_before(self, step):
        """Steps(d, g): how many of the steps before `step` (a number or an
        integer tensor) train D and G."""
        if not self.g_trains:
            return Steps(step, 0 * step)
        cycle = self.update_rate + 1
        d_steps = (step + cycle - 1) // cycle
        return Steps(d_steps, step - d_steps)

    def epoch_steps(self, num_train, batch_size):
        """Steps of one pass over `num_train` training images: the paper's
        epoch is num_train // batch_size D steps, each followed by
        update_rate G steps."""
        iterations = num_train // batch_size
        return iterations * (self.update_rate + 1) if self.g_trains else iterations
