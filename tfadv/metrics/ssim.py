"""SSIM distance between clean and adversarial images (Wang et al., 2004).

SSIM has free parameters that change its value severalfold on small
perturbations: the window, the data range ``L`` in the constants
``C1 = (K1 L)²``, ``C2 = (K2 L)²`` and whether local variances are biased.
:data:`CONVENTIONS` names the ones tfadv offers; every function takes
``convention=`` (default ``"gaussian"``, Wang et al.'s own). See
``docs/ssim_conventions.md`` for which convention gives which of the
loss-landscape paper's Table 2 figures.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from tfadv.checks import check_choice

WINDOW_SIZE = 11
WINDOW_SIGMA = 1.5
K1 = 0.01
K2 = 0.03
DATA_RANGE = 1.0


@dataclasses.dataclass(frozen=True)
class SSIMConvention:
    """How SSIM is computed: window, data range and variance estimator.

    Attributes:
        name: the key in :data:`CONVENTIONS`.
        window: ``"gaussian"`` (``size``×``size``, standard deviation
            ``sigma``) or ``"uniform"`` (a ``size``×``size`` box mean).
        size: the window's side, odd.
        sigma: the Gaussian's standard deviation (``"gaussian"`` only).
        data_range: ``L`` in ``C1 = (K1 L)²`` and ``C2 = (K2 L)²``.
        sample_covariance: scale the window's variances and covariance by
            ``N / (N − 1)`` (``N = size²``), the unbiased estimate.
        description: one line for tables and docs.
    """

    name: str
    window: str
    size: int
    sigma: float
    data_range: float
    sample_covariance: bool
    description: str


CONVENTIONS = {
    "gaussian": SSIMConvention(
        "gaussian", "gaussian", WINDOW_SIZE, WINDOW_SIGMA, DATA_RANGE, False,
        "Wang et al. 2004: 11×11 Gaussian window (σ 1.5), L = 1 for images in [0, 1], biased moments, "
        "per channel"),
    "skimage_compare_ssim": SSIMConvention(
        "skimage_compare_ssim", "uniform", 7, 0.0, 2.0, True,
        "scikit-image's compare_ssim(x, x_adv, multichannel=True) with its defaults on float images "
        "in [0, 1]: 7×7 uniform window, sample covariance, L = 2 (the float dtype range [-1, 1]), "
        "per channel"),
}
"""The SSIM conventions tfadv computes, by name."""

DEFAULT_CONVENTION = "gaussian"


def get_convention(convention):
    """The :class:`SSIMConvention` named ``convention`` (or ``convention`` itself)."""
    if isinstance(convention, SSIMConvention):
        return convention
    check_choice("convention", convention, tuple(CONVENTIONS))
    return CONVENTIONS[convention]


@dataclasses.dataclass(frozen=True)
class SSIMDistance:
    """The result of :func:`ssim_distance`.

    Attributes:
        per_image: float64 ``[B]``, ``1 − SSIM`` of every image pair, whether
            or not it was selected.
        selected: bool ``[B]``, the examples that ``mean`` averages over
            (all of them unless ``successful_only`` was given).
        mean: the mean of ``per_image`` over ``selected``; NaN when nothing
            is selected.
        count: the number of selected examples.
        convention: the name of the :class:`SSIMConvention` used.
    """

    per_image: np.ndarray
    selected: np.ndarray
    mean: float
    count: int
    convention: str = DEFAULT_CONVENTION


def gaussian_window(size=WINDOW_SIZE, sigma=WINDOW_SIGMA):
    """The normalised 1-D Gaussian ``g`` whose outer product ``g gᵀ`` is the SSIM window."""
    offsets = np.arange(size, dtype=np.float64) - (size - 1) / 2
    weights = np.exp(-(offsets**2) / (2 * sigma**2))
    return weights / weights.sum()


def ssim(x, y, convention=DEFAULT_CONVENTION):
    """Mean SSIM of each image pair, per channel then averaged over channels.

    With local statistics under the convention's window at every position
    where the window fits inside the image ("valid" positions)::

        SSIM(x, y) = (2 μx μy + C1)(2 σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2))

    ``C1 = (K1 L)²``, ``C2 = (K2 L)²``, ``K1 = 0.01``, ``K2 = 0.03``.
    ``"gaussian"`` (default): 11×11 Gaussian window (σ = 1.5), ``L = 1``, σ²
    and σxy the window-weighted (biased) moments. ``"skimage_compare_ssim"``:
    7×7 uniform window, moments scaled by ``N/(N − 1)`` (N = 49), ``L = 2``.
    The map is averaged over positions and channels. Images smaller than the
    window use one cropped to the largest odd size that fits (same σ).

    Args:
        x, y: float ``[B, H, W, C]`` in [0, 1].
        convention: a name in :data:`CONVENTIONS` or an :class:`SSIMConvention`.

    Returns:
        float32 ``[B]``.
    """
    convention = get_convention(convention)
    x = tf.cast(x, tf.float32)
    y = tf.cast(y, tf.float32)
    if x.shape.rank != 4 or x.shape != y.shape:
        raise ValueError(
            f"x and x_adv must be image batches [B, H, W, C] of the same shape. "
            f"Received: x.shape={x.shape}, x_adv.shape={y.shape}"
        )
    height, width, channels = x.shape[1], x.shape[2], x.shape[3]
    size = min(convention.size, height - (1 - height % 2), width - (1 - width % 2))
    if convention.window == "gaussian":
        window = tf.constant(gaussian_window(size, convention.sigma), tf.float32)
    else:
        window = tf.fill([size], 1.0 / size)
    # The unbiased estimate scales the window's second moments by N / (N − 1).
    moment_scale = size * size / (size * size - 1) if convention.sample_covariance else 1.0
    rows = tf.tile(tf.reshape(window, [size, 1, 1, 1]), [1, 1, channels, 1])
    cols = tf.tile(tf.reshape(window, [1, size, 1, 1]), [1, 1, channels, 1])

    def local_mean(images):  # separable Gaussian blur, each channel alone
        blurred = tf.nn.depthwise_conv2d(images, rows, [1, 1, 1, 1], "VALID")
        return tf.nn.depthwise_conv2d(blurred, cols, [1, 1, 1, 1], "VALID")

    c1 = (K1 * convention.data_range) ** 2
    c2 = (K2 * convention.data_range) ** 2
    mean_x, mean_y = local_mean(x), local_mean(y)
    var_x = moment_scale * (local_mean(x * x) - mean_x**2)
    var_y = moment_scale * (local_mean(y * y) - mean_y**2)
    cov_xy = moment_scale * (local_mean(x * y) - mean_x * mean_y)
    ssim_map = ((2 * mean_x * mean_y + c1) * (2 * cov_xy + c2)) / (
        (mean_x**2 + mean_y**2 + c1) * (var_x + var_y + c2)
    )
    return tf.reduce_mean(ssim_map, axis=[1, 2, 3])


def ssim_distance(x, x_adv, successful_only=None, convention=DEFAULT_CONVENTION):
    """``1 − SSIM`` between clean and adversarial images, per image and on average.

    The loss-landscape paper reports the distance only over the attacks that
    worked: pass ``successful_only``, a boolean ``[B]`` that is True where the
    attack changed the model's prediction, and ``mean`` averages over those
    examples (``per_image`` still holds every pair).

    Args:
        x: clean images ``[B, H, W, C]`` in [0, 1].
        x_adv: adversarial images, same shape.
        successful_only: ``None`` (average over all) or a boolean mask ``[B]``.
        convention: ``"gaussian"`` (default) or ``"skimage_compare_ssim"``
            (:data:`CONVENTIONS`, :func:`ssim`).

    Returns:
        :class:`SSIMDistance` with ``per_image``, ``selected``, ``mean`` and
        ``count``. Identical images have distance 0.

    Reference:
        Wang, Bovik, Sheikh & Simoncelli, "Image Quality Assessment: From
        Error Visibility to Structural Similarity", IEEE TIP 2004.
    """
    convention = get_convention(convention)
    per_image = 1.0 - ssim(x, x_adv, convention).numpy().astype(np.float64)
    if successful_only is None:
        selected = np.ones(per_image.shape, bool)
    else:
        selected = np.asarray(successful_only)
        if selected.dtype != bool or selected.shape != per_image.shape:
            raise ValueError(
                f"successful_only must be a boolean mask with one entry per image, shape {per_image.shape}. "
                f"Received: successful_only with dtype={selected.dtype}, shape={selected.shape}"
            )
    count = int(selected.sum())
    mean = float(per_image[selected].mean()) if count else float("nan")
    return SSIMDistance(per_image=per_image, selected=selected, mean=mean, count=count,
                        convention=convention.name)
