"""step_log: each number of a [train] line read in a step that needs it."""

import math

import pytest

import step_log
from step_log import NAMES, StepLog


def run(log, schedule, due_every=1, save_at=()):
    """Drives `log` as train_loop does: steps 0.. with trains_g from
    `schedule`, each fetched number its network's name and the step
    ("d_loss@4"); a line due after every `due_every` steps; flush before a
    save after the steps in `save_at` and at the end. Returns the lines and
    what each step fetched."""
    printed, fetched = [], []
    for step, trains_g in enumerate(schedule):
        due = step % due_every == 0
        wanted = log.side(trains_g) if due else log.wanted(trains_g)
        fetched.append(wanted)
        if due:
            log.due(step + 1, 0.5)
        printed += log.record(trains_g, ["%s@%d" % (n, step) for n in wanted])
        if step + 1 in save_at:
            printed += log.flush()
    return printed + log.flush(), fetched


def test_each_half_comes_from_its_networks_first_step_at_or_after_the_line():
    lines, fetched = run(StepLog(NAMES), [False, True] * 3)  # D, G, D, G, D, G
    assert [line.step for line in lines] == [1, 2, 3, 4, 5, 6]
    by_step = dict((line.step, dict(zip(NAMES, line.values))) for line in lines)
    # The line after D's step 0 takes G's numbers from step 1, D's from step 0.
    assert by_step[1]["d_loss"] == "d_loss@0" and by_step[1]["g_loss"] == "g_loss@1"
    assert by_step[1]["feature_matching"] == "feature_matching@1"
    # After G's step 1: D's numbers from step 2.
    assert by_step[2]["accuracy"] == "accuracy@2" and by_step[2]["g_loss"] == "g_loss@1"
    # The last line (after G's step 5) has no D step after it: D's latest.
    assert by_step[6]["d_loss"] == "d_loss@4" and by_step[6]["g_loss"] == "g_loss@5"
    assert fetched[0] == ["supervised_loss", "d_loss", "accuracy", "loss_unl"]
    assert fetched[1] == ["g_loss", "feature_matching"]


def test_a_network_fetches_only_for_a_line_that_waits_for_it():
    # Lines due after steps 0 and 4 (D steps): G's step 1 completes the first,
    # steps 2 and 3 fetch nothing, G's step 5 completes the second.
    lines, fetched = run(StepLog(NAMES[:4]), [False, True] * 3, due_every=4)
    assert fetched[2:4] == [[], []] and fetched[1] == fetched[5] == ["g_loss"]
    assert [line.values for line in lines] == [
        ["supervised_loss@0", "d_loss@0", "g_loss@1", "accuracy@0"],
        ["supervised_loss@4", "d_loss@4", "g_loss@5", "accuracy@4"]]
    assert all(line.sec_per_batch == 0.5 for line in lines)


def test_a_save_prints_the_waiting_line_with_the_latest_numbers():
    """So that a run resumed from that checkpoint prints what an
    uninterrupted run printed from there on."""
    schedule = [False, True] * 4
    whole, _ = run(StepLog(NAMES[:4]), schedule, save_at=(4,))
    assert [line.step for line in whole] == list(range(1, 9))
    line4 = whole[3]  # after G's step 3, saved before D's step 4 came
    assert line4.values[1] == "d_loss@2" and line4.values[2] == "g_loss@3"
    resumed, _ = run(StepLog(NAMES[:4]), schedule[4:])
    shift = dict(("%s@%d" % (n, s), "%s@%d" % (n, s + 4)) for n in NAMES for s in range(4))
    assert [[shift[v] for v in line.values] for line in resumed] == \
        [line.values for line in whole[4:]]


def test_a_number_never_fetched_is_nan_as_is_gs_in_the_supervised_baseline():
    lines, _ = run(StepLog(NAMES[:4]), [False])
    assert lines[0].values[:2] == ["supervised_loss@0", "d_loss@0"]
    assert math.isnan(lines[0].values[2])
    supervised = StepLog(NAMES[:4], g_trains=False)
    assert supervised.side(False) == ["supervised_loss", "d_loss", "accuracy"]
    assert supervised.side(True) == []
    lines, _ = run(supervised, [False] * 3)
    assert [line.values[1] for line in lines] == ["d_loss@0", "d_loss@1", "d_loss@2"]
    assert all(math.isnan(line.values[2]) for line in lines)


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="lr"):
        StepLog(["d_loss", "lr"])
    assert set(step_log.G_NAMES) < set(NAMES)


def test_something_due_once_per_network_is_taken_in_each_ones_next_step():
    """The summaries: due at step 4 (a D step), then taken by D at 4 and by G
    at 5, once each, until due again."""
    due = step_log.OncePerNetwork(("d", "g"))
    assert not due.take("d")
    due.arm()
    assert [due.take(n) for n in ("d", "d", "g", "g")] == [True, False, True, False]
    due.arm()
    assert due.take("g") and due.take("d") and not due.take("d")
    baseline = step_log.OncePerNetwork(("d",))  # no G steps: D alone takes it
    baseline.arm()
    assert not baseline.take("g") and baseline.take("d")
