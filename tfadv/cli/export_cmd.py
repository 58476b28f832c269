"""tfadv export: SavedModel export (tfadv export) — arrives with issue #7."""
from tfadv.cli.common import not_yet


def add_parser(subparsers):
    parser = subparsers.add_parser("export", help="SavedModel export (tfadv export) (not available yet)")
    parser.add_argument("args", nargs="*")
    parser.set_defaults(run=not_yet(7, "SavedModel export (tfadv export)"))
