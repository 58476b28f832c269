"""FAB-T: the exact L∞ projection, minimal distances on a linear model, the ε-ball contract."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfadv.attacks import _compile
from tfadv.attacks.fab import fab_targeted, linf_projection_to_hyperplane

PLAIN = dict(jit_compile=False)


def _predict(model, x):
    return np.argmax(model(tf.convert_to_tensor(x), training=False).numpy(), axis=-1)


def _bisection_radius(p, w, b):
    """Smallest r with max_{|δ|∞<=r, p+δ in box} w·δ >= |b − w·p|, by bisection in float64."""
    gap = b - w @ p
    direction = np.sign(w) * np.sign(gap)
    room = np.where(direction > 0, 1 - p, np.where(direction < 0, p, 0.0))
    reach = lambda r: np.sum(np.abs(w) * np.minimum(r, room) * (direction != 0))  # noqa: E731
    if reach(1.0) < abs(gap):
        return None
    low, high = 0.0, 1.0
    for _ in range(80):
        middle = (low + high) / 2
        low, high = (middle, high) if reach(middle) < abs(gap) else (low, middle)
    return high


def test_projection_is_the_minimal_linf_displacement_onto_the_hyperplane_in_the_box():
    rng = np.random.default_rng(0)
    n, d = 12, 9
    points = rng.uniform(0, 1, (n, d))
    w = rng.normal(size=(n, d))
    w[0, :4] = 0.0
    b = np.sum(w * points, 1) + rng.normal(size=n) * 0.6
    b[1] = w[1] @ points[1]  # already on it
    b[2] = 50.0  # out of reach inside the box
    delta = linf_projection_to_hyperplane(*(tf.constant(a, tf.float32) for a in (points, w, b))).numpy()
    moved = points + delta
    assert moved.min() >= -1e-6 and moved.max() <= 1 + 1e-6
    for i in range(n):
        radius = _bisection_radius(points[i], w[i], b[i])
        if radius is None:  # the box corner closest to the hyperplane
            corner = np.where(w[i] > 0, 1.0, np.where(w[i] < 0, 0.0, points[i]))
            np.testing.assert_allclose(moved[i], corner, atol=1e-6)
            continue
        assert abs(w[i] @ moved[i] - b[i]) < 1e-4, i
        assert np.abs(delta[i]).max() == pytest.approx(radius, abs=1e-5), i
    np.testing.assert_allclose(delta[1], 0.0, atol=1e-7)
    np.testing.assert_array_equal(delta[0, :4], 0.0)


def _linear_model(num_classes=4, dim=16, seed=3):
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(dim, num_classes)).astype("float32")
    bias = rng.normal(size=num_classes).astype("float32") * 0.1
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(num_classes)])
    model.layers[-1].set_weights([weights, bias])
    return model, weights, bias


def test_fab_finds_the_closest_boundary_of_a_linear_model():
    """For linear logits the smallest L∞ step from class y to the y/t boundary is
    (z_y − z_t)/‖w_y − w_t‖₁ (the box is far). FAB-T's first target is the most
    likely other class t₁; its point lies between the closest boundary over all
    classes and t₁'s boundary (another class may take over on the way)."""
    model, weights, bias = _linear_model()
    rng = np.random.default_rng(4)
    x = rng.uniform(0.4, 0.6, (16, 4, 4, 1)).astype("float32")
    logits = x.reshape(16, -1) @ weights + bias
    y = np.argmax(logits, -1)
    x_adv = fab_targeted(model, x, y, 0.3, steps=30, seed=0, **PLAIN).numpy()
    distance = np.abs(x_adv - x).reshape(16, -1).max(1)
    checked = 0
    for i in range(16):
        others = [t for t in range(4) if t != y[i]]
        to_boundary = {t: (logits[i, y[i]] - logits[i, t]) / np.abs(weights[:, y[i]] - weights[:, t]).sum()
                       for t in others}
        first_target = max(others, key=lambda t: logits[i, t])
        if to_boundary[first_target] > 0.1:  # keep the box out of play
            continue
        assert min(to_boundary.values()) * 0.999 <= distance[i] <= to_boundary[first_target] * 1.03, i
        checked += 1
    assert checked >= 8
    assert np.all(_predict(model, x_adv) != y)


