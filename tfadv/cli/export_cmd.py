"""tfadv export MODEL --out export/NAME: a SavedModel with a selectable masking signature."""
import os



def add_parser(subparsers):
    parser = subparsers.add_parser(
        "export", help="SavedModel with serving_default, serve_tradeoff and serve_maskings",
        description="Export a run folder or .keras model as a TensorFlow SavedModel (written to a "
        "temporary folder and renamed into place). Conditioned models (RobMask, masking "
        "interpolation, AdvProp) also get serve_tradeoff (images + scalar p) and serve_maskings. "
        "See export/README.md.",
    )
    parser.add_argument("model", metavar="MODEL", help="run folder or .keras file")
    parser.add_argument("--out", default=None, help="export folder (default: export/<model name>)")
    parser.add_argument("--default-p", type=float, default=0.0,
                        help="masking strength of serving_default (default 0: clean masking)")
    parser.add_argument("--uint8", action="store_true", help="take uint8 images 0..255 (scaled in the graph)")
    parser.add_argument("--masking", action="append", default=[], metavar="NAME=P",
                        help="a named masking of serve_maskings (repeatable; default clean=0, robust=1)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing export atomically")
    parser.set_defaults(run=run)


def parse_maskings(items):
    maskings = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            maskings[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise ValueError(f"--masking expects NAME=P with P in [0, 1]. Received: {item!r}")
    return maskings or None


def run(args):
    from tfadv.export import export_model, summary_lines
    from tfadv.models import model_display_name

    out = args.out or os.path.join("export", model_display_name(args.model))
    record = export_model(
        args.model, out, default_p=args.default_p, uint8=args.uint8,
        maskings=parse_maskings(args.masking), overwrite=args.overwrite,
    )
    print("\n".join(summary_lines(record)))
    return 0
