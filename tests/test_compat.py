"""One code base, two TensorFlows: Python 3.7 syntax, and only tf.compat.v1
API that exists in TF 1.15 and in the installed TF 2.x, called as TF 1.15's
signatures allow."""

import importlib.util
import inspect
import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile

import pytest
import tensorflow.compat.v1 as tf

import check_compat_module as cc  # scripts/check_compat.py, see conftest


@pytest.fixture(scope="module")
def api():
    return cc.load_api()


@pytest.fixture(scope="module")
def signatures():
    return cc.load_signatures()


def project_files():
    files = list(cc.python_files())
    assert any(f.endswith("input_ops.py") for f in files)
    return files


@pytest.mark.slow
def test_project_passes_both_guards(api, signatures):
    assert cc.check_files(project_files(), api, signatures) == []


@pytest.mark.slow
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


def test_the_tf115_signatures_hold_what_the_115_source_says():
    # Read off TF 1.15.5's python/ops/nn_ops.py, nn_impl.py,
    # data/ops/dataset_ops.py (DatasetV1), training/gen_training_ops.py and
    # core/protobuf/config_pb2.py.
    with open(cc.SIGNATURES_FILE) as f:
        entries = json.load(f)
    assert entries["nn.conv2d"] == ("input, filter, strides, padding, use_cudnn_on_gpu, "
                                    "data_format, dilations, name, filters")
    assert entries["data.Dataset.batch"] == "self, batch_size, drop_remainder"
    assert entries["data.Dataset.interleave"] == \
        "self, map_func, cycle_length, block_length, num_parallel_calls"
    assert entries["data.Dataset.from_tensor_slices"] == "tensors"  # a static method
    # `_sentinel=None` first: TF 1.15 refuses positional arguments
    assert entries["nn.sigmoid_cross_entropy_with_logits"] == "*, labels, logits, name"
    assert entries["raw_ops.ApplyAdam"].startswith("*, var, m, v, beta1_power,")
    assert entries["ConfigProto"].startswith("*, device_count, intra_op_parallelism_threads,")
    assert "allow_soft_placement" in entries["ConfigProto"].split(", ")
    assert "share_cluster_devices_in_session" in entries["ConfigProto.Experimental"]
    assert cc.parse_parameters(entries["nn.conv2d"]).positional == 9
    assert cc.parse_parameters("a, *args, b, **kw") == cc.Signature(["a", "b"], 1, True, True)
    assert cc.parse_parameters("*, a") == cc.Signature(["a"], 0, False, False)


def test_the_examples_below_are_tf2_only():
    """What the signature checks below reject works on the installed TF 2.x."""
    assert "axis" in inspect.signature(tf.linspace).parameters
    assert "num_parallel_calls" in inspect.signature(tf.data.Dataset.batch).parameters
    assert "deterministic" in inspect.signature(tf.data.Dataset.interleave).parameters
    assert "share_cluster_devices_in_session" in tf.ConfigProto.DESCRIPTOR.fields_by_name
    assert list(inspect.signature(tf.nn.sigmoid_cross_entropy_with_logits).parameters)[:2] \
        == ["labels", "logits"]


def _check(body, api, signatures):
    source = "import tensorflow.compat.v1 as tf\n" + textwrap.dedent(body)
    return cc.check_source(source, "bad.py", api, signatures)


@pytest.mark.parametrize("body, expected", [
    ("tf.linspace(0.0, 1.0, 5, axis=0)\n",
     "bad.py:2: tf.linspace(...) keyword 'axis' is not in TF 1.15's signature "
     "(has: start, stop, num, name)"),
    ("tf.nn.conv2d(x, w, [1, 1, 1, 1], 'SAME', True, 'NHWC', [1] * 4, 'c', None, 3)\n",
     "bad.py:2: tf.nn.conv2d(...) takes at most 9 positional arguments in TF 1.15, got 10"),
    ("tf.nn.sigmoid_cross_entropy_with_logits(labels, logits)\n",
     "tf.nn.sigmoid_cross_entropy_with_logits(...) takes no positional arguments"),
    ("tf.ConfigProto(allow_soft_placement=True, share_cluster_devices_in_session=True)\n",
     "tf.ConfigProto(...) keyword 'share_cluster_devices_in_session' is not in"),
    ("tf.data.Dataset.range(8).batch(4, num_parallel_calls=2)\n",
     "bad.py:2: tf.data.Dataset.batch(...) keyword 'num_parallel_calls' is not in TF 1.15's "
     "signature (has: batch_size, drop_remainder)"),
    ("""\
     def records(files):
         d = tf.data.TFRecordDataset(files)
         d = d.shuffle(8, reshuffle_each_iteration=True)
         return d

     def batches(files):
         return records(files).interleave(tf.data.TFRecordDataset, deterministic=False)
     """, "bad.py:8: tf.data.Dataset.interleave(...) keyword 'deterministic'"),
    ("n = tf.data.Dataset.range(3).cardinality()\n",
     "no tf.data.Dataset.cardinality"),
])
def test_each_signature_check_can_fail(api, signatures, body, expected):
    problems = _check(body, api, signatures)
    assert len(problems) == 1 and expected in problems[0], problems


