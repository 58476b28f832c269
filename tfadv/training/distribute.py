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
- **Resume.** After every epoch the chief's ``checkpoints/`` holds weights,
  optimizer state and the epoch counter. When a worker dies, the others stop
  at their next collective; start the same command on every worker again and
  they all restore the chief's last checkpoint, so no finished epoch is lost
  or repeated (``BackupAndRestore`` semantics). Every worker reads the
  chief's run folder, so ``output_dir`` must be on storage all workers see
  (a shared file system, or GCS/S3 paths TensorFlow can open).

Keras 3 (checked with 3.15) has two bugs in ``fit`` under a multi-worker
``MultiWorkerMirroredStrategy`` (keras-team/keras#20585): the symbolic build
reduces a whole data batch structure at once, and the per-step logs are
reduced with ``axis=0`` although they are scalars. :func:`multi_worker_strategy`
applies two narrow fixes that act only in multi-worker mode.
"""
import hashlib
import json
import os
import shutil
import tempfile

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


def multi_worker_strategy():
    """``tf.distribute.MultiWorkerMirroredStrategy`` for the cluster ``TF_CONFIG`` describes.

    Must be called before any other TensorFlow operation runs in the process
    (TensorFlow configures collective ops once, at startup).
    """
    cluster_spec()
    _fix_keras_multi_worker_fit()
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except RuntimeError as error:
        raise RuntimeError(
            f"{error}: create the multi-worker strategy (tfadv.training.train_from_config does) "
            "before anything else runs TensorFlow operations in this process."
        ) from error


def is_chief(strategy):
    """Whether this worker writes the run folder (always, on one machine)."""
    return bool(strategy.extended.should_checkpoint)


def worker_folder(run_dir, chief, strategy):
    """Where this worker writes: the run folder on the chief, a fresh temporary folder elsewhere.

    The temporary folder's name is fixed by the run folder and the task, so a
    worker that was killed (and could not clean up) removes its leftovers when
    it is restarted with the same command.
    """
    if chief:
        return run_dir
    resolver = strategy.cluster_resolver
    digest = hashlib.sha256(os.path.abspath(run_dir).encode()).hexdigest()[:12]
    folder = os.path.join(tempfile.gettempdir(),
                          f"tfadv-{digest}-{resolver.task_type}-{resolver.task_id}")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    return folder


def remove_worker_folder(folder, chief):
    """Delete a non-chief worker's temporary folder (nothing to do on the chief)."""
    if not chief:
        shutil.rmtree(folder, ignore_errors=True)


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


def _fix_keras_multi_worker_fit():
    """Patch Keras 3's TensorFlow trainer where it breaks under multi-worker collectives.

    Idempotent; the fixed code paths run only when the strategy is a
    ``MultiWorkerMirroredStrategy`` in multi-worker mode, everything else
    goes to Keras' own code.
    """
    from keras.src.backend.tensorflow import trainer

    if getattr(trainer, "_tfadv_multi_worker_fix", False):
        return
    keras_reduce = trainer.reduce_per_replica
    keras_build = trainer.TensorFlowTrainer._maybe_symbolic_build

    def reduce_per_replica(values, strategy, reduction):
        if not trainer._collective_all_reduce_multi_worker(strategy) or reduction not in ("auto", "mean"):
            return keras_reduce(values, strategy, reduction)

        def reduce_one(value):
            local = value.values[0] if isinstance(value, tf.distribute.DistributedValues) else value
            if tf.is_tensor(local) and local.shape.rank == 0:
                # Mean over all replicas of all workers of a scalar log (Keras passes axis=0).
                return strategy.reduce("MEAN", value, axis=None)
            return keras_reduce(value, strategy, reduction)

        return tf.nest.map_structure(reduce_one, values)

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if strategy is None or not trainer._collective_all_reduce_multi_worker(strategy):
            return keras_build(self, iterator=iterator, data_batch=data_batch)
        if iterator is not None:
            # Keras reduces the whole batch structure at once, which the collective
            # reduce cannot do; the build only needs shapes, so the local share will do.
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(
                    lambda v: strategy.experimental_local_results(v)[0]
                    if isinstance(v, tf.distribute.DistributedValues) else v,
                    next(batches))
                break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    trainer.reduce_per_replica = reduce_per_replica
    trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    trainer._tfadv_multi_worker_fix = True
