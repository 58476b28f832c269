"""Benchmark: what the adversarial training methods cost against clean training.

Three ratios on one architecture (CIFAR ResNet-20 by default), batch 128,
one process, every train step the compiled Keras train function
(``train_on_batch`` on a compiled model), SGD with momentum:

- **PGD-7 adversarial train step / clean train step** (target ≤ 3.6). Both
  on the plain model; "clean" is Keras' own ``train_step`` (cross-entropy,
  accuracy), the adversarial one :class:`AdversarialTraining` with PGD-7
  (ε = 8/255, step 2/255, crafted in inference mode), training on the
  adversarial batch only (no clean pass: ``train_clean_accuracy`` is off).
  :func:`clean_and_pgd7_trainers` builds both (``tools/compare_torch_train_step.py``
  times the same two against PyTorch eager). For scale, one inference-mode input-gradient
  pass (forward + backward to the images: what every PGD iteration costs)
  is timed too; it sets the floor of any PGD-7 training step,
  ``(7 · input-gradient pass + clean step) / clean step``.
- **RobMask train step / AdvProp train step** (target ≤ 1.05). Both PGD-7,
  on the ``robmask`` and ``dual_bn`` variants of the architecture.
- **peak memory of PGD-7 training / clean training** (target ≤ 1.3).
  Measured with TensorFlow's own allocator statistics:
  ``tf.config.experimental.reset_memory_stats("CPU:0")`` before one
  (already compiled) step and ``get_memory_info("CPU:0")["peak"]`` after
  it. The peak counts every tensor TensorFlow allocates on the CPU device
  during the step, plus what is resident (weights, optimizer slots, the
  batch); it does not see memory that XLA's CPU runtime or oneDNN allocate
  outside TensorFlow's allocator, so with ``jit_compile=True`` the figure is
  incomplete and this benchmark runs without XLA by default. The extra
  memory over what was resident before the step is reported too.

The price of the knob, as paper 2 measures it ("one DenseNet-121 epoch at
870 s with BN and 890 s with RobMask", both adversarially trained), is
:func:`knob_price`, added to ``run``'s result:

- **RobMask train step / BN adversarial train step on DenseNet-121**
  (target ≤ 1.05): RobMask (PGD-7 at ε = p·ε_max, conditioned BN) against
  PGD-7 adversarial training of the plain-BN DenseNet-121, small batch;
- the same ratio for a converted ``keras.applications`` model
  (MobileNetV2, ``norm="robmask"`` through :func:`tfadv.models.convert_norm`);
- **the validation attack's share of an epoch**: PGD-10 on 1,000 validation
  examples (``train.validation_attack``) against a PGD-7 epoch of 50,000
  (target ≤ 0.05), from one attacked batch and one train step.

Each repeat times every step once, back to back, so that load from other
processes on a shared machine falls on all of them alike; the reported
figures are medians over repeats. Every step is run twice before timing
(tracing and compilation).

Run: ``python -m tfadv.bench.train`` (or ``tfadv bench train``).
"""
import json
import time

import keras
import numpy as np
import tensorflow as tf

ADVERSARIAL_TARGET = 3.6
ROBMASK_TARGET = 1.05
MEMORY_TARGET = 1.3
VALIDATION_SHARE_TARGET = 0.05
EPS, STEP_SIZE, STEPS = 8 / 255, 2 / 255, 7
DEVICE = "CPU:0"


def _seconds(step):
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def _interleaved_median_ms(steps, repeats):
    """Median milliseconds of each step, after two warm-up calls (tracing), the steps
    interleaved so that a change in the machine's load falls on all of them alike."""
    for step in steps.values():
        step()
        step()
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            times[name].append(_seconds(step))
    return {name: float(np.median(values)) * 1e3 for name, values in times.items()}


def _input_gradient_pass(model, x, y):
    """One compiled forward + backward pass to the images (inference mode)."""

    @tf.function
    def gradient():
        with tf.GradientTape() as tape:
            tape.watch(x)
            logits = tf.cast(model(x, training=False), tf.float32)
            loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
        return tape.gradient(loss, x)

    return lambda: np.asarray(gradient())


def _peak_memory(step):
    """(peak bytes during one step, bytes resident before it)."""
    tf.config.experimental.reset_memory_stats(DEVICE)
    resident = tf.config.experimental.get_memory_info(DEVICE)["current"]
    step()
    return tf.config.experimental.get_memory_info(DEVICE)["peak"], resident


