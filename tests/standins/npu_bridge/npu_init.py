"""Stand-in for npu_bridge.npu_init (see the package docstring)."""

import os

import numpy as np
import tensorflow.compat.v1 as tf

from npu_bridge import CALLS, EXECUTED, _collective

# The adapter re-exports TensorFlow's RewriterConfig proto class.
RewriterConfig = type(tf.ConfigProto().graph_options.rewrite_options)

FLOAT16_MAX = 65504.0
_status = np.zeros(8, np.float32)  # the device's float status register


HCCL_DTYPES = (tf.int8, tf.int16, tf.int32, tf.float16, tf.float32)  # HcomAllReduce's


def _py_collective(kind, key, tensors, reduce):
    """One op running the collective over `tensors`; outputs keep their shapes."""
    for t in tensors:
        if t.dtype.base_dtype not in HCCL_DTYPES:
            raise TypeError("HCCL %s does not take %s (%s)" % (kind, t.dtype.name, t.name))
    def run(*arrays):
        EXECUTED[kind] += 1
        return [np.asarray(v, a.dtype) for v, a in
                zip(reduce(_collective.exchange(key, list(arrays))), arrays)]
    outputs = tf.py_func(run, tensors, [t.dtype for t in tensors], stateful=True)
    for out, t in zip(outputs, tensors):
        out.set_shape(t.shape)
    return outputs


class _HcclOps(object):
    """hccl_ops: broadcast returns a list, as HcomBroadcast does."""

    def broadcast(self, tensor, root_rank, fusion=2, fusion_id=0, group="hccl_world_group"):
        tensors = [tf.convert_to_tensor(t) for t in tensor]
        CALLS.append(("hccl_ops.broadcast", [t.op.name for t in tensors], root_rank))
        key = tf.get_default_graph().unique_name("hccl_broadcast")
        return _py_collective("broadcast", key, tensors, lambda ranks: ranks[root_rank])

    def allreduce(self, tensor, reduction, fusion=1, fusion_id=-1, group="hccl_world_group"):
        if reduction != "sum":
            raise ValueError("stand-in allreduce: only 'sum' is used here, got %r" % reduction)
        key = tf.get_default_graph().unique_name("hccl_allreduce")
        return _py_collective("allreduce", key, [tf.convert_to_tensor(tensor)],
                              lambda ranks: [np.sum([r[0] for r in ranks], axis=0)])[0]

    def _allreduce_many(self, tensors):
        """One exchange for a list (HCCL fuses the gradients' all-reduces;
        separate blocking exchanges could deadlock TensorFlow's threads)."""
        key = tf.get_default_graph().unique_name("hccl_allreduce_fused")
        return _py_collective("allreduce", key, tensors,
                              lambda ranks: [np.sum(v, axis=0) for v in zip(*ranks)])


hccl_ops = _HcclOps()


def _rank_size():
    return int(os.environ.get("RANK_SIZE", "1") or 1)


class NPUDistributedOptimizer(tf.train.Optimizer):
    """Averages the gradients over RANK_SIZE cards, read from os.environ as
    the adapter does (one card: the gradients as they are)."""

    def __init__(self, optimizer, is_weight_update_sharding=False, name=None):
        CALLS.append(("NPUDistributedOptimizer", optimizer.get_name()))
        super(NPUDistributedOptimizer, self).__init__(
            use_locking=False, name=name or "Distributed" + type(optimizer).__name__)
        self._optimizer = optimizer

    def compute_gradients(self, *args, **kwargs):
        CALLS.append(("NPUDistributedOptimizer.compute_gradients", self._optimizer.get_name()))
        gradients = self._optimizer.compute_gradients(*args, **kwargs)
        size = _rank_size()
        if size <= 1:
            return gradients
        present = [(g, v) for g, v in gradients if g is not None]
        summed = hccl_ops._allreduce_many([g for g, _ in present])
        averaged = dict((v, s / tf.cast(size, s.dtype)) for (g, v), s in zip(present, summed))
        return [(averaged.get(v), v) for _, v in gradients]

    def apply_gradients(self, *args, **kwargs):
        return self._optimizer.apply_gradients(*args, **kwargs)

    def get_slot(self, *args, **kwargs):
        return self._optimizer.get_slot(*args, **kwargs)

    def get_slot_names(self, *args, **kwargs):
        return self._optimizer.get_slot_names(*args, **kwargs)

    def variables(self):
        return self._optimizer.variables()


def _watch_saturation(*grads):
    """The hardware's part: a float16 result beyond +-65504 (saturated, not
    Inf) sets the float status."""
    if any(not np.all(np.isfinite(g)) or np.any(np.abs(g) > FLOAT16_MAX) for g in grads):
        _status[0] = 1.0
    return grads


class _GenNpuOps(object):
    """The float-status ops of the adapter's later versions (v2: no buffer)."""

    def npu_get_float_status_v2(self):
        return tf.py_func(lambda: _status.copy(), [], tf.float32, stateful=True)

    def npu_clear_float_status_v2(self):
        def clear():
            _status[:] = 0.0
            return np.zeros(8, np.float32)
        return tf.py_func(clear, [], tf.float32, stateful=True)


