"""``tfadv train``: one experiment config → a run folder.

The runner composes the pieces (data, model, training method, optimizer,
callbacks). :func:`assemble` is the one assembly of a config's training,
shared with ``tfadv tune``; the training methods themselves live in
``tfadv.training.methods`` (each kind's protocol: ``MethodKind``). One device
trains with ``model.fit``; ``train.distribute: mirrored`` and
``multi_worker`` with :func:`tfadv.training.loop.fit_distributed`; what each
worker reads and writes is :class:`tfadv.training.distribute.WorkerFiles`.
"""
import contextlib
import dataclasses
import os
import time

import keras
import numpy as np
import tensorflow as tf

from tfadv import data as tfdata
from tfadv._files import FolderLock
from tfadv import models
from tfadv.config import ConfigError, to_dict
from tfadv.training.callbacks import robust_validation_from_config
from tfadv.training.divergence import StopOnDivergence, TrainingDiverged  # noqa: F401
from tfadv.training.optimizers import make_optimizer
from tfadv.models.io import load_model
from tfadv.records import environment_record, write_json
from tfadv.training.callbacks import HistoryCSV, read_history
from tfadv.training.runs import prepare_folder, save_model_atomically

# Keys that may differ between an interrupted run and its resumption.
RESUME_FREE_KEYS = ("train.verbose", "train.worker_timeout")


@dataclasses.dataclass
class RunResult:
    run_dir: str
    model: keras.Model
    history: list
    resumed_from_epoch: int
    completed: bool


def make_strategy(kind, worker_timeout=None):
    """The ``tf.distribute`` strategy a ``TrainConfig.distribute`` names.

    ``worker_timeout`` (multi_worker): seconds a collective waits for the
    other workers (``train.worker_timeout``).
    """
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy()
    if kind == "multi_worker":
        from tfadv.training.distribute import multi_worker_strategy

        return multi_worker_strategy(worker_timeout)
    return tf.distribute.get_strategy()


def load_split_arrays(data_config, split):
    x, y = tfdata.load_arrays(data_config.source, split, data_config.data_dir,
                              num_classes=data_config.num_classes)
    limit = data_config.limit_train if split == "train" else data_config.limit_test
    if limit is not None:
        x, y = x[:limit], y[:limit]
    return x, y


def _prepare_run_dir(config, overwrite):
    run_dir = prepare_folder(config, os.path.join(config.output_dir, config.name), overwrite,
                             RESUME_FREE_KEYS)
    os.makedirs(os.path.join(run_dir, "checkpoints"), exist_ok=True)
    return run_dir


def build_inner_model(config, x_train, y_train):
    """The architecture the config names, or the pretrained model it starts from."""
    if config.model.init_from:  # converted to model.norm / given its preprocessing when stated
        return models.from_pretrained(load_model(config.model.init_from), config.model.norm,
                                      config.model.norm_options, config.model.preprocess)
    norm_options = dict(config.model.norm_options)
    if config.train.distribute in ("mirrored", "multi_worker"):
        # Per-device BN statistics would drift apart across replicas; synchronized BN
        # normalizes with the global batch and gives one device's result.
        norm_options.setdefault("synchronized", True)
    info = tfdata.dataset_info(x_train, y_train, config.data.num_classes, config.data.source)
    mean, std = tfdata.channel_stats(x_train)
    return models.build(
        config.model.name,
        num_classes=info["num_classes"],
        input_shape=info["input_shape"],
        norm=config.model.norm,
        norm_options=norm_options,
        mean=mean,
        std=np.maximum(std, 1e-3),
        preprocess=config.model.preprocess,
        **config.model.options,
    )


def check_data_fits_model(config, inner, train_arrays, test_arrays):
    """Both splits fit ``inner`` (image shape, label range), before any step is taken."""
    model = (f"model.init_from={config.model.init_from!r}" if config.model.init_from
             else f"model {config.model.name!r}")
    for split, (x, y) in (("train", train_arrays), ("test", test_arrays)):
        tfdata.check_model_data(inner, x, y, f"{config.data.source} ({split})", model)


