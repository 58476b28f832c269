"""The registry of experiment sections: how each kind of plan is evaluated and reported.

Each paper's module (:mod:`tfadv.experiments.paper1`, :mod:`tfadv.experiments.paper2`)
registers its plan types here when imported; the pipeline runs them and the report
renders them, and neither names a paper. A leaf of ``tfadv.experiments``, so the
pipeline and the report both read it without importing each other.
"""
import dataclasses
from typing import Callable, Optional


@dataclasses.dataclass
class Section:
    """How one kind of plan takes part in an experiment (registered by its paper's module).

    Args:
        key: its name in ``State.results`` and ``summary.json`` (``paper1``, ``masking``, ...).
        label: how the evaluation stage's progress line names it.
        report: ``report(plan, experiment, state, root) -> lines`` of ``report.md``.
        evaluate: ``evaluate(plan, experiment, state, say, common) -> results``,
            stored as ``state.results[key]``; ``None`` for a report-only plan
            (a figure of the runs). ``common`` holds ``batch_size`` and ``dataset``.
    """

    key: str
    label: str
    report: Callable
    evaluate: Optional[Callable] = None


SECTIONS = {}
"""Plan type → :class:`Section`: what the papers' modules registered."""


def register_section(plan_type, key, label, report, evaluate=None):
    """Let plans of ``plan_type`` take part: evaluated (if ``evaluate``) and reported, in the
    order of ``Experiment.plans``. Each paper's module registers its plans when imported."""
    if any(section.key == key for kind, section in SECTIONS.items() if kind is not plan_type):
        raise ValueError(f"key {key!r} is already registered. Received: key={key!r}")
    SECTIONS[plan_type] = Section(key, label, report, evaluate)
    return plan_type


def section_of(plan):
    """The :class:`Section` registered for ``type(plan)``; ``ValueError`` naming the type if none."""
    section = SECTIONS.get(type(plan))
    if section is None:
        raise ValueError(f"No section is registered for {type(plan).__name__} (register_section). "
                         f"Received: plan={plan!r}")
    return section
