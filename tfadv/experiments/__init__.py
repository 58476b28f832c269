"""Experiments: one pipeline (train → evaluate → landscape → export → report) and its profiles.

- :class:`Experiment` and the plans (:class:`Paper1Plan`, :class:`Paper2Plan`,
  :class:`LandscapePlan`, :class:`ExportPlan`) say what to run;
  :func:`run_experiment` runs the named :data:`STAGES` in order, each
  resumable and timed, and writes ``report.md`` and ``summary.json``.
- :mod:`tfadv.experiments.paper2` — paper 2's Table 1 and masking
  interpolation (:class:`MaskingPlan`), ablations, Figure 3 (:class:`CurvesPlan`).
- :func:`quickstart_experiment` — the ``tfadv quickstart`` profile; the
  paper drivers in ``tools/`` are the other profiles.
- :mod:`tfadv.experiments.report` — the report, laid out like a paper's
  results section; :mod:`tfadv.experiments.published` — the papers'
  published numbers beneath ours.
"""
from tfadv.experiments.pipeline import (
    STAGES,
    Experiment,
    ExportPlan,
    LandscapePlan,
    Paper1Plan,
    Paper2Plan,
    Stage,
    State,
    run_experiment,
    load_test_arrays,
    train_run,
)
from tfadv.experiments.paper2 import CurvesPlan, MaskingBlock, MaskingPlan, evaluate_masking
from tfadv.experiments.quickstart import quickstart_configs, quickstart_experiment
from tfadv.experiments.report import runs_table, write_report

__all__ = [
    "STAGES", "CurvesPlan", "Experiment", "MaskingBlock", "MaskingPlan", "evaluate_masking", "ExportPlan", "LandscapePlan", "Paper1Plan", "Paper2Plan", "Stage", "State",
    "quickstart_configs", "quickstart_experiment", "run_experiment", "runs_table", "load_test_arrays",
    "train_run", "write_report",
]
