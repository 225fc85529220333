"""Our training of the paper's MNIST recipe against the paper's own updates,
step for step.

The trainer's graph (train_graph.build_train_graph with --method
improved_gan --num_labeled 100, the paper's recipe) is run as train_loop
runs it: the data-dependent initialisation, then the steps in
schedule.Schedule's order. Each step also fetches what it drew (the
batches, G's z, D's Gaussian noise, by their names in the graph) and hands
the same numbers to tests/paper_reference.py, the paper's
train_mnist_feature_matching.py and nn.py written again in a graph of its
own, started from the same parameters. After the initialisation and after
every step both hold the same parameters, Adam moments and step counters,
and report the same losses, within float32 rounding.

Two things keep rounding from turning into differences. Each step starts
both from our state: left to itself, a GAN amplifies the float32 rounding
of either about twofold every few steps. And the reference takes our relu
decisions, checking that it would have decided the same except where a
pre-activation is within TIE of 0: one such unit on either side changes a
whole column of that step's gradients.
"""

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import input_ops
import run_folder
import startup
import train_graph
from flag_table import parse_train_config
from datasets import store
from easydata import make_easy_dataset
from paper_reference import D_UNITS, MOM1, MOM2, Noise, Pass, PaperMNIST
from schedule import Schedule

ITERATIONS = 50  # of one D step and one G step
BATCH = 100
D_LAYERS = ["dense%d" % (i + 1) for i in range(len(D_UNITS) - 1)] + ["logits"]
HIDDEN = range(len(D_UNITS) - 1)
# loss_lab = -mean(l_y) + mean(LSE(l)) comes to ~1e-3 as a difference of numbers ~10:
# float32 rounds those to ~1e-6
LOSS_ATOL = 1e-5
TIE = 1e-4  # a pre-activation this close to 0 may round to either side of it


def variable_names():
    """{our variable name: the reference's name}, parameters and Adam moments."""
    names = {}
    for i, layer in enumerate(D_LAYERS):
        for ours, theirs in (("v", "theta"), ("g", "scale"), ("b", "bias")):
            names["Discriminator/%s/%s" % (layer, ours)] = "%s%d" % (theirs, i)
    for i in (1, 2):
        names["Generator/dense%d/weights" % i] = "W%d" % i
        names["Generator/dense%d/batch_norm/beta" % i] = "b%d" % i
    names.update({"Generator/output/v": "W3", "Generator/output/g": "W_scale3",
                  "Generator/output/b": "b3"})
    for ours, theirs in list(names.items()):
        optimizer = "d_optimize_adam" if ours.startswith("Discriminator") else "g_optimize_adam"
        # slots in creation order: Adam's m, then v
        names["%s/%s" % (ours, optimizer)] = theirs + "_v"
        names["%s/%s_1" % (ours, optimizer)] = theirs + "_mg"
    return names


@pytest.fixture(scope="module")
def mnist_like(tmp_path_factory):
    """28x28 grayscale images in 10 classes: the shape of MNIST, so the
    paper's networks are the MNIST ones."""
    folder = make_easy_dataset(str(tmp_path_factory.mktemp("mnist_like") / "data"),
                               num_train=1000, num_test=100, size=28)
    info = store.open_dataset(folder)
    return info, input_ops.prepare_tfrecords(info, progress=False)


def build_ours(info, cache, *argv):
    config, explicit, _ = parse_train_config(
        ["--dataset", info.path, "--method", "improved_gan", "--num_labeled", "100"]
        + list(argv))
    config = run_folder.resolve_settings(config, explicit, {}, info)[0]
    labeled, _ = startup.labeled_subset(config, info, cache)
    return config, labeled, train_graph.build_train_graph(config, info, cache, 0,
                                                          labeled=labeled)


def pass_tensors(graph, scope):
    """What one pass through our D drew and decided: a Pass of its N(0, 1)
    samples and its hidden layers' relu outputs (turned into masks by
    `masks`)."""
    tensor = lambda name: graph.get_tensor_by_name("%s/%s:0" % (scope, name))
    return Pass(Noise(tensor("input_noise"), [tensor("noise%d" % (i + 1)) for i in HIDDEN]),
                [tensor("relu%d" % (i + 1)) for i in HIDDEN])


def masks(fetched):
    """A fetched pass_tensors (arrays) -> the Pass its relu decisions make."""
    return Pass(fetched.noise, [(h > 0).astype(np.float32) for h in fetched.masks])


def split_rows(given, parts):
    """A Pass of arrays over several batches -> one Pass per batch."""
    bounds = np.cumsum([0] + parts)
    return [Pass(Noise(given.noise.input[a:b], [h[a:b] for h in given.noise.hidden]),
                 [m[a:b] for m in given.masks]) for a, b in zip(bounds[:-1], bounds[1:])]


def check_decisions(given, pre, what):
    """The reference took our relu decisions: where it would have decided
    otherwise, the pre-activation is within float32 rounding of 0."""
    for key in given:
        for layer, (mask, a) in enumerate(zip(given[key].masks, pre[key])):
            differ = (a > 0) != (mask > 0)
            assert np.all(np.abs(a[differ]) < TIE), \
                "%s: %s pass, layer %d: relu decisions differ away from 0 (%s)" % (
                    what, key, layer + 1, np.abs(a[differ]).max())


def to_paper(images):
    """Our [B, H, W, 1] pixels in [-1, 1] -> the paper's [B, H*W] in [0, 1],
    as our D maps them."""
    return ((images + 1) / 2).reshape(len(images), -1)


def assert_close(ours, theirs, what, rtol, atol):
    for name in sorted(ours):
        np.testing.assert_allclose(ours[name], theirs[name], rtol=rtol, atol=atol,
                                   err_msg="%s: %s" % (what, name))