def test_points_lie_in_the_eps_ball_and_change_the_prediction():
    keras.utils.set_random_seed(5)
    rng = np.random.default_rng(5)
    x = rng.uniform(0.2, 0.8, (32, 6, 6, 1)).astype("float32")
    y = np.argmax((x.reshape(32, -1) - 0.5) @ rng.normal(size=(36, 5)), -1).astype("int64")
    model = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(32, activation="relu"), keras.layers.Dense(5)])
    model.compile(keras.optimizers.Adam(0.03), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=60, batch_size=32, verbose=0)
    clean_correct = _predict(model, x) == y
    eps = 0.04
    x_adv = fab_targeted(model, x, y, eps, steps=20, seed=0, **PLAIN).numpy()
    distance = np.abs(x_adv - x).reshape(32, -1).max(1)
    assert np.all(distance <= eps + 1e-7)
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    changed = distance > 0
    assert changed.any() and not changed.all()  # the radius separates the examples
    assert np.all(_predict(model, x_adv)[changed] != y[changed])
    # Not broken: the clean point itself.
    np.testing.assert_array_equal(x_adv[~changed], x[~changed])
    # Already misclassified examples stay as they are.
    wrong = (y + 1) % 5
    np.testing.assert_array_equal(fab_targeted(model, x, wrong, eps, steps=3, **PLAIN).numpy(), x)
    assert clean_correct.mean() > 0.9


def test_changing_eps_does_not_retrace():
    model, _, _ = _linear_model()
    x = np.full((4, 4, 4, 1), 0.5, "float32")
    y = np.argmax(model(x).numpy(), -1)
    fab_targeted(model, x, y, 0.01, steps=2, target_classes=2, **PLAIN)
    before = _compile.TRACE_COUNTS["fab-t"]
    for eps in (0.02, tf.constant(0.05), 0.0, np.full(4, 0.1, "float32")):
        fab_targeted(model, x, y, eps, steps=2, target_classes=2, **PLAIN)
    assert _compile.TRACE_COUNTS["fab-t"] == before + 1  # the [B] ε is a new input shape


@pytest.mark.parametrize("kwargs, message", [
    (dict(alpha_max=1.5), "alpha_max"), (dict(eta=0.5), "eta"), (dict(beta=1.0), "beta"),
    (dict(steps=0), "steps"), (dict(search_steps=-1), "search_steps"), (dict(eps=2.0), "eps"),
])
def test_bad_arguments_raise_value_error(kwargs, message):
    model, _, _ = _linear_model()
    x = np.full((2, 4, 4, 1), 0.5, "float32")
    arguments = dict(eps=0.1, steps=2)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        fab_targeted(model, x, np.array([0, 1]), **arguments)


def test_batched_targets_equal_the_one_after_another_loop():
    """Runs 2..k stacked into one batch give the points of the reference's sequential loop."""
    from tfadv.attacks.apgd import top_other_classes
    from tfadv.attacks.fab import _single_run

    keras.utils.set_random_seed(5)
    rng = np.random.default_rng(5)
    x = rng.uniform(0.2, 0.8, (24, 6, 6, 1)).astype("float32")
    y = np.argmax((x.reshape(24, -1) - 0.5) @ rng.normal(size=(36, 5)), -1).astype("int64")
    model = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(32, activation="relu"), keras.layers.Dense(5)])
    model.compile(keras.optimizers.Adam(0.03), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=60, batch_size=24, verbose=0)
    y = _predict(model, x)
    eps, steps = 0.06, 8
    batched = fab_targeted(model, x, y, eps, steps=steps, target_classes=4, seed=0, **PLAIN).numpy()
    call = lambda images: model(images, training=False)  # noqa: E731
    targets = top_other_classes(call(x), y, 4).numpy()
    x_adv, fooled = x.copy(), np.zeros(len(x), bool)
    for k in range(4):
        todo = np.flatnonzero(~fooled)
        x_k, fooled_k = _single_run(call, tf.constant(x[todo]), tf.constant(y[todo]), tf.constant(targets[todo, k]),
                                    tf.fill([todo.size], eps), tf.constant(x[todo]), steps=steps, alpha_max=0.1,
                                    eta=1.05, beta=0.9, search_steps=0)
        fooled_k = fooled_k.numpy()
        x_adv[todo[fooled_k]] = x_k.numpy()[fooled_k]
        fooled[todo[fooled_k]] = True
    assert 0 < fooled.sum() < len(x) and (fooled & (np.abs(x_adv - x).max((1, 2, 3)) > 0)).any()
    np.testing.assert_allclose(batched, x_adv, atol=1e-6)
