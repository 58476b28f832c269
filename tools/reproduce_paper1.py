#!/usr/bin/env python
"""Reproduce paper 1 at full scale: Prabhu, Xu, Yap, Whaley, "Understanding
Adversarial Robustness Through Loss Landscape Geometries" (arXiv:1907.09061).

The protocol, each step resumable (run the same command again to continue):

1. train the clean CIFAR-10 ResNet-32 (configs/paper1/resnet32_cifar10_clean.yaml);
2. fine-tune it three times on 1:1 clean + stored adversarial images, crafted
   once per training image with FGSM, PGD or stAdv
   (configs/paper1/resnet32_cifar10_finetune_{fgsm,pgd,stadv}.yaml, or the
   ``*_code.yaml`` variants with ``--settings code``: the authors' released code);
3. evaluate the four models under the Table 1 attacks (FGSM 8/255, PGD-10 at
   1/255, stAdv): top-1 accuracy (Table 1) and mean 1 − SSIM (Table 2);
4. 2-D filter-normalized loss landscapes of the four models (grid -1:1:51 on
   5000 training images by default), a side-by-side figure, and their Hessian
   sharpness (top eigenvalue, Hutchinson trace);
5. ``<out>/report.md``: our tables next to the paper's published numbers.

The two ``--settings`` share the clean run in one ``--out``; the code
settings' models are named ``*-finetuned-code`` and their report is
``report-code.md``.

Usage::

    python tools/reproduce_paper1.py --out runs/paper1
    python tools/reproduce_paper1.py --out runs/paper1-quick --epochs-scale 0.1 --eval-limit 1000 \\
        --landscape-grid=-1:1:21 --landscape-examples 1000
    python tools/reproduce_paper1.py --smoke --out /tmp/paper1-smoke   # the whole pipeline in a minute
"""
import argparse
import dataclasses
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402  (the tools folder, on the path above)
from tfadv.training.runs import runs_table  # noqa: E402

ROLES = ("clean", "fgsm", "pgd", "stadv")
ATTACK_ORDER = ("fgsm", "pgd", "stadv")  # Table 1's attack columns
STAGES = 5

SMOKE_OVERRIDES = ["model.name=tiny", "data.batch_size=32", "data.limit_train=128", "data.limit_test=64",
                   "train.epochs=1", "train.verbose=0"]
SMOKE_ATTACK_STEPS = {"pgd": 3, "stadv": 5}  # fine-tuning attacks under --smoke


