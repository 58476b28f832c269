"""Square Attack: the published p schedule, the ε-ball, and breaking a model with no gradient."""
import numpy as np
import pytest
import tensorflow as tf

from tfadv.attacks import _compile, pgd
from tfadv.attacks.square import p_schedule, square

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
    x_adv = square(quantized, x, y, eps, queries=300, seed=0, **PLAIN).numpy()
    square_accuracy = np.mean(_predict(quantized, x_adv) == y)
    assert square_accuracy <= 0.2, square_accuracy
    assert np.all(np.abs(x_adv - x) <= eps + 1e-6) and x_adv.min() >= 0 and x_adv.max() <= 1
    broken = _predict(quantized, x_adv) != y
    np.testing.assert_array_equal(x_adv[~broken], x[~broken])


def test_one_query_is_the_vertical_stripes(quantized_toy):
    _, model, x, y = quantized_toy
    eps = 0.15
    x_adv = square(model, x, y, eps, queries=1, seed=3, **PLAIN).numpy()
    broken = _predict(model, x_adv) != y
    assert broken.any()
    delta = x_adv[broken] - x[broken]
    # Constant down each column (the 0.2..0.8 images never reach the [0, 1] clip).
    np.testing.assert_allclose(delta, np.broadcast_to(delta[:, :1], delta.shape), atol=1e-6)
    np.testing.assert_allclose(np.abs(delta), eps, atol=1e-6)


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
