"""train_loop.py's checks and warnings on their own: --precision against the
resolved device, the bf16 warning on CPUs without bfloat16 arithmetic, the
HCCL timeout warning of a slow save. Whole runs through the loop are
tested through trainer.py (test_trainer.py and the feature tests)."""

import pytest

import precision
import train_loop
from config import parse_train_config
from errors import ConfigError

def test_precision_is_checked_against_the_resolved_device(data):
    config, _, _ = parse_train_config(["--dataset", data["easy"], "--precision", "fp16"])
    with pytest.raises(ConfigError, match="--precision fp16 is for GPUs"):
        train_loop.check_device_precision(config, "cpu")
    assert train_loop.check_device_precision(config, "gpu") == config
    bf16 = config._replace(precision="bf16")
    with pytest.raises(ConfigError, match="no bfloat16 mode"):
        train_loop.check_device_precision(bf16, "npu")
    assert train_loop.check_device_precision(config, "npu").precision_mode == "allow_mix_precision"
    # fp32 means the 910's nearest to float32, unless --precision_mode names another mode.
    fp32 = config._replace(precision="fp32")
    assert train_loop.check_device_precision(fp32, "npu").precision_mode == "force_fp32"
    model_card = fp32._replace(precision_mode="allow_fp32_to_fp16")
    resolved = train_loop.check_device_precision(model_card, "npu")
    assert resolved.precision_mode == "allow_fp32_to_fp16"
    with pytest.raises(ConfigError, match="--precision_mode must be one of"):
        train_loop.check_device_precision(fp32._replace(precision_mode="fp8"), "npu")
    # Every mode that feeds the 910's matrix unit float16 gets loss scaling.
    assert [m for m in precision.NPU_MODE_MEANING if not precision.npu_loss_scaling(m)] == \
        ["must_keep_origin_dtype"]
    with pytest.raises(ConfigError, match="means precision_mode allow_mix_precision on the NPU"):
        train_loop.check_device_precision(config._replace(precision_mode="force_fp32"), "npu")

def test_bf16_on_a_cpu_without_bf16_arithmetic_warns(data, tmp_path, caplog):
    config, _, _ = parse_train_config(["--dataset", data["easy"], "--precision", "bf16"])
    old_cpu, new_cpu = tmp_path / "old", tmp_path / "new"
    old_cpu.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f fma\n")
    new_cpu.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16 amx_bf16\n")
    assert precision.cpu_has_native_bf16(str(old_cpu)) is False
    assert precision.cpu_has_native_bf16(str(new_cpu)) is True
    assert precision.cpu_has_native_bf16(str(tmp_path / "none")) is None
    train_loop.check_device_precision(config, "cpu", str(new_cpu))
    assert "no bfloat16 arithmetic" not in caplog.text
    train_loop.check_device_precision(config, "cpu", str(old_cpu))
    assert "this CPU has no bfloat16 arithmetic" in caplog.text

def test_a_save_that_takes_half_of_hccls_timeout_warns(caplog):
    train_loop._warn_if_near_hccl_timeout(900, 40, {})  # default 1836 s: not yet
    assert "HCCL" not in caplog.text
    train_loop._warn_if_near_hccl_timeout(1000, 40, {})
    assert "Saving step 40 took 1000 s while the other cards waited; HCCL stops them after " \
           "HCCL_EXEC_TIMEOUT=1836 s. Raise it (export HCCL_EXEC_TIMEOUT=4000" in caplog.text
    caplog.clear()
    train_loop._warn_if_near_hccl_timeout(1000, 40, {"HCCL_EXEC_TIMEOUT": "3600"})
    assert "HCCL" not in caplog.text
