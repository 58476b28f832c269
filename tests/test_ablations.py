"""Paper 2's ablations: dual BN with several branches, AdvProp's random-strength and
multi-auxiliary variants, and their configs, checked against independent computations."""

import os

import keras
import numpy as np
import pytest
from keras import ops

from tfadv import attacks, models
from tfadv.config import load_config
from tfadv.layers import DualBatchNormalization
from tfadv.models.conditioning import bind_condition, condition_inputs
from tfadv.training import methods
from tfadv.training.callbacks import EpochCheckpoint

EPS = 1e-5
MOMENTUM = 0.9
SHAPE = (8, 8, 3)
PAPER2 = os.path.join(os.path.dirname(__file__), "..", "configs", "paper2")


def _batch(seed=0, shape=(6, 3, 3, 4), p=None):
    rng = np.random.default_rng(seed)
    x = rng.normal(2.0, 3.0, size=shape).astype("float32")
    if p is None:
        p = rng.uniform(0, 1, size=(shape[0], 1))
    return x, np.broadcast_to(np.asarray(p, "float32").reshape(-1, 1), (shape[0], 1)).copy()


def _layer(x, **kwargs):
    layer = DualBatchNormalization(**kwargs)
    layer.build([x.shape, (x.shape[0], 1)])
    rng = np.random.default_rng(1)
    for w in layer.weights:
        value = rng.uniform(0.5, 1.5, size=w.shape) if "variance" in w.name else rng.normal(size=w.shape)
        w.assign(value.astype("float32"))
    return layer, {w.name: w.numpy().copy() for w in layer.weights}


def _np_bn(x, mean, var, gamma, beta):
    return gamma * (x - mean) / np.sqrt(var + EPS) + beta


# ------------------------------------------------------------ the layer


def test_two_branches_compute_the_released_formula_bit_for_bit():
    """The two-branch arithmetic as the layer was released, written out with the same ops."""
    x, p = _batch()
    layer, w = _layer(x)
    p4 = ops.reshape(ops.convert_to_tensor(p), [-1, 1, 1, 1])

    def affine(gamma, beta, mean, variance):
        multiplier = gamma * ops.rsqrt(variance + EPS)
        return multiplier, beta - mean * multiplier

    out = layer([x, p], training=True).numpy()
    mean, variance = ops.moments(ops.convert_to_tensor(x), axes=[0, 1, 2])
    gamma = (1.0 - p4) * w["main_gamma"] + p4 * w["aux_gamma"]
    beta = (1.0 - p4) * w["main_beta"] + p4 * w["aux_beta"]
    multiplier, offset = affine(gamma, beta, mean, variance)
    np.testing.assert_array_equal(out, (x * multiplier + offset).numpy())
    aux_share = ops.mean(p4)
    for branch, share in (("main", 1.0 - aux_share), ("aux", aux_share)):
        rate = (1.0 - MOMENTUM) * share
        for stat, value in (("moving_mean", mean), ("moving_variance", variance)):
            expected = w[f"{branch}_{stat}"] * (1.0 - rate) + value * rate
            np.testing.assert_array_equal(getattr(layer, f"{branch}_{stat}").numpy(), expected.numpy())

    out = layer([x, p], training=False).numpy()
    main = affine(w["main_gamma"], w["main_beta"], layer.main_moving_mean, layer.main_moving_variance)
    aux = affine(w["aux_gamma"], w["aux_beta"], layer.aux_moving_mean, layer.aux_moving_variance)
    multiplier = (1.0 - p4) * main[0] + p4 * aux[0]
    offset = (1.0 - p4) * main[1] + p4 * aux[1]
    np.testing.assert_array_equal(out, (x * multiplier + offset).numpy())
    assert layer.branch_names == ("main", "aux") and layer.anchors == (0.0, 1.0)


@pytest.mark.parametrize("training", [True, False])
def test_three_branches_at_half_are_the_middle_bn(training):
    x, p = _batch(p=0.5)
    layer, w = _layer(x, branches=3)
    out = layer([x, p], training=training).numpy()
    if training:
        mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    else:
        mean, var = w["aux_moving_mean"], w["aux_moving_variance"]
    np.testing.assert_allclose(out, _np_bn(x, mean, var, w["aux_gamma"], w["aux_beta"]), rtol=1e-5, atol=1e-5)


