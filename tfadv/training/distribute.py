"""Training on several machines: ``train.distribute: multi_worker``.

Every worker runs the same command, ``tfadv train CONFIG``, with the standard
``TF_CONFIG`` environment variable telling it the cluster and its own place
in it (https://www.tensorflow.org/guide/distributed_training)::

    TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]},
                "task": {"type": "worker", "index": 0}}'

``tf.distribute.MultiWorkerMirroredStrategy`` then keeps one copy of the
variables per device on every worker and all-reduces the gradients of each
step across all of them, so the workers train one model in lockstep:

- **Batch.** ``data.batch_size`` is the *global* batch: tf.data's ``DATA``
  auto-sharding splits every batch of the (identically seeded, identically
  shuffled) pipeline across the workers and their devices.
- **Attacks** run inside each replica's ``train_step`` on its share.
- **RobMask's p** is drawn from ``(seed, optimizer.iterations)``
  (:meth:`tfadv.training.methods.RobMask.draw_strength`); the iteration
  counter is a mirrored variable, so every replica on every worker draws the
  same p at every global step, and a resumed run continues the sequence.
- **BatchNorm** is synchronized across all replicas of all workers, as with
  ``train.distribute: mirrored``.
- **Files.** The chief (task ``chief``, or ``worker`` 0 when there is no
  chief) writes the run folder. Other workers write their checkpoints,
  history and TensorBoard events to a temporary folder removed when they
  finish (what Keras' ``BackupAndRestore`` does), because saving needs
  every worker's participation (reading synchronized variables is a
  collective). A killed worker's leftovers are removed when it restarts.
  They read the chief's stored adversarial set (offline fine-tuning) once
  the chief has written it, rather than crafting their own.
- **Resume.** After every epoch the chief's ``checkpoints/`` holds weights,
  optimizer state and the epoch counter. When a worker dies, the others stop
  at their next collective (see "A lost worker" below); start the same command on every worker again and
  they all restore the chief's last checkpoint, so no finished epoch is lost
  or repeated (``BackupAndRestore`` semantics). Every worker reads the
  chief's run folder, so ``output_dir`` must be on storage all workers see
  (a shared file system, or GCS/S3 paths TensorFlow can open).

The loop itself is :func:`tfadv.training.loop.fit_distributed` (public
``tf.distribute`` API only); this module holds the cluster side: the
strategy, the chief/worker file policy (:class:`WorkerFiles`, the one place
that decides what a worker reads and writes) and what happens when a worker
is lost (:class:`WorkerLost`).

- **A lost worker.** Every collective runs with a timeout
  (``tf.distribute.experimental.CommunicationOptions(timeout_seconds=...)``,
  ``train.worker_timeout``, default :data:`DEFAULT_WORKER_TIMEOUT`), so a
  survivor whose peer was killed or hangs stops within that time instead of
  waiting forever; a peer whose process is gone is usually noticed sooner,
  by TensorFlow's coordination-service heartbeat or its closed connection. The survivor raises :class:`WorkerLost`, one line
  naming the lost worker(s); ``tfadv train`` prints it and exits with code 4.
"""
import hashlib
import json
import os
import shutil
import tempfile
import time

import tensorflow as tf

from tfadv.training.callbacks import EpochCheckpoint


