"""Where the bench's AutoAttack / APGD-CE row spends its time, and the floor its passes set.

``tfadv bench attacks`` times AutoAttack on a batch of 32 whose first half is
robust by construction (ε = 0, labels = predictions) against APGD-CE-100 on
all 32. This script times what that run does, component by component, on the
16 robust points (each component compiled first, then timed), and the model
passes it cannot avoid, each timed inside a compiled loop whose every pass
takes its input from the previous pass's result (as an attack's iterations
do, so that the loop cannot overlap passes an attack could not), at the
batch size the component uses:

- APGD-CE: 101 gradient passes at 16;
- APGD-T: target 1 alone, then targets 2–9 stacked (8 × 16 = 128), 101
  gradient passes each;
- FAB-T: the same two batches, 100 gradient + 100 forward passes each (its
  projection's sort is left out, so this is a lower bound);
- Square: 5,001 forward passes at 16;

and APGD-CE alone on the 32 (the row's denominator: 101 gradient passes at
32). Two floors are printed: the passes of the numerator over the measured
APGD-CE, and over APGD-CE's own passes, which is what the row would read if
every attack, the denominator's included, were its model passes and nothing
else.

Run: ``PYTHONPATH=$PWD .venv/bin/python tools/profile_bench_autoattack.py``.
"""
import argparse
import sys
import time

import numpy as np
import tensorflow as tf

from tfadv.attacks import apgd
from tfadv.attacks.autoattack import _component_bodies
from tfadv.bench.attacks import half_robust_batch, seeded_model_and_batch
from tfadv.records import revision_label, source_revision


def _best_seconds(function, repeats):
    function()  # compile
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.asarray(function())
        best = min(best, time.perf_counter() - start)
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--batch", type=int, default=32, help="the bench's autoattack_batch")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    # The bench's weights and batch (tfadv.bench.attacks.run times AutoAttack on its first images).
    model, x, _ = seeded_model_and_batch(args.model, seed=args.seed)
    x = x[:args.batch]
    labels, _, eps = half_robust_batch(model, x)
    half = args.batch // 2

    def call(images):
        return model(images, training=False)

    def loop_of(passes, images, targets, with_gradient):
        """``passes`` model passes in one compiled while-loop, as the attacks run them."""

        def one_pass(i, current):
            # Each pass reads the previous pass's result, as an attack's next iterate does.
            if not with_gradient:
                return i + 1, current + 1e-9 * tf.reduce_mean(call(current))
            with tf.GradientTape() as tape:
                tape.watch(current)
                loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(targets, call(current)))
            return i + 1, current + 1e-9 * tape.gradient(loss, current)

        function = tf.function(lambda: tf.while_loop(lambda i, _: i < passes, one_pass, (0, images))[1],
                               autograph=False)
        return function

    pass_ms = {}  # per pass, from the difference of a 25- and a 5-pass loop (the call's fixed cost cancels)
    for size in sorted({half, args.batch, 8 * half}):
        images = tf.tile(x, [(size + args.batch - 1) // args.batch, 1, 1, 1])[:size]
        targets = tf.tile(labels, [(size + args.batch - 1) // args.batch])[:size]
        pass_ms[size] = tuple(
            (_best_seconds(loop_of(25, images, targets, kind), 3) - _best_seconds(loop_of(5, images, targets, kind), 3))
            / 20 * 1e3 for kind in (False, True))

    apgd_alone = _best_seconds(lambda: apgd(model, x, labels, eps, steps=100, seed=0), 2)
    bodies = _component_bodies(call, 100, 9, 5000)
    seed = tf.constant([1, 0], tf.int64)
    component_seconds = {}
    for name, body in bodies.items():
        function = tf.function(lambda a, b, c, d, body=body: body(a, b, c, d)[1], autograph=False)
        component_seconds[name] = _best_seconds(lambda: function(x[:half], labels[:half], eps[:half], seed), 1)

    fwd = {size: ms[0] / 1e3 for size, ms in pass_ms.items()}
    grad = {size: ms[1] / 1e3 for size, ms in pass_ms.items()}
    floor = {
        "apgd-ce": 101 * grad[half],
        "apgd-t": 101 * (grad[half] + grad[8 * half]),
        "fab-t": 100 * (grad[half] + fwd[half] + grad[8 * half] + fwd[8 * half]),
        "square": 5001 * fwd[half],
    }
    print(f"{revision_label(source_revision())}, model {args.model}, batch {args.batch} ({half} robust), "
          f"APGD-CE-100 alone on {args.batch}: {apgd_alone:.2f} s")
    print("| batch | forward ms | gradient ms | forward ms / image | gradient ms / image |")
    print("|---:|---:|---:|---:|---:|")
    for size, (f_ms, g_ms) in pass_ms.items():
        print(f"| {size} | {f_ms:.1f} | {g_ms:.1f} | {f_ms / size:.2f} | {g_ms / size:.2f} |")
    print(f"\n| component on the {half} robust points | seconds | its model passes alone | ratio |")
    print("|---|---:|---:|---:|")
    for name in bodies:
        print(f"| {name} | {component_seconds[name]:.1f} | {floor[name]:.1f} | "
              f"{component_seconds[name] / floor[name]:.2f} |")
    total, passes = sum(component_seconds.values()), sum(floor.values())
    apgd_passes = 101 * grad[args.batch]
    print(f"| all | {total:.1f} | {passes:.1f} | {total / passes:.2f} |")
    print(f"\nrow as measured here: {total / apgd_alone:.1f}; its passes over the measured APGD-CE: "
          f"{passes / apgd_alone:.1f}; over APGD-CE's passes ({apgd_passes:.2f} s): {passes / apgd_passes:.1f} "
          f"(target ≤ 20)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
