"""The reproduction drivers' command-line glue (the pipeline and the profiles are ``tfadv.experiments``).

- the command-line flags every driver has (output folder, data, scale, ``--set``, ``--smoke``);
- re-exported under their former names here (the drivers no longer need them):
  the profiles' shared pieces
  (``tfadv.experiments.profile``: configs from the repository's ``configs/``,
  found from the package, never from the working directory; run configs with
  the drivers' overrides; the report's sentence on the scale) and the papers'
  published numbers (``tfadv.experiments.published``).
"""
import argparse

from tfadv.experiments.profile import (  # noqa: F401  (re-exported: former names, the tests)
    REPO_CONFIGS as CONFIGS,
    data_overrides,
    load_run_config,
    scale_note,
    scaled_epochs,
)
from tfadv.experiments.profile import config_path as _config_path
from tfadv.experiments.published import (  # noqa: F401  (re-exported: former names, the tests)
    NOT_FOUND,
    PUBLISHED_FILE,
    load_published,
    comparison_table,
    paper_citation,
    published_row,
    source_line,
)


# ------------------------------------------------------------------ flags


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def nonnegative_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
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
    """``configs/<parts…>`` of the repository (``tfadv.experiments.profile.config_path``)."""
    return _config_path(None, *parts)
