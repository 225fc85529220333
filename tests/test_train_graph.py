"""train_graph.py: the stages a run's flags ask for are in its TrainGraph,
and the others are not; graphs built on the easy 16x16 dataset."""

import pytest
import tensorflow.compat.v1 as tf

import input_ops
import run_folder
import startup
import train_graph
from flag_table import parse_train_config
from datasets import store
from errors import ConfigError
from names import EMA_NAME


@pytest.fixture(scope="module")
def easy(data):
    info = store.open_dataset(data["easy"])
    return info, input_ops.prepare_tfrecords(info, progress=False)


def resolved(info, *argv):
    """The config trainer.py would train with: flags, then the recipe."""
    config, explicit, _ = parse_train_config(["--dataset", info.path] + list(argv))
    return run_folder.resolve_settings(config, explicit, {}, info)[0]


def build(easy, argv, start_step=0):
    info, cache = easy
    config = resolved(info, *argv)
    labeled, _ = startup.labeled_subset(config, info, cache)
    return config, train_graph.build_train_graph(config, info, cache, start_step,
                                                 labeled=labeled)


@pytest.mark.slow
def test_the_reference_run_has_one_stream_and_nothing_to_initialise(easy):
    config, graph = build(easy, ["--batch_size", "8"])
    inputs = graph.inputs
    assert inputs.labeled is None and inputs.matching is None and not inputs.initializers
    assert inputs.train["image"].shape.as_list() == [8, 16, 16, 1]
    assert graph.model.unlabeled_logits is graph.model.labeled_logits  # every label used
    assert graph.data_init_ops == [] and graph.train_ops.ema is None
    assert graph.together == (None, None, None, None)
    assert graph.eval.sample_images.shape.as_list() == [train_graph.NUM_SAMPLES, 16, 16, 1]
    with graph.graph.as_default():
        networks = [v for v in tf.global_variables()
                    if v.op.name.startswith(("Discriminator/", "Generator/"))]
    assert set(graph.model_variables) == set(networks)
    assert type(graph.losses).__name__ == "SSGANLosses" and config.clip_norm == 20.0


@pytest.mark.slow
def test_the_papers_run_has_its_streams_initialisation_and_moving_average(easy):
    config, graph = build(easy, ["--method", "improved_gan", "--num_labeled", "20",
                                 "--batch_size", "10"])
    inputs = graph.inputs
    assert inputs.labeled is not None and inputs.matching is not None
    assert graph.model.unlabeled_logits is not graph.model.labeled_logits
    assert graph.data_init_ops  # the weight-normalised layers of the paper's MLPs
    assert graph.train_ops.ema is not None
    names = [v.op.name for v in graph.model_variables]
    assert names and not [n for n in names if n.endswith("/" + EMA_NAME)]
    assert type(graph.losses).__name__ == "ImprovedGANLosses"
    assert train_graph.feature_norm(config, (16, 16, 1)) == "l2"
    assert train_graph.feature_norm(config, (32, 32, 3)) == "l1"
    # resumed: the weights come from the checkpoint, not from data
    assert build(easy, ["--method", "improved_gan", "--num_labeled", "20", "--batch_size",
                        "10"], start_step=10)[1].data_init_ops == []


def test_data_that_cannot_make_the_batches_is_refused(easy):
    info, cache = easy
    with pytest.raises(ConfigError, match="--batch_size 500 is larger than the 200 examples "
                                          "of the test split"):
        startup.check_batch_size(resolved(info, "--batch_size", "500"), cache)
    with pytest.raises(ConfigError, match="--num_labeled 1000 is more than the 640 training"):
        startup.labeled_subset(resolved(info, "--num_labeled", "1000"), info, cache)
    with pytest.raises(ConfigError, match="--num_labeled 15"):
        startup.labeled_subset(resolved(info, "--num_labeled", "15"), info, cache)


@pytest.mark.slow
@pytest.mark.parametrize("argv", [
    ["--method", "ssgan", "--num_labeled", "20"],
    ["--method", "ssgan", "--arch", "paper", "--num_labeled", "20"],
    ["--method", "ssgan", "--arch", "paper", "--minibatch_kernels", "10", "--num_labeled", "20"],
    ["--method", "improved_gan", "--num_labeled", "20"],
    ["--method", "improved_gan", "--arch", "reference", "--num_labeled", "20"],
    ["--method", "improved_gan", "--arch", "reference", "--norm_type", "instance",
     "--num_labeled", "20"],
    ["--method", "supervised", "--num_labeled", "20"],
], ids=lambda argv: "-".join(a.lstrip("-") for a in argv))
def test_each_streams_position_counts_the_steps_that_draw_from_it(easy, argv):
    """build_train_graph raises unless the steps that draw from each stream
    are those stream_steps lists (a resumed run skips as many batches as
    those steps drew); each recipe of ours builds, and a wrong list is caught."""
    build(easy, argv + ["--batch_size", "10"])
    original = train_graph.stream_steps
    try:  # D's step without its labeled batch
        train_graph.stream_steps = lambda *args: original(*args)._replace(d=("train",))
        with pytest.raises(RuntimeError, match="the labeled stream is drawn from in the "
                                               "steps of \\['d'"):
            build(easy, argv + ["--batch_size", "10"])
    finally:
        train_graph.stream_steps = original

