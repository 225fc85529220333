"""model.py: losses on fixed logits worked out by hand; every shape, deconv
and norm type builds; D and G steps touch only their own variables."""

import math

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import model as ssgan

LN2, LN3 = math.log(2.0), math.log(3.0)


def evaluate(tensor):
    with tf.Session() as sess:
        return sess.run(tensor)


def test_discriminator_losses_by_hand():
    with tf.Graph().as_default():
        # K = 2. Equal logits: softmax 1/3 each, so either target gives ln 3.
        # Fake logits [0, 0, ln 2]: softmax [1/4, 1/4, 1/2]; the target
        # [0.05, 0.05, 0.9] gives 0.1 ln 4 + 0.9 ln 2 = 1.1 ln 2.
        # Real logits [ln 3, 0, 0] with label 0: softmax 3/5 -> ln(5/3).
        real = tf.constant([[0.0, 0.0, 0.0], [LN3, 0.0, 0.0]])
        fake = tf.constant([[0.0, 0.0, 0.0], [0.0, 0.0, LN2]])
        d_real, d_fake = ssgan.discriminator_losses(real, fake, tf.constant([1, 0]), 2)
        got_real, got_fake = evaluate([d_real, d_fake])
    np.testing.assert_allclose(got_real, [LN3, math.log(5.0 / 3.0)], rtol=1e-6)
    np.testing.assert_allclose(got_fake, [LN3, 1.1 * LN2], rtol=1e-6)


def test_generator_gan_loss_by_hand_and_stable():
    with tf.Graph().as_default():
        # mean(log sigmoid(x)) of the fake logit (index K = 1):
        # x = 0 -> ln 1/2; x = ln 3 -> ln 3/4; x = -200 -> -200 (not -inf).
        loss = ssgan.generator_gan_loss(tf.constant([[9.0, 0.0], [9.0, LN3]]), 1)
        tiny = ssgan.generator_gan_loss(tf.constant([[0.0, -200.0]]), 1)
        got, got_tiny = evaluate([loss, tiny])
    assert got == pytest.approx((-LN2 + math.log(0.75)) / 2, rel=1e-6)
    assert got_tiny == pytest.approx(-200.0)


def test_supervised_loss_and_accuracy_by_hand():
    with tf.Graph().as_default():
        # Zero logits: sigmoid 1/2 everywhere; the residual is 1/2 on every
        # class, Huber 0.125 each.
        s_loss = ssgan.supervised_loss(tf.zeros([2, 4]), tf.constant([0, 2]), 3)
        # The fake logit (last) is ignored by the accuracy, even when largest.
        logits = tf.constant([[0.0, 5.0, 1.0, 9.0], [3.0, 1.0, 2.0, 9.0]])
        accuracy = ssgan.classification_accuracy(logits, tf.constant([1, 2]), 3)
        got_s, got_a = evaluate([s_loss, accuracy])
    assert got_s == pytest.approx(0.125)
    assert got_a == pytest.approx(0.5)


def test_reconstruction_weight_anneals_from_10_to_0_over_1500_steps():
    with tf.Graph().as_default():
        step = tf.placeholder(tf.int64, [])
        weight = ssgan.reconstruction_weight(step)
        with tf.Session() as sess:
            got = [sess.run(weight, {step: s}) for s in (0, 750, 1499, 1500, 40000)]
    np.testing.assert_allclose(got, [10.0, 5.0, 10.0 / 1500, 0.0, 0.0], rtol=1e-5, atol=1e-7)


def test_reconstruction_loss_is_mean_huber():
    with tf.Graph().as_default():
        got = evaluate(ssgan.reconstruction_loss(tf.constant([[0.0, 0.0]]),
                                                 tf.constant([[0.5, 3.0]])))
    assert got == pytest.approx((0.125 + 2.5) / 2)


def test_losses_name_both_shapes_on_mismatch():
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match=r"logits have shape \(4, 10\), expected \[B, 11\]"):
            ssgan.generator_gan_loss(tf.zeros([4, 10]), 10)
        with pytest.raises(ValueError, match=r"batch sizes differ, \(4, 11\) vs \(3,\)"):
            ssgan.discriminator_losses(tf.zeros([4, 11]), tf.zeros([4, 11]),
                                       tf.zeros([3], tf.int32), 10)
        config = ssgan.ModelConfig((28, 28, 1), 10, 8, "batch", "bilinear", 0.99)
        with pytest.raises(ValueError, match=r"images have shape \(2, 32, 32, 3\)"):
            ssgan.build_model(tf.zeros([2, 32, 32, 3]), tf.zeros([2], tf.int32), config, True)


SHAPES = [(28, 28, 1), (32, 32, 3), (20, 44, 3)]  # MNIST, SVHN/CIFAR-10, a custom one


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("deconv_type", ["bilinear", "nn", "transpose"])
@pytest.mark.parametrize("norm_type", ["batch", "instance", "None"])
def test_every_shape_deconv_and_norm_builds(shape, deconv_type, norm_type):
    with tf.Graph().as_default():
        config = ssgan.ModelConfig(shape, 7, 16, norm_type, deconv_type, 0.99)
        step = tf.train.get_or_create_global_step()
        model = ssgan.build_model(tf.zeros([3] + list(shape)), tf.zeros([3], tf.int32), config,
                                  training=True)
        losses = ssgan.build_losses(model, step)
        ops = ssgan.build_train_ops(losses, step, ssgan.OptimConfig(1e-4, 1e-4, 0.5, 20.0))
        assert model.fake_images.shape.as_list() == [3] + list(shape)
        assert model.real_logits.shape.as_list() == [3, 8]
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


