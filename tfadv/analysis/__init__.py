"""Analyses of trained models behind paper 2's hypothesis (BN rescaling + ReLU is a mask).

- :mod:`tfadv.analysis.bn_anatomy` — Figure 1: which BN parameters a
  fine-tuning moves (:func:`compare_bn`, per-channel plots, a table of
  relative changes per layer).
- :mod:`tfadv.analysis.masks` — Figure 4: feature maps after BN + ReLU under
  two maskings, with the fractions of blocked and magnified maps
  (:func:`compare_masks`).
- :mod:`tfadv.analysis.history` — Figure 3: training curves of several runs.

The CLI is ``tfadv inspect bn|masks`` and ``tfadv plot-history``.
"""

from tfadv.analysis.bn_anatomy import bn_parameters, compare_bn, norm_layers
from tfadv.analysis.history import plot_histories, read_history
from tfadv.analysis.masks import compare_masks, mask_statistics, masked_features, masking_pairs

__all__ = ["bn_parameters", "compare_bn", "norm_layers", "compare_masks", "mask_statistics",
           "masked_features", "masking_pairs", "plot_histories", "read_history"]
