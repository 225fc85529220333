"""The training graph, built once per process in named stages:

    graph = build_train_graph(config, info, cache, start_step, ...)   # TrainGraph
    graph.inputs     the batches the steps read (tf.data streams)
    graph.model      model.build_model on them: D's logits and features, G's images
    graph.losses     losses.py's, for --method
    graph.train_ops  train_ops.py's D and G steps
    graph.eval       the validation losses on a test batch, the sample grid

plus what a run needs around them: the saver, the summary op, the ops that
keep several cards or workers together. train_loop.py runs it.
"""

import collections
import contextlib

import numpy as np
import tensorflow.compat.v1 as tf

import ascend
import cluster
import divergence
import input_ops
import losses as losses_lib
import model as model_lib
import names
import ops
import paper_nets
import precision
import summaries
import train_ops as train_ops_lib
from errors import ConfigError

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

Together = collections.namedtuple("Together", "broadcast agreement sync progress")
Together.__doc__ = """What keeps several processes in step, each None when unused.
Ascend cards: broadcast (rank 0's weights to every card), agreement
(ascend.agreement_ops: the start step and the per-step stop votes). A
TensorFlow cluster: sync (cluster.SyncWrapper aggregating the workers'
gradients), progress (cluster.Progress: which step each worker is at)."""

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

Steps = collections.namedtuple("Steps", "d g")
Steps.__doc__ = "One value for D's training step and one for G's."


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


def check_image_shape(config, info):
    """The paper's networks take 28x28x1 or 32x32x3 images only."""
    if config.arch != "paper":
        return
    try:
        paper_nets.check_image_shape(info.image_shape)
    except ValueError as e:
        raise ConfigError("%s: %s" % (info.name, e))


def check_batch_size(config, cache):
    """Every batch has config.batch_size examples: both splits must hold as many."""
    for split in ("train", "test"):
        if cache.splits[split].num_examples < config.batch_size:
            raise ConfigError("--batch_size %d is larger than the %d examples of the %s split"
                              % (config.batch_size, cache.splits[split].num_examples, split))


def labeled_subset(config, info, cache):
    """Positions (in the training split) and ids of the labeled examples for
    --num_labeled, or (None, None) when every label is used."""
    if not config.num_labeled:
        return None, None
    train = cache.splits["train"]
    if config.num_labeled > train.num_examples:
        raise ConfigError("--num_labeled %d is more than the %d training examples of %s"
                          % (config.num_labeled, train.num_examples, info.name))
    try:
        positions = input_ops.select_labeled(train.labels, config.num_labeled,
                                             info.num_classes, config.data_seed)
    except ValueError as e:
        raise ConfigError("--num_labeled %d on %s: %s" % (config.num_labeled, info.name, e))
    ids = [info.splits["train"][p] for p in positions]
    return positions, ids


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


def trained_networks(config):
    """The networks whose steps a run takes: ("d",) for the supervised
    baseline, which trains no G; ("d", "g") otherwise."""
    return ("d",) if config.method == "supervised" else ("d", "g")


def steps_before(step, config):
    """Steps(d, g): how many of the steps before `step` (a number or an
    integer tensor) train D and G (train_loop.trains_g's schedule: one D
    step, then --update_rate G steps; D's alone in the supervised baseline)."""
    if config.method == "supervised":
        return Steps(step, 0 * step)
    cycle = config.update_rate + 1
    d_steps = (step + cycle - 1) // cycle
    return Steps(d_steps, step - d_steps)