def test_three_branches_mix_neighbouring_anchors_in_inference():
    x, p = _batch()
    p[:3] = 0.25  # halfway between main (0) and aux (0.5)
    p[3:] = 0.9  # 0.2 of aux (0.5), 0.8 of aux2 (1)
    layer, w = _layer(x, branches=3)
    out = layer([x, p], training=False).numpy()
    bn = {name: _np_bn(x, w[f"{name}_moving_mean"], w[f"{name}_moving_variance"],
                       w[f"{name}_gamma"], w[f"{name}_beta"]) for name in ("main", "aux", "aux2")}
    expected = np.concatenate([0.5 * bn["main"][:3] + 0.5 * bn["aux"][:3],
                               0.2 * bn["aux"][3:] + 0.8 * bn["aux2"][3:]])
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_moving_statistics_move_only_by_their_branch_share():
    x, p = _batch()
    p[:] = np.array([0.0, 0.1, 0.25, 0.4, 0.5, 0.3], "float32")[:, None]  # none beyond aux's anchor
    layer, w = _layer(x, branches=3)
    layer([x, p], training=True)
    hats = np.maximum(0.0, 1.0 - 2.0 * np.abs(p - np.array([0.0, 0.5, 1.0])))  # [B, 3]
    shares = hats.mean(axis=0)
    assert shares[2] == 0.0 and shares[0] > 0 and shares[1] > 0
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    for index, (name, share) in enumerate(zip(("main", "aux", "aux2"), shares)):
        rate = (1 - MOMENTUM) * share
        for stat, value in (("moving_mean", mean), ("moving_variance", var)):
            actual = layer.branch_variables(index)[stat].numpy()
            if share == 0:
                np.testing.assert_array_equal(actual, w[f"{name}_{stat}"])
            else:
                expected = w[f"{name}_{stat}"] + rate * (value - w[f"{name}_{stat}"])
                np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)
                assert not np.allclose(actual, w[f"{name}_{stat}"])


def test_three_branches_round_trip_through_a_keras_file(tmp_path):
    images = keras.Input((5, 5, 3), name="images")
    condition = keras.Input((1,), name="condition")
    h = keras.layers.Conv2D(4, 3)(images)
    h = DualBatchNormalization(branches=3, momentum=0.8, name="dual3")([h, condition])
    logits = keras.layers.Dense(2)(keras.layers.Flatten()(h))
    model = keras.Model({"images": images, "condition": condition}, logits)
    inputs = {"images": np.random.default_rng(0).uniform(size=(4, 5, 5, 3)).astype("float32"),
              "condition": np.array([[0.0], [0.3], [0.5], [1.0]], "float32")}
    model(inputs, training=True)
    rng = np.random.default_rng(2)
    for w in model.get_layer("dual3").weights:
        w.assign(rng.uniform(0.5, 1.5, size=w.shape).astype("float32"))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded.predict(inputs, verbose=0), model.predict(inputs, verbose=0))
    layer = loaded.get_layer("dual3")
    assert layer.branches == 3 and layer.momentum == 0.8
    assert [w.path for w in layer.weights] == [f"dual3/{n}" for n in (
        "main_gamma", "main_beta", "aux_gamma", "aux_beta", "aux2_gamma", "aux2_beta",
        "main_moving_mean", "main_moving_variance", "aux_moving_mean", "aux_moving_variance",
        "aux2_moving_mean", "aux2_moving_variance")]
    np.testing.assert_array_equal(layer.gammas[2].numpy(), model.get_layer("dual3").gammas[2].numpy())
    assert layer.branch_variables(2)["moving_mean"] is layer.moving_means[2]


def test_branches_option_builds_through_norm_options_and_is_checked():
    inner = models.build("tiny", input_shape=SHAPE, norm="dual_bn", norm_options={"branches": 3})
    duals = [l for l in inner.layers if isinstance(l, DualBatchNormalization)]
    assert len(duals) == 2 and all(l.branches == 3 for l in duals)
    for bad in (1, 2.5, True):
        with pytest.raises(ValueError, match="branches"):
            DualBatchNormalization(branches=bad)
        with pytest.raises(ValueError, match="branches"):
            models.build("tiny", input_shape=SHAPE, norm="dual_bn", norm_options={"branches": bad})
    with pytest.raises(ValueError, match="'branches' applies to norm='dual_bn' only"):
        models.build("tiny", input_shape=SHAPE, norm="bn", norm_options={"branches": 3})


# ------------------------------------------------------------ AdvProp variants


def _ce(y, logits):
    return float(np.mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)))


def _compiled(model, learning_rate=0.1):
    model.compile(optimizer=keras.optimizers.SGD(learning_rate))
    return model


def _tiny_dual(branches=2, seed=0):
    keras.utils.set_random_seed(seed)
    return models.build("tiny", input_shape=SHAPE, norm="dual_bn", norm_options={"branches": branches})


FGSM = {"name": "fgsm", "eps": 8 / 255}


