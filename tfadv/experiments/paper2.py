"""Paper 2's experiments beyond the ε sweep: Table 1, the masking interpolation, ablations, Figure 3.

Paper 2 (Adversarial Masking, Sec. 3.1) fine-tunes only the BN layers of a
trained network and reads the trade-off off the result: "a vanilla
standard-trained model" BN-only fine-tuned on adversarial examples, and an
"adversarial trained 'robust model'" BN-only fine-tuned on clean images
(Table 1's two blocks). Sec. 3.2 then combines the two maskings of each pair
linearly, γ_p = (1 − p)·γ + p·γ', β_p likewise, and shows that "different
clean and robust accuracies can be readily achieved by selecting different p
values".

- :class:`MaskingPlan` (with its :class:`MaskingBlock`\\ s) says which runs
  form Table 1 and how to evaluate them; :func:`evaluate_masking` evaluates
  the four models and the interpolation model of each block
  (:func:`tfadv.training.methods.interpolation_model`) over a p grid, in one
  resumable ``evaluate`` call, and measures how far the fine-tuning moved
  each BN parameter (:func:`tfadv.analysis.compare_bn`).
- :class:`CurvesPlan` — Figure 3's training curves of some runs
  (:func:`tfadv.analysis.plot_histories`).
- :class:`Paper2Plan` — the ε sweep (Tables 5/6 layout) and the trade-off
  over p; the ablations (Tables 6/7) are an :class:`AblationPlan`, the same
  sweep and trade-off in their own section.
- Importing this module registers the four plan types with the pipeline
  (:func:`tfadv.experiments.pipeline.register_section`); the driver
  ``tools/reproduce_paper2.py`` fills an experiment with them.
- :func:`masking_section`, :func:`ablation_section`, :func:`curves_section`:
  the report's sections.
"""
import dataclasses
import os
from typing import Dict, List, Optional

from tfadv.experiments.pipeline import register_section
from tfadv.experiments.report import paper2_section
from tfadv.records import write_json

FINETUNED_ON = ("adversarial", "clean")


@dataclasses.dataclass
class Paper2Plan:
    """Paper 2's ε sweep (its Tables 5/6 layout) and the trade-off over the masking strength p.

    Args:
        models: evaluation name → run role, in row order.
        sweep: the sweep's attacks (``tfadv.evaluation.pgd_sweep``).
        p_grid: masking strengths of the trade-off curve.
        tradeoff_attack: the trade-off curve's attack.
        eval_dir: the evaluation's folder.
        p: the strength at which conditioned models fill the sweep table.
        published: the ``paper2`` entry of ``tfadv/evaluation/published_numbers.yaml`` or ``None``.
        published_rows: evaluation name → row key of the published sweep table.
    """

    models: Dict[str, str]
    sweep: list
    p_grid: List[float]
    tradeoff_attack: object
    eval_dir: str
    p: float = 0.0
    published: Optional[dict] = None
    published_rows: Dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class AblationPlan(Paper2Plan):
    """The ablations (Tables 6/7): a :class:`Paper2Plan` reported in its own section."""


@dataclasses.dataclass
class MaskingBlock:
    """One block of Table 1: a trained model and its BN-only fine-tuning.

    Args:
        title: the block's label (e.g. ``"Standard training"``).
        source: run role of the trained model.
        finetuned: run role of its BN-only fine-tuning (``method.kind: bn_finetune``).
        finetuned_on: ``"adversarial"`` (a standard model given a robust
            masking) or ``"clean"`` (a robust model given a clean masking).
    """

    title: str
    source: str
    finetuned: str
    finetuned_on: str

    def __post_init__(self):
        if self.finetuned_on not in FINETUNED_ON:
            raise ValueError(f"finetuned_on must be one of {FINETUNED_ON}. Received: finetuned_on={self.finetuned_on!r}")

    @property
    def source_name(self):
        return self.title

    @property
    def finetuned_name(self):
        return f"{self.title} + BN-only fine-tuning on {self.finetuned_on} images"

    @property
    def interpolation_name(self):
        return f"{self.title}: interpolation"

    @property
    def clean_and_robust(self):
        """(role of the p = 0 end, role of the p = 1 end): the clean masking first."""
        if self.finetuned_on == "adversarial":
            return self.source, self.finetuned
        return self.finetuned, self.source


