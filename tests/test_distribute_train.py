"""Multi-worker training: two `tfadv train` processes on 127.0.0.1 with TF_CONFIG.

Each worker process has one logical CPU device; the reference is one process
with two logical CPU devices under MirroredStrategy, the same two replicas.
Weights are compared to 1e-6: with two replicas an all-reduce adds two
numbers, a + b, which is exact and commutative in IEEE arithmetic, so the
collective ring all-reduce of the workers and the single-process reduction
give the same sums; what may differ is the order in which XLA/oneDNN kernels
sum within a replica when the graphs are optimized differently in the two
set-ups, a few ulps per step over the 4 steps here (observed: equal to the
last bit on this machine). With more than two replicas the reduction order
would matter and the tolerance would have to grow with the number of steps.
PGD starts at x (no random start) for the comparison: replicas draw their
random starts from per-replica op seeds, which differ between one process
with two devices and two processes with one each.
"""
import csv
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from tfadv.bench.distribute import free_ports

pytestmark = pytest.mark.slow

DRIVER = textwrap.dedent('''
    """`tfadv train` with test-only hooks: logical devices, a log of RobMask's p, a crash after an epoch."""
    import os
    import sys

    import tensorflow as tf

    devices = int(os.environ.get("TEST_LOGICAL_CPUS", "1"))
    if devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)

    from tfadv.training.methods.robmask import RobMask
    from tfadv.training.callbacks import EpochCheckpoint

    log = os.environ.get("TEST_STRENGTH_LOG")
    if log:
        draw = RobMask.draw_strength

        def logged(self):
            p = draw(self)
            # One line per replica and step: the global step and p's exact bits.
            tf.print(self.optimizer.iterations, tf.bitcast(p, tf.int32), output_stream="file://" + log)
            return p

        RobMask.draw_strength = logged

    crash_after = os.environ.get("TEST_CRASH_AFTER_EPOCH")
    if crash_after:
        save = EpochCheckpoint.on_epoch_end

        def crash(self, epoch, logs=None):
            save(self, epoch, logs)
            if epoch + 1 == int(crash_after):
                os._exit(17)  # killed right after the epoch's checkpoint

        EpochCheckpoint.on_epoch_end = crash

    sigkill_at = os.environ.get("TEST_SIGKILL_AT")
    if sigkill_at:
        import signal

        from tfadv.training.divergence import StopOnDivergence

        epoch, step = map(int, sigkill_at.split(":"))
        check = StopOnDivergence.on_train_batch_end

        def die(self, batch, logs=None):
            check(self, batch, logs)
            if (self.epoch, batch) == (epoch, step):
                os.kill(os.getpid(), signal.SIGKILL)  # mid-epoch, as a machine failure would

        StopOnDivergence.on_train_batch_end = die

    from tfadv.cli.main import main

    sys.exit(main(["train", *sys.argv[1:]]))
''')


def _config(tmp_path, method):
    method_section = "method: {kind: standard}"
    norm = "bn"
    if method == "robmask":
        method_section = "method: {kind: robmask, pgd_steps: 2, attack: {random_start: false}}"
        norm = "robmask"
    path = tmp_path / f"{method}.yaml"
    path.write_text(textwrap.dedent(f"""
        name: {method}
        seed: 3
        output_dir: {tmp_path / 'runs'}
        data: {{source: digits, limit_train: 64, limit_test: 32, batch_size: 32, augment: false}}
        model: {{name: tiny, norm: {norm}}}
        train: {{epochs: 2, distribute: multi_worker, verbose: 0, learning_rate: 0.05, schedule: constant}}
        {method_section}
    """))
    return path