def test_two_aux_loss_is_clean_loss_plus_each_strengths_loss_on_its_branch(data):
    x, y = data
    inner = _tiny_dual(branches=3)
    reference = keras.models.clone_model(inner)
    reference.set_weights(inner.get_weights())
    losses = [_ce(y, reference(condition_inputs(x, 0.0), training=True))]
    for eps, p in ((4 / 255, 0.5), (8 / 255, 1.0)):
        x_adv = attacks.fgsm(bind_condition(reference, p), x, y, eps)
        losses.append(_ce(y, reference(condition_inputs(x_adv, p), training=True)))
    # A loss built differently (a term dropped, a branch swapped) differs by far more than rtol.
    assert min(abs(a - b) for a, b in ((losses[0], losses[1]), (losses[1], losses[2]))) > 1e-3

    # Given unsorted, as fraction strings (config files): sorted by ε onto the anchors.
    model = _compiled(methods.wrap(inner, "advprop", attack=FGSM, aux_eps=["8/255", "4/255"]))
    assert model.aux_eps == (4 / 255, 8 / 255) and model.aux_conditions == (0.5, 1.0)
    logs = model.train_on_batch(x, y, return_dict=True)
    np.testing.assert_allclose(logs["loss"], sum(losses), rtol=1e-5)


def test_random_strength_trains_at_the_drawn_strength_into_the_auxiliary_bn(data):
    x, y = data
    inner = _tiny_dual()
    reference = keras.models.clone_model(inner)
    reference.set_weights(inner.get_weights())
    model = _compiled(methods.wrap(inner, "advprop", attack=FGSM, random_strength=True,
                                   eps_max=10 / 255, seed=3))
    model.optimizer.iterations.assign(5)
    p = float(model.draw_strength())
    x_adv = attacks.fgsm(bind_condition(reference, 1.0), x, y, p * 10 / 255)
    expected = (_ce(y, reference(condition_inputs(x, 0.0), training=True))
                + _ce(y, reference(condition_inputs(x_adv, 1.0), training=True)))
    at_full = attacks.fgsm(bind_condition(reference, 1.0), x, y, 10 / 255)
    full = (_ce(y, reference(condition_inputs(x, 0.0), training=True))
            + _ce(y, reference(condition_inputs(at_full, 1.0), training=True)))
    assert abs(expected - full) > 1e-3  # the strength matters at this p
    logs = model.train_on_batch(x, y, return_dict=True)
    np.testing.assert_allclose(logs["loss"], expected, rtol=1e-5)


def test_random_strength_stream_is_robmasks_seeded_sequence():
    inner = _tiny_dual()
    model = _compiled(methods.wrap(inner, "advprop", attack=FGSM, random_strength=True, seed=5))
    other_seed = _compiled(methods.wrap(inner, "advprop", attack=FGSM, random_strength=True, seed=6))
    robmask = _compiled(methods.wrap(models.build("tiny", input_shape=SHAPE, norm="robmask"),
                                     "robmask", seed=5))

    def sequence(method, steps=4):
        draws = []
        for step in range(steps):
            method.optimizer.iterations.assign(step)
            draws.append(float(method.draw_strength()))
        return draws

    draws = sequence(model)
    assert draws == sequence(robmask)  # one mechanism: same seed, same strengths
    assert len(set(draws)) == 4 and all(0 <= d < 1 for d in draws)
    assert sequence(other_seed) != draws
    assert model.eps_max == pytest.approx(8 / 255)  # default: the attack's ε


def test_random_strength_sequence_continues_after_a_resume(data, tmp_path):
    """Per-step losses of a run interrupted and restored from its checkpoint equal
    the uninterrupted run's; a restarted strength stream would not."""
    x, y = data
    batches = [(x[:8], y[:8]), (x[8:], y[8:])] * 2
    settings = {"attack": FGSM, "random_strength": True, "seed": 1}

    def method(inner):
        model = _compiled(methods.wrap(inner, "advprop", **settings))
        model.optimizer.build(model.trainable_variables)
        return model

    init = _tiny_dual(seed=0).get_weights()
    uninterrupted = method(_tiny_dual(seed=0))
    losses = [uninterrupted.train_on_batch(*b, return_dict=True)["loss"] for b in batches]

    first = method(_tiny_dual(seed=0))
    first.inner.set_weights(init)
    assert [first.train_on_batch(*b, return_dict=True)["loss"] for b in batches[:2]] == pytest.approx(
        losses[:2], rel=1e-6)
    EpochCheckpoint(str(tmp_path), {"model": first, "optimizer": first.optimizer}).on_epoch_end(0)

    resumed = method(_tiny_dual(seed=9))  # other weights, step 0: all restored
    restored = EpochCheckpoint(str(tmp_path), {"model": resumed, "optimizer": resumed.optimizer}).restore()
    assert restored == 1 and int(resumed.optimizer.iterations.numpy()) == 2
    restarted = method(_tiny_dual(seed=9))  # the same weights but the stream from step 0
    restarted.inner.set_weights(resumed.inner.get_weights())
    resumed_losses = [resumed.train_on_batch(*b, return_dict=True)["loss"] for b in batches[2:]]
    restarted_losses = [restarted.train_on_batch(*b, return_dict=True)["loss"] for b in batches[2:]]
    np.testing.assert_allclose(resumed_losses, losses[2:], rtol=1e-5)
    assert max(abs(a - b) for a, b in zip(restarted_losses, losses[2:])) > 1e-4


