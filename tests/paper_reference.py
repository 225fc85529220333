"""The paper's MNIST training step, written again from its own code for
comparing with ours step for step (tests/test_paper_equivalence.py).

openai/improved-gan, mnist_svhn_cifar10/train_mnist_feature_matching.py with
the parts of nn.py it uses, in a TensorFlow graph of its own. Nothing here
comes from the project's modules. Every random number is an input, so that
it can be given what a step of ours drew:

  D (nn.DenseLayer x 6, nn.GaussianNoiseLayer): x in [0, 1], 784
    -> + 0.3 n0 -> [W = theta * scale / ||theta||_col, a = h W + b, relu,
    + 0.5 n_i] for 1000, 500, 250, 250, 250 units -> W, a = h W + b (10).
    theta ~ N(0, 0.1); scale trained in the last layer only (train_scale);
    no epsilon under the root. The feature G matches is layers[-3]: the last
    250-unit layer after its relu, before its noise.
  Data-dependent init (DenseLayer.get_output_for with init=True, noise on):
    a = h W; ma = mean(a); a -= ma; stdv = sqrt(mean(a^2)); a /= stdv;
    scale <- scale / stdv, b <- -ma / stdv, each layer seeing the layers
    below as initialised. G has no init.
  G: z ~ U(0, 1)^100 -> LL.DenseLayer 500 (Glorot, its bias removed by
    nn.batch_norm) -> nn.BatchNormLayer(g=None): (h - mean) / sqrt(1e-6 +
    var) + b, batch statistics -> softplus -> the same -> nn.l2normalize(
    LL.DenseLayer 784): W * W_scale / sqrt(1e-6 + ||W||^2_col) + b -> sigmoid.
  Losses: l_lab = out_lab[y]; loss_lab = -mean(l_lab) + mean(LSE(out_lab));
    loss_unl = -0.5 mean(LSE(out_unl)) + 0.5 mean(softplus(LSE(out_unl)))
               + 0.5 mean(softplus(LSE(out_fake)));
    D minimises loss_lab + loss_unl (unlabeled_weight 1);
    loss_gen = mean((mean f(G(z')) - mean f(x_unl2))^2), a fresh z', a
    second unlabeled batch and fresh noise in D.
  nn.adam_updates(lr 0.003, mom1 0.5, mom2 0.999): t starts at 1, per
    network; v = mom1 v + (1 - mom1) g, mg = mom2 mg + (1 - mom2) g^2,
    p -= lr (v / (1 - mom1^t)) / sqrt(mg / (1 - mom2^t) + 1e-8); every new
    value computed from the old ones (Theano's updates), then assigned.
"""

import collections

import numpy as np
import tensorflow.compat.v1 as tf

D_UNITS = (1000, 500, 250, 250, 250, 10)
G_UNITS = (500, 500)
INPUT_SIGMA, HIDDEN_SIGMA = 0.3, 0.5
LR, MOM1, MOM2 = 0.003, 0.5, 0.999

Noise = collections.namedtuple("Noise", "input hidden")
Noise.__doc__ = """N(0, 1) samples of one pass through D: input [B, 784],
hidden: five [B, units] (the paper scales them by 0.3 and 0.5)."""

Pass = collections.namedtuple("Pass", "noise masks")
Pass.__doc__ = """What one pass through D is given: its Noise, and masks,
five [B, units] arrays of 1.0 where a hidden unit's pre-activation is
positive and 0.0 elsewhere: the relu's decision. The caller passes
(pre-activations > 0), or another implementation's decisions: in float32,
a pre-activation within rounding of 0 may fall on either side, and one
such unit changes that step's gradients of a whole column of weights
(the caller checks that the decisions it passes are those, see
d_step's return value)."""


def log_sum_exp(x):
    """nn.log_sum_exp over axis 1."""
    m = tf.reduce_max(x, axis=1)
    return m + tf.log(tf.reduce_sum(tf.exp(x - m[:, None]), axis=1))


