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
  (:func:`tfadv.experiments.sections.register_section`); the profile
  below fills an experiment with them.
- :func:`masking_section`, :func:`ablation_section`, :func:`curves_section`:
  the report's sections.
- The paper-2 profile: :class:`Paper2Options` (``profile`` ``paper`` or
  ``small``, the grid point ``arch``, ``dataset``, ``epochs``, the ablations
  and Table 1) → :func:`experiment_configs` (the runs from
  ``configs/paper2/<method>.yaml`` with the grid point as overrides,
  :func:`grid_config`), :func:`settings_from`, :func:`experiment`, :func:`run`;
  :data:`SMALL` says why each shortening. ``tools/reproduce_paper2.py`` is its
  command line.
"""
import dataclasses
import itertools
import os
from typing import Dict, List, Optional

from tfadv.experiments.sections import register_section
from tfadv.experiments.profile import ProfileOptions, config_path, data_overrides, load_run_config, scale_note
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


# ------------------------------------------------------------------ the paper-2 profile

ARCHS = ("resnet18", "preact_resnet18", "densenet121")
DATASETS = ("cifar10", "cifar100")
EPOCHS = (20, 100)
COMPARED_METHODS = ("bn", "advprop", "robmask")  # what paper 2 compares: plain BN, AdvProp, RobMask
TRADEOFF_EPS = 8 / 255
GRID = tuple(itertools.product(ARCHS, DATASETS, COMPARED_METHODS, EPOCHS))
"""Every run of the paper's grid: (architecture, dataset, method, epochs)."""

PROFILES = ("paper", "small")
"""``profile``: the paper's scale (default) or the small profile (:data:`SMALL`) on a CIFAR-10 subset."""

ABLATIONS = ("advprop_random_strength", "advprop_two_aux", "robmask_eps10")
"""Table 7's AdvProp extensions and Table 6's RobMask at ε_max 10/255: ``configs/paper2/<name>.yaml``."""
TABLE1_FINETUNE_EPOCHS = 10
"""Epochs of each BN-only fine-tuning of Table 1: the paper states none; our choice (γ, β only)."""

SMOKE_OVERRIDES = ["model.name=tiny", "data.batch_size=32", "data.limit_train=128", "data.limit_test=64",
                   "train.epochs=1", "train.verbose=0", "method.pgd_steps=2"]
SMOKE_ATTACK_OVERRIDES = ["method.attack.steps=2"]  # the methods whose training attack is method.attack

SMALL = {
    # A ResNet-18 (the paper's architecture for Tables 1 and 3: four stages, BN + ReLU after every
    # convolution) at a quarter of its width (16-32-64-128 channels, 0.7 M parameters): one PGD-7
    # training step of 128 images costs about 2.8 s on 2 loaded CPU cores, as a ResNet-20's does,
    # while keeping the BN layout the masking hypothesis is about. resnet20 would be the other choice.
    "model": ["model.name=resnet18", "model.options={width_multiplier: 0.25}"],
    "epochs": 3,  # every grid run (BN, AdvProp, RobMask, the adversarial run, the ablations)
    "finetune_epochs": 1,  # each BN-only fine-tuning of Table 1
    "val_limit": 200,  # validation images per epoch (the adversarial runs validate under PGD-7)
    "eval_limit": 500,  # test images of every evaluation
    "sweep_steps": 10,  # PGD-10 (step ε/5, random start) instead of PGD-100
    "p_grid": [0.0, 0.5, 1.0],
}
"""The small profile's lengths: the paper's protocol and settings (configs/paper2), shortened."""


