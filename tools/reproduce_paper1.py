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

The steps are the stages of ``tfadv.experiments.run_experiment``; this
script is the paper-1 profile of that pipeline (the configs, sizes and flags).

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

ROLES = ("clean", "fgsm", "pgd", "stadv")
ATTACK_ORDER = ("fgsm", "pgd", "stadv")  # Table 1's attack columns

SMOKE_OVERRIDES = ["model.name=tiny", "data.batch_size=32", "data.limit_train=128", "data.limit_test=64",
                   "train.epochs=1", "train.verbose=0"]
SMOKE_ATTACK_STEPS = {"pgd": 3, "stadv": 5}  # fine-tuning attacks under --smoke

DEFAULT_SETTINGS = "code"
"""``--settings``: the released code's fine-tuning (configs/paper1/*.yaml, issue 19) unless told otherwise."""

PROFILES = ("paper", "small")
"""``--profile``: the paper's scale (default) or a CIFAR-10 subset a user can afford on a CPU."""

# --profile small: paper 1's whole protocol on a CIFAR-10 subset (``--data FILE.npz``) in about half
# an hour on 2 CPU cores (the --settings paper protocol; the default online released-code
# fine-tuning crafts every epoch and costs several times more). Every setting not named here
# is the configs'; every shortening is named and the reason given:
SMALL = {
    # ResNet-32 keeps the paper's depth (its 15 residual blocks set the landscape's geometry);
    # half the paper's width (8-16-32 channels instead of 16-32-64) costs about 1.6x less per step.
    "model": ["model.name=resnet32", "model.options={width: 8}"],
    # Pretraining with crop + flip augmentation (the clean config's data.augment: true), 15 epochs
    # instead of 200: "until convergence" is out of reach on a CPU; a few thousand images plateau
    # early anyway; the step schedule's milestones scale with it (100, 150 of 200 -> 8, 11 of 15).
    # Fine-tuning: 3 passes over the 1:1 clean + adversarial data instead of the paper's 200
    # (same optimizer and learning rate as the configs).
    "clean_epochs": 15,
    "finetune_epochs": 3,
    # The released code's PGD fine-tuning (--settings code): 10 Adam steps instead of 100. Adam
    # at 0.01 moves each pixel by about 0.01 per step, so 4 steps reach the 8/255 surface from
    # the image; the other 90 only refine (and cost 10x, every batch of every epoch).
    "pgd_train_steps": 10,
    # stAdv (crafting the stored set and the Table 1 column): 30 Adam steps on the flow instead
    # of 100, the only attack shortened (it costs 10x PGD-10; at 30 steps it is weaker, so its
    # column over-states robustness). FGSM and PGD-10 run exactly as the paper states.
    "stadv_steps": 30,
    "val_limit": 256,      # per-epoch validation (under the run's attack) on 256 held-out images
    "eval_limit": 500,     # Tables 1 and 2 on the first 500 held-out images
    # Landscapes: a 15 x 15 grid over [-1, 1]^2 (the paper's plots: 51 x 51) with the loss on 256
    # training images; sharpness on the same 256 images (20 power iterations, 5 Hutchinson samples).
    "grid": "-1:1:15",
    "examples": 256,
    "hessian_examples": 256,
    "hessian_iterations": 20,
    "hutchinson": 5,
}


