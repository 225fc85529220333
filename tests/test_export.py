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


def discriminator_outputs(checkpoint, images, from_averages):
    """D's class logits with its trainable weights read from the checkpoint's
    moving averages (from_averages) or as trained; batch-norm statistics as saved."""
    with tf.Graph().as_default():
        logits = model_lib.Discriminator(10, "batch", 0.9)(tf.constant(images), training=False)
        names = {}
        for variable in tf.global_variables():
            name = variable.op.name
            if from_averages and variable in tf.trainable_variables():
                name += "/ExponentialMovingAverage"
            names[name] = variable
        with tf.Session() as sess:
            tf.train.Saver(names).restore(sess, checkpoint)
            return sess.run(logits)[:, :10]


def frozen_outputs(path, images):
    with tf.Graph().as_default() as graph:
        tf.import_graph_def(load_frozen(path), name="")
        with tf.Session() as sess:
            return sess.run("logits:0", {graph.get_tensor_by_name("image:0"): images})


@pytest.mark.slow
def test_weights_choose_the_moving_average_or_the_trained_weights(trained, data, tmp_path,
                                                                  capsys):
    """--weights ema / raw / auto: a run with --ema_decay (the trained run's
    weights, then 4 steps at a high rate, so that the average lags behind)
    exports different classifiers, each the one its checkpoint variables give;
    auto takes the average. A run without a moving average refuses ema."""
    import trainer
    run_dir = str(tmp_path / "ema")
    assert trainer.main(["--dataset", data["easy"], "--train_dir", run_dir, "--checkpoint",
                         trained[0], "--ema_decay", "0.9", "--learning_rate_d", "0.01",
                         "--max_training_steps", "4"]) == 0
    checkpoint = os.path.join(run_dir, "model-4")
    images = np.random.RandomState(1).uniform(-1, 1, (8, 16, 16, 1)).astype(np.float32)
    outputs = {}
    for weights in ("ema", "raw", "auto"):
        output = str(tmp_path / ("%s.pb" % weights))
        assert export.main(["--checkpoint", run_dir, "--output", output,
                            "--weights", weights]) == 0
        outputs[weights] = frozen_outputs(output, images)
    average = discriminator_outputs(checkpoint, images, from_averages=True)
    raw = discriminator_outputs(checkpoint, images, from_averages=False)
    assert np.abs(average - raw).max() > 0.05  # the two are told apart below
    np.testing.assert_allclose(outputs["ema"], average, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(outputs["raw"], raw, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(outputs["auto"], average, rtol=1e-4, atol=1e-4)
    # The trained run kept no average: ema is refused.
    capsys.readouterr()
    assert export.main(["--checkpoint", trained[0], "--output", str(tmp_path / "x.pb"),
                        "--weights", "ema"]) == 2
    assert "--weights ema: this run kept no moving average of D's weights" in \
        capsys.readouterr().err
    assert not os.path.exists(str(tmp_path / "x.pb"))
