"""AutoAttack: at least as strong as each component, ε = 0 is clean, honest bookkeeping, one trace."""
import numpy as np
import pytest
import tensorflow as tf

from tfadv.attacks import _compile, apgd, apgd_targeted, autoattack, fab_targeted, square
from tfadv.attacks.autoattack import COMPONENTS

PLAIN = dict(jit_compile=False)
QUICK = dict(steps=10, queries=100)


def _predict(model_fn, x):
    return np.argmax(np.asarray(model_fn(tf.convert_to_tensor(x))), axis=-1)


@pytest.fixture(scope="module")
def toy(train_toy_mlp):
    """A trained 5-class MLP with a few clean mistakes (so 'clean' shows in the bookkeeping)."""
    model, x, y = train_toy_mlp(classes=5, count=48, seed=21, epochs=40)
    y = y.copy()
    y[:3] = (_predict(model, x[:3]) + 1) % 5  # three clean mistakes
    return model, x, y


def test_autoattack_is_at_least_as_strong_as_each_component(toy):
    model, x, y = toy
    eps = 0.04
    x_adv, broken_by = autoattack(model, x, y, eps, return_info=True, seed=0, **QUICK, **PLAIN)
    x_adv = x_adv.numpy()
    correct = _predict(model, x_adv) == y
    assert np.all(np.abs(x_adv - x) <= eps + 1e-6) and x_adv.min() >= 0 and x_adv.max() <= 1
    alone = {
        "apgd-ce": apgd(model, x, y, eps, steps=10, seed=0, **PLAIN),
        "apgd-t": apgd_targeted(model, x, y, eps, steps=10, seed=0, **PLAIN),
        "fab-t": fab_targeted(model, x, y, eps, steps=10, seed=0, **PLAIN),
        "square": square(model, x, y, eps, queries=100, seed=0, **PLAIN),
    }
    accuracies = {name: np.mean(_predict(model, x_c) == y) for name, x_c in alone.items()}
    clean = np.mean(_predict(model, x) == y)
    assert correct.mean() <= min(accuracies.values()), (correct.mean(), accuracies)
    assert correct.mean() < clean
    # The bookkeeping: -1 exactly where the returned point is still correct ...
    np.testing.assert_array_equal(broken_by == -1, correct)
    # ... 'clean' exactly for the clean mistakes, which come back untouched ...
    clean_wrong = _predict(model, x) != y
    np.testing.assert_array_equal(broken_by == COMPONENTS.index("clean"), clean_wrong)
    np.testing.assert_array_equal(x_adv[clean_wrong], x[clean_wrong])
    np.testing.assert_array_equal(x_adv[correct], x[correct])
    # ... and every point a component breaks alone, AutoAttack breaks too (seeds differ, so no
    # point-by-point credit here; see the next test for that).
    for name, x_c in alone.items():
        assert np.all(broken_by[_predict(model, x_c) != y] != -1), name
    assert set(np.unique(broken_by)) <= set(range(-1, len(COMPONENTS)))
    assert (broken_by == COMPONENTS.index("apgd-ce")).sum() >= 0.5 * (broken_by > 0).sum()


def test_credit_goes_to_the_first_component_that_breaks_a_point(toy):
    """At a huge ε APGD-CE, first in line, breaks every correctly classified point, so the
    credit is known exactly: 'clean' for the clean mistakes, 'apgd-ce' for all others."""
    model, x, y = toy
    _, broken_by = autoattack(model, x, y, 0.5, return_info=True, seed=0, **QUICK, **PLAIN)
    clean_wrong = _predict(model, x) != y
    np.testing.assert_array_equal(broken_by[clean_wrong], 0)
    np.testing.assert_array_equal(broken_by[~clean_wrong], COMPONENTS.index("apgd-ce"))


