"""tfadv inspect bn|masks: paper 2's BN anatomy (Figure 1) and masking picture (Figure 4)."""
import os

from tfadv.cli.common import add_data_arguments, resolve_data_source


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "inspect", help="BN anatomy (paper 2 Fig. 1) and masking maps (Fig. 4) of trained models",
        description="Look inside the batch normalizations of trained models.",
    )
    kinds = parser.add_subparsers(dest="inspect_kind", metavar="KIND", required=True)

    bn = kinds.add_parser(
        "bn", help="per-channel running mean/variance, γ, β of two models, and their relative change",
        description="Plot, per channel, the running mean, running variance, γ and β of the same BN "
        "layers of MODEL_A and MODEL_B (paper 2, Figure 1: an adversarially trained model before "
        "and after BN-only clean fine-tuning), and write the relative change "
        "||B − A|| / ||A|| of each per layer to bn_changes.md / bn_changes.json.",
    )
    bn.add_argument("model_a", metavar="MODEL_A", help="run folder or .keras file")
    bn.add_argument("model_b", metavar="MODEL_B", help="run folder or .keras file")
    bn.add_argument("--layers", nargs="+", default=["first"], metavar="LAYER",
                    help="'first' (default), 'all', or BN layer names")
    bn.add_argument("--p-a", default="0", help="masking of MODEL_A: RobMask p, or main/aux for dual BN")
    bn.add_argument("--p-b", default="0", help="masking of MODEL_B (as --p-a)")
    bn.add_argument("--out", default=None, help="output folder (default runs/inspect/bn_<A>_vs_<B>)")
    bn.set_defaults(run=run_bn)

    masks = kinds.add_parser(
        "masks", help="feature maps after BN + ReLU under two maskings; blocked and magnified maps",
        description="Show the feature maps after a BN + ReLU for two maskings side by side (paper "
        "2, Figure 4): a RobMask model at two p, a dual-BN model's main and aux branch (p 0 and 1), "
        "or two models (MODEL and --model-b). Writes masks.png and, per BN → ReLU layer, the "
        "fraction of blocked maps and the mean magnification to masks.json.",
    )
    masks.add_argument("model", metavar="MODEL", help="run folder or .keras file")
    masks.add_argument("--model-b", default=None, metavar="MODEL_B",
                       help="second model of the same architecture (default: MODEL)")
    masks.add_argument("--p", default="0,1", help="the two maskings A,B (default 0,1; main/aux accepted)")
    masks.add_argument("--images", type=int, default=4, help="test images shown (default 4)")
    masks.add_argument("--stats-images", type=int, default=256,
                       help="test images the statistics average over (default 256)")
    masks.add_argument("--layer", default="first", help="BN layer drawn (default: the first)")
    masks.add_argument("--channels", type=int, default=16, help="channels drawn per map row")
    masks.add_argument("--magnify-threshold", type=float, default=1.5,
                       help="mean(B)/mean(A) above which a map counts as magnified")
    masks.add_argument("--out", default=None, help="output folder (default runs/inspect/masks_<model>)")
    add_data_arguments(masks)
    masks.set_defaults(run=run_masks)


def _write_json(path, payload):
    from tfadv._files import atomic_write_json

    atomic_write_json(path, payload, allow_nan=True)


def _layers_argument(values):
    return values[0] if len(values) == 1 and values[0] in ("first", "all") else values


