"""PGD driven by Adam on the perturbation (update="adam"), against hand and NumPy computations."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfadv import attacks, models
from tfadv.attacks import _compile
from tfadv.attacks.spec import AttackSpec
from tfadv.config import ConfigError, load_config

SHAPE = (4, 4, 3)
CLASSES = 5


def _linear_model(seed=0):
    rng = np.random.default_rng(seed)
    model = keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(), keras.layers.Dense(CLASSES)])
    kernel = rng.normal(size=(int(np.prod(SHAPE)), CLASSES)).astype("float32")
    bias = rng.normal(size=(CLASSES,)).astype("float32")
    model.set_weights([kernel, bias])
    return model, kernel.astype("float64"), bias.astype("float64")


def _batch(n=6, seed=1, low=0.2, high=0.8):
    rng = np.random.default_rng(seed)
    x = rng.uniform(low, high, size=(n,) + SHAPE).astype("float32")
    y = rng.integers(0, CLASSES, size=(n,)).astype("int64")
    return x, y


def _numpy_loss_and_gradient(x, y, kernel, bias):
    flat = x.reshape(len(x), -1).astype("float64")
    logits = flat @ kernel + bias
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    loss = -np.log(probs[np.arange(len(y)), y])
    probs[np.arange(len(y)), y] -= 1.0
    return loss, (probs @ kernel.T).reshape(x.shape)


def _numpy_adam_pgd(x, y, kernel, bias, eps, lr, steps):
    """Projected Adam ascent on CE from x, keeping each example's best iterate."""
    lower, upper = np.maximum(x - eps, 0), np.minimum(x + eps, 1)
    x_adv = x.astype("float64")
    m = np.zeros_like(x_adv)
    v = np.zeros_like(x_adv)
    best, best_loss = x_adv.copy(), np.full(len(x), -np.inf)
    for t in range(1, steps + 2):
        loss, grad = _numpy_loss_and_gradient(x_adv, y, kernel, bias)
        better = loss > best_loss
        best[better], best_loss[better] = x_adv[better], loss[better]
        if t == steps + 1:
            break
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad**2
        step = lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
        x_adv = np.clip(x_adv + step, lower, upper)
    return best, best_loss


def test_first_adam_step_by_hand_on_a_linear_model():
    """One step: m̂ = g, v̂ = g², so x¹ = x + lr · g / (|g| + 1e-8), then projected."""
    model, kernel, bias = _linear_model()
    x, y = _batch()
    lr, eps = 0.01, 0.05
    clean_loss, grad = _numpy_loss_and_gradient(x, y, kernel, bias)
    by_hand = x + lr * grad / (np.abs(grad) + 1e-8)
    step_loss, _ = _numpy_loss_and_gradient(by_hand, y, kernel, bias)
    assert np.all(step_loss > clean_loss)  # so keeping the best keeps x¹
    got = attacks.pgd(model, x, y, eps, lr, 1, random_start=False, update="adam")
    np.testing.assert_allclose(got, by_hand, atol=1e-6)
    assert np.abs(np.asarray(got) - x).max() == pytest.approx(lr, abs=1e-6)  # sign-like first step


@pytest.mark.parametrize("steps, eps", [(3, 0.05), (30, 0.02)])
def test_adam_pgd_equals_numpy_reference(steps, eps):
    model, kernel, bias = _linear_model(2)
    x, y = _batch(seed=3, low=0.0, high=1.0)  # some pixels at the box edges
    expected, expected_loss = _numpy_adam_pgd(x, y, kernel, bias, eps, 0.01, steps)
    got = np.asarray(attacks.pgd(model, x, y, eps, 0.01, steps, random_start=False, update="adam"))
    # Adam divides by |g|: where a gradient component is near 0, float32 rounding
    # moves that component's step; everywhere else the iterates agree to 1e-6.
    np.testing.assert_allclose(got, expected, atol=2e-4)
    assert np.mean(np.abs(got - expected) < 1e-6) > 0.95
    np.testing.assert_allclose(_numpy_loss_and_gradient(got, y, kernel, bias)[0], expected_loss, rtol=1e-4)


def _tiny(seed=0):
    keras.utils.set_random_seed(seed)
    return models.build("tiny", input_shape=(8, 8, 3), num_classes=10)


def _per_example_loss(model, images, y):
    logits = model(tf.convert_to_tensor(images, tf.float32), training=False)
    return keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True).numpy()


