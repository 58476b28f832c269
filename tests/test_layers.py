"""DualBatchNormalization and ConditionedBatchNormalization against NumPy."""

import keras
import numpy as np
import pytest

from tfadv.layers import ConditionedBatchNormalization, DualBatchNormalization, encode_strength

EPS = 1e-5
MOMENTUM = 0.9


def _batch(seed=0, shape=(6, 3, 3, 4)):
    rng = np.random.default_rng(seed)
    x = rng.normal(2.0, 3.0, size=shape).astype("float32")
    p = rng.uniform(0, 1, size=(shape[0], 1)).astype("float32")
    return x, p


def _built(layer, x):
    layer.build([x.shape, (x.shape[0], 1)])
    return layer


def _randomize(layer, seed=1):
    """Set every weight to a random value (variances positive)."""
    rng = np.random.default_rng(seed)
    for w in layer.weights:
        value = rng.uniform(0.5, 1.5, size=w.shape) if "variance" in w.name \
            else rng.normal(size=w.shape)
        w.assign(value.astype("float32"))
    return {w.name: w.numpy().copy() for w in layer.weights}


def _np_bn(x, mean, var, gamma, beta):
    return gamma * (x - mean) / np.sqrt(var + EPS) + beta


def _p4(p):
    return p.reshape(-1, 1, 1, 1)


# ---------------------------------------------------------------- DualBN


def test_dual_bn_training_normalizes_with_batch_stats_and_mixed_affine():
    x, p = _batch()
    layer = _built(DualBatchNormalization(), x)
    w = _randomize(layer)
    out = layer([x, p], training=True).numpy()
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    gamma = (1 - _p4(p)) * w["main_gamma"] + _p4(p) * w["aux_gamma"]
    beta = (1 - _p4(p)) * w["main_beta"] + _p4(p) * w["aux_beta"]
    np.testing.assert_allclose(out, _np_bn(x, mean, var, gamma, beta), rtol=1e-4, atol=1e-4)