def cluster_spec():
    """``TF_CONFIG`` parsed, or ValueError naming what is wrong with it."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise ValueError(
            "train.distribute 'multi_worker' needs the TF_CONFIG environment variable on every worker, "
            'e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", '
            '"index": 0}}. Received: TF_CONFIG unset')
    try:
        spec = json.loads(text)
        cluster, task = spec["cluster"], spec["task"]
        hosts = cluster[task["type"]]
        if not 0 <= int(task["index"]) < len(hosts):
            raise IndexError(task["index"])
    except (ValueError, KeyError, TypeError, IndexError) as error:
        raise ValueError(
            "TF_CONFIG must be JSON with 'cluster' (job → list of host:port) and 'task' "
            f"({{'type': job, 'index': i}} within the cluster). Received: TF_CONFIG={text!r} ({error!r})"
        ) from None
    return spec


def multi_worker_strategy(timeout_seconds=None):
    """``tf.distribute.MultiWorkerMirroredStrategy`` for the cluster ``TF_CONFIG`` describes.

    Must be called before any other TensorFlow operation runs in the process
    (TensorFlow configures collective ops once, at startup).

    Args:
        timeout_seconds: how long a collective waits for the other workers
            before it fails (default :data:`DEFAULT_WORKER_TIMEOUT`): the bound
            on how long a survivor waits for a lost worker.
    """
    cluster_spec()
    timeout = DEFAULT_WORKER_TIMEOUT if timeout_seconds is None else float(timeout_seconds)
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout)
    try:
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    except RuntimeError as error:
        raise RuntimeError(
            f"{error}: create the multi-worker strategy (tfadv.training.train_from_config does) "
            "before anything else runs TensorFlow operations in this process."
        ) from error


DEFAULT_WORKER_TIMEOUT = 300.0
"""Seconds a collective waits for the other workers (``train.worker_timeout`` unset)."""

POLL_SECONDS = 0.5


class WorkerLost(RuntimeError):
    """Another worker of a multi-worker run stopped (killed, crashed, or hung past the timeout)."""


LOST_WORKER_ERRORS = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError,
                      tf.errors.AbortedError, tf.errors.InternalError, tf.errors.FailedPreconditionError)
"""What a collective raises when a peer is gone (TensorFlow's kind depends on where it noticed)."""


def is_chief(strategy):
    """Whether this worker writes the run folder (always, on one machine)."""
    return bool(strategy.extended.should_checkpoint)


def _workers(strategy):
    """``[(task_type, index, address)]`` of every worker in the cluster, and this task's place."""
    resolver = strategy.cluster_resolver
    if resolver is None or not resolver.cluster_spec().as_dict():
        return [], None
    tasks = [(job, index, address) for job, addresses in sorted(resolver.cluster_spec().as_dict().items())
             for index, address in enumerate(addresses)]
    return tasks, (resolver.task_type, int(resolver.task_id))


def lost_worker_message(strategy, error):
    """One line naming the worker(s) this one lost, from the collective's error."""
    tasks, me = _workers(strategy)
    text = str(error)
    named = [task for task in tasks if task[:2] != me and any(
        f"/job:{task[0]}/{middle}task:{task[1]}" in text for middle in ("", "replica:0/"))]
    others = named or [task for task in tasks if task[:2] != me]
    who = " or ".join(f"{job} {index} ({address})" for job, index, address in others)
    first_line = text.strip().splitlines()[0][:200] if text.strip() else type(error).__name__
    where = f"{me[0]} {me[1]}" if me else "this worker"
    return (f"lost {who}: {where} stopped because a collective failed ({type(error).__name__}: {first_line}). "
            "Start the same command on every worker again to resume from the last finished epoch.")


class WorkerFiles:
    """The chief/worker file policy of a run folder: what this process reads and writes, in one place.

    On one machine, and on the chief of a cluster (task ``chief``, or
    ``worker`` 0 when there is none), everything is the run folder itself.
    Another worker:

    - holds no lock on the run folder and never prepares it (the chief does);
    - reads the chief's files: its ``checkpoints/`` to resume, its stored
      adversarial set (it waits for the chief to finish writing it rather
      than crafting its own);
    - writes what every worker must write (saving a checkpoint or the model
      reads synchronized variables, a collective every worker joins) into a
      temporary folder named after the run folder and the task, so a killed
      worker's leftovers are removed when it restarts, and removed when it
      finishes (what Keras' ``BackupAndRestore`` does);
    - writes no summary.
    """

    def __init__(self, run_dir, strategy):
        self.run_dir = run_dir
        self.strategy = strategy
        self.chief = is_chief(strategy)
        self.write_dir = run_dir
        if not self.chief:
            resolver = strategy.cluster_resolver
            digest = hashlib.sha256(os.path.abspath(run_dir).encode()).hexdigest()[:12]
            self.write_dir = os.path.join(tempfile.gettempdir(),
                                          f"tfadv-{digest}-{resolver.task_type}-{resolver.task_id}")

    def __enter__(self):
        if not self.chief:
            shutil.rmtree(self.write_dir, ignore_errors=True)
            os.makedirs(self.write_dir)
        return self

    def __exit__(self, *exc_info):
        if not self.chief:
            shutil.rmtree(self.write_dir, ignore_errors=True)
        return False

    @property
    def writes_run_folder(self):
        """Whether this process prepares, locks and writes the run folder and its summary."""
        return self.chief

    def path(self, name):
        """Where this process writes ``name`` (the run folder on the chief)."""
        return os.path.join(self.write_dir, name)

    def chief_path(self, name):
        """``name`` in the run folder, which every worker reads."""
        return os.path.join(self.run_dir, name)

    def checkpoint(self, trackables):
        """The per-epoch checkpoint callback: restore from the chief's ``checkpoints/``, save into ours."""
        read = self.chief_path("checkpoints")
        if self.chief:
            return EpochCheckpoint(read, trackables)
        return WorkerEpochCheckpoint(read, self.path("checkpoints"), trackables)

    def history(self, initial_epoch):
        """The rows of ``history.csv`` after training: the chief's, or ours after the restored epochs."""
        from tfadv.training.callbacks import read_history

        rows = read_history(self.chief_path("history.csv"))
        if self.chief:
            return rows
        return rows[:initial_epoch] + read_history(self.path("history.csv"))

    def wait_for_chief(self, ready, what, timeout_seconds):
        """Poll ``ready()`` until the chief has written ``what``.

        ``ready()`` returns ``(done, progress)``. Gives up with
        :class:`WorkerLost` when ``progress`` stays the same for
        ``timeout_seconds`` (any change restarts the clock), so a worker whose
        chief died while writing never waits forever.
        """
        last, since = None, time.monotonic()
        while True:
            done, progress = ready()
            if done:
                return
            if progress != last:
                last, since = progress, time.monotonic()
            elif time.monotonic() - since > timeout_seconds:
                tasks, me = _workers(self.strategy)
                chief = [t for t in tasks if t[0] == "chief"] or [t for t in tasks if t[:2] == ("worker", 0)]
                who = " or ".join(f"{job} {index} ({address})" for job, index, address in chief) or "the chief"
                raise WorkerLost(f"lost {who}: {what} made no progress for {timeout_seconds:g} s. Start the "
                                 "same command on every worker again to resume.")
            time.sleep(POLL_SECONDS)


def shard_by_examples(dataset):
    """``dataset`` with tf.data's ``DATA`` auto-shard policy.

    Every worker builds the same seeded pipeline; ``DATA`` splits each global
    batch across workers and replicas (``FILE`` sharding, the default, would
    need one input file per worker and falls back to this for arrays anyway).
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


class WorkerEpochCheckpoint(EpochCheckpoint):
    """:class:`~tfadv.training.callbacks.EpochCheckpoint` that restores from the chief's folder
    and saves into this worker's own (temporary) folder.

    All workers save after every epoch (saving may run collective operations);
    only the chief's copy is kept.
    """

    def __init__(self, read_directory, write_directory, trackables, max_to_keep=2):
        super().__init__(write_directory, trackables, max_to_keep)
        self.read_directory = read_directory

    def restore(self):
        latest = tf.train.latest_checkpoint(self.read_directory)
        if latest is None:
            return 0
        self.checkpoint.restore(latest).expect_partial()
        return int(self.epoch.numpy())