@pytest.mark.slow
def test_our_training_steps_are_the_papers(mnist_like):
    info, cache = mnist_like
    config, labeled, graph = build_ours(info, cache)
    # the paper's iteration: one D step, then one G step
    assert [Schedule.of(config).trains_g(step) for step in range(4)] == [False, True, False, True]
    paper = PaperMNIST(BATCH, pixels=28 * 28, n_z=config.n_z)
    names = variable_names()
    with graph.graph.as_default():
        variables = dict((v.op.name, v) for v in tf.global_variables())
        # which parameters each network trains: the paper's LL.get_all_params(trainable=True)
        assert sorted(names[v.op.name] for v in graph.train_ops.d_vars) == \
            sorted(v.op.name for v in paper.d_params)
        assert sorted(names[v.op.name] for v in graph.train_ops.g_vars) == \
            sorted(v.op.name for v in paper.g_params)
        # Adam moments exist for the trained parameters only, in both
        ours = dict((names[name], variables[name]) for name in names if name in variables)
        assert sorted(ours) == sorted(set(paper.named_variables()) - {"d_t", "g_t"})
        powers = dict((name, [variables["train/%s/beta%d_power" % (name, i)] for i in (1, 2)])
                      for name in ("d_optimize", "g_optimize"))
        g = graph.graph
        sess = tf.Session(graph=g)
    inputs = graph.inputs

    def compare(what, rtol=2e-5, atol=2e-6):
        theirs = paper.values()
        assert_close(sess.run(ours), theirs, what, rtol, atol)
        current = sess.run(powers)
        for name, t in (("d_optimize", theirs["d_t"]), ("g_optimize", theirs["g_t"])):
            # Adam's step counter per network: ours keeps beta^t
            np.testing.assert_allclose(current[name], [MOM1 ** t, MOM2 ** t], rtol=1e-6,
                                       err_msg="%s: %s's step" % (what, name))

    with sess:
        sess.run(tf.global_variables_initializer())
        paper.load(sess.run(ours))  # the parameters before the initialisation; moments 0

        # The data-dependent initialisation: the paper's 500 images, noise on.
        init_images, init_pass, _ = sess.run([
            g.get_tensor_by_name("data_init/images:0"),
            pass_tensors(g, "data_init/Discriminator"), graph.data_init_ops])
        first = input_ops.paper_order(len(info.splits["train"]), config.data_seed)[:500]
        images, _ = store.read_examples(info, [info.splits["train"][p] for p in first])
        assert sorted(x.tobytes() for x in (images / 255.0 * 2 - 1).astype(np.float32)) == \
            sorted(x.tobytes() for x in init_images)
        given = {"init": masks(init_pass)}
        check_decisions(given, {"init": paper.init(to_paper(init_images), given["init"])},
                        "the initialisation")
        compare("after the data-dependent initialisation")
        sess.run(graph.train_ops.sync_averages)

        seen = {"D": [], "G": []}  # the unlabeled images of each step
        for step in range(2 * ITERATIONS):
            # Both start the step from our state: unsynchronised, float32 rounding
            # in one of them grows about twofold every few steps (a GAN's chaos).
            paper.load(sess.run(ours))
            what = "step %d (%s)" % (step, "G" if Schedule.of(config).trains_g(step) else "D")
            if Schedule.of(config).trains_g(step):
                fetched = sess.run({
                    "train": graph.train_ops.g_train, "loss": graph.losses.feature_matching,
                    "real": inputs.matching, "z": g.get_tensor_by_name("model/matching_z:0"),
                    "real2": pass_tensors(g, "model/Discriminator_1"),
                    "fake2": pass_tensors(g, "model/Discriminator_2")})
                given = {"real2": masks(fetched["real2"]), "fake2": masks(fetched["fake2"])}
                loss, pre = paper.g_step(to_paper(fetched["real"]["image"]),
                                         (fetched["z"] + 1) / 2, given)
                np.testing.assert_allclose(fetched["loss"], loss, rtol=1e-4, atol=LOSS_ATOL,
                                           err_msg=what)
                seen["G"].append(fetched["real"]["index"])
            else:
                fetched = sess.run({
                    "train": graph.train_ops.d_train, "losses": [graph.losses.loss_lab,
                                                                 graph.losses.loss_unl],
                    "unlabeled": inputs.train, "labeled": inputs.labeled,
                    "z": g.get_tensor_by_name("model/z:0"),
                    "passes": pass_tensors(g, "model/Discriminator")})
                seen["D"].append(fetched["unlabeled"]["index"])
                # every labeled batch holds the 100 labeled images
                assert sorted(fetched["labeled"]["index"]) == sorted(labeled)
                # one pass through D of the unlabeled, labeled and generated batches
                given = dict(zip(("unl", "lab", "fake"),
                                 split_rows(masks(fetched["passes"]), [BATCH] * 3)))
                losses, pre = paper.d_step(
                    to_paper(fetched["labeled"]["image"]), fetched["labeled"]["label"],
                    to_paper(fetched["unlabeled"]["image"]), (fetched["z"] + 1) / 2, given)
                np.testing.assert_allclose(fetched["losses"], losses, rtol=1e-4, atol=LOSS_ATOL,
                                           err_msg=what)
            check_decisions(given, pre, what)
            compare("after " + what)

    # D's unlabeled batches and G's own: each stream shows every training
    # image once an epoch, in its own order
    epoch = len(info.splits["train"]) // BATCH
    for stream in ("D", "G"):
        for start in range(0, ITERATIONS - epoch + 1, epoch):
            assert sorted(np.concatenate(seen[stream][start:start + epoch])) == \
                list(range(len(info.splits["train"])))
    assert not np.array_equal(seen["D"], seen["G"])
