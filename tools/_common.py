"""What the two reproduction drivers share (the pipeline itself is ``tfadv.experiments``).

- the command-line flags every driver has (output folder, data, scale, ``--set``, ``--smoke``);
- experiment configs from ``configs/`` (found from this file, so the drivers
  run from any working directory) with the drivers' overrides applied through
  ``tfadv.config.load_config``;
- the papers' published numbers (``tfadv/evaluation/published_numbers.yaml``,
  package data, rendered by ``tfadv.experiments.published``);
- the report's sentence on how far a call is from the paper's scale.
"""
import argparse
import os

from tfadv.experiments.published import (  # noqa: F401  (re-exported for the drivers and tests)
    NOT_FOUND,
    PUBLISHED_FILE,
    load_published,
    comparison_table,
    paper_citation,
    published_row,
    source_line,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(REPO, "configs")


# ------------------------------------------------------------------ flags


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def positive_float(text):
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def add_common_arguments(parser, default_out, out_help=None):
    parser.add_argument("--out", default=default_out,
                        help="folder for every run, evaluation, landscape and the report "
                        f"({out_help or 'default: ' + default_out})")
    parser.add_argument("--source", default=None,
                        help="dataset: cifar10, cifar100, digits, a CIFAR python archive or an .npz with x, y "
                        "(default: the paper's dataset; digits with --smoke)")
    parser.add_argument("--data-dir", default=None, help="tensorflow-datasets data_dir")
    parser.add_argument("--epochs-scale", type=positive_float, default=1.0,
                        help="multiply every run's epochs by this (at least 1 epoch each; default 1)")
    parser.add_argument("--limit-train", type=positive_int, default=None,
                        help="train on the first N training images only")
    parser.add_argument("--eval-limit", type=positive_int, default=None,
                        help="evaluate on the first N test images only (default: all)")
    parser.add_argument("--val-limit", type=positive_int, default=None,
                        help="validate after each training epoch on the first N test images only "
                        "(default: all; the adversarial methods' validation runs their attack, so this "
                        "cuts their time a lot without touching the final evaluation)")
    parser.add_argument("--eval-batch-size", type=positive_int, default=256,
                        help="images per attack batch in the evaluation (default 256)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a key of every run's config, e.g. --set train.distribute=mirrored "
                        "(repeatable; applied last)")
    parser.add_argument("--smoke", action="store_true",
                        help="shrink everything (tiny model, digits, 1 epoch, a few images, few attack "
                        "steps, small grids) to check the whole pipeline in about a minute")


# ------------------------------------------------------------------ configs


def config_path(*parts):
    return os.path.join(CONFIGS, *parts)


def data_overrides(args, source):
    """Overrides every run of a driver gets: where runs go, which data, how much of it."""
    overrides = [f"output_dir={args.out}", f"data.source={source}"]
    if args.data_dir:
        overrides.append(f"data.data_dir={args.data_dir}")
    if args.limit_train:
        overrides.append(f"data.limit_train={args.limit_train}")
    if args.val_limit:
        overrides.append(f"data.limit_test={args.val_limit}")
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


# ------------------------------------------------------------------ report helpers


def scale_note(args, epochs):
    """One sentence on how far this run is from the paper's scale."""
    parts = []
    if args.smoke:
        parts.append("**--smoke**: a tiny model on a few digits images; the numbers say nothing about the paper")
    if args.epochs_scale != 1.0:
        parts.append(f"epochs scaled by {args.epochs_scale:g} ({epochs})")
    if args.limit_train:
        parts.append(f"trained on the first {args.limit_train} training images")
    if args.overrides:
        parts.append("config overrides " + ", ".join(f"`{o}`" for o in args.overrides))
    return "; ".join(parts) if parts else "the paper's scale (full training set, the configs' epochs)"
