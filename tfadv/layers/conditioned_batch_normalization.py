"""RobMask's strength-conditioned batch normalization (shared statistics)."""

import keras
import numpy as np
from keras import ops

from tfadv.checks import check_integer
from tfadv.layers._batch_statistics import BatchStatisticsNormalization, add_moving_statistic


def encode_strength(p, k):
    """Encode masking strengths ``p`` in [0, 1] as weights ``u`` over k bases.

    The k anchors ``a_j = j / (k - 1)`` are evenly spaced in [0, 1] and each
    weight is a piecewise-linear "hat" centred on its anchor:

        u_j(p) = max(0, 1 - (k - 1) · |p - a_j|)

    so the weights are non-negative, sum to 1, and interpolate linearly
    between the two neighbouring anchors. k = 2 gives ``u = [1 - p, p]``;
    k = 1 gives ``u = [1]`` (plain BN). p is clipped to [0, 1].

    Args:
        p: strengths, shape ``[B]`` or ``[B, 1]``.
        k: number of bases, ≥ 1 (Python int).

    Returns:
        float32 tensor of shape ``[B, k]``.
    """
    k = check_integer("k", k, minimum=1)
    p = ops.clip(ops.reshape(ops.cast(p, "float32"), [-1, 1]), 0.0, 1.0)
    if k == 1:
        return ops.ones_like(p)
    anchors = ops.reshape(ops.linspace(0.0, 1.0, k), [1, k])
    return ops.relu(1.0 - (k - 1) * ops.abs(p - anchors))


def _tiled(initializer, k):
    """An initializer for a [k, C] basis whose k rows are the same [C] draw."""
    def initialize(shape, dtype=None):
        row = initializer((shape[-1],), dtype=dtype)
        return ops.tile(ops.reshape(row, [1, -1]), [k, 1])
    return initialize


@keras.saving.register_keras_serializable(package="tfadv")
class ConditionedBatchNormalization(BatchStatisticsNormalization):
    """Batch normalization whose rescaling depends on a strength p per example.

    The normalization statistics (batch or moving mean and variance) are
    shared by every strength; only the affine rescaling changes with p. With
    the bases ``W, W' ∈ R^{k×C}`` and the encoding ``u(p) ∈ R^k`` of
    :func:`encode_strength`:

        gamma_p = u(p) @ W,    beta_p = u(p) @ W'
        out = gamma_p · (x - mean) / sqrt(var + epsilon) + beta_p

    where (mean, var) are the batch statistics in training and the moving
    statistics in inference; the moving statistics are updated exactly as in
    Keras' ``BatchNormalization`` (``moving ← moving · momentum + stat ·
    (1 - momentum)``). Every row of W starts at ``gamma_initializer`` and every
    row of W' at ``beta_initializer`` (ones and zeros by default), so every p
    starts as plain BN and the layer then equals
    ``keras.layers.BatchNormalization(momentum, epsilon)``.

    RobMask (k = 2 by default) trains W, W' with p ~ U(0, 1) and ε = p·ε_max.
    Masking interpolation (Sec. 3.2) uses k = 2 with ``W[0], W'[0]`` from a
    clean model and ``W[1], W'[1]`` from a robust one, so
    ``gamma_p = (1 - p)·gamma_clean + p·gamma_robust``; see
    :meth:`set_bases_from`.

    Like Keras' layer, ``trainable = False`` puts the layer in inference mode.
    Computations run in float32 whatever the dtype policy; the output is cast
    back to the compute dtype.

    Args:
        k: number of rescaling bases, ≥ 1.
        momentum: momentum of the moving averages (0.9, PyTorch's 0.1).
        epsilon: small float added to the variance.
        center: add the offset ``beta_p`` when True.
        scale: multiply by ``gamma_p`` when True.
        beta_initializer: initializer of each row of W'.
        gamma_initializer: initializer of each row of W.
        moving_mean_initializer: initializer of the moving mean.
        moving_variance_initializer: initializer of the moving variance.
        synchronized: under a ``tf.distribute`` strategy, compute the batch
            statistics over the global batch (all replicas).
        **kwargs: base layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: ``[x, condition]``: ``x`` channels-last of any rank ≥ 2,
            ``condition`` of shape ``[B, 1]`` (or ``[B]``) with p in [0, 1].
        training: Python boolean, batch statistics (True) or moving ones.

    Reference:
        "Adversarial Masking: Towards Understanding Robustness Trade-off for
        Generalization" (RobMask), Algorithm 1 and Sec. 3.2.
    """

    def __init__(self, k=2, **kwargs):
        super().__init__(**kwargs)
        self.k = check_integer("k", k, minimum=1)
        self.gamma_basis = None
        self.beta_basis = None

    def build(self, input_shape):
        channels = self._channels(input_shape)
        if self.scale:
            self.gamma_basis = self.add_weight(
                shape=(self.k, channels), name="gamma_basis",
                initializer=_tiled(self.gamma_initializer, self.k), autocast=False)
        if self.center:
            self.beta_basis = self.add_weight(
                shape=(self.k, channels), name="beta_basis",
                initializer=_tiled(self.beta_initializer, self.k), autocast=False)
        self.moving_mean = add_moving_statistic(
            self, "moving_mean", self.moving_mean_initializer, (channels,))
        self.moving_variance = add_moving_statistic(
            self, "moving_variance", self.moving_variance_initializer, (channels,))

    def call(self, inputs, training=None):
        x, condition = inputs
        x = ops.cast(x, "float32")  # statistics overflow in float16: compute in float32
        per_example = [-1] + [1] * (len(x.shape) - 2) + [x.shape[-1]]
        u = encode_strength(condition, self.k)
        gamma = ops.reshape(u @ self.gamma_basis, per_example) if self.scale else 1.0
        beta = ops.reshape(u @ self.beta_basis, per_example) if self.center else 0.0

        if training and self.trainable:
            mean, variance = self._batch_moments(x)
            self._update_moving_statistics(self.moving_mean, self.moving_variance, mean, variance)
        else:
            mean, variance = self.moving_mean, self.moving_variance
        multiplier, offset = self._affine_map(gamma, beta, mean, variance)
        return ops.cast(x * multiplier + offset, self.compute_dtype)

    def set_bases_from(self, batch_norms, statistics_from=0):
        """Load row j of the bases from ``batch_norms[j]``'s gamma and beta.

        Builds masking interpolation from k models that differ only in their
        BN affine parameters: ``W[j] = batch_norms[j].gamma``,
        ``W'[j] = batch_norms[j].beta``, and the shared moving statistics from
        ``batch_norms[statistics_from]``.

        Args:
            batch_norms: k built ``keras.layers.BatchNormalization`` layers
                (anything with ``gamma``, ``beta``, ``moving_mean``,
                ``moving_variance``) with this layer's channel count.
            statistics_from: index of the layer whose moving statistics are
                copied.
        """
        if len(batch_norms) != self.k:
            raise ValueError(
                f"set_bases_from needs one BN layer per basis (k={self.k}). "
                f"Received: len(batch_norms)={len(batch_norms)}"
            )
        if self.scale:
            self.gamma_basis.assign(np.stack([ops.convert_to_numpy(bn.gamma) for bn in batch_norms]))
        if self.center:
            self.beta_basis.assign(np.stack([ops.convert_to_numpy(bn.beta) for bn in batch_norms]))
        source = batch_norms[statistics_from]
        self.moving_mean.assign(ops.convert_to_numpy(source.moving_mean))
        self.moving_variance.assign(ops.convert_to_numpy(source.moving_variance))

    def get_config(self):
        return {**super().get_config(), "k": self.k}
