#!/usr/bin/env python
"""Reproduce paper 2 at full scale: Cheng, Gan, Cheng, Wang, Hsieh, Liu,
"Adversarial Masking: Towards Understanding Robustness Trade-off for
Generalization" (ICLR 2021 submission, OpenReview LNtTXJ9XXr).

For one architecture, dataset and training length (``--arch``, ``--dataset``,
``--epochs``), each step resumable (run the same command again to continue):

1. train the three models of configs/paper2/<arch>_<dataset>_{bn,advprop,robmask}_<epochs>ep.yaml:
   plain BN (clean training), AdvProp (dual BN, PGD-7) and RobMask
   (ε-conditioned BN rescaling, p ~ U(0, 1), ε = p · 8/255, PGD-7);
2. evaluate them under L∞ PGD-100 (step ε/5, random start) for
   ε ∈ {0, 1, 2, 4, 6, 8}/255 (the Tables 5/6 layout), AdvProp and RobMask at
   masking strength ``--p``; and RobMask's (and AdvProp's) trade-off curve:
   clean and PGD-100 8/255 accuracy over the masking strength p;
3. ``<out>/report.md``: our tables next to the paper's published numbers.

Usage::

    python tools/reproduce_paper2.py --arch resnet18 --dataset cifar10 --epochs 100
    python tools/reproduce_paper2.py --arch densenet121 --dataset cifar100 --epochs 20 --eval-limit 1000
    python tools/reproduce_paper2.py --smoke --out /tmp/paper2-smoke   # the whole pipeline in a minute
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402  (the tools folder, on the path above)
from tfadv.training.runs import runs_table  # noqa: E402

ARCHS = ("resnet18", "preact_resnet18", "densenet121")
DATASETS = ("cifar10", "cifar100")
EPOCHS = (20, 100)
METHODS = ("bn", "advprop", "robmask")
TRADEOFF_EPS = 8 / 255
STAGES = 3

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


def experiment_configs(args, settings):
    """The three runs as ``ExperimentConfig``s, by method."""
    common = _common.data_overrides(args, settings["source"])
    user = (SMOKE_OVERRIDES if args.smoke else []) + list(args.overrides)
    configs = {}
    for method in METHODS:
        overrides = list(common)
        if args.smoke and method == "advprop":
            overrides.append("method.attack.steps=2")
        path = _common.config_path("paper2", f"{args.arch}_{args.dataset}_{method}_{args.epochs}ep.yaml")
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


def sweep_comparison(results, published, args):
    """The ε sweep in the Tables 5/6 layout, ours beside the published numbers (markdown)."""
    from tfadv.evaluation import sweep_table

    table = published["tables"]["sweep"]
    ours = sweep_table(results)
    by_model = {row[0].split(" (p=")[0]: row[1:] for row in ours.rows}
    rows = []
    for method in METHODS:
        label = method if method == "bn" else f"{method} (p={args.p:g})"
        key = f"{args.dataset}/{args.arch}/{args.epochs}ep/{method}"
        values = [None if v is None else 100 * v for v in by_model[method]]
        rows.append((label, values, _common.published_row(table, key)))
    return [f"### {ours.title.split(' — ')[0]} (Tables 5/6 layout)", "",
            _common.comparison_table(ours.header[1:], rows, "percent"), "", _common.source_line(table), ""]


def write_report(path, args, settings, configs, runs, results, published, seconds):
    from tfadv.evaluation import tradeoff_tables

    root = os.path.dirname(path)
    epochs = ", ".join(f"{m} {configs[m].train.epochs}" for m in METHODS)
    lines = [
        f"# Paper 2 reproduction: {args.arch} on {args.dataset}, {args.epochs} epochs", "",
        f"Paper: {_common.paper_citation(published)}.", "",
        f"Data `{settings['source']}`; model `{configs['bn'].model.name}`; epochs: {epochs}. "
        f"Scale: {_common.scale_note(args, epochs)}. Evaluated on {results['dataset']['num_examples']} "
        f"test images. Total time of this call {seconds / 60:.1f} min. Every run folder holds its "
        "resolved `config.yaml`.", "",
        "## Runs", "", runs_table([runs[m] for m in METHODS], root), "",
        "## Accuracy under PGD over ε", "",
    ]
    lines += sweep_comparison(results, published, args)
    lines += ["![accuracy vs ε](eval/accuracy_vs_eps.png)", "",
              "## The trade-off over the masking strength p", "",
              "Clean and robust accuracy of the conditioned models at each p (RobMask: ε = p · 8/255 "
              "masking; AdvProp: outputs of the main and auxiliary BN mixed linearly). Published numbers "
              f"for this curve: {_common.NOT_FOUND}.", ""]
    for table in tradeoff_tables(results):
        lines += [table.markdown().replace("### ", "#### ", 1), ""]
    if "tradeoff.png" in results.get("figures", []):
        lines += ["![trade-off](eval/tradeoff.png)", ""]
    lines += ["Every number with its settings: [eval/eval.json](eval/eval.json) and "
              "[eval/eval.md](eval/eval.md).", ""]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def run(args):
    from tfadv.evaluation import evaluate
    from tfadv.training.runs import write_json

    settings = settings_from(args)
    published = _common.load_published("paper2")
    progress = _common.Progress("paper2", STAGES)
    configs = experiment_configs(args, settings)
    os.makedirs(args.out, exist_ok=True)

    progress.stage(1, "train", f"training BN, AdvProp and RobMask ({configs['bn'].model.name}) "
                   f"on {settings['source']!r} → {args.out}")
    runs = {method: _common.train(configs[method], progress) for method in METHODS}

    x_test, y_test = _common.test_arrays(configs["bn"].data, settings["eval_limit"])
    eval_dir = os.path.join(args.out, "eval")
    sweep, tradeoff_attack = sweep_attacks(settings["sweep_steps"])
    progress.stage(2, "evaluate", f"PGD-{settings['sweep_steps']} ε sweep and the trade-off over p "
                   f"{settings['p_grid']} on {len(y_test)} test images → {eval_dir}")
    results = evaluate(
        {method: runs[method].run_dir for method in METHODS}, x_test, y_test,
        sweep=sweep, p_grid=settings["p_grid"], tradeoff_attack=tradeoff_attack, p=args.p,
        out_dir=eval_dir, batch_size=args.eval_batch_size,
        dataset=f"{settings['source']}[test][:{len(y_test)}]")

    report = os.path.join(args.out, "report.md")
    progress.stage(3, "report", f"writing {report}")
    seconds = progress.done()
    write_report(report, args, settings, configs, runs, results, published, seconds)
    write_json(os.path.join(args.out, "summary.json"), {
        "paper": "Adversarial Masking (OpenReview LNtTXJ9XXr)", "arch": args.arch, "dataset": args.dataset,
        "epochs": args.epochs, "seconds": seconds, "stage_seconds": progress.seconds,
        "runs": {method: runs[method].run_dir for method in METHODS}, "eval": eval_dir,
    })
    print(f"[paper2] done in {seconds / 60:.1f} min: {report}", flush=True)
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
