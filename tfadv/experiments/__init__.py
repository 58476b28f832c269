"""Experiments: one pipeline (train → evaluate → landscape → export → report) and its profiles.

- :class:`Experiment` says what to run: its runs, its papers' ``plans`` and
  the :class:`LandscapePlan` and :class:`ExportPlan`; :func:`run_experiment`
  runs the named :data:`STAGES` in order, each resumable and timed, and writes
  ``report.md`` and ``summary.json``. A paper registers how its plans are
  evaluated and reported (:func:`register_section`, :data:`SECTIONS`).
- :mod:`tfadv.experiments.paper1` — paper 1's Tables 1 and 2 (:class:`Paper1Plan`)
  and its profile (:class:`Paper1Options` → ``paper1.experiment``, ``paper1.run``;
  ``tools/reproduce_paper1.py`` is its command line).
- :mod:`tfadv.experiments.paper2` — paper 2's ε sweep (:class:`Paper2Plan`),
  Table 1 and masking interpolation (:class:`MaskingPlan`), ablations
  (:class:`AblationPlan`), Figure 3 (:class:`CurvesPlan`), and its profile
  (:class:`Paper2Options` → ``paper2.experiment``, ``paper2.run``;
  ``tools/reproduce_paper2.py`` is its command line).
- :mod:`tfadv.experiments.profile` — what the paper profiles share
  (:class:`ProfileOptions`, the repository's ``configs/``, scaled run configs).
- :func:`quickstart_experiment` — the ``tfadv quickstart`` profile.
- :mod:`tfadv.experiments.report` — the report, laid out like a paper's
  results section; :mod:`tfadv.experiments.published` — the papers'
  published numbers beneath ours.
"""
from tfadv.experiments.sections import SECTIONS, Section, register_section
from tfadv.experiments.pipeline import (
    STAGES,
    Experiment,
    ExportPlan,
    LandscapePlan,
    Stage,
    State,
    run_experiment,
    load_test_arrays,
    train_run,
)
from tfadv.experiments.paper1 import Paper1Options, Paper1Plan  # registers paper 1's section
from tfadv.experiments.paper2 import (  # registers paper 2's sections
    AblationPlan,
    CurvesPlan,
    MaskingBlock,
    MaskingPlan,
    Paper2Options,
    Paper2Plan,
    evaluate_masking,
)
from tfadv.experiments.profile import ProfileOptions
from tfadv.experiments.quickstart import quickstart_configs, quickstart_experiment
from tfadv.experiments.report import runs_table, write_report

__all__ = [
    "SECTIONS", "STAGES", "AblationPlan", "CurvesPlan", "Experiment", "Section", "register_section", "MaskingBlock", "MaskingPlan", "evaluate_masking", "ExportPlan", "LandscapePlan", "Paper1Options", "Paper1Plan", "Paper2Options", "Paper2Plan", "ProfileOptions", "Stage", "State",
    "quickstart_configs", "quickstart_experiment", "run_experiment", "runs_table", "load_test_arrays",
    "train_run", "write_report",
]
