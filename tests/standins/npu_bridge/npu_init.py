"""Stand-in for npu_bridge.npu_init (see the package docstring)."""

import os
import re
import weakref

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
        """fusion=1 (the default, which the adapter's gradient all-reduces
        use) lets HCCL fuse the all-reduce with the others of its kind by the
        gradient split strategy: one that depends on another's result would
        wait for itself, so that is refused here, where the graph is built.
        (NPUDistributedOptimizer orders its own, so that every rank issues
        them in one order, as HCCL needs.)"""
        if reduction != "sum":
            raise ValueError("stand-in allreduce: only 'sum' is used here, got %r" % reduction)
        tensor = tf.convert_to_tensor(tensor)
        graph = tf.get_default_graph()
        CALLS.append(("hccl_ops.allreduce", tensor.op.name, fusion))
        fused = _FUSED.setdefault(graph, [])
        if fusion == 1:
            depends = _depends_on(tensor.op, set(fused))
            if depends:
                raise ValueError("HCCL: allreduce of %s with fusion=1 depends on the fused "
                                 "all-reduce %s, with which the gradient split strategy fuses "
                                 "it: it would wait for itself. Pass fusion=0"
                                 % (tensor.op.name, depends))
        key = graph.unique_name("hccl_allreduce")
        out = _py_collective("allreduce", key, [tensor],
                             lambda ranks: [np.sum([r[0] for r in ranks], axis=0)])[0]
        if fusion == 1:
            fused.append(out.op)
        return out


_FUSED = weakref.WeakKeyDictionary()  # graph -> its fusion=1 all-reduce ops
_ORDER_NAME = "hccl_issue_order"  # ops that only order one step's all-reduces


def _ancestors(ops, stop=lambda op: False):
    """`ops` and every op they depend on through data or control inputs,
    not walking on past an op for which stop(op)."""
    seen, todo = set(), list(ops)
    while todo:
        op = todo.pop()
        if op in seen:
            continue
        seen.add(op)
        yield op
        if not stop(op):
            todo.extend(t.op for t in op.inputs)
            todo.extend(op.control_inputs)


def _depends_on(op, targets):
    """The name of an op of `targets` that `op` depends on (not through the
    issue order kept above), or None."""
    def orders(current):
        return current.name.split("/")[-1].startswith(_ORDER_NAME)
    return next((a.name for a in _ancestors([op], orders) if a in targets), None)


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
        # As the adapter's npu_optimizer.allreduce: one all-reduce per gradient,
        # here one after another, in the same order on every rank.
        averaged, previous = [], []
        for g, v in gradients:
            if g is not None:
                with tf.control_dependencies(previous):
                    g = hccl_ops.allreduce(g, "sum") / tf.cast(size, g.dtype)
                with tf.control_dependencies([g]):
                    previous = [tf.no_op(name=_ORDER_NAME)]
            averaged.append((g, v))
        return averaged

    def apply_gradients(self, *args, **kwargs):
        return self._optimizer.apply_gradients(*args, **kwargs)

    def get_slot(self, *args, **kwargs):
        return self._optimizer.get_slot(*args, **kwargs)

    def get_slot_names(self, *args, **kwargs):
        return self._optimizer.get_slot_names(*args, **kwargs)

    def variables(self):
        return self._optimizer.variables()


OVERFLOWING = "NPU_STANDIN_OVERFLOWING"


def _overflowing(name):
    """Whether the op `name` overflows on this stand-in chip: a test names
    such ops with a regular expression in $NPU_STANDIN_OVERFLOWING (a
    diverged network's gradients, an evaluation pass)."""
    pattern = os.environ.get(OVERFLOWING)
    return bool(pattern) and re.search(pattern, name) is not None


def _saturating_watch(names):
    """The hardware's part for gradients `names`: a result beyond +-65504, or
    from an op that overflows here, saturates (+-65504, not Inf) and raises
    the device-wide float status."""
    def watch(*grads):
        out = []
        for name, g in zip(names, grads):
            if _overflowing(name):
                g = np.where(g < 0, -FLOAT16_MAX, FLOAT16_MAX).astype(g.dtype)
            if not np.all(np.isfinite(g)) or np.any(np.abs(g) >= FLOAT16_MAX):
                _status[0] = 1.0
            out.append(np.clip(g, -FLOAT16_MAX, FLOAT16_MAX).astype(g.dtype))
        return out
    return watch


_STATUS_OP_NAMES = ("npu_get_float_status", "npu_clear_float_status")
# graph -> {(pattern, fetched op names): whether the run has an overflowing op}
_overflowing_runs = weakref.WeakKeyDictionary()


def _run_raises_status(graph, fetched):
    """Whether a run of `fetched` (ops) that is not a loss-scaled step (those
    read and clear the status themselves) runs an op that overflows here."""
    runs = _overflowing_runs.setdefault(graph, {})
    key = (os.environ.get(OVERFLOWING), tuple(sorted(op.name for op in fetched)))
    if key not in runs:
        names = [op.name for op in _ancestors(fetched)]
        runs[key] = (any(_overflowing(name) for name in names) and not any(
            name.split("/")[-1].startswith(_STATUS_OP_NAMES) for name in names))
    return runs[key]


def _sticky_status_session_run():
    """Session.run, wrapped: a run (evaluation, sample grids, summaries
    alone) that runs an op overflowing here leaves the device-wide status
    raised, as the 910 does, until a clear; the next loss-scaled step then
    reads it."""
    run = tf.Session.run
    if getattr(run, "npu_standin", False):
        return

    def sticky_run(self, fetches, *args, **kwargs):
        result = run(self, fetches, *args, **kwargs)
        if os.environ.get(OVERFLOWING):
            flat = [self.graph.as_graph_element(f) for f in tf.nest.flatten(fetches)]
            ops = [f if isinstance(f, tf.Operation) else f.op for f in flat]
            if _run_raises_status(self.graph, ops):
                _status[0] = 1.0
        return result
    sticky_run.npu_standin = True
    tf.Session.run = sticky_run


_sticky_status_session_run()


class _GenNpuOps(object):
    """The float-status ops of the adapter's later versions (v2: no buffer)."""

    def npu_get_float_status_v2(self):
        return tf.py_func(lambda: _status.copy(), [], tf.float32, stateful=True,
                          name="npu_get_float_status_v2")

    def npu_clear_float_status_v2(self):
        def clear():
            _status[:] = 0.0
            return np.zeros(8, np.float32)
        return tf.py_func(clear, [], tf.float32, stateful=True,
                          name="npu_clear_float_status_v2")


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
        watched = tf.py_func(_saturating_watch([g.op.name for g, _ in present]),
                             [g for g, _ in present], [g.dtype for g, _ in present],
                             stateful=True)
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
