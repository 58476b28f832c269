#!/usr/bin/env python
"""Reproduce paper 2 at full scale: Cheng, Gan, Cheng, Wang, Hsieh, Liu,
"Adversarial Masking: Towards Understanding Robustness Trade-off for
Generalization" (ICLR 2021 submission, OpenReview LNtTXJ9XXr).

For one architecture, dataset and training length (``--arch``, ``--dataset``,
``--epochs``), each step resumable (run the same command again to continue):

1. train the three models, plain BN (clean training), AdvProp (dual BN,
   PGD-7) and RobMask (ε-conditioned BN rescaling, p ~ U(0, 1),
   ε = p · 8/255, PGD-7): each run's config is its method's file
   ``configs/paper2/{bn,advprop,robmask}.yaml`` with the grid point set by
   overrides (``model.name``, ``data.source``, ``train.epochs``, ``name``),
   see :func:`grid_config`;
2. evaluate them under L∞ PGD-100 (step ε/5, random start) for
   ε ∈ {0, 1, 2, 4, 6, 8}/255 (the Tables 5/6 layout), AdvProp and RobMask at
   masking strength ``--p``; and RobMask's (and AdvProp's) trade-off curve:
   clean and PGD-100 8/255 accuracy over the masking strength p;
3. ``<out>/report.md``: our tables next to the paper's published numbers.

The steps are the stages of ``tfadv.experiments.run_experiment``; this
script is the paper-2 profile of that pipeline (the grid, sizes and flags).

Usage::

    python tools/reproduce_paper2.py --arch resnet18 --dataset cifar10 --epochs 100
    python tools/reproduce_paper2.py --arch densenet121 --dataset cifar100 --epochs 20 --eval-limit 1000
    python tools/reproduce_paper2.py --smoke --out /tmp/paper2-smoke   # the whole pipeline in a minute
"""
import argparse
import itertools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402  (the tools folder, on the path above)

ARCHS = ("resnet18", "preact_resnet18", "densenet121")
DATASETS = ("cifar10", "cifar100")
EPOCHS = (20, 100)
METHODS = ("bn", "advprop", "robmask")
TRADEOFF_EPS = 8 / 255
GRID = tuple(itertools.product(ARCHS, DATASETS, METHODS, EPOCHS))
"""Every run of the paper's grid: (architecture, dataset, method, epochs)."""

SMOKE_OVERRIDES = ["model.name=tiny", "data.batch_size=32", "data.limit_train=128", "data.limit_test=64",
                   "train.epochs=1", "train.verbose=0", "method.pgd_steps=2"]


def build_parser():
    parser = argparse.ArgumentParser(
        prog="reproduce_paper2.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _common.add_common_arguments(parser, default_out=None,
                                 out_help="default: runs/paper2-<arch>-<dataset>-<epochs>ep")
    parser.add_argument("--arch", choices=ARCHS, default="resnet18", help="architecture (default resnet18)")
    parser.add_argument("--dataset", choices=DATASETS, default="cifar10", help="dataset (default cifar10)")
    parser.add_argument("--epochs", type=int, choices=EPOCHS, default=100,
                        help="the paper's training length whose configs to run (default 100)")
    parser.add_argument("--p", type=float, default=0.0,
                        help="masking strength at which AdvProp and RobMask fill the ε-sweep table "
                        "(0: clean masking / main BN; default 0)")
    parser.add_argument("--p-grid", default=None,
                        help="masking strengths of the trade-off curve, comma-separated "
                        "(default 0,0.25,0.5,0.75,1; 0,0.5,1 with --smoke)")
    parser.add_argument("--sweep-steps", type=_common.positive_int, default=None,
                        help="PGD steps of the ε sweep and the trade-off curve (default 100)")
    return parser


def settings_from(args):
    """Every size the driver uses: the paper's, or the smoke test's, or the user's."""
    smoke = args.smoke
    if args.p_grid is None:
        p_grid = [0.0, 0.5, 1.0] if smoke else [0.0, 0.25, 0.5, 0.75, 1.0]
    else:
        try:
            p_grid = [float(value) for value in args.p_grid.split(",")]
        except ValueError:
            raise ValueError(f"--p-grid must be numbers separated by commas. Received: {args.p_grid!r}") from None
    return {
        "source": args.source or ("digits" if smoke else args.dataset),
        "eval_limit": args.eval_limit or (64 if smoke else None),
        "sweep_steps": args.sweep_steps or (5 if smoke else 100),
        "p_grid": p_grid,
    }


