"""Robustness evaluation: the papers' tables, the worst case over attacks, trade-off curves.

- :func:`evaluate` — models × attacks → results (``eval.json``, ``eval.md``,
  figures), resumable part by part.
- :func:`pgd_sweep`, :func:`preset` — what to run (attacks are
  :class:`tfadv.attacks.AttackSpec`\\ s, also exported here); the presets
  ``paper1_table1``, ``paper1_table2``, ``paper2_sweep`` and ``strong``.
- :func:`load_model` — a run folder, a ``.keras`` file or a SavedModel.
- :func:`load_results`, :func:`format_report` and the table functions —
  the tables again from a stored ``eval.json``.
"""

from tfadv.attacks.spec import ATTACK_NAMES, AttackSpec, format_eps, parse_eps
from tfadv.evaluation.loading import SavedModelFunction, load_model
from tfadv.evaluation.results import load_results, save_results
from tfadv.evaluation.runner import DEFAULT_TRADEOFF_ATTACK, NonFiniteLogitsError, evaluate
from tfadv.evaluation.specs import PAPER2_EPS, PRESETS, SWEEP_EPS, pgd_sweep, preset
from tfadv.evaluation.tables import (
    Table,
    accuracy_table,
    all_tables,
    embed_report,
    format_report,
    ssim_table,
    stored_set_table,
    sweep_table,
    tradeoff_tables,
)

__all__ = [
    "ATTACK_NAMES",
    "AttackSpec",
    "DEFAULT_TRADEOFF_ATTACK",
    "NonFiniteLogitsError",
    "PRESETS",
    "SWEEP_EPS",
    "PAPER2_EPS",
    "SavedModelFunction",
    "Table",
    "accuracy_table",
    "all_tables",
    "embed_report",
    "evaluate",
    "format_eps",
    "format_report",
    "load_model",
    "load_results",
    "parse_eps",
    "pgd_sweep",
    "preset",
    "save_results",
    "ssim_table",
    "stored_set_table",
    "sweep_table",
    "tradeoff_tables",
]
