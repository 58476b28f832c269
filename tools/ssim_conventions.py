"""Which SSIM convention gives the loss-landscape paper's Table 2? (docs/ssim_conventions.md)

Paper 1 reports mean 1 − SSIM of FGSM 0.049344, PGD 0.008206 and stAdv
0.002801 without saying how SSIM was computed. This script measures, on
CIFAR-10 images from an ``.npz`` (``x`` uint8 or float [N, 32, 32, 3], ``y``),
the 1 − SSIM of several perturbations under the two conventions tfadv offers
(``tfadv.metrics.CONVENTIONS``) and a few others one might suspect
(grayscale, images in [-1, 1] or [0, 255], the other data range):

- a random ±ε sign perturbation (no model needed: FGSM at the same ε is its
  gradient-signed twin and scores within a few thousandths of it);
- FGSM 8/255 and stAdv (unbounded; bounded by the released code's 0.05 grid
  units; bounded by the paper's 0.3/64 grid units) against a ResNet-20
  trained for ``--epochs`` on the other images of the file.

    python tools/ssim_conventions.py --data ../shared/data/cifar10_mini_train.npz --examples 500 --epochs 4

Investigation only: the numbers depend on the model, which is far weaker than
the paper's; CI never runs it.
"""
import argparse
import time

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

PAPER = {"FGSM 8/255": 0.049344, "PGD": 0.008206, "stAdv": 0.002801}


def ssim_numpy(x, y, window="gaussian", size=11, data_range=1.0, sample_covariance=False, gray=False,
               scale=1.0, shift=0.0):
    """Mean SSIM per image [N, H, W, C] under a convention, float64, valid window positions, per channel."""
    x = np.asarray(x, np.float64) * scale + shift
    y = np.asarray(y, np.float64) * scale + shift
    if gray:  # ITU-R 709 luma, as skimage.color.rgb2gray
        luma = np.array([0.2125, 0.7154, 0.0721])
        x, y = (x * luma).sum(-1, keepdims=True), (y * luma).sum(-1, keepdims=True)
    if window == "gaussian":
        g = np.exp(-((np.arange(size) - (size - 1) / 2) ** 2) / (2 * 1.5**2))
        weights = np.outer(g, g) / np.outer(g, g).sum()
    else:
        weights = np.full((size, size), 1.0 / size**2)
    moment_scale = size * size / (size * size - 1) if sample_covariance else 1.0
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def blur(images):
        return np.einsum("nhwij,ij->nhw", sliding_window_view(images, (size, size), axis=(1, 2)), weights)

    scores = []
    for c in range(x.shape[-1]):
        a, b = x[..., c], y[..., c]
        mu_a, mu_b = blur(a), blur(b)
        var_a = moment_scale * (blur(a * a) - mu_a**2)
        var_b = moment_scale * (blur(b * b) - mu_b**2)
        cov = moment_scale * (blur(a * b) - mu_a * mu_b)
        ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
        scores.append(ssim_map.mean(axis=(1, 2)))
    return np.mean(scores, axis=0)


OTHER_CONVENTIONS = {
    "gaussian, L = 2": dict(data_range=2.0),
    "uniform 7, sample cov., L = 1": dict(window="uniform", size=7, sample_covariance=True),
    "compare_ssim defaults on [-1, 1] images (L = 2)": dict(window="uniform", size=7, sample_covariance=True,
                                                             data_range=2.0, scale=2.0, shift=-1.0),
    "compare_ssim defaults on [0, 255] float images (L = 2)": dict(window="uniform", size=7,
                                                                    sample_covariance=True, data_range=2.0,
                                                                    scale=255.0),
    "grayscale, gaussian, L = 1": dict(gray=True),
    "grayscale, compare_ssim defaults (L = 2)": dict(window="uniform", size=7, sample_covariance=True,
                                                     data_range=2.0, gray=True),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help=".npz with x [N, 32, 32, 3] and y")
    parser.add_argument("--examples", type=int, default=500, help="images measured (the first N)")
    parser.add_argument("--epochs", type=int, default=4, help="ResNet-20 training epochs on the rest (0: no model)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import keras

    from tfadv import models
    from tfadv.attacks import AttackSpec
    from tfadv.evaluation.specs import paper1_stadv
    from tfadv.metrics import CONVENTIONS, ssim_distance

    with np.load(args.data) as data:
        x, y = data["x"], data["y"].astype(np.int64)
    x = (x.astype(np.float32) / 255.0) if x.dtype == np.uint8 else x.astype(np.float32)
    x_eval, y_eval = x[:args.examples], y[:args.examples]
    rng = np.random.default_rng(args.seed)
    perturbed = {}
    for k in (8, 1):
        signs = rng.choice([-1.0, 1.0], x_eval.shape)
        perturbed[f"random sign ±{k}/255"] = np.clip(x_eval + k / 255 * signs, 0, 1).astype(np.float32)
    if args.epochs:
        keras.utils.set_random_seed(args.seed)
        x_train, y_train = x[args.examples:], y[args.examples:]
        model = models.build("resnet20", mean=x_train.mean((0, 1, 2)), std=x_train.std((0, 1, 2)))
        model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
        started = time.time()
        model.fit(x_train, y_train, batch_size=128, epochs=args.epochs, verbose=2)
        accuracy = model.evaluate(x_eval, y_eval, verbose=0)[1]
        print(f"ResNet-20: {time.time() - started:.0f} s, clean accuracy {accuracy:.3f} on the measured images")
        attacks = {
            "FGSM 8/255": AttackSpec("fgsm", eps=8 / 255),
            "stAdv unbounded (τ 0.05)": AttackSpec("stadv"),
            "stAdv ≤ 0.05 grid (released code)": paper1_stadv(flow_bound=0.05),
            "stAdv ≤ 0.3/64 grid (paper)": paper1_stadv(),
        }
        for name, spec in attacks.items():
            perturbed[name] = np.concatenate([
                np.asarray(spec.run(model, x_eval[i:i + 100], y_eval[i:i + 100], batch_index=i // 100))
                for i in range(0, len(x_eval), 100)])
    names = list(perturbed)
    print(f"\nMean 1 − SSIM over the first {len(x_eval)} images of {args.data}; paper 1, Table 2: "
          + ", ".join(f"{k} {v}" for k, v in PAPER.items()))
    print("| convention | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for convention in CONVENTIONS:
        cells = [ssim_distance(x_eval, perturbed[n], convention=convention).mean for n in names]
        print(f"| tfadv `{convention}` | " + " | ".join(f"{c:.5f}" for c in cells) + " |")
    for label, options in OTHER_CONVENTIONS.items():
        cells = [1 - ssim_numpy(x_eval, perturbed[n], **options).mean() for n in names]
        print(f"| {label} | " + " | ".join(f"{c:.5f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
