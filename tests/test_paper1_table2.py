"""Paper 1's Table 2 on the stored augmentation set: a tiny fine-tuning run through the library,
its summary.json and `tfadv eval`'s table, against an independent NumPy SSIM."""
import json
import os

import h5py
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from tfadv.config import load_config
from tfadv.data import load_arrays
from tfadv.evaluation import evaluate, format_report, ssim_table, stored_set_table
from tfadv.training import train_from_config

TINY = {
    "model": {"name": "tiny"},
    "data": {"source": "digits", "limit_train": 48, "limit_test": 16, "batch_size": 16, "augment": False},
    "train": {"epochs": 1, "verbose": 0, "learning_rate": 0.05},
}


def ssim_np(a, b, window, data_range, sample_covariance):
    """Mean SSIM of one image pair [H, W, C]: every valid window position, per channel, float64."""
    size = window.shape[0]
    n = size * size
    scale = n / (n - 1) if sample_covariance else 1.0
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    weights = window.reshape(-1)
    scores = []
    for channel in range(a.shape[-1]):
        pa = sliding_window_view(a[..., channel].astype(np.float64), (size, size)).reshape(-1, n)
        pb = sliding_window_view(b[..., channel].astype(np.float64), (size, size)).reshape(-1, n)
        mu_a, mu_b = pa @ weights, pb @ weights
        var_a = scale * ((pa - mu_a[:, None]) ** 2 @ weights)
        var_b = scale * ((pb - mu_b[:, None]) ** 2 @ weights)
        cov = scale * (((pa - mu_a[:, None]) * (pb - mu_b[:, None])) @ weights)
        ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
        scores.append(ssim_map.mean())
    return float(np.mean(scores))


def gaussian_window(size, sigma=1.5):
    g = np.exp(-((np.arange(size) - (size - 1) / 2) ** 2) / (2 * sigma**2))
    return np.outer(g, g) / np.outer(g, g).sum()


@pytest.fixture(scope="module")
def finetuned_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper1")
    clean = train_from_config(load_config(data={**TINY, "name": "clean", "output_dir": str(root)}))
    config = load_config(data={**TINY, "name": "ft-fgsm", "output_dir": str(root),
                               "model": {"name": "tiny", "init_from": clean.run_dir},
                               "method": {"kind": "finetune", "attack": {"name": "fgsm", "eps": "8/255"}}})
    return train_from_config(config).run_dir


def test_summary_holds_the_stored_sets_distance_against_numpy(finetuned_run):
    with open(os.path.join(finetuned_run, "summary.json"), encoding="utf-8") as handle:
        record = json.load(handle)["stored_adversarial_set"]
    x, _ = load_arrays("digits", "train")
    x = x[:48]
    with h5py.File(os.path.join(finetuned_run, "adversarial_examples.h5"), "r") as stored:
        x_adv = stored["adversarial_images"][...]
    assert np.abs(x_adv - x).max() > 0.02  # a real perturbation, so the distance is not trivially 0
    assert x.shape[1:] == (32, 32, 3)  # digits come upscaled to CIFAR's shape: full 11 × 11 window
    gaussian = np.mean([1 - ssim_np(a, b, gaussian_window(11), 1.0, False) for a, b in zip(x, x_adv)])
    skimage = np.mean([1 - ssim_np(a, b, np.full((7, 7), 1 / 49), 2.0, True) for a, b in zip(x, x_adv)])
    assert record["population"] == "stored training set (all)" and record["num_examples"] == 48
    assert record["attack"] == {"name": "fgsm", "eps": 8 / 255}
    np.testing.assert_allclose(record["ssim_distance"]["gaussian"], gaussian, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(record["ssim_distance"]["skimage_compare_ssim"], skimage, rtol=1e-4, atol=1e-6)
    assert record["ssim_distance"]["gaussian"] > 0.01


def test_eval_of_the_run_shows_the_stored_set_column(finetuned_run, tmp_path):
    with open(os.path.join(finetuned_run, "summary.json"), encoding="utf-8") as handle:
        stored = json.load(handle)["stored_adversarial_set"]["ssim_distance"]
    x, y = load_arrays("digits", "test")
    for convention in ("gaussian", "skimage_compare_ssim"):
        results = evaluate({"ft": finetuned_run}, x[:16], y[:16], [{"name": "fgsm", "eps": "8/255"}], tmp_path,
                           ssim_convention=convention, progress=False, jit_compile=False, plots=False)
        assert results["plan"]["ssim_convention"] == convention
        assert ssim_table(results).header == ["Model", "FGSM ε=8/255 (test, flipped)", "FGSM ε=8/255 (test, all)"]
        table = stored_set_table(results)
        assert table.header[1:] == ["Stored set crafted by", "Training images", "1 − SSIM (stored training set, all)"]
        assert table.rows == [["ft", "FGSM ε=8/255", "48", pytest.approx(stored[convention])]]
        assert repr(convention) in table.title and repr(convention) in ssim_table(results).title
        assert "1 − SSIM (stored training set, all)" in format_report(results)
    # The second evaluation reused the stored attack part: both conventions were stored at once.
    part = next(iter(p for p in results["models"]["ft"]["parts"].values() if p["attack"]))
    assert set(part["ssim_distances"]) == {"gaussian", "skimage_compare_ssim"}
    assert part["ssim_distances"]["gaussian"]["all"] == part["ssim_distance_all"]


def test_the_stored_sets_distance_is_measured_once_and_dropped_when_the_set_changes(finetuned_run, tmp_path):
    import shutil

    from tfadv.training.methods import stored_set_ssim_distance

    path = str(tmp_path / "set.h5")
    shutil.copy(os.path.join(finetuned_run, "adversarial_examples.h5"), path)
    x, y = load_arrays("digits", "train")
    x, y = x[:48], y[:48]
    first = stored_set_ssim_distance(path, x, y)
    # A resumed run reads the record kept in the file instead of measuring every image again:
    # a planted value comes back, which a recomputation could not return.
    with h5py.File(path, "a") as stored:
        planted = json.loads(stored.attrs["ssim_distance_record"])
        planted["ssim_distance"]["gaussian"] = 123.0
        stored.attrs["ssim_distance_record"] = json.dumps(planted)
    assert stored_set_ssim_distance(path, x, y)["ssim_distance"]["gaussian"] == 123.0
    # Regenerating part of the set drops the record, so the next call measures again.
    with h5py.File(path, "a") as stored:
        stored.attrs["completed"] = 16
    from tfadv.attacks import AttackSpec
    from tfadv.models import load_model
    from tfadv.training.methods import generate_adversarial_examples

    model = load_model(os.path.join(os.path.dirname(finetuned_run), "clean"))
    generate_adversarial_examples(model, x, y, AttackSpec("fgsm", eps=8 / 255), path, 16, False)
    assert stored_set_ssim_distance(path, x, y) == first
