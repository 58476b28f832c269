"""SSIM distance against an independent NumPy/SciPy evaluation of Wang et al. (2004)."""
import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage, signal

from tfadv.metrics import ssim_distance


def ssim_np(x, y, size=11, sigma=1.5, k1=0.01, k2=0.03, data_range=1.0):
    """Mean SSIM per image: 2-D Gaussian window, valid positions, per channel, float64."""
    offsets = np.arange(size) - (size - 1) / 2
    g = np.exp(-(offsets**2) / (2 * sigma**2))
    window = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    scores = []
    for a, b in zip(x.astype(np.float64), y.astype(np.float64)):
        channel_scores = []
        for c in range(a.shape[-1]):
            def blur(image):
                return signal.correlate2d(image, window, mode="valid")

            mu_a, mu_b = blur(a[..., c]), blur(b[..., c])
            var_a = blur(a[..., c] ** 2) - mu_a**2
            var_b = blur(b[..., c] ** 2) - mu_b**2
            cov = blur(a[..., c] * b[..., c]) - mu_a * mu_b
            numerator = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
            ssim_map = numerator / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
            channel_scores.append(ssim_map.mean())
        scores.append(np.mean(channel_scores))
    return np.array(scores)


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    # Smooth images with structure, and versions of them degraded by increasing amounts.
    x = ndimage.gaussian_filter(rng.uniform(0, 1, (4, 32, 32, 3)), sigma=(0, 2, 2, 0))
    x = ((x - x.min()) / (x.max() - x.min())).astype("float32")
    noise = rng.normal(0, 1, x.shape) * np.array([0.0, 0.01, 0.05, 0.2])[:, None, None, None]
    return x, np.clip(x + noise, 0, 1).astype("float32")


def test_identical_images_have_distance_zero(pair):
    x, _ = pair
    result = ssim_distance(x, x)
    np.testing.assert_allclose(result.per_image, 0.0, atol=1e-6)
    assert abs(result.mean) < 1e-6 and result.count == 4


def test_distance_agrees_with_numpy_implementation(pair):
    x, x_adv = pair
    result = ssim_distance(x, x_adv)
    expected = 1 - ssim_np(x, x_adv)
    np.testing.assert_allclose(result.per_image, expected, atol=2e-5)
    np.testing.assert_allclose(result.mean, expected.mean(), atol=2e-5)
    assert np.all(np.diff(result.per_image) > 0)  # more noise, larger distance


def test_distance_agrees_with_tf_image_ssim(pair):
    x, x_adv = pair
    reference = 1 - tf.image.ssim(x, x_adv, max_val=1.0, filter_size=11, filter_sigma=1.5, k1=0.01, k2=0.03)
    np.testing.assert_allclose(ssim_distance(x, x_adv).per_image, reference, atol=1e-4)


def test_images_smaller_than_the_window_use_a_cropped_window():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (2, 8, 8, 1)).astype("float32")
    y = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1).astype("float32")
    np.testing.assert_allclose(ssim_distance(x, y).per_image, 1 - ssim_np(x, y, size=7), atol=2e-5)


def test_successful_only_averages_over_the_selected_examples(pair):
    x, x_adv = pair
    every = ssim_distance(x, x_adv)
    mask = np.array([False, True, False, True])
    chosen = ssim_distance(x, x_adv, successful_only=mask)
    np.testing.assert_array_equal(chosen.per_image, every.per_image)
    np.testing.assert_allclose(chosen.mean, every.per_image[[1, 3]].mean())
    assert chosen.count == 2
    none = ssim_distance(x, x_adv, successful_only=np.zeros(4, bool))
    assert np.isnan(none.mean) and none.count == 0


def test_bad_input_is_rejected(pair):
    x, x_adv = pair
    with pytest.raises(ValueError, match="successful_only must be a boolean mask"):
        ssim_distance(x, x_adv, successful_only=np.ones(3, bool))
    with pytest.raises(ValueError, match="same shape"):
        ssim_distance(x, x_adv[:, :16])


# ---------------------------------------------------------------- conventions


def compare_ssim_np(a, b):
    """Old scikit-image ``compare_ssim(a, b, multichannel=True)`` on float images, rewritten in NumPy.

    Its defaults: ``win_size=7`` uniform window, ``use_sample_covariance=True``
    (moments times 49/48), ``data_range`` = the float dtype range [-1, 1] = 2,
    ``K1 = 0.01``, ``K2 = 0.03``; the SSIM map cropped by (7 − 1) / 2 on each
    side (the "valid" positions), averaged, then averaged over channels.
    """
    from numpy.lib.stride_tricks import sliding_window_view

    c1, c2 = (0.01 * 2.0) ** 2, (0.03 * 2.0) ** 2
    scores = []
    for channel in range(a.shape[-1]):
        pa = sliding_window_view(a[..., channel].astype(np.float64), (7, 7)).reshape(-1, 49)
        pb = sliding_window_view(b[..., channel].astype(np.float64), (7, 7)).reshape(-1, 49)
        mu_a, mu_b = pa.mean(1), pb.mean(1)
        var_a, var_b = pa.var(1, ddof=1), pb.var(1, ddof=1)
        cov = ((pa - mu_a[:, None]) * (pb - mu_b[:, None])).sum(1) / 48
        ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
        scores.append(ssim_map.mean())
    return float(np.mean(scores))


def test_skimage_convention_agrees_with_a_numpy_compare_ssim(pair):
    x, x_adv = pair
    result = ssim_distance(x, x_adv, convention="skimage_compare_ssim")
    expected = np.array([1 - compare_ssim_np(a, b) for a, b in zip(x, x_adv)])
    np.testing.assert_allclose(result.per_image, expected, atol=2e-5)
    assert result.convention == "skimage_compare_ssim"
    assert ssim_distance(x, x_adv).convention == "gaussian"


def test_conventions_differ_most_on_flat_noisy_images():
    # ±8/255 noise on a flat grey image: the local variance is the noise's alone, so C2 (L = 2
    # makes it 4× larger) decides the score; a larger L must give a smaller distance.
    rng = np.random.default_rng(3)
    x = np.full((2, 16, 16, 3), 0.5, np.float32)
    x_adv = (x + 8 / 255 * rng.choice([-1.0, 1.0], x.shape)).astype(np.float32)
    gaussian = ssim_distance(x, x_adv).mean
    skimage = ssim_distance(x, x_adv, convention="skimage_compare_ssim").mean
    expected = np.mean([1 - compare_ssim_np(a, b) for a, b in zip(x, x_adv)])
    np.testing.assert_allclose(skimage, expected, atol=2e-5)
    assert skimage < 0.8 * gaussian


def test_unknown_convention_names_the_value(pair):
    x, x_adv = pair
    with pytest.raises(ValueError, match="convention=.*'scipy'"):
        ssim_distance(x, x_adv, convention="scipy")
