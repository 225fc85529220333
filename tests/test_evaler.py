"""evaler.py: exactly-once accuracy, the report and its JSON, the newest
complete checkpoint, clear errors."""

import json
import os
import re
import shutil

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import evaler
import evaluation
import input_ops
import model as model_lib
from datasets import store


def numpy_predictions(run_dir, checkpoint, dataset):
    """The classifier's predictions on every test example in one batch,
    computed apart from the evaler's pipeline."""
    with open(os.path.join(run_dir, "config.json")) as f:
        saved = json.load(f)
    info = store.open_dataset(dataset)
    images, labels = store.read_examples(info, info.splits["test"])
    with tf.Graph().as_default():
        x = tf.constant(images.astype(np.float32) / 255.0 * 2.0 - 1.0)
        discriminator = model_lib.Discriminator(10, saved["norm_type"], saved["bn_decay"])
        logits = discriminator(x, training=False)
        with tf.Session() as sess:
            tf.train.Saver().restore(sess, checkpoint)
            values = sess.run(logits)
    return labels, values[:, :10].argmax(axis=1)


@pytest.mark.slow
def test_accuracy_counts_every_example_once(trained, data, capsys):
    run_dir, _ = trained
    assert evaler.main(["--checkpoint", run_dir, "--batch_size", "64"]) == 0  # 200 = 3*64 + 8
    err = capsys.readouterr().err
    labels, predictions = numpy_predictions(run_dir, os.path.join(run_dir, "model-300"),
                                            data["easy"])
    with open(os.path.join(run_dir, "eval-300-test.json")) as f:
        report = json.load(f)
    assert report["num_examples"] == 200 == len(labels)
    assert report["num_correct"] == int((labels == predictions).sum())
    assert report["accuracy"] == pytest.approx(float((labels == predictions).mean()))
    confusion = np.zeros((10, 10), int)
    for t, p in zip(labels, predictions):
        confusion[t, p] += 1
    assert report["confusion_matrix"] == confusion.tolist()
    for c in range(10):
        assert report["per_class_accuracy"][c] == pytest.approx(
            confusion[c, c] / confusion[c].sum())
    # The JSON holds the numbers printed.
    printed = float(re.search(r"Average accuracy : (\d\.\d{4})\n", err).group(1))
    assert printed == round(report["accuracy"], 4)
    assert "Evaluated 200 examples of the test split" in err
    assert "%d errors" % report["errors"] in err
    assert re.search(r"Inference: \d+\.\d instances/sec", err)
    assert report["step"] == 300 and report["checkpoint"].endswith("model-300")


def evaluate_easy(run_dir, data, batch_size):
    """evaluation.evaluate of the trained run's model-300 on the easy test split
    (200 examples): (EvalResult, ids, predictions)."""
    with open(os.path.join(run_dir, "config.json")) as f:
        saved = json.load(f)
    cache = input_ops.prepare_tfrecords(store.open_dataset(data["easy"]), progress=False)
    return evaluation.evaluate(os.path.join(run_dir, "model-300"), model_lib.config_of_run(saved),
                               cache, "test", batch_size)


@pytest.mark.slow
def test_a_padded_last_batch_changes_nothing(trained, data, monkeypatch):
    # Ascend needs one batch shape: the last batch (200 = 3*64 + 8) is padded
    # to 64 rows, and the padding is neither counted nor returned.
    run_dir, _ = trained
    shapes = []
    networks = model_lib.networks

    def recording_networks(config):
        discriminator, generator = networks(config)

        def recording_discriminator(images, training):
            shapes.append(images.shape.as_list())
            return discriminator(images, training=training)
        return recording_discriminator, generator
    monkeypatch.setattr(model_lib, "networks", recording_networks)
    padded, padded_ids, padded_predictions = evaluate_easy(run_dir, data, 64)
    whole, whole_ids, whole_predictions = evaluate_easy(run_dir, data, 50)  # 200 = 4*50
    assert shapes == [[64, 16, 16, 1], [50, 16, 16, 1]]  # static batch dimensions
    assert len(padded_ids) == 200 and padded_ids == whole_ids
    np.testing.assert_array_equal(padded_predictions, whole_predictions)
    assert padded._replace(instances_per_sec=0) == whole._replace(instances_per_sec=0)
    # ... and as worked out apart from the pipeline, all 200 in one batch.
    labels, predictions = numpy_predictions(run_dir, os.path.join(run_dir, "model-300"),
                                            data["easy"])
    split_ids = store.open_dataset(data["easy"]).splits["test"]
    assert sorted(i.decode() for i in padded_ids) == sorted(split_ids)
    position = {i: n for n, i in enumerate(split_ids)}
    order = [position[i.decode()] for i in padded_ids]
    np.testing.assert_array_equal(padded_predictions, predictions[order])
    assert padded.num_examples == 200
    assert padded.num_correct == int((labels == predictions).sum())


