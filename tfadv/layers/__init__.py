"""Keras layers added by tfadv (registered as serializable, package "tfadv").

- :class:`DualBatchNormalization`: AdvProp's main + auxiliary BN.
- :class:`ConditionedBatchNormalization`: RobMask's strength-conditioned BN
  (shared statistics, rescaling from k bases), also used for masking
  interpolation; :func:`encode_strength` is its encoding u(p).
- :class:`PixelPreprocessing`: images in [0, 1] mapped to the range a model
  expects (0..255, [−1, 1], ImageNet normalization), first layer of a
  brought model, so ε stays in [0, 1] units.

Both extend ``_batch_statistics.BatchStatisticsNormalization``, which holds
what they share (configuration, moving statistics, serialization); each file
holds only its rescaling.
"""

from tfadv.layers.conditioned_batch_normalization import (
    ConditionedBatchNormalization,
    encode_strength,
)
from tfadv.layers.dual_batch_normalization import DualBatchNormalization
from tfadv.layers.pixel_preprocessing import PREPROCESS_MODES, PixelPreprocessing

__all__ = ["ConditionedBatchNormalization", "DualBatchNormalization", "PREPROCESS_MODES",
           "PixelPreprocessing", "encode_strength"]
