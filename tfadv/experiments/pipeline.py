"""One experiment pipeline: train → evaluate → landscape → export → report.

An :class:`Experiment` says *what* to run (the training configs by role, and
a plan for each later stage, ``None`` when the experiment has no such step);
:func:`run_experiment` runs the same named :data:`STAGES` in order for every
experiment: the quickstart, the paper-1 driver and the paper-2 driver are
profiles that only fill an ``Experiment``. A stage added here appears in all.

Every stage is resumable because the work under it is: training continues
from the last finished epoch (and reuses a finished run), the evaluation
skips every stored part whose model, data and attack are unchanged, a loss
landscape continues from the last computed grid point. Every stage is timed;
the times go into ``summary.json`` (``stage_seconds``) and the report.
"""
import dataclasses
import json
import os
import time
from typing import Callable, Dict, List, Optional

from tfadv.experiments.paper2 import CurvesPlan, MaskingPlan
from tfadv.records import environment_record, write_json


@dataclasses.dataclass
class Paper1Plan:
    """Paper 1's Tables 1 and 2: accuracy and 1 − SSIM of four models under the table's attacks.

    Args:
        models: evaluation name → run role, in the tables' row order (the
            clean model first: its examples make the perturbation figure).
        attacks: the tables' attacks in column order (``AttackSpec``\\ s or mappings).
        eval_dir: the evaluation's folder (``eval.json``, ``eval.md``, figures).
        published: the ``paper1`` entry of ``tfadv/evaluation/published_numbers.yaml``
            (title, authors, ``tables.table1``/``table2``), or ``None``: the
            report then prints our rows only. The hook for the paper's numbers.
        published_rows: evaluation name → row key of the published tables.
        ssim_convention: Table 2's SSIM convention; default the
            ``paper1_table2`` preset's, the released code's
            (``tfadv.evaluation.specs.PAPER1_SSIM_CONVENTION``). ``"gaussian"``
            stays a choice; the paper's Table 2 figures are printed only
            beside the released code's convention.
    """

    models: Dict[str, str]
    attacks: list
    eval_dir: str
    published: Optional[dict] = None
    published_rows: Dict[str, str] = dataclasses.field(default_factory=dict)
    ssim_convention: str = dataclasses.field(default_factory=lambda: _table2_preset()["ssim_convention"])


def _table2_preset():
    from tfadv.evaluation import preset

    return preset("paper1_table2")


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
class LandscapePlan:
    """2-D filter-normalized loss landscapes and Hessian sharpness of some runs, side by side.

    ``models`` maps landscape name → run role; ``comparison`` is the file
    prefix of the side-by-side figures in ``out_dir``; ``note`` is printed
    under the sharpness table (e.g. where published values stand).
    """

    models: Dict[str, str]
    out_dir: str
    grid: str = "-1:1:51"
    examples: int = 5000
    batch_size: int = 500
    hessian_examples: int = 1000
    hessian_max_iterations: int = 50
    hutchinson_samples: int = 10
    comparison: str = "comparison"
    note: str = ""


@dataclasses.dataclass
class ExportPlan:
    """Export one run as a SavedModel and query its ``serve_tradeoff`` signature at p = 0 and 1."""

    role: str
    out_dir: str
    query_examples: int = 8
    p_values: tuple = (0.0, 1.0)


