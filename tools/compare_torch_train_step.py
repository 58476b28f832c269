"""tfadv's training steps against PyTorch eager's, side by side, on the same ResNet-20 and batch.

Issue 20, point 5: the adversarial training step must stay at least 1.25×
as fast as PyTorch eager's. Not library API, and torch never becomes a
dependency of tfadv or its tests: the PyTorch side runs in the peer Python
(``--torch-python``, default the repository's ``.peer-venv/``;
``--install-peer`` makes it once), started as a subprocess on this same file
(``tools/_peer.py``). Run it with tfadv's own Python::

    nice python tools/compare_torch_train_step.py --install-peer

Two steps are timed in each library on the same random batch (default 128
images 32×32×3, 10 classes; ``tfadv.bench.train.random_batch``):

- **clean**: forward in training mode, mean cross-entropy, backward, one
  SGD step (learning rate 0.01, momentum 0.9);
- **PGD-7**: L∞ PGD, 7 signed-gradient steps of 2/255 in the 8/255 ball from
  a uniform random start, crafted with the model in inference mode, then
  one clean-step-like update on the adversarial batch only (Madry et al.'s
  min-max training; no clean pass).

The tfadv side is exactly what ``tfadv bench train`` times as ``clean`` and
``pgd7``: the models of ``tfadv.bench.train.clean_and_pgd7_trainers``
(``build("resnet20")`` compiled with SGD(0.01, momentum=0.9); the second
wrapped by ``methods.wrap(..., "adversarial", attack=pgd7_attack())``),
each step one ``train_on_batch``. The PyTorch side is plain eager PyTorch:
``model.eval()`` while crafting (input gradients by ``torch.autograd.grad``,
so no parameter gradient is accumulated), ``model.train()``,
``F.cross_entropy``, ``loss.backward()``, ``torch.optim.SGD(lr=0.01,
momentum=0.9)``; no ``torch.compile``. Both sides also compute the step's
accuracy and read the loss back as a Python number, as ``train_on_batch``
does.

The PyTorch ResNet-20 is tfadv's, layer for layer (``tfadv/models/resnet_cifar.py``):
the per-channel input normalization, a bias-free 3×3 convolution → BN →
ReLU stem, three stages of three basic blocks (conv → BN → ReLU → conv → BN,
plus the shortcut, → ReLU) of 16, 32 and 64 channels, option-A shortcuts
(subsample by 2, zero-pad the channels evenly front and back), global average
pooling and a dense layer. BN epsilon and momentum are read from the Keras
layers (1e-5, Keras momentum 0.9 = PyTorch momentum 0.1). A stride-2
convolution pads as TensorFlow's ``"same"`` does (one row and column at the
bottom and right only; ``padding=1`` would shift every window by one
pixel), with one ``F.pad`` before it. PyTorch's running variance is updated
with the unbiased batch variance, Keras' with the biased one: the same work.

The weights are tfadv's: after the tfadv side's timing (so that the BN
moving statistics have moved and the check covers every array) the PGD-7
model's weights go to the PyTorch model through an .npz, under the names of
its ``state_dict`` (kernels HWIO → OIHW, γ/β/moving mean/variance → weight,
bias, running_mean, running_var, the dense kernel transposed); the PyTorch
side stops with an error unless its inference-mode logits on the batch agree
with Keras' within 1e-3. Both PyTorch models (clean and PGD-7) start from
these weights, each with its own optimizer, as the two Keras models have.

Timing: two warm-up calls of each step, then ``--repeats`` rounds in which
each step runs once (interleaved, so a change of the machine's load falls on
both), the median per step (``_peer.interleaved_median_ms``). tfadv is timed
first, then PyTorch in its subprocess; both use the same threads (``--threads
N`` sets both; 0 leaves each library's default).
"""
import argparse
import copy
import json
import math
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _peer  # noqa: E402

SPEED_TARGET = 1.25
"""Issue 20, point 5: PyTorch eager ms / tfadv ms of the PGD-7 training step, at least."""
LOGIT_TOLERANCE = 1e-3
MODEL_NAME = "resnet20"
NUM_CLASSES = 10


# ----------------------------------------------------------------------------- the weights


