"""tfadv eval MODEL...: the papers' robustness tables, plots and the worst case over attacks."""
import os

from tfadv.cli.common import add_data_arguments, resolve_data_source

DEFAULT_P_GRID = "0,0.25,0.5,0.75,1"


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "eval", help="robustness tables (clean, FGSM, PGD, stAdv, APGD), 1 − SSIM, ε sweeps, trade-off",
        description="Evaluate run folders, .keras files or SavedModels on a test split; writes "
        "OUT/eval.json, OUT/eval.md and PNG plots. Finished parts are skipped on a re-run "
        "unless --force. With --shard I/N only block I of N of the test examples is evaluated "
        "(into OUT/shard-I-of-N/); 'tfadv eval merge OUT' then writes OUT/eval.json and eval.md "
        "as one unsharded run would.",
    )
    parser.add_argument("models", nargs="+", metavar="MODEL",
                        help="run folder, .keras file or SavedModel; or 'merge OUT' to combine shards")
    parser.add_argument(
        "--preset", action="append", default=None,
        choices=("paper1_table1", "paper1_table2", "paper2_sweep", "strong", "autoattack", "paper2_table6"),
        help="attack set (repeatable): paper1_table1 (default; clean, FGSM 8/255, PGD-10 1/255, "
        "stAdv, with Table 2's 1 − SSIM), paper2_sweep (PGD-100, ε 0..8/255), strong (APGD-CE/DLR), "
        "autoattack (AutoAttack standard, ε 8/255), paper2_table6 (PGD-100 and AutoAttack, ε 0..8/255)",
    )
    parser.add_argument(
        "--attack", action="append", default=[], metavar="NAME[:KEY=VALUE,...]",
        help="an extra attack, e.g. pgd:eps=8/255,steps=20, apgd-ce:eps=4/255 or autoattack:eps=2/255 "
        "(repeatable; also apgd-t, fab-t, square:eps=...,queries=...)",
    )
    parser.add_argument("--eps-sweep", default=None, metavar="E1,E2,...",
                        help="PGD-100 sweep over these ε (e.g. 0,2/255,8/255)")
    parser.add_argument("--p-grid", default=DEFAULT_P_GRID,
                        help=f"masking strengths of the trade-off curve (default {DEFAULT_P_GRID})")
    parser.add_argument("--config", default=None, help="take attacks, preset, sweep, p grid from this config's eval section")
    parser.add_argument("--ssim-convention", default=None, choices=("gaussian", "skimage_compare_ssim"),
                        help="SSIM of the 1 − SSIM table: gaussian (11×11 Gaussian, L = 1; the default) or "
                        "skimage_compare_ssim (the released paper-1 code's: 7×7 uniform, L = 2; the default of "
                        "--preset paper1_table2); eval.json stores both, see docs/ssim_conventions.md")
    parser.add_argument("--limit", type=int, default=None, help="evaluate the first N test images")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--out", default="runs/eval", help="output folder (default runs/eval)")
    parser.add_argument("--force", action="store_true", help="recompute finished parts")
    parser.add_argument("--shard", default=None, metavar="I/N|auto|auto/N",
                        help="evaluate only block I of N of the test examples (contiguous whole "
                        "batches); combine with 'tfadv eval merge OUT'. 'auto' reads I and N from a "
                        "Slurm array job (SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT); 'auto/N' "
                        "also from a Kubernetes Indexed Job (JOB_COMPLETION_INDEX, N = completions)")
    parser.add_argument("--xla", default="auto", choices=("auto", "on", "off"),
                        help="XLA for the attacks: auto (default) uses it where an accelerator is "
                        "present; on CPU XLA's convolutions are much slower than TensorFlow's")
    add_data_arguments(parser)
    parser.set_defaults(run=run)


def _numbers(text, name):
    from tfadv.evaluation import parse_eps

    return [parse_eps(item, name) for item in text.split(",") if item.strip()]


