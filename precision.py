"""--precision fp32|bf16|fp16: the dtype the networks compute in.

Mixed precision as usual: variables, optimizer state, batch-norm
statistics and the losses stay float32; the networks' convolutions and
matmuls run in bfloat16 or float16. Layers ask tf.get_variable for weights
in their input's dtype; variable_getter stores every variable as float32
and hands the layer a cast copy, so gradients arrive at the float32
variables through the casts. float16's narrow range needs loss scaling
(DynamicLossScale); bfloat16 has float32's range and does not.

On the NPU the graph stays float32 and the Ascend adapter chooses each op's
dtype from its precision_mode, which --precision sets (NPU_PRECISION_MODES;
--precision_mode names another). The Ascend 910's matrix unit (the
convolutions and matmuls) has no float32 path: every mode but
must_keep_origin_dtype feeds it float16, so every such mode gets loss
scaling, through the adapter's own float-status check (ascend.py). The
910's adapter has no bfloat16 mode. Which modes the adapter takes depends
on the CANN release installed (NPU_MODE_SINCE, read by cann.py): where
force_fp32 is not known to be taken, --precision fp32 falls back to
allow_fp32_to_fp16 and says so.
"""

import collections
import logging
import os

import tensorflow.compat.v1 as tf

import cann
from errors import ConfigError

log = logging.getLogger(__name__)

DTYPES = {"fp32": tf.float32, "bf16": tf.bfloat16, "fp16": tf.float16}
NPU_PRECISION_MODES = {"fp32": "force_fp32", "fp16": "allow_mix_precision"}
# What each of the adapter's precision modes does on the Ascend 910 (CANN's
# precision_mode documentation); --help and docs/distributed.md say the same.
NPU_MODE_MEANING = collections.OrderedDict([
    ("force_fp32", "convolutions and matmuls take float16 inputs and give float32 outputs "
                   "(the matrix unit has no float32 path); every other op float32"),
    ("allow_mix_precision", "the adapter's mixed precision: ops on its float16 list "
                            "(convolutions, matmuls, most elementwise ops) in float16, the rest "
                            "float32"),
    ("allow_fp32_to_fp16", "the adapter's default: convolutions and matmuls in float16; other "
                           "ops float32 where they have a float32 kernel"),
    ("force_fp16", "every op that has a float16 kernel in float16"),
    ("must_keep_origin_dtype", "float32 throughout; the 910 has no float32 convolution, so "
                               "this graph fails to compile there"),
])
# The first CANN release whose TF adapter takes each mode; (0,): every release.
# force_fp32: CANN's precision_mode documentation lists it from 6.2 (6.0.1's lists
#   the other four only); the adapter itself checks the value from 2023-02, with
#   force_fp32 on its list from the start (Ascend/tensorflow
#   tf_adapter/util/npu_attrs.cc, kPrecisionModeList, branches master and r1.15.0),
#   while the 2021 adapter (branch development) hands any string to the graph engine
#   unchecked. Older releases are not relied on to take it: CANN 6.0.1's ATC
#   documents a force_fp32 with another meaning (float32 wherever an op has a
#   float32 kernel). docs/distributed.md has the table with links.
# The other four: documented by CANN 6.0.1 and later, and on kPrecisionModeList.
NPU_MODE_SINCE = {"force_fp32": (6, 2), "allow_mix_precision": (0,),
                  "allow_fp32_to_fp16": (0,), "force_fp16": (0,),
                  "must_keep_origin_dtype": (0,)}
NPU_FP32_FALLBACK = "allow_fp32_to_fp16"  # the adapter's own default for training
LOSS_SCALE_INITIAL = 2.0 ** 15
LOSS_SCALE_PERIOD = 2000  # finite steps before the scale doubles


def compute_dtype(precision, device):
    """The dtype the graph's networks use: float32 on the NPU (its adapter
    converts the float32 graph), else the precision's."""
    return tf.float32 if device == "npu" else DTYPES[precision]


def needs_loss_scale(precision):
    return precision == "fp16"


def npu_modes_accepted(version):
    """The precision modes the adapter of CANN `version` (a tuple, as
    cann.parse_version gives) takes; all of them when version is None."""
    return [mode for mode in NPU_MODE_MEANING
            if version is None or version >= NPU_MODE_SINCE[mode]]