@contextlib.contextmanager
def precision_policy(name):
    """Keras' global dtype policy set to ``name`` inside the block, the previous one restored after."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


@dataclasses.dataclass
class Assembly:
    """A config's training, assembled (:func:`assemble`): what ``tfadv train`` and ``tfadv tune`` run.

    Attributes:
        inner: the model being trained (the one to save).
        method: the compiled ``keras.Model`` whose ``train_step`` is the method.
        kind: the method's :class:`~tfadv.training.methods.MethodKind`.
        prepared: what the kind prepared (:class:`~tfadv.training.methods.Prepared`).
        steps_per_epoch: optimizer steps of one epoch.
    """

    config: object
    inner: keras.Model
    method: keras.Model
    kind: object
    prepared: object
    steps_per_epoch: int

    def training_dataset(self, start=0):
        """The kind's repeated stream of global batches from example ``start`` of the stream."""
        return self.kind.training_dataset(self.method, self.config, self.prepared.train_arrays, start)

    @property
    def summary(self):
        """What the run's ``summary.json`` records for the method."""
        return dict(self.prepared.summary)


def steps_per_epoch(config, num_train):
    """``train.steps_per_epoch``, or one pass over the method kind's examples of an epoch."""
    from tfadv.training import methods

    examples = methods.method_kind(config.method.kind).examples_per_epoch(config, num_train)
    return config.train.steps_per_epoch or max(1, examples // config.data.batch_size)


def assemble(config, train_arrays, folder, strategy=None, test_arrays=None, wait=None):
    """Build a config's training, the one way ``tfadv train`` and ``tfadv tune`` do.

    In order: the seed; the inner model (under ``strategy``); the data checked
    against it (when ``test_arrays`` is given); the method kind's ``prepare``
    (the only step that writes: offline fine-tuning's stored set in
    ``folder``, with a progress bar unless ``train.verbose`` is 0; ``wait``:
    wait for the chief's instead, see ``MethodKind.prepare``); the method;
    ``compile`` with the config's optimizer and ``jit_compile``; the optimizer's
    slots (so a checkpoint can restore them). Layers, the method and its
    optimizer are made under ``train.mixed_precision``; the global policy is
    restored on return.

    Returns:
        an :class:`Assembly`.
    """
    from tfadv.training import methods

    strategy = strategy or tf.distribute.get_strategy()
    kind = methods.method_kind(config.method.kind)
    x, y = train_arrays
    with precision_policy(config.train.mixed_precision):
        keras.utils.set_random_seed(config.seed)
        with strategy.scope():
            inner = build_inner_model(config, x, y)
        if test_arrays is not None:
            check_data_fits_model(config, inner, train_arrays, test_arrays)
        prepared = kind.prepare(inner, config, train_arrays, folder, progress=config.train.verbose > 0,
                                wait=wait)
        steps = steps_per_epoch(config, len(x))
        with strategy.scope():
            method = kind.from_config(inner, config, prepared)
            method.compile(
                optimizer=make_optimizer(config.train, steps),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                jit_compile=config.train.jit_compile,
            )
            # Optimizer slots must exist before a checkpoint can restore them.
            method.optimizer.build(method.trainable_variables)
    return Assembly(config, inner, method, kind, prepared, steps)


def train_from_config(config, overwrite=False, stop_after_epochs=None):
    """Train the experiment ``config`` describes; resume it if its run folder exists.

    Args:
        config: an ``ExperimentConfig``.
        overwrite: delete an existing run folder of the same name first.
        stop_after_epochs: stop after this many epochs of this call (tests of resume).

    Returns:
        A ``RunResult`` with the run folder, the trained inner model and the history rows.
    """
    if not config.model.init_from:
        models.get_builder(config.model.name)  # fail on a bad name before making a folder
    from tfadv.training import distribute

    # First: a multi-worker strategy must exist before any TensorFlow operation runs.
    strategy = make_strategy(config.train.distribute, config.train.worker_timeout)
    run_dir = os.path.join(config.output_dir, config.name)
    files = distribute.WorkerFiles(run_dir, strategy)
    if not files.writes_run_folder and overwrite:
        raise ConfigError("--overwrite under train.distribute 'multi_worker': delete the run folder "
                          "before starting the workers, then start them without --overwrite")
    finished = (not overwrite and os.path.exists(os.path.join(run_dir, "model.keras"))
                and len(read_history(os.path.join(run_dir, "history.csv"))) >= config.train.epochs)
    # Bad data fails here, before the run folder is made.
    arrays = None if finished else (load_split_arrays(config.data, "train"),
                                    load_split_arrays(config.data, "test"))
    try:
        if not files.writes_run_folder:  # the chief holds the run folder's lock
            return _train_in_folder(config, overwrite, stop_after_epochs, arrays, strategy, files)
        with FolderLock(run_dir, "tfadv train"):  # one process per run folder
            return _train_in_folder(config, overwrite, stop_after_epochs, arrays, strategy, files)
    except tf.errors.OpError as error:
        if config.train.distribute != "multi_worker" or not isinstance(error, distribute.LOST_WORKER_ERRORS):
            raise
        raise distribute.WorkerLost(distribute.lost_worker_message(strategy, error)) from error


def _train_in_folder(config, overwrite, stop_after_epochs, arrays, strategy, files):
    from tfadv.training import distribute
    from tfadv.training.loop import fit_distributed

    if files.writes_run_folder:
        _prepare_run_dir(config, overwrite)
    run_dir = files.run_dir
    final_path = os.path.join(run_dir, "model.keras")
    done = read_history(os.path.join(run_dir, "history.csv"))
    if os.path.exists(final_path) and len(done) >= config.train.epochs:
        return RunResult(run_dir, load_model(final_path), done, len(done), True)

    timeout = config.train.worker_timeout or distribute.DEFAULT_WORKER_TIMEOUT
    wait = None if files.writes_run_folder else (
        lambda ready, what: files.wait_for_chief(ready, what, timeout))
    # The precision policy is global Keras state: set for this run, restored after.
    with precision_policy(config.train.mixed_precision), files:
        (x_train, y_train), (x_test, y_test) = arrays or (
            load_split_arrays(config.data, "train"), load_split_arrays(config.data, "test"))
        batch_size = config.data.batch_size
        assembly = assemble(config, (x_train, y_train), run_dir, strategy, test_arrays=(x_test, y_test), wait=wait)
        trained, steps_per_epoch = assembly.method, assembly.steps_per_epoch

        checkpoint = files.checkpoint({"model": trained, "optimizer": trained.optimizer})
        initial_epoch = checkpoint.restore()
        # The stream continues at the example an uninterrupted run would be at, so a resumed
        # run sees the same batches (see make_dataset): resuming is exact, not approximate.
        train_ds = assembly.training_dataset(start=initial_epoch * steps_per_epoch * batch_size)
        val_ds = tfdata.make_dataset(x_test, y_test, batch_size)
        if config.train.distribute == "multi_worker":
            train_ds, val_ds = distribute.shard_by_examples(train_ds), distribute.shard_by_examples(val_ds)
        epochs = config.train.epochs
        if stop_after_epochs is not None:
            epochs = min(epochs, initial_epoch + stop_after_epochs)

        # The history row is written before the checkpoint that marks its epoch done: a kill
        # between the two redoes the epoch and replaces the row, never loses it.
        callbacks = [
            StopOnDivergence(lambda: int(checkpoint.epoch.numpy())),  # before anything is saved
            # train.validation_attack / keep_best: adds its metric to the logs HistoryCSV writes
            *robust_validation_from_config(config, (x_test, y_test), files.write_dir),
            HistoryCSV(files.path("history.csv")),
            checkpoint,
            keras.callbacks.TensorBoard(files.path("tensorboard"), update_freq="epoch"),
        ]
        started = time.time()
        if initial_epoch < epochs and config.train.distribute == "default":
            trained.fit(
                train_ds,
                validation_data=val_ds,
                epochs=epochs,
                initial_epoch=initial_epoch,
                steps_per_epoch=steps_per_epoch,
                callbacks=callbacks,
                verbose=config.train.verbose,
                shuffle=False,  # the dataset is shuffled (seeded) by make_dataset
            )
        elif initial_epoch < epochs:  # mirrored, multi_worker: the loop on public tf.distribute API
            fit_distributed(trained, strategy, train_ds, epochs, steps_per_epoch, validation_data=val_ds,
                            initial_epoch=initial_epoch, callbacks=callbacks, verbose=config.train.verbose)
        history = files.history(initial_epoch)
        completed = len(history) >= config.train.epochs
        if completed:
            # Every worker saves (reading synchronized variables is a collective); only the chief's copy stays.
            save_model_atomically(assembly.inner, files.path("model.keras"))
        if completed and files.writes_run_folder:
            write_json(
                os.path.join(run_dir, "summary.json"),
                {
                    "config": to_dict(config),
                    "final": history[-1] if history else {},
                    "resumed_from_epoch": initial_epoch,
                    "seconds_this_call": round(time.time() - started, 2),
                    "environment": environment_record(),
                    **assembly.summary,  # e.g. offline fine-tuning's stored-set 1 − SSIM
                },
            )
    return RunResult(run_dir, assembly.inner, history, initial_epoch, completed)
