"""AdvProp's dual batch normalization: a main and an auxiliary BN in one layer."""

import keras
from keras import initializers, ops


def _per_example(condition, rank):
    """Reshape a [B, 1] condition to [B, 1, ..., 1] so it broadcasts over x."""
    return ops.reshape(ops.cast(condition, "float32"), [-1] + [1] * (rank - 1))


def add_moving_statistic(layer, name, initializer, shape):
    """A non-trainable float32 moving statistic of ``layer``, replica-local under tf.distribute.

    Each replica updates its own copy during a step without communication
    (``synchronization="on_read"``) and reading it outside the step (saving,
    ``get_weights``) averages the copies (``aggregation="mean"``), as tf-keras'
    BN did. Keras 3's ``add_weight`` takes no ``synchronization``, so the
    variable is made here and tracked by assigning it to the layer.
    """
    with keras.name_scope(layer.name, caller=layer):
        return keras.Variable(initializer=initializer, shape=shape, dtype="float32",
                              trainable=False, autocast=False, aggregation="mean",
                              synchronization="on_read", name=name)


def _moving_average_update(variable, value, momentum, share):
    """``variable ← variable - (1 - momentum) · share · (variable - value)``.

    ``share = 1`` is the usual Keras update
    ``variable · momentum + value · (1 - momentum)``; ``share = 0`` leaves the
    variable untouched. Written as one assign (no ``tf.cond``) so it compiles
    to the same graph for every share, under XLA too.
    """
    rate = (1.0 - momentum) * share
    variable.assign(variable - rate * (variable - value))


