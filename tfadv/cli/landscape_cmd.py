"""tfadv landscape MODEL...: filter-normalized loss surfaces, plots and sharpness."""
import argparse
import json
import os

from tfadv.cli.common import add_data_arguments, resolve_data_source


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "landscape", help="loss-landscape surfaces, plots and Hessian sharpness",
        description="Compute each MODEL's loss surface along filter-normalized random directions "
        "(Li et al. 2018) into OUT/<model name>/surface.h5 with plots and sharpness; the same "
        "command on the same --out resumes. Several models also get a comparison figure. "
        "With --shard I/N only every N-th grid point is computed (into "
        "OUT/<model>/surface.shard-I-of-N.h5); 'tfadv landscape merge OUT/<model>' then "
        "combines the complete shards into surface.h5 with plots and sharpness.",
    )
    parser.add_argument("models", nargs="+", metavar="MODEL",
                        help="run folder or .keras file; or 'merge OUT/<model>' to combine shards")
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
    parser.add_argument("--shard", default=None, metavar="I/N|auto|auto/N",
                        help="compute only the grid points whose flat index %% N == I (one job of N; "
                        "merge with 'tfadv landscape merge OUT/<model>'). 'auto' reads I and N from a "
                        "Slurm array job (SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT); 'auto/N' also "
                        "from a Kubernetes Indexed Job (JOB_COMPLETION_INDEX, N = completions)")
    add_data_arguments(parser)
    parser.set_defaults(run=run)


# The flags a shard records so that `landscape merge` can finish with the same settings.
_SHARD_COMMAND_KEYS = ("dim", "grid", "ygrid", "examples", "split", "norm", "ignore", "mode", "seed",
                       "same_dir", "interpolate_to", "pca_checkpoints", "attack", "eps", "p",
                       "hessian_top_k", "hutchinson_samples", "batch_size", "no_plots")


def _command_file(folder, shard):
    return os.path.join(folder, "command.shard-{}-of-{}.json".format(*shard))


def _write_shard_command(args, model_path, folder, source, data_dir, shard):
    """What `landscape merge` needs to finish the job: the model, the data and every flag."""
    flags = {key: getattr(args, key) for key in _SHARD_COMMAND_KEYS}
    if flags["interpolate_to"]:
        flags["interpolate_to"] = os.path.abspath(flags["interpolate_to"])
    if flags["pca_checkpoints"]:
        flags["pca_checkpoints"] = [os.path.abspath(c) for c in flags["pca_checkpoints"]]
    record = {"model": os.path.abspath(model_path), "data": source, "data_dir": data_dir,
              "shard": list(shard), "flags": flags}
    from tfadv._files import atomic_write_json

    os.makedirs(folder, exist_ok=True)
    atomic_write_json(_command_file(folder, shard), record, sort_keys=True)


def merge(folder):
    """``tfadv landscape merge OUT/<model>``: shards → surface.h5, then plots and sharpness."""
    from tfadv.landscape.shards import find_shards, merge_surface_shards

    folder = os.path.normpath(folder)
    path = merge_surface_shards(folder)  # refuses missing, incomplete or mismatched shards
    commands = {}
    for shard in find_shards(folder):
        try:
            with open(_command_file(folder, shard), encoding="utf-8") as handle:
                commands[shard] = json.load(handle)
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"{_command_file(folder, shard)} is missing or unreadable ({error}); "
                             "rerun that shard's command, then merge.") from error
    first = next(iter(commands.values()))
    for shard, command in commands.items():
        differing = sorted(k for k in set(first) | set(command) if k != "shard" and first.get(k) != command.get(k))
        if differing:
            raise ValueError(f"{_command_file(folder, shard)} differs from the other shards' command "
                             f"({', '.join(differing)}); refusing to merge.")
    print(f"[landscape] merged {len(commands)} shards into {path}")
    args = argparse.Namespace(**first["flags"], models=[first["model"]], data=first["data"],
                              data_dir=first["data_dir"], out=os.path.dirname(folder) or ".", shard=None)
    return run(args, folder_names=[os.path.basename(folder)])


def run(args, folder_names=None):
    from tfadv import landscape
    from tfadv._files import FolderLock
    from tfadv.data import check_model_data, load_arrays
    from tfadv.landscape.shards import resolve_shard
    from tfadv.models import load_model

    if args.models[0] == "merge":
        if len(args.models) != 2:
            raise ValueError(f"merge takes one landscape folder, OUT/<model>. Received: {args.models[1:]}")
        return merge(args.models[1])
    shard = None if args.shard is None else resolve_shard(args.shard, "--shard")
    source, data_dir = resolve_data_source(args, args.models)
    x, y = load_arrays(source, args.split, data_dir)
    attack = None if args.attack is None else {"name": args.attack, "eps": args.eps}
    other = load_model(args.interpolate_to) if args.interpolate_to else None
    loaded = {path: load_model(path) for path in args.models}
    for path, model in loaded.items():  # every model fits the data before any surface is computed
        check_model_data(model, x, y, f"{source} ({args.split})", f"model {path!r}")
    # One command per output folder; the shards of one sweep run side by side, each in its own lock.
    lock_folder = args.out if shard is None else os.path.join(args.out, ".shard-{}-of-{}".format(*shard))
    os.makedirs(lock_folder, exist_ok=True)
    with FolderLock(lock_folder, "tfadv landscape"):
        return _run_locked(args, landscape, loaded, other, attack, x, y, source, data_dir, shard,
                           folder_names)


def _run_locked(args, landscape, loaded, other, attack, x, y, source, data_dir, shard, folder_names):
    from tfadv.models import model_display_name

    surfaces, names = [], []
    for number, path in enumerate(args.models):
        name = folder_names[number] if folder_names else model_display_name(path)
        print(f"[landscape] {name}: {args.dim}-D grid {args.grid} on {min(args.examples, len(x))} "
              f"{args.split} examples of {source!r}" + ("" if shard is None else " (shard {}/{})".format(*shard)))
        if shard is not None:
            _write_shard_command(args, path, os.path.join(args.out, name), source, data_dir, shard)
        result = landscape.run_landscape(
            loaded[path], x, y, args.out, name=name, dim=args.dim, grid=args.grid,
            ygrid=args.ygrid, examples=min(args.examples, len(x)), batch_size=args.batch_size,
            norm=args.norm, ignore=args.ignore, mode=args.mode, seed=args.seed,
            same_dir=args.same_dir, other_model=other, checkpoints=args.pca_checkpoints, p=args.p,
            attack=attack, split=args.split,
            hessian_top_k=args.hessian_top_k, hutchinson_samples=args.hutchinson_samples,
            plots=not args.no_plots, shard=shard,
        )
        surfaces.append(result["surface"])
        names.append(name)
        print(f"[landscape] {name}: {result['dir']}")
    if len(surfaces) > 1 and not args.no_plots and shard is None:
        figure = landscape.compare_figure(surfaces, names, os.path.join(args.out, "comparison.png"))
        print(f"[landscape] comparison figure: {figure}")
    return 0
