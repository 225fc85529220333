"""The one place where the device is chosen and the session configured."""

import logging
import os

import tensorflow.compat.v1 as tf

from config import ConfigError

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "gpu", "npu")


def visible_gpus():
    return tf.config.experimental.list_physical_devices("GPU")


def resolve_device(requested, environ=None, nodes=None, npu_importable=None, gpus=None):
    """'auto' -> 'npu' when the Ascend adapter imports and a device is there,
    else 'gpu' if TensorFlow sees one, else 'cpu'. An explicit device is
    checked. The environment, device nodes and adapter check can be given
    (tests do); by default they are this machine's."""
    import ascend
    if requested not in DEVICES:
        raise ConfigError("--device must be one of %s, got %r" % (", ".join(DEVICES), requested))
    environ = os.environ if environ is None else environ
    nodes = ascend.device_nodes() if nodes is None else nodes
    if requested in ("auto", "npu"):
        if ascend.npu_available(environ, nodes, npu_importable):
            return "npu"
        if requested == "npu":
            raise ConfigError("--device npu, but no Ascend NPU is usable here: it needs CANN's "
                              "TF adapter (import npu_bridge) and a device (/dev/davinci*, or "
                              "ASCEND_DEVICE_ID / DEVICE_ID set)")
    gpus = visible_gpus() if gpus is None else gpus
    if requested == "auto":
        return "gpu" if gpus else "cpu"
    if requested == "gpu" and not gpus:
        raise ConfigError("--device gpu, but TensorFlow sees no GPU (is this a CUDA build of "
                          "TensorFlow, and is the driver visible?); use --device cpu")
    return requested


def session_config(device, precision_mode=None):
    """tf.ConfigProto for a resolved device."""
    if device == "npu":
        import ascend
        return ascend.npu_session_config(precision_mode)
    if precision_mode:
        raise ConfigError("--precision_mode sets the Ascend adapter's precision; it has no "
                          "meaning on the %s" % device.upper())
    config = tf.ConfigProto(allow_soft_placement=True, log_device_placement=False)
    if device == "cpu":
        config.device_count["GPU"] = 0
    elif device == "gpu":
        config.gpu_options.allow_growth = True
    return config
