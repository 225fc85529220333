"""Start-up's and the platforms' checks and warnings on their own: --precision
against the resolved device, the bf16 warning on CPUs without bfloat16 arithmetic, the
HCCL timeout warning of a slow save. Whole runs through the loop are
tested through trainer.py (test_trainer.py and the feature tests)."""

import pytest

import platforms
import precision
import startup
from schedule import Schedule
from flag_table import parse_train_config
from conftest import fake_cann, network_weights
from errors import ConfigError


def test_precision_is_checked_against_the_resolved_device(data, tmp_path):
    config, _, _ = parse_train_config(["--dataset", data["easy"], "--precision", "fp16"])
    with pytest.raises(ConfigError, match="--precision fp16 is for GPUs"):
        startup.check_device_precision(config, "cpu")
    assert startup.check_device_precision(config, "gpu") == config
    bf16 = config._replace(precision="bf16")
    with pytest.raises(ConfigError, match="no bfloat16 mode"):
        startup.check_device_precision(bf16, "npu")
    assert startup.check_device_precision(config, "npu").precision_mode == "allow_mix_precision"
    # fp32 means the 910's nearest to float32 that the installed CANN takes (here a
    # current one: test_precision has the others), unless --precision_mode names another.
    fp32 = config._replace(precision="fp32")
    current = fake_cann(tmp_path / "cann", "7.0.0")
    assert startup.check_device_precision(fp32, "npu", environ=current,
                                             root=str(tmp_path)).precision_mode == "force_fp32"
    model_card = fp32._replace(precision_mode="allow_fp32_to_fp16")
    resolved = startup.check_device_precision(model_card, "npu")
    assert resolved.precision_mode == "allow_fp32_to_fp16"
    with pytest.raises(ConfigError, match="--precision_mode must be one of"):
        startup.check_device_precision(fp32._replace(precision_mode="fp8"), "npu")
    # Every mode that feeds the 910's matrix unit float16 gets loss scaling.
    assert [m for m in precision.NPU_MODE_MEANING if not precision.npu_loss_scaling(m)] == \
        ["must_keep_origin_dtype"]
    with pytest.raises(ConfigError, match="means precision_mode allow_mix_precision on the NPU"):
        startup.check_device_precision(config._replace(precision_mode="force_fp32"), "npu")

def test_bf16_on_a_cpu_without_bf16_arithmetic_warns(data, tmp_path, caplog):
    config, _, _ = parse_train_config(["--dataset", data["easy"], "--precision", "bf16"])
    old_cpu, new_cpu = tmp_path / "old", tmp_path / "new"
    old_cpu.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f fma\n")
    new_cpu.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16 amx_bf16\n")
    assert precision.cpu_has_native_bf16(str(old_cpu)) is False
    assert precision.cpu_has_native_bf16(str(new_cpu)) is True
    assert precision.cpu_has_native_bf16(str(tmp_path / "none")) is None
    startup.check_device_precision(config, "cpu", str(new_cpu))
    assert "no bfloat16 arithmetic" not in caplog.text
    startup.check_device_precision(config, "cpu", str(old_cpu))
    assert "this CPU has no bfloat16 arithmetic" in caplog.text

def test_a_save_that_takes_half_of_hccls_timeout_warns(caplog):
    platforms.warn_if_near_hccl_timeout(900, 40, {})  # default 1836 s: not yet
    assert "HCCL" not in caplog.text
    platforms.warn_if_near_hccl_timeout(1000, 40, {})
    assert "Saving step 40 took 1000 s while the other cards waited; HCCL stops them after " \
           "HCCL_EXEC_TIMEOUT=1836 s. Raise it (export HCCL_EXEC_TIMEOUT=4000" in caplog.text
    caplog.clear()
    platforms.warn_if_near_hccl_timeout(1000, 40, {"HCCL_EXEC_TIMEOUT": "3600"})
    assert "HCCL" not in caplog.text


def test_update_rate_gives_g_that_many_steps_after_each_d_step(data):
    """--update_rate's rule (its help: step s trains G when s % (update_rate + 1)
    > 0, else D), written out by hand for the first steps."""
    def schedule(args, steps):
        config, _, _ = parse_train_config(["--dataset", data["easy"]] + args)
        return "".join("G" if Schedule.of(config).trains_g(s) else "D" for s in range(steps))

    assert schedule([], 8) == "DGDGDGDG"  # the paper's iteration: one D step, one G step
    assert schedule(["--update_rate", "2"], 10) == "DGGDGGDGGD"
    assert schedule(["--update_rate", "3"], 10) == "DGGGDGGGDG"
    assert schedule(["--method", "supervised"], 4) == "DDDD"  # G is never trained
    # Resumed at any step the schedule goes on by the global step: 3000 = 750 * 4.
    config, _, _ = parse_train_config(["--dataset", data["easy"], "--update_rate", "3"])
    assert [Schedule.of(config).trains_g(s) for s in range(3000, 3005)] == \
        [False, True, True, True, False]


