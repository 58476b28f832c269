"""The benchmark suite behind ``tfadv bench``: ratios measured within one run.

Each benchmark module has ``run(**settings) -> dict``; ``ratio_rows`` turns
its result into uniform rows (what, ratio, target, pass) for one table. Speed
targets are ratios of two things timed on the same machine in the same
process, so a shared, noisy machine shifts both alike. They are never timed tests.
"""
import importlib

import numpy as np

BENCHMARKS = ("attacks", "train", "landscape", "export", "distribute")


def run_benchmark(name, **settings):
    if name not in BENCHMARKS:
        raise ValueError(f"benchmark must be one of {', '.join(BENCHMARKS)} or all. Received: {name!r}")
    return importlib.import_module(f"tfadv.bench.{name}").run(**settings)


def _row(what, ratio, target, detail):
    return {"what": what, "ratio": float(ratio), "target": float(target), "pass": ratio <= target,
            "detail": detail}


def ratio_rows(result):
    """Uniform ``{what, ratio, target, pass, detail}`` rows of one benchmark's result."""
    kind = result["benchmark"]
    if kind == "attacks":
        return [
            _row("PGD-10 / 10 input-gradient passes", result["pgd10_over_10_gradients"],
                 result["pgd10_target"],
                 f"{result['pgd10_ms']:.0f} ms vs 10 × {result['gradient_pass_ms']:.1f} ms"),
            _row("stAdv step / PGD step", result["stadv_step_over_pgd_step"], result["stadv_target"],
                 f"{result['stadv_step_ms']:.1f} ms vs {result['pgd_step_ms']:.1f} ms"),
        ] + ([
            _row("AutoAttack / APGD-CE, per image, half robust, half clean errors", result["autoattack_over_apgd_ce"],
                 result["autoattack_target"],
                 f"{result['autoattack_ms_per_image']:.0f} ms vs {result['apgd_ce_ms_per_image']:.0f} ms per image "
                 f"(later components attacked {100 * result['autoattack_later_components_fraction']:.0f} %, "
                 f"robust at the end {100 * result['autoattack_robust_fraction']:.0f} %)"),
        ] if "autoattack_over_apgd_ce" in result else [])
    if kind == "train":
        return [
            _row("PGD-7 adversarial train step / clean step", result["pgd7_over_clean_step"],
                 result["pgd7_target"], f"{result['pgd7_step_ms']:.0f} ms vs {result['clean_step_ms']:.0f} ms"),
            _row("RobMask train step / AdvProp step", result["robmask_over_advprop_step"],
                 result["robmask_target"],
                 f"{result['robmask_step_ms']:.0f} ms vs {result['advprop_step_ms']:.0f} ms"),
            _row("peak memory PGD-7 / clean training", result["pgd7_over_clean_peak_memory"],
                 result["memory_target"],
                 f"{result['pgd7_peak_mb']:.0f} MB vs {result['clean_peak_mb']:.0f} MB"),
        ] + ([
            _row("RobMask / BN adversarial train step, DenseNet-121",
                 result["robmask_over_bn_densenet121_step"], result["knob_target"],
                 f"{result['robmask_densenet121_ms']:.0f} ms vs {result['bn_densenet121_ms']:.0f} ms "
                 f"(batch {result['knob_batch_size']})"),
            _row(f"RobMask / BN adversarial train step, converted {result['knob_application']}",
                 result["robmask_over_bn_converted_step"], result["knob_target"],
                 f"{result['robmask_converted_ms']:.0f} ms vs {result['bn_converted_ms']:.0f} ms"),
            _row("validation PGD-10 on 1,000 examples / PGD-7 epoch of 50,000",
                 result["validation_attack_share"], result["validation_share_target"],
                 f"{result['validation_batch_ms']:.0f} ms vs {result['bn_converted_ms']:.0f} ms per batch"),
        ] if "robmask_over_bn_densenet121_step" in result else [])
    if kind == "landscape":
        return [_row("landscape grid point / forward pass", result["ratio"], result["target"],
                     f"{result['point_seconds'] * 1e3:.1f} ms vs {result['forward_seconds'] * 1e3:.1f} ms")]
    if kind == "export":
        return [
            _row(f"serve_tradeoff / serving_default, batch {batch}", entry["ratio"], result["target"],
                 f"{entry['serve_tradeoff_ms']:.2f} ms vs {entry['serving_default_ms']:.2f} ms")
            for batch, entry in result["batches"].items()
        ]
    if kind == "distribute":
        from tfadv.bench.distribute import rows

        return rows(result, _row)
    raise ValueError(f"Unknown benchmark result kind {kind!r}")


def combine_runs(runs):
    """One row per benchmark row from repeated runs: the median ratio and the spread.

    ``runs`` is a list of row lists, one per run, in the same order. The
    median decides pass/fail; ``ratios`` keeps every run's ratio, and the
    detail is that of the run whose ratio is the median (the lower middle one
    for an even count), followed by the spread, ``runs: min–max``.
    """
    combined = []
    for same_rows in zip(*runs, strict=True):
        ratios = [row["ratio"] for row in same_rows]
        order = sorted(range(len(ratios)), key=ratios.__getitem__)
        middle = same_rows[order[(len(order) - 1) // 2]]
        median = float(np.median(ratios))
        detail = middle["detail"]
        if len(ratios) > 1:
            detail += f"; {len(ratios)} runs: {min(ratios):.3f}–{max(ratios):.3f}"
        combined.append({**middle, "ratio": median, "pass": median <= middle["target"], "detail": detail,
                         "ratios": [float(r) for r in ratios]})
    return combined


def machine_line(environment, load_before=None, load_after=None):
    """The header of a bench table: revision, versions, CPU and the machine's load around the run."""
    from tfadv.records import revision_label

    line = (f"tfadv {environment['tfadv']} ({revision_label(environment.get('source'))}), "
            f"TensorFlow {environment['tensorflow']}, Keras {environment['keras']}, "
            f"{environment['cpu_count']} CPU cores ({environment.get('cpu_model') or environment['machine']})")
    if load_before is not None:
        line += f"; 1-minute load average {load_before:.2f} before"
        if load_after is not None:
            line += f", {load_after:.2f} after"
    return line


def format_table(rows):
    lines = ["| benchmark | ratio | target | | measured |", "|---|---:|---:|---|---|"]
    for row in rows:
        verdict = "PASS" if row["pass"] else "FAIL"
        lines.append(f"| {row['what']} | {row['ratio']:.3f} | ≤ {row['target']:g} | {verdict} | {row['detail']} |")
    return "\n".join(lines)
