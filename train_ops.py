"""How D and G are trained: the optimisers, the gradient clip, the moving
average of D's weights, the paper's historical averaging and learning-rate
schedule, loss scaling:

    train_ops = build_train_ops(losses, global_step, optim_config)   # TrainOps

The two Adams: TensorFlow's (the reference's) and the Improved-GAN paper's.

They differ in where epsilon goes. With m_hat = m / (1 - beta1^t) and
v_hat = v / (1 - beta2^t), both bias-corrected moment estimates:

  TensorFlow (tf.train.AdamOptimizer):  lr * m_hat / (sqrt(v_hat) + eps')
      where eps' = 1e-8 / sqrt(1 - beta2^t) -- epsilon outside the root
  the paper (nn.adam_updates):          lr * m_hat / sqrt(v_hat + 1e-8)

The paper's floors the denominator at 1e-4, so a parameter whose gradients
are far below 1e-4 moves by far less than lr; TensorFlow's lets it move by
about lr, whatever the size of its gradients (the ratio m / sqrt(v) is about
1 for a consistent sign). On the paper's MNIST-100 recipe that decides
whether the GAN collapses (docs/reproducing.md, "Why TensorFlow's Adam collapses it").
"""

import collections

import tensorflow.compat.v1 as tf

import precision
from flag_table import ADAM_BETA1, OPTIMIZERS
from names import D_OPTIMIZE_SCOPE, D_SCOPE, EMA_NAME, G_OPTIMIZE_SCOPE, G_SCOPE

ADAM_BETA2 = 0.999
PAPER_ADAM_EPSILON = 1e-8  # inside the square root


class PaperAdamOptimizer(tf.train.Optimizer):
    """Adam as the paper's nn.adam_updates computes it:

        m <- beta1 m + (1 - beta1) g;   v <- beta2 v + (1 - beta2) g^2
        theta <- theta - lr * m_hat / sqrt(v_hat + epsilon)

    written as theta -= lr_t * m * rsqrt(v + epsilon_t) with
    lr_t = lr sqrt(1 - beta2^t) / (1 - beta1^t) and epsilon_t =
    epsilon (1 - beta2^t), the same numbers with the bias corrections
    folded into two scalars. Its variables are named as tf.train.AdamOptimizer's
    (slots `<var>/<name>` for m and `<var>/<name>_1` for v, non-slot
    beta1_power and beta2_power holding beta^t), so checkpoints of either can
    be resumed with the other. A tf.train.Optimizer, so the NPU's and
    TensorFlow's optimizer wrappers (NPUDistributedOptimizer,
    SyncReplicasOptimizer) wrap it as they wrap Adam. Dense gradients only.
    """

    def __init__(self, learning_rate, beta1=ADAM_BETA1, beta2=ADAM_BETA2,
                 epsilon=PAPER_ADAM_EPSILON, use_locking=False, name="PaperAdam"):
        super(PaperAdamOptimizer, self).__init__(use_locking, name)
        self._lr = learning_rate
        self._beta1 = beta1
        self._beta2 = beta2
        self._epsilon = epsilon
        self._coefficients = None

    def _create_slots(self, var_list):
        first = min(var_list, key=lambda v: v.name)
        self._create_non_slot_variable(initial_value=self._beta1, name="beta1_power",
                                       colocate_with=first)
        self._create_non_slot_variable(initial_value=self._beta2, name="beta2_power",
                                       colocate_with=first)
        for v in var_list:
            self._zeros_slot(v, "m", self._name)
            self._zeros_slot(v, "v", self._name)

    def _powers(self):
        graph = tf.get_default_graph()
        return (self._get_non_slot_variable("beta1_power", graph=graph),
                self._get_non_slot_variable("beta2_power", graph=graph))

    def _prepare(self):
        beta1_power, beta2_power = self._powers()
        lr = tf.convert_to_tensor(self._lr, tf.float32, name="learning_rate")
        beta2_correction = 1.0 - tf.identity(beta2_power)
        self._coefficients = (
            lr * tf.sqrt(beta2_correction) / (1.0 - tf.identity(beta1_power)),  # lr_t
            self._epsilon * beta2_correction)  # epsilon_t

    def _apply(self, grad, var, resource):
        # Seven elementwise passes over each weight instead of twelve: the
        # fused ApplyAdam with a zero learning rate updates m and v exactly as
        # Adam does (m += (1 - beta1)(g - m), v += (1 - beta2)(g^2 - v)) and
        # leaves var as it is; the step itself is one more fused op.
        lr_t, epsilon_t = self._coefficients
        m, v = self.get_slot(var, "m"), self.get_slot(var, "v")
        grad = tf.cast(grad, var.dtype.base_dtype)
        zero = tf.zeros([], var.dtype.base_dtype)
        coefficients = dict(beta1_power=zero, beta2_power=zero, lr=zero,
                            beta1=tf.constant(self._beta1, var.dtype.base_dtype),
                            beta2=tf.constant(self._beta2, var.dtype.base_dtype),
                            epsilon=tf.ones([], var.dtype.base_dtype), grad=grad,
                            use_locking=self._use_locking)
        if resource:
            moments = tf.raw_ops.ResourceApplyAdam(var=var.handle, m=m.handle, v=v.handle,
                                                   **coefficients)
        else:
            moments = tf.raw_ops.ApplyAdam(var=var, m=m, v=v, **coefficients)
        with tf.control_dependencies([moments]):
            m_t, v_t = m.read_value(), v.read_value()
        step = m_t * tf.rsqrt(v_t + epsilon_t)
        if resource:
            return tf.raw_ops.ResourceApplyGradientDescent(
                var=var.handle, alpha=lr_t, delta=step, use_locking=self._use_locking)
        return tf.raw_ops.ApplyGradientDescent(var=var, alpha=lr_t, delta=step,
                                               use_locking=self._use_locking).op

    def _apply_dense(self, grad, var):
        return self._apply(grad, var, resource=False)

    def _resource_apply_dense(self, grad, handle):
        return self._apply(grad, handle, resource=True)

    def _apply_sparse(self, grad, var):
        raise NotImplementedError("PaperAdamOptimizer takes dense gradients only")

    def _finish(self, update_ops, name_scope):
        beta1_power, beta2_power = self._powers()
        with tf.control_dependencies(update_ops):
            with tf.colocate_with(beta1_power):
                update_beta1 = tf.assign(beta1_power, beta1_power * self._beta1,
                                         use_locking=self._use_locking)
                update_beta2 = tf.assign(beta2_power, beta2_power * self._beta2,
                                         use_locking=self._use_locking)
        return tf.group(*(list(update_ops) + [update_beta1, update_beta2]), name=name_scope)