@dataclasses.dataclass
class Experiment:
    """Everything one call of :func:`run_experiment` does.

    Args:
        tag: the progress prefix and the report's kind (``quickstart``, ``paper1``, ...).
        title: the report's title.
        out_dir: the report's folder (runs may live elsewhere; their configs say where).
        runs: run role → ``ExperimentConfig``, in training order.
        data_name: the dataset as the report and ``eval.json`` name it.
        eval_limit: evaluate on the first N test images (``None``: all).
        eval_batch_size: images per attack batch.
        paper1, paper2, landscape, export: the plans; ``None`` skips the stage's part.
        masking: paper 2's Table 1 and masking interpolation (:class:`MaskingPlan`).
        ablations: paper 2's ablations, a second :class:`Paper2Plan` (their own section).
        curves: Figure 3's training curves (:class:`CurvesPlan`), drawn by the report stage.
        skipped: stage name → why it is skipped although planned (e.g. a flag).
        intro: sentences of the report's first paragraph (data, scale, settings).
        report_file, summary_file: names in ``out_dir``.
        summary: extra keys of ``summary.json``.
    """

    tag: str
    title: str
    out_dir: str
    runs: dict
    data_name: str
    eval_limit: Optional[int] = None
    eval_batch_size: int = 256
    paper1: Optional[Paper1Plan] = None
    paper2: Optional[Paper2Plan] = None
    landscape: Optional[LandscapePlan] = None
    export: Optional[ExportPlan] = None
    masking: Optional[MaskingPlan] = None
    ablations: Optional[Paper2Plan] = None
    curves: Optional[CurvesPlan] = None
    skipped: Dict[str, str] = dataclasses.field(default_factory=dict)
    intro: List[str] = dataclasses.field(default_factory=list)
    report_file: str = "report.md"
    summary_file: str = "summary.json"
    summary: dict = dataclasses.field(default_factory=dict)

    @property
    def report_path(self):
        return os.path.join(self.out_dir, self.report_file)

    def first_config(self):
        return next(iter(self.runs.values()))


@dataclasses.dataclass
class State:
    """What the stages produced so far (the report reads it)."""

    runs: dict = dataclasses.field(default_factory=dict)
    x_test: object = None
    y_test: object = None
    results: dict = dataclasses.field(default_factory=dict)  # "paper1" / "paper2" / ... → eval results
    masking: Optional[dict] = None  # paper 2's Table 1: the statistics choice and BN changes (masking.json)
    curves_figure: Optional[str] = None
    perturbation_figure: Optional[str] = None
    landscape_figures: Optional[dict] = None
    sharpness: Optional[dict] = None
    export_dir: Optional[str] = None
    predictions: Optional[dict] = None
    stage_seconds: dict = dataclasses.field(default_factory=dict)
    seconds: float = 0.0


@dataclasses.dataclass
class Stage:
    """A named step of the pipeline.

    ``describe(experiment)`` is the progress line, or ``None`` when the
    experiment has no plan for this stage (it is then not run);
    ``run(experiment, state, say)`` does the work and fills ``state``.
    """

    name: str
    describe: Callable
    run: Callable


class Progress:
    """``[tag 2/5 01:23] text`` lines, flushed at once."""

    def __init__(self, tag, stages):
        self.tag, self.stages = tag, stages
        self.started = time.time()

    def stage(self, number, text):
        elapsed = time.time() - self.started
        print(f"[{self.tag} {number}/{self.stages} {elapsed // 60:02.0f}:{elapsed % 60:02.0f}] {text}", flush=True)

    @staticmethod
    def note(text):
        print(f"  {text}", flush=True)


# ------------------------------------------------------------------ the stages


def train_run(config, say=Progress.note):
    """Train (or resume, or reuse) one run; say which."""
    from tfadv.training import read_history, train_from_config

    run_dir = os.path.join(config.output_dir, config.name)
    done = len(read_history(os.path.join(run_dir, "history.csv")))
    finished = done >= config.train.epochs and os.path.exists(os.path.join(run_dir, "model.keras"))
    state = "finished, reused" if finished else (f"resuming after epoch {done}" if done else "training")
    attack = f" with {config.method.attack.name}" if config.method.kind != "standard" else ""
    say(f"{config.name}: {config.method.kind}{attack}, {config.train.epochs} epochs — {state}")
    return train_from_config(config)


def _train(experiment, state, say):
    for role, config in experiment.runs.items():
        state.runs[role] = train_run(config, say)


def load_test_arrays(data_config, limit):
    """The first ``limit`` test images (all when ``None``) of the runs' dataset.

    Read afresh rather than through the runs' ``data.limit_test``, which only
    shortens the per-epoch validation.
    """
    from tfadv.data import load_arrays

    x, y = load_arrays(data_config.source, "test", data_config.data_dir)
    return x[:limit], y[:limit]