def test_calls_that_fit_tf115_are_accepted(api, signatures):
    body = """\
    y = tf.nn.conv2d(x, w, [1, 1, 1, 1], 'SAME', True, 'NHWC', [1] * 4, 'c', filters=None)
    s = tf.reduce_sum(y, axis=1, keepdims=True, **options)  # **: only `axis`, `keepdims`
    z = tf.nn.conv2d(*arguments)
    c = tf.ConfigProto(allow_soft_placement=True, gpu_options=tf.GPUOptions(allow_growth=True))
    v = tf.Variable(0.0, name="v", trainable=False)
    f = tf.io.FixedLenFeature([], tf.int64)
    tf.raw_ops.ApplyAdam(var=a, m=b, v=c, beta1_power=1, beta2_power=1, lr=1, beta1=1,
                         beta2=1, epsilon=1, grad=g)

    def pipeline(files, dataset, seed):
        d = tf.data.Dataset.from_tensor_slices(files).shuffle(
            8, seed=seed, reshuffle_each_iteration=False)
        d = d.interleave(tf.data.TFRecordDataset, cycle_length=2, num_parallel_calls=-1)
        d = d.batch(4, drop_remainder=True).map(parse, num_parallel_calls=2).prefetch(1)
        n = d.reduce(0, lambda n, _: n + 1)
        # receivers not known to be Datasets: a parameter, a name also given
        # a list, an object with a method named like a Dataset's
        dataset = dataset.batch(4, num_parallel_calls=2)
        e = tf.data.Dataset.range(3)
        e = [e]
        e.append(d)
        np.random.RandomState(1).shuffle(files)
        return tf.data.make_one_shot_iterator(d).get_next()
    """
    assert _check(body, api, signatures) == []


def _load_extractor():
    spec = importlib.util.spec_from_file_location(
        "extract_tf115_api", os.path.join(cc.ROOT, "scripts", "extract_tf115_api.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# A wheel in miniature, in TF 1.15's layout, with what extract_tf115_api.py
# has to follow: tf_export aliases, kwarg_only raw ops, a `_sentinel`, bases
# in other modules, properties, a star import of a generated message class.
FAKE_WHEEL = {
    "tensorflow_core/_api/v1/compat/v1/__init__.py": """
        from tensorflow._api.v1.compat.v1 import nn
        from tensorflow.python import Options
        from tensorflow.python.ops.ops import Thing
        from tensorflow.python.ops.ops import scale
        """,
    "tensorflow_core/_api/v1/compat/v1/nn/__init__.py": """
        from tensorflow.python.ops.gen_ops import Relu
        from tensorflow.python.ops.ops import scale_v1 as scale
        """,
    "tensorflow_core/python/__init__.py": """
        from tensorflow.core.protobuf.config_pb2 import *
        """,
    "tensorflow_core/python/ops/base.py": """
        class Base(object):
            def __init__(self, shape, dtype=None):
                pass
        """,
    "tensorflow_core/python/ops/ops.py": """
        from tensorflow.python.ops import base
        from tensorflow.python.util.tf_export import tf_export

        @tf_export("scale")
        @deprecation.deprecated_args(None, "use factor", "times")
        def scale(x, factor=2, times=None, *args, **kwargs):
            pass

        def _scale_v1(_sentinel=None, x=None, name=None):
            pass

        scale_v1 = tf_export(v1=["nn.scale"])(_scale_v1)

        class Thing(base.Base):
            @property
            def size(self):
                pass

            @staticmethod
            def make(a, b):
                pass

            def grow(self, by):
                pass
        """,
    "tensorflow_core/python/ops/gen_ops.py": """
        from tensorflow.python.util.tf_export import kwarg_only as _kwarg_only

        def Relu(features, name=None):
            pass
        Relu = _doc_controls.do_not_generate_docs(_kwarg_only(Relu))
        """,
    "tensorflow_core/core/protobuf/config_pb2.py": """
        _OPTIONS_INNER = _descriptor.Descriptor(name='Inner', fields=[
            _descriptor.FieldDescriptor(name='depth', index=0)])
        _OPTIONS = _descriptor.Descriptor(name='Options', fields=[
            _descriptor.FieldDescriptor(name='threads', index=0),
            _descriptor.FieldDescriptor(name='inner', index=1)])
        _OPTIONS.fields_by_name['inner'].message_type = _OPTIONS_INNER
        Options = _reflection.GeneratedProtocolMessageType('Options', (_message.Message,), {
            'Inner': _reflection.GeneratedProtocolMessageType('Inner', (_message.Message,), {
                'DESCRIPTOR': _OPTIONS_INNER}),
            'DESCRIPTOR': _OPTIONS})
        """,
}


def test_the_extractor_reads_signatures_through_tf_115s_wrappers(tmp_path):
    wheel = str(tmp_path / "tensorflow-1.15.5-fake.whl")
    with zipfile.ZipFile(wheel, "w") as f:
        for name, text in FAKE_WHEEL.items():
            f.writestr(name, textwrap.dedent(text))
    paths, signatures = _load_extractor().extract_signatures(wheel)
    assert paths == ["Options", "Thing", "Thing.grow", "Thing.make", "Thing.size", "nn",
                     "nn.Relu", "nn.scale", "scale"]
    assert signatures == {
        "Options": "*, threads, inner",
        "Options.Inner": "*, depth",
        "Thing": "shape, dtype",
        "Thing.grow": "self, by",
        "Thing.make": "a, b",
        "nn.Relu": "*, features, name",
        "nn.scale": "*, x, name",
        "scale": "x, factor, times, *args, **kwargs",
    }


@pytest.mark.slow
def test_check_compat_script_exit_status(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import tensorflow.compat.v1 as tf\ntf.contrib.slim\n")
    script = os.path.join(cc.ROOT, "scripts", "check_compat.py")
    result = subprocess.run([sys.executable, script, str(bad)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1 and "tf.contrib" in result.stdout
    assert subprocess.run([sys.executable, script], timeout=120).returncode == 0


@pytest.mark.slow
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