def test_dual_bn_moving_stats_weighted_by_branch_share():
    x, p = _batch()
    layer = _built(DualBatchNormalization(), x)
    w = _randomize(layer)
    layer([x, p], training=True)
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    aux_share = p.mean()
    for branch, share in (("main", 1 - aux_share), ("aux", aux_share)):
        rate = (1 - MOMENTUM) * share
        for stat, batch_value in (("moving_mean", mean), ("moving_variance", var)):
            old = w[f"{branch}_{stat}"]
            expected = old + rate * (batch_value - old)
            np.testing.assert_allclose(
                getattr(layer, f"{branch}_{stat}").numpy(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("route, updated, untouched", [(0.0, "main", "aux"), (1.0, "aux", "main")])
def test_dual_bn_pure_batch_updates_only_its_branch(route, updated, untouched):
    x, _ = _batch()
    p = np.full((x.shape[0], 1), route, "float32")
    layer = _built(DualBatchNormalization(), x)
    w = _randomize(layer)
    layer([x, p], training=True)
    mean = x.mean(axis=(0, 1, 2))
    np.testing.assert_array_equal(getattr(layer, f"{untouched}_moving_mean").numpy(),
                                  w[f"{untouched}_moving_mean"])
    expected = MOMENTUM * w[f"{updated}_moving_mean"] + (1 - MOMENTUM) * mean
    np.testing.assert_allclose(getattr(layer, f"{updated}_moving_mean").numpy(), expected,
                               rtol=1e-5, atol=1e-5)


def test_dual_bn_inference_mixes_the_two_bns_per_example():
    x, p = _batch()
    layer = _built(DualBatchNormalization(), x)
    w = _randomize(layer)
    out = layer([x, p], training=False).numpy()
    main = _np_bn(x, w["main_moving_mean"], w["main_moving_variance"], w["main_gamma"], w["main_beta"])
    aux = _np_bn(x, w["aux_moving_mean"], w["aux_moving_variance"], w["aux_gamma"], w["aux_beta"])
    np.testing.assert_allclose(out, (1 - _p4(p)) * main + _p4(p) * aux, rtol=1e-4, atol=1e-4)
    # No update in inference.
    np.testing.assert_array_equal(layer.main_moving_mean.numpy(), w["main_moving_mean"])


def test_dual_bn_at_p0_is_keras_batch_normalization():
    x, _ = _batch()
    zeros = np.zeros((x.shape[0], 1), "float32")
    dual = _built(DualBatchNormalization(), x)
    bn = keras.layers.BatchNormalization(momentum=MOMENTUM, epsilon=EPS)
    bn.build(x.shape)
    for training in (True, True, False):
        np.testing.assert_allclose(dual([x, zeros], training=training), bn(x, training=training),
                                   rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dual.main_moving_variance, bn.moving_variance, rtol=1e-6)


# ---------------------------------------------------------------- encoding


def test_encode_strength_k2_is_one_minus_p_and_p():
    u = encode_strength(np.array([0.0, 0.5, 1.0, 0.3]), 2).numpy()
    np.testing.assert_allclose(u, [[1, 0], [0.5, 0.5], [0, 1], [0.7, 0.3]], atol=1e-7)


def test_encode_strength_k3_hat_weights():
    # anchors 0, 0.5, 1
    u = encode_strength(np.array([[0.0], [0.25], [0.5], [0.9], [1.0]]), 3).numpy()
    expected = [[1, 0, 0], [0.5, 0.5, 0], [0, 1, 0], [0, 0.2, 0.8], [0, 0, 1]]
    np.testing.assert_allclose(u, expected, atol=1e-6)
    np.testing.assert_allclose(u.sum(axis=1), 1.0, atol=1e-6)


def test_encode_strength_k1_and_invalid_k():
    np.testing.assert_array_equal(encode_strength(np.array([0.3, 0.9]), 1).numpy(), [[1], [1]])
    with pytest.raises(ValueError, match="k=0"):
        encode_strength(np.array([0.3]), 0)
    with pytest.raises(ValueError, match="k=0"):
        ConditionedBatchNormalization(k=0)
    with pytest.raises(ValueError, match="k=1.5"):
        ConditionedBatchNormalization(k=1.5)


# ---------------------------------------------------------------- ConditionedBN


@pytest.mark.parametrize("k", [2, 3])
def test_conditioned_bn_rescales_with_encoded_bases(k):
    x, p = _batch()
    layer = _built(ConditionedBatchNormalization(k=k), x)
    w = _randomize(layer)
    u = encode_strength(p, k).numpy()
    gamma = (u @ w["gamma_basis"]).reshape(-1, 1, 1, 4)
    beta = (u @ w["beta_basis"]).reshape(-1, 1, 1, 4)
    inference = layer([x, p], training=False).numpy()
    np.testing.assert_allclose(
        inference, _np_bn(x, w["moving_mean"], w["moving_variance"], gamma, beta),
        rtol=1e-4, atol=1e-4)
    training = layer([x, p], training=True).numpy()
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    np.testing.assert_allclose(training, _np_bn(x, mean, var, gamma, beta), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.moving_mean.numpy(),
                               MOMENTUM * w["moving_mean"] + (1 - MOMENTUM) * mean, rtol=1e-5)


def test_conditioned_bn_at_init_equals_keras_batch_normalization():
    x, p = _batch()
    conditioned = _built(ConditionedBatchNormalization(), x)
    bn = keras.layers.BatchNormalization(momentum=MOMENTUM, epsilon=EPS)
    bn.build(x.shape)
    for step in range(3):  # training steps move the statistics identically
        xs = x + step
        np.testing.assert_allclose(conditioned([xs, p], training=True), bn(xs, training=True),
                                   rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(conditioned.moving_mean, bn.moving_mean, rtol=1e-6)
    np.testing.assert_allclose(conditioned.moving_variance, bn.moving_variance, rtol=1e-6)
    np.testing.assert_allclose(conditioned([x, p], training=False), bn(x, training=False),
                               rtol=1e-5, atol=1e-5)


def test_set_bases_from_batch_norms_interpolates_their_outputs():
    x, _ = _batch()
    bns = []
    for seed in (3, 4):
        bn = keras.layers.BatchNormalization(momentum=MOMENTUM, epsilon=EPS)
        bn.build(x.shape)
        _randomize(bn, seed)
        bns.append(bn)
    bns[1].moving_mean.assign(bns[0].moving_mean)
    bns[1].moving_variance.assign(bns[0].moving_variance)
    layer = _built(ConditionedBatchNormalization(k=2), x)
    layer.set_bases_from(bns)
    for p in (0.0, 0.4, 1.0):
        out = layer([x, np.full((6, 1), p, "float32")], training=False)
        expected = (1 - p) * bns[0](x, training=False) + p * bns[1](x, training=False)
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="len\\(batch_norms\\)=1"):
        layer.set_bases_from(bns[:1])


# ---------------------------------------------------------------- both


def _model(dtype=None):
    images = keras.Input((5, 5, 3), name="images")
    condition = keras.Input((1,), name="condition")
    h = keras.layers.Conv2D(4, 3, dtype=dtype)(images)
    h = DualBatchNormalization(dtype=dtype)([h, condition])
    h = ConditionedBatchNormalization(k=3, momentum=0.8, dtype=dtype)([h, condition])
    logits = keras.layers.Dense(2, dtype=dtype)(keras.layers.Flatten()(h))
    return keras.Model({"images": images, "condition": condition}, logits)


def test_keras_round_trip_preserves_config_weights_and_predictions(tmp_path):
    model = _model()
    inputs = {"images": np.random.default_rng(0).uniform(size=(4, 5, 5, 3)).astype("float32"),
              "condition": np.array([[0.0], [0.3], [0.7], [1.0]], "float32")}
    model(inputs, training=True)  # move the statistics away from their init
    for layer in model.layers:
        if isinstance(layer, (DualBatchNormalization, ConditionedBatchNormalization)):
            _randomize(layer, seed=7)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded.predict(inputs, verbose=0), model.predict(inputs, verbose=0))
    layer = [l for l in loaded.layers if isinstance(l, ConditionedBatchNormalization)][0]
    assert layer.k == 3 and layer.momentum == 0.8 and layer.epsilon == EPS


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_computes_in_float32_and_casts_back(policy):
    x, p = _batch()
    reference = {}
    for name in ("float32", policy):
        keras.mixed_precision.set_global_policy(name)
        for cls in (DualBatchNormalization, ConditionedBatchNormalization):
            layer = cls()
            out = layer([x, p], training=True)
            if name == policy:
                assert layer.gamma_basis.dtype == "float32" if cls is ConditionedBatchNormalization \
                    else layer.main_gamma.dtype == "float32"
                assert out.dtype == policy.split("_")[1]
                np.testing.assert_allclose(np.asarray(out, "float32"), reference[cls],
                                           rtol=0.05, atol=0.05)
            reference[cls] = np.asarray(out, "float32")


# The variables as .keras files have held them since the layers were released:
# model.weights.h5 stores each layer's variables as vars/0, vars/1, ... in this
# order (trainable first, then the moving statistics). A change of order or name
# would load old files' weights into the wrong variables.
SAVED_VARIABLES = {
    "dual_batch_normalization": [
        "main_gamma", "main_beta", "aux_gamma", "aux_beta",
        "main_moving_mean", "main_moving_variance", "aux_moving_mean", "aux_moving_variance",
    ],
    "dual_batch_normalization_1": [  # scale=False: no gammas
        "main_beta", "aux_beta",
        "main_moving_mean", "main_moving_variance", "aux_moving_mean", "aux_moving_variance",
    ],
    "conditioned_batch_normalization": ["gamma_basis", "beta_basis", "moving_mean", "moving_variance"],
}


def test_saved_variable_names_and_order_are_the_released_ones(tmp_path):
    import io
    import zipfile

    import h5py

    images = keras.Input((2, 2, 3))
    condition = keras.Input((1,))
    h = DualBatchNormalization(name="dual")([images, condition])
    h = DualBatchNormalization(scale=False, name="dual_no_scale")([h, condition])
    h = ConditionedBatchNormalization(name="conditioned")([h, condition])
    model = keras.Model([images, condition], h)
    folders = dict(zip(["dual", "dual_no_scale", "conditioned"], SAVED_VARIABLES))
    for index, weight in enumerate(model.weights):  # a distinct value per variable
        weight.assign(np.full(weight.shape, index + 1.0, "float32"))
    for layer_name, folder in folders.items():
        layer = model.get_layer(layer_name)
        assert [w.path for w in layer.weights] == [f"{layer_name}/{v}" for v in SAVED_VARIABLES[folder]]
    model.save(tmp_path / "m.keras")

    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        stored = h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r")
        for layer_name, folder in folders.items():
            group = stored[f"layers/{folder}/vars"]
            assert len(group) == len(SAVED_VARIABLES[folder])
            for index, variable in enumerate(SAVED_VARIABLES[folder]):
                expected = model.get_layer(layer_name).weights[index]
                assert expected.name == variable
                np.testing.assert_array_equal(group[str(index)][()], expected.numpy())
    loaded = keras.models.load_model(tmp_path / "m.keras")
    for original, restored in zip(model.weights, loaded.weights):
        assert restored.path == original.path
        np.testing.assert_array_equal(restored.numpy(), original.numpy())
