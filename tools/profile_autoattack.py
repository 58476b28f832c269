"""Profile AutoAttack: time and model passes per component, tfadv and (optionally) torchattacks.

Runs the standard sequence the way AutoAttack does (each component only on
the points the previous ones left robust) on issue 20's small CNN, trained as
``tools/compare_torchattacks.py`` trains it, and prints per component: the
points it attacked, wall time (first call, tracing included, and second call),
and the model passes it made, counted in example-passes:

- gradient passes (a forward and a backward pass through the model),
- forward-only passes,

next to what the reference algorithm needs for the same points and outcome
(``fra31/auto-attack``: APGD 1 + steps gradient passes per run, 9 targets;
FAB-T 1 gradient + 1 forward pass per iteration; Square one forward pass per
iteration and still-robust point, plus the stripes).

tfadv's passes are counted by wrapping the model call and
``tfadv.attacks._compile.loss_and_input_gradient`` with counters that run
inside the compiled graph. With ``--torch-python`` the same is measured for
torchattacks (forward hook and a hook on the input gradient) in its own venv.

Run: ``PYTHONPATH=$PWD python tools/profile_autoattack.py --data ../shared/data/cifar10_mini_train.npz``.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_torchattacks as compare  # noqa: E402

NAMES = ("apgd-ce", "apgd-t", "fab-t", "square")


def torch_side(in_path, out_path):
    import torch
    from torchattacks import APGD, APGDT, FAB, Square

    data = dict(np.load(in_path))
    settings = json.loads(str(data["settings"]))
    if settings.get("threads"):
        torch.set_num_threads(settings["threads"])
    model = compare._torch_model(data)
    counts = {"forward": 0, "gradient": 0}

    class Counted(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = model

        def forward(self, x):
            if torch.is_grad_enabled() and x.requires_grad:
                counts["gradient"] += x.shape[0]
            else:
                counts["forward"] += x.shape[0]
            return self.inner(x)

    counted = Counted().eval()
    x = torch.from_numpy(data["x"].transpose(0, 3, 1, 2).copy())
    y = torch.from_numpy(data["y"].astype(np.int64))
    eps, steps = settings["eps"], settings["steps"]
    attacks = [
        APGD(counted, eps=eps, steps=steps, n_restarts=1, loss="ce", seed=0),
        APGDT(counted, eps=eps, steps=steps, n_restarts=1, n_classes=10, seed=0),
        FAB(counted, eps=eps, steps=steps, n_restarts=1, multi_targeted=True, n_classes=10, seed=0),
        Square(counted, eps=eps, n_queries=settings["queries"], n_restarts=1, resc_schedule=False, seed=0),
    ]
    with torch.no_grad():
        robust = (model(x).argmax(1) == y).numpy()
    rows = []
    for name, attack in zip(NAMES, attacks):
        index = np.flatnonzero(robust)
        counts.update(forward=0, gradient=0)
        start = time.perf_counter()
        x_adv = attack(x[index], y[index]) if index.size else x[index]
        seconds = time.perf_counter() - start
        with torch.no_grad():
            still = (model(x_adv).argmax(1) == y[index]).numpy() if index.size else np.zeros(0, bool)
        robust[index[~still]] = False
        rows.append({"name": name, "attacked": int(index.size), "seconds": seconds, **counts,
                     "robust_after": int(robust.sum())})
    with open(out_path, "w") as handle:
        json.dump(rows, handle)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--eps", default="2/255")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--queries", type=int, default=5000)
    parser.add_argument("--torch-python", default=None)
    parser.add_argument("--threads", type=int, default=0, help="threads per library (0: default)")
    parser.add_argument("--torch-side", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.torch_side:
        return torch_side(*args.torch_side)

    x_all, y_all = compare.tensorflow_side_setup(args.threads, args.data)

    import tensorflow as tf

    from tfadv.attacks import _compile
    from tfadv.attacks.autoattack import _component_bodies

    x, y = x_all[-args.images:], y_all[-args.images:]
    model = compare._build_and_train(x_all[:-args.images], y_all[:-args.images], args.epochs, 0)
    eps = compare._fraction(args.eps)

    forward = tf.Variable(0, dtype=tf.int64)
    gradient = tf.Variable(0, dtype=tf.int64)
    original = _compile.loss_and_input_gradient

    def counted_gradient(model_call, images, loss_fn):
        gradient.assign_add(tf.cast(tf.shape(images)[0], tf.int64))
        forward.assign_sub(tf.cast(tf.shape(images)[0], tf.int64))  # its model call is counted below
        return original(model_call, images, loss_fn)

    _compile.loss_and_input_gradient = counted_gradient

    def model_call(images):
        forward.assign_add(tf.cast(tf.shape(images)[0], tf.int64))
        return model(images, training=False)

    bodies = _component_bodies(model_call, args.steps, 9, args.queries)
    functions = {name: tf.function(lambda a, b, c, d, body=body: body(a, b, c, d), autograph=False)
                 for name, body in bodies.items()}
    robust = model(x, training=False).numpy().argmax(1) == y
    rows = []
    for number, name in enumerate(NAMES, start=1):
        index = np.flatnonzero(robust)
        seed = tf.constant([1_000_003 * number, 0], tf.int64)
        arguments = (tf.constant(x[index]), tf.constant(y[index]), tf.fill([index.size], eps), seed)
        timings = []
        for _ in range(2):
            forward.assign(0)
            gradient.assign(0)
            start = time.perf_counter()
            _, fooled = functions[name](*arguments)
            fooled = fooled.numpy()
            timings.append(time.perf_counter() - start)
        robust[index[fooled]] = False
        rows.append({"name": name, "attacked": int(index.size), "first": timings[0], "second": timings[1],
                     "forward": int(forward.numpy()), "gradient": int(gradient.numpy()),
                     "robust_after": int(robust.sum())})
    _compile.loss_and_input_gradient = original

    torch_rows = None
    if args.torch_python:
        settings = {"eps": eps, "steps": args.steps, "queries": args.queries, "threads": args.threads}
        torch_rows = compare.run_torch_side(args.torch_python, __file__, args.data, settings,
                                            x=x, y=y, **compare._weights(model))

    print(f"{len(x)} images, ε = {args.eps}, steps {args.steps}, queries {args.queries}; "
          f"clean robust {int((model(x, training=False).numpy().argmax(1) == y).sum())}")
    print("| component | points attacked | tfadv 1st call s | tfadv 2nd call s | tfadv gradient passes "
          "| tfadv forward passes | robust after |" + (" torchattacks s | torch gradient passes | "
                                                      "torch forward passes | torch robust after |"
                                                      if torch_rows else ""))
    print("|---|---:|---:|---:|---:|---:|---:|" + ("---:|---:|---:|---:|" if torch_rows else ""))
    for number, row in enumerate(rows):
        line = (f"| {row['name']} | {row['attacked']} | {row['first']:.2f} | {row['second']:.2f} | "
                f"{row['gradient']} | {row['forward']} | {row['robust_after']} |")
        if torch_rows:
            other = torch_rows[number]
            line += (f" {other['seconds']:.2f} | {other['gradient']} | {other['forward']} | "
                     f"{other['robust_after']} |")
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
