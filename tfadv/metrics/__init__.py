"""Measures of images: how far an adversarial example is from its original.

- :func:`ssim_distance` — ``1 − SSIM`` (Wang et al., 2004), per image and on
  average, optionally over the successful attacks only.
"""

from tfadv.metrics.ssim import SSIMDistance, ssim, ssim_distance

__all__ = ["SSIMDistance", "ssim", "ssim_distance"]