def test_invalid_variant_settings_name_the_value():
    two = _tiny_dual()
    three = _tiny_dual(branches=3)
    cases = [
        (two, {"aux_eps": [4 / 255, 8 / 255]}, "branches=3"),
        (three, {}, "branches=2"),
        (three, {"aux_eps": [8 / 255, 8 / 255]}, "distinct"),
        (three, {"aux_eps": [0, 8 / 255]}, r"\(0, 1\]"),
        (two, {"aux_eps": "8/255"}, "list"),
        (two, {"eps_max": 8 / 255}, "random_strength=True"),
        (two, {"random_strength": True, "aux_eps": [8 / 255]}, "one of them"),
        (two, {"random_strength": True, "attack": {"name": "stadv"}}, "'stadv'"),
        (two, {"random_strength": True, "eps_max": 1.5}, "eps_max"),
        (two, {"random_strength": "yes"}, "random_strength"),
    ]
    for inner, settings, message in cases:
        with pytest.raises(ValueError, match=message):
            methods.wrap(inner, "advprop", **{"attack": FGSM, **settings})


# ------------------------------------------------------------ configs


@pytest.mark.parametrize("file, name", [
    ("advprop_random_strength.yaml", "paper2-densenet121-cifar10-advprop-random-strength-20ep"),
    ("advprop_two_aux.yaml", "paper2-densenet121-cifar10-advprop-two-aux-20ep"),
    ("robmask_eps10.yaml", "paper2-resnet18-cifar10-robmask-eps10-20ep"),
])
def test_ablation_configs_load_and_build(file, name):
    config = load_config(os.path.join(PAPER2, file))
    assert config.name == name
    # The tiny model stands in for DenseNet-121 (same norm and options), to keep the test quick.
    inner = models.build("tiny", input_shape=SHAPE, norm=config.model.norm,
                         norm_options=config.model.norm_options)
    wrapped = methods.wrap_from_config(inner, config)
    if file == "robmask_eps10.yaml":
        assert wrapped.eps_max == pytest.approx(10 / 255) and wrapped.step_fraction == pytest.approx(1 / 5)
        assert wrapped.steps == 7
        return
    assert isinstance(wrapped, methods.AdvProp)
    assert wrapped.attack.steps == 7 and wrapped.attack.step_size / wrapped.attack.eps == pytest.approx(1 / 5)
    if file == "advprop_random_strength.yaml":
        assert wrapped.random_strength and wrapped.eps_max == pytest.approx(8 / 255)
        assert wrapped.aux_eps is None and wrapped.seed == config.seed
    else:
        assert not wrapped.random_strength
        assert wrapped.aux_eps == pytest.approx((4 / 255, 8 / 255)) and wrapped.aux_conditions == (0.5, 1.0)
        assert {l.branches for l in inner.layers if isinstance(l, DualBatchNormalization)} == {3}


def test_every_branch_is_in_tensorflow_checkpoints(tmp_path):
    """The resume of a run (tf.train.Checkpoint) restores every branch's four variables."""
    import tensorflow as tf

    x, p = _batch()
    layer, _ = _layer(x, branches=3)
    assert [len(v) for v in (layer.gammas, layer.betas, layer.moving_means, layer.moving_variances)] == [3] * 4
    saved = [w.numpy().copy() for w in layer.weights]
    path = tf.train.Checkpoint(layer=layer).save(str(tmp_path / "ckpt"))
    for w in layer.weights:
        w.assign(np.zeros(w.shape, "float32"))
    tf.train.Checkpoint(layer=layer).restore(path).assert_consumed()
    for w, value in zip(layer.weights, saved):
        np.testing.assert_array_equal(w.numpy(), value)
    assert DualBatchNormalization().branch_variables(1) == {
        "gamma": None, "beta": None, "moving_mean": None, "moving_variance": None}  # before build
