"""Paper 2's ε: every paper-2 attack steps ε/5, and its ε grid has one definition (issue 19, point 5)."""
import glob
import os

import pytest

from tfadv import models
from tfadv.config import load_config
from tfadv.evaluation import preset
from tfadv.evaluation.specs import PAPER2_EPS, SWEEP_EPS, TABLE6_EPS, pgd_sweep
from tfadv.training import methods

PAPER2 = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "paper2")
SHAPE = (32, 32, 3)


def _step_over_eps(wrapped):
    """The PGD step as a fraction of ε that a built training method uses."""
    if isinstance(wrapped, methods.RobMask):
        return wrapped.step_fraction
    return wrapped.attack.step_size / wrapped.attack.eps


CASES = [(os.path.basename(p), None) for p in sorted(glob.glob(os.path.join(PAPER2, "*.yaml")))]
CASES += [("base.yaml", "adversarial"), ("bn.yaml", "adversarial")]  # a method inheriting base.yaml's attack


@pytest.mark.parametrize("file, kind", CASES)
def test_every_paper2_training_attack_steps_a_fifth_of_eps(file, kind):
    path = os.path.join(PAPER2, file)
    # "We set the PGD attack strength ε = 8/255 with cross-entropy (CE) loss and the step-size to ε/5."
    overrides = [] if kind is None else [f"method.kind={kind}", "model.norm=bn"]
    config = load_config(path, overrides)
    if config.method.kind == "standard":  # plain BN: no training attack; its inherited attack still steps ε/5
        assert config.method.attack.step_size / config.method.attack.eps == pytest.approx(0.2)
        return
    inner = models.build("tiny", input_shape=SHAPE, norm=config.model.norm, norm_options=config.model.norm_options)
    wrapped = methods.wrap_from_config(inner, config)
    assert _step_over_eps(wrapped) == pytest.approx(0.2)


def test_one_eps_grid_for_paper2_tables_5_and_6():
    assert PAPER2_EPS == tuple(k / 255 for k in (0, 2, 4, 6, 8))
    assert SWEEP_EPS is PAPER2_EPS and TABLE6_EPS is PAPER2_EPS
    assert [s.eps for s in preset("paper2_sweep")["sweep"]] == list(PAPER2_EPS)
    table6 = preset("paper2_table6")
    assert [s.eps for s in table6["sweep"]] == [a.eps for a in table6["attacks"]] == list(PAPER2_EPS)
    assert all(s.step_size == pytest.approx(s.eps / 5) and s.steps == 100 for s in pgd_sweep())
    # A config's eval section, left unset, sweeps the same grid.
    assert load_config(os.path.join(PAPER2, "bn.yaml")).eval.eps_sweep is None
