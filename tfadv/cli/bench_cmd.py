"""tfadv bench attacks|train|landscape|export|distribute|all [--json]: the design targets as ratios."""
import json
import time


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "bench", help="speed and memory ratios of the design targets (one run each)",
        description="Run benchmarks and print one table of ratios with the machine, TensorFlow "
        "version and settings. Ratios compare two measurements of the same run, so they are "
        "meaningful on a shared machine; absolute times are printed for reference only.",
    )
    parser.add_argument("which", nargs="*", default=["all"],
                        help="attacks, train, landscape, export, distribute or all (default)")
    parser.add_argument("--model", default="resnet20", help="architecture (default resnet20)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.set_defaults(run=run)


def run(args):
    from tfadv import bench
    from tfadv.bench import BENCHMARKS, format_table, ratio_rows
    from tfadv.records import environment_record

    names = list(BENCHMARKS) if "all" in args.which else list(dict.fromkeys(args.which))
    for name in names:
        if name not in BENCHMARKS:
            raise ValueError(f"benchmark must be one of {', '.join(BENCHMARKS)} or all. Received: {name!r}")
    results, rows = {}, []
    for name in names:
        if not args.json:
            print(f"[bench] {name} ...", flush=True)
        started = time.time()
        results[name] = bench.run_benchmark(name, model_name=args.model)
        results[name]["seconds"] = round(time.time() - started, 1)
        rows += ratio_rows(results[name])
    report = {"environment": environment_record(), "results": results, "rows": rows}
    if args.json:
        print(json.dumps(report, default=float))
    else:
        env = report["environment"]
        print(f"\ntfadv {env['tfadv']}, TensorFlow {env['tensorflow']}, Keras {env['keras']}, "
              f"{env['cpu_count']} CPU cores ({env['machine']}), model {args.model}\n")
        print(format_table(rows))
    return 0 if all(row["pass"] for row in rows) else 1
