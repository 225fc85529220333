"""The names several modules share: variable scopes in checkpoints, the files
of a run folder and of a dataset's TFRecord cache. Each is spelled here once;
the module that builds a thing and the modules that read it back import its
name from here. No TensorFlow (the command-line tools read some of these for
--help)."""

import os

# ---- variable scopes (checkpoints hold these names) --------------------------

D_SCOPE = "Discriminator"  # D's variables: model.py's and paper_nets.py's discriminators
G_SCOPE = "Generator"  # G's variables
EMA_NAME = "ExponentialMovingAverage"  # suffix of the moving averages of D's variables

# ---- training steps (the NPU's loss scale is read back by name) ---------------

TRAIN_SCOPE = "train"  # name scope of both optimizer steps (train_graph)
D_OPTIMIZE_SCOPE = "d_optimize"  # name scope of D's optimizer step (train_ops)
G_OPTIMIZE_SCOPE = "g_optimize"  # name scope of G's optimizer step (train_ops)
NPU_LOSS_SCALE = "loss_scale"  # the variable the Ascend adapter's loss-scale manager makes


def npu_loss_scale_variable(optimize_scope):
    """'train/d_optimize/loss_scale': where the Ascend adapter's loss scale of
    one optimizer step is checkpointed (it makes the variable in the step's
    name scope)."""
    return "/".join((TRAIN_SCOPE, optimize_scope, NPU_LOSS_SCALE))


# a checkpoint holding it was trained with the adapter's loss scaling (run_folder)
D_NPU_LOSS_SCALE = npu_loss_scale_variable(D_OPTIMIZE_SCOPE)
