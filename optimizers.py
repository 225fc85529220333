"""The two Adams: TensorFlow's (the reference's) and the Improved-GAN paper's.

They differ in where epsilon goes. With m_hat = m / (1 - beta1^t) and
v_hat = v / (1 - beta2^t), both bias-corrected moment estimates:

  TensorFlow (tf.train.AdamOptimizer):  lr * m_hat / (sqrt(v_hat) + eps')
      where eps' = 1e-8 / sqrt(1 - beta2^t) -- epsilon outside the root
  the paper (nn.adam_updates):          lr * m_hat / sqrt(v_hat + 1e-8)

The paper's floors the denominator at 1e-4, so a parameter whose gradients
are far below 1e-4 moves by far less than lr; TensorFlow's lets it move by
about lr, whatever the size of its gradients (the ratio m / sqrt(v) is about
1 for a consistent sign). On the paper's MNIST-100 recipe that decides
whether the GAN collapses (README, "Why it collapsed").
"""

import tensorflow.compat.v1 as tf

ADAM_BETA1 = 0.5  # both papers' GAN setting (TF's default 0.9 oscillates more)
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
    raise ValueError("optimizer must be 'adam' or 'paper_adam', got %r" % (kind,))
