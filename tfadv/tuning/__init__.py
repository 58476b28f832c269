"""keras-tuner searches over a training method's ε_max (``tfadv tune``).

``run_tuning(config)`` runs or resumes the search ``config.tune`` describes
in ``runs/<name>/tuning/`` and writes the trial table, the trade-off plot and
``best.keras``; :class:`EpsMaxHyperModel` is the search space and the
trial's training, usable with any keras-tuner ``Tuner``.
"""
from tfadv.tuning.hypermodel import PIXEL_LEVELS, TUNABLE_METHODS, EpsMaxHyperModel, tuning_dir
from tfadv.tuning.objectives import OBJECTIVES, TradeOffMetric, make_objective, objective_metric, tradeoff
from tfadv.tuning.report import markdown_table, plot_tradeoff, trial_rows, write_summary
from tfadv.tuning.search import TUNERS, make_tuner, run_tuning

__all__ = [
    "EpsMaxHyperModel", "OBJECTIVES", "PIXEL_LEVELS", "TUNABLE_METHODS", "TUNERS", "TradeOffMetric",
    "make_objective", "make_tuner", "markdown_table", "objective_metric", "plot_tradeoff", "run_tuning",
    "tradeoff", "trial_rows", "tuning_dir", "write_summary",
]