def _evaluate(experiment, state, say):
    from tfadv.evaluation import evaluate
    from tfadv.evaluation.plots import plot_perturbations

    state.x_test, state.y_test = load_test_arrays(experiment.first_config().data, experiment.eval_limit)
    dataset = f"{experiment.data_name}[test][:{len(state.y_test)}]"
    common = dict(batch_size=experiment.eval_batch_size, dataset=dataset)
    if experiment.paper1 is not None:
        plan = experiment.paper1
        say(f"paper 1: Tables 1 and 2 on {len(state.y_test)} test images → {plan.eval_dir}")
        models = {name: state.runs[role].run_dir for name, role in plan.models.items()}
        state.results["paper1"] = evaluate(models, state.x_test, state.y_test, attacks=plan.attacks,
                                           out_dir=plan.eval_dir, ssim_convention=plan.ssim_convention,
                                           **common)
        first = next(iter(plan.models))
        state.perturbation_figure = plot_perturbations(
            state.results["paper1"], plan.eval_dir, first, os.path.join(plan.eval_dir, f"perturbations-{first}.png"))
    if experiment.paper2 is not None:
        plan = experiment.paper2
        say(f"paper 2: the ε sweep and the trade-off over p {plan.p_grid} on {len(state.y_test)} test images "
            f"→ {plan.eval_dir}")
        models = {name: state.runs[role].run_dir for name, role in plan.models.items()}
        state.results["paper2"] = evaluate(models, state.x_test, state.y_test, sweep=plan.sweep,
                                           p_grid=plan.p_grid, tradeoff_attack=plan.tradeoff_attack, p=plan.p,
                                           out_dir=plan.eval_dir, **common)
    if experiment.ablations is not None:
        plan = experiment.ablations
        say(f"paper 2 ablations: the ε sweep and the trade-off over p {plan.p_grid} → {plan.eval_dir}")
        models = {name: state.runs[role].run_dir for name, role in plan.models.items()}
        state.results["ablations"] = evaluate(models, state.x_test, state.y_test, sweep=plan.sweep,
                                              p_grid=plan.p_grid, tradeoff_attack=plan.tradeoff_attack,
                                              p=plan.p, out_dir=plan.eval_dir, **common)
    if experiment.masking is not None:
        from tfadv.experiments.paper2 import evaluate_masking

        plan = experiment.masking
        say(f"paper 2 Table 1 and the masking interpolation over p {plan.p_grid} "
            f"(statistics={plan.statistics!r}) → {plan.eval_dir}")
        run_dirs = {role: run.run_dir for role, run in state.runs.items()}
        state.results["masking"], state.masking = evaluate_masking(
            plan, run_dirs, state.x_test, state.y_test, batch_size=experiment.eval_batch_size,
            dataset=common["dataset"])


def _landscapes(experiment, state, say):
    from tfadv import landscape
    from tfadv.training import load_model, load_split_arrays

    plan = experiment.landscape
    x_train, y_train = load_split_arrays(experiment.first_config().data, "train")
    surfaces, state.sharpness = {}, {}
    for name, role in plan.models.items():
        say(f"{name}: grid {plan.grid}, loss on {min(plan.examples, len(x_train))} training images")
        result = landscape.run_landscape(
            load_model(state.runs[role].run_dir), x_train, y_train, plan.out_dir, name=name, dim=2,
            grid=plan.grid, examples=min(plan.examples, len(x_train)), batch_size=plan.batch_size,
            hessian_top_k=1, hutchinson_samples=plan.hutchinson_samples,
            hessian_examples=plan.hessian_examples, hessian_max_iterations=plan.hessian_max_iterations,
            progress=True)
        surfaces[name], state.sharpness[name] = result["surface"], result["sharpness"]
    state.landscape_figures = {
        kind: landscape.compare_figure(list(surfaces.values()), list(surfaces),
                                       os.path.join(plan.out_dir, f"{plan.comparison}_{kind}.png"), kind=kind)
        for kind in ("contour", "3d")}


