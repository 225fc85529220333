"""The training graph, built once per process in named stages:

    graph = build_train_graph(config, info, cache, start_step, ...)   # TrainGraph
    graph.inputs     the batches the steps read (tf.data streams)
    graph.model      model.build_model on them: D's logits and features, G's images
    graph.losses     losses.py's, for --method
    graph.train_ops  train_ops.py's D and G steps
    graph.eval       the validation losses on a test batch, the sample grid

plus what a run needs around them: the saver, the summary ops, and what
keeps several cards or workers together (platforms.Together, built by the
run's platform). train_loop.py runs it.
"""

import collections

import numpy as np
import tensorflow.compat.v1 as tf

import divergence
import input_ops
import losses as losses_lib
import model as model_lib
import names
import ops
import platforms
import precision
import summaries
import train_ops as train_ops_lib
from schedule import Schedule, Steps

NUM_SAMPLES = 64  # the sample grid: 8 x 8 generated images from fixed noise
INIT_BATCH = 500  # the paper's data-dependent initialisation batch (trainx[:500])

Inputs = collections.namedtuple("Inputs", "train labeled matching test initializers")
Inputs.__doc__ = """Batches ({"image", "label", "id", "index"} dicts): train (every
training image; the unlabeled stream when --num_labeled is set), labeled (the
labeled subset, or None), matching (G's own unlabeled batches for feature
matching, or None), test (validation). initializers: the streams' iterator
initializers to run once the global step is set (a cluster's; else empty)."""

Eval = collections.namedtuple("Eval", "model losses sample_images sample_png")
Eval.__doc__ = """The model on a test batch (D's moving-average weights when kept),
its losses for the [val step] lines, and G's images from fixed noise with
their PNG grid for samples-<step>.png."""

TrainGraph = collections.namedtuple(
    "TrainGraph", "graph global_step inputs model losses train_ops eval together "
                  "data_init_ops model_variables summary saver signs clear_status")
TrainGraph.__doc__ = """The stages above, and: graph (the tf.Graph), global_step,
data_init_ops (the paper's data-dependent initialisation, run once on a new
run; empty otherwise), model_variables (D's and G's, without moving
averages: what --checkpoint restores), summary (Steps of the merged
training summaries each network's step computes), saver, signs (Steps of
divergence.sign_vector: what the step just run shows of a diverged run),
clear_status (on the NPU, the op that clears the device-wide float status
after a run that was not a training step; else None)."""


def feature_norm(config, image_shape):
    """The feature-matching distance: the flag, or the paper's per network."""
    if config.feature_matching != "auto":
        return config.feature_matching
    return "l1" if config.arch == "paper" and image_shape[-1] == 3 else "l2"


def build_losses(config, model, global_step, image_shape):
    """The losses of config.method for a model.SSGANModel."""
    if config.method == "ssgan":
        return losses_lib.build_ssgan_losses(model, global_step, config.unlabeled_weight)
    weight = config.unlabeled_weight if config.method == "improved_gan" else 0.0
    return losses_lib.build_improved_gan_losses(model, weight, 1.0 - config.label_smoothing,
                                                feature_norm(config, image_shape))


def optim_config(config, loss_scaling):
    """The train_ops.OptimConfig of a run's flags."""
    return train_ops_lib.OptimConfig(
        config.learning_rate_d, config.learning_rate_g, config.beta1, config.clip_norm,
        config.lr_decay_start, config.max_training_steps, config.historical_averaging,
        config.ema_decay, loss_scaling, config.optimizer)


def stream_steps(config, model_config):
    """Steps(d, g): the training streams each network's step draws a batch
    from ("train", "labeled", "matching"). D's step draws its unlabeled and
    labeled batches. G's step draws its own batch for feature matching (the
    paper's loss), or D's unlabeled batch (the reference's loss pairs G's
    images with it) and D's labeled one where D sees all of them in one pass
    (model._apply_d); and D's unlabeled batch where G's step runs D's
    batch-norm updates (the reference's D with --norm_type batch: its
    statistics follow that batch). build_train_graph checks this against
    the graph it builds."""
    one_pass = config.method != "supervised" and \
        model_lib.networks(model_config)[0].batch_independent
    batch_norm = config.arch == "reference" and config.norm_type == "batch"
    g_draws = ("matching",) if config.method == "improved_gan" else ()
    if config.method == "ssgan":
        g_draws += ("train", "labeled") if one_pass else ("train",)
    elif batch_norm:
        g_draws += ("train",)
    return Steps(("train", "labeled"), g_draws)


