"""Paper 1's part of an experiment: Tables 1 and 2 (accuracy and 1 − SSIM under its attacks).

:class:`Paper1Plan` says which runs form the tables and with which attacks;
importing this module registers it with the pipeline
(:func:`tfadv.experiments.pipeline.register_section`): the evaluation stage
evaluates it (and draws the perturbation figure of its first model), the
report stage writes its section (:func:`tfadv.experiments.report.paper1_section`).
The reproduction driver ``tools/reproduce_paper1.py`` fills an experiment with it.
"""
import dataclasses
import os
from typing import Dict, Optional

from tfadv.experiments.pipeline import register_section
from tfadv.experiments.report import model_of, paper1_section


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


def evaluate_paper1(plan, experiment, state, say, common):
    """Tables 1 and 2 of ``plan``'s runs; also the perturbation figure of its first model."""
    from tfadv.evaluation import evaluate
    from tfadv.evaluation.plots import plot_perturbations

    say(f"paper 1: Tables 1 and 2 on {len(state.y_test)} test images → {plan.eval_dir}")
    models = {name: state.runs[role].run_dir for name, role in plan.models.items()}
    results = evaluate(models, state.x_test, state.y_test, attacks=plan.attacks, out_dir=plan.eval_dir,
                       ssim_convention=plan.ssim_convention, **common)
    first = next(iter(plan.models))
    state.perturbation_figure = plot_perturbations(
        results, plan.eval_dir, first, os.path.join(plan.eval_dir, f"perturbations-{first}.png"))
    return results


def report_paper1(plan, experiment, state, root):
    if "paper1" not in state.results:
        return []
    return paper1_section(plan, state.results["paper1"], root, state.perturbation_figure,
                          data_name=experiment.data_name, model=model_of(experiment, plan))


register_section(Paper1Plan, "paper1", "paper 1", report_paper1, evaluate_paper1)
