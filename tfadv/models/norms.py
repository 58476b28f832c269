"""The ``norm=`` factory: which normalization layer every architecture uses.

Architectures call ``ctx.norm(x)`` wherever they want batch normalization and
``ctx.norm_relu(x)`` for the BN→ReLU "masking" pair. The context decides which
layer that is and, for conditioned norms, feeds it the ``condition`` input, so
AdvProp's dual BN and RobMask plug into every architecture unchanged.
"""
import keras

from tfadv.checks import check_choice, check_integer

NORM_KINDS = ("bn", "dual_bn", "robmask")
CONDITIONED_NORMS = ("dual_bn", "robmask")

# PyTorch-style statistics (momentum 0.1 there is 0.9 here; eps 1e-5), as the
# papers' CIFAR models use; Keras' default 0.99 lags badly in short runs.
BN_DEFAULTS = {"momentum": 0.9, "epsilon": 1e-5}


class NormContext:
    """Creates normalization layers of one kind and threads the condition input."""

    def __init__(self, kind="bn", options=None, condition=None):
        check_choice("norm", kind, NORM_KINDS)
        self.kind = kind
        self.options = {**BN_DEFAULTS, **(options or {})}
        self.condition = condition
        self._count = 0
        if kind == "robmask":
            check_integer("k", self.options.get("k", 2), minimum=1)  # RobMask's basis size
        elif "k" in self.options:
            raise ValueError(f"norm_options 'k' applies to norm='robmask' only. Received: norm={kind!r}")
        if kind == "dual_bn":
            check_integer("branches", self.options.get("branches", 2), minimum=2)
        elif "branches" in self.options:
            raise ValueError(
                f"norm_options 'branches' applies to norm='dual_bn' only. Received: norm={kind!r}")

    @property
    def conditioned(self):
        return self.kind in CONDITIONED_NORMS

    def _name(self, name):
        self._count += 1
        return name or f"{self.kind}_{self._count}"

    def norm(self, x, name=None):
        name = self._name(name)
        if self.kind == "bn":
            return keras.layers.BatchNormalization(name=name, **self.options)(x)
        from tfadv import layers

        layer_cls = (
            layers.DualBatchNormalization if self.kind == "dual_bn"
            else layers.ConditionedBatchNormalization
        )
        return layer_cls(name=name, **self.options)([x, self.condition])

    def norm_relu(self, x, name=None):
        return keras.layers.ReLU()(self.norm(x, name))
