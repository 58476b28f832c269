"""tfadv tune CONFIG: keras-tuner search over ε_max (resumable)."""
from tfadv.cli.common import add_config_arguments


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "tune", help="keras-tuner search over eps_max",
        description="Search eps_max (and optionally the learning rate and RobMask's k) for the "
        "experiment CONFIG with the tuner and objective of its `tune` section, in "
        "runs/<name>/tuning/. Running the same command again resumes the search.",
    )
    add_config_arguments(parser)
    parser.add_argument("--overwrite", action="store_true", help="start the search again")
    parser.set_defaults(run=run)


def run(args):
    from tfadv.config import load_config
    from tfadv.tuning import run_tuning

    config = load_config(args.config, args.overrides)
    result = run_tuning(config, overwrite=args.overwrite)
    print(f"best eps_max: {result['best_eps_max_255']:g}/255 ({result['objective']} = "
          f"{result['best_objective']:.4f}, trial {result['best_trial']})")
    print(f"summary: {result['summary_md']}\nplot: {result['plot']}\nbest model: {result['best_model']}")
    return 0
