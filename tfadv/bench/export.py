"""Benchmark: choosing the masking per request against the fixed default masking.

A RobMask model (CIFAR ResNet-20 by default) is exported with
:func:`tfadv.export.export_model` and loaded back with
``tf.saved_model.load``, as a server would. On that one loaded model the
latency of ``serve_tradeoff(images, p)`` is compared with
``serving_default(images)`` at batch 1 and batch 128. Target: ratio ≤ 1.05
at every batch size.

Both signatures run the same graph (input checks, the conditioned forward
pass, softmax); ``serving_default`` reads its p from a variable where
``serve_tradeoff`` takes it as an input and checks it, so the ratio measures
what the per-request choice costs a client.

Method: one process; every signature is warmed up first; then each repeat
times both signatures back to back, in alternating order, so that load from
other processes falls on both alike; a sample is the mean of ``calls``
consecutive calls (enough to make a sample last ~0.1 s, so that a batch-1
sample averages many calls); the figures are medians over repeats.

Run: ``python -m tfadv.bench.export`` (or ``tfadv bench export``).
"""
import json
import tempfile
import time

import numpy as np
import tensorflow as tf

TARGET = 1.05


def _seconds_per_call(function, kwargs, calls):
    start = time.perf_counter()
    for _ in range(calls):
        outputs = function(**kwargs)
    outputs["logits"].numpy()  # wait for the result
    return (time.perf_counter() - start) / calls


def _calls_for(function, kwargs, budget_seconds=0.1):
    """How many calls make a sample of about ``budget_seconds``."""
    single = min(_seconds_per_call(function, kwargs, 1) for _ in range(3))
    return max(1, int(round(budget_seconds / max(single, 1e-6))))


def run(model_name="resnet20", batch_sizes=(1, 128), repeats=30, p=0.5, warmup=5, seed=0):
    """Measure ``serve_tradeoff`` / ``serving_default`` latency of one exported RobMask model.

    Args:
        model_name: a ``tfadv.models.build`` name (built with ``norm="robmask"``,
            32×32×3 images, 10 classes; random weights, which time like trained ones).
        batch_sizes: the batch sizes to measure.
        repeats: timed samples per signature and batch size; medians are reported.
        p: the masking strength sent to ``serve_tradeoff``.
        warmup: untimed calls of each signature before timing.
        seed: seed of the weights and images.

    Returns:
        dict with, per batch size, the median milliseconds per call of both
        signatures and their ratio, the target and pass/fail, and the settings.
    """
    import keras

    from tfadv import models
    from tfadv.export import export_model

    keras.utils.set_random_seed(seed)
    model = models.build(model_name, num_classes=10, input_shape=(32, 32, 3), norm="robmask")
    rng = np.random.default_rng(seed)
    per_batch = {}
    with tempfile.TemporaryDirectory(prefix="tfadv-bench-export-") as folder:
        export_dir = f"{folder}/model"
        export_model(model, export_dir)
        loaded = tf.saved_model.load(export_dir)
        signatures = {
            "serving_default": loaded.signatures["serving_default"],
            "serve_tradeoff": loaded.signatures["serve_tradeoff"],
        }
        for batch_size in batch_sizes:
            images = tf.constant(rng.uniform(0, 1, (batch_size, 32, 32, 3)).astype("float32"))
            arguments = {
                "serving_default": {"images": images},
                "serve_tradeoff": {"images": images, "p": tf.constant(p, tf.float32)},
            }
            for name, function in signatures.items():
                for _ in range(warmup):
                    function(**arguments[name])
            calls = _calls_for(signatures["serving_default"], arguments["serving_default"])
            times = {name: [] for name in signatures}
            order = list(signatures)
            for _ in range(repeats):
                for name in order:
                    times[name].append(_seconds_per_call(signatures[name], arguments[name], calls))
                order.reverse()
            median = {name: float(np.median(values)) for name, values in times.items()}
            ratio = median["serve_tradeoff"] / median["serving_default"]
            per_batch[int(batch_size)] = {
                "serving_default_ms": median["serving_default"] * 1e3,
                "serve_tradeoff_ms": median["serve_tradeoff"] * 1e3,
                "ratio": ratio,
                "pass": ratio <= TARGET,
                "calls_per_sample": calls,
            }
    return {
        "benchmark": "export",
        "model": model_name,
        "norm": "robmask",
        "p": float(p),
        "repeats": int(repeats),
        "target": TARGET,
        "pass": all(entry["pass"] for entry in per_batch.values()),
        "batches": per_batch,
    }


if __name__ == "__main__":  # the same table as `tfadv bench export`
    from tfadv.bench import format_table, ratio_rows

    result = run()
    print(json.dumps(result, indent=2))
    print(format_table(ratio_rows(result)))
