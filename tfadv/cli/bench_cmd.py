"""tfadv bench: The benchmark suite (tfadv bench) — arrives with issue #9."""
from tfadv.cli.common import not_yet


def add_parser(subparsers):
    parser = subparsers.add_parser("bench", help="The benchmark suite (tfadv bench) (not available yet)")
    parser.add_argument("args", nargs="*")
    parser.set_defaults(run=not_yet(9, "The benchmark suite (tfadv bench)"))