def _release(version):
    return ".".join(str(n) for n in version)


def check_npu_mode(mode, installed, what):
    """ConfigError when the installed CANN (a cann.CannLookup) is known not
    to take precision_mode `mode`; `what` says where the mode came from. An
    unknown version takes every mode: the adapter is left to judge."""
    if installed.version is None or mode in npu_modes_accepted(installed.version):
        return
    raise ConfigError("%s: precision_mode %s needs CANN %s or later, and the installed CANN is "
                      "%s (%s), whose adapter takes %s. Give --precision_mode %s (what "
                      "--precision fp32 uses on this CANN), or upgrade CANN"
                      % (what, mode, _release(NPU_MODE_SINCE[mode]), installed.text,
                         installed.info_file, ", ".join(npu_modes_accepted(installed.version)),
                         NPU_FP32_FALLBACK))


def npu_precision_mode(precision, precision_mode=None, installed=cann.UNKNOWN):
    """The Ascend adapter's precision_mode for --precision on the installed
    CANN (a cann.CannLookup): fp32 (the default) -> force_fp32 where that
    CANN is known to take it, else allow_fp32_to_fp16 with one warning
    saying why; fp16 -> allow_mix_precision. An explicit --precision_mode
    wins (with fp16 it must agree) unless the CANN is known not to take it."""
    if precision == "bf16":
        raise ConfigError("--precision bf16: the Ascend 910's adapter has no bfloat16 mode "
                          "(its precision modes compute in float16); use --precision fp16, "
                          "which maps to precision_mode allow_mix_precision")
    if precision_mode and precision_mode not in NPU_MODE_MEANING:
        raise ConfigError("--precision_mode must be one of %s, got %r"
                          % (", ".join(NPU_MODE_MEANING), precision_mode))
    mapped = NPU_PRECISION_MODES[precision]
    if precision == "fp16" and precision_mode and precision_mode != mapped:
        raise ConfigError("--precision %s means precision_mode %s on the NPU, but "
                          "--precision_mode %s was given; drop one of them"
                          % (precision, mapped, precision_mode))
    if precision_mode:
        check_npu_mode(precision_mode, installed, "--precision_mode %s" % precision_mode)
        return precision_mode
    since = _release(NPU_MODE_SINCE[mapped])
    if installed.version is not None:
        if mapped in npu_modes_accepted(installed.version):
            return mapped
        reason = ("CANN %s (read from %s) has no precision_mode %s, which needs CANN %s or "
                  "later" % (installed.text, installed.info_file, mapped, since))
    elif NPU_MODE_SINCE[mapped] == (0,):
        return mapped
    else:
        reason = ("the installed CANN's version could not be read (no %s with a version= "
                  "line in %s), and precision_mode %s needs CANN %s or later; "
                  "--precision_mode %s asks for it regardless"
                  % (" or ".join(os.path.basename(f) for f in cann.INFO_FILES),
                     ", ".join(installed.searched) or "any folder", mapped, since, mapped))
    log.warning("--precision %s: %s. Using precision_mode %s instead (%s)", precision, reason,
                NPU_FP32_FALLBACK, NPU_MODE_MEANING[NPU_FP32_FALLBACK])
    return NPU_FP32_FALLBACK


def npu_loss_scaling(precision_mode):
    """Whether a run in this adapter precision_mode needs loss scaling: every
    mode that feeds the 910's matrix unit float16 does."""
    return precision_mode != "must_keep_origin_dtype"


def cpu_has_native_bf16(cpuinfo="/proc/cpuinfo"):
    """True if the CPU flags list AVX-512 BF16 or AMX-BF16, False if they do
    not, None where there is no /proc/cpuinfo to read."""
    try:
        with open(cpuinfo) as f:
            flags = set()
            for line in f:
                if line.startswith("flags"):
                    flags.update(line.split(":", 1)[1].split())
    except (IOError, OSError):
        return None
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def variable_getter(network_dtype):
    """A custom getter for tf.variable_scope (None for float32): variables
    asked for in a 16-bit float dtype are created (and checkpointed) as
    float32 and read through a cast to that dtype; others pass through."""
    def getter(getter, name, shape=None, dtype=None, *args, **kwargs):  # TF's argument names
        if dtype is not None and tf.as_dtype(dtype) in (tf.bfloat16, tf.float16):
            return tf.cast(getter(name, shape, tf.float32, *args, **kwargs), dtype)
        return getter(name, shape, dtype, *args, **kwargs)
    return None if network_dtype == tf.float32 else getter