def run_bn(args):
    from tfadv.analysis import bn_anatomy
    from tfadv.models import load_model, model_display_name

    name_a, name_b = model_display_name(args.model_a), model_display_name(args.model_b)
    p_a, p_b = bn_anatomy.masking_strength(args.p_a), bn_anatomy.masking_strength(args.p_b)
    rows = bn_anatomy.compare_bn(load_model(args.model_a), load_model(args.model_b),
                                 layers=_layers_argument(args.layers), p_a=p_a, p_b=p_b)
    out = args.out or os.path.join("runs", "inspect", f"bn_{name_a}_vs_{name_b}")
    os.makedirs(out, exist_ok=True)
    label_a, label_b = f"A: {name_a} (p={p_a:g})", f"B: {name_b} (p={p_b:g})"
    for row in rows:
        bn_anatomy.plot_bn_layer(row, os.path.join(out, f"bn_{row['layer']}.png"), label_a, label_b)
    if len(rows) > 1:
        bn_anatomy.plot_changes_by_depth(rows, os.path.join(out, "bn_changes_by_depth.png"))
    table = bn_anatomy.changes_table(rows, "A", "B")
    from tfadv._files import atomic_write_text

    atomic_write_text(os.path.join(out, "bn_changes.md"),
                      f"# BN anatomy\n\nA = {args.model_a} at p={p_a:g}; B = {args.model_b} at p={p_b:g}\n\n" + table)
    _write_json(os.path.join(out, "bn_changes.json"), {
        "settings": {"model_a": args.model_a, "model_b": args.model_b, "p_a": p_a, "p_b": p_b,
                     "layers": args.layers},
        "layers": [{key: value for key, value in row.items() if key != "values"} for row in rows],
    })
    print(table)
    print(f"[inspect bn] wrote {out}/bn_changes.md, bn_changes.json and {len(rows)} plot(s)")
    return 0


def run_masks(args):
    import numpy as np

    from tfadv.analysis import bn_anatomy, masks
    from tfadv.data import load_arrays
    from tfadv.models import load_model, model_display_name

    maskings = [part for part in args.p.split(",") if part.strip()]
    if len(maskings) != 2:
        raise ValueError(f"--p takes two maskings A,B such as 0,1 or main,aux. Received: --p {args.p!r}")
    p_a, p_b = (bn_anatomy.masking_strength(value) for value in maskings)
    if args.images < 1 or args.stats_images < args.images:
        raise ValueError("--images must be >= 1 and --stats-images >= --images. "
                         f"Received: --images {args.images}, --stats-images {args.stats_images}")
    model_a = load_model(args.model)
    model_b = load_model(args.model_b) if args.model_b else model_a
    source, data_dir = resolve_data_source(args, [args.model])
    x, _ = load_arrays(source, "test", data_dir)
    x = x[:args.stats_images]
    rows, features = masks.compare_masks(model_a, x, p_a=p_a, p_b=p_b, model_b=model_b,
                                         layers="all", magnify_threshold=args.magnify_threshold)
    drawn = masks._select(masks.masking_pairs(model_a), args.layer)[0][0].name
    row = next(row for row in rows if row["layer"] == drawn)
    name = model_display_name(args.model)
    out = args.out or os.path.join("runs", "inspect", f"masks_{name}")
    os.makedirs(out, exist_ok=True)
    label_b = f"{model_display_name(args.model_b) if args.model_b else name} p={p_b:g}"
    a, b = features[drawn]
    masks.plot_masks(x[:args.images], a[:args.images], b[:args.images],
                     {**row, "_blocked_b": row["_blocked_b"][:args.images],
                      "_ratio": row["_ratio"][:args.images]},
                     os.path.join(out, "masks.png"), label_a=f"{name} p={p_a:g}", label_b=label_b,
                     max_channels=args.channels)
    _write_json(os.path.join(out, "masks.json"), {
        "settings": {"model": args.model, "model_b": args.model_b, "p_a": p_a, "p_b": p_b,
                     "data": source, "images": int(len(x)), "drawn_layer": drawn,
                     "magnify_threshold": args.magnify_threshold},
        "layers": masks.public_rows(rows),
    })
    print("| layer | channels | blocked A | blocked B | newly blocked | magnified | mean magnification |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['layer']} | {r['channels']} | {r['blocked_a']:.3f} | {r['blocked_b']:.3f} | "
              f"{r['newly_blocked']:.3f} | {r['magnified']:.3f} | {np.nan_to_num(r['mean_magnification']):.3f} |")
    print(f"[inspect masks] wrote {out}/masks.png and masks.json")
    return 0