gen_npu_ops = _GenNpuOps()


class FixedLossScaleManager(object):
    def __init__(self, loss_scale):
        if loss_scale < 1:
            raise ValueError("loss scale must be at least 1.")
        self._loss_scale = tf.convert_to_tensor(loss_scale, dtype=tf.float32)

    def get_loss_scale(self):
        return self._loss_scale

    def update_loss_scale(self, finite_grads):
        return tf.no_op()


class ExponentialUpdateLossScaleManager(object):
    """The adapter's manager: the scale grows by incr_ratio after
    incr_every_n_steps finite steps in a row, and shrinks by decr_ratio
    (not below 1) after decr_every_n_nan_or_inf overflowing ones."""

    def __init__(self, init_loss_scale, incr_every_n_steps, decr_every_n_nan_or_inf=2,
                 incr_ratio=2, decr_ratio=0.8):
        self._incr_every, self._decr_every = incr_every_n_steps, decr_every_n_nan_or_inf
        self._incr_ratio, self._decr_ratio = incr_ratio, decr_ratio
        self._loss_scale = tf.Variable(float(init_loss_scale), name="loss_scale",
                                       dtype=tf.float32, trainable=False)
        self._good = tf.Variable(0, name="good_steps", dtype=tf.int32, trainable=False)
        self._bad = tf.Variable(0, name="bad_steps", dtype=tf.int32, trainable=False)

    def get_loss_scale(self):
        return self._loss_scale

    def _set(self, scale):
        return tf.group(tf.assign(self._loss_scale, scale), tf.assign(self._good, 0),
                        tf.assign(self._bad, 0))

    def update_loss_scale(self, finite_grads):
        def finite():
            return tf.cond(self._good + 1 >= self._incr_every,
                           lambda: self._set(tf.where(self._loss_scale < 3.4e38 / self._incr_ratio,
                                                      self._loss_scale * self._incr_ratio,
                                                      self._loss_scale)),
                           lambda: tf.assign_add(self._good, 1).op)

        def overflow():
            return tf.cond(self._bad + 1 >= self._decr_every,
                           lambda: self._set(tf.maximum(1.0, self._loss_scale * self._decr_ratio)),
                           lambda: tf.group(tf.assign_add(self._bad, 1),
                                            tf.assign(self._good, 0)))
        return tf.cond(finite_grads, finite, overflow)


class NPULossScaleOptimizer(tf.train.Optimizer):
    """The adapter's loss scaling: the loss times the manager's scale, the
    gradients divided by it; the step is applied only when the float status
    (summed over the cards when is_distributed) shows no overflow; the
    global step, when given, moves only with an applied step, as in the
    adapter; the manager updates either way."""

    def __init__(self, opt, loss_scale_manager, is_distributed=False):
        CALLS.append(("NPULossScaleOptimizer", opt.get_name(), is_distributed))
        self._opt, self._manager, self._is_distributed = opt, loss_scale_manager, is_distributed
        super(NPULossScaleOptimizer, self).__init__(name="NPULossScaleOptimizer",
                                                    use_locking=False)

    def compute_gradients(self, loss, var_list=None, **kwargs):
        scale = self._manager.get_loss_scale()
        grads_and_vars = self._opt.compute_gradients(loss * tf.cast(scale, loss.dtype),
                                                     var_list=var_list, **kwargs)
        present = [(g, v) for g, v in grads_and_vars if g is not None]
        watched = tf.py_func(_watch_saturation, [g for g, _ in present],
                             [g.dtype for g, _ in present], stateful=True)
        inverse = tf.reciprocal(scale)
        scaled = {}
        for (g, v), w in zip(present, watched):
            w.set_shape(g.shape)
            scaled[v] = w * tf.cast(inverse, w.dtype)
        return [(scaled.get(v), v) for _, v in grads_and_vars]

    def apply_gradients(self, grads_and_vars, global_step=None, name=None):
        # As the adapter: the pairs are read here and again in the cond (a zip
        # passed in arrives there empty).
        grads = [g for g, _ in grads_and_vars if g is not None]
        with tf.control_dependencies(grads):
            status = gen_npu_ops.npu_get_float_status_v2()
        with tf.control_dependencies([status]):
            cleared = gen_npu_ops.npu_clear_float_status_v2()
        if self._is_distributed:
            status = hccl_ops.allreduce([status], "sum", fusion=0)
        with tf.control_dependencies([cleared]):
            finite = tf.reduce_all(tf.equal(status, 0.0))
        update = tf.cond(finite,
                         lambda: tf.group(self._opt.apply_gradients(grads_and_vars, global_step,
                                                                    name)),
                         tf.no_op)
        return tf.group(update, self._manager.update_loss_scale(finite))

    def get_slot(self, *args, **kwargs):
        return self._opt.get_slot(*args, **kwargs)

    def get_slot_names(self, *args, **kwargs):
        return self._opt.get_slot_names(*args, **kwargs)

    def variables(self):
        return self._opt.variables()
