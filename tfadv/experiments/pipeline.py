"""One experiment pipeline: train → evaluate → landscape → export → report.

An :class:`Experiment` says *what* to run (the training configs by role, and
a plan for each later stage, ``None`` when the experiment has no such step);
:func:`run_experiment` runs the same named :data:`STAGES` in order for every
experiment: the quickstart, the paper-1 driver and the paper-2 driver are
profiles that only fill an ``Experiment``. A stage added here appears in all.
The evaluations and report sections are the papers' own: each paper's module
(:mod:`tfadv.experiments.paper1`, :mod:`tfadv.experiments.paper2`) registers
its plan types with :func:`tfadv.experiments.sections.register_section`, and an experiment lists its
plans in ``Experiment.plans``; this module names no paper.

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

from tfadv.experiments.sections import section_of
from tfadv.records import environment_record, write_json


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
        plans: the papers' evaluations and report sections, in report order
            (``Paper1Plan``, ``Paper2Plan``, ``MaskingPlan``, ``AblationPlan``,
            ``CurvesPlan``, or any plan type with a registered :class:`Section`).
        landscape, export: the plans of those stages; ``None`` skips the stage.
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
    plans: list = dataclasses.field(default_factory=list)
    landscape: Optional[LandscapePlan] = None
    export: Optional[ExportPlan] = None
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

    def plan(self, key):
        """The plan whose section is ``key`` (``"paper1"``, ``"masking"``, ...), or ``None``."""
        return next((plan for plan in self.plans if section_of(plan).key == key), None)

    def __post_init__(self):
        keys = [section_of(plan).key for plan in self.plans]
        if len(set(keys)) != len(keys):
            raise ValueError(f"plans must have one plan per section. Received: sections {keys}")


@dataclasses.dataclass
class State:
    """What the stages produced so far (the report reads it)."""

    runs: dict = dataclasses.field(default_factory=dict)
    x_test: object = None
    y_test: object = None
    results: dict = dataclasses.field(default_factory=dict)  # section key ("paper1", ...) → eval results
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
    state.x_test, state.y_test = load_test_arrays(experiment.first_config().data, experiment.eval_limit)
    common = dict(batch_size=experiment.eval_batch_size,
                  dataset=f"{experiment.data_name}[test][:{len(state.y_test)}]")
    for plan in experiment.plans:
        section = section_of(plan)
        if section.evaluate is not None:
            state.results[section.key] = section.evaluate(plan, experiment, state, say, common)


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


def _describe_evaluation(experiment):
    parts = [section.label for section in map(section_of, experiment.plans) if section.evaluate is not None]
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
        "eval": {key: experiment.plan(key).eval_dir for key in state.results},
        "landscapes": None if state.sharpness is None else experiment.landscape.out_dir,
        "sharpness": None if state.sharpness is None else json.loads(json.dumps(state.sharpness, default=float)),
        "export": state.export_dir,
        "predictions": None if state.predictions is None else {str(p): v for p, v in state.predictions.items()},
    })
    print(f"[{experiment.tag}] done in {state.seconds / 60:.1f} min: {experiment.report_path}", flush=True)
    return state