def test_later_components_break_what_gradients_cannot(toy):
    """Behind a zero-gradient quantizer the gradient attacks only break points by their random
    starts (APGD) or not at all (FAB-T starts at x); Square, which needs no gradient, does the rest."""
    model, x, y = toy

    def quantized(images):
        return model(tf.stop_gradient(tf.round(images * 4.0) / 4.0) + 0.0 * images)

    # Square as the reference draws one window per batch: 1,000 queries, not 100, to finish here.
    x_adv, broken_by = autoattack(quantized, x, y, 0.1, return_info=True, seed=0, steps=10, queries=1000, **PLAIN)
    correct = _predict(quantized, x_adv.numpy()) == y
    np.testing.assert_array_equal(broken_by == -1, correct)
    assert (broken_by == COMPONENTS.index("square")).sum() >= 10
    assert not np.any(broken_by == COMPONENTS.index("fab-t"))
    assert correct.mean() <= 0.2


def test_zero_eps_gives_clean_accuracy_and_eps_never_retraces(toy):
    model, x, y = toy
    autoattack(model, x[:16], y[:16], 0.01, seed=0, **QUICK, **PLAIN)
    before = _compile.TRACE_COUNTS["autoattack"]
    x_adv, broken_by = autoattack(model, x[:16], y[:16], 0.0, return_info=True, seed=0, **QUICK, **PLAIN)
    np.testing.assert_array_equal(x_adv.numpy(), x[:16])
    clean_correct = _predict(model, x[:16]) == y[:16]
    np.testing.assert_array_equal(broken_by == -1, clean_correct)
    np.testing.assert_array_equal(broken_by[~clean_correct], 0)
    autoattack(model, x[:16], y[:16], tf.constant(0.03), seed=1, **QUICK, **PLAIN)
    assert _compile.TRACE_COUNTS["autoattack"] == before


def test_version_and_arguments_are_checked(toy):
    model, x, y = toy
    with pytest.raises(NotImplementedError, match="plus"):
        autoattack(model, x[:2], y[:2], 0.1, version="plus")
    with pytest.raises(ValueError, match="version"):
        autoattack(model, x[:2], y[:2], 0.1, version="fast")
    with pytest.raises(ValueError, match="eps"):
        autoattack(model, x[:2], y[:2], 1.5)
    with pytest.raises(ValueError, match="queries"):
        autoattack(model, x[:2], y[:2], 0.1, queries=0)


def test_bench_batch_is_half_robust_whatever_the_model(toy):
    """The bench's AutoAttack row attacks exactly the robust half with every component: the batch is
    built from the model's predictions (ε = 0 there) and its clean errors, not from what an attack breaks."""
    from tfadv.bench.attacks import half_robust_batch

    model, x, _ = toy

    def constant(images, training=False):  # one prediction over the whole box, as an untrained ResNet gave
        wiggle = 1e-3 * tf.reduce_mean(images, axis=[1, 2, 3])[:, None] * tf.range(5.0)  # gradients, no flips
        return tf.constant([[0.0, 5.0, 1.0, 0.0, 2.0]]) + wiggle

    for model_fn in (model, constant):
        labels, wrong, eps = half_robust_batch(model_fn, tf.constant(x[:10]))
        _, broken_by = autoattack(model_fn, x[:10], labels, eps, return_info=True, seed=0, **QUICK, **PLAIN)
        np.testing.assert_array_equal(broken_by, [-1] * 5 + [0] * 5)
        assert np.all(_predict(model_fn, x[:10]) != wrong.numpy())


def test_bench_weights_and_batch_are_the_same_every_run():
    """The bench and tools/profile_bench_autoattack.py time the same seeded weights and batch."""
    from tfadv.bench.attacks import seeded_model_and_batch

    first_model, first_x, first_y = seeded_model_and_batch("resnet20", batch_size=4, seed=3)
    second_model, second_x, second_y = seeded_model_and_batch("resnet20", batch_size=4, seed=3)
    np.testing.assert_array_equal(first_x.numpy(), second_x.numpy())
    np.testing.assert_array_equal(first_y.numpy(), second_y.numpy())
    for a, b in zip(first_model.weights, second_model.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(first_x.numpy(), np.random.default_rng(3).uniform(0, 1, (4, 32, 32, 3)).astype("float32"))
    other_model, _, _ = seeded_model_and_batch("resnet20", batch_size=4, seed=4)
    assert not np.array_equal(first_model.weights[0].numpy(), other_model.weights[0].numpy())
