import keras
import numpy as np
import pytest

from tfadv import models

EXPECTED_PARAMS = {"resnet20": 0.27e6, "resnet32": 0.46e6, "resnet56": 0.85e6, "resnet18": 11.17e6}


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_parameter_counts_match_the_papers(name):
    model = models.build(name)
    assert model.count_params() == pytest.approx(EXPECTED_PARAMS[name], rel=0.02)


@pytest.mark.parametrize("name", models.list_models())
def test_every_model_maps_images_to_logits(name):
    model = models.build(name, num_classes=7, input_shape=(32, 32, 3))
    logits = model(np.zeros((2, 32, 32, 3), "float32"))
    assert logits.shape == (2, 7) and logits.dtype == "float32"


def test_registry_errors_name_the_bad_value():
    with pytest.raises(ValueError, match="Unknown model 'resnet19'"):
        models.build("resnet19")
    with pytest.raises(ValueError, match="norm=.*'groupnorm'"):
        models.build("tiny", norm="groupnorm")
    with pytest.raises(ValueError, match="depth"):
        from tfadv.models.resnet_cifar import cifar_resnet

        cifar_resnet(None, None, 21)
    with pytest.raises(ValueError, match="Unknown option"):
        models.build("tiny", depth=3)


def test_input_normalization_is_inside_the_model():
    mean, std = [0.2, 0.4, 0.6], [0.1, 0.2, 0.3]
    model = models.build("tiny", mean=mean, std=std)
    layer = model.get_layer("input_normalization")
    x = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(layer(x), (x - mean) / np.array(std), rtol=1e-5, atol=1e-5)


def test_option_a_shortcut_subsamples_and_zero_pads():
    from tfadv.models.blocks import ShortcutPadding

    x = np.arange(2 * 4 * 4 * 2, dtype="float32").reshape(2, 4, 4, 2)
    out = np.asarray(ShortcutPadding(6, 2)(x))
    assert out.shape == (2, 2, 2, 6)
    np.testing.assert_array_equal(out[..., 2:4], x[:, ::2, ::2, :])
    assert not out[..., :2].any() and not out[..., 4:].any()


def test_keras_round_trip_predicts_identically(tmp_path):
    model = models.build("resnet20", num_classes=10)
    x = np.random.default_rng(0).uniform(size=(4, 32, 32, 3)).astype("float32")
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(model(x), loaded(x))


@pytest.mark.parametrize("norm", ["dual_bn", "robmask"])
def test_conditioned_models_take_a_condition_and_round_trip(norm, tmp_path):
    model = models.build("tiny", norm=norm)
    assert models.is_conditioned(model) and not models.is_conditioned(models.build("tiny"))
    x = np.random.default_rng(0).uniform(size=(3, 32, 32, 3)).astype("float32")
    bound = models.bind_condition(model, 0.25)
    direct = model({"images": x, "condition": np.full((3, 1), 0.25, "float32")})
    np.testing.assert_array_equal(bound(x), direct)
    np.testing.assert_array_equal(models.call_model(model, x, 0.25), direct)
    model.save(tmp_path / "c.keras")
    loaded = keras.models.load_model(tmp_path / "c.keras")
    np.testing.assert_array_equal(models.call_model(loaded, x, 0.25), direct)
    with pytest.raises(ValueError, match="conditioned model"):
        models.bind_condition(models.build("tiny"), 0.5)


def test_robmask_k_is_validated():
    with pytest.raises(ValueError, match="k must be an integer >= 1. Received: k=0"):
        models.build("tiny", norm="robmask", norm_options={"k": 0})
    with pytest.raises(ValueError, match="'k' applies to norm='robmask'"):
        models.build("tiny", norm="bn", norm_options={"k": 2})


def test_importing_tfadv_prints_no_tensorflow_noise():
    import subprocess
    import sys

    code = "import tfadv.models as m; m.build('tiny')(__import__('numpy').zeros((1, 32, 32, 3), 'float32'))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={k: v for k, v in __import__("os").environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"})
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "" and result.stdout.strip() == ""


def test_bind_gives_every_model_the_same_interface():
    x = np.random.default_rng(0).uniform(size=(3, 32, 32, 3)).astype("float32")
    plain = models.build("tiny")
    bound = models.bind(plain, 0.7)
    assert bound.model is plain and bound.condition is None  # no strength to bind
    np.testing.assert_array_equal(bound(x), plain(x))
    assert models.bind(bound) is bound and models.bind(plain).model is plain
    conditioned = models.build("tiny", norm="robmask")
    at = models.bind(conditioned, 0.7)
    assert at.model is conditioned and at.condition == 0.7
    direct = conditioned({"images": x, "condition": np.full((3, 1), 0.7, "float32")})
    np.testing.assert_array_equal(at(x), direct)
    np.testing.assert_array_equal(models.call_model(at, x), direct)  # a bound model keeps its p
