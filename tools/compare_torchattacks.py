"""tfadv's AutoAttack against torchattacks', on the same weights and the same images.

Not library API, and neither torch nor torchattacks becomes a dependency of
tfadv or its tests: the PyTorch side runs in a separate Python (a virtual
environment of its own, ``.peer-venv/`` in the repository, which git
ignores), started as a subprocess of this script. ``--install-peer`` makes
that environment once (``python -m venv`` and ``pip install torch
torchvision torchattacks``); ``--torch-python`` names another Python that
has them. Run it with tfadv's own Python::

    .venv/bin/python tools/compare_torchattacks.py --install-peer \\
        --data ../shared/data/cifar10_mini_train.npz --images 64 --eps 2/255

What it does:

1. trains issue 20's small CNN (Conv 32 → max-pool → Conv 64 → max-pool →
   Dense 128 → Dense 10, ReLU, 3×3 'same' convolutions, no BN) with Adam for
   ``--epochs`` on the .npz (keys ``x`` uint8 NHWC or floats in [0, 1], ``y``),
   keeping its last ``--images`` images out of training: those are the
   attacked images (the CIFAR-10 subset has no test split);
2. writes the weights and images to an .npz in a temporary folder (no
   pickle) and runs ``--torch-python`` on this same file with ``--torch-side``,
   which builds the identical PyTorch model from it (the flatten is done in
   NHWC order, so the Dense weights are used as they are), checks that the
   logits agree, and times torchattacks;
3. times tfadv on the same images and prints both, the ratio of wall times
   and the robust accuracies.

Two torchattacks configurations are timed, because torchattacks 3.5.1's
``AutoAttack(version='standard')`` is not the reference's standard version:
it builds ``APGD``, ``APGDT`` and ``FAB`` with their default ``steps=10``
(the reference, ``fra31/auto-attack``, runs 100) and ``Square`` with
``resc_schedule=True`` (the reference passes ``False``):

- ``torchattacks AutoAttack`` as shipped, compared with tfadv's
  ``autoattack(..., steps=10, ...)`` (the same budget; tfadv's Square keeps
  the reference's schedule);
- ``torchattacks reference settings``: torchattacks' ``MultiAttack`` of
  ``APGD(steps=100)``, ``APGDT(steps=100)``, ``FAB(multi_targeted=True,
  steps=100)`` and ``Square(n_queries=5000, resc_schedule=False)``, the
  reference's standard version, compared with tfadv's standard
  ``autoattack``.

``--components`` also runs each component alone on all images at every ε
(APGD-CE, APGD-T, FAB-T, Square) in both libraries and prints the robust
accuracies side by side (issue 19: they should agree within one point).

Wall times include tfadv's tracing on the first call (printed separately
from a second call). Both sides use the same cores, one after the other.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _peer  # noqa: E402

COMPONENT_NAMES = ("apgd-ce", "apgd-t", "fab-t", "square")


def _fraction(text):
    if "/" in text:
        top, bottom = text.split("/")
        return float(top) / float(bottom)
    return float(text)


# ----------------------------------------------------------------------------- torch side


def _torch_model(weights):
    import torch
    from torch import nn

    class SmallCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 32, 3, padding=1)
            self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
            self.dense1 = nn.Linear(weights["dense1_kernel"].shape[0], 128)
            self.dense2 = nn.Linear(128, 10)

        def forward(self, x):  # x: NCHW in [0, 1]
            x = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
            x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
            x = x.permute(0, 2, 3, 1).flatten(1)  # Keras' NHWC flatten order
            return self.dense2(torch.relu(self.dense1(x)))

    model = SmallCNN()
    with torch.no_grad():
        for name in ("conv1", "conv2"):
            getattr(model, name).weight.copy_(torch.from_numpy(weights[f"{name}_kernel"].transpose(3, 2, 0, 1)))
            getattr(model, name).bias.copy_(torch.from_numpy(weights[f"{name}_bias"]))
        for name in ("dense1", "dense2"):
            getattr(model, name).weight.copy_(torch.from_numpy(weights[f"{name}_kernel"].T))
            getattr(model, name).bias.copy_(torch.from_numpy(weights[f"{name}_bias"]))
    return model.eval()


def torch_side(in_path, out_path):
    """Run in the peer environment: time torchattacks, write the results as JSON."""
    import torch
    import torchattacks
    from torchattacks import APGD, APGDT, FAB, MultiAttack, Square

    data = dict(np.load(in_path))
    settings = json.loads(str(data["settings"]))
    if settings.get("threads"):
        torch.set_num_threads(settings["threads"])
    model = _torch_model(data)
    x = torch.from_numpy(data["x"].transpose(0, 3, 1, 2).copy())
    y = torch.from_numpy(data["y"].astype(np.int64))
    with torch.no_grad():
        logits = model(x).numpy()
    results = {"torch": torch.__version__, "torchattacks": torchattacks.__version__,
               "logit_max_difference": float(np.max(np.abs(logits - data["logits"]))),
               "threads": torch.get_num_threads(), "runs": []}

    def robust(x_adv):
        with torch.no_grad():
            return (model(x_adv).argmax(1) == y).numpy()

    def timed(name, eps, attack):
        start = time.perf_counter()
        x_adv = attack(x, y)
        seconds = time.perf_counter() - start
        mask = robust(x_adv)
        results["runs"].append({"name": name, "eps": eps, "seconds": seconds,
                                "robust": float(mask.mean()), "robust_mask": mask.astype(int).tolist()})
        print(f"  torch  {name:<28s} eps={eps:.5f}  {seconds:7.1f} s  robust {mask.mean():.3f}", flush=True)

    def reference_components(eps, steps, seed):
        return [
            APGD(model, eps=eps, steps=steps, n_restarts=1, loss="ce", rho=0.75, seed=seed),
            APGDT(model, eps=eps, steps=steps, n_restarts=1, n_classes=10, rho=0.75, seed=seed),
            FAB(model, eps=eps, steps=steps, n_restarts=1, multi_targeted=True, n_classes=10, seed=seed),
            Square(model, eps=eps, n_queries=5000, n_restarts=1, p_init=0.8, resc_schedule=False, seed=seed),
        ]

    for eps in settings["eps"]:
        if settings["whole"]:
            timed("AutoAttack (as shipped)", eps, torchattacks.AutoAttack(model, eps=eps, version="standard",
                                                                           n_classes=10, seed=0))
            timed("reference settings", eps, MultiAttack(reference_components(eps, 100, 0)))
        if settings["components"]:
            for name, attack in zip(COMPONENT_NAMES, reference_components(eps, 100, 0)):
                timed(name, eps, attack)
    with open(out_path, "w") as handle:
        json.dump(results, handle)


# ----------------------------------------------------------------------------- tfadv side


def run_torch_side(torch_python, script, data_path, settings, **arrays):
    """``_peer.run_torch_side`` for a tool whose command line needs ``--data``."""
    return _peer.run_torch_side(torch_python, script, settings, ["--data", data_path], **arrays)


def tensorflow_side_setup(threads, data_path):
    """Limit TensorFlow to ``threads`` (0: its default) and load ``data_path``'s images in
    [0, 1] (uint8 images are divided by 255) and int64 labels."""
    _peer.limit_tensorflow_threads(threads)
    with np.load(data_path, allow_pickle=False) as data:
        x_all, y_all = data["x"], data["y"].astype(np.int64)
    x_all = (x_all.astype(np.float32) / 255.0) if x_all.dtype == np.uint8 else x_all.astype(np.float32)
    return x_all, y_all


def _build_and_train(x, y, epochs, seed):
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(10),
    ])
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x, y, epochs=epochs, batch_size=64, verbose=0)
    return model


def _weights(model):
    convs = [layer for layer in model.layers if layer.__class__.__name__ == "Conv2D"]
    denses = [layer for layer in model.layers if layer.__class__.__name__ == "Dense"]
    out = {}
    for prefix, layers in (("conv", convs), ("dense", denses)):
        for number, layer in enumerate(layers, start=1):
            kernel, bias = layer.get_weights()
            out[f"{prefix}{number}_kernel"] = kernel.astype(np.float32)
            out[f"{prefix}{number}_bias"] = bias.astype(np.float32)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help=".npz with x (images) and y (labels)")
    parser.add_argument("--images", type=int, default=64, help="attacked images (held out of training)")
    parser.add_argument("--eps", default="2/255", help="comma-separated radii, e.g. 1/255,2/255")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--components", action="store_true", help="also each component alone")
    parser.add_argument("--no-whole", action="store_true", help="skip the whole AutoAttack")
    parser.add_argument("--seed", type=int, default=0)
    _peer.add_peer_arguments(parser)
    args = parser.parse_args(argv)
    if args.torch_side:
        return torch_side(*args.torch_side)
    _peer.check_torch_python(parser, args)

    x_all, y_all = tensorflow_side_setup(args.threads, args.data)

    import tensorflow as tf

    import tfadv
    from tfadv.attacks import apgd, apgd_targeted, autoattack, fab_targeted, square

    x_train, y_train = x_all[:-args.images], y_all[:-args.images]
    x, y = x_all[-args.images:], y_all[-args.images:]
    eps_list = [_fraction(text) for text in args.eps.split(",")]

    start = time.perf_counter()
    model = _build_and_train(x_train, y_train, args.epochs, args.seed)
    logits = model(x, training=False).numpy()
    print(f"trained {args.epochs} epochs on {len(x_train)} images in {time.perf_counter() - start:.0f} s; "
          f"clean accuracy on the {len(x)} attacked images {np.mean(logits.argmax(1) == y):.3f}", flush=True)

    settings = {"eps": eps_list, "components": args.components, "whole": not args.no_whole,
                "threads": args.threads}
    torch_results = run_torch_side(args.torch_python, __file__, args.data, settings,
                                   x=x, y=y, logits=logits, **_weights(model))
    print(f"torch {torch_results['torch']}, torchattacks {torch_results['torchattacks']}, "
          f"{torch_results['threads']} threads; largest logit difference {torch_results['logit_max_difference']:.2e}")

    runs = []

    def timed(name, eps, attack):
        start = time.perf_counter()
        x_adv = attack()
        x_adv = np.asarray(x_adv)
        seconds = time.perf_counter() - start
        mask = model(x_adv, training=False).numpy().argmax(1) == y
        runs.append({"name": name, "eps": eps, "seconds": seconds, "robust": float(mask.mean())})
        print(f"  tfadv  {name:<28s} eps={eps:.5f}  {seconds:7.1f} s  robust {mask.mean():.3f}", flush=True)

    for eps in eps_list:
        if settings["whole"]:
            timed("AutoAttack steps=10 (1st)", eps, lambda: autoattack(model, x, y, eps, seed=0, steps=10))
            timed("AutoAttack standard (1st)", eps, lambda: autoattack(model, x, y, eps, seed=0))
            timed("AutoAttack standard (2nd)", eps, lambda: autoattack(model, x, y, eps, seed=0))
        if args.components:
            for name, attack in (
                ("apgd-ce", lambda: apgd(model, x, y, eps, steps=100, seed=0)),
                ("apgd-t", lambda: apgd_targeted(model, x, y, eps, steps=100, seed=0)),
                ("fab-t", lambda: fab_targeted(model, x, y, eps, steps=100, seed=0)),
                ("square", lambda: square(model, x, y, eps, queries=5000, seed=0)),
            ):
                timed(name, eps, attack)

    def find(results, name, eps):
        return next(run for run in results if run["name"] == name and abs(run["eps"] - eps) < 1e-9)

    print(f"\ntfadv {tfadv.__version__} (TF {tf.__version__}); {len(x)} images; threads "
          f"{args.threads or 'default'}; ratio = torch seconds / tfadv "
          "seconds (> 1: tfadv faster)")
    print("| ε | comparison | torchattacks s | tfadv s | ratio | robust torch | robust tfadv |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for eps in eps_list:
        rows = []
        if settings["whole"]:
            rows += [("AutoAttack as shipped (steps 10) vs tfadv steps=10, 1st call",
                      "AutoAttack (as shipped)", "AutoAttack steps=10 (1st)"),
                     ("reference settings (steps 100) vs tfadv standard, 1st call",
                      "reference settings", "AutoAttack standard (1st)"),
                     ("reference settings (steps 100) vs tfadv standard, 2nd call",
                      "reference settings", "AutoAttack standard (2nd)")]
        if args.components:
            rows += [(f"{name} alone", name, name) for name in COMPONENT_NAMES]
        for label, torch_name, tf_name in rows:
            a, b = find(torch_results["runs"], torch_name, eps), find(runs, tf_name, eps)
            print(f"| {eps * 255:.0f}/255 | {label} | {a['seconds']:.1f} | {b['seconds']:.1f} | "
                  f"{a['seconds'] / b['seconds']:.2f} | {a['robust']:.3f} | {b['robust']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