def build_parser():
    parser = argparse.ArgumentParser(
        prog="reproduce_paper1.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _common.add_common_arguments(parser, default_out=None,
                                 out_help="default: runs/paper1, or runs/paper1-small with --profile small")
    parser.add_argument("--profile", choices=PROFILES, default="paper",
                        help="paper: the paper's scale (default); small: the same protocol shortened "
                        "(ResNet-32 at half width, 15 + 3 epochs, stAdv 30 steps, 500 test images, "
                        "15x15 landscapes) on a CIFAR-10 subset given by --data, about 30 min on 2 CPU cores")
    parser.add_argument("--data", default=None, metavar="FILE.npz",
                        help="the .npz (keys x, y; a fixed stratified 20%% is held out as the test split) "
                        "the small profile runs on, e.g. a CIFAR-10 subset; required with --profile small")
    parser.add_argument("--settings", choices=("paper", "code"), default=DEFAULT_SETTINGS,
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
    parser.add_argument("--hutchinson-samples", type=nonnegative_int, default=None,
                        help="Rademacher samples of the Hessian trace (default 10; 0 skips it)")
    return parser


def model_names(fine_tuning_settings):
    """Names of the four models in eval.json, the tables and landscapes/; the clean model is shared."""
    suffix = "" if fine_tuning_settings == DEFAULT_SETTINGS else f"-{fine_tuning_settings}"
    return {role: "clean" if role == "clean" else f"{role}-finetuned{suffix}" for role in ROLES}


def nonnegative_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def check_profile(args):
    """``--profile small`` needs ``--data FILE.npz`` (and takes its data from there only)."""
    if args.profile == "small":
        if not args.data:
            raise ValueError("--profile small needs --data FILE.npz (e.g. a CIFAR-10 subset with keys x, y). "
                             "Received: --data not given")
        if args.source:
            raise ValueError(f"--profile small reads its data from --data; drop --source. "
                             f"Received: --source {args.source!r}")
    elif args.data:
        raise ValueError(f"--data is the small profile's data (use --source with --profile paper). "
                         f"Received: --data {args.data!r} with --profile {args.profile}")


def prepare(args):
    """Check the profile's flags and fill the default ``--out`` (it depends on the profile)."""
    check_profile(args)
    if args.out is None:
        args.out = "runs/paper1-small" if args.profile == "small" else "runs/paper1"
    return args


def settings_from(args):
    """Every size the driver uses: the paper's or the small profile's, the smoke test's, or the user's."""
    smoke, small = args.smoke, args.profile == "small"

    def pick(smoke_value, small_value, paper_value):
        return smoke_value if smoke else (small_value if small else paper_value)

    suffix = "" if args.settings == DEFAULT_SETTINGS else f"-{args.settings}"
    return {
        "names": model_names(args.settings),
        "report": f"report{suffix}.md",
        "summary": f"summary{suffix}.json",
        "comparison": f"comparison{suffix}",
        "source": args.data if small else (args.source or ("digits" if smoke else "cifar10")),
        "eval_limit": args.eval_limit or pick(64, SMALL["eval_limit"], None),
        "stadv_eval_steps": pick(5, SMALL["stadv_steps"], None),  # None: stAdv's own default
        "grid": args.landscape_grid or pick("-1:1:5", SMALL["grid"], "-1:1:51"),
        "examples": args.landscape_examples or pick(64, SMALL["examples"], 5000),
        "hessian_examples": args.hessian_examples or pick(64, SMALL["hessian_examples"], 1000),
        "hessian_iterations": pick(5, SMALL["hessian_iterations"], 50),
        "hutchinson": (args.hutchinson_samples if args.hutchinson_samples is not None
                       else pick(2, SMALL["hutchinson"], 10)),
    }


def profile_overrides(args, role):
    """The small profile's config overrides of one run (``role``: clean, fgsm, pgd, stadv); none for paper."""
    if args.profile != "small":
        return []
    overrides = list(SMALL["model"])
    if args.val_limit is None:
        overrides.append(f"data.limit_test={SMALL['val_limit']}")
    if role == "clean":
        return overrides + [f"train.epochs={SMALL['clean_epochs']}"]
    overrides.append(f"train.epochs={SMALL['finetune_epochs']}")
    if role == "stadv":
        overrides.append(f"method.attack.steps={SMALL['stadv_steps']}")
    if role == "pgd" and args.settings == "code":
        overrides.append(f"method.attack.steps={SMALL['pgd_train_steps']}")
    return overrides


def experiment_configs(args, source):
    """The four runs as ``ExperimentConfig``s, by role; fine-tunings start from the clean run in ``--out``."""
    common = _common.data_overrides(args, source)
    user = (SMOKE_OVERRIDES if args.smoke else []) + list(args.overrides)
    clean = _common.load_run_config(_common.config_path("paper1", "resnet32_cifar10_clean.yaml"),
                                    common + profile_overrides(args, "clean"), args.epochs_scale, user)
    configs = {"clean": clean}
    suffix = "" if args.settings == "code" else "_evalsettings"
    for attack in ATTACK_ORDER:
        overrides = common + profile_overrides(args, attack)
        overrides.append(f"model.init_from={os.path.join(clean.output_dir, clean.name)}")
        if args.smoke and attack in SMOKE_ATTACK_STEPS:
            overrides.append(f"method.attack.steps={SMOKE_ATTACK_STEPS[attack]}")
        path = _common.config_path("paper1", f"resnet32_cifar10_finetune_{attack}{suffix}.yaml")
        configs[attack] = _common.load_run_config(path, overrides, args.epochs_scale, user)
    return configs


def small_profile_note(args, settings):
    """The report's sentence on what ``--profile small`` shortened (nothing for the paper profile)."""
    if args.profile != "small":
        return []
    if args.smoke:
        return ["**Profile small under --smoke**: the small profile's data (`--data`), the smoke test's sizes."]
    return [f"**Profile small** (`--profile small`): ResNet-32 at half width (8-16-32 channels), "
            f"{SMALL['clean_epochs']} pretraining epochs with crop + flip augmentation, "
            f"{SMALL['finetune_epochs']} fine-tuning epochs on the 1:1 set"
            + (f", PGD fine-tuning with {SMALL['pgd_train_steps']} Adam steps (the released code: 100)"
               if args.settings == "code" else "") + ", stAdv with "
            f"{SMALL['stadv_steps']} steps (training and evaluation; the released code's 100), "
            f"Tables 1-2 on at most {settings['eval_limit']} held-out images, landscapes on a {settings['grid']} grid "
            f"over {settings['examples']} training images; everything else as the configs "
            "(tools/reproduce_paper1.py, SMALL, says why each was chosen)."]


def landscape_note(published):
    """Under the sharpness table: the paper gives no numbers, only the order it states (quoted)."""
    from tfadv.experiments.published import statement_line

    lines = [statement_line(s) for s in published.get("statements", []) if s.get("under") == "landscapes"]
    return " ".join(lines) or f"Published sharpness values: {_common.NOT_FOUND}."


def table1_attacks(settings):
    """FGSM 8/255, PGD-10 at 1/255 (step ε/4, random start), stAdv (``tfadv.evaluation`` preset)."""
    from tfadv.evaluation import preset

    attacks = preset("paper1_table1")["attacks"]
    if settings["stadv_eval_steps"] is not None:
        attacks = [dataclasses.replace(a, steps=settings["stadv_eval_steps"]) if a.name == "stadv" else a
                   for a in attacks]
    return attacks


def experiment(args):
    """The paper-1 profile of the experiment pipeline: runs, Table 1/2 evaluation, landscapes, report."""
    from tfadv.experiments import Experiment, LandscapePlan, Paper1Plan

    settings = settings_from(args)
    configs = experiment_configs(args, settings["source"])
    names = settings["names"]
    epochs = ", ".join(f"{role} {configs[role].train.epochs}" for role in ROLES)
    published = _common.load_published("paper1")
    scale = _common.scale_note(args, epochs)
    if args.profile == "small" and not args.smoke:
        scale = "--profile small (below), not the paper's" + ("" if scale.startswith("the paper's") else "; " + scale)
    return Experiment(
        tag="paper1",
        title="Paper 1 reproduction: loss-landscape geometry of adversarially fine-tuned models",
        out_dir=args.out,
        runs=configs,
        data_name=settings["source"],
        eval_limit=settings["eval_limit"],
        eval_batch_size=args.eval_batch_size,
        plans=[Paper1Plan(
            models={names[role]: role for role in ROLES}, attacks=table1_attacks(settings),
            eval_dir=os.path.join(args.out, "eval"), published=published,
            published_rows={names[role]: role for role in ROLES})],
        landscape=LandscapePlan(
            models={names[role]: role for role in ROLES}, out_dir=os.path.join(args.out, "landscapes"),
            grid=settings["grid"], examples=settings["examples"], hessian_examples=settings["hessian_examples"],
            hessian_max_iterations=settings["hessian_iterations"], hutchinson_samples=settings["hutchinson"],
            comparison=settings["comparison"],
            note=landscape_note(published)),
        skipped={"landscape": "--skip-landscape"} if args.skip_landscape else {},
        intro=[f"Data `{settings['source']}`; model `{configs['clean'].model.name}`; fine-tuning settings "
               f"**{args.settings}** "
               f"({'as stated in the paper' if args.settings == 'paper' else 'of the authors’ released code'}); "
               f"epochs: {epochs}. Scale: {scale}. The configs' comments say which "
               "settings the paper states and which are our choice."] + small_profile_note(args, settings),
        report_file=settings["report"],
        summary_file=settings["summary"],
        summary={"paper": "1907.09061", "settings": args.settings},
    )


def run(args):
    from tfadv.experiments import run_experiment

    prepare(args)
    run_experiment(experiment(args))
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    from tfadv.config import ConfigError

    try:
        return run(args)
    except (ConfigError, ValueError) as error:
        print(f"reproduce_paper1.py: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