class PaperMNIST(object):
    """The paper's networks, losses and Adam for B-image batches of P pixels.

    D parameters (theta, scale, b) per layer, G parameters (W1, b1, W2, b2,
    W3, W_scale3, b3); `load` sets them, `values` reads them; `init`,
    `d_step` and `g_step` run the paper's functions init_param,
    train_batch_disc and train_batch_gen on given batches and noise."""

    def __init__(self, batch=100, pixels=784, n_z=100, num_classes=10):
        self.batch, self.pixels, self.n_z = batch, pixels, n_z
        self.graph = tf.Graph()
        with self.graph.as_default():
            self._build(num_classes)
            self.sess = tf.Session(graph=self.graph)
            self.sess.run(tf.global_variables_initializer())

    # The graph.

    def _variable(self, name, shape):
        return tf.Variable(tf.zeros(shape), name=name)

    def _pass_inputs(self, name, n):
        """A Pass of placeholders for n examples."""
        hidden = lambda what: [tf.placeholder(tf.float32, [n, u], "%s_%s%d" % (name, what, i))
                               for i, u in enumerate(D_UNITS[:-1])]
        return Pass(Noise(tf.placeholder(tf.float32, [n, self.pixels], name + "_n0"),
                          hidden("noise")), hidden("mask"))

    def _d(self, x, given, init=False):
        """(logits, features, init updates, hidden pre-activations) of D on
        x in [0, 1]; `given` a Pass of placeholders."""
        noise = given.noise
        h = x + INPUT_SIGMA * noise.input
        features, updates, pre = None, [], []
        for i, (theta, scale, b) in enumerate(self.d_layers):
            w = theta * (scale / tf.sqrt(tf.reduce_sum(tf.square(theta), axis=0)))[None, :]
            a = tf.matmul(h, w)
            if init:
                ma = tf.reduce_mean(a, axis=0)
                a = a - ma[None, :]
                stdv = tf.sqrt(tf.reduce_mean(tf.square(a), axis=0))
                a = a / stdv[None, :]
                updates += [(scale, scale / stdv), (b, -ma / stdv)]
            else:
                a = a + b[None, :]
            if i == len(self.d_layers) - 1:
                return a, features, updates, pre
            pre.append(a)
            h = a * given.masks[i]  # nn.relu, T.maximum(a, 0), where the mask is a > 0
            if i == len(self.d_layers) - 2:
                features = h
            h = h + HIDDEN_SIGMA * noise.hidden[i]

    def _g(self, z):
        """Images in [0, 1] of z in [0, 1]."""
        h = z
        for w, b in ((self.g["W1"], self.g["b1"]), (self.g["W2"], self.g["b2"])):
            h = tf.matmul(h, w)
            mean = tf.reduce_mean(h, axis=0)
            centered = h - mean[None, :]
            var = tf.reduce_mean(tf.square(centered), axis=0)
            h = tf.nn.softplus(centered / tf.sqrt(1e-6 + var)[None, :] + b[None, :])
        w3 = self.g["W3"] * (self.g["W_scale3"] / tf.sqrt(
            1e-6 + tf.reduce_sum(tf.square(self.g["W3"]), axis=0)))[None, :]
        return tf.sigmoid(tf.matmul(h, w3) + self.g["b3"][None, :])

    def _adam(self, params, cost, name):
        """nn.adam_updates: the assign op, and (t, [(v, mg)]) per parameter."""
        grads = tf.gradients(cost, params)
        t = tf.Variable(1.0, name=name + "_t")
        moments, news = [], []
        for p, g in zip(params, grads):
            v = self._variable(p.op.name + "_v", p.shape)
            mg = self._variable(p.op.name + "_mg", p.shape)
            v_t = MOM1 * v + (1.0 - MOM1) * g
            mg_t = MOM2 * mg + (1.0 - MOM2) * tf.square(g)
            v_hat = v_t / (1.0 - MOM1 ** t)
            mg_hat = mg_t / (1.0 - MOM2 ** t)
            news += [(v, v_t), (mg, mg_t), (p, p - LR * v_hat / tf.sqrt(mg_hat + 1e-8))]
            moments.append((v, mg))
        news.append((t, t + 1.0))
        return _assign_all(news), t, moments

    def _build(self, num_classes):
        self.d_layers = [(self._variable("theta%d" % i, [n_in, n_out]),
                          self._variable("scale%d" % i, [n_out]),
                          self._variable("bias%d" % i, [n_out]))
                         for i, (n_in, n_out) in enumerate(zip((self.pixels,) + D_UNITS[:-1],
                                                               D_UNITS))]
        shapes = {"W1": [self.n_z, G_UNITS[0]], "b1": [G_UNITS[0]],
                  "W2": [G_UNITS[0], G_UNITS[1]], "b2": [G_UNITS[1]],
                  "W3": [G_UNITS[1], self.pixels], "W_scale3": [self.pixels],
                  "b3": [self.pixels]}
        self.g = collections.OrderedDict((k, self._variable(k, s)) for k, s in shapes.items())
        # LL.get_all_params(layers, trainable=True): theta and b of every
        # layer, the scale of the last only
        self.d_params = [v for theta, scale, b in self.d_layers for v in (theta, b)] + \
            [self.d_layers[-1][1]]
        self.g_params = list(self.g.values())

        n = self.batch
        self.passes = {"init": self._pass_inputs("init", None)}
        self.passes.update((key, self._pass_inputs(key, n))
                           for key in ("lab", "unl", "fake", "real2", "fake2"))
        self.pre = {}  # the hidden pre-activations of each pass

        def d(key, x, init=False):
            logits, features, updates, self.pre[key] = self._d(x, self.passes[key], init)
            return updates if init else (logits, features)

        self.init_x = tf.placeholder(tf.float32, [None, self.pixels], "init_x")
        self.init_op = _assign_all(d("init", self.init_x, init=True))

        self.x_lab = tf.placeholder(tf.float32, [n, self.pixels], "x_lab")
        self.labels = tf.placeholder(tf.int32, [n], "labels")
        self.x_unl = tf.placeholder(tf.float32, [n, self.pixels], "x_unl")
        self.z = tf.placeholder(tf.float32, [n, self.n_z], "z")
        out_lab = d("lab", self.x_lab)[0]
        out_unl = d("unl", self.x_unl)[0]
        out_fake = d("fake", self._g(self.z))[0]
        l_lab = tf.reduce_sum(out_lab * tf.one_hot(self.labels, num_classes), axis=1)
        l_unl = log_sum_exp(out_unl)
        self.loss_lab = -tf.reduce_mean(l_lab) + tf.reduce_mean(log_sum_exp(out_lab))
        self.loss_unl = (-0.5 * tf.reduce_mean(l_unl)
                         + 0.5 * tf.reduce_mean(tf.nn.softplus(l_unl))
                         + 0.5 * tf.reduce_mean(tf.nn.softplus(log_sum_exp(out_fake))))
        self.d_train, self.d_t, self.d_moments = self._adam(
            self.d_params, self.loss_lab + self.loss_unl, "d")

        self.x_unl2 = tf.placeholder(tf.float32, [n, self.pixels], "x_unl2")
        self.z2 = tf.placeholder(tf.float32, [n, self.n_z], "z2")
        f_gen = d("fake2", self._g(self.z2))[1]
        f_real = d("real2", self.x_unl2)[1]
        self.loss_gen = tf.reduce_mean(tf.square(
            tf.reduce_mean(f_gen, axis=0) - tf.reduce_mean(f_real, axis=0)))
        self.g_train, self.g_t, self.g_moments = self._adam(self.g_params, self.loss_gen, "g")

    # Running it.

    def named_variables(self):
        """{name: variable}: D's theta<i>, scale<i>, bias<i>; G's by its keys;
        the Adam moments as <name>_v / <name>_mg; the step counters d_t, g_t."""
        names = {}
        for i, layer in enumerate(self.d_layers):
            for key, variable in zip(("theta", "scale", "bias"), layer):
                names["%s%d" % (key, i)] = variable
        names.update(self.g)
        for params, moments in ((self.d_params, self.d_moments),
                                (self.g_params, self.g_moments)):
            for p, (v, mg) in zip(params, moments):
                names[p.op.name + "_v"], names[p.op.name + "_mg"] = v, mg
        names["d_t"], names["g_t"] = self.d_t, self.g_t
        return names

    def load(self, values):
        """Sets variables from {name: array} (names as named_variables)."""
        named = self.named_variables()
        for name, value in values.items():
            named[name].load(np.asarray(value, np.float32), self.sess)

    def values(self):
        return self.sess.run(self.named_variables())

    def _run(self, feed, given, fetches, update):
        """Runs `fetches` and the hidden pre-activations of the passes in
        `given` ({key: Pass of arrays}), then `update`, on the same inputs.
        Returns (fetched values, {key: pre-activations})."""
        for key, arrays in given.items():
            placeholders = self.passes[key]
            feed[placeholders.noise.input] = arrays.noise.input
            feed.update(zip(placeholders.noise.hidden, arrays.noise.hidden))
            feed.update(zip(placeholders.masks, arrays.masks))
        values, pre = self.sess.run([fetches, dict((k, self.pre[k]) for k in given)], feed)
        self.sess.run(update, feed)
        return values, pre

    def init(self, x, given):
        """init_param(trainx[:500]): x [N, P] in [0, 1], `given` the Pass of
        its N rows. Returns the pre-activations (standardised)."""
        return self._run({self.init_x: x}, {"init": given}, [], self.init_op)[1]["init"]

    def d_step(self, x_lab, labels, x_unl, z, given):
        """train_batch_disc; `given` {"lab", "unl", "fake": Pass}, z in [0, 1].
        Returns ([loss_lab, loss_unl] before the update, pre-activations)."""
        feed = {self.x_lab: x_lab, self.labels: labels, self.x_unl: x_unl, self.z: z}
        return self._run(feed, given, [self.loss_lab, self.loss_unl], self.d_train)

    def g_step(self, x_unl2, z, given):
        """train_batch_gen; `given` {"real2", "fake2": Pass}. Returns (loss_gen
        before the update, pre-activations)."""
        return self._run({self.x_unl2: x_unl2, self.z2: z}, given, self.loss_gen, self.g_train)


def _assign_all(news):
    """Theano's updates: every new value from the old ones, then all assigned."""
    with tf.control_dependencies([new for _, new in news]):
        return tf.group(*[tf.assign(variable, new) for variable, new in news])
