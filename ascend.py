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

import precision
from errors import ConfigError

RankInfo = collections.namedtuple("RankInfo", "size rank device_id")
RankInfo.__doc__ = """This process's place among the cards: RANK_SIZE, RANK_ID and the
device id (ASCEND_DEVICE_ID, else DEVICE_ID, else 0)."""


def device_nodes():
    """The Ascend device nodes this machine has (/dev/davinci0, ...)."""
    return sorted(glob.glob("/dev/davinci[0-9]*"))


def adapter_import_error():
    """Why CANN's TF adapter does not import here (None: it imports)."""
    try:
        importlib.import_module("npu_bridge")
        return None
    except ImportError as e:
        return "%s: %s" % (type(e).__name__, e)


def adapter_importable():
    return adapter_import_error() is None


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
        if precision_mode not in precision.NPU_MODE_MEANING:
            raise ConfigError("--precision_mode must be one of %s, got %r"
                              % (", ".join(precision.NPU_MODE_MEANING), precision_mode))
        npu.parameter_map["precision_mode"].s = tf.compat.as_bytes(precision_mode)
    rewrite.remapping = RewriterConfig.OFF
    rewrite.memory_optimization = RewriterConfig.OFF
    return config


def check_adapter_environment(rank, environ):
    """The adapter reads RANK_SIZE from the process's own environment
    (NPUDistributedOptimizer all-reduces only when os.environ says more than
    one card), whatever the trainer was told; a disagreement would train
    each card alone while the trainer shards the data as if they were one."""
    seen = environ.get("RANK_SIZE") or "1"
    if seen != str(rank.size):
        raise ConfigError("RANK_SIZE is %s in this process's environment, which CANN's adapter "
                          "reads, but the trainer was given %d cards; export RANK_SIZE=%d"
                          % (seen, rank.size, rank.size))


def optimizer_wrapper(rank_size, loss_scaling, loss_scale_initial, loss_scale_period):
    """The function that wraps each optimizer for the NPU, or None: the
    adapter's NPUDistributedOptimizer (all-reduce over the cards) when
    rank_size > 1, inside its NPULossScaleOptimizer when loss_scaling.

    The 910 computes float16 in saturation mode (an overflow is +-65504, not
    Inf), so an overflow only shows in the adapter's float status, which
    NPULossScaleOptimizer reads (summed over the cards when distributed). Its
    ExponentialUpdateLossScaleManager is set to behave as our
    precision.DynamicLossScale: halve on each overflow, double after
    `loss_scale_period` finite steps in a row."""
    if rank_size <= 1 and not loss_scaling:
        return None
    from npu_bridge.npu_init import (ExponentialUpdateLossScaleManager, NPUDistributedOptimizer,
                                     NPULossScaleOptimizer)

    def wrap(optimizer):
        name = optimizer.get_name()  # d_optimize_adam, g_optimize_adam
        if rank_size > 1:
            optimizer = NPUDistributedOptimizer(optimizer)
        if loss_scaling:
            manager = ExponentialUpdateLossScaleManager(
                init_loss_scale=loss_scale_initial, incr_every_n_steps=loss_scale_period,
                decr_every_n_nan_or_inf=1, incr_ratio=2, decr_ratio=0.5)
            optimizer = StepEveryTime(NPULossScaleOptimizer(optimizer, manager,
                                                            is_distributed=rank_size > 1),
                                      manager.get_loss_scale(), name)
        return optimizer
    return wrap