@dataclasses.dataclass
class Paper2Options(ProfileOptions):
    """The paper-2 profile's options: :class:`~tfadv.experiments.profile.ProfileOptions` and

    Args:
        profile: ``"paper"`` (the paper's scale) or ``"small"`` (:data:`SMALL`, on ``data``).
        data: the ``.npz`` (keys x, y) the small profile runs on; only with ``profile="small"``.
        arch, dataset, epochs: the grid point (:data:`ARCHS`, :data:`DATASETS`, :data:`EPOCHS`).
        ablations: also train and evaluate :data:`ABLATIONS`.
        skip_table1: leave out Table 1 and the masking interpolation.
        p: masking strength at which AdvProp and RobMask fill the ε-sweep table.
        p_grid: masking strengths of the trade-off curve, comma-separated text
            (default 0,0.25,0.5,0.75,1; 0,0.5,1 small or smoke).
        sweep_steps: PGD steps of the ε sweep and the trade-off curve (default 100).
    """

    profile: str = "paper"
    data: Optional[str] = None
    arch: str = "resnet18"
    dataset: str = "cifar10"
    epochs: int = 100
    ablations: bool = False
    skip_table1: bool = False
    p: float = 0.0
    p_grid: Optional[str] = None
    sweep_steps: Optional[int] = None


def check_profile(options):
    """``profile="small"`` needs ``data``; ``data`` belongs to it; the grid point is one of the paper's."""
    from tfadv.checks import check_choice

    check_choice("profile", options.profile, PROFILES)
    check_choice("arch", options.arch, ARCHS)
    check_choice("dataset", options.dataset, DATASETS)
    check_choice("epochs", options.epochs, EPOCHS)
    if options.profile == "small" and not options.data:
        raise ValueError("--profile small runs on a CIFAR-10 subset: give it with --data FILE.npz. "
                         "Received: --data not given")
    if options.profile == "paper" and options.data:
        raise ValueError(f"--data is the small profile's data (use --source for the paper profile). "
                         f"Received: --profile paper --data {options.data}")


def default_out(options):
    """The output folder when none is given: ``runs/paper2-<arch>-<dataset>-<epochs>ep`` or ``runs/paper2-small``."""
    if options.profile == "small":
        return os.path.join("runs", "paper2-small")
    return os.path.join("runs", f"paper2-{options.arch}-{options.dataset}-{options.epochs}ep")


def prepare(options):
    """Check the profile's options and fill the default ``out`` (it depends on the profile and grid point)."""
    if options.out is None:
        options.out = default_out(options)
    check_profile(options)
    return options


def settings_from(options):
    """Every size the driver uses: the paper's, the small profile's, the smoke test's, or the user's."""
    smoke, small = options.smoke, options.profile == "small"
    if options.p_grid is None:
        p_grid = [0.0, 0.5, 1.0] if smoke or small else [0.0, 0.25, 0.5, 0.75, 1.0]
    else:
        try:
            p_grid = [float(value) for value in options.p_grid.split(",")]
        except ValueError:
            raise ValueError(f"--p-grid must be numbers separated by commas. Received: {options.p_grid!r}") from None
    if small:
        source = options.data
    else:
        source = options.source or ("digits" if smoke else options.dataset)
    return {
        "source": source,
        "eval_limit": options.eval_limit or (64 if smoke else SMALL["eval_limit"] if small else None),
        "sweep_steps": options.sweep_steps or (5 if smoke else SMALL["sweep_steps"] if small else 100),
        "p_grid": p_grid,
    }


def run_name(arch, dataset, method, epochs):
    return f"paper2-{arch}-{dataset}-{method}-{epochs}ep"


def grid_overrides(arch, dataset, method, epochs):
    """The overrides that turn a method's config into one point of the grid."""
    return [f"model.name={arch}", f"data.source={dataset}", f"train.epochs={epochs}",
            f"name={run_name(arch, dataset, method, epochs)}"]


def method_config_path(arch, dataset, method, epochs, configs=None):
    """``<configs>/paper2/<method>.yaml`` (it ``extends: base.yaml``; ``configs``
    default the repository's); the grid point is set by :func:`grid_overrides`."""
    return config_path(configs, "paper2", f"{method}.yaml")


def grid_config(arch, dataset, method, epochs, overrides=(), configs=None):
    """One run of the grid: ``load_config(<method file>, overrides=[grid point…, *overrides])``."""
    from tfadv.config import load_config

    return load_config(method_config_path(arch, dataset, method, epochs, configs),
                       overrides=grid_overrides(arch, dataset, method, epochs) + list(overrides))


