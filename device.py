"""The one place where the session configuration is built, per device."""

import logging

import tensorflow.compat.v1 as tf

from config import ConfigError

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "gpu", "npu")


def visible_gpus():
    return tf.config.experimental.list_physical_devices("GPU")


def resolve_device(requested, gpus=None):
    """'auto' -> 'gpu' if TensorFlow sees a GPU, else 'cpu'; checks the others."""
    if requested not in DEVICES:
        raise ConfigError("--device must be one of %s, got %r" % (", ".join(DEVICES), requested))
    gpus = visible_gpus() if gpus is None else gpus
    if requested == "auto":
        return "gpu" if gpus else "cpu"
    if requested == "gpu" and not gpus:
        raise ConfigError("--device gpu, but TensorFlow sees no GPU (is this a CUDA build of "
                          "TensorFlow, and is the driver visible?); use --device cpu")
    if requested == "npu":
        raise ConfigError("--device npu needs the Ascend adapter (npu_bridge), which this "
                          "version does not drive yet; use --device cpu or gpu")
    return requested


def session_config(device):
    """tf.ConfigProto for a resolved device ('cpu' or 'gpu')."""
    config = tf.ConfigProto(allow_soft_placement=True, log_device_placement=False)
    if device == "cpu":
        config.device_count["GPU"] = 0
    elif device == "gpu":
        config.gpu_options.allow_growth = True
    return config
