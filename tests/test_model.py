"""model.py: every shape, deconv and norm type builds; one D pass over the
concatenated batches equals one pass each; each step reads the batches it
should."""

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import losses as losses_lib
import model as model_lib
import train_ops as train_ops_lib
from flag_table import ADAM_BETA1
from recipes import REFERENCE_CLIP_NORM

SHAPES = [(28, 28, 1), (32, 32, 3), (20, 44, 3)]  # MNIST, SVHN/CIFAR-10, a custom one
DECONV_TYPES = ["bilinear", "nn", "transpose"]
NORM_TYPES = ["batch", "instance", "None"]
# Every pair of a shape, a deconv type and a norm type, in 9 builds instead of
# all 27: a Latin square (the norm type is the sum of the other two's indices).
PAIRWISE = [(shape, deconv, NORM_TYPES[(i + j) % 3])
            for i, shape in enumerate(SHAPES) for j, deconv in enumerate(DECONV_TYPES)]


def test_the_builds_cover_every_pair():
    for a, b in ((0, 1), (0, 2), (1, 2)):
        pairs = {(str(case[a]), str(case[b])) for case in PAIRWISE}
        choices = (SHAPES, DECONV_TYPES, NORM_TYPES)
        assert len(pairs) == len(choices[a]) * len(choices[b])


@pytest.mark.slow
@pytest.mark.parametrize("shape, deconv_type, norm_type", PAIRWISE)
def test_every_shape_deconv_and_norm_builds(shape, deconv_type, norm_type):
    with tf.Graph().as_default():
        config = model_lib.ModelConfig(shape, 7, 16, norm_type, deconv_type, 0.99)
        step = tf.train.get_or_create_global_step()
        model = model_lib.build_model(tf.zeros([3] + list(shape)), tf.zeros([3], tf.int32), config,
                                      training=True)
        losses = losses_lib.build_ssgan_losses(model, step)
        optim = train_ops_lib.OptimConfig(1e-4, 1e-4, ADAM_BETA1, REFERENCE_CLIP_NORM)
        ops = train_ops_lib.build_train_ops(losses, step, optim)
        assert model.fake_images.shape.as_list() == [3] + list(shape)
        assert model.unlabeled_logits.shape.as_list() == [3, 8]
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            images, d_loss = sess.run([model.fake_images, losses.d_loss])
            sess.run([ops.d_train])
        assert np.all(np.abs(images) <= 1.0) and np.isfinite(d_loss)
        num_bn = sum(1 for v in ops.d_vars if v.op.name.endswith("gamma"))
        if norm_type == "batch":
            # Moving averages: 2 updates per D layer (from the real batch only)
            # plus G's.
            updates = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
            d_updates = [u for u in updates if u.op.inputs[0].name.startswith("Discriminator")]
            assert num_bn > 0 and len(d_updates) == 2 * num_bn


def _no_noise(monkeypatch):
    import paper_nets
    monkeypatch.setattr(paper_nets, "MLP_INPUT_NOISE", 0.0)
    monkeypatch.setattr(paper_nets, "MLP_HIDDEN_NOISE", 0.0)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["paper", "instance_norm"])