class DynamicLossScale(object):
    """Dynamic loss scaling for float16 gradients.

    The loss is multiplied by `scale` before differentiation and the
    gradients divided by it afterwards, so that small gradients do not
    underflow float16. When a step's gradients are not all finite (an
    overflow), the step's update is skipped and the scale halved; after
    `period` finite steps in a row it doubles. State: two float32/int32
    non-trainable variables, checkpointed with the rest.
    """

    def __init__(self, name, initial=LOSS_SCALE_INITIAL, period=LOSS_SCALE_PERIOD):
        with tf.variable_scope(name):
            self.scale = tf.get_variable("loss_scale", [], tf.float32,
                                         tf.constant_initializer(initial), trainable=False)
            self.good_steps = tf.get_variable("good_steps", [], tf.int32,
                                              tf.zeros_initializer(), trainable=False)
        self.period = period

    def scaled(self, loss):
        return loss * self.scale

    def unscale(self, grads):
        """Gradients of the scaled loss -> (true gradients, all-finite bool)."""
        grads = [None if g is None else g / self.scale for g in grads]
        finite = tf.reduce_all([tf.reduce_all(tf.is_finite(g)) for g in grads if g is not None])
        return grads, finite

    def update(self, finite):
        """The op that adjusts the scale after a step (finite: that step's)."""
        good = self.good_steps + 1
        grow = tf.logical_and(finite, good >= self.period)
        new_scale = tf.where(finite, tf.where(grow, self.scale * 2.0, self.scale),
                             tf.maximum(self.scale / 2.0, 1.0))
        new_good = tf.where(tf.logical_and(finite, tf.logical_not(grow)), good,
                            tf.zeros_like(good))
        return tf.group(tf.assign(self.scale, new_scale), tf.assign(self.good_steps, new_good))


StepHealth = collections.namedtuple("StepHealth", "skipped loss_scale")
StepHealth.__doc__ = """What a loss-scaled step reports, read after it ran:
skipped (bool scalar: its gradients overflowed, so no weight moved) and
loss_scale (float32 scalar: the scale after the step's update, 1 at the
floor). Fetched with the step, it feeds the divergence stop (divergence.py)."""


def apply_if_finite(finite, apply_fn):
    """Runs the op apply_fn() builds only when `finite`; a skipped step
    changes no variable (Adam's moments included)."""
    def apply():
        with tf.control_dependencies([apply_fn()]):
            return tf.constant(True)
    return tf.cond(finite, apply, lambda: tf.constant(False))


def check_kernels(dtype, device, build_probe):
    """Runs build_probe() (a function building a small graph of the ops the
    run will use, returning what to fetch) on `device` in `dtype`, and turns
    a missing kernel into a clear error instead of a failure deep in
    training: some TensorFlow builds (TF 1.15's stock CPU build among them)
    lack bfloat16 or float16 kernels for convolutions or batch norm."""
    if dtype == tf.float32:
        return
    name = dict((d, p) for p, d in DTYPES.items())[dtype]
    graph = tf.Graph()
    try:
        with graph.as_default(), tf.device("/%s:0" % device):
            fetches = build_probe()
            with tf.Session(graph=graph, config=tf.ConfigProto(allow_soft_placement=False)) \
                    as sess:
                sess.run(tf.global_variables_initializer())
                sess.run(fetches)
    except (tf.errors.NotFoundError, tf.errors.InvalidArgumentError, TypeError,
            ValueError) as error:
        lines = [line.strip() for line in str(getattr(error, "message", error)).splitlines()
                 if line.strip()] or [type(error).__name__]
        detail = next((line for line in lines if "OpKernel" in line), lines[0])
        raise ConfigError("--precision %s: TensorFlow %s cannot run this model in %s on the %s "
                          "(%s). Use --precision fp32, or a TensorFlow build with %s kernels "
                          "for this device." % (name, tf.VERSION, dtype.name, device.upper(),
                                                detail[:300], dtype.name))
