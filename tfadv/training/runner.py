"""``tfadv train``: one experiment config → a run folder, with ``model.fit``.

The runner composes the pieces (data, model, training method, optimizer,
callbacks); the training methods themselves live in ``tfadv.training.methods``.
"""
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
from tfadv.training.runs import (
    EpochCheckpoint,
    HistoryCSV,
    environment_record,
    load_model,
    prepare_folder,
    read_history,
    save_model_atomically,
    write_json,
)

# Keys that may differ between an interrupted run and its resumption.
RESUME_FREE_KEYS = ("train.verbose",)


@dataclasses.dataclass
class RunResult:
    run_dir: str
    model: keras.Model
    history: list
    resumed_from_epoch: int
    completed: bool


def make_strategy(kind):
    """The ``tf.distribute`` strategy a ``TrainConfig.distribute`` names."""
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy()
    if kind == "multi_worker":
        from tfadv.training.distribute import multi_worker_strategy

        return multi_worker_strategy()
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


def wrap_for_method(inner, config, train_arrays=None, run_dir=None):
    """The ``keras.Model`` whose ``train_step`` implements ``config.method``.

    Two explicit steps: first what the method reads is written (offline
    fine-tuning's stored adversarial set, with a progress bar unless
    ``train.verbose`` is 0), then the method is built.
    """
    from tfadv.training import methods

    methods.prepare_stored_set(inner, config, train_arrays, run_dir, progress=config.train.verbose > 0)
    return methods.wrap_from_config(inner, config, train_arrays=train_arrays, run_dir=run_dir)


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
    strategy = make_strategy(config.train.distribute)
    chief = distribute.is_chief(strategy)
    if not chief and overwrite:
        raise ConfigError("--overwrite under train.distribute 'multi_worker': delete the run folder "
                          "before starting the workers, then start them without --overwrite")
    run_dir = os.path.join(config.output_dir, config.name)
    finished = (not overwrite and os.path.exists(os.path.join(run_dir, "model.keras"))
                and len(read_history(os.path.join(run_dir, "history.csv"))) >= config.train.epochs)
    # Bad data fails here, before the run folder is made.
    arrays = None if finished else (load_split_arrays(config.data, "train"),
                                    load_split_arrays(config.data, "test"))
    if not chief:  # other workers write nothing in the run folder; the chief holds its lock
        return _train_in_folder(config, overwrite, stop_after_epochs, arrays, strategy, chief, run_dir)
    with FolderLock(run_dir, "tfadv train"):  # one process per run folder
        return _train_in_folder(config, overwrite, stop_after_epochs, arrays, strategy, chief, run_dir)


def _train_in_folder(config, overwrite, stop_after_epochs, arrays, strategy, chief, run_dir):
    from tfadv.training import distribute

    if chief:
        run_dir = _prepare_run_dir(config, overwrite)
    final_path = os.path.join(run_dir, "model.keras")
    history_path = os.path.join(run_dir, "history.csv")
    done = read_history(history_path)
    if os.path.exists(final_path) and len(done) >= config.train.epochs:
        return RunResult(run_dir, load_model(final_path), done, len(done), True)

    keras.utils.set_random_seed(config.seed)
    write_dir = run_dir
    # The precision policy is global Keras state: set it for this run, restore it after.
    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(config.train.mixed_precision)
    try:
        (x_train, y_train), (x_test, y_test) = arrays or (
            load_split_arrays(config.data, "train"), load_split_arrays(config.data, "test"))
        batch_size = config.data.batch_size

        # Non-chief workers write into a temporary folder, removed below.
        write_dir = distribute.worker_folder(run_dir, chief, strategy)
        with strategy.scope():
            inner = build_inner_model(config, x_train, y_train)
        check_data_fits_model(config, inner, (x_train, y_train), (x_test, y_test))
        with strategy.scope():
            trained = wrap_for_method(inner, config, train_arrays=(x_train, y_train), run_dir=write_dir)
        # Offline fine-tuning's epoch is one pass over the 2N clean + adversarial examples.
        examples_per_epoch = getattr(trained, "examples_per_epoch", len(x_train))
        steps_per_epoch = config.train.steps_per_epoch or max(1, examples_per_epoch // batch_size)
        with strategy.scope():
            trained.compile(
                optimizer=make_optimizer(config.train, steps_per_epoch),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                jit_compile=config.train.jit_compile,
            )
            # Optimizer slots must exist before a checkpoint can restore them.
            trained.optimizer.build(trained.trainable_variables)

        trackables = {"model": trained, "optimizer": trained.optimizer}
        checkpoint = (EpochCheckpoint(os.path.join(run_dir, "checkpoints"), trackables) if chief else
                      distribute.WorkerEpochCheckpoint(os.path.join(run_dir, "checkpoints"),
                                                       os.path.join(write_dir, "checkpoints"), trackables))
        initial_epoch = checkpoint.restore()
        # The stream continues at the example an uninterrupted run would be at, so a resumed
        # run sees the same batches (see make_dataset): resuming is exact, not approximate.
        consumed = initial_epoch * steps_per_epoch * batch_size
        train_ds = getattr(trained, "training_dataset", None)
        if train_ds is None:
            train_ds = tfdata.make_dataset(
                x_train, y_train, batch_size, shuffle=True, augment=config.data.augment,
                seed=config.seed, drop_remainder=True, repeat=True, start=consumed,
            )
        else:
            train_ds = train_ds(batch_size, config.seed, start=consumed)
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
            *robust_validation_from_config(config, (x_test, y_test), write_dir),
            HistoryCSV(os.path.join(write_dir, "history.csv")),
            checkpoint,
            keras.callbacks.TensorBoard(os.path.join(write_dir, "tensorboard"), update_freq="epoch"),
        ]
        started = time.time()
        if initial_epoch < epochs:
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
        history = read_history(history_path)
        if not chief:  # its own rows of this call, after the epochs restored from the chief's checkpoint
            history = history[:initial_epoch] + read_history(os.path.join(write_dir, "history.csv"))
        completed = len(history) >= config.train.epochs
        if completed:
            # Every worker saves (reading synchronized variables is a collective); only the chief's copy stays.
            save_model_atomically(inner, final_path if chief else os.path.join(write_dir, "model.keras"))
        if completed and chief:
            write_json(
                os.path.join(run_dir, "summary.json"),
                {
                    "config": to_dict(config),
                    "final": history[-1] if history else {},
                    "resumed_from_epoch": initial_epoch,
                    "seconds_this_call": round(time.time() - started, 2),
                    "environment": environment_record(),
                    **getattr(trained, "run_summary", {}),  # e.g. offline fine-tuning's stored-set 1 − SSIM
                },
            )
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
        distribute.remove_worker_folder(write_dir, chief)
    return RunResult(run_dir, inner, history, initial_epoch, completed)