@keras.saving.register_keras_serializable(package="tfadv")
class DualBatchNormalization(keras.layers.Layer):
    """Two batch normalizations, main and auxiliary, selected per example.

    AdvProp keeps separate normalization for clean and adversarial images:
    each branch has its own ``gamma``, ``beta`` and moving statistics. The
    layer is called as ``layer([x, condition])`` where ``condition`` has shape
    ``[B, 1]`` and holds the route ``p`` in [0, 1] of each example: 0 is the
    main BN (clean images), 1 the auxiliary BN (adversarial images), and values
    in between mix the two branches linearly.

    **Inference** (``training=False``), per example, with
    ``BN_b(x) = gamma_b · (x - moving_mean_b) / sqrt(moving_var_b + epsilon) + beta_b``:

        out = (1 - p) · BN_main(x) + p · BN_aux(x)

    **Training** (``training=True``): like Keras' ``BatchNormalization``, x is
    normalized with the mean and variance of the current batch, then rescaled
    with the p-mixed affine parameters

        out = ((1 - p) · gamma_main + p · gamma_aux) · x̂ + ((1 - p) · beta_main + p · beta_aux),
        x̂ = (x - mean(batch)) / sqrt(var(batch) + epsilon).

    AdvProp feeds clean and adversarial images as *separate* batches (p = 0 and
    p = 1), so each batch is normalized with its own statistics, as in the
    paper. The moving statistics of each branch are updated in proportion to
    the branch's share of the batch, ``share_aux = mean(p)`` and
    ``share_main = 1 - mean(p)``:

        moving_b ← moving_b - (1 - momentum) · share_b · (moving_b - batch_stat)

    so a clean batch (p = 0) updates only the main statistics with the usual
    Keras rule and an adversarial batch (p = 1) only the auxiliary ones. Using
    a weight instead of a branch (``tf.cond``) keeps one graph for every
    batch, which XLA and ``tf.distribute`` compile once.

    Like Keras' layer, ``trainable = False`` puts the layer in inference mode.
    Computations run in float32 whatever the dtype policy (batch statistics
    overflow in float16); the output is cast back to the compute dtype.

    Args:
        momentum: momentum of the moving averages (0.9, PyTorch's 0.1).
        epsilon: small float added to the variance.
        center: add the offset ``beta`` when True.
        scale: multiply by ``gamma`` when True.
        beta_initializer: initializer of both branches' ``beta``.
        gamma_initializer: initializer of both branches' ``gamma``.
        moving_mean_initializer: initializer of both moving means.
        moving_variance_initializer: initializer of both moving variances.
        synchronized: under a ``tf.distribute`` strategy, compute the batch
            statistics over the global batch (all replicas), so that training
            on N devices matches one device.
        **kwargs: base layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: ``[x, condition]``: ``x`` channels-last of any rank ≥ 2,
            ``condition`` of shape ``[B, 1]`` (or ``[B]``) with values in [0, 1].
        training: Python boolean, batch statistics (True) or moving ones.

    Reference:
        Xie et al., "Adversarial Examples Improve Image Recognition", CVPR 2020,
        https://arxiv.org/abs/1911.09665
    """

    def __init__(
        self,
        momentum=0.9,
        epsilon=1e-5,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        moving_mean_initializer="zeros",
        moving_variance_initializer="ones",
        synchronized=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1). Received: momentum={momentum}")
        if epsilon <= 0:
            raise ValueError(f"epsilon must be > 0. Received: epsilon={epsilon}")
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = center
        self.scale = scale
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.synchronized = synchronized
        self.supports_masking = False

    def build(self, input_shape):
        x_shape, _ = input_shape
        channels = x_shape[-1]
        if channels is None:
            raise ValueError(
                f"DualBatchNormalization needs a known channel dimension. "
                f"Received: input_shape={input_shape}"
            )
        self._reduction_axes = list(range(len(x_shape) - 1))
        shape = (channels,)
        for branch in ("main", "aux"):
            if self.scale:
                setattr(self, f"{branch}_gamma", self.add_weight(
                    shape=shape, name=f"{branch}_gamma",
                    initializer=self.gamma_initializer, autocast=False))
            if self.center:
                setattr(self, f"{branch}_beta", self.add_weight(
                    shape=shape, name=f"{branch}_beta",
                    initializer=self.beta_initializer, autocast=False))
            setattr(self, f"{branch}_moving_mean", add_moving_statistic(
                self, f"{branch}_moving_mean", self.moving_mean_initializer, shape))
            setattr(self, f"{branch}_moving_variance", add_moving_statistic(
                self, f"{branch}_moving_variance", self.moving_variance_initializer, shape))

    def _affine(self, branch):
        """The branch's (gamma, beta), ones/zeros when scale/center are off."""
        gamma = getattr(self, f"{branch}_gamma") if self.scale else 1.0
        beta = getattr(self, f"{branch}_beta") if self.center else 0.0
        return gamma, beta

    def call(self, inputs, training=None):
        x, condition = inputs
        x = ops.cast(x, "float32")  # statistics overflow in float16: compute in float32
        p = _per_example(condition, len(x.shape))
        main_gamma, main_beta = self._affine("main")
        aux_gamma, aux_beta = self._affine("aux")

        if training and self.trainable:
            mean, variance = ops.moments(x, axes=self._reduction_axes,
                                         synchronized=self.synchronized)
            aux_share = ops.mean(p)
            for branch, share in (("main", 1.0 - aux_share), ("aux", aux_share)):
                _moving_average_update(getattr(self, f"{branch}_moving_mean"),
                                       mean, self.momentum, share)
                _moving_average_update(getattr(self, f"{branch}_moving_variance"),
                                       variance, self.momentum, share)
            gamma = (1.0 - p) * main_gamma + p * aux_gamma
            beta = (1.0 - p) * main_beta + p * aux_beta
            multiplier = gamma * ops.rsqrt(variance + self.epsilon)
            offset = beta - mean * multiplier
        else:
            # Each BN is affine in x, so their mix is one per-example affine map.
            main_multiplier = main_gamma * ops.rsqrt(self.main_moving_variance + self.epsilon)
            aux_multiplier = aux_gamma * ops.rsqrt(self.aux_moving_variance + self.epsilon)
            main_offset = main_beta - self.main_moving_mean * main_multiplier
            aux_offset = aux_beta - self.aux_moving_mean * aux_multiplier
            multiplier = (1.0 - p) * main_multiplier + p * aux_multiplier
            offset = (1.0 - p) * main_offset + p * aux_offset
        return ops.cast(x * multiplier + offset, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {
            **super().get_config(),
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": initializers.serialize(self.beta_initializer),
            "gamma_initializer": initializers.serialize(self.gamma_initializer),
            "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
            "moving_variance_initializer": initializers.serialize(
                self.moving_variance_initializer),
            "synchronized": self.synchronized,
        }