@dataclasses.dataclass
class MaskingPlan:
    """Paper 2's Table 1 and the masking interpolation between the two maskings of each block.

    Args:
        blocks: Table 1's blocks, in row order.
        attack: the robust-accuracy column and the curve's attack (paper 2
            evaluates "under the white-box ε = 8/255 ℓ∞-norm bounded
            nontargeted PGD attack").
        p_grid: the masking strengths of each interpolation curve (0: the
            clean masking, 1: the robust one).
        eval_dir: the evaluation's folder (``eval.json``, ``tradeoff.png``, ``masking.json``).
        statistics: ``interpolation_model``'s choice of BN moving statistics
            (``"fold"`` by default: BN-only fine-tuning updates the moving
            statistics, and ``fold`` is the one choice that reproduces both
            source models exactly at p = 0 and p = 1; see
            :func:`tfadv.training.methods.interpolation_model`).
    """

    blocks: List[MaskingBlock]
    attack: object
    p_grid: List[float]
    eval_dir: str
    statistics: str = "fold"


@dataclasses.dataclass
class CurvesPlan:
    """Figure 3: ``metric`` per epoch of some runs (label → run role) in one PNG at ``path``."""

    runs: Dict[str, str]
    path: str
    metric: str = "val_accuracy"
    title: Optional[str] = None


# ------------------------------------------------------------------ evaluation


def bn_changes(source, finetuned):
    """Mean and max over the BN layers of ||finetuned − source|| / ||source|| per BN parameter."""
    import numpy as np

    from tfadv.analysis import compare_bn
    from tfadv.analysis.bn_anatomy import PARAMETERS

    rows = compare_bn(source, finetuned, layers="all")
    summary = {}
    for name in PARAMETERS:
        values = np.array([row[name] for row in rows], dtype=float)
        values = values[~np.isnan(values)]
        summary[name] = {"mean": float(values.mean()) if values.size else None,
                         "max": float(values.max()) if values.size else None}
    first = rows[0] if rows else None
    summary["first_layer"] = None if first is None else {
        "layer": first["layer"], **{name: first[name] for name in PARAMETERS}}
    summary["layers"] = len(rows)
    return summary


def interpolation_models(plan, run_dirs):
    """``{interpolation name: interpolation_model(clean end, robust end, plan.statistics)}`` per block."""
    from tfadv.training import load_model
    from tfadv.training.methods import interpolation_model

    models = {}
    for block in plan.blocks:
        clean_role, robust_role = block.clean_and_robust
        models[block.interpolation_name] = interpolation_model(
            load_model(run_dirs[clean_role]), load_model(run_dirs[robust_role]), statistics=plan.statistics)
    return models


def evaluate_masking(plan, run_dirs, x, y, batch_size=256, dataset=None, progress=True):
    """Table 1's four models and each block's interpolation curve, in one resumable evaluation.

    Args:
        plan: a :class:`MaskingPlan`.
        run_dirs: run role → run folder.
        x, y: the test images and labels.

    Returns:
        ``(results, info)``: the evaluation's results (``eval.json``) and
        ``info`` (also ``<eval_dir>/masking.json``): the statistics choice
        and, per block, the BN parameters' relative change from the source
        model to its fine-tuning.
    """
    from tfadv.evaluation import evaluate
    from tfadv.training import load_model

    models = {}
    for block in plan.blocks:
        models[block.source_name] = run_dirs[block.source]
        models[block.finetuned_name] = run_dirs[block.finetuned]
    models.update(interpolation_models(plan, run_dirs))
    results = evaluate(models, x, y, attacks=[plan.attack], p_grid=plan.p_grid, tradeoff_attack=plan.attack,
                       p=0.0, out_dir=plan.eval_dir, batch_size=batch_size, dataset=dataset, progress=progress)
    info = {"statistics": plan.statistics,
            "blocks": {block.title: {
                "source": run_dirs[block.source], "finetuned": run_dirs[block.finetuned],
                "finetuned_on": block.finetuned_on,
                "bn_changes": bn_changes(load_model(run_dirs[block.source]), load_model(run_dirs[block.finetuned])),
            } for block in plan.blocks}}
    write_json(os.path.join(plan.eval_dir, "masking.json"), info)
    return results, info


def table1_rows(plan, results):
    """``[(block title, row name, clean accuracy, robust accuracy)]`` of the four models (fractions)."""
    from tfadv.evaluation.results import part_id

    attack_id = results["plan"]["attacks"][0]
    rows = []
    for block in plan.blocks:
        for name in (block.source_name, block.finetuned_name):
            parts = results["models"][name]["parts"]
            rows.append((block.title, name, parts[part_id(None)]["accuracy"], parts[part_id(attack_id)]["accuracy"]))
    return rows


