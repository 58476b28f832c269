"""``tfadv tune``: a resumable keras-tuner search over ε_max, with its report and best model.

Layout of ``runs/<name>/tuning/``:

- ``config.yaml``: the resolved config (a resumed search must match it);
- ``trials/``: keras-tuner's project (``oracle.json``, ``trial_<id>/`` with
  the trial's hyperparameters, metrics and best-epoch weights);
- ``summary.md``, ``summary.json``: one row per trial (ε_max, clean, robust,
  objective), the best trial, the config and the software versions;
- ``tradeoff.png``: clean and robust accuracy against ε_max;
- ``best.keras``: the best trial's inner model, ready for ``tfadv eval`` and
  ``tfadv export``; with ``tune.retrain_best`` it is retrained from scratch
  for ``train.epochs`` epochs in ``retrain_trial_<id>/`` (a ``tfadv train``
  run folder, so an interrupted retraining resumes too).

Resuming: keras-tuner reloads ``trials/`` (``overwrite=False``); finished
trials are not run again, the trial that was running when the search was
interrupted is run again from its start, and a larger ``tune.max_trials``
adds trials.
"""

import dataclasses
import os
import shutil

import keras
import keras_tuner

from tfadv import data as tfdata
from tfadv.config import to_dict
from tfadv.training.runner import load_split_arrays, make_strategy, train_from_config
from tfadv.records import environment_record
from tfadv.training.runs import prepare_folder, save_model_atomically
from tfadv.tuning.hypermodel import EpsMaxHyperModel, tuning_dir
from tfadv.tuning.objectives import make_objective, objective_metric
from tfadv.tuning.report import plot_tradeoff, trial_rows, write_summary

TUNERS = {
    "random": keras_tuner.RandomSearch,
    "bayesian": keras_tuner.BayesianOptimization,
    "hyperband": keras_tuner.Hyperband,
}
PROJECT_NAME = "trials"
HYPERBAND_FACTOR = 3
# Settings a resumed search may change: how many trials, what happens after, progress output.
RESUME_FREE_KEYS = {"tune.max_trials", "tune.retrain_best", "train.verbose"}


def make_tuner(config, hypermodel, directory, overwrite=False):
    """The keras-tuner ``Tuner`` that ``config.tune.tuner`` names, over ``hypermodel``.

    The project is ``<directory>/trials``. RandomSearch and
    BayesianOptimization run ``tune.max_trials`` trials of ``tune.epochs``
    epochs; Hyperband's budget is set by ``max_epochs = tune.epochs`` and
    its reduction factor 3 instead (``max_trials`` does not apply).

    Args:
        config: the ``ExperimentConfig``.
        hypermodel: an :class:`EpsMaxHyperModel` (or any ``HyperModel``).
        directory: the folder holding the project.
        overwrite: start afresh instead of reloading an existing project.
    """
    tune = config.tune
    if tune.tuner not in TUNERS:
        raise ValueError(f"tune.tuner must be one of {', '.join(TUNERS)}. Received: tune.tuner={tune.tuner!r}")
    settings = {
        "objective": make_objective(tune.objective),
        "seed": config.seed,
        "directory": directory,
        "project_name": PROJECT_NAME,
        "overwrite": overwrite,
        "distribution_strategy": make_strategy("mirrored") if config.train.distribute == "mirrored" else None,
    }
    if tune.tuner == "hyperband":
        return keras_tuner.Hyperband(hypermodel, max_epochs=tune.epochs, factor=HYPERBAND_FACTOR, **settings)
    return TUNERS[tune.tuner](hypermodel, max_trials=tune.max_trials, **settings)


