#!/usr/bin/env python
"""Reproduce paper 2: Cheng, Gan, Cheng, Wang, Hsieh, Liu,
"Adversarial Masking: Towards Understanding Robustness Trade-off for
Generalization" (ICLR 2021 submission, OpenReview LNtTXJ9XXr).

Two profiles: ``--profile paper`` (the default) runs the paper's scale for one
architecture, dataset and training length (``--arch``, ``--dataset``,
``--epochs``); ``--profile small --data FILE.npz`` runs the same protocol,
shortened (see ``tfadv.experiments.paper2.SMALL``), on a CIFAR-10 subset in about half an hour on
2 CPU cores. Each step is resumable (run the same command again to continue):

1. train the three models, plain BN (clean training), AdvProp (dual BN,
   PGD-7) and RobMask (ε-conditioned BN rescaling, p ~ U(0, 1),
   ε = p · 8/255, PGD-7): each run's config is its method's file
   ``configs/paper2/{bn,advprop,robmask}.yaml`` with the grid point set by
   overrides (``model.name``, ``data.source``, ``train.epochs``, ``name``),
   see ``tfadv.experiments.paper2.grid_config``;
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

The steps are the stages of ``tfadv.experiments.run_experiment``; the
paper-2 profile of that pipeline (the grid, sizes and options) is
``tfadv.experiments.paper2``; this script is its command line.

Usage::

    python tools/reproduce_paper2.py --arch resnet18 --dataset cifar10 --epochs 100
    python tools/reproduce_paper2.py --arch densenet121 --dataset cifar100 --epochs 20 --eval-limit 1000
    python tools/reproduce_paper2.py --profile small --data ../shared/data/cifar10_mini_train.npz
    python tools/reproduce_paper2.py --smoke --out /tmp/paper2-smoke   # the whole pipeline in a minute
"""
import argparse
import dataclasses
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402  (the tools folder, on the path above)

from tfadv.experiments import paper2  # noqa: E402


def build_parser():
    parser = argparse.ArgumentParser(
        prog="reproduce_paper2.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _common.add_common_arguments(parser, default_out=None,
                                 out_help="default: runs/paper2-<arch>-<dataset>-<epochs>ep")
    parser.add_argument("--profile", choices=paper2.PROFILES, default="paper",
                        help="paper: the paper's scale (default); small: the same protocol shortened, on "
                        "--data FILE.npz (a CIFAR-10 subset), in about half an hour on 2 CPU cores")
    parser.add_argument("--data", default=None, metavar="FILE.npz",
                        help="the .npz (keys x, y; 20%% held out as the test split) the small profile runs on")
    parser.add_argument("--arch", choices=paper2.ARCHS, default="resnet18", help="architecture (default resnet18)")
    parser.add_argument("--dataset", choices=paper2.DATASETS, default="cifar10", help="dataset (default cifar10)")
    parser.add_argument("--epochs", type=int, choices=paper2.EPOCHS, default=100,
                        help="the paper's training length whose configs to run (default 100)")
    parser.add_argument("--ablations", action="store_true",
                        help="also train and evaluate the ablations: " + ", ".join(paper2.ABLATIONS))
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


def options_from(args):
    """The parsed command line as ``tfadv.experiments.paper2.Paper2Options`` (configs: the repository's)."""
    fields = {field.name for field in dataclasses.fields(paper2.Paper2Options)}
    return paper2.Paper2Options(**{key: value for key, value in vars(args).items() if key in fields})


def main(argv=None):
    args = build_parser().parse_args(argv)
    from tfadv.config import ConfigError

    try:
        paper2.run(options_from(args))
        return 0
    except (ConfigError, ValueError) as error:
        print(f"reproduce_paper2.py: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
