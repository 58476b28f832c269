"""Arguments several subcommands share."""


def add_config_arguments(parser, required=True):
    parser.add_argument("config", nargs=None if required else "?", help="experiment YAML (see configs/)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
        help="override a config key, e.g. --set train.epochs=3 (repeatable)",
    )


def run_data_config(path):
    """The ``data`` section of the run a model came from, when it has a config.yaml."""
    import os

    import yaml

    folder = path if os.path.isdir(path) else os.path.dirname(path)
    config_path = os.path.join(folder, "config.yaml")
    if not os.path.isfile(config_path):
        return {}
    with open(config_path, encoding="utf-8") as handle:
        return (yaml.safe_load(handle) or {}).get("data") or {}


def add_data_arguments(parser):
    parser.add_argument(
        "--data", default=None,
        help="dataset source (digits, cifar10, cifar100, a CIFAR archive or an .npz); "
        "default: the model's run config, else digits",
    )
    parser.add_argument("--data-dir", default=None, help="tensorflow-datasets data_dir")


def resolve_data_source(args, model_paths):
    """``--data``, else the first model's run config, else the embedded digits."""
    if args.data:
        return args.data, args.data_dir
    for path in model_paths:
        section = run_data_config(path)
        if section.get("source"):
            return section["source"], args.data_dir or section.get("data_dir")
    return "digits", args.data_dir