def random_batch(batch_size, seed, image_size=32, num_classes=10):
    """The benchmark's batch from ``seed``: uniform float32 images in [0, 1] (NHWC, 3 channels)
    and uniform int64 labels, as NumPy arrays."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (batch_size, image_size, image_size, 3)).astype("float32")
    y = rng.integers(0, num_classes, batch_size).astype("int64")
    return x, y


def pgd7_attack():
    """The benchmark's training attack: L∞ PGD-7 at ε = 8/255, step 2/255, random start."""
    from tfadv.training import methods

    return methods.AttackSpec("pgd", eps=EPS, step_size=STEP_SIZE, steps=STEPS)


def _build(model_name, norm):
    from tfadv import models

    return models.build(model_name, num_classes=10, input_shape=(32, 32, 3), norm=norm)


def _compiled(model, jit_compile, **compile_args):
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), jit_compile=jit_compile, **compile_args)
    return model


def clean_and_pgd7_trainers(model_name="resnet20", jit_compile=False):
    """The two compiled models whose ``train_on_batch`` :func:`run` times as ``clean`` and ``pgd7``.

    Both are ``model_name`` with plain BN (10 classes, 32×32×3), compiled with
    SGD(0.01, momentum 0.9): ``clean`` is the model itself with Keras' own
    ``train_step`` (sparse cross-entropy from logits, accuracy); ``pgd7`` is
    ``methods.wrap(model, "adversarial", attack=pgd7_attack())``. Weights come
    from Keras' global seed (``keras.utils.set_random_seed``), ``clean`` built first.

    Returns:
        ``{"clean": keras.Model, "pgd7": AdversarialTraining}``.
    """
    from tfadv.training import methods

    return {
        "clean": _compiled(_build(model_name, "bn"), jit_compile,
                           loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                           metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")]),
        "pgd7": _compiled(methods.wrap(_build(model_name, "bn"), "adversarial", attack=pgd7_attack()),
                          jit_compile),
    }


def knob_price(batch_size=8, repeats=3, image_size=32, seed=0, densenet="densenet121",
               application="MobileNetV2"):
    """RobMask / BN adversarial train-step ratios on DenseNet-121 and a converted application.

    Returns:
        dict of ``robmask_over_bn_<which>_step`` ratios and their milliseconds
        (medians), with ``<which>`` ``densenet121`` and ``converted``, and the
        validation attack's share of an epoch (``validation_attack_share``).
    """
    from tfadv import models
    from tfadv.attacks.spec import attack_from_text
    from tfadv.training import methods

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    shape = (image_size, image_size, 3)
    x = tf.constant(rng.uniform(0, 1, (batch_size, *shape)).astype("float32"))
    y = tf.constant(rng.integers(0, 10, batch_size).astype("int64"))
    pgd7 = methods.AttackSpec("pgd", eps=EPS, step_size=STEP_SIZE, steps=STEPS)

    def compiled(model):
        model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
        return model

    bn_app = models.build(application, num_classes=10, input_shape=shape, norm="bn")
    trainers = {
        "bn_densenet121": compiled(methods.wrap(
            models.build(densenet, num_classes=10, input_shape=shape, norm="bn"), "adversarial", attack=pgd7)),
        "robmask_densenet121": compiled(methods.wrap(
            models.build(densenet, num_classes=10, input_shape=shape, norm="robmask"), "robmask",
            eps_max=EPS, steps=STEPS)),
        "bn_converted": compiled(methods.wrap(bn_app, "adversarial", attack=pgd7)),
        "robmask_converted": compiled(methods.wrap(models.convert_norm(
            keras.models.clone_model(bn_app), "robmask"), "robmask", eps_max=EPS, steps=STEPS)),
    }
    steps = {name: (lambda t=trainer: t.train_on_batch(x, y)) for name, trainer in trainers.items()}
    pgd10 = attack_from_text("pgd:eps=8/255,steps=10")
    validation_model = trainers["bn_converted"].inner
    steps["validation_batch"] = lambda: np.asarray(validation_model(pgd10.run(validation_model, x, y)))
    ms = {f"{name}_ms": value for name, value in _interleaved_median_ms(steps, repeats).items()}
    share = (ms["validation_batch_ms"] * 1000) / (ms["bn_converted_ms"] * 50000)
    return {
        "knob_batch_size": int(batch_size),
        "knob_image_size": int(image_size),
        "knob_application": application,
        "robmask_over_bn_densenet121_step": ms["robmask_densenet121_ms"] / ms["bn_densenet121_ms"],
        "robmask_over_bn_converted_step": ms["robmask_converted_ms"] / ms["bn_converted_ms"],
        "knob_target": ROBMASK_TARGET,
        "validation_attack_share": share,
        "validation_share_target": VALIDATION_SHARE_TARGET,
        **ms,
    }


def run(batch_size=128, model_name="resnet20", repeats=5, jit_compile=False, seed=0, knob=True):
    """Measure the three training ratios.

    Args:
        batch_size: images per step (32×32×3, 10 classes).
        model_name: a ``tfadv.models.build`` name.
        repeats: timed repetitions of every step; medians are reported.
        jit_compile: XLA for every train step (memory figures are then
            incomplete, see the module docstring).
        seed: seed of the random images, labels and weights.
        knob: also measure :func:`knob_price` (DenseNet-121 and a converted
            ``keras.applications`` model, RobMask / BN).

    Returns:
        dict with the ratios, their targets and pass/fail, the milliseconds
        and megabytes behind them (medians) and the settings.
    """
    from tfadv.training import methods

    keras.utils.set_random_seed(seed)
    x, y = (tf.constant(array) for array in random_batch(batch_size, seed))
    trainers = {
        **clean_and_pgd7_trainers(model_name, jit_compile),
        "advprop": _compiled(methods.wrap(_build(model_name, "dual_bn"), "advprop", attack=pgd7_attack()),
                             jit_compile),
        "robmask": _compiled(methods.wrap(_build(model_name, "robmask"), "robmask", eps_max=EPS, steps=STEPS),
                             jit_compile),
    }
    steps = {name: (lambda t=trainer: t.train_on_batch(x, y)) for name, trainer in trainers.items()}
    steps["input_gradient"] = _input_gradient_pass(trainers["clean"], x, y)
    ms = _interleaved_median_ms(steps, repeats)
    memory = {name: _peak_memory(steps[name]) for name in ("clean", "pgd7")}

    adversarial_ratio = ms["pgd7"] / ms["clean"]
    pgd7_floor = (STEPS * ms["input_gradient"] + ms["clean"]) / ms["clean"]
    robmask_ratio = ms["robmask"] / ms["advprop"]
    # TensorFlow's allocator reports no peak for a model so small that its step allocates nothing it
    # tracks (the "tiny" test model); the ratio is then unmeasured (NaN, a FAIL), not a ZeroDivisionError.
    memory_ratio = memory["pgd7"][0] / memory["clean"][0] if memory["clean"][0] else float("nan")
    megabytes = {f"{name}_peak_mb": peak / 2**20 for name, (peak, _) in memory.items()}
    megabytes.update({f"{name}_step_extra_mb": (peak - resident) / 2**20
                      for name, (peak, resident) in memory.items()})
    return {
        "benchmark": "train",
        "model": model_name,
        "batch_size": int(batch_size),
        "repeats": int(repeats),
        "jit_compile": bool(jit_compile),
        "pgd7_over_clean_step": adversarial_ratio,
        "pgd7_target": ADVERSARIAL_TARGET,
        "pgd7_pass": adversarial_ratio <= ADVERSARIAL_TARGET,
        "pgd7_floor_from_input_gradient_passes": pgd7_floor,
        "robmask_over_advprop_step": robmask_ratio,
        "robmask_target": ROBMASK_TARGET,
        "robmask_pass": robmask_ratio <= ROBMASK_TARGET,
        "pgd7_over_clean_peak_memory": memory_ratio,
        "memory_target": MEMORY_TARGET,
        "memory_pass": memory_ratio <= MEMORY_TARGET,
        **{f"{name}_step_ms": value for name, value in ms.items()},
        **megabytes,
        **(knob_price(seed=seed) if knob else {}),
    }


if __name__ == "__main__":  # the same table as `tfadv bench train`
    from tfadv.bench import format_table, ratio_rows

    result = run()
    print(json.dumps(result, indent=2))
    print(format_table(ratio_rows(result)))
