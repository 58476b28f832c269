"""FGSM and PGD: closed forms, constraints, strength, compilation, mixed precision.

The trained model is a small MLP fitted in a few seconds to sklearn's 8×8
digits; the linear model gives closed forms for the input gradient.
"""
import gc
import warnings
import weakref

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_digits

from tfadv.attacks import _compile, fgsm, pgd, stadv
from tfadv.models.conditioning import bind_condition, condition_inputs


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def cross_entropy_np(logits, labels):
    return -np.log(softmax(logits.astype(np.float64))[np.arange(len(labels)), labels])


def linear_model(input_shape=(8, 8, 1), seed=0):
    model = keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(), keras.layers.Dense(10)])
    rng = np.random.default_rng(seed)
    kernel = rng.normal(0, 1, (int(np.prod(input_shape)), 10)).astype("float32")
    model.layers[-1].set_weights([kernel, rng.normal(0, 1, 10).astype("float32")])
    return model


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    x = (data.images / 16.0).astype("float32")[..., None]
    return x, data.target.astype("int64")


@pytest.fixture(scope="module")
def trained(digits):
    """An MLP with ~97% test accuracy on digits, and 32 held-out images it classifies correctly."""
    keras.utils.set_random_seed(0)
    x, y = digits
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    model.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:1200], y[:1200], epochs=15, batch_size=64, verbose=0)
    x_test, y_test = x[1200:1400], y[1200:1400]
    correct = np.argmax(model.predict(x_test, verbose=0), axis=1) == y_test
    assert correct.mean() > 0.9
    return model, x_test[correct][:32], y_test[correct][:32]


def loss_of(model, x, y):
    return cross_entropy_np(np.asarray(model(x)), y)


# ---------------------------------------------------------------- FGSM


@pytest.mark.parametrize("targeted", [False, True])
def test_fgsm_equals_closed_form_on_linear_model(targeted):
    model = linear_model()
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (6, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 10, 6)
    eps = np.array([0.0, 0.01, 0.05, 0.1, 0.3, 1.0], "float32")  # one radius per example
    kernel, bias = (w.astype(np.float64) for w in model.layers[-1].get_weights())
    # ∇ₓ CE(Wᵀx + b, y) = W (softmax(z) − onehot(y)).
    logits = x.reshape(6, -1) @ kernel + bias
    grad = ((softmax(logits) - np.eye(10)[y]) @ kernel.T).reshape(x.shape)
    direction = -np.sign(grad) if targeted else np.sign(grad)
    expected = np.clip(x + eps[:, None, None, None] * direction, 0, 1)

    x_adv = fgsm(model, x, y, eps, targeted=targeted)
    np.testing.assert_allclose(x_adv, expected, atol=1e-6)
    assert x_adv.dtype == tf.float32 and x_adv.shape == x.shape


def test_fgsm_returns_the_dtype_of_x():
    model = linear_model()
    x = np.random.default_rng(0).uniform(0, 1, (2, 8, 8, 1))
    assert fgsm(model, x, np.array([1, 2]), 0.1).dtype == tf.float64


# ---------------------------------------------------------------- constraints


@pytest.mark.parametrize(
    "attack",
    [
        lambda m, x, y, eps: fgsm(m, x, y, eps),
        lambda m, x, y, eps: fgsm(m, x, y, eps, targeted=True),
        lambda m, x, y, eps: pgd(m, x, y, eps, eps / 4, 5),
        lambda m, x, y, eps: pgd(m, x, y, eps, eps, 3, targeted=True, restarts=2),
        lambda m, x, y, eps: pgd(m, x, y, eps, 0.5, 2, random_start=False),
    ],
    ids=["fgsm", "fgsm-targeted", "pgd", "pgd-targeted-restarts", "pgd-big-steps"],
)
def test_l_inf_attacks_stay_in_the_eps_ball_and_the_box(attack, trained):
    model, x, y = trained
    eps = np.linspace(0.02, 0.4, len(x)).astype("float32")
    x_adv = np.asarray(attack(model, x, y, eps))
    distance = np.abs(x_adv - x).reshape(len(x), -1).max(axis=1)
    assert np.all(distance <= eps + 1e-6)
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert np.all(distance > 0.5 * eps)  # the attack did move every example