def make_optimizer(kind, learning_rate, name, beta1=ADAM_BETA1):
    """kind "adam" (tf.train.AdamOptimizer, epsilon 1e-8 outside the root)
    or "paper_adam" (PaperAdamOptimizer)."""
    if kind == "adam":
        return tf.train.AdamOptimizer(learning_rate, beta1=beta1, name=name)
    if kind == "paper_adam":
        return PaperAdamOptimizer(learning_rate, beta1=beta1, name=name)
    raise ValueError("optimizer must be one of %s, got %r" % (", ".join(OPTIMIZERS), kind))


OptimConfig = collections.namedtuple(
    "OptimConfig", "learning_rate_d learning_rate_g beta1 clip_norm lr_decay_start total_steps "
                   "historical_weight ema_decay loss_scaling optimizer")
OptimConfig.__new__.__defaults__ = (0, 0, 0.0, 0.0, False, "adam")
OptimConfig.__doc__ = """Adam learning rates and beta1, the global-norm clip
(0: none); optimizer: "adam" (TensorFlow's) or "paper_adam" (PaperAdamOptimizer above);
lr_decay_start / total_steps: linear decay of both rates to 0 between these
steps (0: constant); historical_weight: weight of the historical-averaging
penalty (0: off); ema_decay: decay of the moving average of D's weights
kept for evaluation (0: none); loss_scaling: dynamic loss scaling of both
losses (float16 training; see precision.DynamicLossScale)."""


# The paper's historical averaging and learning-rate schedule.

HISTORY_SCOPE = "HistoricalAverage"


def historical_average(variables, name):
    """The paper's historical averaging: a penalty sum_i ||theta_i - mean_t theta_i||^2
    pulling each parameter towards the mean of its past values.

    Returns (penalty scalar, update op). The update folds the current values
    into the running means; run it after each optimisation step. The penalty
    is 0 until the first update (no history yet).
    """
    with tf.variable_scope(HISTORY_SCOPE + "/" + name):
        count = tf.get_variable("count", [], initializer=tf.zeros_initializer(),
                                trainable=False)
        means = [tf.get_variable(v.op.name, v.shape, initializer=tf.zeros_initializer(),
                                 trainable=False) for v in variables]
    penalty = tf.add_n([tf.reduce_sum(tf.square(v - m)) for v, m in zip(variables, means)])
    penalty *= tf.cast(count > 0, tf.float32)
    updates = [tf.assign_add(m, (v - m) / (count + 1.0)) for v, m in zip(variables, means)]
    with tf.control_dependencies(updates):
        update = tf.assign_add(count, 1.0)
    return penalty, update


