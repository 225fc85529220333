#!/usr/bin/env python
"""Speed of the SSGAN model in each precision: training and inference
instances/sec, FLOPs per instance, and the fraction of this machine's matmul
rate it reaches.

    python scripts/benchmark.py                      # fp32 and bf16, the default MNIST model
    python scripts/benchmark.py --precisions fp32 bf16 fp16 --train_batches 32 128 256
    python scripts/benchmark.py --image_shape 32 32 3 --train_batches 32 --seconds 20
    python scripts/benchmark.py --smoke              # a few steps per row, to check it runs
    python scripts/benchmark.py --arch paper --precisions fp32   # the paper's MNIST MLPs

Training alternates D and G steps as trainer.py does (one session.run per
step, fetching the step's loss), with the trainer's optimiser settings and
precision handling (float32 variables, float16 loss scaling): for the
reference networks its SSGAN (TensorFlow's Adam, clip 20); for --arch paper
the paper's recipe as `--method improved_gan` runs it (D sees a labeled
and an unlabeled batch and G's samples in one pass, G matches features on a
batch of its own; the paper's Adam, no clip, the moving average of D's
weights). Inference is D alone in inference mode. Inputs are random images
made in the graph, so the numbers are the model's, not the input
pipeline's (see benchmark_input.py for that).

FLOPs are counted from the graph (convolutions, their gradients, matmuls).
"model" FLOPs are those of the reference's formulation (every upsampling
block a resize then a 3x3 convolution, every convolution all its taps); the
graph executes fewer ("executed": the separable form of ops.upsample_conv2d,
and D's last convolution, onto a 1 x 1 map, as the matmul of the taps that
meet the image), so model GFLOP/s can exceed what the hardware does. "of
fp32" divides model GFLOP/s by the float32 matmul rate measured here (2048 x
2048 products), "of own" by the matmul rate of the row's dtype.
"""

import argparse
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from flag_table import ARCHS, PRECISIONS  # noqa: E402

COUNTED = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter", "MatMul", "BatchMatMulV2")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="reference", choices=ARCHS,
                        help="the reference's conv nets, or the paper's networks (--arch of "
                             "trainer.py) trained with its recipe")
    parser.add_argument("--image_shape", type=int, nargs=3, default=[28, 28, 1])
    parser.add_argument("--num_classes", type=int, default=10)
    parser.add_argument("--n_z", type=int, default=None, help="default: 128, the paper's 100")
    parser.add_argument("--deconv_type", default="bilinear")
    parser.add_argument("--norm_type", default="batch")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"],
                        choices=PRECISIONS,
                        help="fp16 runs on GPUs; on CPUs TensorFlow computes it without oneDNN")
    parser.add_argument("--train_batches", type=int, nargs="+", default=None,
                        help="default: 32 128, the paper's 100")
    parser.add_argument("--infer_batches", type=int, nargs="+", default=[32, 1024])
    parser.add_argument("--seconds", type=float, default=10.0, help="timed duration per row")
    parser.add_argument("--smoke", action="store_true", help="a few steps per row, no timing")
    args = parser.parse_args(argv)
    paper = args.arch == "paper"
    if args.n_z is None:
        args.n_z = 100 if paper else 128
    if args.train_batches is None:
        args.train_batches = [100] if paper else [32, 128]
    return args


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
        batch = np.broadcast(np.empty(a[:-2]), np.empty(b[:-2])).shape  # either may broadcast
        return 2 * int(np.prod(batch)) * m * k * n
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


def matmul_gflops(seconds, precision_name="fp32"):
    """The matmul rate of a precision's dtype through TensorFlow (2048 x 2048 products)."""
    import tensorflow.compat.v1 as tf
    import precision
    n = 2048
    with tf.Graph().as_default():
        a = tf.Variable(tf.random_normal([n, n]))
        b = tf.Variable(tf.random_normal([n, n]))
        dtype = precision.DTYPES[precision_name]
        # fetching one element keeps the product
        product = tf.matmul(tf.cast(a, dtype), tf.cast(b, dtype))[0, 0]
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            sess.run(product)
            cast_seconds = _seconds_per_run(sess, tf.cast(a, dtype)[0, 0], seconds / 4)
            per_run = _seconds_per_run(sess, product, seconds) - 2 * cast_seconds
            return 2.0 * n ** 3 / per_run / 1e9


def _seconds_per_run(sess, fetch, seconds):
    for _ in range(3):
        sess.run(fetch)
    count, start = 0, time.time()
    while time.time() - start < seconds or count < 2:
        sess.run(fetch)
        count += 1
    return (time.time() - start) / count


def _timed(run_once, batch_size, seconds, smoke):
    for _ in range(2 if smoke else 5):
        run_once(0)
    count, start, i = 0, time.time(), 0
    while (i < 4) if smoke else (time.time() - start < seconds):
        run_once(i)
        count += batch_size
        i += 1
    return count / (time.time() - start)


def model_config(args, fast_convolutions=True):
    import model
    from flag_table import BN_DECAY
    return model.ModelConfig(tuple(args.image_shape), args.num_classes, args.n_z,
                             args.norm_type, args.deconv_type, BN_DECAY, args.arch,
                             fast_convolutions=fast_convolutions)


