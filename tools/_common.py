"""What the two reproduction drivers share.

- the command-line flags every driver has (output folder, data, scale, ``--set``, ``--smoke``);
- experiment configs from ``configs/`` (found from this file, so the drivers
  run from any working directory) with the drivers' overrides applied through
  ``tfadv.config.load_config``;
- the papers' published numbers (``published_numbers.yaml``) and the tables
  that put ours beside them;
- progress lines and small report helpers.
"""
import argparse
import os
import time

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(REPO, "configs")
PUBLISHED_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "published_numbers.yaml")
NOT_FOUND = "not found in the sources available here"


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

    Overrides go through ``tfadv.config.load_config``, so every value is
    validated and the run folder's ``config.yaml`` records the result.
    """
    from tfadv.config import load_config

    config = load_config(path, list(overrides))
    epochs = scaled_epochs(config.train.epochs, epochs_scale)
    return load_config(path, list(overrides) + [f"train.epochs={epochs}"] + list(user_overrides))


def test_arrays(data_config, limit):
    """The first ``limit`` test images (all when ``None``) of the runs' dataset.

    Read afresh rather than through the runs' ``data.limit_test``, which only
    shortens the per-epoch validation.
    """
    from tfadv.data import load_arrays

    x, y = load_arrays(data_config.source, "test", data_config.data_dir)
    return x[:limit], y[:limit]


# ------------------------------------------------------------------ progress


class Progress:
    """``[paper1 2/5] text`` lines, flushed at once, and the time each stage took."""

    def __init__(self, tag, stages):
        self.tag, self.stages = tag, stages
        self.started = time.time()
        self.stage_started = None
        self.seconds = {}
        self.current = None

    def stage(self, number, name, text):
        self._close()
        self.current, self.stage_started = name, time.time()
        print(f"[{self.tag} {number}/{self.stages}] {text}", flush=True)

    def note(self, text):
        print(f"  {text}", flush=True)

    def _close(self):
        if self.current is not None:
            self.seconds[self.current] = round(time.time() - self.stage_started, 1)
            self.current = None

    def done(self):
        self._close()
        return round(time.time() - self.started, 1)


def train(config, progress):
    """Train (or resume, or reuse) one run; say which."""
    from tfadv.training import train_from_config
    from tfadv.training.runs import read_history

    run_dir = os.path.join(config.output_dir, config.name)
    done = len(read_history(os.path.join(run_dir, "history.csv")))
    finished = done >= config.train.epochs and os.path.exists(os.path.join(run_dir, "model.keras"))
    state = "finished, reused" if finished else (f"resuming after epoch {done}" if done else "training")
    progress.note(f"{config.name}: {config.method.kind}, {config.train.epochs} epochs — {state}")
    return train_from_config(config)


# ------------------------------------------------------------------ published numbers


def load_published(paper):
    """The ``paper1`` or ``paper2`` entry of ``published_numbers.yaml``."""
    with open(PUBLISHED_FILE, encoding="utf-8") as handle:
        return yaml.safe_load(handle)[paper]


def paper_citation(entry):
    authors = ", ".join(entry["authors"])
    where = f"arXiv:{entry['arxiv']}" if entry.get("arxiv") else entry.get("venue", "")
    return f"{authors}, “{entry['title']}”, {where} ({entry['url']})"


def published_row(table, row_key):
    """The published numbers of one row (one per column, ``None`` where missing), or None."""
    row = (table.get("rows") or {}).get(row_key)
    if row is None:
        return None
    if len(row) != len(table["columns"]):
        raise ValueError(f"published_numbers.yaml: row {row_key!r} has {len(row)} numbers for "
                         f"{len(table['columns'])} columns {table['columns']}")
    return list(row)


def _cell(value, units):
    if value is None:
        return "–"
    return f"{value:.2f}" if units == "percent" else f"{value:.4f}"


def comparison_table(header, rows, units):
    """A markdown table with, for every row, our numbers and the paper's beneath them.

    Args:
        header: column labels after the row label (e.g. ``["Clean", "FGSM ε=8/255"]``).
        rows: ``[(label, ours, published)]``; ``ours`` lists numbers in the
            table's units (accuracy as a percentage), ``published`` the
            paper's numbers or ``None`` when they were not found.
        units: ``"percent"`` or ``"distance"``.
    """
    lines = ["| Model | | " + " | ".join(header) + " |",
             "|---|---|" + "---:|" * len(header)]
    for label, ours, published in rows:
        lines.append(f"| {label} | ours | " + " | ".join(_cell(v, units) for v in ours) + " |")
        if published is None:
            paper_cells = [NOT_FOUND] + [""] * (len(header) - 1)
        else:
            paper_cells = [_cell(v, units) if v is not None else "not found" for v in published]
        lines.append("| | paper | " + " | ".join(paper_cells) + " |")
    return "\n".join(lines)


def source_line(table):
    if table.get("found_in"):
        return f"Published numbers: {table['found_in']}."
    return (f"Published numbers: {NOT_FOUND} (tools/published_numbers.yaml lists what was searched; "
            "add them there with their source and rerun to fill the column).")


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
