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
