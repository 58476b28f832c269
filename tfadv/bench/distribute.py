"""Benchmark: scaling over processes, one CPU core each.

Two ratios, each of wall times measured on this machine:

- **PGD-7 adversarial training step, 2 workers / 1 worker** (target ≤ 0.6;
  0.5 is perfect scaling). The same global batch and model; the 1-worker
  run is one process, the 2-worker run two processes joined by
  ``MultiWorkerMirroredStrategy`` over ``TF_CONFIG`` on 127.0.0.1, each
  pinned to its own core (``os.sched_setaffinity``) with one TensorFlow
  thread, so each holds half of every batch. The time per step is the median
  over timed steps after warm-up, measured by the chief.
- **landscape sweep, 2 shards / 1 shard** (target ≤ 0.6). The same grid over
  the same examples; the 2-shard time is the slower shard's sweep
  (``--shard 0/2`` and ``1/2`` in two processes on two cores), the 1-shard
  time one process on one core. Each includes its own compilation.

What limits the figures on this machine: both processes share one host's
memory bandwidth and caches, other jobs on the machine take cores away from
either side, and the training step also pays an all-reduce of the gradients
(loopback TCP here) and a synchronization per step, which the 1-worker run
does not. On N real machines a training step costs ≈ (the compute of B/N
examples) + (an all-reduce of the weights' size, ring: 2·(N−1)/N of it per
machine): PGD-7 multiplies the compute by ~8 while the all-reduce stays, so
adversarial training scales better than clean training. Landscape shards
never talk to each other: N machines give N× until the grid has fewer
points than machines.

Run: ``tfadv bench distribute`` (or ``python -m tfadv.bench.distribute``).
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

TRAIN_TARGET = 0.6
LANDSCAPE_TARGET = 0.6


def free_ports(count):
    """``count`` TCP ports on 127.0.0.1 that were free a moment ago (for local workers)."""
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _child_environment(core, tf_config=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1",
           "TF_NUM_INTRAOP_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "TFADV_BENCH_CORE": str(core)}
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return env


def _run_children(argument_lists, environments, timeout=1800):
    """Start the children together; return their last stdout line parsed as JSON."""
    processes = [subprocess.Popen([sys.executable, "-m", "tfadv.bench.distribute", *arguments], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for arguments, env in zip(argument_lists, environments)]
    results = []
    try:
        for process in processes:
            output, errors = process.communicate(timeout=timeout)
            if process.returncode != 0:
                raise RuntimeError(f"benchmark child failed ({process.returncode}): {errors[-2000:]}")
            results.append(json.loads(output.strip().splitlines()[-1]))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    return results


def _cores():
    available = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0, 1]
    return (available * 2)[:2]


def _train_child(model_name, batch_size, steps, warmup, seed):
    import keras
    import numpy as np
    import tensorflow as tf

    from tfadv.training import distribute

    multi_worker = "TF_CONFIG" in os.environ
    strategy = distribute.multi_worker_strategy() if multi_worker else tf.distribute.get_strategy()
    from tfadv import models
    from tfadv.training import methods

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (batch_size * 4, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, batch_size * 4).astype("int64")
    pgd7 = methods.AttackSpec("pgd", eps=8 / 255, step_size=2 / 255, steps=7)
    with strategy.scope():
        inner = models.build(model_name, num_classes=10, input_shape=(32, 32, 3),
                             norm_options={"synchronized": multi_worker})
        trained = methods.wrap(inner, "adversarial", attack=pgd7)
        trained.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(batch_size, drop_remainder=True)
    if multi_worker:
        dataset = distribute.shard_by_examples(dataset)
    stamps = []

    class Stamps(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            stamps.append(time.perf_counter())

    from tfadv.training.loop import fit_distributed

    fit_distributed(trained, strategy, dataset, epochs=1, steps_per_epoch=warmup + steps, callbacks=[Stamps()])
    seconds = float(np.median(np.diff(stamps[warmup - 1 :])))
    return {"step_seconds": seconds, "replicas": int(strategy.num_replicas_in_sync)}


def _landscape_child(model_name, examples, points, batch_size, shard, seed):
    import keras
    import numpy as np

    from tfadv import models
    from tfadv.landscape import random_directions
    from tfadv.landscape.surface import parse_grid, sweep_surface

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (examples, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, examples).astype("int64")
    model = models.build(model_name, num_classes=10, input_shape=(32, 32, 3))
    directions = random_directions(model, 1, seed=seed)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        result = sweep_surface(model, directions, x, y, os.path.join(folder, "surface.h5"),
                               parse_grid(f"-1:1:{points}"), batch_size=batch_size, progress=False,
                               shard=shard)
        seconds = time.perf_counter() - started
    return {"sweep_seconds": seconds, "points": int(result["computed"])}


def run(model_name="resnet20", batch_size=64, steps=6, warmup=2, examples=500, points=8,
        landscape_batch_size=250, seed=0):
    """Time the two scalings with one core per process.

    Args:
        model_name: a :func:`tfadv.models.build` name (32×32×3, 10 classes).
        batch_size: the global batch of the training step.
        steps, warmup: timed and untimed training steps.
        examples, points, landscape_batch_size: the landscape sweep (1-D grid).

    Returns:
        dict with the ratios, targets, seconds and settings.
    """
    cores = _cores()
    common = ["--model", model_name, "--seed", str(seed)]
    train_args = common + ["--batch-size", str(batch_size), "--steps", str(steps), "--warmup", str(warmup)]
    one = _run_children([["train", *train_args]], [_child_environment(cores[0])])[0]
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    two = _run_children(
        [["train", *train_args]] * 2,
        [_child_environment(cores[i], {"cluster": cluster, "task": {"type": "worker", "index": i}}) for i in range(2)],
    )
    sweep_args = common + ["--examples", str(examples), "--points", str(points),
                           "--batch-size", str(landscape_batch_size)]
    whole = _run_children([["landscape", *sweep_args]], [_child_environment(cores[0])])[0]
    shards = _run_children([["landscape", *sweep_args, "--shard", f"{i}/2"] for i in range(2)],
                           [_child_environment(cores[i]) for i in range(2)])
    train_ratio = two[0]["step_seconds"] / one["step_seconds"]
    sharded_seconds = max(shard["sweep_seconds"] for shard in shards)
    landscape_ratio = sharded_seconds / whole["sweep_seconds"]
    return {
        "benchmark": "distribute",
        "model": model_name,
        "cores": cores,
        "batch_size": int(batch_size),
        "train_one_worker_step_seconds": one["step_seconds"],
        "train_two_workers_step_seconds": two[0]["step_seconds"],
        "train_ratio": train_ratio,
        "train_target": TRAIN_TARGET,
        "landscape_points": int(points),
        "landscape_examples": int(examples),
        "landscape_one_shard_seconds": whole["sweep_seconds"],
        "landscape_two_shards_seconds": sharded_seconds,
        "landscape_ratio": landscape_ratio,
        "landscape_target": LANDSCAPE_TARGET,
    }


def rows(result, make_row):
    """The suite's table rows (``make_row(what, ratio, target, detail)``)."""
    return [
        make_row("PGD-7 train step, 2 workers / 1 worker (1 core each)", result["train_ratio"],
                 result["train_target"],
                 f"{result['train_two_workers_step_seconds'] * 1e3:.0f} ms vs "
                 f"{result['train_one_worker_step_seconds'] * 1e3:.0f} ms, global batch {result['batch_size']}"),
        make_row("landscape sweep, 2 shards / 1 shard (1 core each)", result["landscape_ratio"],
                 result["landscape_target"],
                 f"{result['landscape_two_shards_seconds']:.1f} s vs {result['landscape_one_shard_seconds']:.1f} s, "
                 f"{result['landscape_points']} points × {result['landscape_examples']} examples"),
    ]


def _child_main(argv):
    import argparse

    core = os.environ.get("TFADV_BENCH_CORE")
    if core is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(core)})
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=("train", "landscape"))
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--examples", type=int, default=500)
    parser.add_argument("--points", type=int, default=8)
    parser.add_argument("--shard", default=None)
    args = parser.parse_args(argv)
    if args.kind == "train":
        result = _train_child(args.model, args.batch_size, args.steps, args.warmup, args.seed)
    else:
        result = _landscape_child(args.model, args.examples, args.points, args.batch_size, args.shard, args.seed)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("train", "landscape"):
        _child_main(sys.argv[1:])
    else:  # the same table as `tfadv bench distribute`
        from tfadv.bench import format_table, ratio_rows

        print(format_table(ratio_rows(run())))
