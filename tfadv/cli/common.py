"""Arguments several subcommands share."""


def add_config_arguments(parser, required=True):
    parser.add_argument("config", nargs=None if required else "?", help="experiment YAML (see configs/)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
        help="override a config key, e.g. --set train.epochs=3 (repeatable)",
    )


def not_yet(issue, what):
    """For subcommands whose capability is not built yet: say so, exit 2."""

    def run(args):
        raise NotImplementedError(f"{what} is not available yet (issue #{issue}).")

    return run
