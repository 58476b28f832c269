"""What the papers' profiles share: their common options, the repository's configs, run configs.

A paper's profile (:mod:`tfadv.experiments.paper1`; the paper-2 driver in
``tools/`` uses the same pieces) turns a few options into an
:class:`~tfadv.experiments.pipeline.Experiment`. The pieces here:

- :class:`ProfileOptions` — the options every profile has (output folder,
  data, scale, ``--set`` overrides, ``smoke``) and the ``configs`` folder;
- :func:`configs_dir` — the ``configs/`` folder: given explicitly, or the one
  of the repository tfadv is imported from (found from this file, never from
  the working directory);
- :func:`load_run_config` — a config with the profile's overrides, its
  epochs and step milestones scaled, validated by ``tfadv.config.load_config``;
- :func:`data_overrides`, :func:`scaled_epochs`, :func:`scale_note`.
"""
import dataclasses
import os
from typing import List, Optional

REPO_CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                            "configs")
"""``configs/`` of the source tree tfadv is imported from (absent from an installed wheel)."""


@dataclasses.dataclass
class ProfileOptions:
    """The options every paper profile takes (the reproduction drivers' common flags).

    Args:
        out: folder for every run, evaluation, landscape and the report.
        source: the dataset (``cifar10``, ``digits``, an archive or ``.npz``);
            ``None``: the paper's (digits with ``smoke``).
        data_dir: tensorflow-datasets ``data_dir``.
        epochs_scale: every run's epochs multiplied by this (at least 1 each).
        limit_train: train on the first N training images only.
        eval_limit: evaluate on the first N test images only.
        val_limit: validate after each epoch on the first N test images only.
        eval_batch_size: images per attack batch in the evaluation.
        overrides: ``section.key=value`` overrides of every run's config, applied last.
        smoke: shrink everything to check the whole pipeline in about a minute.
        configs: the ``configs/`` folder; ``None``: :data:`REPO_CONFIGS`.
    """

    out: Optional[str] = None
    source: Optional[str] = None
    data_dir: Optional[str] = None
    epochs_scale: float = 1.0
    limit_train: Optional[int] = None
    eval_limit: Optional[int] = None
    val_limit: Optional[int] = None
    eval_batch_size: int = 256
    overrides: List[str] = dataclasses.field(default_factory=list)
    smoke: bool = False
    configs: Optional[str] = None


def configs_dir(configs=None):
    """``configs`` if given, else the repository's ``configs/``; a clear error if it is not a folder."""
    path = configs or REPO_CONFIGS
    if not os.path.isdir(path):
        raise ValueError("configs must be the folder of tfadv's experiment configs (the repository's configs/; "
                         "an installed package has none: pass the folder of a source checkout). "
                         f"Received: configs={path!r}")
    return path


def config_path(configs, *parts):
    """``<configs>/<parts…>`` with ``configs`` resolved by :func:`configs_dir`."""
    return os.path.join(configs_dir(configs), *parts)


def data_overrides(options, source):
    """Overrides every run of a profile gets: where runs go, which data, how much of it."""
    overrides = [f"output_dir={options.out}", f"data.source={source}"]
    if options.data_dir:
        overrides.append(f"data.data_dir={options.data_dir}")
    if options.limit_train:
        overrides.append(f"data.limit_train={options.limit_train}")
    if options.val_limit:
        overrides.append(f"data.limit_test={options.val_limit}")
    return overrides


def scaled_epochs(epochs, scale):
    """``epochs · scale`` rounded, at least 1."""
    return max(1, int(round(epochs * scale)))


def load_run_config(path, overrides, epochs_scale=1.0, user_overrides=()):
    """A config from ``path`` with ``overrides``, its epochs scaled, then the user's ``--set``s.

    A step schedule's milestones, unless overridden, scale from the file's
    epochs to the run's (the same fractions of the run: 100 and 150 of 200
    epochs are 8 and 11 of 15). Overrides go
    through ``tfadv.config.load_config``, so every value is validated and the
    run folder's ``config.yaml`` records the result.
    """
    from tfadv.config import load_config

    config = load_config(path, list(overrides))
    epochs = scaled_epochs(config.train.epochs, epochs_scale)
    scaled = [f"train.epochs={epochs}"]
    written = load_config(path).train
    if config.train.step_milestones and config.train.step_milestones == written.step_milestones \
            and epochs != written.epochs:
        milestones = [max(1, int(round(m * epochs / written.epochs))) for m in written.step_milestones]
        scaled.append(f"train.step_milestones=[{', '.join(map(str, milestones))}]")
    return load_config(path, list(overrides) + scaled + list(user_overrides))


def scale_note(options, epochs):
    """One sentence on how far this run is from the paper's scale."""
    parts = []
    if options.smoke:
        parts.append("**--smoke**: a tiny model on a few digits images; the numbers say nothing about the paper")
    if options.epochs_scale != 1.0:
        parts.append(f"epochs scaled by {options.epochs_scale:g} ({epochs})")
    if options.limit_train:
        parts.append(f"trained on the first {options.limit_train} training images")
    if options.overrides:
        parts.append("config overrides " + ", ".join(f"`{o}`" for o in options.overrides))
    return "; ".join(parts) if parts else "the paper's scale (full training set, the configs' epochs)"