def _training_graph(args, batch_size, precision_name, fast_convolutions=True):
    """(d_fetch, g_fetch) of one D step and one G step, as the trainer builds them
    with the recipe of --arch (the paper's MNIST script's for paper)."""
    import tensorflow.compat.v1 as tf
    import losses as losses_lib
    import model
    import precision
    import train_ops
    from flag_table import ADAM_BETA1
    from recipes import PAPER_COMMON, PAPER_SCRIPTS, REFERENCE_CLIP_NORM
    step = tf.train.get_or_create_global_step()

    def images():
        return tf.random_uniform([batch_size] + args.image_shape, -1.0, 1.0)
    labels = tf.random_uniform([batch_size], 0, args.num_classes, tf.int32)
    dtype = precision.DTYPES[precision_name]
    loss_scaling = precision.needs_loss_scale(precision_name)
    if args.arch == "paper":
        net = model.build_model(images(), labels, model_config(args, fast_convolutions),
                                training=True, unlabeled_images=images(),
                                matching_images=images(), dtype=dtype)
        losses = losses_lib.build_improved_gan_losses(net)
        rate = PAPER_SCRIPTS["MNIST"].learning_rate
        optim = train_ops.OptimConfig(rate, rate, ADAM_BETA1, PAPER_COMMON["clip_norm"],
                                      ema_decay=PAPER_COMMON["ema_decay"],
                                      loss_scaling=loss_scaling,
                                      optimizer=PAPER_COMMON["optimizer"])
    else:
        net = model.build_model(images(), labels, model_config(args, fast_convolutions),
                                training=True, dtype=dtype)
        losses = losses_lib.build_ssgan_losses(net, step)
        optim = train_ops.OptimConfig(1e-4, 1e-4, ADAM_BETA1, REFERENCE_CLIP_NORM,
                                      loss_scaling=loss_scaling)
    built = train_ops.build_train_ops(losses, step, optim)
    return [built.d_train, losses.d_loss], [built.g_train, losses.g_loss]


def _reference_and_executed(count):
    """count(fast_convolutions) -- FLOPs of a graph it builds -- in a graph of
    the reference's formulation, then in one as executed."""
    import tensorflow.compat.v1 as tf
    counts = []
    for fast in (False, True):
        with tf.Graph().as_default():
            counts.append(count(fast))
    return counts


def training_flops(args, batch_size):
    """(model, executed) FLOPs per training instance: the mean of a D and a G step."""
    return _reference_and_executed(lambda fast: sum(
        graph_flops(f) for f in _training_graph(args, batch_size, "fp32", fast))
        / 2.0 / batch_size)


def bench_training(args, batch_size, precision_name):
    import tensorflow.compat.v1 as tf
    with tf.Graph().as_default():
        d_fetch, g_fetch = _training_graph(args, batch_size, precision_name)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            return _timed(lambda i: sess.run(g_fetch if i % 2 else d_fetch), batch_size,
                          args.seconds, args.smoke)


def _inference_graph(args, batch_size, precision_name, fast_convolutions=True):
    import tensorflow.compat.v1 as tf
    import model
    import precision
    dtype = precision.DTYPES[precision_name]
    images = tf.random_uniform([batch_size] + args.image_shape, -1.0, 1.0)
    with tf.variable_scope(tf.get_variable_scope(),
                           custom_getter=precision.variable_getter(dtype)):
        discriminator = model.networks(model_config(args, fast_convolutions))[0]
        logits = discriminator(tf.cast(images, dtype), training=False)
    return tf.argmax(logits[:, :args.num_classes], axis=1)


def inference_flops(args, batch_size):
    """(model, executed) FLOPs per inference instance."""
    return _reference_and_executed(lambda fast: graph_flops(
        [_inference_graph(args, batch_size, "fp32", fast)]) / float(batch_size))


def bench_inference(args, batch_size, precision_name):
    import tensorflow.compat.v1 as tf
    with tf.Graph().as_default():
        predictions = _inference_graph(args, batch_size, precision_name)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            return _timed(lambda i: sess.run(predictions), batch_size, args.seconds, args.smoke)


HEADER = "%-9s %-10s %6s %8s %12s %10s %10s %9s %7s %7s"
ROW = "%-9s %-10s %6d %8.2f %12.1f %10.1f %10.1f %9.1f %6.0f%% %6.0f%%"


def main(argv=None):
    args = parse_args(argv)
    import tensorflow.compat.v1 as tf
    tf.logging.set_verbosity(tf.logging.ERROR)
    tf.disable_v2_behavior()
    import precision
    seconds = 0.3 if args.smoke else 3.0
    ceilings = {p: matmul_gflops(seconds, p) for p in args.precisions}
    ceilings.setdefault("fp32", matmul_gflops(seconds))
    print("machine: %s, %d cores; Python %s; TensorFlow %s" % (
        platform.processor() or platform.machine(), os.cpu_count(), platform.python_version(),
        tf.VERSION))
    networks = ("the paper's networks" if args.arch == "paper" else
                "deconv %s, norm %s" % (args.deconv_type, args.norm_type))
    print("model: %s, %s; matmul rate (GFLOP/s): %s" % (
        "x".join(map(str, args.image_shape)), networks,
        ", ".join("%s %.0f" % (precision.DTYPES[p].name, ceilings[p])
                  for p in sorted(ceilings))))
    print(HEADER % ("precision", "mode", "batch", "ms/step", "instances/s", "model",
                    "executed", "model", "of", "of"))
    print(HEADER % ("", "", "", "", "", "MFLOP/inst", "MFLOP/inst", "GFLOP/s", "fp32", "own"))
    rows = [("training", b, training_flops, bench_training) for b in args.train_batches]
    rows += [("inference", b, inference_flops, bench_inference) for b in args.infer_batches]
    for mode, batch_size, count, bench in rows:
        model_flops, executed = count(args, batch_size)
        for precision_name in args.precisions:
            rate = bench(args, batch_size, precision_name)
            achieved = rate * model_flops / 1e9
            print(ROW % (precision_name, mode, batch_size, 1e3 * batch_size / rate, rate,
                         model_flops / 1e6,
                         executed / 1e6, achieved, 100.0 * achieved / ceilings["fp32"],
                         100.0 * achieved / ceilings[precision_name]))
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
