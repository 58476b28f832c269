"""tfadv plot-history RUN...: one metric per epoch of several runs (paper 2, Figure 3)."""
import os


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "plot-history", help="training curves of several runs on one plot",
        description="Plot one column of each RUN's history.csv against the epoch (paper 2, "
        "Figure 3 compares the validation accuracy of BN, AdvProp and RobMask).",
    )
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run folders (or history.csv files)")
    parser.add_argument("--metric", default="val_accuracy",
                        help="history column (default val_accuracy; e.g. val_robust_accuracy, loss)")
    parser.add_argument("--labels", default=None, help="comma-separated legend labels, one per run")
    parser.add_argument("--title", default=None)
    parser.add_argument("--out", default=None, help="PNG file (default runs/history_<metric>.png)")
    parser.set_defaults(run=run)


def run(args):
    from tfadv.analysis import plot_histories

    labels = [label.strip() for label in args.labels.split(",")] if args.labels else None
    out = args.out or os.path.join("runs", f"history_{args.metric}.png")
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    curves = plot_histories(args.runs, out, metric=args.metric, labels=labels, title=args.title)
    for label, (epochs, values) in curves.items():
        print(f"{label}: {len(epochs)} epochs, last {args.metric} = {values[-1]:.4f}")
    print(f"[plot-history] wrote {out}")
    return 0
