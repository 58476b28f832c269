"""tfadv landscape MODEL...: filter-normalized loss surfaces, plots and sharpness."""
import os

from tfadv.cli.common import add_data_arguments, resolve_data_source


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "landscape", help="loss-landscape surfaces, plots and Hessian sharpness",
        description="Compute each MODEL's loss surface along filter-normalized random directions "
        "(Li et al. 2018) into OUT/<model name>/surface.h5 with plots and sharpness; the same "
        "command on the same --out resumes. Several models also get a comparison figure.",
    )
    parser.add_argument("models", nargs="+", metavar="MODEL", help="run folder or .keras file")
    parser.add_argument("--dim", type=int, default=2, choices=(1, 2))
    parser.add_argument("--grid", default="-1:1:51", help="min:max:num for α (and β unless --ygrid)")
    parser.add_argument("--ygrid", default=None, help="min:max:num for β")
    parser.add_argument("--examples", type=int, default=5000, help="examples the loss is averaged over")
    parser.add_argument("--split", default="train", choices=("train", "test"))
    parser.add_argument("--norm", default="filter", choices=("filter", "layer", "none"))
    parser.add_argument("--ignore", default="biasbn", choices=("biasbn", "none"))
    parser.add_argument("--mode", default="weights", choices=("weights", "states"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--same-dir", action="store_true", help="use the same direction twice")
    parser.add_argument("--interpolate-to", default=None, metavar="MODEL",
                        help="1-D path from MODEL to this model instead of random directions")
    parser.add_argument("--pca-checkpoints", nargs="+", default=None, metavar="CHECKPOINT",
                        help="2-D PCA directions of this training trajectory (.keras or .weights.h5 "
                        "files) instead of random directions")
    parser.add_argument("--attack", default=None, choices=("fgsm", "pgd"),
                        help="adversarial loss surface: the loss under this attack at each point")
    parser.add_argument("--eps", type=float, default=8 / 255, help="attack strength (pixel units)")
    parser.add_argument("--p", type=float, default=0.0, help="masking strength of conditioned models")
    parser.add_argument("--hessian-top-k", type=int, default=1)
    parser.add_argument("--hutchinson-samples", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--out", default="runs/landscapes")
    add_data_arguments(parser)
    parser.set_defaults(run=run)


def run(args):
    from tfadv import landscape
    from tfadv._files import FolderLock
    from tfadv.models import load_model
    from tfadv.data import check_model_data, load_arrays

    source, data_dir = resolve_data_source(args, args.models)
    x, y = load_arrays(source, args.split, data_dir)
    attack = None if args.attack is None else {"name": args.attack, "eps": args.eps}
    other = load_model(args.interpolate_to) if args.interpolate_to else None
    loaded = {path: load_model(path) for path in args.models}
    for path, model in loaded.items():  # every model fits the data before any surface is computed
        check_model_data(model, x, y, f"{source} ({args.split})", f"model {path!r}")
    with FolderLock(args.out, "tfadv landscape"):  # one landscape command per output folder
        return _run_locked(args, landscape, loaded, other, attack, x, y, source)


def _run_locked(args, landscape, loaded, other, attack, x, y, source):
    from tfadv.models import model_display_name

    surfaces, names = [], []
    for path in args.models:
        name = model_display_name(path)
        print(f"[landscape] {name}: {args.dim}-D grid {args.grid} on {min(args.examples, len(x))} "
              f"{args.split} examples of {source!r}")
        result = landscape.run_landscape(
            loaded[path], x, y, args.out, name=name, dim=args.dim, grid=args.grid,
            ygrid=args.ygrid, examples=min(args.examples, len(x)), batch_size=args.batch_size,
            norm=args.norm, ignore=args.ignore, mode=args.mode, seed=args.seed,
            same_dir=args.same_dir, other_model=other, checkpoints=args.pca_checkpoints, p=args.p, attack=attack, split=args.split,
            hessian_top_k=args.hessian_top_k, hutchinson_samples=args.hutchinson_samples,
            plots=not args.no_plots,
        )
        surfaces.append(result["surface"])
        names.append(name)
        print(f"[landscape] {name}: {result['dir']}")
    if len(surfaces) > 1 and not args.no_plots:
        figure = landscape.compare_figure(surfaces, names, os.path.join(args.out, "comparison.png"))
        print(f"[landscape] comparison figure: {figure}")
    return 0