def learning_rate_schedule(base_rate, global_step, decay_start, total_steps):
    """The paper's CIFAR/SVHN schedule: constant, then linear decay to 0 from
    step decay_start to total_steps (their 1200 epochs decay from epoch 800:
    lr * min(3 - epoch / 400, 1)). decay_start <= 0 keeps it constant."""
    if decay_start <= 0 or decay_start >= total_steps:
        return tf.constant(base_rate, tf.float32)
    step = tf.cast(global_step, tf.float32)
    fraction = (float(total_steps) - step) / float(total_steps - decay_start)
    return base_rate * tf.clip_by_value(fraction, 0.0, 1.0)


# Train ops.
TrainOps = collections.namedtuple(
    "TrainOps", "d_train g_train d_vars g_vars ema sync_averages learning_rate d_grad_norm "
                "g_grad_norm d_train_without_ema d_health g_health")
TrainOps.__doc__ = """d_train / g_train: one optimisation step of D / G, each
incrementing the global step and running its batch-norm updates (and the
historical-average and moving-average updates when on). ema: the
tf.train.ExponentialMovingAverage of D's trainable variables, or None.
sync_averages: sets the moving averages to the current weights (run after
any initialisation that changes the weights). learning_rate: D's current rate.
d_grad_norm / g_grad_norm: the global norm of each network's gradients
before clipping (fetching one computes that network's gradients).
d_train_without_ema: d_train without the moving-average update, for the
workers of a cluster other than the chief (the average lives on the
parameter servers and must move once per step, not once per worker).
d_health / g_health: each step's precision.StepHealth when it is
loss-scaled (float16 here, or the NPU's adapter), else None."""


def split_variables():
    """(D's trainable variables, G's), selected by scope; raises if any
    trainable variable belongs to neither."""
    trainable = tf.trainable_variables()
    d_vars = [v for v in trainable if v.name.startswith(D_SCOPE + "/")]
    g_vars = [v for v in trainable if v.name.startswith(G_SCOPE + "/")]
    left = sorted(set(v.name for v in trainable) - set(v.name for v in d_vars + g_vars))
    if left:
        raise ValueError("trainable variables outside %s/ and %s/: %s" % (D_SCOPE, G_SCOPE, left))
    return d_vars, g_vars


def _minimize(loss, variables, learning_rate, beta1, clip_norm, global_step, update_ops, name,
              wrap_optimizer=None, historical_weight=0.0, loss_scaling=False,
              optimizer_kind="adam"):
    """One optimisation step of `variables` on `loss`; returns (the step op,
    the global norm of the gradients before clipping, a precision.StepHealth
    or None when the step is not loss-scaled). A wrapped optimizer that
    scales the loss itself (the NPU's) reports its StepHealth as `health`."""
    loss_scale = precision.DynamicLossScale(name + "_loss_scale") if loss_scaling else None
    with tf.name_scope(name):
        history_update = None
        if historical_weight > 0:
            penalty, history_update = historical_average(variables, name)
            loss = loss + historical_weight * penalty
        optimizer = make_optimizer(optimizer_kind, learning_rate, name + "_adam", beta1)
        if wrap_optimizer is not None:
            optimizer = wrap_optimizer(optimizer)
        if loss_scale is not None:
            loss = loss_scale.scaled(loss)
        grads, grad_norm, finite = _gradients(optimizer, loss, variables, loss_scale, clip_norm)
        # A wrapper's apply_gradients may also build ops that run apart from the
        # step (SyncReplicasOptimizer's init ops and the chief's queue runner,
        # which applies the aggregated gradients): under the updates' control
        # dependency every run of those would read batches and move the
        # batch-norm statistics again. So with a wrapper they are grouped after.
        with tf.control_dependencies(update_ops if wrap_optimizer is None else []):
            if loss_scale is None:
                step = optimizer.apply_gradients(zip(grads, variables), global_step=global_step)
            else:  # an overflowing step changes no weight, only the scale (and the step count)
                applied = precision.apply_if_finite(
                    finite, lambda: optimizer.apply_gradients(zip(grads, variables)))
                with tf.control_dependencies([applied, loss_scale.update(finite)]):
                    step = tf.group(tf.assign_add(global_step, 1))
        if wrap_optimizer is not None:
            step = tf.group(step, *update_ops)
        health = getattr(optimizer, "health", None)
        if loss_scale is not None:
            with tf.control_dependencies([step]):
                health = precision.StepHealth(tf.logical_not(finite),
                                              tf.identity(loss_scale.scale))
        if history_update is None:
            return step, grad_norm, health
        with tf.control_dependencies([step]):
            return tf.group(history_update), grad_norm, health


