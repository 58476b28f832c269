"""Keras layers added by tfadv (registered as serializable, package "tfadv").

- :class:`DualBatchNormalization`: AdvProp's main + auxiliary BN.
- :class:`ConditionedBatchNormalization`: RobMask's strength-conditioned BN
  (shared statistics, rescaling from k bases), also used for masking
  interpolation; :func:`encode_strength` is its encoding u(p).

Both extend ``_batch_statistics.BatchStatisticsNormalization``, which holds
what they share (configuration, moving statistics, serialization); each file
holds only its rescaling.
"""

from tfadv.layers.conditioned_batch_normalization import (
    ConditionedBatchNormalization,
    encode_strength,
)
from tfadv.layers.dual_batch_normalization import DualBatchNormalization

__all__ = ["ConditionedBatchNormalization", "DualBatchNormalization", "encode_strength"]
