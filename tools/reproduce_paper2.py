#!/usr/bin/env python
"""Reproduce paper 2: Cheng, Gan, Cheng, Wang, Hsieh, Liu,
"Adversarial Masking: Towards Understanding Robustness Trade-off for
Generalization" (ICLR 2021 submission, OpenReview LNtTXJ9XXr).

Two profiles: ``--profile paper`` (the default) runs the paper's scale for one
architecture, dataset and training length (``--arch``, ``--dataset``,
``--epochs``); ``--profile small --data FILE.npz`` runs the same protocol,
shortened (see :data:`SMALL`), on a CIFAR-10 subset in about half an hour on
2 CPU cores. Each step is resumable (run the same command again to continue):

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
3. Table 1 (Sec. 3.1) and the masking interpolation (Sec. 3.2): an
   adversarially trained model (PGD-7, ε 8/255, step ε/5), the BN run
   BN-only fine-tuned on adversarial examples and the adversarial run
   BN-only fine-tuned on clean images (``method.kind: bn_finetune``, moving
   statistics updated); clean and PGD 8/255 accuracy of the four, and the
   clean/robust curve of ``interpolation_model(clean, robust,
   statistics="fold")`` of each pair over ``--p-grid`` (``--skip-table1``
   leaves it out);
4. with ``--ablations``: Table 7's AdvProp with a random strength and with
   two auxiliary BNs, Table 6's RobMask with ε_max 10/255 (their configs in
   ``configs/paper2/``, at this grid point), the same sweep, their own section;
5. Figure 3: the validation accuracy per epoch of the grid point's runs;
6. ``<out>/report.md``: our tables next to the paper's published numbers.

The steps are the stages of ``tfadv.experiments.run_experiment``; this
script is the paper-2 profile of that pipeline (the grid, sizes and flags).

Usage::

    python tools/reproduce_paper2.py --arch resnet18 --dataset cifar10 --epochs 100
    python tools/reproduce_paper2.py --arch densenet121 --dataset cifar100 --epochs 20 --eval-limit 1000
    python tools/reproduce_paper2.py --profile small --data ../shared/data/cifar10_mini_train.npz
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

ABLATIONS = ("advprop_random_strength", "advprop_two_aux", "robmask_eps10")
"""Table 7's AdvProp extensions and Table 6's RobMask at ε_max 10/255: ``configs/paper2/<name>.yaml``."""
TABLE1_FINETUNE_EPOCHS = 10
"""Epochs of each BN-only fine-tuning of Table 1: the paper states none; our choice (γ, β only)."""

SMOKE_OVERRIDES = ["model.name=tiny", "data.batch_size=32", "data.limit_train=128", "data.limit_test=64",
                   "train.epochs=1", "train.verbose=0", "method.pgd_steps=2"]
SMOKE_ATTACK_OVERRIDES = ["method.attack.steps=2"]  # the methods whose training attack is method.attack

SMALL = {
    # A ResNet-18 (the paper's architecture for Tables 1 and 3: four stages, BN + ReLU after every
    # convolution) at a quarter of its width (16-32-64-128 channels, 0.7 M parameters): one PGD-7
    # training step of 128 images costs about 2.8 s on 2 loaded CPU cores, as a ResNet-20's does,
    # while keeping the BN layout the masking hypothesis is about. resnet20 would be the other choice.
    "model": ["model.name=resnet18", "model.options={width_multiplier: 0.25}"],
    "epochs": 3,  # every grid run (BN, AdvProp, RobMask, the adversarial run, the ablations)
    "finetune_epochs": 1,  # each BN-only fine-tuning of Table 1
    "val_limit": 200,  # validation images per epoch (the adversarial runs validate under PGD-7)
    "eval_limit": 500,  # test images of every evaluation
    "sweep_steps": 10,  # PGD-10 (step ε/5, random start) instead of PGD-100
    "p_grid": [0.0, 0.5, 1.0],
}
"""The small profile's lengths: the paper's protocol and settings (configs/paper2), shortened."""


def build_parser():
    parser = argparse.ArgumentParser(
        prog="reproduce_paper2.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _common.add_common_arguments(parser, default_out=None,
                                 out_help="default: runs/paper2-<arch>-<dataset>-<epochs>ep")
    parser.add_argument("--profile", choices=("paper", "small"), default="paper",
                        help="paper: the paper's scale (default); small: the same protocol shortened, on "
                        "--data FILE.npz (a CIFAR-10 subset), in about half an hour on 2 CPU cores")
    parser.add_argument("--data", default=None, metavar="FILE.npz",
                        help="the .npz (keys x, y; 20%% held out as the test split) the small profile runs on")
    parser.add_argument("--arch", choices=ARCHS, default="resnet18", help="architecture (default resnet18)")
    parser.add_argument("--dataset", choices=DATASETS, default="cifar10", help="dataset (default cifar10)")
    parser.add_argument("--epochs", type=int, choices=EPOCHS, default=100,
                        help="the paper's training length whose configs to run (default 100)")
    parser.add_argument("--ablations", action="store_true",
                        help="also train and evaluate the ablations: " + ", ".join(ABLATIONS))
    parser.add_argument("--skip-table1", action="store_true",
                        help="leave out Table 1 and the masking interpolation (an adversarial run and two "
                        "BN-only fine-tunings)")
    parser.add_argument("--p", type=float, default=0.0,
                        help="masking strength at which AdvProp and RobMask fill the ε-sweep table "
                        "(0: clean masking / main BN; default 0)")
    parser.add_argument("--p-grid", default=None,
                        help="masking strengths of the trade-off curve, comma-separated "
                        "(default 0,0.25,0.5,0.75,1; 0,0.5,1 with --smoke)")
    parser.add_argument("--sweep-steps", type=_common.positive_int, default=None,
                        help="PGD steps of the ε sweep and the trade-off curve (default 100)")
    return parser


def check_profile(args):
    """``--profile small`` needs ``--data``; ``--data`` belongs to it."""
    if args.profile == "small" and not args.data:
        raise ValueError("--profile small runs on a CIFAR-10 subset: give it with --data FILE.npz. "
                         "Received: --data not given")
    if args.profile == "paper" and args.data:
        raise ValueError(f"--data is the small profile's data (use --source for the paper profile). "
                         f"Received: --profile paper --data {args.data}")


def settings_from(args):
    """Every size the driver uses: the paper's, the small profile's, the smoke test's, or the user's."""
    smoke, small = args.smoke, args.profile == "small"
    if args.p_grid is None:
        p_grid = [0.0, 0.5, 1.0] if smoke or small else [0.0, 0.25, 0.5, 0.75, 1.0]
    else:
        try:
            p_grid = [float(value) for value in args.p_grid.split(",")]
        except ValueError:
            raise ValueError(f"--p-grid must be numbers separated by commas. Received: {args.p_grid!r}") from None
    if small:
        source = args.data
    else:
        source = args.source or ("digits" if smoke else args.dataset)
    return {
        "source": source,
        "eval_limit": args.eval_limit or (64 if smoke else SMALL["eval_limit"] if small else None),
        "sweep_steps": args.sweep_steps or (5 if smoke else SMALL["sweep_steps"] if small else 100),
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


TABLE1_STEP = "method.attack.step_size=1.6/255"  # "the step-size to ε/5", (8/255)/5, as advprop.yaml
TABLE1_RUNS = {
    # role: (config file, its overrides); {standard}/{adversarial} are the source runs' folders.
    # "can we learn robust features from a vanilla standard-trained model, or, can we obtain
    # non-robust features from an adversarial trained 'robust model'?" (Sec. 3.1). The paper
    # trains its robust model with the attack it uses "for all the methods": PGD-7, ε = 8/255,
    # step ε/5, random start (base.yaml).
    "adversarial": ("bn", ["method.kind=adversarial", TABLE1_STEP]),
    # A standard model, BN-only fine-tuned on adversarial examples (Table 1, first block).
    "bn_ft_adversarial": ("bn", ["method.kind=bn_finetune", "method.train_on=adversarial", TABLE1_STEP,
                                 "model.init_from={standard}"]),
    # The robust model, BN-only fine-tuned on clean images (Table 1, second block; Figure 1).
    "adversarial_ft_clean": ("bn", ["method.kind=bn_finetune", "method.train_on=clean", TABLE1_STEP,
                                    "model.init_from={adversarial}"]),
}
"""Table 1's runs beyond the grid's BN run: each from ``configs/paper2/bn.yaml`` with these overrides."""


def _profile_point(args):
    """(arch label, dataset label, epochs label) naming the runs of this call."""
    if args.profile == "small":
        return "small", os.path.splitext(os.path.basename(args.data))[0], SMALL["epochs"]
    return args.arch, args.dataset, args.epochs


def experiment_configs(args, settings):
    """The runs of this call as ``ExperimentConfig``s, by role, in training order.

    The grid point's three methods always (``bn``, ``advprop``, ``robmask``);
    Table 1's runs (:data:`TABLE1_RUNS`) unless ``--skip-table1``; the
    ablations (:data:`ABLATIONS`) with ``--ablations``.
    """
    small = args.profile == "small"
    common = _common.data_overrides(args, settings["source"])
    if small and not args.val_limit:
        common.append(f"data.limit_test={SMALL['val_limit']}")
    user = (SMOKE_OVERRIDES if args.smoke else []) + list(args.overrides)
    arch, dataset, epochs = _profile_point(args)
    profile = [] if not small or args.smoke else SMALL["model"]

    def point_of(name):
        if small:  # the data is --data (in common); the model and the lengths are the profile's
            return [f"train.epochs={epochs}", f"name={run_name(arch, dataset, name, epochs)}"] + profile
        return grid_overrides(arch, dataset, name, epochs)

    def load(config_file, name, extra=()):
        overrides = point_of(name) + common + list(extra)
        if args.smoke and config_file.startswith("advprop"):
            overrides += SMOKE_ATTACK_OVERRIDES
        return _common.load_run_config(_common.config_path("paper2", f"{config_file}.yaml"), overrides,
                                       args.epochs_scale, user)

    configs = {method: load(method, method) for method in METHODS}
    if not args.skip_table1:
        folders = {"standard": os.path.join(args.out, configs["bn"].name)}
        for role, (config_file, extra) in TABLE1_RUNS.items():
            extra = [item.format(**folders) for item in extra]
            if role.startswith(("bn_ft", "adversarial_ft")):
                finetune_epochs = SMALL["finetune_epochs"] if small else TABLE1_FINETUNE_EPOCHS
                extra.append(f"train.epochs={finetune_epochs}")
            if args.smoke:
                extra += SMOKE_ATTACK_OVERRIDES
            configs[role] = load(config_file, role.replace("_", "-"), extra)
            folders[role] = os.path.join(args.out, configs[role].name)
    if args.ablations:
        for ablation in ABLATIONS:
            configs[ablation] = load(ablation, ablation.replace("_", "-"))
    return configs


def sweep_attacks(steps):
    """PGD-``steps``, step ε/5, random start, ε ∈ {0, 1, 2, 4, 6, 8}/255; and the trade-off attack.

    The trade-off attack is the sweep's 8/255 attack itself, so at ``p`` the
    two share one stored result.
    """
    from tfadv.evaluation import pgd_sweep

    sweep = pgd_sweep(steps=steps)
    return sweep, pgd_sweep(eps_values=[TRADEOFF_EPS], steps=steps)[0]


def masking_plan(args, settings, tradeoff_attack):
    """Table 1's two blocks and their interpolation curves (``None`` with ``--skip-table1``)."""
    from tfadv.experiments import MaskingBlock, MaskingPlan

    if args.skip_table1:
        return None
    return MaskingPlan(
        blocks=[MaskingBlock("Standard training", "bn", "bn_ft_adversarial", "adversarial"),
                MaskingBlock("Adversarial training", "adversarial", "adversarial_ft_clean", "clean")],
        attack=tradeoff_attack, p_grid=settings["p_grid"], eval_dir=os.path.join(args.out, "eval-table1"),
        statistics="fold")


