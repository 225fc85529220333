"""summaries.py: image grids and pixel conversion, by hand."""

import numpy as np
import tensorflow.compat.v1 as tf

import summaries


def test_grid_places_images_row_major_and_pads():
    images = np.stack([np.full((2, 3, 1), v, np.float32) for v in (0.1, 0.2, 0.3)])
    with tf.Graph().as_default(), tf.Session() as sess:
        grid = sess.run(summaries.image_grid(tf.constant(images)))  # 2 columns, 2 rows
    assert grid.shape == (1, 4, 6, 1)
    np.testing.assert_allclose(grid[0, :2, :3, 0], 0.1)
    np.testing.assert_allclose(grid[0, :2, 3:, 0], 0.2)
    np.testing.assert_allclose(grid[0, 2:, :3, 0], 0.3)
    np.testing.assert_allclose(grid[0, 2:, 3:, 0], -1.0)  # the missing cell


def test_pixels_map_back_to_uint8():
    with tf.Graph().as_default(), tf.Session() as sess:
        got = sess.run(summaries.to_uint8(tf.constant([-1.0, 0.0, 1.0, 1.5, 128 / 127.5 - 1])))
    assert got.tolist() == [0, 128, 255, 255, 128]
