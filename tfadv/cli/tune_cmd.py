"""tfadv tune: Tuning eps_max (tfadv tune) — arrives with issue #8."""
from tfadv.cli.common import not_yet


def add_parser(subparsers):
    parser = subparsers.add_parser("tune", help="Tuning eps_max (tfadv tune) (not available yet)")
    parser.add_argument("args", nargs="*")
    parser.set_defaults(run=not_yet(8, "Tuning eps_max (tfadv tune)"))