def experiment(args):
    """The paper-2 profile of the experiment pipeline: runs, ε sweep and trade-off evaluation, Table 1,
    the ablations, Figure 3, report."""
    from tfadv.experiments import AblationPlan, CurvesPlan, Experiment, Paper2Plan

    check_profile(args)
    settings = settings_from(args)
    configs = experiment_configs(args, settings)
    sweep, tradeoff_attack = sweep_attacks(settings["sweep_steps"])
    arch, dataset, _ = _profile_point(args)
    epochs = ", ".join(f"{role} {config.train.epochs}" for role, config in configs.items())
    published = None if args.profile == "small" else _common.load_published("paper2")
    ablations = None
    if args.ablations:
        ablations = AblationPlan(
            models={name: name for name in ABLATIONS}, sweep=sweep, p_grid=settings["p_grid"],
            tradeoff_attack=tradeoff_attack, p=args.p, eval_dir=os.path.join(args.out, "eval-ablations"))
    curve_roles = list(METHODS) + (list(ABLATIONS) if args.ablations else [])
    if args.profile == "small":
        title = (f"Paper 2 reproduction, small profile: {configs['bn'].model.name} "
                 f"{configs['bn'].model.options or ''} on {settings['source']}")
        note = _common.scale_note(args, epochs)
        scale = (f"the **small profile**: the paper's settings (configs/paper2), shortened: a quarter-width "
                 f"ResNet-18, {SMALL['epochs']} epochs per run, {SMALL['finetune_epochs']} per BN-only "
                 f"fine-tuning, validation on {SMALL['val_limit']} images per epoch, a PGD-"
                 f"{settings['sweep_steps']} sweep on {settings['eval_limit']} test images"
                 + ("" if note.startswith("the paper's scale") else f"; {note}"))
    else:
        title = f"Paper 2 reproduction: {args.arch} on {args.dataset}, {args.epochs} epochs"
        scale = _common.scale_note(args, epochs)
    model_note = configs["bn"].model.name + (f" {configs['bn'].model.options}" if configs["bn"].model.options else "")
    return Experiment(
        tag="paper2",
        title=title,
        out_dir=args.out,
        runs=configs,
        data_name=settings["source"],
        eval_limit=settings["eval_limit"],
        eval_batch_size=args.eval_batch_size,
        plans=[plan for plan in (
            Paper2Plan(
                models={method: method for method in METHODS}, sweep=sweep, p_grid=settings["p_grid"],
                tradeoff_attack=tradeoff_attack, p=args.p, eval_dir=os.path.join(args.out, "eval"),
                published=published,
                published_rows={m: f"{args.dataset}/{args.arch}/{args.epochs}ep/{m}" for m in METHODS}),
            masking_plan(args, settings, tradeoff_attack),
            ablations,
            CurvesPlan(runs={role: role for role in curve_roles},
                       path=os.path.join(args.out, "training_curves.png"),
                       title=f"Validation accuracy per epoch ({arch}, {dataset})"),
        ) if plan is not None],
        intro=[f"Data `{settings['source']}`; model `{model_note}`; epochs: {epochs}. Scale: {scale}."],
        summary={"paper": "Adversarial Masking (OpenReview LNtTXJ9XXr)", "profile": args.profile,
                 "arch": arch, "dataset": dataset, "epochs": args.epochs if args.profile == "paper" else SMALL["epochs"],
                 "ablations": args.ablations, "table1": not args.skip_table1},
    )


def run(args):
    from tfadv.experiments import run_experiment

    run_experiment(experiment(args))
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.out is None:
        args.out = (os.path.join("runs", "paper2-small") if args.profile == "small"
                    else os.path.join("runs", f"paper2-{args.arch}-{args.dataset}-{args.epochs}ep"))
    from tfadv.config import ConfigError

    try:
        return run(args)
    except (ConfigError, ValueError) as error:
        print(f"reproduce_paper2.py: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
