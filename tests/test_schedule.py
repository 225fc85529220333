"""schedule.py: which network each step trains, and how many steps of each
came before, counted by hand."""

import collections

from schedule import Schedule

Flags = collections.namedtuple("Flags", "method update_rate")


def test_steps_before_counts_the_steps_trains_g_gives():
    for method, update_rate in (("improved_gan", 1), ("ssgan", 2), ("supervised", 1)):
        schedule = Schedule.of(Flags(method, update_rate))
        for step in range(12):
            g_steps = sum(schedule.trains_g(s) for s in range(step))
            assert schedule.steps_before(step) == (step - g_steps, g_steps)


def test_an_epoch_is_the_papers_d_steps_and_their_g_steps():
    assert Schedule.of(Flags("improved_gan", 1)).epoch_steps(60000, 100) == 1200
    assert Schedule.of(Flags("ssgan", 2)).epoch_steps(60000, 32) == 1875 * 3
    assert Schedule.of(Flags("supervised", 1)).epoch_steps(60000, 100) == 600
    assert Schedule.of(Flags("supervised", 1)).networks == ("d",)
    assert Schedule.of(Flags("ssgan", 1)).networks == ("d", "g")
