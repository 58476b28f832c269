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
    parser.add_argument("--runs", type=int, default=1,
                        help="run each benchmark this many times and report the median ratio and the "
                        "spread (min–max) over runs (default 1)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.set_defaults(run=run)


def run(args):
    import os

    from tfadv import bench
    from tfadv.bench import BENCHMARKS, combine_runs, format_table, machine_line, ratio_rows
    from tfadv.records import environment_record

    names = list(BENCHMARKS) if "all" in args.which else list(dict.fromkeys(args.which))
    for name in names:
        if name not in BENCHMARKS:
            raise ValueError(f"benchmark must be one of {', '.join(BENCHMARKS)} or all. Received: {name!r}")
    if isinstance(args.runs, bool) or args.runs < 1:
        raise ValueError(f"--runs must be a positive integer. Received: --runs={args.runs!r}")
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    results, runs = {name: [] for name in names}, []
    for number in range(args.runs):
        rows = []
        for name in names:
            if not args.json:
                print(f"[bench] {name} ..." + (f" (run {number + 1} of {args.runs})" if args.runs > 1 else ""),
                      flush=True)
            started = time.time()
            result = bench.run_benchmark(name, model_name=args.model)
            result["seconds"] = round(time.time() - started, 1)
            results[name].append(result)
            rows += ratio_rows(result)
        runs.append(rows)
    rows = combine_runs(runs)
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    report = {"environment": environment_record(), "runs": args.runs, "load_average": [load_before, load_after],
              "results": {name: values if args.runs > 1 else values[0] for name, values in results.items()},
              "rows": rows}
    if args.json:
        print(json.dumps(report, default=float))
    else:
        print(f"\n{machine_line(report['environment'], load_before, load_after)}, model {args.model}"
              + (f", median of {args.runs} runs" if args.runs > 1 else "") + "\n")
        print(format_table(rows))
    return 0 if all(row["pass"] for row in rows) else 1
