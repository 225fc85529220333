import logging
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import importlib.util  # noqa: E402


def _load_script(module_name, file_name):
    """scripts/ is not a package; load one of its files as a module."""
    spec = importlib.util.spec_from_file_location(
        module_name, os.path.join(ROOT, "scripts", file_name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[module_name] = module


_load_script("check_compat_module", "check_compat.py")
_load_script("benchmark_script", "benchmark.py")

import tensorflow.compat.v1 as tf  # noqa: E402

tf.disable_v2_behavior()  # what the entry points do


@pytest.fixture(autouse=True)
def _restore_logging():
    """Entry points replace the root handlers; put them back after each test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
