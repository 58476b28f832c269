#!/usr/bin/env python
"""Reproduce paper 1 at full scale: Prabhu, Xu, Yap, Whaley, "Understanding
Adversarial Robustness Through Loss Landscape Geometries" (arXiv:1907.09061).

The protocol, each step resumable (run the same command again to continue):

1. train the clean CIFAR-10 ResNet-32 (configs/paper1/resnet32_cifar10_clean.yaml);
2. fine-tune it three times on 1:1 clean + adversarial images, FGSM, PGD or
   stAdv: with ``--settings code`` (the default) as the authors' released code
   does, online (configs/paper1/resnet32_cifar10_finetune_{fgsm,pgd,stadv}.yaml);
   with ``--settings paper`` on a stored set crafted once with the paper's
   evaluation attacks (the ``*_evalsettings.yaml`` variants);
3. evaluate the four models under the Table 1 attacks (FGSM 8/255, PGD-10 at
   1/255, stAdv): top-1 accuracy (Table 1) and mean 1 − SSIM (Table 2);
4. 2-D filter-normalized loss landscapes of the four models (grid -1:1:51 on
   5000 training images by default), a side-by-side figure, and their Hessian
   sharpness (top eigenvalue, Hutchinson trace);
5. ``<out>/report.md``: our tables next to the paper's published numbers.

The steps are the stages of ``tfadv.experiments.run_experiment``; the
paper-1 profile of that pipeline (the configs, sizes and options) is
``tfadv.experiments.paper1``; this script is its command line.

The two ``--settings`` share the clean run in one ``--out``; the paper
settings' models are named ``*-finetuned-paper`` and their report is
``report-paper.md``.

Usage::

    python tools/reproduce_paper1.py --out runs/paper1
    python tools/reproduce_paper1.py --out runs/paper1-quick --epochs-scale 0.1 --eval-limit 1000 \\
        --landscape-grid=-1:1:21 --landscape-examples 1000
    python tools/reproduce_paper1.py --smoke --out /tmp/paper1-smoke   # the whole pipeline in a minute
"""
import argparse
import dataclasses
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402  (the tools folder, on the path above)

from tfadv.experiments import paper1  # noqa: E402


def build_parser():
    parser = argparse.ArgumentParser(
        prog="reproduce_paper1.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _common.add_common_arguments(parser, default_out=None,
                                 out_help="default: runs/paper1, or runs/paper1-small with --profile small")
    parser.add_argument("--profile", choices=paper1.PROFILES, default="paper",
                        help="paper: the paper's scale (default); small: the same protocol shortened "
                        "(ResNet-32 at half width, 15 + 3 epochs, stAdv 30 steps, 500 test images, "
                        "15x15 landscapes) on a CIFAR-10 subset given by --data, about 30 min on 2 CPU cores")
    parser.add_argument("--data", default=None, metavar="FILE.npz",
                        help="the .npz (keys x, y; a fixed stratified 20%% is held out as the test split) "
                        "the small profile runs on, e.g. a CIFAR-10 subset; required with --profile small")
    parser.add_argument("--settings", choices=paper1.SETTINGS, default=paper1.DEFAULT_SETTINGS,
                        help="fine-tuning settings: as in the authors' released code (default; online, "
                        "Adam 1e-3, PGD at 8/255 with 100 Adam steps) or with the paper's evaluation "
                        "attacks on a stored set (configs/paper1/*_evalsettings.yaml)")
    parser.add_argument("--skip-landscape", action="store_true", help="stop after the evaluation")
    parser.add_argument("--landscape-grid", default=None,
                        help="α and β grid as min:max:num (default -1:1:51; pass as --landscape-grid=-1:1:21)")
    parser.add_argument("--landscape-examples", type=_common.positive_int, default=None,
                        help="training images the landscape loss is computed on (default 5000)")
    parser.add_argument("--hessian-examples", type=_common.positive_int, default=None,
                        help="training images for the Hessian sharpness (default 1000)")
    parser.add_argument("--hutchinson-samples", type=_common.nonnegative_int, default=None,
                        help="Rademacher samples of the Hessian trace (default 10; 0 skips it)")
    return parser


def options_from(args):
    """The parsed command line as ``tfadv.experiments.paper1.Paper1Options`` (configs: the repository's)."""
    fields = {field.name for field in dataclasses.fields(paper1.Paper1Options)}
    return paper1.Paper1Options(**{key: value for key, value in vars(args).items() if key in fields})


def main(argv=None):
    args = build_parser().parse_args(argv)
    from tfadv.config import ConfigError

    try:
        paper1.run(options_from(args))
        return 0
    except (ConfigError, ValueError) as error:
        print(f"reproduce_paper1.py: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
