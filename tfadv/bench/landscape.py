"""Benchmark: the cost of one landscape grid point against one forward pass.

A grid point of :func:`tfadv.landscape.sweep_surface` moves every weight in
graph (θ* + αδ + βη), runs the examples through the model and writes the
point to the h5 file. The reference cost is a plain compiled forward pass
(logits and summed cross-entropy) over the same examples in the same
batches, with the weights left alone. Target: ratio ≤ 1.1.

Both are measured in one process after warm-up, as medians: the forward pass
``repeats`` times before and after the sweep, the sweep point by point
(the time between consecutive points' callbacks, so it includes the h5
write and flush; the first point, which compiles, is left out).

Run: ``python -m tfadv.bench.landscape`` (or ``tfadv bench landscape``).
"""
import json
import os
import tempfile
import time

import numpy as np
import tensorflow as tf


def _model(model_name, input_shape, num_classes):
    from tfadv import models

    return models.build(model_name, num_classes=num_classes, input_shape=input_shape)


def _plain_forward(model, x, y, batch_size):
    """A compiled forward pass over x in batches, independent of tfadv.landscape."""
    count = int(x.shape[0])

    @tf.function
    def forward(x, y):
        total = tf.constant(0.0)
        for start in range(0, count, batch_size):
            logits = model(x[start : start + batch_size], training=False)
            total += tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(
                y[start : start + batch_size], tf.cast(logits, tf.float32)))
        return total

    return lambda: float(forward(x, y).numpy())


def _timed(function, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


def run(model_name="resnet20", examples=1000, points=12, batch_size=500, repeats=6, seed=0):
    """Measure seconds per grid point / seconds per forward pass.

    Args:
        model_name: a :func:`tfadv.models.build` name (32×32×3, 10 classes).
        examples: examples evaluated at every point.
        points: grid points swept (a 1-D grid ``-1:1:points``).
        batch_size: examples per forward pass.
        repeats: forward passes timed before and after the sweep.

    Returns:
        dict with ``ratio`` (the figure), ``point_seconds``,
        ``forward_seconds`` (medians) and the settings.
    """
    from tfadv.landscape import random_directions
    from tfadv.landscape.surface import parse_grid, sweep_surface

    if int(points) < 3:
        raise ValueError(f"points must be at least 3 (the first one compiles). Received: points={points!r}")
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, size=(examples, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, size=(examples,)).astype("int64")
    model = _model(model_name, (32, 32, 3), 10)
    forward = _plain_forward(model, tf.constant(x), tf.constant(y), batch_size)
    forward()  # compile
    forward_times = _timed(forward, repeats)

    directions = random_directions(model, dim=1, seed=seed)
    stamps = []
    with tempfile.TemporaryDirectory() as folder:
        sweep_surface(model, directions, x, y, os.path.join(folder, "surface.h5"),
                      parse_grid(f"-1:1:{int(points)}"), batch_size=batch_size, progress=False,
                      callback=lambda *_: stamps.append(time.perf_counter()))
    forward_times += _timed(forward, repeats)
    point_seconds = float(np.median(np.diff(stamps)))
    forward_seconds = float(np.median(forward_times))
    return {
        "benchmark": "landscape", "model": model_name, "examples": int(examples),
        "points": int(points), "batch_size": int(batch_size),
        "point_seconds": point_seconds, "forward_seconds": forward_seconds,
        "ratio": point_seconds / forward_seconds, "target": 1.1,
        "parameters": int(sum(int(np.prod(v.shape)) for v in model.trainable_variables)),
    }


if __name__ == "__main__":  # the same table as `tfadv bench landscape`
    from tfadv.bench import format_table, ratio_rows

    result = run()
    print(json.dumps(result, indent=2))
    print(format_table(ratio_rows(result)))