def run_name(arch, dataset, method, epochs):
    return f"paper2-{arch}-{dataset}-{method}-{epochs}ep"


def grid_overrides(arch, dataset, method, epochs):
    """The overrides that turn a method's config into one point of the grid."""
    return [f"model.name={arch}", f"data.source={dataset}", f"train.epochs={epochs}",
            f"name={run_name(arch, dataset, method, epochs)}"]


def method_config_path(arch, dataset, method, epochs):
    """``configs/paper2/<method>.yaml`` (it ``extends: base.yaml``); the grid
    point is set by :func:`grid_overrides`."""
    return _common.config_path("paper2", f"{method}.yaml")


def grid_config(arch, dataset, method, epochs, overrides=()):
    """One run of the grid: ``load_config(<method file>, overrides=[grid point…, *overrides])``."""
    from tfadv.config import load_config

    return load_config(method_config_path(arch, dataset, method, epochs),
                       overrides=grid_overrides(arch, dataset, method, epochs) + list(overrides))


def experiment_configs(args, settings):
    """The three runs of the chosen grid point as ``ExperimentConfig``s, by method."""
    common = _common.data_overrides(args, settings["source"])
    user = (SMOKE_OVERRIDES if args.smoke else []) + list(args.overrides)
    configs = {}
    for method in METHODS:
        overrides = grid_overrides(args.arch, args.dataset, method, args.epochs) + common
        if args.smoke and method == "advprop":
            overrides.append("method.attack.steps=2")
        path = method_config_path(args.arch, args.dataset, method, args.epochs)
        configs[method] = _common.load_run_config(path, overrides, args.epochs_scale, user)
    return configs


def sweep_attacks(steps):
    """PGD-``steps``, step ε/5, random start, ε ∈ {0, 1, 2, 4, 6, 8}/255; and the trade-off attack.

    The trade-off attack is the sweep's 8/255 attack itself, so at ``p`` the
    two share one stored result.
    """
    from tfadv.evaluation import pgd_sweep

    sweep = pgd_sweep(steps=steps)
    return sweep, pgd_sweep(eps_values=[TRADEOFF_EPS], steps=steps)[0]


def experiment(args):
    """The paper-2 profile of the experiment pipeline: runs, ε sweep and trade-off evaluation, report."""
    from tfadv.experiments import Experiment, Paper2Plan

    settings = settings_from(args)
    configs = experiment_configs(args, settings)
    sweep, tradeoff_attack = sweep_attacks(settings["sweep_steps"])
    epochs = ", ".join(f"{m} {configs[m].train.epochs}" for m in METHODS)
    return Experiment(
        tag="paper2",
        title=f"Paper 2 reproduction: {args.arch} on {args.dataset}, {args.epochs} epochs",
        out_dir=args.out,
        runs=configs,
        data_name=settings["source"],
        eval_limit=settings["eval_limit"],
        eval_batch_size=args.eval_batch_size,
        paper2=Paper2Plan(
            models={method: method for method in METHODS}, sweep=sweep, p_grid=settings["p_grid"],
            tradeoff_attack=tradeoff_attack, p=args.p, eval_dir=os.path.join(args.out, "eval"),
            published=_common.load_published("paper2"),
            published_rows={m: f"{args.dataset}/{args.arch}/{args.epochs}ep/{m}" for m in METHODS}),
        intro=[f"Data `{settings['source']}`; model `{configs['bn'].model.name}`; epochs: {epochs}. "
               f"Scale: {_common.scale_note(args, epochs)}."],
        summary={"paper": "Adversarial Masking (OpenReview LNtTXJ9XXr)", "arch": args.arch,
                 "dataset": args.dataset, "epochs": args.epochs},
    )


def run(args):
    from tfadv.experiments import run_experiment

    run_experiment(experiment(args))
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.out is None:
        args.out = os.path.join("runs", f"paper2-{args.arch}-{args.dataset}-{args.epochs}ep")
    from tfadv.config import ConfigError

    try:
        return run(args)
    except (ConfigError, ValueError) as error:
        print(f"reproduce_paper2.py: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
