"""``tfadv.models.convert_norm``: RobMask / AdvProp on any functional Keras classifier (issue 22.1)."""
import keras
import numpy as np
import pytest

from tfadv import layers
from tfadv.models import call_model, is_conditioned
from tfadv.models.convert import convert_norm

X = np.random.default_rng(0).uniform(0, 1, (4, 32, 32, 3)).astype("float32")


def _randomize_batch_norms(model):
    """Non-trivial γ, β and moving statistics, so an unconverted or uncopied BN shows."""
    rng = np.random.default_rng(7)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32")
                               for w in layer.get_weights()])
        elif isinstance(layer, keras.Model):
            _randomize_batch_norms(layer)


def _max_diff_at_every_p(converted, reference, x=X, ps=(0.0, 0.5, 1.0)):
    return max(float(np.max(np.abs(np.asarray(call_model(converted, x, p)) - reference))) for p in ps)


def _norm_layers(model):
    found = []
    for layer in model.layers:
        if isinstance(layer, (layers.ConditionedBatchNormalization, layers.DualBatchNormalization)):
            found.append(layer)
        elif isinstance(layer, keras.Model):
            found.extend(_norm_layers(layer))
    return found


@pytest.mark.parametrize("name", ["ResNet50V2", "MobileNetV2", "EfficientNetB0", "DenseNet121"])
def test_converted_keras_applications_equal_the_original_at_every_p(name):
    model = getattr(keras.applications, name)(weights=None, input_shape=(32, 32, 3), classes=5,
                                              classifier_activation=None)
    _randomize_batch_norms(model)
    reference = np.asarray(model(X, training=False))
    bn_count = sum(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)
    for norm, options in (("robmask", {}), ("dual_bn", {})):
        converted = convert_norm(model, norm, **options)
        assert is_conditioned(converted)
        assert len(_norm_layers(converted)) == bn_count
        assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in converted.layers)
        assert not {id(v) for v in converted.weights} & {id(v) for v in model.weights}
        # p = 0 and 1: each basis / branch alone; p = 0.5: their mix.
        assert _max_diff_at_every_p(converted, reference) <= 1e-5


def _nested_model():
    block_in = keras.Input((32, 32, 3))
    h = keras.layers.Conv2D(6, 3, padding="same")(block_in)
    h = keras.layers.ReLU()(keras.layers.BatchNormalization(epsilon=1e-3, momentum=0.8)(h))
    block = keras.Model(block_in, h, name="block")
    head = keras.Sequential([keras.Input((32, 32, 6)), keras.layers.Conv2D(4, 1),
                             keras.layers.BatchNormalization(),
                             keras.layers.GlobalAveragePooling2D()], name="head")
    images = keras.Input((32, 32, 3), name="pixels")
    x = block(images)
    x = keras.layers.Add()([x, block(images)])  # a nested model called twice: shared weights
    logits = keras.layers.Dense(5)(head(x))
    return keras.Model(images, logits, name="nested")


def test_nested_functional_and_sequential_models_are_converted_in_place():
    model = _nested_model()
    _randomize_batch_norms(model)
    reference = np.asarray(model(X, training=False))
    converted = convert_norm(model, "robmask", k=3)
    assert [layer.name for layer in converted.layers if isinstance(layer, keras.Model)] == ["block", "head"]
    norms = _norm_layers(converted)
    assert len(norms) == 2 and all(isinstance(n, layers.ConditionedBatchNormalization) and n.k == 3
                                   for n in norms)
    assert norms[0].momentum == pytest.approx(0.8) and norms[0].epsilon == pytest.approx(1e-3)
    assert _max_diff_at_every_p(converted, reference) <= 1e-5
    # Every basis starts from γ, β: changing the last basis changes p = 1 only.
    norms[0].gamma_basis.assign(norms[0].gamma_basis.numpy() * np.array([[1.0], [1.0], [2.0]], "float32"))
    assert _max_diff_at_every_p(converted, reference, ps=(0.0,)) <= 1e-5
    assert _max_diff_at_every_p(converted, reference, ps=(1.0,)) > 1e-3


