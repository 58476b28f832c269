"""Benchmark: what the compiled attacks cost against the gradient passes they need.

Two ratios on one model (CIFAR ResNet-20 by default), one batch, one process:

- **PGD-10 / ten input-gradient passes** (target ≤ 1.15). The reference is a
  plain compiled function, independent of ``tfadv.attacks``: logits,
  summed cross-entropy and its gradient with respect to the images — one
  forward and one backward pass, nothing else. Ten of them, called back to
  back, against one call of ``pgd(steps=10)``. The excess is what the attack
  adds: the random start, sign, projection, loop and dispatch.
- **one stAdv step / one PGD step** (target ≤ 1.6). A step's cost is taken
  as a difference, ``(t(10 steps) − t(2 steps)) / 8`` for each attack, so
  the fixed costs outside the loop (dispatch, PGD's random start, stAdv's
  final warp) cancel and what remains is the loop body: for stAdv the warp,
  the model's forward and backward passes, the warp's backward pass, the
  flow loss and Adam.

- **AutoAttack / APGD-CE alone** (target ≤ 20), per image, on a batch of
  ``autoattack_batch`` images that is robust on exactly half its points by
  construction, whatever the model: on the first half the labels are the
  model's own predictions and ε is 0, so no attack can break a point there
  and all four components run on it; on the second half the labels are
  classes the model does not predict, so those points are misclassified
  before any attack and AutoAttack, like its reference
  (``run_standard_evaluation`` attacks only the correctly classified
  points), skips them. APGD-CE alone, like any tfadv attack called on its
  own, attacks the whole batch. So the row reads as "a standard AutoAttack
  evaluation of a batch whose clean accuracy is 50 % and whose attacked points
  all stay robust, against APGD-CE-100 on that batch". The row prints the
  fraction the later components actually attacked (read from
  ``broken_by``) and the fraction robust at the end; both are 50 % by
  construction. Counting gradient-pass units (a forward pass ≈ 1/3 of a
  forward + backward), the three later components cost about 38× APGD-CE
  per point they attack, so about 19.5× on this batch. Each is timed once
  (one AutoAttack run takes minutes on CPU).

  An earlier version broke the second half with ε = 1 (the whole box) and
  relied on APGD-CE to break it; on an untrained ResNet whose prediction is
  one class over the whole box, APGD-CE could not, so the later components
  attacked the whole batch (the "100 %" some runs printed), and which runs did
  depended on the unseeded initial weights.

Every function is compiled (called once) before timing, with the same
``jit_compile`` setting. Each repeat times all measurements back to back,
so that load from other processes on a shared machine falls on all of them
alike, and the reported figures are medians over repeats.

Run: ``python -m tfadv.bench.attacks`` (or ``tfadv bench attacks``).
"""
import json
import time

import keras
import numpy as np
import tensorflow as tf

PGD_TARGET = 1.15
STADV_TARGET = 1.6
AUTOATTACK_TARGET = 20.0
LONG_RUN, SHORT_RUN = 10, 2


def _input_gradient_pass(model, jit_compile):
    """One compiled forward + backward pass to the input, written without tfadv.attacks."""

    @tf.function(jit_compile=jit_compile)
    def gradient(x, y):
        with tf.GradientTape() as tape:
            tape.watch(x)
            logits = tf.cast(model(x, training=False), tf.float32)
            loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
        return tape.gradient(loss, x)

    return gradient


def _seconds(function):
    start = time.perf_counter()
    result = function()
    np.asarray(result)  # wait for the result
    return time.perf_counter() - start


def seeded_model_and_batch(model_name="resnet20", batch_size=128, seed=0):
    """``(model, x, y)``: the bench's seeded weights, uniform images in [0, 1] and random labels.

    The same seed gives the same weights and batch in every run, so the
    ratios do not depend on a draw (and ``tools/profile_bench_autoattack.py``
    profiles exactly what the bench times).
    """
    from tfadv import models

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x = tf.constant(rng.uniform(0, 1, (batch_size, 32, 32, 3)).astype("float32"))
    y = tf.constant(rng.integers(0, 10, batch_size).astype("int64"))
    model = models.build(model_name, num_classes=10, input_shape=(32, 32, 3))
    return model, x, y


def half_robust_batch(model, x):
    """``(labels, wrong_labels, eps)`` that make ``x`` robust on exactly its first half, for any model.

    First half: the model's own predictions at ε = 0, which no attack can
    change. Second half: the prediction + 1 (mod classes), misclassified
    before any attack. ``wrong_labels`` are wrong everywhere (for compiling
    every branch without running one).
    """
    logits = model(x, training=False)
    predicted = tf.argmax(logits, axis=-1)
    wrong = (predicted + 1) % logits.shape[-1]
    half = x.shape[0] // 2
    labels = tf.concat([predicted[:half], wrong[half:]], axis=0)
    return labels, wrong, tf.zeros([x.shape[0]])