def interpolation_curves(plan, results):
    """``{block title: [(p, clean accuracy, robust accuracy)]}`` over ``plan.p_grid`` (fractions)."""
    from tfadv.evaluation.results import part_id

    attack_id = results["plan"]["tradeoff_attack"]
    curves = {}
    for block in plan.blocks:
        parts = results["models"][block.interpolation_name]["parts"]
        curves[block.title] = [(p, parts[part_id(attack_id, p)]["clean_accuracy"],
                                parts[part_id(attack_id, p)]["accuracy"]) for p in plan.p_grid]
    return curves


def plot_curves(plan, runs):
    """Draw Figure 3 for ``plan`` from the runs' ``history.csv`` (``runs``: role → run folder)."""
    from tfadv.analysis import plot_histories

    plot_histories([runs[role] for role in plan.runs.values()], plan.path, metric=plan.metric,
                   labels=list(plan.runs), title=plan.title)
    return plan.path


# ------------------------------------------------------------------ report sections


def _link(target, root):
    return os.path.relpath(target, root).replace(os.sep, "/")


def _percent(value):
    return "–" if value is None else f"{100 * value:.2f}"


def _change(value):
    return "n/a" if value is None or value != value else f"{value:.4f}"


def masking_section(plan, results, info, root):
    """Table 1 (two blocks), the interpolation curves and the BN parameters each fine-tuning moved."""
    label = next(part["label"] for record in results["models"].values() for part in record["parts"].values()
                 if part.get("attack_id") == results["plan"]["attacks"][0])
    eval_dir = _link(plan.eval_dir, root)
    lines = ["## Table 1 (paper 2): BN-only fine-tuning and the masking interpolation", "",
             "A standard model BN-only fine-tuned on adversarial examples, and an adversarially trained "
             "model BN-only fine-tuned on clean images (every weight frozen but the BN γ, β; the moving "
             "statistics updated, as the paper's fine-tuning). Published numbers: not found in the "
             "sources available here (the paper's text gives Table 1's caption, not its numbers).", "",
             f"### Table 1: clean and robust accuracy (%), robust = {label}", "",
             "| Block | Model | Clean | Robust |", "|---|---|---:|---:|"]
    previous = None
    for title, name, clean, robust in table1_rows(plan, results):
        lines.append(f"| {title if title != previous else ''} | {name} | {_percent(clean)} | {_percent(robust)} |")
        previous = title
    lines += ["", "### The masking interpolation", "",
              "γ_p = (1 − p)·γ_clean + p·γ_robust and β_p likewise, between the two maskings of each block "
              "(p = 0: the clean masking, p = 1: the robust one), built by "
              f"`interpolation_model(clean, robust, statistics=\"{plan.statistics}\")`. "
              + ("BN-only fine-tuning updated the moving statistics, so the two models' statistics differ; "
                 "`fold` keeps the robust model's statistics and rewrites the clean model's γ, β over them, "
                 "so p = 0 and p = 1 are exactly the two Table 1 models and in between the per-channel "
                 "scale and shift move linearly. `robust` or `clean` would reproduce only one end, `shared` "
                 "refuses differing statistics." if plan.statistics == "fold" else ""), ""]
    curves = interpolation_curves(plan, results)
    for title, points in curves.items():
        lines += [f"#### {title}", "", "| p | Clean | Robust |", "|---:|---:|---:|"]
        lines += [f"| {p:g} | {_percent(clean)} | {_percent(robust)} |" for p, clean, robust in points]
        lines.append("")
    if "tradeoff.png" in results.get("figures", []):
        lines += [f"![masking interpolation]({eval_dir}/tradeoff.png)", ""]
    lines += ["### What the fine-tuning moved (Figure 1's question, all BN layers)", "",
              "Relative change ||fine-tuned − source|| / ||source|| per BN parameter: mean (max) over the "
              "BN layers, and the first BN layer (the one Figure 1 plots).", "",
              "| Block | | running mean | running variance | γ | β |", "|---|---|---:|---:|---:|---:|"]
    for title, block in info["blocks"].items():
        changes = block["bn_changes"]
        cells = [f"{_change(changes[n]['mean'])} ({_change(changes[n]['max'])})"
                 for n in ("mean", "variance", "gamma", "beta")]
        lines.append(f"| {title} | all layers | " + " | ".join(cells) + " |")
        first = changes.get("first_layer")
        if first:
            lines.append(f"| | first (`{first['layer']}`) | "
                         + " | ".join(_change(first[n]) for n in ("mean", "variance", "gamma", "beta")) + " |")
    return lines + ["", f"Every number: [{eval_dir}/eval.json]({eval_dir}/eval.json), "
                        f"[{eval_dir}/masking.json]({eval_dir}/masking.json).", ""]


