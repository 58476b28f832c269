"""AdvProp's dual batch normalization: a main and one or more auxiliary BNs in one layer."""

import keras
from keras import ops

from tfadv.checks import check_integer
from tfadv.layers._batch_statistics import BatchStatisticsNormalization, add_moving_statistic
from tfadv.layers.conditioned_batch_normalization import encode_strength


def _per_example(condition, rank):
    """Reshape a [B, 1] condition to [B, 1, ..., 1] so it broadcasts over x."""
    return ops.reshape(ops.cast(condition, "float32"), [-1] + [1] * (rank - 1))


def branch_name(index):
    """The weight-name prefix of branch ``index``: ``main``, ``aux``, ``aux2``, ``aux3``, ..."""
    return "main" if index == 0 else "aux" if index == 1 else f"aux{index}"


def _mix(weights, values):
    """``Σ_j weights[j] · values[j]``, summed in branch order."""
    total = weights[0] * values[0]
    for weight, value in zip(weights[1:], values[1:]):
        total = total + weight * value
    return total


@keras.saving.register_keras_serializable(package="tfadv")
class DualBatchNormalization(BatchStatisticsNormalization):
    """Batch normalizations with separate parameters, selected per example by a route p.

    AdvProp keeps separate normalization for clean and adversarial images:
    each branch has its own ``gamma``, ``beta`` and moving statistics. The
    layer is called as ``layer([x, condition])`` where ``condition`` has shape
    ``[B, 1]`` and holds the route ``p`` in [0, 1] of each example.

    With the default ``branches=2`` there are a main BN (p = 0, clean images)
    and an auxiliary BN (p = 1, adversarial images), and values in between mix
    the two linearly with weights ``u = [1 - p, p]``. With ``branches = n``
    (AdvProp with several auxiliary BNs, e.g. one per attack strength) branch
    j sits at the anchor ``a_j = j / (n - 1)`` and p mixes the branches with
    RobMask's hat encoding ``u = encode_strength(p, n)`` (weights of the two
    neighbouring anchors, linear in between; p = a_j selects branch j alone).
    Branch 0 is the main BN, branch 1 ``aux``, branch j ≥ 2 ``aux{j}``
    (the prefixes of the weights' names). The layer holds the weights in four
    lists with one entry per branch, in anchor order: ``gammas``, ``betas``,
    ``moving_means`` and ``moving_variances`` (``gammas`` empty without
    ``scale``, ``betas`` without ``center``); ``branch_variables(j)`` gives
    branch j's four, and ``main_gamma`` ... ``aux_moving_variance`` name the
    first two branches' weights.

    **Inference** (``training=False``), per example, with
    ``BN_j(x) = gamma_j · (x - moving_mean_j) / sqrt(moving_var_j + epsilon) + beta_j``:

        out = Σ_j u_j(p) · BN_j(x)          (n = 2: (1 - p) · BN_main(x) + p · BN_aux(x))

    **Training** (``training=True``): like Keras' ``BatchNormalization``, x is
    normalized with the mean and variance of the current batch, then rescaled
    with the u-mixed affine parameters

        out = (Σ_j u_j(p) · gamma_j) · x̂ + Σ_j u_j(p) · beta_j,
        x̂ = (x - mean(batch)) / sqrt(var(batch) + epsilon).

    AdvProp feeds clean and adversarial images as *separate* batches (each at
    the anchor of its branch), so each batch is normalized with its own
    statistics, as in the paper. The moving statistics of each branch are
    updated in proportion to the branch's share of the batch, ``share_j =
    mean_batch(u_j(p))`` (n = 2: ``share_aux = mean(p)``, ``share_main = 1 -
    mean(p)``):

        moving_j ← moving_j - (1 - momentum) · share_j · (moving_j - batch_stat)

    so a batch at one anchor updates only that branch's statistics, with the
    usual Keras rule, and a branch whose share is 0 does not move. Using a
    weight instead of a branch (``tf.cond``) keeps one graph for every batch,
    which XLA and ``tf.distribute`` compile once.

    ``branches=2`` computes exactly what the two-branch layer always did
    (same arithmetic, same weight names and order), so older ``.keras`` files
    load and predict unchanged.

    Like Keras' layer, ``trainable = False`` puts the layer in inference mode.
    Computations run in float32 whatever the dtype policy (batch statistics
    overflow in float16); the output is cast back to the compute dtype.

    Args:
        branches: number of BNs n ≥ 2: the main BN and n - 1 auxiliary ones.
        momentum: momentum of the moving averages (0.9, PyTorch's 0.1).
        epsilon: small float added to the variance.
        center: add the offset ``beta`` when True.
        scale: multiply by ``gamma`` when True.
        beta_initializer: initializer of every branch's ``beta``.
        gamma_initializer: initializer of every branch's ``gamma``.
        moving_mean_initializer: initializer of every moving mean.
        moving_variance_initializer: initializer of every moving variance.
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

    def __init__(self, branches=2, **kwargs):
        super().__init__(**kwargs)
        self.branches = check_integer("branches", branches, minimum=2)
        # One entry per branch, in anchor order (gammas/betas empty without
        # scale/center). Keras tracks the lists' variables like attributes.
        self.gammas = []
        self.betas = []
        self.moving_means = []
        self.moving_variances = []

    @property
    def branch_names(self):
        """The branches' weight-name prefixes in anchor order: main, aux, aux2, ..."""
        return tuple(branch_name(j) for j in range(self.branches))

    @property
    def anchors(self):
        """The route p that selects each branch alone: ``j / (branches - 1)``."""
        return tuple(j / (self.branches - 1) for j in range(self.branches))

    def branch_variables(self, index):
        """``{"gamma", "beta", "moving_mean", "moving_variance"}`` of branch ``index``
        (gamma or beta None without ``scale`` or ``center``)."""
        if not 0 <= index < self.branches:
            raise ValueError(f"index must be in [0, {self.branches - 1}]. Received: index={index!r}")
        return {"gamma": self.gammas[index] if self.scale and self.gammas else None,
                "beta": self.betas[index] if self.center and self.betas else None,
                "moving_mean": self.moving_means[index] if self.moving_means else None,
                "moving_variance": (self.moving_variances[index]
                                    if self.moving_variances else None)}

    # The main (p = 0) and first auxiliary (p = 1 with two branches) BNs by name.
    @property
    def main_gamma(self):
        return self.branch_variables(0)["gamma"]

    @property
    def main_beta(self):
        return self.branch_variables(0)["beta"]

    @property
    def main_moving_mean(self):
        return self.branch_variables(0)["moving_mean"]

    @property
    def main_moving_variance(self):
        return self.branch_variables(0)["moving_variance"]

    @property
    def aux_gamma(self):
        return self.branch_variables(1)["gamma"]

    @property
    def aux_beta(self):
        return self.branch_variables(1)["beta"]

    @property
    def aux_moving_mean(self):
        return self.branch_variables(1)["moving_mean"]

    @property
    def aux_moving_variance(self):
        return self.branch_variables(1)["moving_variance"]

    def build(self, input_shape):
        # Creation order fixes the order of the saved variables (trainable ones
        # first, then the moving statistics, each in creation order): main_gamma,
        # main_beta, aux_gamma, aux_beta, [aux2_gamma, aux2_beta, ...],
        # main_moving_mean, main_moving_variance, aux_moving_mean, ... Keep it,
        # or older .keras files load their weights into the wrong variables.
        channels = self._channels(input_shape)
        shape = (channels,)
        for name in self.branch_names:
            if self.scale:
                self.gammas.append(self.add_weight(
                    shape=shape, name=f"{name}_gamma", initializer=self.gamma_initializer,
                    autocast=False))
            if self.center:
                self.betas.append(self.add_weight(
                    shape=shape, name=f"{name}_beta", initializer=self.beta_initializer,
                    autocast=False))
            self.moving_means.append(add_moving_statistic(
                self, f"{name}_moving_mean", self.moving_mean_initializer, shape))
            self.moving_variances.append(add_moving_statistic(
                self, f"{name}_moving_variance", self.moving_variance_initializer, shape))
        # Appending to Keras' tracked lists kept the creation order above; as
        # tuples TensorFlow's checkpoints (tf.train.Checkpoint, the resume of
        # a run) also track them, as gammas/0, gammas/1, ...
        self.gammas = tuple(self.gammas)
        self.betas = tuple(self.betas)
        self.moving_means = tuple(self.moving_means)
        self.moving_variances = tuple(self.moving_variances)

    def _route_weights(self, condition, rank):
        """u_j(p) per branch, each shaped [B, 1, ..., 1]."""
        if self.branches == 2:
            # The two-branch layer's own arithmetic, kept bit for bit (the hat
            # encoding's 1 - |p - 1| rounds differently from p).
            p = _per_example(condition, rank)
            return [1.0 - p, p]
        u = encode_strength(condition, self.branches)
        return [_per_example(u[:, j], rank) for j in range(self.branches)]

    def _shares(self, condition, route_weights):
        """Each branch's share of the batch, the weight of its moving-statistics update."""
        if self.branches == 2:
            aux_share = ops.mean(route_weights[1])
            return [1.0 - aux_share, aux_share]
        return [ops.mean(weight) for weight in route_weights]

    def call(self, inputs, training=None):
        x, condition = inputs
        x = ops.cast(x, "float32")  # statistics overflow in float16: compute in float32
        weights = self._route_weights(condition, len(x.shape))
        branches = [self.branch_variables(j) for j in range(self.branches)]
        gammas = [b["gamma"] if self.scale else 1.0 for b in branches]
        betas = [b["beta"] if self.center else 0.0 for b in branches]

        if training and self.trainable:
            mean, variance = self._batch_moments(x)
            for branch, share in zip(branches, self._shares(condition, weights)):
                self._update_moving_statistics(branch["moving_mean"], branch["moving_variance"],
                                               mean, variance, share=share)
            multiplier, offset = self._affine_map(
                _mix(weights, gammas), _mix(weights, betas), mean, variance)
        else:
            # Each BN is affine in x, so their mix is one per-example affine map.
            maps = [self._affine_map(gamma, beta, b["moving_mean"], b["moving_variance"])
                    for gamma, beta, b in zip(gammas, betas, branches)]
            multiplier = _mix(weights, [m for m, _ in maps])
            offset = _mix(weights, [o for _, o in maps])
        return ops.cast(x * multiplier + offset, self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "branches": self.branches}
