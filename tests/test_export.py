"""export.py: the frozen graph gives what the checkpoint's model gives, and
holds nothing but inference."""

import os

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import export
import model as model_lib


def load_frozen(path):
    graph_def = tf.GraphDef()
    with open(path, "rb") as f:
        graph_def.ParseFromString(f.read())
    return graph_def


def checkpoint_outputs(checkpoint, images):
    with tf.Graph().as_default():
        logits = model_lib.Discriminator(10, "batch", 0.9)(tf.constant(images), training=False)
        with tf.Session() as sess:
            tf.train.Saver().restore(sess, checkpoint)
            return sess.run(logits)[:, :10]


@pytest.mark.slow
@pytest.mark.parametrize("batch_size", [None, 3])
def test_frozen_graph_round_trip(trained, tmp_path, batch_size):
    run_dir, _ = trained
    output = str(tmp_path / "ssgan.pb")
    args = ["--checkpoint", run_dir, "--output", output]
    if batch_size:
        args += ["--batch_size", str(batch_size)]
    assert export.main(args) == 0
    assert os.path.isfile(str(tmp_path / "ssgan.pbtxt"))
    graph_def = load_frozen(output)
    types = {node.op for node in graph_def.node}
    forbidden = {"VariableV2", "VarHandleOp", "Assign", "AssignSub", "ApplyAdam", "PyFunc",
                 "PyFuncStateless", "EagerPyFunc", "RandomUniform", "Iterator", "IteratorV2"}
    assert not types & forbidden, types & forbidden
    images = np.random.RandomState(0).uniform(-1, 1, (3, 16, 16, 1)).astype(np.float32)
    with tf.Graph().as_default() as graph:
        tf.import_graph_def(graph_def, name="")
        image = graph.get_tensor_by_name("image:0")
        assert image.shape.as_list() == [batch_size, 16, 16, 1]
        with tf.Session() as sess:
            logits, probabilities = sess.run(["logits:0", "probabilities:0"], {image: images})
    expected = checkpoint_outputs(os.path.join(run_dir, "model-300"), images)
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)
    exp = np.exp(expected - expected.max(axis=1, keepdims=True))
    np.testing.assert_allclose(probabilities, exp / exp.sum(axis=1, keepdims=True), atol=1e-5)
    assert logits.shape == probabilities.shape == (3, 10)


def test_export_of_a_missing_checkpoint_fails_clearly(tmp_path, capsys):
    assert export.main(["--checkpoint", str(tmp_path / "none"),
                        "--output", str(tmp_path / "x.pb")]) == 2
    assert "not found" in capsys.readouterr().err
    assert not os.path.exists(str(tmp_path / "x.pb"))
