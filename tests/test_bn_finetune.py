"""BN-only fine-tuning's moving statistics, and masking interpolation when they differ."""

import keras
import numpy as np
import pytest

from tfadv import models
from tfadv.config import ExperimentConfig
from tfadv.models.conditioning import condition_inputs
from tfadv.training import methods

SHAPE = (8, 8, 3)
FGSM = {"name": "fgsm", "eps": 8 / 255}


DATA = {"count": 14, "seed": 1, "shape": SHAPE}  # the conftest data fixture


def _batch_norms(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


def _robust(x):
    """A tiny model with non-trivial BN statistics and affine parameters."""
    model = models.build("tiny", input_shape=SHAPE)
    model(x, training=True)
    rng = np.random.default_rng(2)
    for layer in _batch_norms(model):
        layer.gamma.assign(rng.uniform(0.5, 1.5, layer.gamma.shape).astype("float32"))
        layer.beta.assign(rng.normal(0, 0.3, layer.beta.shape).astype("float32"))
    return model


def _copy(model):
    twin = keras.models.clone_model(model)
    twin.set_weights(model.get_weights())
    return twin


def _ce(y, logits):
    return float(np.mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)))


@pytest.mark.parametrize("freeze", [False, True])
def test_one_step_updates_the_moving_statistics_unless_frozen(freeze, data):
    x, y = data
    inner = _robust(x)
    before = {w.path: w.numpy().copy() for w in inner.weights}
    first = _batch_norms(inner)[0]
    # The first BN's input comes from frozen layers only: its batch moments are known before the step.
    features = keras.Model(inner.input, first.input)(x, training=False).numpy()
    axes = tuple(range(features.ndim - 1))
    old_mean, old_variance = first.moving_mean.numpy(), first.moving_variance.numpy()
    expected_loss = _ce(y, _copy(inner)(x, training=not freeze))

    model = methods.wrap(inner, "bn_finetune", attack=FGSM, freeze_statistics=freeze)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    logs = model.train_on_batch(x, y, return_dict=True)

    assert logs["loss"] == pytest.approx(expected_loss, rel=1e-5)
    if freeze:
        np.testing.assert_array_equal(first.moving_mean.numpy(), old_mean)
        np.testing.assert_array_equal(first.moving_variance.numpy(), old_variance)
    else:
        momentum = first.momentum
        np.testing.assert_allclose(first.moving_mean.numpy(),
                                   momentum * old_mean + (1 - momentum) * features.mean(axis=axes),
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(first.moving_variance.numpy(),
                                   momentum * old_variance + (1 - momentum) * features.var(axis=axes),
                                   rtol=1e-4, atol=1e-6)
    # Every other weight is untouched either way; γ and β moved.
    for weight in inner.weights:
        kind = weight.path.split("/")[-1]
        moved = not np.array_equal(before[weight.path], weight.numpy())
        expected = kind in ("gamma", "beta") or (not freeze and kind.startswith("moving_"))
        assert moved == expected, weight.path


def test_config_passes_freeze_statistics(data):
    x, _ = data
    config = ExperimentConfig()
    config.method.kind = "bn_finetune"
    config.method.attack.name = "fgsm"
    assert methods.wrap_from_config(_robust(x), config).freeze_statistics is False
    config.method.freeze_statistics = True
    assert methods.wrap_from_config(_robust(x), config).freeze_statistics is True
    with pytest.raises(ValueError, match="freeze_statistics"):
        methods.wrap(_robust(x), "bn_finetune", attack=FGSM, freeze_statistics="yes")


def test_adversarial_fine_tuning_trains_on_the_attacks_examples(data):
    """train_on="adversarial": the loss is the CE of the FGSM batch (hand-crafted here) in training mode."""
    import tensorflow as tf

    x, y = data
    inner = _robust(x)
    reference = _copy(inner)
    images = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(images)
        loss = keras.losses.sparse_categorical_crossentropy(y, reference(images, training=False), from_logits=True)
    x_adv = np.clip(x + FGSM["eps"] * np.sign(tape.gradient(loss, images).numpy()), 0, 1)
    expected = _ce(y, _copy(inner)(x_adv, training=True))
    clean = _ce(y, _copy(inner)(x, training=True))
    assert abs(expected - clean) > 1e-3  # the two choices are told apart

    config = ExperimentConfig()
    config.method.kind, config.method.train_on = "bn_finetune", "adversarial"
    config.method.attack.name = "fgsm"
    model = methods.wrap_from_config(inner, config)
    assert model.train_on == "adversarial"
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    logs = model.train_on_batch(x, y, return_dict=True)
    assert logs["loss"] == pytest.approx(expected, rel=1e-4)
    with pytest.raises(ValueError, match="train_on"):
        methods.wrap(_robust(x), "bn_finetune", attack=FGSM, train_on="both")


@pytest.fixture
def finetuned(data):
    """A robust model and its BN-only fine-tuning with updated statistics."""
    x, y = data
    robust = _robust(x)
    clean = _copy(robust)
    method = methods.wrap(clean, "bn_finetune", attack=FGSM)
    method.compile(optimizer=keras.optimizers.SGD(0.5))
    method.fit(x, y, batch_size=7, epochs=2, verbose=0)
    for c, r in zip(_batch_norms(clean), _batch_norms(robust)):
        assert not np.allclose(c.moving_mean.numpy(), r.moving_mean.numpy())
    return clean, robust


def _plain_with(model, batch_norm_values):
    """A copy of ``model`` whose BN layers hold the given (γ, β, mean, variance)."""
    twin = _copy(model)
    for layer, values in zip(_batch_norms(twin), batch_norm_values):
        layer.set_weights(list(values))
    return twin


def _values(model):
    return [[w.numpy() for w in (l.gamma, l.beta, l.moving_mean, l.moving_variance)] for l in _batch_norms(model)]


def test_interpolation_refuses_differing_statistics_unless_told(finetuned, data):
    clean, robust = finetuned
    with pytest.raises(ValueError, match="statistics='fold'"):
        methods.interpolation_model(clean, robust)
    with pytest.raises(ValueError, match="statistics"):
        methods.interpolation_model(clean, robust, statistics="mean")


def test_fold_reproduces_both_models_and_interpolates_the_affine_maps(finetuned, data):
    x, _ = data
    clean, robust = finetuned
    knob = methods.interpolation_model(clean, robust, statistics="fold")
    np.testing.assert_allclose(knob(condition_inputs(x, 0.0)), clean(x), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(knob(condition_inputs(x, 1.0)), robust(x), rtol=1e-4, atol=1e-5)
    # In between: the clean γ, β re-expressed over the robust statistics, mixed linearly.
    p = 0.3
    mixed = []
    for (gc, bc, mc, vc), (gr, br, mr, vr), layer in zip(_values(clean), _values(robust), _batch_norms(robust)):
        sc, sr = np.sqrt(vc + layer.epsilon), np.sqrt(vr + layer.epsilon)
        g_fold, b_fold = gc * sr / sc, bc + gc * (mr - mc) / sc
        mixed.append(((1 - p) * g_fold + p * gr, (1 - p) * b_fold + p * br, mr, vr))
    np.testing.assert_allclose(knob(condition_inputs(x, p)), _plain_with(robust, mixed)(x),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("statistics", ["robust", "clean"])
def test_one_models_statistics_reproduce_that_end_only(statistics, finetuned, data):
    x, _ = data
    clean, robust = finetuned
    knob = methods.interpolation_model(clean, robust, statistics=statistics)
    kept, other, kept_p = (robust, clean, 1.0) if statistics == "robust" else (clean, robust, 0.0)
    np.testing.assert_allclose(knob(condition_inputs(x, kept_p)), kept(x), rtol=1e-4, atol=1e-5)
    # The other end: its γ, β over the kept model's statistics, which is not that model.
    swapped = _plain_with(kept, [(g, b, m, v) for (g, b, _, _), (_, _, m, v) in zip(_values(other), _values(kept))])
    other_end = knob(condition_inputs(x, 1.0 - kept_p))
    np.testing.assert_allclose(other_end, swapped(x), rtol=1e-4, atol=1e-5)
    assert not np.allclose(other_end, other(x), atol=1e-4)