@pytest.mark.slow
def test_update_rate_2_run_trains_g_twice_then_d(data, tmp_path):
    """A run with --update_rate 2 and a checkpoint after every step: steps
    1 and 2 change G's weights alone, step 3 D's alone."""
    import os

    import numpy as np

    import trainer
    run_dir = str(tmp_path / "run")
    assert trainer.main(["--dataset", data["easy"], "--train_dir", run_dir, "--update_rate", "2",
                         "--max_training_steps", "4", "--output_save_step", "1",
                         "--max_to_keep", "10"]) == 0
    weights = [network_weights(os.path.join(run_dir, "model-%d" % s)) for s in (1, 2, 3, 4)]
    assert len(weights[0]) > 10
    changed = []
    for before, after in zip(weights, weights[1:]):
        moved = {n.split("/")[0] for n in before if not np.array_equal(before[n], after[n])}
        changed.append(" ".join(sorted(moved)))
    # model-1 -> model-2 is step 1, model-2 -> model-3 step 2, model-3 -> model-4 step 3.
    assert changed == ["Generator", "Generator", "Discriminator"]


@pytest.mark.slow
def test_a_collapsing_run_logs_the_collapse_warning(data, tmp_path):
    """A run in which D really wins: G frozen (learning rate 1e-9) while D
    learns to tell its samples from the data. D's unlabeled loss falls below
    1e-3 and G's feature matching climbs far above its first epoch's level;
    the trainer feeds its log lines to the collapse detector and train.log
    gets the warning once, right after the line that completed it, and the
    run goes on (a warning, not a stop)."""
    import os
    import re

    import trainer
    run_dir = str(tmp_path / "run")
    weight = 5.0
    # batch 200: an epoch is 640 // 200 = 3 D steps and 3 G steps, so the
    # lines of steps 1-6 are the first epoch's.
    assert trainer.main(["--dataset", data["easy"], "--train_dir", run_dir,
                         "--method", "improved_gan", "--batch_size", "200",
                         "--unlabeled_weight", str(weight), "--learning_rate_g", "1e-9",
                         "--max_training_steps", "60", "--log_step", "1",
                         "--test_sample_step", "1000", "--output_save_step", "1000"]) == 0
    with open(os.path.join(run_dir, "train.log")) as f:
        lines = f.read().splitlines()
    values = {}  # step: (D's unlabeled loss, feature matching) as the line shows them
    for line in lines:
        m = re.search(r"\[train step +(\d+)\] Supervised loss: (\S+) D loss: (\S+) G loss: (\S+)",
                      line)
        if m:
            supervised, d_loss, g_loss = (float(v) for v in m.group(2, 3, 4))
            values[int(m.group(1))] = ((d_loss - supervised) / weight, g_loss)
    assert sorted(values) == list(range(1, 61))
    warnings = [i for i, line in enumerate(lines) if "The GAN has collapsed" in line]
    assert len(warnings) == 1, "\n".join(lines[-80:])
    warning = lines[warnings[0]]
    assert " WARNING The GAN has collapsed (from step " in warning
    m = re.search(r"from step (\d+)\): D's unlabeled real-vs-generated loss has stayed below "
                  r"0\.001 for 5 log lines \(\S+ at step (\d+)\), .* G's feature matching is "
                  r"(\S+); it was (\S+) in the first epoch", warning)
    assert m, warning
    start, at = int(m.group(1)), int(m.group(2))
    matching, baseline = float(m.group(3)), float(m.group(4))
    # Logged right after the line that completed it: five lines below the floor.
    assert re.search(r"\[train step +%d\]" % at, lines[warnings[0] - 1])
    assert start == at - 4
    assert all(values[s][0] < 1e-3 + 1e-5 for s in range(start, at + 1))
    assert values[start - 1][0] > 1e-3 - 1e-5
    # Its numbers are the logged ones: G's loss is the feature matching, and
    # the baseline is the median of the first epoch's (healthy) lines, steps 1-6.
    assert abs(matching - values[at][1]) <= 0.01 * values[at][1]
    first = sorted(values[s][1] for s in range(1, 7) if values[s][0] >= 1e-3)
    assert len(first) == 6
    median = 0.5 * (first[2] + first[3])
    assert abs(baseline - median) <= 0.01 * median
    assert matching >= 10 * baseline or matching >= 20
    assert "Training finished at step 60" in lines[-1]
