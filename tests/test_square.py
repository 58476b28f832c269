"""Square Attack: the published p schedule, the ε-ball, and breaking a model with no gradient."""
import numpy as np
import pytest
import tensorflow as tf

from tfadv.attacks import _compile, pgd
from tfadv.attacks.square import iteration_draws, p_schedule, square, stripe_signs

PLAIN = dict(jit_compile=False)


def _predict(model_fn, x):
    return np.argmax(np.asarray(model_fn(tf.convert_to_tensor(x))), axis=-1)


@pytest.fixture(scope="module")
def quantized_toy(train_toy_mlp):
    """A trained 5-class MLP behind an input quantizer whose gradient is exactly zero."""
    model, x, y = train_toy_mlp(classes=5, count=40, seed=11, epochs=80)

    def quantized(images):
        # Rounded to quarters with no straight-through path: ∂logits/∂images = 0.
        return model(tf.stop_gradient(tf.round(images * 4.0) / 4.0) + 0.0 * images)

    return quantized, model, x, y


def test_p_schedule_is_the_published_one():
    # AutoAttack (resc_schedule=False): p_init until iteration 10, then halved after 10, 50, 200, ...
    expected = {0: 0.8, 10: 0.8, 11: 0.4, 50: 0.4, 51: 0.2, 200: 0.2, 201: 0.1, 500: 0.1, 501: 0.05,
                1001: 0.025, 2001: 0.0125, 4000: 0.0125, 4001: 0.00625, 4999: 0.00625, 8001: 0.8 / 512}
    for iteration, p in expected.items():
        assert p_schedule(iteration) == pytest.approx(p), iteration
    # Rescaled (the paper's code for other budgets): 5,000 queries run the schedule twice as fast.
    assert p_schedule(5, queries=5000, rescale=True) == pytest.approx(0.8)
    assert p_schedule(6, queries=5000, rescale=True) == pytest.approx(0.4)
    assert p_schedule(2001, queries=5000, rescale=True) == pytest.approx(0.8 / 128)


def test_square_breaks_a_model_without_gradient_where_pgd_cannot(quantized_toy):
    quantized, _, x, y = quantized_toy
    eps = 0.1
    assert np.mean(_predict(quantized, x) == y) == 1.0
    # The input gradient is exactly zero: PGD's signed steps never move.
    x_pgd = pgd(quantized, x, y, eps, eps / 4, 20, random_start=False, **PLAIN).numpy()
    np.testing.assert_array_equal(x_pgd, x)
    x_adv = square(quantized, x, y, eps, queries=1000, seed=0, **PLAIN).numpy()
    square_accuracy = np.mean(_predict(quantized, x_adv) == y)
    assert square_accuracy <= 0.2, square_accuracy
    assert np.all(np.abs(x_adv - x) <= eps + 1e-6) and x_adv.min() >= 0 and x_adv.max() <= 1
    broken = _predict(quantized, x_adv) != y
    np.testing.assert_array_equal(x_adv[~broken], x[~broken])


def _reference_square(logits_fn, x, y, eps, queries, stripes, draws, p_init=0.8):
    """autoattack/square.py's L∞ loop in NumPy (NHWC), fed tfadv's random numbers."""

    def margin(v, labels):
        z = logits_fn(v).astype(np.float64)
        correct = z[np.arange(len(z)), labels].copy()
        z[np.arange(len(z)), labels] = -np.inf
        return correct - z.max(1)

    b, h, w, c = x.shape
    x_best = np.clip(x + eps * stripes, 0, 1)
    margin_min = margin(x_best, y)
    calls = 1
    for i in range(queries):
        todo = np.flatnonzero(margin_min > 0)
        if todo.size == 0:
            break
        p = p_schedule(i, p_init)
        s = max(int(round(np.sqrt(p * h * w))), 1)
        u, signs = draws(i)
        vh, vw = int(u[0] * (h - s)), int(u[1] * (w - s))
        delta = np.zeros((h, w, c), np.float32)
        delta[vh:vh + s, vw:vw + s] = 2 * eps * signs
        x_new = np.clip(np.clip(x_best[todo] + delta, x[todo] - eps, x[todo] + eps), 0, 1)
        m = margin(x_new, y[todo])
        calls += 1
        accept = (m < margin_min[todo]) | (m <= 0)
        margin_min[todo[accept]] = m[accept]
        x_best[todo[accept]] = x_new[accept]
    fooled = np.argmax(logits_fn(x_best), 1) != y
    return np.where(fooled[:, None, None, None], x_best, x), fooled, calls


