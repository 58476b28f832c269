"""tfadv quickstart: both papers, shortened, on the embedded digits, in minutes on 2 CPU cores.

A profile of the experiment pipeline (``tfadv.experiments.quickstart_experiment``):
train → evaluate → landscape → export → report, each stage resumable, so
running the command again skips finished work.
"""
import os
import shutil


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "quickstart", help="the whole mission on the embedded digits (minutes on CPU)",
        description="Train, fine-tune, evaluate, map the loss landscapes of and export models on "
        "the embedded digits (or --data FILE.npz), writing runs/quickstart/report.md. "
        "Re-running resumes; --overwrite starts again.",
    )
    parser.add_argument("--data", default="digits", help="dataset source (default: digits; or an .npz with x, y)")
    parser.add_argument("--out", default="runs", help="parent folder of runs/quickstart (default: runs)")
    parser.add_argument("--export-dir", default="export", help="where the SavedModel goes (default: export)")
    parser.add_argument("--epochs", type=int, default=6, help="clean training epochs (default: 6)")
    parser.add_argument("--eval-limit", type=int, default=200, help="test images evaluated (default: 200)")
    parser.add_argument("--overwrite", action="store_true", help="start again instead of resuming")
    parser.set_defaults(run=run)


def run(args):
    from tfadv.experiments import quickstart_experiment, run_experiment

    experiment = quickstart_experiment(data=args.data, out=args.out, export_dir=args.export_dir,
                                       epochs=args.epochs, eval_limit=args.eval_limit)
    if args.overwrite and os.path.isdir(experiment.out_dir):
        shutil.rmtree(experiment.out_dir)
    run_experiment(experiment)
    return 0