def plan_from_args(args):
    """The ``evaluate`` keyword arguments the flags (or --config) ask for."""
    from tfadv.attacks.spec import attack_settings_from_text
    from tfadv.evaluation import pgd_sweep, preset

    attacks, sweep = [], []
    presets = list(args.preset or [])
    p_grid = _numbers(args.p_grid, "p_grid")
    limit, batch_size = args.limit, args.batch_size
    if args.config:
        import dataclasses

        from tfadv.config import load_config

        section = load_config(args.config).eval
        attacks += [dataclasses.asdict(a) for a in section.attacks]
        presets = presets or ([section.preset] if not section.attacks else [])
        if section.preset == "paper2_sweep" or args.eps_sweep is None and "paper2_sweep" in presets:
            sweep = pgd_sweep(section.eps_sweep)
            presets = [p for p in presets if p != "paper2_sweep"]
        p_grid = section.p_grid
        limit = limit if limit is not None else section.limit
        batch_size = section.batch_size
    if not presets and not args.attack and not attacks and not args.eps_sweep and not sweep:
        presets = ["paper1_table1"]
    convention = None
    for name in dict.fromkeys(presets):
        plan = preset(name)
        attacks += [a for a in plan.get("attacks", []) if a not in attacks]
        sweep = sweep or plan.get("sweep", [])
        convention = convention or plan.get("ssim_convention")
    attacks += [attack_settings_from_text(text) for text in args.attack]
    if args.eps_sweep:
        sweep = pgd_sweep(_numbers(args.eps_sweep, "eps_sweep"))
    plan = {"attacks": attacks, "sweep": sweep, "p_grid": p_grid, "batch_size": batch_size,
            "ssim_convention": getattr(args, "ssim_convention", None) or convention or "gaussian"}
    return plan, limit


def run(args):
    from tfadv._files import FolderLock
    from tfadv.data import load_arrays
    from tfadv.evaluation import evaluate, format_report
    from tfadv.models import model_display_name

    if args.models[0] == "merge":
        from tfadv.evaluation.shards import merge_evaluations

        if len(args.models) != 2:
            raise ValueError(f"merge takes one evaluation folder, OUT. Received: {args.models[1:]}")
        results = merge_evaluations(args.models[1])
        print(format_report(results))
        print(f"[eval] merged {len([p for p in os.listdir(args.models[1]) if p.startswith('shard-')])} "
              f"shards into {os.path.join(args.models[1], 'eval.md')}")
        return 0
    plan, limit = plan_from_args(args)
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be >= 1. Received: --limit={limit}")
    for path in args.models:
        if not os.path.exists(path):
            raise ValueError(f"No model at {path!r}")
    source, data_dir = resolve_data_source(args, args.models)
    x, y = load_arrays(source, "test", data_dir)
    if limit is not None:
        x, y = x[:limit], y[:limit]
    models = {model_display_name(path): path for path in args.models}
    print(f"[eval] {len(models)} model(s) on {len(x)} test images of {source!r} -> {args.out}")
    jit_compile = {"auto": None, "on": True, "off": False}[args.xla]
    if args.shard is not None:
        from tfadv.evaluation.shards import evaluate_shard, resolve_shard, shard_folder

        shard = resolve_shard(args.shard, "--shard")
        batch_size = plan.pop("batch_size")
        folder = shard_folder(args.out, *shard)
        with FolderLock(folder, "tfadv eval"):  # one process per shard folder; shards run side by side
            evaluate_shard(models, x, y, shard, args.out, batch_size=batch_size,
                           dataset=f"{source}[test][:{len(x)}]", force=args.force,
                           jit_compile=jit_compile, **plan)
        print(f"[eval] shard {shard[0]}/{shard[1]}: {folder}; when all shards "
              f"are done: tfadv eval merge {args.out}")
        return 0
    with FolderLock(args.out, "tfadv eval"):  # one evaluation per output folder
        results = evaluate(
            models, x, y, out_dir=args.out, dataset=f"{source}[test][:{len(x)}]", force=args.force,
            jit_compile=jit_compile, **plan,
        )
    print(format_report(results))
    print(f"[eval] {os.path.join(args.out, 'eval.md')}")
    return 0
