"""Measures of images: how far an adversarial example is from its original.

- :func:`ssim_distance` — ``1 − SSIM`` (Wang et al., 2004), per image and on
  average, optionally over the successful attacks only, under a named
  convention (:data:`CONVENTIONS`: ``"gaussian"``, ``"skimage_compare_ssim"``).
"""

from tfadv.metrics.ssim import CONVENTIONS, SSIMConvention, SSIMDistance, get_convention, ssim, ssim_distance

__all__ = ["CONVENTIONS", "SSIMConvention", "SSIMDistance", "get_convention", "ssim", "ssim_distance"]
