"""A stand-in for CANN's TF adapter, for tests on machines without an NPU.

It offers the adapter's names (npu_init re-exports them, as the real one
does) and behaves like it where our code depends on it:
  * NPUDistributedOptimizer reads RANK_SIZE from os.environ, not from
    anything our code passes, and all-reduces (averages) the gradients;
  * hccl_ops.broadcast and allreduce really exchange values between the
    ranks of a job, which run as separate processes (see _collective), and
    block until every rank has called the same collective, as HCCL does;
  * NPULossScaleOptimizer detects overflow through the float status, not
    through Inf/NaN: the 910 computes float16 in saturation mode, where an
    overflow yields +-65504 and sets a status bit (see _float_status);
  * the session-config rewriter class is TensorFlow's own;
  * a session whose NpuOptimizer asks for a precision_mode the installed
    CANN release does not take fails, as the adapter's check (from CANN 6.2)
    or the older graph engine does. The release is read from
    $ASCEND_HOME_PATH/<arch>-linux/ascend_toolkit_install.info (none: a
    current CANN). To see every session, importing npu_bridge wraps
    tf.Session's constructor once per process (see _cann), a hook that is
    inert once the stand-in modules are gone.

CALLS lists graph-building calls; EXECUTED counts collectives run."""

CALLS = []
EXECUTED = {"broadcast": 0, "allreduce": 0}

# Loading the real adapter's library registers its graph passes; this stands for that.
from npu_bridge import _cann  # noqa: E402

_cann.watch_sessions()
