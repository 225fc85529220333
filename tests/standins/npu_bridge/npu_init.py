"""Stand-in for npu_bridge.npu_init (see the package docstring)."""

import tensorflow.compat.v1 as tf

# The adapter re-exports TensorFlow's RewriterConfig proto class.
RewriterConfig = type(tf.ConfigProto().graph_options.rewrite_options)

import numpy as np

from npu_bridge import CALLS, EXECUTED


def _count():
    EXECUTED["broadcast"] += 1
    return np.int64(0)


class _HcclOps(object):
    def broadcast(self, tensor, root_rank):
        CALLS.append(("hccl_ops.broadcast", tensor[0].op.name, root_rank))
        with tf.name_scope("standin_broadcast"):
            ran = tf.py_func(_count, [], tf.int64, stateful=True)
            with tf.control_dependencies([ran]):
                return [tf.identity(t) for t in tensor]


hccl_ops = _HcclOps()


class NPUDistributedOptimizer(tf.train.Optimizer):
    """Records the wrap and each gradient computation; sums nothing (one card)."""

    def __init__(self, optimizer, name=None):
        CALLS.append(("NPUDistributedOptimizer", optimizer.get_name()))
        super(NPUDistributedOptimizer, self).__init__(use_locking=False,
                                                      name=name or "NPUDistributed")
        self._optimizer = optimizer

    def compute_gradients(self, *args, **kwargs):
        CALLS.append(("NPUDistributedOptimizer.compute_gradients", self._optimizer.get_name()))
        return self._optimizer.compute_gradients(*args, **kwargs)

    def apply_gradients(self, *args, **kwargs):
        return self._optimizer.apply_gradients(*args, **kwargs)

    def get_slot(self, *args, **kwargs):
        return self._optimizer.get_slot(*args, **kwargs)

    def get_slot_names(self, *args, **kwargs):
        return self._optimizer.get_slot_names(*args, **kwargs)

    def variables(self):
        return self._optimizer.variables()
