"""What tfadv's conditioned batch normalizations share: everything but the rescaling.

``DualBatchNormalization`` and ``ConditionedBatchNormalization`` normalize
like Keras' ``BatchNormalization`` (batch statistics in training, moving
statistics in inference) and differ only in how the condition p of each
example rescales the normalized features. This base holds their common
configuration, input check, moving statistics and serialization.
"""

import keras
from keras import initializers, ops


def add_moving_statistic(layer, name, initializer, shape):
    """A non-trainable float32 moving statistic of ``layer``, replica-local under tf.distribute.

    Each replica updates its own copy during a step without communication
    (``synchronization="on_read"``) and reading it outside the step (saving,
    ``get_weights``) averages the copies (``aggregation="mean"``), as tf-keras'
    BN did. Keras 3's ``add_weight`` takes no ``synchronization``, so the
    variable is made here; the caller tracks it by assigning it to the layer.
    """
    with keras.name_scope(layer.name, caller=layer):
        return keras.Variable(initializer=initializer, shape=shape, dtype="float32",
                              trainable=False, autocast=False, aggregation="mean",
                              synchronization="on_read", name=name)


class BatchStatisticsNormalization(keras.layers.Layer):
    """Base of the batch normalizations called as ``layer([x, condition])``.

    Every such layer computes, per example and in float32,

        out = gamma_p · (x - mean) / sqrt(var + epsilon) + beta_p

    with (mean, var) the batch statistics in training (:meth:`_batch_moments`,
    which also update the moving statistics: :meth:`_update_moving_statistics`)
    and the moving statistics in inference. A subclass defines the rescaling
    (gamma_p, beta_p) from the condition p: its ``build`` creates the weights
    (after :meth:`_channels`) as plain attributes, as Keras' ``BatchNormalization``
    does (``self.gamma = self.add_weight(name="gamma", ...)``), and its moving
    statistics with :func:`add_moving_statistic`; its ``call`` computes ``x ·
    multiplier + offset`` with :meth:`_affine_map`.

    Args:
        momentum: momentum of the moving averages (0.9, PyTorch's 0.1).
        epsilon: small float added to the variance.
        center: add the offset ``beta`` when True.
        scale: multiply by ``gamma`` when True.
        beta_initializer: initializer of the offsets.
        gamma_initializer: initializer of the scales.
        moving_mean_initializer: initializer of the moving means.
        moving_variance_initializer: initializer of the moving variances.
        synchronized: under a ``tf.distribute`` strategy, compute the batch
            statistics over the global batch (all replicas), so that training
            on N devices matches one device.
        **kwargs: base layer arguments (``name``, ``dtype``, ...).
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

    def _channels(self, input_shape):
        """The channel count C of ``x`` in ``input_shape = [x.shape, condition.shape]``.

        Also fixes the axes the batch statistics reduce over (all but the last).
        """
        x_shape, _ = input_shape
        channels = x_shape[-1]
        if channels is None:
            raise ValueError(
                f"{type(self).__name__} needs a known channel dimension. "
                f"Received: input_shape={input_shape}"
            )
        self._reduction_axes = list(range(len(x_shape) - 1))
        return channels

    def _batch_moments(self, x):
        """Per-channel mean and variance of the batch (the global batch if synchronized)."""
        return ops.moments(x, axes=self._reduction_axes, synchronized=self.synchronized)

    def _update_moving_statistics(self, moving_mean, moving_variance, mean, variance, share=1.0):
        """``moving ← moving · (1 - r) + batch_stat · r``, ``r = (1 - momentum) · share``.

        ``share = 1`` is Keras' update ``moving · momentum + stat · (1 -
        momentum)``; ``share = 0`` leaves the statistic untouched. A weight
        rather than a branch (``tf.cond``) keeps one graph for every share,
        which XLA and ``tf.distribute`` compile once.
        """
        rate = (1.0 - self.momentum) * share
        moving_mean.assign(moving_mean * (1.0 - rate) + mean * rate)
        moving_variance.assign(moving_variance * (1.0 - rate) + variance * rate)

    def _affine_map(self, gamma, beta, mean, variance):
        """``(multiplier, offset)`` such that ``x · multiplier + offset`` equals
        ``gamma · (x - mean) / sqrt(variance + epsilon) + beta``."""
        multiplier = gamma * ops.rsqrt(variance + self.epsilon)
        return multiplier, beta - mean * multiplier

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