def _environment(tmp_path, **extra):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1",
           "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": os.pathsep.join(filter(None, [
               os.path.dirname(os.path.dirname(os.path.abspath(__file__))), os.environ.get("PYTHONPATH")]))}
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _start_workers(tmp_path, config, logs, crash_after=None, sigkill=None, extra=()):
    """Two `tfadv train` worker processes on 127.0.0.1 with TF_CONFIG (free ports).

    ``sigkill=(index, "E:S")`` SIGKILLs worker ``index`` after step S of epoch E (0-based).
    """
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    ports = free_ports(2)
    cluster = ", ".join(f'"127.0.0.1:{port}"' for port in ports)
    workers = []
    for index in range(2):
        scratch = tmp_path / f"tmp{index}"
        scratch.mkdir(exist_ok=True)
        env = _environment(tmp_path, TMPDIR=str(scratch), TEST_STRENGTH_LOG=str(logs[index]),
                           TF_CONFIG=f'{{"cluster": {{"worker": [{cluster}]}}, '
                                     f'"task": {{"type": "worker", "index": {index}}}}}')
        if crash_after:
            env["TEST_CRASH_AFTER_EPOCH"] = str(crash_after)
        if sigkill and sigkill[0] == index:
            env["TEST_SIGKILL_AT"] = sigkill[1]
        workers.append(subprocess.Popen([sys.executable, str(driver), str(config), *extra], env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    return workers


def _start_mirrored(tmp_path, config, log, crash_after=None):
    """The reference: one process, two logical CPU devices, MirroredStrategy."""
    env = _environment(tmp_path, TEST_LOGICAL_CPUS="2", TEST_STRENGTH_LOG=str(log))
    if crash_after:
        env["TEST_CRASH_AFTER_EPOCH"] = str(crash_after)
    return subprocess.Popen([sys.executable, str(tmp_path / "driver.py"), str(config),
                             "--set", "train.distribute=mirrored", "--set", f"output_dir={tmp_path / 'mirrored'}"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait(processes):
    """Exit codes and outputs; every process is ended before returning."""
    results = []
    try:
        for process in processes:
            output, _ = process.communicate(timeout=600)
            results.append((process.returncode, output))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    return results


def _history(run_dir):
    with open(os.path.join(run_dir, "history.csv"), newline="") as handle:
        return list(csv.DictReader(handle))


def _strengths(log):
    """{global step: set of p bit patterns drawn at that step}."""
    drawn = {}
    for line in open(log).read().split("\n"):
        if line.strip():
            step, bits = line.split()
            drawn.setdefault(int(step), set()).add(int(bits))
    return drawn


def _weights(path):
    from tfadv.models import load_model

    return [np.asarray(w) for w in load_model(path).get_weights()]


def _tfadv_leftovers(temporary_root):
    """What tfadv left in a worker's temporary root (TensorFlow's own autograph files aside)."""
    return [name for name in os.listdir(temporary_root) if name.startswith("tfadv")]


def _check_weights_match(tmp_path, name):
    reference = _weights(tmp_path / "mirrored" / name / "model.keras")
    for got, expected in zip(_weights(tmp_path / "runs" / name / "model.keras"), reference, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_robmask_on_two_workers_killed_and_restarted_matches_and_draws_one_p_per_step(tmp_path):
    """Both set-ups are killed right after epoch 1 and restarted with the same command."""
    config = _config(tmp_path, "robmask")
    first = [tmp_path / f"first{index}.txt" for index in range(3)]
    processes = _start_workers(tmp_path, config, first[:2], crash_after=1)
    processes.append(_start_mirrored(tmp_path, config, first[2], crash_after=1))
    for code, output in _wait(processes):
        assert code == 17, output
    run_dir = tmp_path / "runs" / "robmask"
    first_rows = _history(run_dir)
    assert [int(row["epoch"]) for row in first_rows] == [1] and not (run_dir / "model.keras").exists()

    second = [tmp_path / f"second{index}.txt" for index in range(3)]
    processes = _start_workers(tmp_path, config, second[:2]) + [_start_mirrored(tmp_path, config, second[2])]
    for code, output in _wait(processes):
        assert code == 0, output
    rows = _history(run_dir)
    assert [int(row["epoch"]) for row in rows] == [1, 2] and rows[0] == first_rows[0]  # none lost or repeated
    assert _tfadv_leftovers(tmp_path / "tmp1") == []
    _check_weights_match(tmp_path, "robmask")

    # p: one value per global step (64 / 32 = 2 steps per epoch), the same on both workers and on
    # both replicas of the reference, and the stream continues after the restart.
    drawn = [{**_strengths(a), **_strengths(b)} for a, b in zip(first, second)]
    assert sorted(_strengths(first[0])) == [0, 1] and sorted(_strengths(second[0])) == [2, 3]
    for step, values in drawn[0].items():
        assert len(values) == 1 and drawn[1][step] == values == drawn[2][step]
    assert len({next(iter(values)) for values in drawn[0].values()}) == 4


def test_a_sigkilled_worker_stops_its_peer_and_a_rerun_ends_like_one_process_with_two_devices(tmp_path):
    """Worker 1 is SIGKILLed mid-epoch 2; the survivor (the chief) exits with code 4 within the
    bound, one line naming it, and running both commands again ends like the reference: the same
    weights, the same history with its validation columns, TensorBoard's event files.
    (Killing worker 0 instead, the chief and coordination leader, was checked by hand: its peer's
    next collective fails at once, "Connection reset by peer", with the same line naming worker 0.)"""
    killed = 1
    config = _config(tmp_path, "standard")
    timeout = ["--set", "train.worker_timeout=20"]
    logs = [tmp_path / f"p{index}.txt" for index in range(2)]
    workers = _start_workers(tmp_path, config, logs, sigkill=(killed, "1:0"), extra=timeout)
    reference = _start_mirrored(tmp_path, config, tmp_path / "pm.txt")
    try:
        dead = workers[killed].wait(timeout=600)
        killed_at = time.monotonic()
        output, _ = workers[1 - killed].communicate(timeout=600)
        code, waited = workers[1 - killed].returncode, time.monotonic() - killed_at
    finally:
        for process in workers:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert dead == -signal.SIGKILL
    assert code == 4, output
    lines = [line for line in output.splitlines() if line.startswith("tfadv train: error:")]
    assert len(lines) == 1 and f"lost worker {killed} (127.0.0.1:" in lines[0], output
    assert waited < 20 + 60, output  # bounded by train.worker_timeout (and a margin for a busy machine)
    run_dir = tmp_path / "runs" / "standard"
    assert [int(row["epoch"]) for row in _history(run_dir)] == [1] and not (run_dir / "model.keras").exists()

    left_by_the_killed_worker = set(_tfadv_leftovers(tmp_path / "tmp1"))
    for code, output in _wait(_start_workers(tmp_path, config, logs, extra=timeout) + [reference]):
        assert code == 0, output
    rows = _history(run_dir)
    assert [int(row["epoch"]) for row in rows] == [1, 2]
    # The Keras callbacks the loop drives: the epoch logs with validation, TensorBoard's event files.
    assert set(rows[0]) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy"}
    reference_rows = _history(tmp_path / "mirrored" / "standard")  # the same metrics, summed over all replicas
    for row, expected in zip(rows, reference_rows, strict=True):
        assert {k: float(v) for k, v in row.items()} == pytest.approx({k: float(v) for k, v in expected.items()},
                                                                      rel=1e-6, abs=1e-6)
    for split in ("train", "validation"):
        assert any(name.startswith("events.") for name in os.listdir(run_dir / "tensorboard" / split))
    # The rerun's worker 1 wrote only a temporary folder, and removed it (what SIGKILL left stays).
    assert set(_tfadv_leftovers(tmp_path / "tmp1")) <= left_by_the_killed_worker
    _check_weights_match(tmp_path, "standard")