def test_dual_bn_branches_start_from_the_batch_norm_and_train_separately():
    model = _nested_model()
    _randomize_batch_norms(model)
    converted = convert_norm(model, "dual_bn")
    norm = _norm_layers(converted)[0]
    bn = model.get_layer("block").layers[2]
    for j in range(2):
        branch = norm.branch_variables(j)
        for key in ("gamma", "beta", "moving_mean", "moving_variance"):
            np.testing.assert_array_equal(branch[key].numpy(), getattr(bn, key).numpy())


def test_converted_model_round_trips_through_a_keras_file(tmp_path):
    model = _nested_model()
    _randomize_batch_norms(model)
    converted = convert_norm(model, "dual_bn")
    converted.save(tmp_path / "converted.keras")
    loaded = keras.saving.load_model(tmp_path / "converted.keras")
    for p in (0.0, 0.3, 1.0):
        np.testing.assert_allclose(np.asarray(call_model(loaded, X, p)),
                                   np.asarray(call_model(converted, X, p)), atol=1e-6)


class _Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.bn = keras.layers.BatchNormalization()
        self.dense = keras.layers.Dense(2)

    def call(self, x):
        return self.dense(keras.layers.Flatten()(self.bn(x)))


def test_subclassed_models_and_models_without_batch_norm_are_refused():
    subclassed = _Subclassed()
    subclassed(X)
    with pytest.raises(ValueError, match="subclassed model"):
        convert_norm(subclassed, "robmask")
    images = keras.Input((32, 32, 3))
    plain = keras.Model(images, keras.layers.Dense(2)(keras.layers.Flatten()(images)))
    with pytest.raises(ValueError, match="no BatchNormalization"):
        convert_norm(plain, "robmask")
    with pytest.raises(ValueError, match="norm="):
        convert_norm(_nested_model(), "bn")
    with pytest.raises(ValueError, match="branches"):
        convert_norm(_nested_model(), "robmask", branches=3)


@pytest.mark.parametrize("mode, reference", [
    ("-1..1", keras.applications.resnet_v2.preprocess_input),
    ("torch", keras.applications.densenet.preprocess_input),
    ("caffe", keras.applications.resnet50.preprocess_input),
    ("0..255", lambda x: x),
])
def test_pixel_preprocessing_equals_keras_applications_preprocess_input(mode, reference):
    out = np.asarray(layers.PixelPreprocessing(mode)(X))
    np.testing.assert_allclose(out, reference(X * 255.0), rtol=1e-5, atol=1e-4)


def test_keras_applications_name_builds_a_model_taking_unit_images(tmp_path):
    from tfadv import models
    from tfadv.training.methods.interpolation import interpolation_model

    app = models.build("MobileNetV2", num_classes=3, norm="bn")
    assert isinstance(app.layers[1], layers.PixelPreprocessing) and app.layers[1].mode == "-1..1"
    # The preprocessing is inside the graph (no nested model): BN layers are top-level.
    assert not any(isinstance(layer, keras.Model) for layer in app.layers)
    path = tmp_path / "app.keras"
    app.save(path)
    plain = keras.saving.load_model(path)
    converted = models.from_pretrained(plain, "robmask")
    assert is_conditioned(converted)
    reference = np.asarray(app(X, training=False))
    assert _max_diff_at_every_p(converted, reference) <= 1e-5
    with pytest.raises(ValueError, match="already starts with its PixelPreprocessing"):
        models.from_pretrained(plain, "robmask", preprocess="-1..1")
    # Masking interpolation between two maskings of the brought architecture.
    robust = keras.models.clone_model(app)
    robust.set_weights(app.get_weights())
    for layer in robust.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.gamma.assign(layer.gamma.numpy() * 1.5)
    knob = interpolation_model(app, robust)
    np.testing.assert_allclose(np.asarray(call_model(knob, X, 0.0)), reference, atol=1e-5)
    np.testing.assert_allclose(np.asarray(call_model(knob, X, 1.0)),
                               np.asarray(robust(X, training=False)), atol=1e-5)


def test_with_preprocessing_feeds_the_model_what_it_expects():
    from tfadv.models import with_preprocessing

    model = keras.applications.ResNet50V2(weights=None, input_shape=(32, 32, 3), classes=3,
                                          classifier_activation=None)
    wrapped = with_preprocessing(model, "-1..1")
    expected = np.asarray(model(keras.applications.resnet_v2.preprocess_input(X * 255.0), training=False))
    np.testing.assert_allclose(np.asarray(wrapped(X, training=False)), expected, atol=1e-5)