class StepEveryTime(tf.train.Optimizer):
    """Applies through `optimizer` (NPULossScaleOptimizer) and then moves the
    global step itself: the adapter moves the global step it is given only
    with an applied step, and the training loop counts a skipped
    (overflowing) step too, so the global step, the checkpoint names and the
    D/G alternation stay in agreement.

    The adapter is given a counter of applied steps instead, so that a skipped
    step shows (variables <name>_applied_steps/count and /seen); after
    apply_gradients, `health` is the step's precision.StepHealth
    (`loss_scale`: the manager's scale tensor)."""

    def __init__(self, optimizer, loss_scale, name):
        super(StepEveryTime, self).__init__(use_locking=False, name=optimizer.get_name())
        self._optimizer = optimizer
        self._loss_scale = loss_scale
        self._counter_name = name + "_applied_steps"
        self.health = None

    def compute_gradients(self, *args, **kwargs):
        return self._optimizer.compute_gradients(*args, **kwargs)

    def apply_gradients(self, grads_and_vars, global_step=None, name=None):
        with tf.variable_scope(self._counter_name):
            applied_steps = tf.get_variable("count", [], tf.int64, tf.zeros_initializer(),
                                            trainable=False)
            seen = tf.get_variable("seen", [], tf.int64, tf.zeros_initializer(),
                                   trainable=False)
        # A list: NPULossScaleOptimizer reads the pairs twice (the gradients for
        # the float status, then the pairs to apply), and a zip reads once.
        applied = self._optimizer.apply_gradients(list(grads_and_vars),
                                                  global_step=applied_steps, name=name)
        with tf.control_dependencies([applied]):
            count = tf.identity(applied_steps)
            skipped = tf.equal(count, seen)
            scale = tf.identity(self._loss_scale)
        with tf.control_dependencies([skipped]):
            remembered = tf.assign(seen, count)
        self.health = precision.StepHealth(skipped, scale)
        if global_step is None:
            return remembered.op
        with tf.control_dependencies([remembered]):
            return tf.assign_add(global_step, 1).op

    def get_slot(self, *args, **kwargs):
        return self._optimizer.get_slot(*args, **kwargs)

    def get_slot_names(self, *args, **kwargs):
        return self._optimizer.get_slot_names(*args, **kwargs)

    def variables(self):
        return self._optimizer.variables()


def broadcast_variables_op(variables):
    """One op that sets every float variable to rank 0's value (run once after
    initialisation or restore, so all cards start equal): one HcomBroadcast
    of the list, which returns a list."""
    from npu_bridge.npu_init import hccl_ops
    floats = [v for v in variables if v.dtype.base_dtype.is_floating]
    values = hccl_ops.broadcast(tensor=floats, root_rank=0)
    return tf.group(*[tf.assign(v, value) for v, value in zip(floats, values)],
                    name="broadcast_from_rank0")


Agreement = collections.namedtuple("Agreement", "init start stop_d stop_g raise_stop")
Agreement.__doc__ = """Ops that keep the cards of a multi-card run in step.
start: [rank 0's global step, the number of cards whose global step differs].
stop_d / stop_g: after a D / G step, the divergence.Signs summed over the
cards, then the number of cards asked to stop; fetched with every step, so
that all cards stop after the same step. raise_stop: marks this card as
asked to stop (a signal); init clears that mark (run once per session)."""


def agreement_ops(global_step, d_signs, g_signs):
    """Agreement ops (see Agreement) over HCCL. Each vote runs after its
    step, so the collectives of one step run one after another, in the same
    order on every card (d_signs / g_signs: divergence.sign_vector of each
    step, read after it). Every all-reduce here passes fusion=0, as the
    adapter's own float-status all-reduce does: the default (1) fuses an
    all-reduce with the gradients' by the gradient split strategy, and these
    depend on the gradients' results."""
    from npu_bridge.npu_init import hccl_ops
    with tf.name_scope("agreement"):
        asked = tf.Variable(0.0, trainable=False, collections=[], name="asked_to_stop")
        step = tf.cast(global_step, tf.float32)  # exact to 2**24 steps
        root = hccl_ops.broadcast(tensor=[step], root_rank=0)[0]
        differ = hccl_ops.allreduce(tf.cast(tf.not_equal(step, root), tf.float32), "sum",
                                    fusion=0)
        start = tf.stack([root, differ])

        def votes(signs):
            with tf.control_dependencies([signs]):  # after the step: asked may be raised in it
                mine = tf.concat([signs, [tf.identity(asked)]], 0)
            return hccl_ops.allreduce(mine, "sum", fusion=0)
        return Agreement(asked.initializer, start, votes(d_signs), votes(g_signs),
                         tf.assign(asked, 1.0))


def clear_float_status_op():
    """An op that clears the 910's float status, which any overflowing op
    raises for the whole device and which the loss-scaled optimizers read
    after their gradients: run after anything but a training step
    (evaluation, sample grids), so that an overflow there does not skip the
    next step. The adapter's v2 op takes no input; older adapters have only
    the v1 ops, which clear a status buffer."""
    from npu_bridge.helper import helper
    ops = helper.get_gen_ops()
    if hasattr(ops, "npu_clear_float_status_v2"):
        return ops.npu_clear_float_status_v2().op
    return ops.npu_clear_float_status(ops.npu_alloc_float_status()).op
