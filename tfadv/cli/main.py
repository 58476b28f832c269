"""The ``tfadv`` command: train, eval, landscape, export, tune, quickstart, bench, inspect,
plot-history.

Each subcommand lives in its own module with ``add_parser(subparsers)`` and
``run(args)``. User errors (bad config, bad value, missing data, a folder in use)
print one line and exit with code 2; numerical failures (training diverged, a
model returning NaN logits) print one line and exit with code 3; a lost worker of a
multi-worker run prints one line naming it and exits with code 4; nothing
imports this package.
"""
import argparse
import importlib
import re
import sys

COMMANDS = ("train", "eval", "landscape", "export", "tune", "quickstart", "bench", "inspect",
            "plot-history")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="tfadv",
        description="Adversarial-robustness research for TensorFlow / Keras.",
    )
    parser.add_argument("--version", action="store_true", help="print versions and exit")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"tfadv.cli.{name.replace('-', '_')}_cmd").add_parser(subparsers)
    return parser


def _user_error_types():
    from tfadv._files import FolderLockedError
    from tfadv.config import ConfigError
    from tfadv.data import DatasetNotFoundError

    return (ConfigError, DatasetNotFoundError, ValueError, FileNotFoundError, NotImplementedError,
            FolderLockedError)


NUMERICAL_ERROR_EXIT = 3
"""Exit code when numbers went bad: training diverged (NaN/inf loss), a model gave NaN logits."""


LOST_WORKER_EXIT = 4
"""Exit code when another worker of a multi-worker run was lost (killed, crashed, unreachable)."""


def _numerical_error_types():
    from tfadv.evaluation.runner import NonFiniteLogitsError
    from tfadv.training.divergence import TrainingDiverged

    return (TrainingDiverged, NonFiniteLogitsError)


def _lost_worker_types():
    from tfadv.training.distribute import WorkerLost

    return (WorkerLost,)


def _join_negative_values(argv):
    """``--grid -1:1:51`` → ``--grid=-1:1:51``: argparse would read "-1:1:51" as an option."""
    joined = []
    for token in argv:
        if (joined and joined[-1].startswith("--") and "=" not in joined[-1]
                and re.match(r"^-\d", token)):
            joined[-1] = f"{joined[-1]}={token}"
        else:
            joined.append(token)
    return joined


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(_join_negative_values(sys.argv[1:] if argv is None else list(argv)))
    if args.version:
        import tensorflow as tf

        import tfadv

        print(f"tfadv {tfadv.__version__} (TensorFlow {tf.__version__})")
        return 0
    if not args.command:
        parser.print_help()
        return 2
    try:
        return args.run(args) or 0
    except KeyboardInterrupt:
        print("tfadv: interrupted; finished work is saved, run the same command to continue.",
              file=sys.stderr)
        return 130
    except _user_error_types() as err:
        print(f"tfadv {args.command}: error: {err}", file=sys.stderr)
        return 2
    except _numerical_error_types() as err:
        print(f"tfadv {args.command}: error: {err}", file=sys.stderr)
        return NUMERICAL_ERROR_EXIT
    except _lost_worker_types() as err:
        print(f"tfadv {args.command}: error: {err}", file=sys.stderr)
        return LOST_WORKER_EXIT


if __name__ == "__main__":
    sys.exit(main())
