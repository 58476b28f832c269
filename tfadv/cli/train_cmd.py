"""tfadv train CONFIG: train (or resume) the experiment a YAML config describes."""
from tfadv.cli.common import add_config_arguments


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "train", help="train or resume an experiment",
        description="Train the experiment CONFIG describes into runs/<name>/; "
        "running the same command again resumes from the last completed epoch.",
    )
    add_config_arguments(parser)
    parser.add_argument("--overwrite", action="store_true", help="delete an existing run folder first")
    parser.set_defaults(run=run)


def run(args):
    from tfadv.config import load_config
    from tfadv.training import train_from_config

    config = load_config(args.config, args.overrides)
    result = train_from_config(config, overwrite=args.overwrite)
    final = result.history[-1] if result.history else {}
    summary = ", ".join(f"{k}={float(v):.4f}" for k, v in final.items() if k != "epoch")
    print(f"run folder: {result.run_dir}  ({len(result.history)} epochs; {summary})")
    return 0
