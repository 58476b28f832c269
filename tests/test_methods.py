"""Training methods: one compiled train step each, checked against independent computations."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfadv import attacks, models
from tfadv.layers import ConditionedBatchNormalization
from tfadv.models.conditioning import bind_condition, condition_inputs
from tfadv.training import methods

SHAPE = (8, 8, 3)
EPS = 8 / 255


def _tiny(norm="bn", **norm_options):
    return models.build("tiny", input_shape=SHAPE, norm=norm, norm_options=norm_options or None)


def _compile(model, learning_rate=0.1, **kwargs):
    model.compile(optimizer=keras.optimizers.SGD(learning_rate), **kwargs)
    return model


def _ce(y, logits):
    return float(np.mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)))


def _accuracy(y, logits):
    return float(np.mean(np.argmax(np.asarray(logits), axis=1) == y))


FGSM = {"name": "fgsm", "eps": EPS}
PGD_FIXED = {"name": "pgd", "eps": EPS, "steps": 2, "random_start": False}

CASES = {
    "adversarial": ("bn", {"attack": {"name": "pgd", "eps": EPS, "steps": 2}}),
    "adversarial_mix": ("bn", {"attack": FGSM, "adversarial_fraction": 0.5}),
    "finetune_online": ("bn", {"attack": FGSM, "online": True}),
    "advprop": ("dual_bn", {"attack": {"name": "pgd", "eps": EPS, "steps": 2}}),
    "robmask": ("robmask", {"steps": 2}),
    "bn_finetune": ("bn", {"attack": FGSM}),
    "stadv": ("bn", {"attack": {"name": "stadv", "steps": 2}}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_method_fits_and_logs_clean_and_robust_metrics(case, data):
    norm, settings = CASES[case]
    kind = {"adversarial_mix": "adversarial", "finetune_online": "finetune", "stadv": "adversarial"}.get(case, case)
    inner = _tiny(norm)
    before = [w.copy() for w in inner.get_weights()]
    model = _compile(methods.wrap(inner, kind, **settings))
    history = model.fit(*data, batch_size=8, epochs=1, validation_data=data, verbose=0).history
    expected = {"loss", "accuracy", "robust_accuracy"}
    # All-adversarial training has no clean image in its training pass: its training clean
    # accuracy is opt-in (train_clean_accuracy=True), validation always has it.
    trained = expected - {"accuracy"} if case in ("adversarial", "stadv") else expected
    assert set(history) == trained | {f"val_{k}" for k in expected}
    for name, values in history.items():
        assert np.isfinite(values[-1]), name
        if "accuracy" in name:
            assert 0.0 <= values[-1] <= 1.0, name
    assert any(not np.array_equal(a, b) for a, b in zip(before, inner.get_weights()))


@pytest.mark.parametrize("kind, norm, settings, clean_p, attack_p", [
    ("adversarial", "bn", {"attack": FGSM}, None, None),
    ("advprop", "dual_bn", {"attack": PGD_FIXED}, 0.0, 0.0),
    ("robmask", "robmask", {"steps": 2, "random_start": False}, 0.0, 1.0),
])
def test_validation_metrics_equal_independent_evaluation(kind, norm, settings, clean_p, attack_p, data):
    x, y = data
    inner = _tiny(norm)
    inner(condition_inputs(x, 0.3) if clean_p is not None else x, training=True)  # move BN statistics
    model = _compile(methods.wrap(inner, kind, **settings))
    logs = model.evaluate(x, y, batch_size=16, return_dict=True, verbose=0)

    if clean_p is None:
        clean = inner(x)
        x_adv = attacks.fgsm(inner, x, y, EPS)
        adversarial = inner(x_adv)
    else:
        clean = inner(condition_inputs(x, clean_p))
        eps = EPS
        step = EPS / 4 if kind == "advprop" else 0.2 * EPS
        x_adv = attacks.pgd(bind_condition(inner, attack_p), x, y, eps, step, 2, random_start=False)
        adversarial = inner(condition_inputs(x_adv, attack_p))
    np.testing.assert_allclose(logs["loss"], _ce(y, clean), rtol=1e-5)
    assert logs["accuracy"] == pytest.approx(_accuracy(y, clean))
    assert logs["robust_accuracy"] == pytest.approx(_accuracy(y, adversarial))


def test_advprop_loss_is_clean_loss_on_main_plus_adversarial_loss_on_auxiliary(data):
    x, y = data
    inner = _tiny("dual_bn")
    reference = keras.models.clone_model(inner)
    reference.set_weights(inner.get_weights())
    x_adv = attacks.fgsm(bind_condition(reference, 1.0), x, y, EPS)
    clean_loss = _ce(y, reference(condition_inputs(x, 0.0), training=True))
    adversarial_loss = _ce(y, reference(condition_inputs(x_adv, 1.0), training=True))
    # A loss built differently (e.g. on the main route, or halved) differs by far more.
    assert abs(clean_loss - adversarial_loss) > 1e-3

    model = _compile(methods.wrap(inner, "advprop", attack=FGSM))
    logs = model.train_on_batch(x, y, return_dict=True)
    np.testing.assert_allclose(logs["loss"], clean_loss + adversarial_loss, rtol=1e-5)


def test_adversarial_fraction_attacks_the_first_share_of_the_batch(data):
    x, y = data
    inner = _tiny("bn")
    reference = keras.models.clone_model(inner)
    reference.set_weights(inner.get_weights())
    x_adv = attacks.fgsm(reference, x[:4], y[:4], EPS)  # round(0.25 · 16) = 4
    mixed = reference(np.concatenate([x_adv, x[4:]]), training=True)
    model = _compile(methods.wrap(inner, "adversarial", attack=FGSM, adversarial_fraction=0.25))
    logs = model.train_on_batch(x, y, return_dict=True)
    np.testing.assert_allclose(logs["loss"], _ce(y, mixed), rtol=1e-5)
    assert logs["robust_accuracy"] == pytest.approx(_accuracy(y[:4], mixed[:4]))
    assert logs["accuracy"] == pytest.approx(_accuracy(y[4:], mixed[4:]))


def test_all_adversarial_training_clean_accuracy_is_opt_in(data):
    x, y = data
    inner = _tiny("bn")
    reference = keras.models.clone_model(inner)
    reference.set_weights(inner.get_weights())
    clean = reference(x, training=False)  # measured before the update
    model = _compile(methods.wrap(inner, "adversarial", attack=FGSM, train_clean_accuracy=True))
    logs = model.train_on_batch(x, y, return_dict=True)
    assert logs["accuracy"] == pytest.approx(_accuracy(y, clean))
    model = _compile(methods.wrap(_tiny("bn"), "adversarial", attack=FGSM))
    assert "accuracy" not in model.train_on_batch(x, y, return_dict=True)


def _weighted_layers(model):
    return [layer for layer in model.layers if layer.weights]


def test_robmask_update_at_fixed_strength_matches_plain_bn_gradients(data):
    """At init, the RobMask model equals a plain-BN model; with p fixed, the
    basis rows must move by lr · multiplier · u_j(p) · ∂L/∂γ of that plain model."""
    x, y = data
    p, lr, basis_factor = 0.3, 0.1, 2.0
    conditioned = _tiny("robmask", k=2)
    plain = _tiny("bn")
    for source, target in zip(_weighted_layers(conditioned), _weighted_layers(plain)):
        if not isinstance(source, ConditionedBatchNormalization):
            target.set_weights(source.get_weights())

    eps = p * EPS
    x_adv = attacks.pgd(plain, x, y, eps, 0.2 * eps, 2, random_start=False)
    batch_norms = [l for l in plain.layers if isinstance(l, keras.layers.BatchNormalization)]
    plain_conv = [l for l in plain.layers if isinstance(l, keras.layers.Conv2D)][0]
    watched = [v for bn in batch_norms for v in (bn.gamma, bn.beta)] + [plain_conv.kernel]
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
            y, plain(x_adv, training=True), from_logits=True))
    gradients = tape.gradient(loss, watched)

    model = _compile(methods.wrap(conditioned, "robmask", steps=2, strength=p, random_start=False,
                                  learning_rate_multipliers={"basis": basis_factor}), learning_rate=lr)
    logs = model.train_on_batch(x, y, return_dict=True)
    np.testing.assert_allclose(logs["loss"], float(loss), rtol=1e-5)

    layers = [l for l in conditioned.layers if isinstance(l, ConditionedBatchNormalization)]
    u = np.array([1 - p, p])[:, None]
    for layer, g_gamma, g_beta in zip(layers, gradients[0:-1:2], gradients[1:-1:2]):
        np.testing.assert_allclose(layer.gamma_basis.numpy(), 1 - lr * basis_factor * u * g_gamma.numpy(),
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(layer.beta_basis.numpy(), -lr * u * g_beta.numpy(), rtol=1e-5, atol=1e-6)
    conv = [l for l in conditioned.layers if isinstance(l, keras.layers.Conv2D)][0]
    np.testing.assert_allclose(conv.kernel.numpy(), plain_conv.kernel.numpy() - lr * gradients[-1].numpy(),
                               rtol=1e-5, atol=1e-6)


def test_robmask_strength_sequence_is_seeded_by_step():
    inner = _tiny("robmask")
    model = _compile(methods.wrap(inner, "robmask", seed=5))
    draws = []
    for step in range(4):
        model.optimizer.iterations.assign(step)
        draws.append(float(model.draw_strength()))
    model.optimizer.iterations.assign(2)
    assert float(model.draw_strength()) == draws[2]
    assert len(set(draws)) == 4 and all(0 <= d < 1 for d in draws)


def test_mirrored_strategy_matches_one_device(data, two_cpu_strategy):
    """Two replicas of 8 images, synchronized BN statistics, deterministic
    attacks: the same weights as one device on 16 images. (One strategy for
    both methods: collective keys of separate strategies in one process clash.)"""
    x, y = data
    for kind, norm, settings in [("advprop", "dual_bn", {"attack": FGSM}),
                                 ("robmask", "robmask", {"steps": 2, "random_start": False})]:
        single = _tiny(norm, synchronized=True)
        initial = single.get_weights()
        _compile(methods.wrap(single, kind, **settings)).fit(
            x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
        with two_cpu_strategy.scope():
            mirrored = _tiny(norm, synchronized=True)
            mirrored.set_weights(initial)
            wrapped = _compile(methods.wrap(mirrored, kind, **settings))
        wrapped.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
        for a, b in zip(single.get_weights(), mirrored.get_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=kind)
        assert not np.allclose(single.get_weights()[1], initial[1])


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_step_runs_and_updates_weights(policy, data):
    keras.mixed_precision.set_global_policy(policy)
    inner = _tiny("robmask")
    before = [w.copy() for w in inner.get_weights()]
    model = _compile(methods.wrap(inner, "robmask", steps=2))
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer) == (policy == "mixed_float16")
    logs = model.train_on_batch(*data, return_dict=True)
    assert np.isfinite(logs["loss"])
    changed = [not np.array_equal(a, b) for a, b in zip(before, inner.get_weights())]
    assert sum(changed) >= len(changed) // 2


def test_train_step_compiles_with_xla(data):
    model = methods.wrap(_tiny("robmask"), "robmask", steps=2)
    _compile(model, jit_compile=True)
    logs = model.train_on_batch(*data, return_dict=True)
    assert np.isfinite(logs["loss"])


@pytest.mark.parametrize("kind, norm, settings", [
    ("advprop", "dual_bn", {"attack": FGSM}),
    ("robmask", "robmask", {"steps": 2}),
])
def test_trained_conditioned_models_round_trip_through_keras_files(kind, norm, settings, data, tmp_path):
    x, y = data
    inner = _tiny(norm)
    _compile(methods.wrap(inner, kind, **settings)).fit(x, y, batch_size=8, epochs=1, verbose=0)
    inner.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    for p in (0.0, 0.4, 1.0):
        np.testing.assert_array_equal(loaded.predict(condition_inputs(x, p), verbose=0),
                                      inner.predict(condition_inputs(x, p), verbose=0))


def test_invalid_settings_raise_value_errors_naming_the_value():
    plain, robmask = _tiny("bn"), _tiny("robmask")
    with pytest.raises(ValueError, match="eps_max=0"):
        methods.wrap(robmask, "robmask", eps_max=0)
    with pytest.raises(ValueError, match="eps_max=-0.1"):
        methods.wrap(robmask, "robmask", eps_max=-0.1)
    with pytest.raises(ValueError, match="k=0"):
        _tiny("robmask", k=0)
    with pytest.raises(ValueError, match="attack='apgd-ce'"):
        methods.wrap(plain, "adversarial", attack="apgd-ce")
    with pytest.raises(ValueError, match="attack='bim'"):
        methods.wrap(plain, "adversarial", attack={"name": "bim"})
    with pytest.raises(ValueError, match="restarts=2"):
        methods.wrap(plain, "adversarial", attack={"name": "pgd", "eps": 0.1, "restarts": 2})
    with pytest.raises(ValueError, match="targeted=True"):
        methods.wrap(plain, "adversarial", attack={"name": "pgd", "targeted": True})
    with pytest.raises(ValueError, match="epsilon"):
        methods.wrap(plain, "adversarial", attack={"name": "pgd", "epsilon": 0.1})
    with pytest.raises(ValueError, match="method='madry'"):
        methods.wrap(plain, "madry")
    with pytest.raises(ValueError, match="eps_maximum"):
        methods.wrap(robmask, "robmask", eps_maximum=0.1)
    with pytest.raises(ValueError, match="adversarial_fraction=0"):
        methods.wrap(plain, "adversarial", adversarial_fraction=0)
    with pytest.raises(ValueError, match="inner='tiny'"):
        methods.wrap(plain, "advprop")
    with pytest.raises(ValueError, match="optimizer=Adam"):
        methods.wrap(robmask, "robmask", learning_rate_multipliers={"basis": 10}).compile(optimizer="adam")