def _build_inputs(config, model_config, cache, start_step, num_shards, shard_index, labeled):
    """The run's streams, each starting at the batch it would be at in step
    `start_step` of an uninterrupted run (a number, or on a cluster the
    global step, read when the iterators are initialised): a stream moves
    only in the steps that draw from it (stream_steps), and the validation
    stream once every --test_sample_step steps."""
    initializers = []
    initializable = isinstance(start_step, (tf.Tensor, tf.Variable))
    drawing = stream_steps(config, model_config)
    before = Schedule.of(config).steps_before(start_step)

    def stream(batch_size, seed, name, **kwargs):
        skip = sum(count for steps, count in zip(drawing, before) if name in steps)
        dataset = input_ops.stream_dataset(
            cache, batch_size, seed=seed, num_shards=num_shards, shard_index=shard_index,
            skip_batches=skip, **kwargs)
        if not initializable:
            return tf.data.make_one_shot_iterator(dataset).get_next()
        iterator = tf.data.make_initializable_iterator(dataset)
        initializers.append(iterator.initializer)
        return iterator.get_next()
    train = stream(config.batch_size, config.seed, "train")
    labeled_batch = None
    if labeled is not None:
        labeled_batch = stream(config.batch_size, config.seed + 2, "labeled", subset=labeled)
    matching = None
    if config.method == "improved_gan":  # G's own unlabeled batches, as the paper's
        matching = stream(config.batch_size, config.seed + 4, "matching")
    validations = 0  # a task joining a cluster's run starts its own validation stream
    if not initializable:
        validations = (start_step + config.test_sample_step - 1) // config.test_sample_step
    test = tf.data.make_one_shot_iterator(input_ops.stream_dataset(
        cache, config.batch_size, split="test", seed=config.seed + 1,
        skip_batches=validations)).get_next()
    return Inputs(train, labeled_batch, matching, test, initializers)


def _build_model(config, inputs, model_config, dtype):
    matching_images = None if inputs.matching is None else inputs.matching["image"]
    # The supervised baseline trains on the labeled batch alone: its D passes
    # stay apart so that a step computes neither G nor the others.
    concat_d = config.method != "supervised"
    if inputs.labeled is None:
        return model_lib.build_model(inputs.train["image"], inputs.train["label"], model_config,
                                     training=True, matching_images=matching_images,
                                     dtype=dtype, concat_d=concat_d)
    return model_lib.build_model(inputs.labeled["image"], inputs.labeled["label"], model_config,
                                 training=True, unlabeled_images=inputs.train["image"],
                                 matching_images=matching_images, dtype=dtype,
                                 concat_d=concat_d)


def _build_data_init(config, cache, model_config, dtype):
    """The paper's data-dependent initialisation ops, on the paper's batch:
    the first INIT_BATCH training images in its order for --data_seed (a
    finite dataset: its iterator winds down at once). The batch is named
    "images" in the caller's name scope, for tests to read."""
    positions = input_ops.paper_order(cache.splits["train"].num_examples,
                                      config.data_seed)[:INIT_BATCH]
    images = tf.data.make_one_shot_iterator(input_ops.stream_dataset(
        cache, len(positions), seed=config.seed + 3, subset=positions).take(1)).get_next()
    images = tf.identity(images["image"], name="images")
    return model_lib.data_init_ops(
        model_config, images, model_lib.sample_noise(config.batch_size, config.n_z), dtype)


def _ancestors(fetches):
    """Every op a session.run of `fetches` (tensors or ops) may run."""
    seen, todo = set(), [getattr(f, "op", f) for f in fetches]
    while todo:
        op = todo.pop()
        if op not in seen:
            seen.add(op)
            todo.extend(t.op for t in op.inputs)
            todo.extend(op.control_inputs)
    return seen


def _check_stream_steps(config, model_config, inputs, fetches):
    """Raises if the steps that draw from a stream (`fetches`: Steps of what
    D's and G's step run) are not those stream_steps lists, from which a
    resumed run positions its streams."""
    trained = Schedule.of(config).networks
    reached = dict((side, _ancestors(getattr(fetches, side))) for side in trained)
    listed = stream_steps(config, model_config)
    for name, batch in (("train", inputs.train), ("labeled", inputs.labeled),
                        ("matching", inputs.matching)):
        if batch is None:
            continue
        drawing = [side for side in trained if batch["image"].op in reached[side]]
        expected = [side for side in trained if name in getattr(listed, side)]
        if drawing and drawing != expected:
            raise RuntimeError("the %s stream is drawn from in the steps of %s, but "
                               "stream_steps says %s (--method %s --arch %s --norm_type %s)"
                               % (name, drawing, expected, config.method, config.arch,
                                  config.norm_type))