def test_stadv_stays_in_the_box_and_within_its_flow_bound(trained):
    model, x, y = trained
    x_adv = np.asarray(stadv(model, x, y, steps=20, learning_rate=0.1, flow_bound=0.5))
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert np.abs(x_adv - x).max() > 0.05
    # |Δu|, |Δv| <= 0.5: each output pixel mixes input pixels of its 3×3 neighbourhood only.
    padded = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)], mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(1, 2))
    assert np.all(x_adv >= windows.min(axis=(-2, -1)) - 1e-6)
    assert np.all(x_adv <= windows.max(axis=(-2, -1)) + 1e-6)


# ---------------------------------------------------------------- strength


def test_pgd_reaches_at_least_fgsm_loss_on_trained_model(trained):
    model, x, y = trained
    eps = 0.1
    fgsm_loss = loss_of(model, fgsm(model, x, y, eps), y)
    pgd_loss = loss_of(model, pgd(model, x, y, eps, eps / 4, 10, seed=0), y)
    assert pgd_loss.mean() >= fgsm_loss.mean()
    assert np.mean(pgd_loss >= fgsm_loss - 1e-4) >= 0.9
    assert pgd_loss.mean() > loss_of(model, x, y).mean() + 1.0


def test_untargeted_attacks_fool_the_trained_model(trained):
    model, x, y = trained  # all 32 clean images are classified correctly

    def accuracy(images):
        return np.mean(np.argmax(model(images), axis=1) == y)

    assert accuracy(pgd(model, x, y, eps=0.2, step_size=0.05, steps=10)) <= 0.1
    assert accuracy(fgsm(model, x, y, eps=0.2)) < 0.7
    assert accuracy(stadv(model, x, y)) <= 0.2  # default steps and learning rate


def test_restarts_never_lower_the_loss(trained):
    model, x, y = trained
    # With one seed the first restart is the same run, and later ones only replace it when better.
    settings = dict(eps=0.05, step_size=0.01, steps=3, seed=7, jit_compile=False)
    single = loss_of(model, pgd(model, x, y, **settings), y)
    several = loss_of(model, pgd(model, x, y, restarts=4, **settings), y)
    assert np.all(several >= single - 1e-5)
    assert np.any(several > single + 1e-3)


def test_pgd_random_start_depends_on_seed_only(trained):
    model, x, y = trained
    a, b, c = (pgd(model, x, y, 0.05, 0.01, 1, seed=s) for s in (3, 3, 4))
    np.testing.assert_array_equal(a, b)
    assert np.abs(np.asarray(a) - np.asarray(c)).max() > 0


def test_targeted_attacks_move_predictions_to_the_target(trained):
    model, x, y = trained
    target = (y + 1) % 10
    def hits(images):
        return np.mean(np.argmax(model(images), axis=1) == target)

    clean_hits = hits(x)
    pgd_hits = hits(pgd(model, x, target, eps=0.3, step_size=0.05, steps=20, targeted=True))
    fgsm_hits = hits(fgsm(model, x, target, 0.3, targeted=True))
    stadv_hits = hits(stadv(model, x, target, steps=50, learning_rate=0.05, targeted=True))
    assert clean_hits == 0
    assert pgd_hits >= 0.9
    assert fgsm_hits >= 0.25
    assert stadv_hits >= 0.5


# ---------------------------------------------------------------- compilation


def test_ten_calls_with_the_same_shapes_trace_once(trained):
    model = keras.models.clone_model(trained[0])  # a model no other test has compiled
    _, x, y = trained
    calls = {
        "fgsm": lambda i: fgsm(model, x, y, eps=0.01 * i),
        "pgd": lambda i: pgd(model, x, y, eps=0.01 * i, step_size=0.001 * (i + 1), steps=1 + i % 3),
        "stadv": lambda i: stadv(model, x, y, tau=0.01 * i, steps=1 + i % 3, learning_rate=0.01 * (i + 1)),
    }
    for name, call in calls.items():
        before = _compile.TRACE_COUNTS[name]
        for i in range(10):
            call(i)
        assert _compile.TRACE_COUNTS[name] - before == 1, name
    # A new static setting or input shape is a new graph.
    before = _compile.TRACE_COUNTS["pgd"]
    pgd(model, x, y, 0.1, 0.01, 2, targeted=True)
    pgd(model, x[:5], y[:5], 0.1, 0.01, 2, targeted=True)
    assert _compile.TRACE_COUNTS["pgd"] - before == 2


