"""scripts/reproduce_mnist100.sh's own checks. Its runs (preparing the data,
training, evaluating, the table and the curve, resuming to more epochs) are
the README's commands, run and checked in test_readme.py."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "reproduce_mnist100.sh")


def run_script(*args):
    env = dict(os.environ, PYTHON=sys.executable)
    return subprocess.run(["bash", SCRIPT] + list(args), cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=900)


def test_script_refuses_bad_options():
    result = run_script("--epochs", "zero")
    assert result.returncode == 2 and "--epochs must be a positive integer" in result.stderr
    result = run_script("--method", "ssgan")
    assert result.returncode == 2 and "--method must be improved_gan or supervised" in result.stderr