def build_parser():
    parser = argparse.ArgumentParser(
        prog="reproduce_paper1.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _common.add_common_arguments(parser, default_out="runs/paper1")
    parser.add_argument("--settings", choices=("paper", "code"), default="paper",
                        help="fine-tuning settings: as stated in the paper (default) or as in the "
                        "authors' released code (Adam 1e-3, PGD at 8/255 with 100 steps)")
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
    suffix = "" if fine_tuning_settings == "paper" else f"-{fine_tuning_settings}"
    return {role: "clean" if role == "clean" else f"{role}-finetuned{suffix}" for role in ROLES}


def nonnegative_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def settings_from(args):
    """Every size the driver uses: the paper's, or the smoke test's, or the user's."""
    smoke = args.smoke
    suffix = "" if args.settings == "paper" else f"-{args.settings}"
    return {
        "names": model_names(args.settings),
        "report": f"report{suffix}.md",
        "summary": f"summary{suffix}.json",
        "comparison": f"comparison{suffix}",
        "source": args.source or ("digits" if smoke else "cifar10"),
        "eval_limit": args.eval_limit or (64 if smoke else None),
        "stadv_eval_steps": 5 if smoke else None,  # None: stAdv's own default
        "grid": args.landscape_grid or ("-1:1:5" if smoke else "-1:1:51"),
        "examples": args.landscape_examples or (64 if smoke else 5000),
        "hessian_examples": args.hessian_examples or (64 if smoke else 1000),
        "hessian_iterations": 5 if smoke else 50,
        "hutchinson": args.hutchinson_samples if args.hutchinson_samples is not None else (2 if smoke else 10),
    }


def experiment_configs(args, source):
    """The four runs as ``ExperimentConfig``s, by role; fine-tunings start from the clean run in ``--out``."""
    common = _common.data_overrides(args, source)
    user = (SMOKE_OVERRIDES if args.smoke else []) + list(args.overrides)
    clean = _common.load_run_config(_common.config_path("paper1", "resnet32_cifar10_clean.yaml"),
                                    common, args.epochs_scale, user)
    configs = {"clean": clean}
    suffix = "_code" if args.settings == "code" else ""
    for attack in ATTACK_ORDER:
        overrides = common + [f"model.init_from={os.path.join(clean.output_dir, clean.name)}"]
        if args.smoke and attack in SMOKE_ATTACK_STEPS:
            overrides.append(f"method.attack.steps={SMOKE_ATTACK_STEPS[attack]}")
        path = _common.config_path("paper1", f"resnet32_cifar10_finetune_{attack}{suffix}.yaml")
        configs[attack] = _common.load_run_config(path, overrides, args.epochs_scale, user)
    return configs


def table1_attacks(settings):
    """FGSM 8/255, PGD-10 at 1/255 (step ε/4, random start), stAdv (``tfadv.evaluation`` preset)."""
    from tfadv.evaluation import preset

    attacks = preset("paper1_table1")["attacks"]
    if settings["stadv_eval_steps"] is not None:
        attacks = [dataclasses.replace(a, steps=settings["stadv_eval_steps"]) if a.name == "stadv" else a
                   for a in attacks]
    return attacks


def run_landscapes(runs, x_train, y_train, out_dir, settings):
    """Surface, figures and sharpness of each model (resumable), and the side-by-side figures."""
    from tfadv import landscape
    from tfadv.training import load_model

    surfaces, sharpness = {}, {}
    for role in ROLES:
        name = settings["names"][role]
        result = landscape.run_landscape(
            load_model(runs[role].run_dir), x_train, y_train, out_dir, name=name, dim=2,
            grid=settings["grid"], examples=min(settings["examples"], len(x_train)),
            hessian_top_k=1, hutchinson_samples=settings["hutchinson"],
            hessian_examples=settings["hessian_examples"],
            hessian_max_iterations=settings["hessian_iterations"], progress=True)
        surfaces[name], sharpness[name] = result["surface"], result["sharpness"]
    figures = {kind: landscape.compare_figure(list(surfaces.values()), list(surfaces),
                                              os.path.join(out_dir, f"{settings['comparison']}_{kind}.png"),
                                              kind=kind)
               for kind in ("contour", "3d")}
    return figures, sharpness


def paper_tables(results, published, names):
    """Table 1 and Table 2 in the paper's layout, ours beside the published numbers (markdown)."""
    from tfadv.evaluation import accuracy_table, ssim_table

    table1, table2 = published["tables"]["table1"], published["tables"]["table2"]
    ours = accuracy_table(results)
    accuracy = {row[0]: row[1:] for row in ours.rows}
    distance = {row[0]: row[1:] for row in ssim_table(results).rows}
    labels = ours.header[1:2 + len(ATTACK_ORDER)]  # Clean and the attacks, without the worst case
    rows1, rows2 = [], []
    for role in ROLES:
        name = names[role]
        ours = [None if v is None else 100 * v for v in accuracy[name][: 1 + len(ATTACK_ORDER)]]
        rows1.append((name, ours, _common.published_row(table1, role)))
        # 1 − SSIM over the examples the attack fooled (the "(flipped)" columns of eval.md).
        rows2.append((name, distance[name][0::2], _common.published_row(table2, role)))
    return [
        "### Table 1: top-1 test accuracy (%)", "",
        _common.comparison_table(labels, rows1, "percent"), "", _common.source_line(table1), "",
        "### Table 2: mean 1 − SSIM(adversarial, clean)", "",
        "Over the test images whose prediction the attack changed; the mean over all images is in "
        "[eval/eval.md](eval/eval.md).", "",
        _common.comparison_table(labels[1:], rows2, "distance"), "", _common.source_line(table2), "",
    ]


def write_report(path, args, settings, configs, runs, results, landscapes, published, seconds):
    root = os.path.dirname(path)
    epochs = ", ".join(f"{role} {configs[role].train.epochs}" for role in ROLES)
    lines = [
        "# Paper 1 reproduction: loss-landscape geometry of adversarially fine-tuned models", "",
        f"Paper: {_common.paper_citation(published)}.", "",
        f"Data `{settings['source']}`; model `{configs['clean'].model.name}`; "
        f"fine-tuning settings **{args.settings}** "
        f"({'as stated in the paper' if args.settings == 'paper' else 'of the authors’ released code'}); "
        f"epochs: {epochs}. Scale: {_common.scale_note(args, epochs)}. "
        f"Evaluated on {results['dataset']['num_examples']} test images. "
        f"Total time of this call {seconds / 60:.1f} min. Every run folder holds its resolved "
        "`config.yaml`; the configs' comments say which settings the paper states and which are our choice.",
        "", "## Runs", "", runs_table([runs[role] for role in ROLES], root), "",
        "## Tables", "",
    ]
    lines += paper_tables(results, published, settings["names"])
    grids = [f for f in results.get("figures", []) if f.startswith(f"grid-{settings['names']['clean']}-")]
    if grids:
        lines += ["Adversarial examples of the clean model (the other models' are in [eval/](eval/)):", ""]
        lines += [f"![{f}](eval/{f})" for f in grids] + [""]
    lines += ["## Loss landscapes (2-D, filter-normalized)", ""]
    if landscapes is None:
        lines += ["Skipped (--skip-landscape).", ""]
    else:
        figures, sharpness = landscapes
        lines += [f"Grid {settings['grid']} in both directions, loss on the first "
                  f"{settings['examples']} training images; per-model surfaces, plots and VTK files in "
                  "[landscapes/](landscapes/).", ""]
        lines += [f"![{kind}]({os.path.relpath(figure, root)})" for kind, figure in figures.items()]
        lines += ["", "Sharpness of each model's training loss (top Hessian eigenvalue, Hutchinson trace):",
                  "", _sharpness_markdown(sharpness), "",
                  "Published sharpness values: the paper's abstract describes a qualitative (visual) "
                  f"comparison of the landscapes; numbers were {_common.NOT_FOUND}.", ""]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def _sharpness_markdown(sharpness):
    from tfadv.landscape import sharpness_table

    return sharpness_table(sharpness)


def run(args):
    from tfadv.evaluation import evaluate
    from tfadv.training import load_split_arrays
    from tfadv.training.runs import write_json

    settings = settings_from(args)
    published = _common.load_published("paper1")
    progress = _common.Progress("paper1", STAGES)
    os.makedirs(args.out, exist_ok=True)
    configs = experiment_configs(args, settings["source"])

    progress.stage(1, "clean",
                   f"training the clean model ({configs['clean'].model.name}) on {settings['source']!r}")
    runs = {"clean": _common.train(configs["clean"], progress)}
    progress.stage(2, "finetune", "fine-tuning on 1:1 clean + FGSM / PGD / stAdv images "
                   f"({args.settings} settings; adversarial sets are stored once per run)")
    for attack in ATTACK_ORDER:
        runs[attack] = _common.train(configs[attack], progress)

    x_test, y_test = _common.test_arrays(configs["clean"].data, settings["eval_limit"])
    eval_dir = os.path.join(args.out, "eval")
    progress.stage(3, "evaluate", f"Table 1 and Table 2 attacks on {len(y_test)} test images → {eval_dir}")
    results = evaluate(
        {settings["names"][role]: runs[role].run_dir for role in ROLES}, x_test, y_test,
        attacks=table1_attacks(settings), out_dir=eval_dir, batch_size=args.eval_batch_size,
        dataset=f"{settings['source']}[test][:{len(y_test)}]")

    landscapes = None
    landscape_dir = os.path.join(args.out, "landscapes")
    if args.skip_landscape:
        progress.stage(4, "landscape", "loss landscapes skipped (--skip-landscape)")
    else:
        progress.stage(4, "landscape", f"2-D loss landscapes ({settings['grid']}) and Hessian sharpness "
                       f"of the four models → {landscape_dir}")
        x_train, y_train = load_split_arrays(configs["clean"].data, "train")
        landscapes = run_landscapes(runs, x_train, y_train, landscape_dir, settings)

    report = os.path.join(args.out, settings["report"])
    progress.stage(5, "report", f"writing {report}")
    seconds = progress.done()
    write_report(report, args, settings, configs, runs, results, landscapes, published, seconds)
    write_json(os.path.join(args.out, settings["summary"]), {
        "paper": "1907.09061", "settings": args.settings, "seconds": seconds,
        "stage_seconds": progress.seconds, "runs": {role: runs[role].run_dir for role in ROLES},
        "eval": eval_dir, "landscapes": None if landscapes is None else landscape_dir,
        "sharpness": None if landscapes is None else json.loads(json.dumps(landscapes[1], default=float)),
    })
    print(f"[paper1] done in {seconds / 60:.1f} min: {report}", flush=True)
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