def ablation_section(plan, results, reference, root):
    """The ablations' ε sweep (the main models' rows first, for reference) and their trade-off curves."""
    from tfadv.evaluation import sweep_table, tradeoff_tables

    ours = sweep_table(results)
    lines = ["## Ablations (paper 2, Tables 6 and 7)", "",
             "AdvProp with a random strength (ε = p·ε_max into the auxiliary BN), AdvProp with two auxiliary "
             "BNs (4/255 and 8/255), and RobMask with ε_max relaxed to 10/255, each from its config in "
             "`configs/paper2/`, at this grid point, evaluated with the same sweep. Paper 2 runs Table 7 on "
             "DenseNet-121 over CIFAR-10. Published numbers: not found in the sources available here.", "",
             f"### {ours.title.split(' — ')[0]}", "",
             "Conditioned models at the masking strength in brackets; the first rows are the main "
             "experiment's models.", "",
             "| Model | " + " | ".join(ours.header[1:]) + " |", "|---|" + "---:|" * (len(ours.header) - 1)]
    rows = ([] if reference is None else sweep_table(reference).rows) + ours.rows
    for row in rows:
        lines.append(f"| {row[0]} | " + " | ".join(_percent(v) for v in row[1:]) + " |")
    eval_dir = _link(plan.eval_dir, root)
    lines += ["", f"![accuracy vs ε]({eval_dir}/accuracy_vs_eps.png)", "",
              "### The trade-off over the masking strength p", ""]
    for table in tradeoff_tables(results):
        lines += [table.markdown().replace("### ", "#### ", 1), ""]
    if "tradeoff.png" in results.get("figures", []):
        lines += [f"![trade-off]({eval_dir}/tradeoff.png)", ""]
    return lines + [f"Every number: [{eval_dir}/eval.json]({eval_dir}/eval.json).", ""]


def curves_section(plan, root):
    """Figure 3: the training curves."""
    return ["## Training curves (paper 2, Figure 3)", "",
            f"`{plan.metric}` after each epoch (validation images: the runs' `data.limit_test`), from each "
            "run's `history.csv` (`tfadv plot-history RUN...` draws the same).", "",
            f"![training curves]({_link(plan.path, root)})", ""]


# ------------------------------------------------------------------ the pipeline's sections


def _evaluate_sweep(plan, state, common):
    from tfadv.evaluation import evaluate

    models = {name: state.runs[role].run_dir for name, role in plan.models.items()}
    return evaluate(models, state.x_test, state.y_test, sweep=plan.sweep, p_grid=plan.p_grid,
                    tradeoff_attack=plan.tradeoff_attack, p=plan.p, out_dir=plan.eval_dir, **common)


def evaluate_paper2(plan, experiment, state, say, common):
    say(f"paper 2: the ε sweep and the trade-off over p {plan.p_grid} on {len(state.y_test)} test images "
        f"→ {plan.eval_dir}")
    return _evaluate_sweep(plan, state, common)


def evaluate_ablations(plan, experiment, state, say, common):
    say(f"paper 2 ablations: the ε sweep and the trade-off over p {plan.p_grid} → {plan.eval_dir}")
    return _evaluate_sweep(plan, state, common)


def evaluate_masking_plan(plan, experiment, state, say, common):
    say(f"paper 2 Table 1 and the masking interpolation over p {plan.p_grid} "
        f"(statistics={plan.statistics!r}) → {plan.eval_dir}")
    run_dirs = {role: run.run_dir for role, run in state.runs.items()}
    results, state.masking = evaluate_masking(plan, run_dirs, state.x_test, state.y_test,
                                              batch_size=common["batch_size"], dataset=common["dataset"])
    return results


def report_paper2(plan, experiment, state, root):
    if "paper2" not in state.results:
        return []
    return paper2_section(plan, state.results["paper2"], root, data_name=experiment.data_name)


def report_masking(plan, experiment, state, root):
    return [] if "masking" not in state.results else masking_section(
        plan, state.results["masking"], state.masking, root)


def report_ablations(plan, experiment, state, root):
    return [] if "ablations" not in state.results else ablation_section(
        plan, state.results["ablations"], state.results.get("paper2"), root)


def report_curves(plan, experiment, state, root):
    if not state.runs:
        return []
    state.curves_figure = plot_curves(plan, {role: run.run_dir for role, run in state.runs.items()})
    return curves_section(plan, root)


register_section(Paper2Plan, "paper2", "paper 2", report_paper2, evaluate_paper2)
register_section(MaskingPlan, "masking", "paper 2 Table 1 and masking interpolation", report_masking,
                 evaluate_masking_plan)
register_section(AblationPlan, "ablations", "paper 2 ablations", report_ablations, evaluate_ablations)
register_section(CurvesPlan, "curves", "paper 2 Figure 3", report_curves)