def torch_state_arrays(model):
    """The CIFAR ResNet ``model``'s weights under the names of :func:`torch_resnet`'s ``state_dict``.

    Walks the Keras model's layers in order: every weighted layer of a CIFAR
    ResNet with option-A shortcuts lies on one chain (the shortcuts carry no
    weights), so the i-th Conv2D is followed by the i-th BatchNormalization
    and the pairs are the stem, then each block's first and second
    convolution. (The logit check of the PyTorch side verifies the mapping.)

    Returns:
        dict of float32 arrays: ``input_mean`` and ``input_std`` ``[1, C, 1, 1]``;
        ``<conv>.weight`` ``[O, I, H, W]``; ``<bn>.weight``, ``.bias``,
        ``.running_mean``, ``.running_var``; ``logits.weight`` ``[K, F]`` and
        ``logits.bias``.
    """
    import keras

    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    normalizations = [layer for layer in model.layers if isinstance(layer, keras.layers.Normalization)]
    denses = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    if len(convs) != len(norms) or (len(convs) - 1) % 6 or len(normalizations) != 1 or len(denses) != 1:
        raise ValueError("model must be a CIFAR ResNet of tfadv.models.build (input normalization, 6n + 1 "
                         "convolutions each followed by BN, one Dense). Received: "
                         f"model={model.name!r} with {len(convs)} Conv2D, {len(norms)} BatchNormalization, "
                         f"{len(normalizations)} Normalization and {len(denses)} Dense layers")
    (normalization,), (dense,) = normalizations, denses
    blocks = (len(convs) - 1) // 2
    names = [("conv", "bn")] + [(f"blocks.{block}.conv{which}", f"blocks.{block}.bn{which}")
                                for block in range(blocks) for which in (1, 2)]

    def array(variable):
        return np.asarray(keras.ops.convert_to_numpy(variable), dtype=np.float32)

    config = normalization.get_config()
    arrays = {
        "input_mean": np.asarray(config["mean"], np.float32).reshape(1, -1, 1, 1),
        "input_std": np.sqrt(np.asarray(config["variance"], np.float32)).reshape(1, -1, 1, 1),
        "logits.weight": array(dense.kernel).T.copy(),
        "logits.bias": array(dense.bias),
    }
    for (conv_name, norm_name), conv, norm in zip(names, convs, norms):
        arrays[f"{conv_name}.weight"] = array(conv.kernel).transpose(3, 2, 0, 1).copy()  # HWIO → OIHW
        arrays[f"{norm_name}.weight"] = array(norm.gamma)
        arrays[f"{norm_name}.bias"] = array(norm.beta)
        arrays[f"{norm_name}.running_mean"] = array(norm.moving_mean)
        arrays[f"{norm_name}.running_var"] = array(norm.moving_variance)
    return arrays


def torch_resnet_settings(model):
    """What :func:`torch_resnet` needs besides the arrays: depth, width, classes, BN settings
    (PyTorch's momentum convention: the weight of the new batch, 1 − Keras' momentum)."""
    import keras

    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    settings = {(float(norm.epsilon), float(norm.momentum)) for norm in norms}
    if len(settings) != 1:
        raise ValueError(f"every BatchNormalization must share epsilon and momentum. Received: {sorted(settings)}")
    ((epsilon, momentum),) = settings
    return {"depth": len(convs) + 1, "width": int(convs[0].filters), "num_classes": int(model.output.shape[-1]),
            "bn_epsilon": epsilon, "bn_momentum": 1.0 - momentum}


# ----------------------------------------------------------------------------- torch side


