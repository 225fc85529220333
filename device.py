"""The one place where the device is chosen and the session configured."""

import logging
import os

import tensorflow.compat.v1 as tf

import ascend
from errors import ConfigError

log = logging.getLogger(__name__)


def visible_gpus():
    return tf.config.experimental.list_physical_devices("GPU")


def resolve_device(requested, environ=None, nodes=None, npu_importable=None, gpus=None):
    """'auto' -> 'npu' when the Ascend adapter imports and a device is there,
    else 'gpu' if TensorFlow sees one, else 'cpu'. An explicit device is
    checked. The environment, device nodes and adapter check can be given
    (tests do); by default they are this machine's."""
    environ = os.environ if environ is None else environ
    nodes = ascend.device_nodes() if nodes is None else nodes
    if requested in ("auto", "npu"):
        if ascend.npu_available(environ, nodes, npu_importable):
            return "npu"
        if requested == "npu":
            raise ConfigError("--device npu, but no Ascend NPU is usable here: it needs CANN's "
                              "TF adapter (import npu_bridge) and a device (/dev/davinci*, or "
                              "ASCEND_DEVICE_ID / DEVICE_ID set)")
        _refuse_a_silent_fallback(environ, nodes, npu_importable)
    gpus = visible_gpus() if gpus is None else gpus
    if requested == "auto":
        return "gpu" if gpus else "cpu"
    if requested == "gpu" and not gpus:
        raise ConfigError("--device gpu, but TensorFlow sees no GPU (is this a CUDA build of "
                          "TensorFlow, and is the driver visible?); use --device cpu")
    return requested


def _refuse_a_silent_fallback(environ, nodes, importable):
    """--device auto where an NPU was expected but the adapter does not
    import (a broken CANN set-up): with Ascend devices on the machine, an
    error, not CPU numbers reported as NPU numbers; with only
    ASCEND_DEVICE_ID / DEVICE_ID set, a warning."""
    if importable:  # the adapter imports; there is no device: nothing was expected
        return
    reason = ascend.adapter_import_error() if importable is None else "npu_bridge is missing"
    if reason is None:
        return
    if nodes:
        raise ConfigError("this machine has Ascend devices (%s) but CANN's TF adapter does not "
                          "import (%s): source CANN's set_env.sh (e.g. . /usr/local/Ascend/"
                          "ascend-toolkit/set_env.sh) and check the tfplugin package, or pass "
                          "--device cpu to train on the CPU" % (", ".join(nodes), reason))
    named = [name for name in ("ASCEND_DEVICE_ID", "DEVICE_ID") if name in environ]
    if named:
        log.warning("%s is set but CANN's TF adapter does not import (%s): training on the "
                    "CPU, not an Ascend NPU", " and ".join(named), reason)


def session_config(device, precision_mode=None):
    """tf.ConfigProto for a resolved device."""
    if device == "npu":
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
