#!/usr/bin/env python
"""Speed of the SSGAN model: training and inference instances/sec, FLOPs per
instance, and the fraction of this machine's float32 matmul rate it reaches.

    python scripts/benchmark.py                      # the default MNIST model
    python scripts/benchmark.py --image_shape 32 32 3 --train_batches 32 --seconds 20
    python scripts/benchmark.py --smoke              # a few steps, to check it runs

Training alternates D and G steps as trainer.py does (one session.run per
step, fetching the logged losses). Inference is D alone with batch norm in
inference mode. Inputs are random images made in the graph, so the numbers
are the model's, not the input pipeline's (see benchmark_input.py for that).
FLOPs are counted from the graph (convolutions, their gradients, matmuls);
model FLOP utilisation = achieved GFLOP/s / measured matmul GFLOP/s.
"""

import argparse
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

COUNTED = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter", "MatMul", "BatchMatMulV2")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image_shape", type=int, nargs=3, default=[28, 28, 1])
    parser.add_argument("--num_classes", type=int, default=10)
    parser.add_argument("--n_z", type=int, default=128)
    parser.add_argument("--deconv_type", default="bilinear")
    parser.add_argument("--norm_type", default="batch")
    parser.add_argument("--train_batches", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--infer_batches", type=int, nargs="+", default=[32, 128, 1024])
    parser.add_argument("--seconds", type=float, default=10.0, help="timed duration per row")
    parser.add_argument("--smoke", action="store_true", help="a few steps per row, no timing")
    return parser.parse_args(argv)


def op_flops(op):
    """Multiply-adds x 2 of one convolution / matmul op, from static shapes."""
    import numpy as np

    def shape(tensor):
        return tensor.shape.as_list()
    if op.type == "Conv2D":
        kh, kw, c_in, _ = shape(op.inputs[1])
        return 2 * int(np.prod(shape(op.outputs[0]))) * kh * kw * c_in
    if op.type in ("Conv2DBackpropInput", "Conv2DBackpropFilter"):
        dy = op.inputs[2]  # the gradient of the forward conv's output
        kernel = op.inputs[1] if op.type == "Conv2DBackpropInput" else op.outputs[0]
        kh, kw, c_in, _ = shape(kernel)
        return 2 * int(np.prod(shape(dy))) * kh * kw * c_in
    if op.type in ("MatMul", "BatchMatMulV2"):
        a, b = shape(op.inputs[0]), shape(op.inputs[1])
        transpose_a = op.get_attr("transpose_a") if op.type == "MatMul" else op.get_attr("adj_x")
        m, k = (a[-1], a[-2]) if transpose_a else (a[-2], a[-1])
        transpose_b = op.get_attr("transpose_b") if op.type == "MatMul" else op.get_attr("adj_y")
        n = b[-2] if transpose_b else b[-1]
        batch = int(np.prod(a[:-2])) if len(a) > 2 else 1
        return 2 * batch * m * k * n
    return 0


def graph_flops(fetches):
    """FLOPs of the ops a session.run of `fetches` executes (the fetches'
    transitive inputs and control inputs)."""
    import tensorflow.compat.v1 as tf
    seen, stack, total = set(), [], 0
    for fetch in fetches:
        stack.append(fetch if isinstance(fetch, tf.Operation) else fetch.op)
    while stack:
        op = stack.pop()
        if op.name in seen:
            continue
        seen.add(op.name)
        if op.type in COUNTED:
            total += op_flops(op)
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)
    return total


def matmul_gflops(seconds):
    """float32 matmul rate through TensorFlow (2048 x 2048 products)."""
    import tensorflow.compat.v1 as tf
    n = 2048
    with tf.Graph().as_default():
        a = tf.Variable(tf.random_normal([n, n]))
        b = tf.Variable(tf.random_normal([n, n]))
        product = tf.matmul(a, b)[0, 0]  # fetching one element keeps the product
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for _ in range(3):
                sess.run(product)
            count, start = 0, time.time()
            while time.time() - start < seconds:
                sess.run(product)
                count += 1
            return 2.0 * n ** 3 * count / (time.time() - start) / 1e9


def _timed(run_once, batch_size, seconds, smoke):
    for _ in range(2 if smoke else 5):
        run_once(0)
    count, start, i = 0, time.time(), 0
    while (i < 4) if smoke else (time.time() - start < seconds):
        run_once(i)
        count += batch_size
        i += 1
    return count / (time.time() - start)


def bench_training(args, batch_size):
    import tensorflow.compat.v1 as tf
    import model as ssgan
    config = ssgan.ModelConfig(tuple(args.image_shape), args.num_classes, args.n_z,
                               args.norm_type, args.deconv_type, 0.9)
    with tf.Graph().as_default():
        step = tf.train.get_or_create_global_step()
        images = tf.random_uniform([batch_size] + args.image_shape, -1.0, 1.0)
        labels = tf.random_uniform([batch_size], 0, args.num_classes, tf.int32)
        model = ssgan.build_model(images, labels, config, training=True)
        losses = ssgan.build_losses(model, step)
        ops = ssgan.build_train_ops(losses, step, ssgan.OptimConfig(1e-4, 1e-4, 0.5, 20.0))
        scalars = [losses.supervised_loss, losses.d_loss, losses.g_loss, losses.accuracy]
        d_fetch, g_fetch = [ops.d_train] + scalars, [ops.g_train] + scalars
        flops = (graph_flops(d_fetch) + graph_flops(g_fetch)) / 2.0 / batch_size
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            rate = _timed(lambda i: sess.run(g_fetch if i % 2 else d_fetch), batch_size,
                          args.seconds, args.smoke)
    return rate, flops


def bench_inference(args, batch_size):
    import tensorflow.compat.v1 as tf
    import model as ssgan
    with tf.Graph().as_default():
        images = tf.random_uniform([batch_size] + args.image_shape, -1.0, 1.0)
        logits = ssgan.Discriminator(args.num_classes, args.norm_type)(images, training=False)
        predictions = tf.argmax(logits[:, :args.num_classes], axis=1)
        flops = graph_flops([predictions]) / float(batch_size)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            rate = _timed(lambda i: sess.run(predictions), batch_size, args.seconds, args.smoke)
    return rate, flops


def main(argv=None):
    args = parse_args(argv)
    import tensorflow.compat.v1 as tf
    tf.logging.set_verbosity(tf.logging.ERROR)
    tf.disable_v2_behavior()
    ceiling = matmul_gflops(0.5 if args.smoke else 5.0)
    print("machine: %s, %d cores; Python %s; TensorFlow %s" % (
        platform.processor() or platform.machine(), os.cpu_count(), platform.python_version(),
        tf.VERSION))
    print("model: %s, deconv %s, norm %s; float32 matmul rate %.0f GFLOP/s" % (
        "x".join(map(str, args.image_shape)), args.deconv_type, args.norm_type, ceiling))
    print("%-10s %6s %14s %12s %10s %10s" % ("mode", "batch", "instances/s", "MFLOP/inst",
                                               "GFLOP/s", "of matmul"))
    rows = [("training", b, bench_training) for b in args.train_batches]
    rows += [("inference", b, bench_inference) for b in args.infer_batches]
    for mode, batch_size, bench in rows:
        rate, flops = bench(args, batch_size)
        achieved = rate * flops / 1e9
        print("%-10s %6d %14.1f %12.1f %10.1f %9.0f%%" % (
            mode, batch_size, rate, flops / 1e6, achieved, 100.0 * achieved / ceiling))
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