def _eager_adam_iterates(model, x, y, eps, lr, steps):
    """Every iterate of projected Adam ascent, written independently with a GradientTape."""
    lower, upper = np.maximum(x - eps, 0), np.minimum(x + eps, 1)
    x_adv = tf.constant(x)
    m = tf.zeros_like(x_adv)
    v = tf.zeros_like(x_adv)
    iterates = [x_adv.numpy()]
    for t in range(1, steps + 1):
        with tf.GradientTape() as tape:
            tape.watch(x_adv)
            loss = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(
                y, model(x_adv, training=False), from_logits=True))
        g = tape.gradient(loss, x_adv)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        x_adv = tf.clip_by_value(
            x_adv + lr * (m / (1 - 0.9**t)) / (tf.sqrt(v / (1 - 0.999**t)) + 1e-8), lower, upper)
        iterates.append(x_adv.numpy())
    return iterates


def test_adam_pgd_on_a_network_stays_in_the_ball_and_keeps_the_best_iterate():
    model = _tiny()
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 1, size=(12, 8, 8, 3)).astype("float32")
    x[:, 0, 0] = 0.0
    x[:, 1, 1] = 1.0
    y = rng.integers(0, 10, size=(12,)).astype("int64")
    eps, lr, steps = 8 / 255, 0.01, 15
    got = np.asarray(attacks.pgd(model, x, y, eps, lr, steps, random_start=False, update="adam"))
    assert np.abs(got - x).max() <= eps + 1e-6
    assert got.min() >= 0.0 and got.max() <= 1.0
    got_loss = _per_example_loss(model, got, y)
    clean_loss = _per_example_loss(model, x, y)
    assert np.all(got_loss >= clean_loss - 1e-6)
    assert np.mean(got_loss > clean_loss + 1e-3) > 0.5

    iterates = _eager_adam_iterates(model, x, y, eps, lr, steps)
    losses = np.stack([_per_example_loss(model, it, y) for it in iterates])  # [steps + 1, B]
    assert np.all(got_loss >= losses[-1] - 1e-5)  # never worse than the last iterate
    np.testing.assert_allclose(got_loss, losses.max(axis=0), rtol=1e-4, atol=1e-5)


def test_adam_pgd_with_random_start_stays_in_the_ball():
    model = _tiny(1)
    x = np.random.default_rng(5).uniform(0, 1, size=(8, 8, 8, 3)).astype("float32")
    y = np.arange(8, dtype="int64")
    got = np.asarray(attacks.pgd(model, x, y, 4 / 255, 0.01, 5, random_start=True, seed=3, update="adam"))
    assert np.abs(got - x).max() <= 4 / 255 + 1e-6 and got.min() >= 0 and got.max() <= 1


def test_adam_pgd_compiles_once_for_new_eps_and_learning_rate():
    model = _tiny(2)
    x = np.random.default_rng(6).uniform(0, 1, size=(4, 8, 8, 3)).astype("float32")
    y = np.zeros(4, dtype="int64")
    attacks.pgd(model, x, y, 8 / 255, 0.01, 3, random_start=False, update="adam")
    before = _compile.TRACE_COUNTS["pgd"]
    attacks.pgd(model, x, y, 4 / 255, 0.02, 5, random_start=False, update="adam")
    assert _compile.TRACE_COUNTS["pgd"] == before


def test_update_is_validated():
    model = _tiny()
    x = np.zeros((2, 8, 8, 3), "float32")
    with pytest.raises(ValueError, match="update"):
        attacks.pgd(model, x, np.zeros(2, "int64"), 0.1, 0.01, 1, update="momentum")
    with pytest.raises(ValueError, match="update"):
        AttackSpec.create({"name": "pgd", "eps": "8/255", "update": "momentum"})


def test_attack_spec_and_config_carry_the_update_rule():
    spec = AttackSpec.create({"name": "pgd", "eps": "8/255", "steps": 100, "step_size": 0.01,
                              "random_start": False, "update": "adam"})
    assert spec.update == "adam" and spec.label == "PGD-Adam-100 ε=8/255"
    assert "update='adam'" in spec.id
    default = AttackSpec.create({"name": "pgd", "eps": "8/255"})
    assert default.update == "sign" and "update" not in default.id  # ids of stored results unchanged
    assert AttackSpec.create({"name": "stadv", "update": "adam"}).update is None  # PGD only

    config = load_config(data={"method": {"attack": {"name": "pgd", "update": "adam", "step_size": 0.01}}})
    assert AttackSpec.create(config.method.attack).update == "adam"
    with pytest.raises(ConfigError, match="update"):
        load_config(data={"method": {"attack": {"name": "pgd", "update": "momentum"}}})

    model, kernel, bias = _linear_model()
    x, y = _batch()
    np.testing.assert_allclose(
        spec.run(model, x, y),
        attacks.pgd(model, x, y, 8 / 255, 0.01, 100, random_start=False, update="adam"))
