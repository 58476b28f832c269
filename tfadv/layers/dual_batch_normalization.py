"""AdvProp's dual batch normalization: a main and an auxiliary BN in one layer."""

import keras
from keras import ops

from tfadv.layers._batch_statistics import BatchStatisticsNormalization, add_moving_statistic


def _per_example(condition, rank):
    """Reshape a [B, 1] condition to [B, 1, ..., 1] so it broadcasts over x."""
    return ops.reshape(ops.cast(condition, "float32"), [-1] + [1] * (rank - 1))


@keras.saving.register_keras_serializable(package="tfadv")
class DualBatchNormalization(BatchStatisticsNormalization):
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

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.main_gamma = self.main_beta = self.aux_gamma = self.aux_beta = None

    def build(self, input_shape):
        # Creation order fixes the order of the saved variables (trainable ones
        # first, then the moving statistics, each in creation order): main_gamma,
        # main_beta, aux_gamma, aux_beta, main_moving_mean, main_moving_variance,
        # aux_moving_mean, aux_moving_variance. Keep it, or older .keras files
        # load their weights into the wrong variables.
        channels = self._channels(input_shape)
        shape = (channels,)
        if self.scale:
            self.main_gamma = self.add_weight(
                shape=shape, name="main_gamma", initializer=self.gamma_initializer, autocast=False)
        if self.center:
            self.main_beta = self.add_weight(
                shape=shape, name="main_beta", initializer=self.beta_initializer, autocast=False)
        self.main_moving_mean = add_moving_statistic(
            self, "main_moving_mean", self.moving_mean_initializer, shape)
        self.main_moving_variance = add_moving_statistic(
            self, "main_moving_variance", self.moving_variance_initializer, shape)
        if self.scale:
            self.aux_gamma = self.add_weight(
                shape=shape, name="aux_gamma", initializer=self.gamma_initializer, autocast=False)
        if self.center:
            self.aux_beta = self.add_weight(
                shape=shape, name="aux_beta", initializer=self.beta_initializer, autocast=False)
        self.aux_moving_mean = add_moving_statistic(
            self, "aux_moving_mean", self.moving_mean_initializer, shape)
        self.aux_moving_variance = add_moving_statistic(
            self, "aux_moving_variance", self.moving_variance_initializer, shape)

    def call(self, inputs, training=None):
        x, condition = inputs
        x = ops.cast(x, "float32")  # statistics overflow in float16: compute in float32
        p = _per_example(condition, len(x.shape))
        main_gamma, aux_gamma = (self.main_gamma, self.aux_gamma) if self.scale else (1.0, 1.0)
        main_beta, aux_beta = (self.main_beta, self.aux_beta) if self.center else (0.0, 0.0)

        if training and self.trainable:
            mean, variance = self._batch_moments(x)
            aux_share = ops.mean(p)
            self._update_moving_statistics(self.main_moving_mean, self.main_moving_variance,
                                           mean, variance, share=1.0 - aux_share)
            self._update_moving_statistics(self.aux_moving_mean, self.aux_moving_variance,
                                           mean, variance, share=aux_share)
            gamma = (1.0 - p) * main_gamma + p * aux_gamma
            beta = (1.0 - p) * main_beta + p * aux_beta
            multiplier, offset = self._affine_map(gamma, beta, mean, variance)
        else:
            # Each BN is affine in x, so their mix is one per-example affine map.
            main_multiplier, main_offset = self._affine_map(
                main_gamma, main_beta, self.main_moving_mean, self.main_moving_variance)
            aux_multiplier, aux_offset = self._affine_map(
                aux_gamma, aux_beta, self.aux_moving_mean, self.aux_moving_variance)
            multiplier = (1.0 - p) * main_multiplier + p * aux_multiplier
            offset = (1.0 - p) * main_offset + p * aux_offset
        return ops.cast(x * multiplier + offset, self.compute_dtype)
