"""The CANN release under the stand-in adapter, and the one check of the
adapter's C++ side our code depends on: which precision_mode it takes.

The real adapter runs the graph engine (GE) of the CANN that set_env.sh put
on the library path; set_env.sh also exports ASCEND_HOME_PATH, that CANN's
latest/ folder. The stand-in reads the release where CANN's installer
writes it, $ASCEND_HOME_PATH/<arch>-linux/ascend_toolkit_install.info (a
`version=6.0.1` line); tests make such a folder. Without one it stands for
a current CANN. (Read here on its own, not through the project's cann.py,
so that a mistake there cannot agree with itself.)

What a release takes, as its adapter and documentation say:
  * from CANN 6.2: the adapter checks the value itself against
    kPrecisionModeList (Ascend/tensorflow tf_adapter/util/npu_attrs.cc,
    from 2023-02, branches master and r1.15.0; force_fp32 is on it) and
    fails with CheckValueAllowed's message, an InvalidArgumentError;
  * before: the adapter (the 2021 one, branch development) hands the string
    to GE unchecked; CANN 6.0.1's precision_mode documentation lists
    force_fp16, allow_fp32_to_fp16, must_keep_origin_dtype and
    allow_mix_precision, and the stand-in's GE refuses anything else. (That
    a 6.0.1 GE refuses force_fp32 is modelled on that documentation, not
    seen: its ATC documents a force_fp32 of an older meaning.)
Both refuse when the session is created; the real ones refuse when the
first run builds the graph (the adapter's GetAttrOptimizePass), which for
our trainer is the same moment, before any step.
"""

import glob
import os
import re
import sys

import tensorflow.compat.v1 as tf

CHECKED_FROM = (6, 2)
# npu_attrs.cc's kPrecisionModeList (master).
PRECISION_MODE_LIST = ["force_fp32", "allow_fp32_to_fp16", "force_fp16", "must_keep_origin_dtype",
                       "allow_mix_precision", "cube_fp16in_fp32out", "allow_mix_precision_fp16",
                       "allow_mix_precision_bf16", "allow_fp32_to_bf16"]
BEFORE_CHECK = ["force_fp16", "allow_fp32_to_fp16", "must_keep_origin_dtype",
                "allow_mix_precision"]


def release():
    """(major, minor) and the version text of the CANN at
    $ASCEND_HOME_PATH, or None (a current CANN)."""
    home = os.environ.get("ASCEND_HOME_PATH")
    for path in sorted(glob.glob(os.path.join(home, "*-linux", "ascend_toolkit_install.info"))
                       if home else []):
        with open(path) as f:
            for line in f:
                if line.startswith("version="):
                    text = line.split("=", 1)[1].strip()
                    return tuple(int(n) for n in re.findall(r"\d+", text)[:2]), text
    return None


def check_session_config(config):
    """Refuses an NpuOptimizer precision_mode the CANN release does not take;
    starts HCCL where the environment turns it on (_collective)."""
    for optimizer in config.graph_options.rewrite_options.custom_optimizers:
        if optimizer.name == "NpuOptimizer":
            from npu_bridge import _collective
            _collective.check_rank_table(os.environ)
        if optimizer.name != "NpuOptimizer" or "precision_mode" not in optimizer.parameter_map:
            continue
        mode = optimizer.parameter_map["precision_mode"].s.decode()
        found = release()
        if found is None or found[0] >= CHECKED_FROM:
            if mode not in PRECISION_MODE_LIST:
                raise tf.errors.InvalidArgumentError(
                    None, None, "'%s' is invalid, it should be one of the list:[%s]"
                    % (mode, ", ".join("'%s'" % m for m in PRECISION_MODE_LIST)))
        elif mode not in BEFORE_CHECK:
            raise tf.errors.InternalError(
                None, None, "GE of CANN %s (stand-in): precision_mode %s is not supported; "
                "supported: %s" % (found[1], mode, ", ".join(BEFORE_CHECK)))


def watch_sessions():
    """Makes every tf.Session check its config as above while this module
    is imported (the stand-in's import stands for loading the adapter's
    library, which registers its graph passes). Installed once per process;
    after the `standins` fixture drops the stand-in modules it does nothing."""
    session_class = tf.Session  # patched, it reaches every tf.Session
    init = session_class.__init__
    if getattr(init, "npu_standin", False):
        return

    def checked_init(self, target="", graph=None, config=None):
        standin = sys.modules.get(__name__)
        if standin is not None and config is not None:
            self._session = None  # what BaseSession.__del__ reads should the check refuse
            standin.check_session_config(config)
        init(self, target, graph, config)
    checked_init.npu_standin = True
    session_class.__init__ = checked_init
