"""tfadv landscape: Loss landscapes (tfadv landscape) — arrives with issue #6."""
from tfadv.cli.common import not_yet


def add_parser(subparsers):
    parser = subparsers.add_parser("landscape", help="Loss landscapes (tfadv landscape) (not available yet)")
    parser.add_argument("args", nargs="*")
    parser.set_defaults(run=not_yet(6, "Loss landscapes (tfadv landscape)"))
