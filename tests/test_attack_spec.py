"""tfadv.attacks.AttackSpec: resolution of settings, validation, labels, running with ε and seeds.

The model is linear with two classes, logits = [0, mean(x) − 0.5]: the
cross-entropy gradient has the same sign at every pixel (+ for label 0), so
PGD without a random start moves a constant image v to v + min(k·α, ε) after
k steps of size α, a closed form for the step and radius actually used.
"""
import dataclasses
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfadv.attacks import AttackSpec, fgsm, pgd
from tfadv.attacks.spec import SEED_STRIDE

SIZE = 6


def _linear_model():
    """logits = [0, mean(x) − 0.5]."""
    average = keras.layers.GlobalAveragePooling2D()
    model = keras.Sequential([keras.Input((SIZE, SIZE, 1)), average, keras.layers.Dense(2)])
    model.layers[-1].set_weights([np.array([[0.0, 1.0]], "float32"), np.array([0.0, -0.5], "float32")])
    return model


def _constant_images(values):
    values = np.asarray(values, "float32")[:, None, None, None]
    return np.broadcast_to(values, (len(values), SIZE, SIZE, 1)).copy()


@pytest.fixture
def setup():
    """The linear model and four constant images of label 0 (the attack raises every pixel)."""
    return _linear_model(), _constant_images([0.1, 0.2, 0.3, 0.4]), np.zeros(4, "int64")


# ------------------------------------------------------------ resolution


def test_attack_spec_from_config_and_strings():
    from tfadv.config.schema import AttackConfig

    spec = AttackSpec.create(AttackConfig(name="pgd", eps=8 / 255, steps=7))
    assert spec.settings() == {"name": "pgd", "eps": 8 / 255, "steps": 7, "step_size": 2 / 255,
                               "random_start": True, "restarts": 1, "seed": 0}
    assert AttackSpec.create({"name": "fgsm", "eps": "4/255"}).eps == 4 / 255
    assert AttackSpec.create(AttackConfig(name="stadv")).settings()["tau"] == 0.05


def test_unset_settings_take_each_attacks_defaults_and_unused_ones_are_dropped():
    from tfadv.attacks.stadv import DEFAULT_STEPS

    assert AttackSpec.create({"name": "pgd", "eps": 0.1, "steps": None}).steps == 10
    assert AttackSpec.create({"name": "apgd-ce", "eps": 0.1}).steps == 100
    stadv = AttackSpec.create({"name": "stadv", "eps": 0.1, "steps": None, "step_size": 0.5})
    assert stadv.steps == DEFAULT_STEPS and stadv.eps is None and stadv.step_size is None
    fgsm_spec = AttackSpec("fgsm", eps=0.1, steps=5, seed=3)
    assert fgsm_spec.settings() == {"name": "fgsm", "eps": 0.1}
    assert fgsm_spec.steps is None and fgsm_spec.seed is None
    assert fgsm_spec == AttackSpec("fgsm", eps=0.1)  # unused settings never split equal attacks


def test_every_strength_accepts_a_fraction():
    pgd_spec = AttackSpec.create({"name": "pgd", "eps": "8/255", "step_size": "2/255"})
    assert (pgd_spec.eps, pgd_spec.step_size) == (8 / 255, 2 / 255)
    stadv = AttackSpec.create({"name": "stadv", "tau": "1/20", "learning_rate": "1/100",
                               "kappa": "0", "flow_bound": " 1/2 "})
    assert (stadv.tau, stadv.learning_rate, stadv.kappa, stadv.flow_bound) == (0.05, 0.01, 0.0, 0.5)


def test_create_accepts_any_dataclass_of_settings():
    @dataclasses.dataclass
    class Settings:  # duck-typed like tfadv.config.AttackConfig
        name: str = "apgd-dlr"
        eps: float = 0.5
        restarts: int = 2
        targeted: bool = False
        tau: float = 0.05

    spec = AttackSpec.create(Settings())
    assert spec.settings() == {"name": "apgd-dlr", "eps": 0.5, "steps": 100, "restarts": 2, "seed": 0}
    assert AttackSpec.create(spec) is spec


def test_a_spec_says_what_it_is_good_for():
    from tfadv.attacks import ATTACKS

    assert AttackSpec("pgd", eps=0.1).is_linf and AttackSpec("pgd", eps=0.1).can_train
    assert AttackSpec("fgsm", eps=0.1).is_linf and not AttackSpec("stadv").is_linf
    assert AttackSpec("stadv").can_train and not AttackSpec("apgd-ce", eps=0.1).can_train
    assert AttackSpec("apgd-dlr", eps=0.1).is_linf
    with pytest.raises(ValueError, match="stadv has no radius"):
        AttackSpec("stadv").run(None, None, None, eps=0.1)
    for name, row in ATTACKS.items():  # every row's defaults are settings it uses
        assert set(row.defaults) <= set(row.settings), name


def test_the_spec_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        AttackSpec("fgsm", eps=0.1).eps = 0.2


def test_labels_and_ids():
    assert AttackSpec("pgd", eps=8 / 255, steps=20, restarts=2).label == "PGD-20×2 ε=8/255"
    assert AttackSpec("apgd-dlr", eps=4 / 255).label == "APGD-DLR-100 ε=4/255"
    assert AttackSpec("fgsm", eps=0.03).label == "FGSM ε=0.03"
    assert AttackSpec("stadv", tau=0.1).label == "stAdv τ=0.1"
    assert AttackSpec("pgd", eps=0.5, steps=3).id == (
        "pgd(eps=0.5, steps=3, step_size=0.125, random_start=True, restarts=1, seed=0)")