def torch_resnet(depth, width, num_classes, bn_epsilon, bn_momentum):
    """The PyTorch twin of ``tfadv.models.build("resnet<depth>")`` (module docstring)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class SameConv(nn.Conv2d):
        """Bias-free 3×3 convolution padded as TensorFlow's ``"same"``: for stride 2 the
        extra row and column go at the bottom and right only."""

        def __init__(self, in_channels, out_channels, stride):
            super().__init__(in_channels, out_channels, 3, stride=stride, padding=1 if stride == 1 else 0,
                             bias=False)

        def forward(self, x):
            if self.stride[0] != 1:
                pad_h, pad_w = (max((math.ceil(size / self.stride[0]) - 1) * self.stride[0] + 3 - size, 0)
                                for size in x.shape[-2:])
                x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
            return super().forward(x)

    def batch_norm(channels):
        return nn.BatchNorm2d(channels, eps=bn_epsilon, momentum=bn_momentum)

    class BasicBlock(nn.Module):
        def __init__(self, in_channels, channels, stride):
            super().__init__()
            self.conv1, self.bn1 = SameConv(in_channels, channels, stride), batch_norm(channels)
            self.conv2, self.bn2 = SameConv(channels, channels, 1), batch_norm(channels)
            self.stride, self.extra_channels = stride, channels - in_channels

        def forward(self, x):
            out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
            shortcut = x
            if self.stride != 1 or self.extra_channels:  # option A: subsample, zero-pad channels
                extra = self.extra_channels
                shortcut = F.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, extra // 2, extra - extra // 2))
            return F.relu(out + shortcut)

    class CifarResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("input_mean", torch.zeros(1, 3, 1, 1))
            self.register_buffer("input_std", torch.ones(1, 3, 1, 1))
            self.conv, self.bn = SameConv(3, width, 1), batch_norm(width)
            blocks, in_channels = [], width
            for stage, channels in enumerate((width, 2 * width, 4 * width)):
                for block in range((depth - 2) // 6):
                    blocks.append(BasicBlock(in_channels, channels, 2 if stage > 0 and block == 0 else 1))
                    in_channels = channels
            self.blocks = nn.Sequential(*blocks)
            self.logits = nn.Linear(4 * width, num_classes)

        def forward(self, x):  # x: NCHW in [0, 1]
            x = (x - self.input_mean) / self.input_std
            x = self.blocks(F.relu(self.bn(self.conv(x))))
            return self.logits(x.mean((2, 3)))

    return CifarResNet()


def torch_side(in_path, out_path):
    """Run in the peer Python: build and check the PyTorch ResNet, time both steps, write JSON."""
    import torch
    import torch.nn.functional as F

    arrays, settings = _peer.read_torch_side_input(in_path)
    if settings["threads"]:
        torch.set_num_threads(settings["threads"])
        torch.set_num_interop_threads(settings["threads"])
    torch.manual_seed(settings["seed"])
    x = torch.from_numpy(arrays.pop("x").transpose(0, 3, 1, 2).copy())
    y = torch.from_numpy(arrays.pop("y").astype(np.int64))
    keras_logits = arrays.pop("logits")

    model = torch_resnet(**settings["model"])
    missing, unexpected = model.load_state_dict({name: torch.from_numpy(a) for name, a in arrays.items()},
                                                strict=False)
    if unexpected or any(not name.endswith("num_batches_tracked") for name in missing):
        sys.exit(f"the exported arrays do not fit the PyTorch ResNet: missing {missing}, unexpected {unexpected}")
    with torch.no_grad():
        difference = float(np.max(np.abs(model.eval()(x).numpy() - keras_logits)))
    if not difference <= LOGIT_TOLERANCE:
        sys.exit(f"PyTorch and Keras logits differ by up to {difference:.3g} (> {LOGIT_TOLERANCE}): "
                 "the models are not the same; nothing timed")

    eps, step_size, steps = settings["eps"], settings["step_size"], settings["steps"]
    lower, upper = (x - eps).clamp(min=0.0), (x + eps).clamp(max=1.0)

    def train_step(model, optimizer, images):
        model.train()
        optimizer.zero_grad()
        logits = model(images)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        optimizer.step()
        return loss.item(), (logits.argmax(1) == y).float().mean().item()

    def pgd(model):
        model.eval()
        x_adv = (x + eps * (2 * torch.rand_like(x) - 1)).clamp(0.0, 1.0)
        for _ in range(steps):
            x_adv.requires_grad_(True)
            # The sum, as tfadv's per-example loss: a batch mean would shrink every gradient by 1/B.
            loss = F.cross_entropy(model(x_adv), y, reduction="sum")
            (gradient,) = torch.autograd.grad(loss, x_adv)
            x_adv = torch.clamp(x_adv.detach() + step_size * gradient.sign(), lower, upper)
        return x_adv

    models = {name: copy.deepcopy(model) for name in ("clean", "pgd7")}
    optimizers = {name: torch.optim.SGD(models[name].parameters(), lr=settings["learning_rate"],
                                        momentum=settings["momentum"]) for name in models}
    ms = _peer.interleaved_median_ms({
        "clean": lambda: train_step(models["clean"], optimizers["clean"], x),
        "pgd7": lambda: train_step(models["pgd7"], optimizers["pgd7"], pgd(models["pgd7"])),
    }, settings["repeats"])
    with open(out_path, "w") as handle:
        json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(),
                   "interop_threads": torch.get_num_interop_threads(),
                   "logit_max_difference": difference, "clean_ms": ms["clean"], "pgd7_ms": ms["pgd7"]}, handle)


# ----------------------------------------------------------------------------- tfadv side


def tfadv_side(batch_size, repeats, seed):
    """Time ``tfadv bench train``'s ``clean`` and ``pgd7`` steps; then the PGD-7 model's
    weights (as :func:`torch_state_arrays`), its settings and its inference-mode logits."""
    import keras
    import tensorflow as tf

    from tfadv.bench import train as bench_train

    keras.utils.set_random_seed(seed)
    x_array, y_array = bench_train.random_batch(batch_size, seed, num_classes=NUM_CLASSES)
    x, y = tf.constant(x_array), tf.constant(y_array)
    trainers = bench_train.clean_and_pgd7_trainers(MODEL_NAME)
    ms = _peer.interleaved_median_ms({name: (lambda t=trainer: t.train_on_batch(x, y))
                                      for name, trainer in trainers.items()}, repeats)
    inner = trainers["pgd7"].inner
    return {
        "ms": ms,
        "x": x_array, "y": y_array,
        "logits": keras.ops.convert_to_numpy(inner(x, training=False)).astype(np.float32),
        "arrays": torch_state_arrays(inner),
        "model": torch_resnet_settings(inner),
        "attack": {"eps": bench_train.EPS, "step_size": bench_train.STEP_SIZE, "steps": bench_train.STEPS},
    }


def _speed_row(step, torch_ms, tfadv_ms, target=None):
    ratio = torch_ms / tfadv_ms
    verdict = "–" if target is None else f"≥ {target} {'pass' if ratio >= target else 'FAIL'}"
    return f"| {step} | {torch_ms:.1f} | {tfadv_ms:.1f} | {ratio:.2f} | {verdict} |"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128, help="images per step (default 128)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds after 2 warm-up steps; medians")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights, the batch and PGD's starts")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    _peer.add_peer_arguments(parser)
    args = parser.parse_args(argv)
    if args.torch_side:
        return torch_side(*args.torch_side)
    _peer.check_torch_python(parser, args)
    if args.batch < 1 or args.repeats < 1:
        parser.error(f"--batch and --repeats must be >= 1. Received: --batch={args.batch}, --repeats={args.repeats}")

    _peer.limit_tensorflow_threads(args.threads)
    import keras
    import tensorflow as tf

    from tfadv.records import environment_record, revision_label

    ours = tfadv_side(args.batch, args.repeats, args.seed)
    settings = {"threads": args.threads, "seed": args.seed, "repeats": args.repeats, "model": ours["model"],
                "learning_rate": 0.01, "momentum": 0.9, **ours["attack"]}
    try:
        theirs = _peer.run_torch_side(args.torch_python, __file__, settings, x=ours["x"], y=ours["y"],
                                      logits=ours["logits"], **ours["arrays"])
    except subprocess.CalledProcessError as error:
        sys.exit(f"the PyTorch side failed (exit code {error.returncode}, its message above)")

    environment = environment_record()
    result = {
        "tool": "compare_torch_train_step",
        "revision": revision_label(environment["source"]),
        "environment": environment,
        "torch": theirs["torch"],
        "threads": {"requested": args.threads, "torch": theirs["threads"],
                    "torch_interop": theirs["interop_threads"],
                    "tensorflow_intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                    "tensorflow_inter_op": tf.config.threading.get_inter_op_parallelism_threads()},
        "model": MODEL_NAME, "batch_size": args.batch, "repeats": args.repeats, "seed": args.seed,
        "logit_max_difference": theirs["logit_max_difference"],
        "tfadv_clean_ms": ours["ms"]["clean"], "tfadv_pgd7_ms": ours["ms"]["pgd7"],
        "torch_clean_ms": theirs["clean_ms"], "torch_pgd7_ms": theirs["pgd7_ms"],
    }
    result["clean_torch_over_tfadv"] = result["torch_clean_ms"] / result["tfadv_clean_ms"]
    result["pgd7_torch_over_tfadv"] = result["torch_pgd7_ms"] / result["tfadv_pgd7_ms"]
    result["pgd7_target"] = SPEED_TARGET
    result["pgd7_pass"] = result["pgd7_torch_over_tfadv"] >= SPEED_TARGET
    if args.json:
        print(json.dumps(result, default=str))
        return 0

    threads = "default" if not args.threads else str(args.threads)
    print(f"\ntfadv at {result['revision']}; TensorFlow {tf.__version__}, Keras {keras.__version__}, "
          f"torch {theirs['torch']}; threads {threads} (torch uses {theirs['threads']}); "
          f"{environment['cpu_count']} CPU cores; {MODEL_NAME}, batch {args.batch}, median of {args.repeats}")
    print(f"largest |logit difference| PyTorch − Keras, inference mode: {theirs['logit_max_difference']:.2e}\n")
    print("| library | clean step ms | PGD-7 step ms | PGD-7 / clean |")
    print("|---|---:|---:|---:|")
    for label, clean, pgd7 in (("tfadv (Keras train_on_batch)", result["tfadv_clean_ms"], result["tfadv_pgd7_ms"]),
                               ("PyTorch eager", result["torch_clean_ms"], result["torch_pgd7_ms"])):
        print(f"| {label} | {clean:.1f} | {pgd7:.1f} | {pgd7 / clean:.2f} |")
    print("\n| step | PyTorch ms | tfadv ms | PyTorch / tfadv (> 1: tfadv faster) | target |")
    print("|---|---:|---:|---:|---|")
    print(_speed_row("clean", result["torch_clean_ms"], result["tfadv_clean_ms"]))
    print(_speed_row("PGD-7 adversarial", result["torch_pgd7_ms"], result["tfadv_pgd7_ms"], SPEED_TARGET))
    return 0


if __name__ == "__main__":
    sys.exit(main())