def test_d_step_changes_only_d_and_g_step_only_g():
    with tf.Graph().as_default():
        tf.set_random_seed(1)
        config = ssgan.ModelConfig((16, 16, 1), 3, 8, "batch", "bilinear", 0.99)
        step = tf.train.get_or_create_global_step()
        images = tf.random_uniform([4, 16, 16, 1], -1, 1)
        model = ssgan.build_model(images, tf.constant([0, 1, 2, 0]), config, training=True)
        ops = ssgan.build_train_ops(ssgan.build_losses(model, step), step,
                                    ssgan.OptimConfig(1e-3, 1e-3, 0.5, 20.0))
        assert ops.d_vars and ops.g_vars
        assert not set(ops.d_vars) & set(ops.g_vars)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for train_op, changed, unchanged in ((ops.d_train, ops.d_vars, ops.g_vars),
                                                 (ops.g_train, ops.g_vars, ops.d_vars)):
                before = sess.run(changed + unchanged)
                sess.run(train_op)
                after = sess.run(changed + unchanged)
                n = len(changed)
                assert all(not np.array_equal(b, a) for b, a in zip(before[:n], after[:n]))
                assert all(np.array_equal(b, a) for b, a in zip(before[n:], after[n:]))
            assert sess.run(step) == 2


def test_stray_trainable_variable_is_refused():
    with tf.Graph().as_default():
        tf.get_variable("stray", [1])
        with pytest.raises(ValueError, match="outside Discriminator/ and Generator/.*stray"):
            ssgan.split_variables()


def _no_noise(monkeypatch):
    import paper_nets
    monkeypatch.setattr(paper_nets, "MLP_INPUT_NOISE", 0.0)
    monkeypatch.setattr(paper_nets, "MLP_HIDDEN_NOISE", 0.0)


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
            config = ssgan.ModelConfig((28, 28, 1), 10, 100, "None", "bilinear", 0.9, "paper")
        else:
            config = ssgan.ModelConfig((16, 16, 1), 3, 8, "instance", "bilinear", 0.9)
        d, _ = ssgan.networks(config)
        assert d.batch_independent
        batches = [tf.constant(rs.uniform(-1, 1, (n,) + config.image_shape).astype(np.float32))
                   for n in (4, 3, 5)]
        with tf.name_scope("together"):
            together = ssgan._apply_d(d, batches, training=True, update_stats=True)
        passes = len([op for op in tf.get_default_graph().get_operations()
                      if op.name.startswith("together/") and op.type in ("MatMul", "Conv2D")])
        with tf.name_scope("apart"):
            apart = [d(b, True, return_features=True) for b in batches]
        layers = len([v for v in tf.trainable_variables() if v.op.name.endswith(("/v", "/weights"))])
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


def test_labeled_logits_apart_do_not_run_g():
    # The supervised baseline trains on the labeled batch alone. With D's
    # passes apart (concat_d=False, as the trainer builds it) its labeled
    # logits depend on neither G nor the unlabeled batch, so its steps do not
    # compute them; in one concatenated pass they would.
    with tf.Graph().as_default():
        config = ssgan.ModelConfig((28, 28, 1), 10, 100, "None", "bilinear", 0.9, "paper")
        labeled, unlabeled = [tf.random_uniform([6, 28, 28, 1], -1, 1) for _ in range(2)]
        for concat_d in (False, True):
            # with an unlabeled batch (--num_labeled) and without (every label kept)
            for others in (None, unlabeled):
                scope = "concat%d_%s" % (concat_d, "none" if others is None else "unlabeled")
                with tf.variable_scope(scope):
                    model = ssgan.build_model(labeled, tf.zeros([6], tf.int32), config,
                                              training=True, unlabeled_images=others,
                                              concat_d=concat_d)
                g_vars = [v for v in tf.trainable_variables()
                          if v.op.name.startswith(scope + "/Generator/")]
                assert g_vars
                grads = tf.gradients(tf.reduce_sum(model.labeled_logits),
                                     g_vars + ([] if others is None else [others]))
                assert all(g is None for g in grads) != concat_d, (concat_d, scope)


def test_reference_d_with_batch_norm_keeps_one_pass_per_batch():
    d, _ = ssgan.networks(ssgan.ModelConfig((16, 16, 1), 3, 8, "batch", "bilinear", 0.9))
    assert not d.batch_independent  # batch statistics: each batch normalised on its own
    d, _ = ssgan.networks(ssgan.ModelConfig((28, 28, 1), 10, 100, "None", "bilinear", 0.9,
                                            "paper", "", 100))
    assert not d.batch_independent  # minibatch discrimination compares the batch's examples


def test_g_step_matches_features_of_its_own_batch_and_samples():
    # The paper's G step draws a second unlabeled batch and fresh samples:
    # feature matching depends on those, D's losses on the first ones.
    import improved_gan
    with tf.Graph().as_default():
        config = ssgan.ModelConfig((28, 28, 1), 10, 100, "None", "bilinear", 0.9, "paper")
        labeled, unlabeled, matching = [tf.random_uniform([6, 28, 28, 1], -1, 1)
                                        for _ in range(3)]
        model = ssgan.build_model(labeled, tf.zeros([6], tf.int32), config, training=True,
                                  unlabeled_images=unlabeled, matching_images=matching)
        losses = improved_gan.build_losses(model)
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