TABLE1_STEP = "method.attack.step_size=1.6/255"  # "the step-size to ε/5", (8/255)/5, as advprop.yaml
TABLE1_RUNS = {
    # role: (config file, its overrides); {standard}/{adversarial} are the source runs' folders.
    # "can we learn robust features from a vanilla standard-trained model, or, can we obtain
    # non-robust features from an adversarial trained 'robust model'?" (Sec. 3.1). The paper
    # trains its robust model with the attack it uses "for all the methods": PGD-7, ε = 8/255,
    # step ε/5, random start (base.yaml).
    "adversarial": ("bn", ["method.kind=adversarial", TABLE1_STEP]),
    # A standard model, BN-only fine-tuned on adversarial examples (Table 1, first block).
    "bn_ft_adversarial": ("bn", ["method.kind=bn_finetune", "method.train_on=adversarial", TABLE1_STEP,
                                 "model.init_from={standard}"]),
    # The robust model, BN-only fine-tuned on clean images (Table 1, second block; Figure 1).
    "adversarial_ft_clean": ("bn", ["method.kind=bn_finetune", "method.train_on=clean", TABLE1_STEP,
                                    "model.init_from={adversarial}"]),
}
"""Table 1's runs beyond the grid's BN run: each from ``configs/paper2/bn.yaml`` with these overrides."""


def _profile_point(options):
    """(arch label, dataset label, epochs label) naming the runs of this call."""
    if options.profile == "small":
        return "small", os.path.splitext(os.path.basename(options.data))[0], SMALL["epochs"]
    return options.arch, options.dataset, options.epochs


def experiment_configs(options, settings):
    """The runs of this call as ``ExperimentConfig``s, by role, in training order.

    The grid point's three methods always (``bn``, ``advprop``, ``robmask``);
    Table 1's runs (:data:`TABLE1_RUNS`) unless ``--skip-table1``; the
    ablations (:data:`ABLATIONS`) with ``--ablations``.
    """
    small = options.profile == "small"
    common = data_overrides(options, settings["source"])
    if small and not options.val_limit:
        common.append(f"data.limit_test={SMALL['val_limit']}")
    user = (SMOKE_OVERRIDES if options.smoke else []) + list(options.overrides)
    arch, dataset, epochs = _profile_point(options)
    profile = [] if not small or options.smoke else SMALL["model"]

    def point_of(name):
        if small:  # the data is --data (in common); the model and the lengths are the profile's
            return [f"train.epochs={epochs}", f"name={run_name(arch, dataset, name, epochs)}"] + profile
        return grid_overrides(arch, dataset, name, epochs)

    def load(config_file, name, extra=()):
        overrides = point_of(name) + common + list(extra)
        if options.smoke and config_file.startswith("advprop"):
            overrides += SMOKE_ATTACK_OVERRIDES
        return load_run_config(config_path(options.configs, "paper2", f"{config_file}.yaml"), overrides,
                               options.epochs_scale, user)

    configs = {method: load(method, method) for method in COMPARED_METHODS}
    if not options.skip_table1:
        folders = {"standard": os.path.join(options.out, configs["bn"].name)}
        for role, (config_file, extra) in TABLE1_RUNS.items():
            extra = [item.format(**folders) for item in extra]
            if role.startswith(("bn_ft", "adversarial_ft")):
                finetune_epochs = SMALL["finetune_epochs"] if small else TABLE1_FINETUNE_EPOCHS
                extra.append(f"train.epochs={finetune_epochs}")
            if options.smoke:
                extra += SMOKE_ATTACK_OVERRIDES
            configs[role] = load(config_file, role.replace("_", "-"), extra)
            folders[role] = os.path.join(options.out, configs[role].name)
    if options.ablations:
        for ablation in ABLATIONS:
            configs[ablation] = load(ablation, ablation.replace("_", "-"))
    return configs


def sweep_attacks(steps):
    """PGD-``steps``, step ε/5, random start, ε ∈ {0, 1, 2, 4, 6, 8}/255; and the trade-off attack.

    The trade-off attack is the sweep's 8/255 attack itself, so at ``p`` the
    two share one stored result.
    """
    from tfadv.evaluation import pgd_sweep

    sweep = pgd_sweep(steps=steps)
    return sweep, pgd_sweep(eps_values=[TRADEOFF_EPS], steps=steps)[0]