def _gradients(optimizer, loss, variables, loss_scale, clip_norm):
    """`loss`'s gradients for `variables`, unscaled (loss_scale: a
    precision.DynamicLossScale or None) and clipped to a global norm of
    clip_norm (0: not). Returns (gradients, their global norm before
    clipping, whether they are all finite: a bool tensor, None without a
    loss scale)."""
    # GATE_GRAPH: every gradient is computed before any weight changes. The
    # variables are updated in place, so without a gate an update can run
    # while a gradient still to be computed reads the weight (the matmul
    # gradient of the layer below, the weight norm's); that corrupts
    # gradients now and then, and without clipping the GAN collapses
    # within a few thousand steps. TensorFlow's default, GATE_OP, gates
    # each op's gradients together instead, which also computes a
    # matmul's gradient for its input where nothing uses it (D's first
    # layer, D's weights in G's step): 16-19% more FLOPs.
    grads_and_vars = optimizer.compute_gradients(
        loss, var_list=variables, gate_gradients=tf.train.Optimizer.GATE_GRAPH)
    grads = [g for g, _ in grads_and_vars]
    finite = None
    if loss_scale is not None:
        grads, finite = loss_scale.unscale(grads)
    if clip_norm > 0:
        grads, grad_norm = tf.clip_by_global_norm(grads, clip_norm)
    else:
        grad_norm = tf.global_norm(grads)
    return grads, grad_norm, finite


def build_train_ops(losses, global_step, config, wrap_optimizer=None):
    """Adam (config.optimizer, beta1 from config) on D's and G's losses,
    gradients clipped to a global norm of config.clip_norm (0: not); each op
    also runs the batch-norm moving-average updates made so far in the graph
    (D's from real images, G's).
    `wrap_optimizer` (e.g. the NPU's all-reducing NPUDistributedOptimizer)
    wraps both Adam optimizers."""
    d_vars, g_vars = split_variables()
    updates = tf.get_collection(tf.GraphKeys.UPDATE_OPS)

    def target(update):  # the variable an update assigns to, e.g. Discriminator/.../moving_mean
        op = update if isinstance(update, tf.Operation) else update.op
        return op.inputs[0].name
    d_updates = [u for u in updates if target(u).startswith(D_SCOPE + "/")]
    g_updates = [u for u in updates if target(u).startswith(G_SCOPE + "/")]
    left = sorted(set(target(u) for u in updates) - set(target(u) for u in d_updates + g_updates))
    if left:
        raise ValueError("batch-norm updates outside %s/ and %s/: %s" % (D_SCOPE, G_SCOPE, left))
    # Both steps keep every moving average current: D's statistics come from the
    # real batch, which is there on G steps too, and G's from its own output.
    rates = [learning_rate_schedule(rate, global_step, config.lr_decay_start,
                                    config.total_steps)
             for rate in (config.learning_rate_d, config.learning_rate_g)]
    both = d_updates + g_updates
    d_train, d_grad_norm, d_health = _minimize(
        losses.d_loss, d_vars, rates[0], config.beta1, config.clip_norm, global_step, both,
        D_OPTIMIZE_SCOPE, wrap_optimizer, config.historical_weight, config.loss_scaling,
        config.optimizer)
    g_train, g_grad_norm, g_health = _minimize(
        losses.g_loss, g_vars, rates[1], config.beta1, config.clip_norm, global_step, both,
        G_OPTIMIZE_SCOPE, wrap_optimizer, config.historical_weight, config.loss_scaling,
        config.optimizer)
    ema, sync = None, tf.no_op(name="sync_averages")
    d_train_without_ema = d_train
    if config.ema_decay > 0:
        # num_updates warms the average up: decay min(ema_decay, (1 + t) / (10 + t)),
        # so early checkpoints are not dominated by the initial weights.
        ema = tf.train.ExponentialMovingAverage(config.ema_decay, num_updates=global_step,
                                                name=EMA_NAME)
        with tf.control_dependencies([d_train]):
            d_train = ema.apply(d_vars)
        sync = tf.group(*[tf.assign(ema.average(v), v) for v in d_vars], name="sync_averages")
    return TrainOps(d_train, g_train, d_vars, g_vars, ema, sync, rates[0], d_grad_norm,
                    g_grad_norm, d_train_without_ema, d_health, g_health)