def _export(experiment, state, say):
    import numpy as np
    import tensorflow as tf

    from tfadv.export import export_model

    plan = experiment.export
    if state.x_test is None:
        state.x_test, state.y_test = load_test_arrays(experiment.first_config().data, experiment.eval_limit)
    export_model(state.runs[plan.role].run_dir, plan.out_dir, overwrite=True)
    served = tf.saved_model.load(plan.out_dir).signatures["serve_tradeoff"]
    images = tf.constant(state.x_test[: plan.query_examples])
    state.export_dir, state.predictions = plan.out_dir, {}
    for p in plan.p_values:
        outputs = served(images=images, p=tf.constant(p, tf.float32))
        state.predictions[p] = np.argmax(outputs["probabilities"].numpy(), axis=1).tolist()
        say(f"p = {p:g}: {state.predictions[p]}  (labels {state.y_test[: plan.query_examples].tolist()})")


def _report(experiment, state, say):
    from tfadv.experiments.report import write_report

    write_report(experiment, state)


_EVALUATIONS = (("paper1", "paper 1"), ("paper2", "paper 2"), ("ablations", "paper 2 ablations"),
                ("masking", "paper 2 Table 1 and masking interpolation"))


def _describe_evaluation(experiment):
    parts = [label for attribute, label in _EVALUATIONS if getattr(experiment, attribute) is not None]
    if not parts:
        return None
    return f"evaluating ({', '.join(parts)}) on {experiment.eval_limit or 'all'} test images"


def _describe_landscape(experiment):
    plan = experiment.landscape
    return None if plan is None else f"2-D loss landscapes and Hessian sharpness → {plan.out_dir}"


def _describe_export(experiment):
    plan = experiment.export
    return None if plan is None else f"exporting {plan.role} as a SavedModel → {plan.out_dir} and querying it"


STAGES = (
    Stage("train", lambda e: f"training {len(e.runs)} runs → {e.first_config().output_dir}", _train),
    Stage("evaluate", _describe_evaluation, _evaluate),
    Stage("landscape", _describe_landscape, _landscapes),
    Stage("export", _describe_export, _export),
    Stage("report", lambda e: f"writing {e.report_path}", _report),
)
"""The pipeline, in order. Every experiment runs every stage; a stage without a plan says so."""


def run_experiment(experiment, stages=STAGES):
    """Run every stage of ``experiment`` in order; return the :class:`State` (the report is written).

    Running the same experiment again skips finished work (see the module
    docstring); ``summary.json`` records the seconds each stage took.
    """
    os.makedirs(experiment.out_dir, exist_ok=True)
    progress = Progress(experiment.tag, len(stages))
    state = State()
    for number, stage in enumerate(stages, start=1):
        if stage.name == "report":
            state.seconds = round(time.time() - progress.started, 1)
        reason = experiment.skipped.get(stage.name)
        if reason:
            progress.stage(number, f"{stage.name}: skipped ({reason})")
            continue
        description = stage.describe(experiment)
        if description is None:
            progress.stage(number, f"{stage.name}: not part of this experiment")
            continue
        progress.stage(number, description)
        started = time.time()
        stage.run(experiment, state, progress.note)
        state.stage_seconds[stage.name] = round(time.time() - started, 1)
    state.seconds = round(time.time() - progress.started, 1)
    write_json(os.path.join(experiment.out_dir, experiment.summary_file), {
        **experiment.summary,
        "environment": environment_record(),
        "seconds": state.seconds,
        "stage_seconds": state.stage_seconds,
        "runs": {role: run.run_dir for role, run in state.runs.items()},
        "eval": {paper: getattr(experiment, paper).eval_dir for paper in state.results},
        "landscapes": None if state.sharpness is None else experiment.landscape.out_dir,
        "sharpness": None if state.sharpness is None else json.loads(json.dumps(state.sharpness, default=float)),
        "export": state.export_dir,
        "predictions": None if state.predictions is None else {str(p): v for p, v in state.predictions.items()},
    })
    print(f"[{experiment.tag}] done in {state.seconds / 60:.1f} min: {experiment.report_path}", flush=True)
    return state
