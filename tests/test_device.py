"""device.py: which device 'auto' picks (the NPU only with its adapter and a
device, never a silent CPU fallback on an Ascend machine), and the session
config each device gets (the Ascend adapter's, against the stand-in
npu_bridge in tests/standins)."""

import pytest

import device
from errors import ConfigError

def test_npu_session_config(standins):
    config = device.session_config("npu", "allow_mix_precision")
    RewriterConfig = type(config.graph_options.rewrite_options)
    rewrite = config.graph_options.rewrite_options
    assert [o.name for o in rewrite.custom_optimizers] == ["NpuOptimizer"]
    params = rewrite.custom_optimizers[0].parameter_map
    assert params["use_off_line"].b is True
    assert params["precision_mode"].s == b"allow_mix_precision"
    assert rewrite.remapping == RewriterConfig.OFF
    assert rewrite.memory_optimization == RewriterConfig.OFF
    assert config.allow_soft_placement and not config.log_device_placement
    default = device.session_config("npu").graph_options.rewrite_options.custom_optimizers[0]
    assert "precision_mode" not in default.parameter_map  # the adapter's default
    with pytest.raises(ConfigError, match="--precision_mode must be one of"):
        device.session_config("npu", "fp8")
    with pytest.raises(ConfigError, match="no meaning on the CPU"):
        device.session_config("cpu", "allow_mix_precision")

def test_auto_picks_the_npu_only_when_adapter_and_device_are_there():
    pick = device.resolve_device
    assert pick("auto", environ={}, nodes=["/dev/davinci0"], npu_importable=True) == "npu"
    assert pick("auto", environ={"ASCEND_DEVICE_ID": "3"}, nodes=[], npu_importable=True) == "npu"
    assert pick("auto", environ={"DEVICE_ID": "3"}, nodes=[], npu_importable=True) == "npu"
    assert pick("auto", environ={}, nodes=[], npu_importable=True, gpus=[]) == "cpu"
    # Ascend devices without a working adapter: an error, not CPU numbers as NPU ones.
    with pytest.raises(ConfigError, match=r"has Ascend devices \(/dev/davinci0\) but CANN's "
                                          r"TF adapter does not import .*--device cpu"):
        pick("auto", environ={}, nodes=["/dev/davinci0"], npu_importable=False, gpus=[])
    assert pick("cpu", environ={}, nodes=["/dev/davinci0"], npu_importable=False) == "cpu"
    assert pick("auto", environ={}, nodes=[], npu_importable=False, gpus=["gpu0"]) == "gpu"
    with pytest.raises(ConfigError, match="no Ascend NPU is usable here"):
        pick("npu", environ={}, nodes=[], npu_importable=False)

def test_a_device_id_without_the_adapter_warns_and_trains_on_the_cpu(caplog):
    assert device.resolve_device("auto", environ={"ASCEND_DEVICE_ID": "0"}, nodes=[],
                                 npu_importable=None, gpus=[]) == "cpu"
    assert "ASCEND_DEVICE_ID is set but CANN's TF adapter does not import (ModuleNotFoundError" \
        in caplog.text