def masking_plan(options, settings, tradeoff_attack):
    """Table 1's two blocks and their interpolation curves (``None`` with ``--skip-table1``)."""
    if options.skip_table1:
        return None
    return MaskingPlan(
        blocks=[MaskingBlock("Standard training", "bn", "bn_ft_adversarial", "adversarial"),
                MaskingBlock("Adversarial training", "adversarial", "adversarial_ft_clean", "clean")],
        attack=tradeoff_attack, p_grid=settings["p_grid"], eval_dir=os.path.join(options.out, "eval-table1"),
        statistics="fold")


def experiment(options):
    """The paper-2 profile of the experiment pipeline: runs, ε sweep and trade-off evaluation, Table 1,
    the ablations, Figure 3, report."""
    from tfadv.experiments.pipeline import Experiment
    from tfadv.experiments.published import load_published

    prepare(options)
    settings = settings_from(options)
    configs = experiment_configs(options, settings)
    sweep, tradeoff_attack = sweep_attacks(settings["sweep_steps"])
    arch, dataset, _ = _profile_point(options)
    epochs = ", ".join(f"{role} {config.train.epochs}" for role, config in configs.items())
    published = None if options.profile == "small" else load_published("paper2")
    ablations = None
    if options.ablations:
        ablations = AblationPlan(
            models={name: name for name in ABLATIONS}, sweep=sweep, p_grid=settings["p_grid"],
            tradeoff_attack=tradeoff_attack, p=options.p, eval_dir=os.path.join(options.out, "eval-ablations"))
    curve_roles = list(COMPARED_METHODS) + (list(ABLATIONS) if options.ablations else [])
    if options.profile == "small":
        title = (f"Paper 2 reproduction, small profile: {configs['bn'].model.name} "
                 f"{configs['bn'].model.options or ''} on {settings['source']}")
        note = scale_note(options, epochs)
        scale = (f"the **small profile**: the paper's settings (configs/paper2), shortened: a quarter-width "
                 f"ResNet-18, {SMALL['epochs']} epochs per run, {SMALL['finetune_epochs']} per BN-only "
                 f"fine-tuning, validation on {SMALL['val_limit']} images per epoch, a PGD-"
                 f"{settings['sweep_steps']} sweep on {settings['eval_limit']} test images"
                 + ("" if note.startswith("the paper's scale") else f"; {note}"))
    else:
        title = f"Paper 2 reproduction: {options.arch} on {options.dataset}, {options.epochs} epochs"
        scale = scale_note(options, epochs)
    model_note = configs["bn"].model.name + (f" {configs['bn'].model.options}" if configs["bn"].model.options else "")
    return Experiment(
        tag="paper2",
        title=title,
        out_dir=options.out,
        runs=configs,
        data_name=settings["source"],
        eval_limit=settings["eval_limit"],
        eval_batch_size=options.eval_batch_size,
        plans=[plan for plan in (
            Paper2Plan(
                models={method: method for method in COMPARED_METHODS}, sweep=sweep, p_grid=settings["p_grid"],
                tradeoff_attack=tradeoff_attack, p=options.p, eval_dir=os.path.join(options.out, "eval"),
                published=published,
                published_rows={m: f"{options.dataset}/{options.arch}/{options.epochs}ep/{m}" for m in COMPARED_METHODS}),
            masking_plan(options, settings, tradeoff_attack),
            ablations,
            CurvesPlan(runs={role: role for role in curve_roles},
                       path=os.path.join(options.out, "training_curves.png"),
                       title=f"Validation accuracy per epoch ({arch}, {dataset})"),
        ) if plan is not None],
        intro=[f"Data `{settings['source']}`; model `{model_note}`; epochs: {epochs}. Scale: {scale}."],
        summary={"paper": "Adversarial Masking (OpenReview LNtTXJ9XXr)", "profile": options.profile,
                 "arch": arch, "dataset": dataset, "epochs": options.epochs if options.profile == "paper" else SMALL["epochs"],
                 "ablations": options.ablations, "table1": not options.skip_table1},
    )


def run(options):
    """Build the paper-2 :func:`experiment` of ``options`` and run it (resumable); its results."""
    from tfadv.experiments.pipeline import run_experiment

    return run_experiment(experiment(options))
