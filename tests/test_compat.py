"""One code base, two TensorFlows: Python 3.7 syntax, and only tf.compat.v1
API that exists in TF 1.15 and in the installed TF 2.x."""

import os
import shutil
import subprocess
import sys

import pytest
import tensorflow.compat.v1 as tf

import check_compat_module as cc  # scripts/check_compat.py, see conftest


@pytest.fixture(scope="module")
def api():
    return cc.load_api()


def project_files():
    files = list(cc.python_files())
    assert any(f.endswith("input_ops.py") for f in files)
    return files


def test_project_passes_both_guards(api):
    assert cc.check_files(project_files(), api) == []


def test_project_tf_usages_exist_in_the_installed_tensorflow(api):
    import ast
    missing = []
    for path in project_files():
        with open(path) as f:
            usages, _ = cc.tf_usages(ast.parse(f.read()), path)
        for usage, line in usages:
            target = tf
            for part in usage.split("."):
                if not hasattr(target, part):
                    missing.append("%s:%d tf.%s" % (path, line, usage))
                    break
                target = getattr(target, part)
    assert missing == []


def test_the_tf115_api_list_holds_what_it_should(api):
    # Known facts of TF 1.15's compat.v1 API.
    for path in ("get_variable", "nn.conv2d_transpose", "data.Dataset.from_tensor_slices",
                 "data.experimental.AUTOTUNE", "io.decode_raw", "train.AdamOptimizer",
                 "layers.dense", "app.run"):
        assert path in api, path
    for path in ("contrib", "data.Dataset.from_tensor_slicez", "nn.gelu", "keras.ops"):
        assert path not in api, path


@pytest.mark.parametrize("source, expected", [
    ("if (n := 3):\n    pass\n", "not Python 3.7 syntax"),
    ("def f(a, /, b):\n    return a\n", "not Python 3.7 syntax"),
    ("import tensorflow.compat.v1 as tf\ntf.contrib.layers.conv2d(x)\n",
     "tf.contrib is gone in TF 2.x"),
    ("import tensorflow.compat.v1 as tf\ny = tf.layers.dense(x, 3)\n",
     "tf.layers is gone in TF 2.x"),
    ("import tensorflow.compat.v1 as tf\ny = tf.nn.gelu(x)\n",
     "tf.nn.gelu: not in TF 1.15's tf.compat.v1"),
    ("import tensorflow.compat.v1 as tf\nd = tf.data.Dataset.from_tensor_slicez(x)\n",
     "no tf.data.Dataset.from_tensor_slicez"),
    ("import tensorflow as tf\n", "not `import tensorflow`"),
    ("from tensorflow.keras import layers\n", "not `from tensorflow.keras import ...`"),
])
def test_each_guard_can_fail(api, source, expected):
    problems = cc.check_source(source, "bad.py", api)
    assert len(problems) == 1 and expected in problems[0], problems


def test_members_of_unlisted_classes_are_accepted(api):
    ok = "import tensorflow.compat.v1 as tf\nr = tf.train.Example.FromString(b)\n"
    assert cc.check_source(ok, "ok.py", api) == []


def test_check_compat_script_exit_status(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import tensorflow.compat.v1 as tf\ntf.contrib.slim\n")
    script = os.path.join(cc.ROOT, "scripts", "check_compat.py")
    result = subprocess.run([sys.executable, script, str(bad)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1 and "tf.contrib" in result.stdout
    assert subprocess.run([sys.executable, script], timeout=120).returncode == 0


def test_vermin_finds_nothing_newer_than_python_37(tmp_path):
    vermin = shutil.which("vermin")
    assert vermin, "vermin is a dev requirement: pip install -r requirements-dev.txt"
    # `# novm` comments mark lines guarded by a version check.
    command = [vermin, "--target=3.7-", "--no-tips", "--violations", "--eval-annotations"]
    result = subprocess.run(command + project_files(), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    bad = tmp_path / "new.py"
    bad.write_text("import math\nprint(math.prod([1, 2]))\n")  # math.prod is 3.8+
    result = subprocess.run(command + [str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "math.prod" in result.stdout