def conditioned_model():
    """A conditioned model whose logits shift with the strength p."""
    images = keras.Input((8, 8, 1), name="images")
    condition = keras.Input((1,), name="condition")
    features = keras.layers.Dense(10)(keras.layers.Flatten()(images))
    shift = keras.layers.Dense(10, kernel_initializer=keras.initializers.RandomNormal(stddev=5.0))(condition)
    return keras.Model({"images": images, "condition": condition}, keras.layers.Add()([features, shift]))


def test_conditioned_model_compiles_once_and_feeds_the_condition(digits):
    model = conditioned_model()
    x, y = digits[0][:8], digits[1][:8]
    before = _compile.TRACE_COUNTS["fgsm"]
    for p in (0.0, 0.5, 1.0):
        bound = fgsm(bind_condition(model, p), x, y, 0.1)
        direct = fgsm(lambda images, p=p: model(condition_inputs(images, p)), x, y, 0.1, jit_compile=False)
        np.testing.assert_allclose(bound, direct, atol=1e-6)
    assert _compile.TRACE_COUNTS["fgsm"] - before == 1 + 3  # one bound graph; the fresh lambdas trace each
    at_zero, at_one = (np.asarray(fgsm(bind_condition(model, p), x, y, 0.1)) for p in (0.0, 1.0))
    assert np.abs(at_zero - at_one).max() > 0


def test_unbound_conditioned_model_is_rejected(digits):
    with pytest.raises(ValueError, match="model_fn_for"):
        fgsm(conditioned_model(), digits[0][:2], digits[1][:2], 0.1)


def test_inside_tf_function_the_attack_is_inlined(trained):
    model, x, y = trained
    before = dict(_compile.TRACE_COUNTS)

    @tf.function
    def train_step_like(images, labels):
        return pgd(model, images, labels, eps=0.1, step_size=0.02, steps=3, seed=5)

    inlined = train_step_like(tf.constant(x), tf.constant(y))
    assert dict(_compile.TRACE_COUNTS) == before
    # XLA draws other random numbers than TensorFlow's kernels for the same seed: compare without it.
    np.testing.assert_allclose(inlined, pgd(model, x, y, 0.1, 0.02, 3, seed=5, jit_compile=False), atol=1e-6)


def test_compiled_attacks_do_not_keep_the_model_alive():
    model = linear_model()
    fgsm(model, np.zeros((2, 8, 8, 1), "float32"), np.array([0, 1]), 0.1)
    alive = weakref.ref(model)
    del model
    gc.collect()
    assert alive() is None


def test_model_runs_in_inference_mode_unless_asked(digits):
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Flatten(),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(10),
        ]
    )
    x, y = digits[0][:16], digits[1][:16]
    moving_mean = model.layers[1].moving_mean
    fgsm(model, x, y, 0.1)
    pgd(model, x, y, 0.1, 0.02, 2)
    np.testing.assert_array_equal(moving_mean.numpy(), 0.0)
    fgsm(model, x, y, 0.1, training=True)  # BN now uses and updates batch statistics
    assert np.abs(moving_mean.numpy()).max() > 0


def test_xla_failure_falls_back_to_graph_mode():
    model = linear_model()
    # py_function has no XLA kernel (but has a gradient).
    opaque = lambda images: tf.py_function(lambda t: model(t), [images], tf.float32)  # noqa: E731
    x = np.random.default_rng(0).uniform(0, 1, (3, 8, 8, 1)).astype("float32")
    y = np.array([0, 1, 2])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x_adv = fgsm(opaque, x, y, 0.1, jit_compile=True)
    assert any("jit_compile" in str(w.message) for w in caught)
    np.testing.assert_allclose(x_adv, fgsm(model, x, y, 0.1), atol=1e-6)


def test_xla_and_graph_mode_agree(trained):
    model, x, y = trained
    for attack in (
        lambda jit: fgsm(model, x, y, 0.1, jit_compile=jit),
        lambda jit: pgd(model, x, y, 0.1, 0.02, 3, random_start=False, jit_compile=jit),
        lambda jit: stadv(model, x, y, steps=3, jit_compile=jit),
    ):
        with_xla, without = np.asarray(attack(True)), np.asarray(attack(False))
        # Rounding may flip the sign of a near-zero gradient component now and then.
        assert np.mean(np.abs(with_xla - without) < 1e-4) > 0.99


# ---------------------------------------------------------------- mixed precision


