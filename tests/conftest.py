import logging
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import importlib.util  # noqa: E402

# scripts/ is not a package; expose scripts/check_compat.py to the tests.
_spec = importlib.util.spec_from_file_location(
    "check_compat_module", os.path.join(ROOT, "scripts", "check_compat.py"))
check_compat_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_compat_module)
sys.modules["check_compat_module"] = check_compat_module

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
