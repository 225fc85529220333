"""paper_nets.py: the paper's networks have the shapes, widths and fixed
fake logit of openai/improved-gan's, and refuse images they were not made for."""

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import paper_nets


def run(tensors, feed=None):
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        return sess.run(tensors, feed)


@pytest.mark.slow
@pytest.mark.parametrize("shape,dataset,widths,features", [
    ((28, 28, 1), "MNIST", None, 250), ((16, 12, 1), "x", None, 250),
    ((32, 32, 3), "CIFAR10", (96, 192), 192), ((32, 32, 3), "SVHN", (64, 128), 128)])
def test_paper_networks_shapes(shape, dataset, widths, features):
    with tf.Graph().as_default():
        d, g = paper_nets.networks(shape, 10, dataset, minibatch_kernels=5)
        images = g(tf.random_uniform([4, 100], -1, 1), training=True)
        logits, feats = d(images, training=True, return_features=True)
        assert images.shape.as_list() == [None, *shape] or \
            images.shape.as_list()[1:] == list(shape)
        assert logits.shape.as_list()[1:] == [11] and feats.shape.as_list()[1:] == [features]
        if widths:
            assert d.widths == widths
        values = run([images, logits])
    assert values[0].min() >= -1 and values[0].max() <= 1
    np.testing.assert_array_equal(values[1][:, -1], 0.0)  # the fake logit is fixed at 0


def test_paper_networks_refuse_other_colour_shapes():
    with pytest.raises(ValueError, match="8x8x3.*--arch reference"):
        paper_nets.check_image_shape((8, 8, 3))