def test_square_equals_the_reference_code(quantized_toy):
    _, model, x, y = quantized_toy
    keep = _predict(model, x) == y
    x, y = x[keep][:16], y[keep][:16]
    eps, queries, seed = 0.06, 300, 5
    seed_pair = tf.constant([seed, 0], tf.int64)
    stripes = stripe_signs(seed_pair, len(x), x.shape[2], x.shape[3]).numpy()

    def draws(i):
        u, signs = iteration_draws(seed_pair, i, x.shape[3])
        return u.numpy(), signs.numpy()

    logits_fn = lambda v: model(tf.constant(v, tf.float32), training=False).numpy()  # noqa: E731
    expected, fooled, _ = _reference_square(logits_fn, x, y, eps, queries, stripes, draws)
    assert 0 < fooled.sum() < len(x)
    x_adv = square(model, x, y, eps, queries=queries, seed=seed, **PLAIN).numpy()
    np.testing.assert_array_equal(_predict(model, x_adv) != y, fooled)
    np.testing.assert_allclose(x_adv, expected, atol=1e-6)


def test_square_makes_queries_iterations_with_one_window_never_at_the_last_position():
    # A model that is never fooled: every iteration runs, on the whole batch.
    calls = tf.Variable(0)

    def model_fn(images):
        calls.assign_add(1)
        return tf.one_hot(tf.zeros(tf.shape(images)[0], tf.int32), 3) * 100.0 + 0.0 * images[:, 0, 0, :1]

    x = np.full((4, 5, 5, 1), 0.5, np.float32)
    square(model_fn, x, np.zeros(4, np.int64), 0.1, queries=50, seed=0, **PLAIN)
    assert int(calls.numpy()) == 1 + 1 + 50 + 1  # clean, stripes, 50 iterations, final check
    # The corner is ⌊u · (size − s)⌋ with u in [0, 1): for s = size − 1 it is always 0, never 1.
    corners = [iteration_draws(tf.constant([0, 0], tf.int64), i, 1)[0].numpy() for i in range(200)]
    assert all(np.floor(u * 1).max() == 0 for u in corners)
    assert all(0.0 <= u.min() and u.max() < 1.0 for u in corners)
    # One window per batch: an iteration's draws have no batch axis.
    u, signs = iteration_draws(tf.constant([0, 0], tf.int64), 7, 3)
    assert u.shape == (2,) and signs.shape == (3,)
    assert set(np.unique(signs.numpy())) <= {-1.0, 1.0}


def test_more_queries_never_hurt_and_eps_does_not_retrace(quantized_toy):
    _, model, x, y = quantized_toy
    few = _predict(model, square(model, x, y, 0.05, queries=10, seed=0, **PLAIN)) != y
    before = _compile.TRACE_COUNTS["square"]
    many = _predict(model, square(model, x, y, 0.05, queries=200, seed=0, **PLAIN)) != y
    assert np.all(many >= few) and many.sum() > few.sum()  # the same search, continued
    for eps in (0.0, tf.constant(0.02)):
        x_adv = square(model, x, y, eps, queries=5, seed=0, **PLAIN).numpy()
        assert np.all(np.abs(x_adv - x) <= float(eps) + 1e-6)
    assert _compile.TRACE_COUNTS["square"] == before


@pytest.mark.parametrize("kwargs, message", [
    (dict(queries=0), "queries"), (dict(p_init=0.0), "p_init"), (dict(eps=-1.0), "eps"),
])
def test_bad_arguments_raise_value_error(quantized_toy, kwargs, message):
    _, model, x, y = quantized_toy
    arguments = dict(eps=0.1, queries=3)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        square(model, x[:2], y[:2], **arguments)