def _autoattack_ratio(model, x, jit_compile):
    """AutoAttack and APGD-CE seconds on ``x``, robust on exactly half its points.

    First half: labels are the model's predictions and ε = 0, so every
    component runs on those points and none can break them. Second half:
    labels are the model's prediction + 1 (mod classes), misclassified before
    any attack, so AutoAttack attacks none of them. What happened is measured
    from ``broken_by``, not assumed: the result gives the fraction of the batch
    the later components attacked and the fraction robust at the end.
    """
    from tfadv.attacks import apgd, autoattack
    from tfadv.attacks.autoattack import COMPONENTS, ROBUST

    labels, wrong, eps = half_robust_batch(model, x)
    # Compile on labels the model gets wrong everywhere: every branch is traced, none runs.
    autoattack(model, x, wrong, eps, seed=0, jit_compile=jit_compile)
    apgd(model, x, wrong, eps, steps=100, seed=0, jit_compile=jit_compile)
    broken_by = None

    def run_autoattack():
        nonlocal broken_by
        _, broken_by = autoattack(model, x, labels, eps, return_info=True, seed=0, jit_compile=jit_compile)
        return broken_by

    autoattack_seconds = _seconds(run_autoattack)
    apgd_seconds = _seconds(lambda: apgd(model, x, labels, eps, steps=100, seed=0, jit_compile=jit_compile))
    # Points still robust after APGD-CE are the ones APGD-T, FAB-T and Square attacked.
    later = float(np.mean((broken_by == ROBUST) | (broken_by > COMPONENTS.index("apgd-ce"))))
    robust = float(np.mean(broken_by == ROBUST))
    return autoattack_seconds, apgd_seconds, robust, later


def run(batch_size=128, repeats=5, model_name="resnet20", jit_compile=None, seed=0, autoattack_batch=32):
    """Measure the two attack ratios.

    Args:
        batch_size: images per batch (32×32×3, 10 classes).
        repeats: timed repetitions of every measurement; medians are reported.
        model_name: a ``tfadv.models.build`` name.
        jit_compile: XLA for the attacks and for the reference pass alike;
            ``None`` is the attacks' default (XLA on GPU/TPU only).
        seed: seed of the random images and labels and of the model's initial weights.
        autoattack_batch: images of the AutoAttack / APGD-CE measurement
            (0 skips it).

    Returns:
        dict with the two ratios, their targets and pass/fail, the absolute
        milliseconds behind them (medians) and the settings.
    """
    from tfadv.attacks import pgd, stadv
    from tfadv.attacks._compile import use_xla

    jit_compile = use_xla(jit_compile)
    model, x, y = seeded_model_and_batch(model_name, batch_size, seed)
    gradient = _input_gradient_pass(model, jit_compile)
    eps, step_size = 8 / 255, 2 / 255

    def ten_gradients():
        for _ in range(LONG_RUN):
            grad = gradient(x, y)
        return grad

    measurements = {
        "ten_gradients": ten_gradients,
        "pgd_long": lambda: pgd(model, x, y, eps, step_size, LONG_RUN, jit_compile=jit_compile),
        "pgd_short": lambda: pgd(model, x, y, eps, step_size, SHORT_RUN, jit_compile=jit_compile),
        "stadv_long": lambda: stadv(model, x, y, steps=LONG_RUN, jit_compile=jit_compile),
        "stadv_short": lambda: stadv(model, x, y, steps=SHORT_RUN, jit_compile=jit_compile),
    }
    for function in measurements.values():  # compile; steps are tensors, so one graph per attack
        function()
    times = {name: [] for name in measurements}
    for _ in range(repeats):
        for name, function in measurements.items():
            times[name].append(_seconds(function))
    median = {name: float(np.median(values)) for name, values in times.items()}

    gradient_pass = median["ten_gradients"] / LONG_RUN
    pgd_step = (median["pgd_long"] - median["pgd_short"]) / (LONG_RUN - SHORT_RUN)
    stadv_step = (median["stadv_long"] - median["stadv_short"]) / (LONG_RUN - SHORT_RUN)
    pgd_ratio = median["pgd_long"] / median["ten_gradients"]
    stadv_ratio = stadv_step / pgd_step
    autoattack_result = {}
    if autoattack_batch:
        autoattack_seconds, apgd_seconds, robust, later = _autoattack_ratio(model, x[:autoattack_batch],
                                                                            jit_compile)
        autoattack_result = {
            "autoattack_batch": int(autoattack_batch),
            "autoattack_over_apgd_ce": autoattack_seconds / apgd_seconds,
            "autoattack_target": AUTOATTACK_TARGET,
            "autoattack_pass": autoattack_seconds / apgd_seconds <= AUTOATTACK_TARGET,
            "autoattack_ms_per_image": autoattack_seconds * 1e3 / autoattack_batch,
            "apgd_ce_ms_per_image": apgd_seconds * 1e3 / autoattack_batch,
            "autoattack_robust_fraction": robust,
            "autoattack_later_components_fraction": later,
        }
    return {
        "benchmark": "attacks",
        "model": model_name,
        "batch_size": int(batch_size),
        "repeats": int(repeats),
        "jit_compile": bool(jit_compile),
        "pgd10_over_10_gradients": pgd_ratio,
        "pgd10_target": PGD_TARGET,
        "pgd10_pass": pgd_ratio <= PGD_TARGET,
        "stadv_step_over_pgd_step": stadv_ratio,
        "stadv_target": STADV_TARGET,
        "stadv_pass": stadv_ratio <= STADV_TARGET,
        "gradient_pass_ms": gradient_pass * 1e3,
        "pgd10_ms": median["pgd_long"] * 1e3,
        "pgd_step_ms": pgd_step * 1e3,
        "stadv_step_ms": stadv_step * 1e3,
        **autoattack_result,
    }


if __name__ == "__main__":  # the same table as `tfadv bench attacks`
    from tfadv.bench import format_table, ratio_rows

    result = run()
    print(json.dumps(result, indent=2))
    print(format_table(ratio_rows(result)))
