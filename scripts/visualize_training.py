#!/usr/bin/env python
"""Pictures of a training run, for people who would rather look than read.

    python scripts/visualize_training.py train_dir/<run>

Writes into the run folder (or --output_dir):
  training.gif     the samples-<step>.png grids as an animation, one frame per checkpoint
  samples_sheet.png  the same grids side by side, each titled with its step
  curves.png       the TensorBoard scalars (loss/...) against the step, and the accuracy
                   of the [val ...] lines of train.log
"""

import argparse
import glob
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from names import LOG_FILE, SAMPLES_PREFIX  # noqa: E402

VAL_LINE = re.compile(r"\[val   step +(\d+)\] .* Accuracy: (\d+\.\d+) ")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", help="a run folder written by trainer.py")
    parser.add_argument("--output_dir", help="where to write (default: the run folder)")
    parser.add_argument("--frame_ms", type=int, default=400,
                        help="milliseconds per GIF frame (default: %(default)s)")
    parser.add_argument("--sheet_columns", type=int, default=5,
                        help="grids per row of the contact sheet (default: %(default)s)")
    return parser.parse_args(argv)


def sample_grids(run_dir):
    """[(step, path)] of the run's samples-<step>.png, by step."""
    found = []
    for path in glob.glob(os.path.join(run_dir, SAMPLES_PREFIX + "*.png")):
        match = re.match(re.escape(SAMPLES_PREFIX) + r"(\d+)\.png$", os.path.basename(path))
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def scalar_curves(run_dir):
    """{tag: ([steps], [values])} of the loss/... scalars in the event files."""
    import tensorflow.compat.v1 as tf
    tf.logging.set_verbosity(tf.logging.ERROR)  # summary_iterator's deprecation notice
    curves = {}
    for path in sorted(glob.glob(os.path.join(run_dir, "events.out.tfevents.*"))):
        for event in tf.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag.startswith("loss/") and value.HasField("simple_value"):
                    steps, values = curves.setdefault(value.tag, ([], []))
                    steps.append(event.step)
                    values.append(value.simple_value)
    for tag, (steps, values) in curves.items():  # a resumed run may repeat steps
        last = dict(zip(steps, values))
        curves[tag] = (sorted(last), [last[s] for s in sorted(last)])
    return curves


def val_accuracy(run_dir):
    """([steps], [accuracy]) of the [val ...] lines of train.log."""
    path = os.path.join(run_dir, LOG_FILE)
    points = {}
    if os.path.isfile(path):
        with open(path) as f:
            for line in f:
                match = VAL_LINE.search(line)
                if match:
                    points[int(match.group(1))] = float(match.group(2))
    return sorted(points), [points[s] for s in sorted(points)]


def _save_atomic(save, path):
    from files import atomic_path
    with atomic_path(path) as tmp:
        save(tmp)
    return path


def write_gif(grids, path, frame_ms):
    from PIL import Image
    frames = [Image.open(p).convert("RGB") for _, p in grids]
    return _save_atomic(lambda tmp: frames[0].save(
        tmp, format="GIF", save_all=True, append_images=frames[1:], duration=frame_ms,
        loop=0), path)


def write_sheet(grids, path, columns):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image
    columns = max(1, min(columns, len(grids)))
    rows = (len(grids) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(2.4 * columns, 2.6 * rows),
                                squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (step, grid_path) in zip(axes.flat, grids):
        image = Image.open(grid_path)
        ax.imshow(image, cmap="gray" if image.mode == "L" else None, vmin=0, vmax=255)
        ax.set_title("step %d" % step, fontsize=9)
    figure.tight_layout()
    _save_atomic(lambda tmp: figure.savefig(tmp, format="png", dpi=100), path)
    plt.close(figure)
    return path


def write_curves(curves, val, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels = [("accuracy", ["loss/accuracy"]),
              ("D loss", ["loss/d_loss", "loss/d_loss_real", "loss/d_loss_fake"]),
              ("G loss", ["loss/g_loss"]),
              ("supervised loss", ["loss/S_loss"]),
              ("GAN loss", ["loss/GAN_loss"]),
              ("reconstruction weight", ["loss/recon_weight"])]
    figure, axes = plt.subplots(2, 3, figsize=(13, 7))
    for ax, (title, tags) in zip(axes.flat, panels):
        for tag in tags:
            if tag in curves:
                ax.plot(curves[tag][0], curves[tag][1], label=tag.split("/", 1)[1] + " (train batch)"
                        if title == "accuracy" else tag.split("/", 1)[1], linewidth=1)
        if title == "accuracy" and val[0]:
            ax.plot(val[0], val[1], label="accuracy (val batch)", linewidth=1)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    figure.tight_layout()
    _save_atomic(lambda tmp: figure.savefig(tmp, format="png", dpi=100), path)
    plt.close(figure)
    return path


def main(argv=None):
    args = parse_args(argv)
    run_dir = args.run_dir
    if not os.path.isdir(run_dir):
        print("error: %s is not a folder (give a run folder written by trainer.py)" % run_dir,
              file=sys.stderr)
        return 2
    out = args.output_dir or run_dir
    if not os.path.isdir(out):
        os.makedirs(out)
    grids = sample_grids(run_dir)
    curves = scalar_curves(run_dir)
    val = val_accuracy(run_dir)
    if not grids and not curves and not val[0]:
        print("error: %s holds no samples-<step>.png, event files or train.log; is it a run "
              "folder written by trainer.py?" % run_dir, file=sys.stderr)
        return 2
    written = []
    if grids:
        written.append(write_gif(grids, os.path.join(out, "training.gif"), args.frame_ms))
        written.append(write_sheet(grids, os.path.join(out, "samples_sheet.png"),
                                   args.sheet_columns))
    if curves or val[0]:
        written.append(write_curves(curves, val, os.path.join(out, "curves.png")))
    for path in written:
        print("wrote %s" % path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
