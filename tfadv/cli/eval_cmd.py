"""tfadv eval: Robustness evaluation (tfadv eval) — arrives with issue #5."""
from tfadv.cli.common import not_yet


def add_parser(subparsers):
    parser = subparsers.add_parser("eval", help="Robustness evaluation (tfadv eval) (not available yet)")
    parser.add_argument("args", nargs="*")
    parser.set_defaults(run=not_yet(5, "Robustness evaluation (tfadv eval)"))
