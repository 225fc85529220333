"""Huawei Ascend (NPU) support through CANN's TF adapter, `npu_bridge`.

Everything here imports `npu_bridge` lazily, only on the NPU path: the project
imports and runs where the adapter does not exist. The interface followed is
the adapter's documented one (the NpuOptimizer rewriter, NPUDistributedOptimizer,
hccl_ops.broadcast) as the ModelZoo TensorFlow models use it.
"""

import collections
import glob
import importlib

import tensorflow.compat.v1 as tf

from config import ConfigError

PRECISION_MODES = ("allow_fp32_to_fp16", "allow_mix_precision", "force_fp16", "force_fp32",
                   "must_keep_origin_dtype")

RankInfo = collections.namedtuple("RankInfo", "size rank device_id")
RankInfo.__doc__ = """This process's place among the cards: RANK_SIZE, RANK_ID and the
device id (ASCEND_DEVICE_ID, else DEVICE_ID, else 0)."""


def device_nodes():
    """The Ascend device nodes this machine has (/dev/davinci0, ...)."""
    return sorted(glob.glob("/dev/davinci[0-9]*"))


def adapter_importable():
    try:
        importlib.import_module("npu_bridge")
        return True
    except ImportError:
        return False


def npu_available(environ, nodes, importable=None):
    """The NPU is there when npu_bridge imports and a device node exists or
    ASCEND_DEVICE_ID / DEVICE_ID is set."""
    if importable is None:
        importable = adapter_importable()
    has_device = bool(nodes) or "ASCEND_DEVICE_ID" in environ or "DEVICE_ID" in environ
    return bool(importable and has_device)


def _int_env(environ, name, default):
    value = environ.get(name, default)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError("environment variable %s must be an integer, got %r" % (name, value))


def rank_info(environ):
    """RankInfo from the environment; with RANK_SIZE > 1 the HCCL set-up
    (RANK_TABLE_FILE, JOB_ID) must be there."""
    size = _int_env(environ, "RANK_SIZE", 1)
    rank = _int_env(environ, "RANK_ID", 0)
    device_id = _int_env(environ, "ASCEND_DEVICE_ID", _int_env(environ, "DEVICE_ID", 0))
    if size < 1 or not 0 <= rank < size:
        raise ConfigError("RANK_ID must lie in [0, RANK_SIZE), got RANK_ID=%d RANK_SIZE=%d"
                          % (rank, size))
    if size > 1:
        missing = [name for name in ("RANK_TABLE_FILE", "JOB_ID") if not environ.get(name)]
        if missing:
            raise ConfigError("RANK_SIZE=%d needs %s set: HCCL reads the cards from the rank "
                              "table (RANK_TABLE_FILE, a JSON file) under a job id (JOB_ID); "
                              "see scripts/train_full_8p.sh" % (size, " and ".join(missing)))
    return RankInfo(size, rank, device_id)


def npu_session_config(precision_mode=None):
    """tf.ConfigProto for the NPU: one NpuOptimizer custom rewriter holding the
    adapter's settings, remapping and memory optimisation off (the adapter
    requires both), soft placement."""
    from npu_bridge.npu_init import RewriterConfig
    config = tf.ConfigProto(allow_soft_placement=True, log_device_placement=False)
    rewrite = config.graph_options.rewrite_options
    npu = rewrite.custom_optimizers.add()
    npu.name = "NpuOptimizer"
    npu.parameter_map["use_off_line"].b = True
    if precision_mode:
        if precision_mode not in PRECISION_MODES:
            raise ConfigError("--precision_mode must be one of %s, got %r"
                              % (", ".join(PRECISION_MODES), precision_mode))
        npu.parameter_map["precision_mode"].s = tf.compat.as_bytes(precision_mode)
    rewrite.remapping = RewriterConfig.OFF
    rewrite.memory_optimization = RewriterConfig.OFF
    return config


def distributed_optimizer_wrapper():
    """Wraps an optimizer so its gradients are all-reduced over the cards."""
    from npu_bridge.npu_init import NPUDistributedOptimizer
    return NPUDistributedOptimizer


def broadcast_variables_op(variables):
    """One op that sets every float variable to rank 0's value (run once after
    initialisation or restore, so all cards start equal)."""
    from npu_bridge.npu_init import hccl_ops
    assigns = []
    for variable in variables:
        if variable.dtype.base_dtype.is_floating:
            value = hccl_ops.broadcast(tensor=[variable], root_rank=0)[0]
            assigns.append(tf.assign(variable, value))
    return tf.group(*assigns, name="broadcast_from_rank0")