@pytest.mark.parametrize(
    "attack, message",
    [
        ({"name": "cw"}, "name='cw'"),
        ({"name": "pgd", "eps": 1.5}, "eps=1.5"),
        ({"name": "pgd", "eps": -0.1}, "eps=-0.1"),
        ({"name": "pgd", "eps": "abc"}, "eps='abc'"),
        ({"name": "pgd"}, "eps=None"),
        ({"name": "pgd", "eps": 0.1, "steps": 0}, "steps=0"),
        ({"name": "pgd", "eps": 0.1, "step_size": -1.0}, "step_size=-1.0"),
        ({"name": "stadv", "tau": -1.0}, "tau=-1.0"),
        ({"name": "pgd", "eps": 0.1, "nsteps": 3}, "nsteps"),
        ({"name": "fgsm", "eps": 0.1, "targeted": True}, "targeted"),
        ({"name": "pgd", "eps": 0.1, "steps": 2.5}, "steps=2.5"),
        ({"name": "pgd", "eps": 0.1, "restarts": True}, "restarts=True"),
        ({"name": "pgd", "eps": 0.1, "seed": -1}, "seed=-1"),
        ({"name": "pgd", "eps": 0.1, "random_start": "yes"}, "random_start='yes'"),
        ({"name": "stadv", "learning_rate": "fast"}, "learning_rate='fast'"),
        ({"name": "stadv", "flow_bound": 0}, "flow_bound=0"),
        ({"eps": 0.1}, "needs a name"),
        (5, "attack=5"),
    ],
)
def test_bad_attacks_raise_value_error(attack, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        AttackSpec.create(attack)


# ------------------------------------------------------------ running


def test_pgd_moves_by_steps_times_step_size_up_to_eps(setup):
    model, x, y = setup
    spec = AttackSpec("pgd", eps=0.05, step_size=0.02, steps=2, random_start=False)
    np.testing.assert_allclose(spec.run(model, x, y, jit_compile=False), x + 0.04, atol=1e-6)
    three = dataclasses.replace(spec, steps=3)  # 0.06 > ε: projected back to the ball
    np.testing.assert_allclose(three.run(model, x, y, jit_compile=False), x + 0.05, atol=1e-6)


def test_an_eps_override_keeps_pgds_step_fraction(setup):
    model, x, y = setup
    spec = AttackSpec("pgd", eps=0.08, steps=2, random_start=False)  # step ε/4 = 0.02
    x_adv = spec.run(model, x, y, eps=tf.constant(0.04), jit_compile=False)  # step 0.01
    np.testing.assert_allclose(x_adv, x + 0.02, atol=1e-6)
    explicit = AttackSpec("pgd", eps=0.1, step_size=0.05, steps=1, random_start=False)
    np.testing.assert_allclose(explicit.run(model, x, y, eps=0.02, jit_compile=False), x + 0.01,
                               atol=1e-6)
    fgsm_spec = AttackSpec("fgsm", eps=0.1)
    np.testing.assert_allclose(fgsm_spec.run(model, x, y, eps=tf.constant(0.03), jit_compile=False),
                               fgsm(model, x, y, 0.03, jit_compile=False), atol=1e-7)
    with pytest.raises(ValueError, match="eps=0.1"):
        AttackSpec("stadv").run(model, x, y, eps=0.1)


def test_an_eps_override_works_inside_tf_function(setup):
    model, x, y = setup
    spec = AttackSpec("pgd", eps=0.08, steps=2, random_start=False)
    step = tf.function(lambda images, labels, eps: spec.run(model, images, labels, eps=eps))
    np.testing.assert_allclose(step(x, y, tf.constant(0.04)), x + 0.02, atol=1e-6)
    np.testing.assert_allclose(step(x, y, tf.constant(0.08)), x + 0.04, atol=1e-6)


def test_zero_eps_returns_the_images_without_attacking(setup):
    model, x, y = setup
    assert AttackSpec("pgd", eps=0).run(model, x, y) is x
    assert AttackSpec("apgd-ce", eps=0.1).run(model, x, y, eps=0.0) is x


def test_batch_index_derives_the_seed_and_none_draws_fresh_starts(setup):
    model, x, y = setup
    spec = AttackSpec("pgd", eps=0.1, steps=1, step_size=0.001, seed=2)

    def run(**kwargs):
        return np.asarray(spec.run(model, x, y, jit_compile=False, **kwargs))

    expected = pgd(model, x, y, 0.1, 0.001, 1, seed=2 * SEED_STRIDE + 3, jit_compile=False)
    np.testing.assert_array_equal(run(batch_index=3), expected)
    np.testing.assert_array_equal(run(batch_index=3), run(batch_index=3))
    assert np.abs(run(batch_index=3) - run(batch_index=4)).max() > 0
    assert np.abs(run(batch_index=None) - run(batch_index=None)).max() > 0
    with pytest.raises(ValueError, match="batch_index=-1"):
        run(batch_index=-1)


def test_attacks_import_nothing_of_training_or_config():
    code = ("import sys, tfadv.attacks; "
            "print(sorted(m for m in sys.modules if m.startswith(('tfadv.config', 'tfadv.training'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