def _build_eval(config, inputs, model_config, ema, global_step, image_shape):
    """Validation and samples compute in float32, as evaler.py does."""
    model = model_lib.build_model(inputs.test["image"], inputs.test["label"], model_config,
                                  training=False, d_getter=model_lib.ema_getter(ema))
    eval_losses = build_losses(config, model, global_step, image_shape)
    fixed_z = np.random.RandomState(config.seed).uniform(
        -1, 1, (NUM_SAMPLES, config.n_z)).astype(np.float32)
    sample_images = model_lib.networks(model_config)[1](tf.constant(fixed_z), training=False)
    return Eval(model, eval_losses, sample_images, summaries.encode_grid_png(sample_images))


def build_train_graph(config, info, cache, start_step, labeled=None, platform=None):
    """The whole training graph (a TrainGraph). `labeled`: positions of the
    labeled training examples (semi-supervised), or None for every label.
    `platform` (platforms.Local, Ascend or Cluster; default the CPU) decides
    the shard each process reads, how optimizers are wrapped (all-reduce,
    gradient aggregation, the adapter's loss scaling), the ops that keep
    processes together, and with --precision the networks' dtype (the
    NPU's adapter converts a float32 graph itself)."""
    platform = platform or platforms.Local("cpu")
    dtype = precision.compute_dtype(config.precision, platform.device)
    num_shards, shard_index = platform.shard
    model_config = model_lib.config_from_flags(config._asdict(), info.image_shape,
                                               info.num_classes)
    graph = tf.Graph()
    with graph.as_default(), platform.variable_placement():
        tf.set_random_seed(config.seed)
        global_step = tf.train.get_or_create_global_step()
        # Every draw (z, noise layers, dropout) keyed by the step: a resumed run draws
        # what an uninterrupted one drew; each card or worker draws its own.
        ops.noise_key(global_step, stream=shard_index)
        with tf.name_scope("inputs"):
            inputs = _build_inputs(config, model_config, cache,
                                   platform.stream_start(start_step, global_step),
                                   num_shards, shard_index, labeled)
        with tf.name_scope("model"):
            model = _build_model(config, inputs, model_config, dtype)
        data_init_ops = []
        if start_step == 0 and (config.arch == "paper" or config.minibatch_kernels):
            with tf.name_scope("data_init"):
                data_init_ops = _build_data_init(config, cache, model_config, dtype)
        losses, train_ops, signs, together = _build_steps(config, model, global_step,
                                                          info.image_shape, platform)
        with tf.name_scope("eval"):  # D's moving-average weights when kept
            evaluation = _build_eval(config, inputs, model_config, train_ops.ema, global_step,
                                     info.image_shape)
        model_variables = model_lib.model_variables(tf.global_variables())
        together = together._replace(broadcast=platform.broadcast(tf.global_variables()))
        # At the root name scope: summary tags are the scope plus the name.
        health = platform.summary_health(summaries.health_scalars(model, train_ops))
        clear_status = platform.clear_status_op()
        summary = Steps(*summaries.training_summaries(losses, model, train_ops.learning_rate,
                                                      health))
        _check_stream_steps(config, model_config, inputs, Steps(
            [train_ops.d_train, signs.d, summary.d], [train_ops.g_train, signs.g, summary.g]))
        # Relative paths in the `checkpoint` file keep a run folder movable.
        saver = tf.train.Saver(max_to_keep=config.max_to_keep, save_relative_paths=True)
    return TrainGraph(graph, global_step, inputs, model, losses, train_ops, evaluation,
                      together, data_init_ops, model_variables, summary, saver, signs,
                      clear_status)


def _build_steps(config, model, global_step, image_shape, platform):
    """The losses, D's and G's training ops on the platform's optimizers,
    the signs of divergence each step shows, and what keeps processes
    together (platforms.Together, its broadcast still None)."""
    with tf.name_scope("loss"):
        losses = build_losses(config, model, global_step, image_shape)
    wrapper, loss_scaling = platform.optimizer_wrapper(config)
    with tf.name_scope(names.TRAIN_SCOPE):
        train_ops = train_ops_lib.build_train_ops(losses, global_step,
                                                  optim_config(config, loss_scaling), wrapper)
    with tf.name_scope("divergence"):
        # After D's optimizer step without the moving average: a cluster's workers
        # other than the chief run it so (the average must move once per step).
        signs = Steps(
            divergence.sign_vector(losses.d_loss, train_ops.d_train_without_ema,
                                   train_ops.d_health),
            divergence.sign_vector(losses.g_loss, train_ops.g_train, train_ops.g_health))
    return losses, train_ops, signs, platform.link_steps(global_step, signs, wrapper)