def test_one_d_pass_over_the_batches_equals_one_pass_each(arch, monkeypatch):
    # D's outputs per example do not depend on the rest of the batch, so one
    # pass over the labeled, unlabeled and generated batches concatenated must
    # give each batch's logits and features, and the same gradients, as one
    # pass each (noise off, so both are deterministic).
    _no_noise(monkeypatch)
    rs = np.random.RandomState(2)
    with tf.Graph().as_default():
        if arch == "paper":
            config = model_lib.ModelConfig((28, 28, 1), 10, 100, "None", "bilinear", 0.9, "paper")
        else:
            config = model_lib.ModelConfig((16, 16, 1), 3, 8, "instance", "bilinear", 0.9)
        d, _ = model_lib.networks(config)
        assert d.batch_independent
        batches = [tf.constant(rs.uniform(-1, 1, (n,) + config.image_shape).astype(np.float32))
                   for n in (4, 3, 5)]
        with tf.name_scope("together"):
            together = model_lib._apply_d(d, batches, training=True, update_stats=True)
        passes = len([op for op in tf.get_default_graph().get_operations()
                      if op.name.startswith("together/") and op.type in ("MatMul", "Conv2D")])
        with tf.name_scope("apart"):
            apart = [d(b, True, return_features=True) for b in batches]
        layers = len([v for v in tf.trainable_variables()
                      if v.op.name.endswith(("/v", "/weights"))])
        assert passes == layers  # one pass: one matmul or convolution per layer

        def objective(outputs):  # a fixed projection of every output
            total = 0.0
            for i, (logits, features) in enumerate(outputs):
                total += tf.reduce_sum(logits * np.linspace(-1, 1, logits.shape[1]) * (i + 1))
                total += tf.reduce_sum(tf.square(features)) * 0.01 * (i + 1)
            return total
        variables = tf.trainable_variables()
        grads = [tf.gradients(objective(o), variables + batches) for o in (together, apart)]
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            values, (grads_together, grads_apart) = sess.run([[together, apart], grads])
    for (logits_t, features_t), (logits_a, features_a) in zip(*values):
        np.testing.assert_allclose(logits_t, logits_a, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(features_t, features_a, rtol=1e-5, atol=1e-5)
    for g_t, g_a in zip(grads_together, grads_apart):
        np.testing.assert_allclose(g_t, g_a, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_labeled_logits_apart_do_not_run_g():
    # The supervised baseline trains on the labeled batch alone. With D's
    # passes apart (concat_d=False, as the trainer builds it) its labeled
    # logits depend on neither G nor the unlabeled batch, so its steps do not
    # compute them; in one concatenated pass they would.
    with tf.Graph().as_default():
        config = model_lib.ModelConfig((28, 28, 1), 10, 100, "None", "bilinear", 0.9, "paper")
        labeled, unlabeled = [tf.random_uniform([6, 28, 28, 1], -1, 1) for _ in range(2)]
        for concat_d in (False, True):
            # with an unlabeled batch (--num_labeled) and without (every label kept)
            for others in (None, unlabeled):
                scope = "concat%d_%s" % (concat_d, "none" if others is None else "unlabeled")
                with tf.variable_scope(scope):
                    model = model_lib.build_model(labeled, tf.zeros([6], tf.int32), config,
                                                  training=True, unlabeled_images=others,
                                                  concat_d=concat_d)
                g_vars = [v for v in tf.trainable_variables()
                          if v.op.name.startswith(scope + "/Generator/")]
                assert g_vars
                grads = tf.gradients(tf.reduce_sum(model.labeled_logits),
                                     g_vars + ([] if others is None else [others]))
                assert all(g is None for g in grads) != concat_d, (concat_d, scope)


def test_reference_d_with_batch_norm_keeps_one_pass_per_batch():
    d, _ = model_lib.networks(model_lib.ModelConfig((16, 16, 1), 3, 8, "batch", "bilinear", 0.9))
    assert not d.batch_independent  # batch statistics: each batch normalised on its own
    d, _ = model_lib.networks(model_lib.ModelConfig((28, 28, 1), 10, 100, "None", "bilinear", 0.9,
                                                    "paper", "", 100))
    assert not d.batch_independent  # minibatch discrimination compares the batch's examples


@pytest.mark.slow
def test_g_step_matches_features_of_its_own_batch_and_samples():
    # The paper's G step draws a second unlabeled batch and fresh samples:
    # feature matching depends on those, D's losses on the first ones.
    import losses as losses_lib
    with tf.Graph().as_default():
        config = model_lib.ModelConfig((28, 28, 1), 10, 100, "None", "bilinear", 0.9, "paper")
        labeled, unlabeled, matching = [tf.random_uniform([6, 28, 28, 1], -1, 1)
                                        for _ in range(3)]
        model = model_lib.build_model(labeled, tf.zeros([6], tf.int32), config, training=True,
                                      unlabeled_images=unlabeled, matching_images=matching)
        losses = losses_lib.build_improved_gan_losses(model)
        d_grads = tf.gradients(losses.d_loss, [labeled, unlabeled, matching])
        g_grads = tf.gradients(losses.g_loss, [labeled, unlabeled, matching])
        assert [g is None for g in d_grads] == [False, False, True]
        assert [g is None for g in g_grads] == [True, True, False]
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            fake, fake_features, matching_fake = sess.run(
                [model.fake_features, model.matching_real_features,
                 model.matching_fake_features])
        assert not np.allclose(fake, matching_fake)  # fresh samples for G's step
        assert fake_features.shape == matching_fake.shape == (6, 250)