def test_float16_policy_gives_nonzero_perturbations():
    keras.mixed_precision.set_global_policy("mixed_float16")
    model = linear_model()
    kernel, bias = model.layers[-1].get_weights()
    # A confident model with small weights: softmax − onehot ≈ 1e-7 and W·that underflows in float16.
    model.layers[-1].set_weights([kernel * 1e-3, np.where(np.arange(10) == 3, 16.0, 0.0).astype("float32")])
    assert model.compute_dtype == "float16"
    x = np.random.default_rng(0).uniform(0.2, 0.8, (4, 8, 8, 1)).astype("float32")
    y = np.full(4, 3)

    images = tf.constant(x)
    with tf.GradientTape() as tape:  # the naive float16 input gradient
        tape.watch(images)
        logits = tf.cast(model(images), "float32")
        loss = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
    assert np.all(tape.gradient(loss, images).numpy() == 0), "the setting should underflow without rescaling"

    for x_adv in (
        fgsm(model, x, y, 0.03),
        pgd(model, x, y, 0.03, 0.01, 3, random_start=False),
        stadv(model, x, y, steps=2),
    ):
        assert x_adv.dtype == tf.float32
        moved = np.abs(np.asarray(x_adv) - x).reshape(4, -1).max(axis=1)
        assert np.all(moved > 0)

    # FGSM's direction is the float32 gradient's sign (the weights are exact in float16 up to rounding).
    keras.mixed_precision.set_global_policy("float32")
    reference = linear_model()
    reference.set_weights([w.astype("float32") for w in model.get_weights()])
    half, full = (np.sign(np.asarray(fgsm(m, x, y, 0.03)) - x) for m in (model, reference))
    agree = half == full
    assert agree.mean() > 0.95


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m, x, y: fgsm(m, x, y, eps=-0.1), r"eps must be in \[0, 1\]. Received: eps=-0.1"),
        (lambda m, x, y: fgsm(m, x, y, eps=8), r"eps must be in \[0, 1\]. Received: eps=8"),
        (lambda m, x, y: pgd(m, x, y, eps=tf.constant(1.5), step_size=0.1, steps=1), r"Received: eps=1.5"),
        (lambda m, x, y: pgd(m, x, y, 0.1, step_size=0.0, steps=3),
         r"step_size must be > 0. Received: step_size=0.0"),
        (lambda m, x, y: pgd(m, x, y, 0.1, 0.01, steps=0),
         r"steps must be an integer >= 1. Received: steps=0"),
        (lambda m, x, y: pgd(m, x, y, 0.1, 0.01, steps=2.5), r"Received: steps=2.5"),
        (lambda m, x, y: pgd(m, x, y, 0.1, 0.01, 3, restarts=0), r"restarts must be an integer >= 1"),
        (lambda m, x, y: fgsm(m, x * 255, y, 0.1), r"x must be images in \[0, 1\]"),
        (lambda m, x, y: fgsm(m, x - 0.5, y, 0.1), r"x must be images in \[0, 1\]"),
        (lambda m, x, y: fgsm(m, x, y[:3], 0.1), r"x\.shape\[0\]=4, y\.shape\[0\]=3"),
        (lambda m, x, y: pgd(m, x, y, np.full(3, 0.1), 0.01, 1), r"eps must be a scalar or a vector"),
        (lambda m, x, y: stadv(m, x, y, tau=-1.0), r"tau must be >= 0. Received: tau=-1.0"),
        (lambda m, x, y: stadv(m, x, y, steps=0), r"steps must be an integer >= 1"),
        (lambda m, x, y: stadv(m, x, y, learning_rate=0), r"learning_rate must be > 0"),
        (lambda m, x, y: stadv(m, x, y, flow_bound=-1.0), r"flow_bound must be > 0"),
        (lambda m, x, y: stadv(m, x * 2, y), r"x must be images in \[0, 1\]"),
        (lambda m, x, y: fgsm(m, x, y.astype("float32"), 0.1), r"y must hold integer class labels"),
    ],
)
def test_bad_input_raises_value_error_naming_argument_and_value(call, message):
    x = np.random.default_rng(0).uniform(0, 1, (4, 8, 8, 1)).astype("float32")
    with pytest.raises(ValueError, match=message):
        call(linear_model(), x, np.arange(4))


def test_tensor_eps_works_inside_tf_function(trained):
    model, x, y = trained

    @tf.function
    def attack(eps):
        return fgsm(model, x, y, eps)

    np.testing.assert_allclose(attack(tf.constant(0.05)), fgsm(model, x, y, 0.05), atol=1e-6)