def _best_model(config, tuner, hypermodel, best_trial, directory, path):
    """Write ``best.keras``: the best trial's model, or its ε_max retrained from scratch."""
    if config.tune.retrain_best:
        trial_config = hypermodel.trial_config(best_trial.hyperparameters.copy())
        # The full training budget at the tuned values; one folder per trial, as the best may change
        # when a resumed search adds trials.
        retrain = dataclasses.replace(
            trial_config, name=f"retrain_trial_{best_trial.trial_id}", output_dir=directory,
            train=dataclasses.replace(trial_config.train, epochs=config.train.epochs))
        result = train_from_config(retrain)
        shutil.copyfile(os.path.join(result.run_dir, "model.keras"), path + ".partial")
        os.replace(path + ".partial", path)
        return path
    (best,) = tuner.get_best_models(1)
    save_model_atomically(best.inner, path)
    return path


def run_tuning(config, overwrite=False, progress=True):
    """Run (or resume) the ε_max search ``config.tune`` describes; write its report and best model.

    Args:
        config: an ``ExperimentConfig`` with a ``tune`` section.
        overwrite: delete ``runs/<name>/tuning/`` first instead of resuming it.
        progress: show keras-tuner's and Keras' progress output
            (``train.verbose`` sets the Keras progress bar).

    Returns:
        A dict: ``tuning_dir``, ``summary_md``, ``summary_json``, ``plot``,
        ``best_model`` (paths); ``best_trial``, ``best_eps_max`` (pixel
        units), ``best_eps_max_255``, ``best_objective``, ``objective`` (the
        metric name); ``rows`` (one per trial, see ``report.trial_rows``).
    """
    directory = tuning_dir(config)
    prepare_folder(config, directory, overwrite, RESUME_FREE_KEYS, what="search")
    policy = keras.mixed_precision.global_policy()
    try:
        x_train, y_train = load_split_arrays(config.data, "train")
        x_test, y_test = load_split_arrays(config.data, "test")
        hypermodel = EpsMaxHyperModel(config, train_arrays=(x_train, y_train))
        tuner = make_tuner(config, hypermodel, directory)
        batch_size = config.data.batch_size
        train_ds = tfdata.make_dataset(x_train, y_train, batch_size, shuffle=True, augment=config.data.augment,
                                       seed=config.seed, drop_remainder=True, repeat=True)
        val_ds = tfdata.make_dataset(x_test, y_test, batch_size)
        tuner.search(train_ds, validation_data=val_ds, epochs=config.tune.epochs,
                     steps_per_epoch=hypermodel.steps_per_epoch, shuffle=False,
                     verbose=config.train.verbose if progress else 0)

        rows = trial_rows(tuner.oracle)
        if not any(row["objective"] is not None for row in rows):
            messages = [t.message for t in tuner.oracle.trials.values() if t.message]
            last_error = f" Last error:\n{messages[-1]}" if messages else ""
            raise RuntimeError(f"No trial of the search in {directory} completed.{last_error}")
        (best_trial,) = tuner.oracle.get_best_trials(1)
        best = next(row for row in rows if row["trial"] == best_trial.trial_id)
        paths = {
            "tuning_dir": directory,
            "summary_md": os.path.join(directory, "summary.md"),
            "summary_json": os.path.join(directory, "summary.json"),
            "plot": os.path.join(directory, "tradeoff.png"),
            "best_model": os.path.join(directory, "best.keras"),
        }
        _best_model(config, tuner, hypermodel, best_trial, directory, paths["best_model"])
        metric = objective_metric(config.tune.objective)
        record = {
            "tuner": config.tune.tuner,
            "best_model": paths["best_model"],
            "best_model_retrained": config.tune.retrain_best,
            "config": to_dict(config),
            "environment": environment_record(),
        }
        write_summary(rows, best, metric, config.method.attack.eps, paths["summary_md"], paths["summary_json"],
                      record)
        plot_tradeoff(rows, best, paths["plot"], robust_eps=config.method.attack.eps)
    finally:
        keras.mixed_precision.set_global_policy(policy)
    return {
        **paths,
        "objective": metric,
        "best_trial": best["trial"],
        "best_eps_max": best["eps_max"],
        "best_eps_max_255": best["eps_max_255"],
        "best_objective": best["objective"],
        "rows": rows,
    }