@pytest.mark.slow
def test_padding_stays_out_of_minibatch_discrimination(trained, data, monkeypatch):
    # With minibatch discrimination each example's logits depend on the
    # other rows of its batch, so the last batch's padding must not be
    # among them. A stand-in for such a D predicts (rows in its batch) mod 10.
    networks = model_lib.networks

    def batch_mixing_networks(config):
        discriminator, generator = networks(config)

        class BatchMixing(object):
            minibatch_kernels = 1

            def __call__(self, images, training):
                logits = discriminator(images, training=training)
                rows = tf.shape(images)[0]
                return logits * 0 + 1000 * tf.one_hot(
                    tf.fill([rows], rows % 10), int(logits.shape[1]))
        return BatchMixing(), generator
    monkeypatch.setattr(model_lib, "networks", batch_mixing_networks)
    result, ids, predictions = evaluate_easy(trained[0], data, 64)
    assert result.num_examples == len(ids) == len(set(ids)) == 200
    assert predictions.tolist() == [64 % 10] * 192 + [8] * 8


def test_summarize_by_hand():
    result = evaluation.summarize([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 4, 2.0)
    assert result.num_correct == 4 and result.accuracy == pytest.approx(4 / 6)
    assert result.per_class_accuracy == [0.5, 1.0, pytest.approx(2 / 3), None]
    assert result.confusion_matrix[2] == [1, 0, 2, 0]
    assert result.instances_per_sec == 3.0


@pytest.mark.slow
def test_sample_grid_has_a_row_per_class(trained):
    run_dir, _ = trained
    assert evaler.main(["--checkpoint", os.path.join(run_dir, "model-200"),
                        "--samples_per_class", "6"]) == 0
    with open(os.path.join(run_dir, "eval-200-samples.png"), "rb") as f:
        header = f.read(24)
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert (int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")) == \
        (6 * 16, 10 * 16)
    assert os.path.isfile(os.path.join(run_dir, "eval-200-test.json"))


@pytest.mark.slow
def test_a_checkpoint_still_being_written_is_skipped(trained, data, tmp_path, capsys):
    run_dir = str(tmp_path / "run")
    shutil.copytree(trained[0], run_dir)
    # Reports other tests left in the trained run must not count as this one's.
    for name in os.listdir(run_dir):
        if name.startswith("eval-"):
            os.remove(os.path.join(run_dir, name))
    # The `checkpoint` file lists model-400, whose data file is not there
    # (being written, or lost): the newest complete checkpoint is read.
    open(os.path.join(run_dir, "model-400.index"), "w").close()
    state = tf.train.get_checkpoint_state(run_dir)
    paths = list(state.all_model_checkpoint_paths) + ["model-400"]
    with open(os.path.join(run_dir, "checkpoint"), "w") as f:
        f.write('model_checkpoint_path: "model-400"\n')
        f.write("".join('all_model_checkpoint_paths: "%s"\n' % p for p in paths))
    assert tf.train.latest_checkpoint(run_dir).endswith("model-400")
    capsys.readouterr()
    assert evaler.main(["--checkpoint", run_dir, "--samples_per_class", "0"]) == 0
    err = capsys.readouterr().err
    assert "Skipping checkpoint %s" % os.path.join(run_dir, "model-400") in err
    # model-300 was read: not model-400, not an older one.
    assert sorted(n for n in os.listdir(run_dir) if n.startswith("eval-")) == \
        ["eval-300-test.json"]
    with open(os.path.join(run_dir, "eval-300-test.json")) as f:
        report = json.load(f)
    assert report["step"] == 300
    assert report["checkpoint"] == os.path.join(run_dir, "model-300")
    labels, predictions = numpy_predictions(run_dir, os.path.join(run_dir, "model-300"),
                                            data["easy"])
    assert report["num_correct"] == int((labels == predictions).sum())


@pytest.mark.slow
def test_checkpoint_for_another_shape_is_refused(trained, data, capsys):
    assert evaler.main(["--checkpoint", trained[0], "--dataset", data["rgb"]]) == 2
    err = capsys.readouterr().err
    assert "model-300 expects 16x16x1, 10 classes; rgb is 8x8x3, 10 classes" in err
    assert "Traceback" not in err


def test_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert evaler.main(["--checkpoint", str(tmp_path / "model-5")]) == 2
    assert "model-5 not found: expected" in capsys.readouterr().err
    assert evaler.main(["--checkpoint", str(tmp_path)]) == 2
    assert "holds no complete checkpoint" in capsys.readouterr().err