def _build_inputs(config, model_config, cache, start_step, num_shards, shard_index, labeled,
                  initializable):
    """The run's streams, each starting at the batch it would be at in step
    `start_step` of an uninterrupted run (a number, or on a cluster the
    global step, read when the iterators are initialised): a stream moves
    only in the steps that draw from it (stream_steps), and the validation
    stream once every --test_sample_step steps."""
    initializers = []
    drawing, before = stream_steps(config, model_config), steps_before(start_step, config)

    def stream(batch_size, seed, name, **kwargs):
        skip = sum(count for steps, count in zip(drawing, before) if name in steps)
        dataset = input_ops.train_dataset(
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
    if not isinstance(start_step, (tf.Tensor, tf.Variable)):
        validations = (start_step + config.test_sample_step - 1) // config.test_sample_step
    test = tf.data.make_one_shot_iterator(input_ops.train_dataset(
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
    images = tf.data.make_one_shot_iterator(input_ops.train_dataset(
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
    trained = trained_networks(config)
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


def build_train_graph(config, info, cache, start_step, rank=None, workers=None, labeled=None,
                      device="cpu"):
    """The whole training graph (a TrainGraph). `labeled`: positions of the
    labeled training examples (semi-supervised), or None for every label.
    With rank.size > 1 (Ascend cards over HCCL) each card reads its shard,
    gradients are all-reduced, and together.broadcast sets every card to rank
    0's weights. With a TensorFlow cluster (`workers`, a cluster.ClusterInfo)
    variables live on the parameter servers, each worker reads its shard, and
    together.sync aggregates gradients. `device` decides the networks' dtype
    with --precision (the NPU's adapter converts a float32 graph itself)."""
    dtype = precision.compute_dtype(config.precision, device)
    distributed = rank is not None and rank.size > 1
    num_shards, shard_index = (rank.size, rank.rank) if distributed else (1, 0)
    if workers is not None:
        num_shards, shard_index = workers.num_workers, workers.worker_index
    model_config = model_lib.config_from_flags(config._asdict(), info.image_shape,
                                               info.num_classes)
    graph = tf.Graph()
    with graph.as_default(), (tf.device(cluster.device_setter(workers)) if workers
                              else contextlib.nullcontext()):
        tf.set_random_seed(config.seed)
        global_step = tf.train.get_or_create_global_step()
        # Every draw (z, noise layers, dropout) keyed by the step: a resumed run draws
        # what an uninterrupted one drew; each card or worker draws its own.
        ops.noise_key(global_step, stream=shard_index)
        with tf.name_scope("inputs"):
            # On a cluster a task may join a run in progress (a restarted worker or
            # chief): its streams start at the global step the iterators read when
            # initialised, after the chief has restored or initialised it.
            inputs = _build_inputs(config, model_config, cache,
                                   start_step if workers is None else global_step,
                                   num_shards, shard_index, labeled,
                                   initializable=workers is not None)
        with tf.name_scope("model"):
            model = _build_model(config, inputs, model_config, dtype)
        data_init_ops = []
        if start_step == 0 and (config.arch == "paper" or config.minibatch_kernels):
            with tf.name_scope("data_init"):
                data_init_ops = _build_data_init(config, cache, model_config, dtype)
        with tf.name_scope("loss"):
            losses = build_losses(config, model, global_step, info.image_shape)
        wrap = sync = progress = agreement = None
        loss_scaling = precision.needs_loss_scale(config.precision)
        if device == "npu":  # the adapter's all-reduce and loss scaling
            wrap = ascend.optimizer_wrapper(
                rank.size if rank else 1, precision.npu_loss_scaling(config.precision_mode),
                precision.LOSS_SCALE_INITIAL, precision.LOSS_SCALE_PERIOD)
            loss_scaling = False
        if workers is not None:
            wrap = sync = cluster.SyncWrapper(workers.num_workers)
        with tf.name_scope(names.TRAIN_SCOPE):
            train_ops = train_ops_lib.build_train_ops(losses, global_step,
                                                      optim_config(config, loss_scaling), wrap)
        with tf.name_scope("divergence"):
            # After D's optimizer step without the moving average: a cluster's workers
            # other than the chief run it so (the average must move once per step).
            signs = Steps(
                divergence.sign_vector(losses.d_loss, train_ops.d_train_without_ema,
                                       train_ops.d_health),
                divergence.sign_vector(losses.g_loss, train_ops.g_train, train_ops.g_health))
        if distributed:
            agreement = ascend.agreement_ops(global_step, signs.d, signs.g)
        if workers is not None:
            with tf.name_scope("cluster"):
                sync.build_catch_up()
                progress = cluster.Progress(workers, global_step)
        with tf.name_scope("eval"):  # D's moving-average weights when kept
            evaluation = _build_eval(config, inputs, model_config, train_ops.ema, global_step,
                                     info.image_shape)
        model_variables = model_lib.model_variables(tf.global_variables())
        broadcast = ascend.broadcast_variables_op(tf.global_variables()) if distributed else None
        # At the root name scope: summary tags are the scope plus the name.
        health = summaries.health_scalars(model, train_ops)
        if device == "npu":
            # A gradient norm in a summary runs that network's loss-scaled backward pass
            # inside the other network's step: on the 910 an overflow there raises the
            # device-wide float status and skips the other step. (On several cards,
            # rank 0 alone would also all-reduce those gradients, and the cards hang.)
            health = dict((tag, v) for tag, v in health.items() if "grad_norm" not in tag)
        clear_status = ascend.clear_float_status_op() if device == "npu" else None
        summary = Steps(*summaries.training_summaries(losses, model, train_ops.learning_rate,
                                                      health))
        _check_stream_steps(config, model_config, inputs, Steps(
            [train_ops.d_train, signs.d, summary.d], [train_ops.g_train, signs.g, summary.g]))
        # Relative paths in the `checkpoint` file keep a run folder movable.
        saver = tf.train.Saver(max_to_keep=config.max_to_keep, save_relative_paths=True)
    return TrainGraph(graph, global_step, inputs, model, losses, train_ops, evaluation,
                      Together(broadcast, agreement, sync, progress), data_init_ops,
                      model_variables, summary, saver, signs, clear_status)
