"""APGD: schedule, DLR loss, constraints, closed forms and strength against PGD."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfadv.attacks import _compile, pgd
from tfadv.attacks.apgd import apgd, apgd_targeted, checkpoints, dlr_loss, dlr_targeted_loss, top_other_classes
from tfadv.models.conditioning import bind_condition


# Most tests run the graph without XLA: compiling each configuration with XLA
# costs seconds on two shared cores. XLA itself is covered by one test.
PLAIN = dict(jit_compile=False)


def _predict(model, x):
    return np.argmax(model(tf.convert_to_tensor(x), training=False).numpy(), axis=-1)


@pytest.fixture(scope="module")
def trained_toy(train_toy_mlp):
    """A small MLP trained to ~100 % on 3 linearly separable classes of 6×6 images."""
    return train_toy_mlp(classes=3, count=48, seed=7, epochs=60, directions_per_class=True)


def _linear_model(weights, bias, input_shape):
    model = keras.Sequential(
        [keras.Input(input_shape), keras.layers.Flatten(), keras.layers.Dense(weights.shape[1])]
    )
    model.layers[-1].set_weights([weights, bias])
    return model


def _reference_checkpoints(steps):
    """autopgd_base.py's counter: k = max(int(0.22 n), 1), then k − max(int(0.03 n), 1), at least max(int(0.06 n), 1)."""
    k, done, points = max(int(0.22 * steps), 1), 0, []
    while True:
        done += k
        if done > steps:
            return points
        points.append(done)
        k = max(k - max(int(0.03 * steps), 1), max(int(0.06 * steps), 1))


@pytest.mark.parametrize("steps", [1, 5, 10, 37, 100, 250])
def test_checkpoints_follow_the_reference_code(steps):
    assert checkpoints(steps) == _reference_checkpoints(steps)
    if steps == 100:
        assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    if steps == 10:
        assert checkpoints(10) == [2, 3, 4, 5, 6, 7, 8, 9, 10]


def test_dlr_loss_matches_numpy_and_is_shift_and_scale_invariant():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(20, 5)).astype("float32")
    labels = rng.integers(0, 5, size=20)
    expected = []
    for z, label in zip(logits, labels):
        ordered = np.sort(z)[::-1]
        other = np.max(np.delete(z, label))
        expected.append(-(z[label] - other) / (ordered[0] - ordered[2] + 1e-12))
    got = dlr_loss(logits, labels).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    np.testing.assert_allclose(dlr_loss(3.0 * logits + 7.0, labels).numpy(), expected, rtol=1e-4)
    # Positive exactly for misclassified examples.
    np.testing.assert_array_equal(got > 0, np.argmax(logits, -1) != labels)


def test_output_stays_in_eps_ball_and_box(trained_toy):
    model, x, y = trained_toy
    eps = 0.1
    for loss in ("ce", "dlr"):
        x_adv = apgd(model, x, y, eps, steps=10, loss=loss, seed=0, **PLAIN).numpy()
        assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
        assert np.all(np.abs(x_adv - x) <= eps + 1e-6)
        assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0


def test_zero_eps_returns_the_input_exactly(trained_toy):
    model, x, y = trained_toy
    np.testing.assert_array_equal(apgd(model, x, y, 0.0, steps=5, seed=0, **PLAIN).numpy(), x)


def test_linear_binary_model_reaches_the_loss_maximising_corner():
    """With 2-class linear logits the CE of the true class increases with the
    other class's margin, which is linear: d·x with d = w_other − w_y. Its
    maximum over the ε-ball ∩ box is the corner clip(x + ε·sign(d), 0, 1).
    With ε below every margin nothing flips, so APGD must return that corner."""
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, size=(8, 4, 4, 1)).astype("float32")
    weights = rng.normal(size=(16, 2)).astype("float32")
    model = _linear_model(weights, np.zeros(2, "float32"), (4, 4, 1))
    y = np.argmax(x.reshape(8, -1) @ weights, axis=-1).astype("int64")
    d = weights[:, 1] - weights[:, 0]
    margins = np.abs(x.reshape(8, -1) @ d)
    eps = float(0.5 * margins.min() / np.abs(d).sum())  # can move a margin by at most half
    toward_other = np.where(y == 0, 1.0, -1.0)[:, None] * np.sign(d)[None, :]
    corner = np.clip(x + eps * toward_other.reshape(x.shape), 0.0, 1.0)
    x_adv = apgd(model, x, y, eps, steps=10, seed=3, **PLAIN).numpy()
    np.testing.assert_allclose(x_adv, corner, atol=1e-6)
    assert np.all(_predict(model, x_adv) == y)


def test_already_misclassified_examples_are_returned_unchanged(trained_toy):
    model, x, y = trained_toy
    wrong = (y + 1) % 3  # every example "misclassified" with respect to these labels
    np.testing.assert_array_equal(apgd(model, x, wrong, 0.1, steps=5, seed=0, **PLAIN).numpy(), x)


def test_apgd_is_at_least_as_strong_as_pgd_with_the_same_budget(trained_toy):
    model, x, y = trained_toy
    eps, steps = 0.06, 20
    clean_accuracy = np.mean(_predict(model, x) == y)
    pgd_accuracy = np.mean(_predict(model, pgd(model, x, y, eps, eps / 4, steps, seed=0)) == y)
    for loss in ("ce", "dlr"):
        apgd_accuracy = np.mean(_predict(model, apgd(model, x, y, eps, steps=steps, loss=loss, seed=0, **PLAIN)) == y)
        assert apgd_accuracy <= pgd_accuracy, (loss, apgd_accuracy, pgd_accuracy)
    assert pgd_accuracy < clean_accuracy  # the budget is large enough to matter


def test_restarts_never_raise_accuracy(trained_toy):
    model, x, y = trained_toy
    eps = 0.04
    one = _predict(model, apgd(model, x, y, eps, steps=8, restarts=1, seed=5, **PLAIN)) == y
    three = _predict(model, apgd(model, x, y, eps, steps=8, restarts=3, seed=5, **PLAIN)) == y
    # The first run is shared (same seed); later ones only add fooled examples.
    assert np.all(three <= one)


def test_dlr_defeats_saturated_cross_entropy(trained_toy):
    """Logits scaled by 10⁴: softmax is exactly one-hot in float32, so the CE
    gradient vanishes and APGD-CE is stuck, while the scale-invariant DLR loss
    still points the way (the gradient-masking case DLR was designed for)."""
    model, x, y = trained_toy
    scaled = keras.Sequential([model, keras.layers.Rescaling(1e4)])
    eps, steps = 0.06, 20
    ce = np.mean(_predict(scaled, apgd(scaled, x, y, eps, steps=steps, loss="ce", seed=0, **PLAIN)) == y)
    dlr = np.mean(_predict(scaled, apgd(scaled, x, y, eps, steps=steps, loss="dlr", seed=0, **PLAIN)) == y)
    unscaled = np.mean(_predict(model, apgd(model, x, y, eps, steps=steps, loss="dlr", seed=0, **PLAIN)) == y)
    assert dlr < ce
    assert dlr == pytest.approx(unscaled, abs=0.1)


def test_targeted_apgd_reaches_the_target(trained_toy):
    model, x, y = trained_toy
    target = (y + 1) % 3
    x_adv = apgd(model, x, target, 0.3, steps=20, targeted=True, seed=0, **PLAIN)
    assert np.mean(_predict(model, x_adv) == target) >= 0.9
    with pytest.raises(ValueError, match="true_labels"):
        apgd(model, x, target, 0.3, steps=20, loss="dlr", targeted=True)


def test_xla_compiles_once_for_repeated_calls_and_new_eps(trained_toy):
    model, x, y = trained_toy
    before = _compile.TRACE_COUNTS["apgd"]
    for eps in (0.01, 0.02, tf.constant(0.03), 0.0):
        x_adv = apgd(model, x[:8], y[:8], eps, steps=4, seed=1).numpy()
        assert np.all(np.abs(x_adv - x[:8]) <= float(eps) + 1e-6)
    assert _compile.TRACE_COUNTS["apgd"] == before + 1


def test_conditioned_model_fn_compiles_once_for_every_p():
    images = keras.Input((4, 4, 1), name="images")
    condition = keras.Input((1,), name="condition")
    features = keras.layers.Flatten()(images)
    logits = keras.layers.Dense(3)(keras.layers.Concatenate()([features, condition]))
    model = keras.Model({"images": images, "condition": condition}, logits)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(4, 4, 4, 1)).astype("float32")
    y = np.arange(4) % 3
    apgd(bind_condition(model, 0.0), x, y, 0.05, steps=3, seed=0, **PLAIN)
    before = _compile.TRACE_COUNTS["apgd"]
    apgd(bind_condition(model, 1.0), x, y, 0.05, steps=3, seed=0, **PLAIN)
    assert _compile.TRACE_COUNTS["apgd"] == before


def test_inlines_inside_a_tf_function(trained_toy):
    # Compared with the plain graph: XLA draws different random starts.
    model, x, y = trained_toy

    @tf.function
    def attack(images, labels):
        return apgd(model, images, labels, 0.05, steps=5, seed=0, **PLAIN)

    x_adv = attack(tf.constant(x), tf.constant(y)).numpy()
    eager = apgd(model, x, y, 0.05, steps=5, seed=0, **PLAIN).numpy()
    np.testing.assert_allclose(x_adv, eager, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(eps=1.5), "eps"),
        (dict(eps=-0.1), "eps"),
        (dict(loss="l2"), "loss"),
        (dict(steps=0), "steps"),
        (dict(restarts=0), "restarts"),
        (dict(rho=0.0), "rho"),
    ],
)
def test_bad_arguments_raise_value_error(trained_toy, kwargs, message):
    model, x, y = trained_toy
    arguments = dict(eps=0.1, steps=3)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        apgd(model, x[:4], y[:4], **arguments)


def test_bad_images_and_labels_raise_value_error(trained_toy):
    model, x, y = trained_toy
    with pytest.raises(ValueError, match="x"):
        apgd(model, x[:4] * 3.0, y[:4], 0.1, steps=3)
    with pytest.raises(ValueError, match="batch size"):
        apgd(model, x[:4], y[:3], 0.1, steps=3)


def test_dlr_needs_three_classes():
    model = _linear_model(np.ones((16, 2), "float32"), np.zeros(2, "float32"), (4, 4, 1))
    x = np.full((2, 4, 4, 1), 0.5, "float32")
    with pytest.raises(ValueError, match="3 classes"):
        apgd(model, x, np.array([0, 1]), 0.1, steps=3, loss="dlr")


@pytest.fixture(scope="module")
def five_class_toy(train_toy_mlp):
    """A small MLP trained on 5 linearly separable classes of 6×6 images (APGD-T needs K >= 4)."""
    return train_toy_mlp(classes=5, count=40, seed=11, epochs=80, directions_per_class=True)


def test_dlr_targeted_loss_matches_numpy_and_is_shift_and_scale_invariant():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(16, 6)).astype("float32")
    labels = rng.integers(0, 6, size=16)
    targets = (labels + 1 + rng.integers(0, 5, size=16)) % 6
    expected = []
    for z, label, target in zip(logits, labels, targets):
        ordered = np.sort(z)[::-1]
        expected.append(-(z[label] - z[target]) / (ordered[0] - 0.5 * (ordered[2] + ordered[3]) + 1e-12))
    got = dlr_targeted_loss(logits, labels, targets).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    np.testing.assert_allclose(dlr_targeted_loss(2.5 * logits - 4.0, labels, targets).numpy(), expected,
                               rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="4 classes"):
        dlr_targeted_loss(logits[:, :3], labels % 3, targets % 3)


def test_top_other_classes_skips_the_true_class():
    logits = np.array([[5.0, 1.0, 3.0, 4.0], [0.0, 9.0, 2.0, 1.0]], "float32")
    got = top_other_classes(logits, np.array([0, 2]), 2).numpy()
    np.testing.assert_array_equal(got, [[3, 2], [1, 3]])


def test_targeted_dlr_run_reaches_each_target(five_class_toy):
    """Every targeted DLR run moves the examples into its own class, not just off the true one."""
    model, x, y = five_class_toy
    correct = _predict(model, x) == y
    x, y = x[correct][:16], y[correct][:16]
    for shift in (1, 2, 3):
        target = (y + shift) % 5
        x_adv = apgd(model, x, target, 0.5, steps=20, loss="dlr", targeted=True, true_labels=y, seed=0, **PLAIN)
        assert np.mean(_predict(model, x_adv) == target) >= 0.9, shift
        assert np.all(np.abs(x_adv.numpy() - x) <= 0.5 + 1e-6)


def test_apgd_t_is_at_least_as_strong_as_apgd_ce(five_class_toy):
    model, x, y = five_class_toy
    eps, steps = 0.05, 20
    clean = np.mean(_predict(model, x) == y)
    ce = np.mean(_predict(model, apgd(model, x, y, eps, steps=steps, seed=0, **PLAIN)) == y)
    x_adv = apgd_targeted(model, x, y, eps, steps=steps, seed=0, **PLAIN).numpy()
    targeted = np.mean(_predict(model, x_adv) == y)
    assert targeted <= ce < clean, (targeted, ce, clean)
    assert np.all(np.abs(x_adv - x) <= eps + 1e-6) and x_adv.min() >= 0 and x_adv.max() <= 1
    # Examples it does not break come back unchanged.
    robust = _predict(model, x_adv) == y
    np.testing.assert_array_equal(x_adv[robust], x[robust])


def test_apgd_t_compiles_once_for_every_eps(five_class_toy):
    model, x, y = five_class_toy
    apgd_targeted(model, x[:8], y[:8], 0.01, steps=3, target_classes=2, seed=0, **PLAIN)
    before = _compile.TRACE_COUNTS["apgd-t"]
    for eps in (0.02, tf.constant(0.03), 0.0):
        x_adv = apgd_targeted(model, x[:8], y[:8], eps, steps=3, target_classes=2, seed=0, **PLAIN).numpy()
        assert np.all(np.abs(x_adv - x[:8]) <= float(eps) + 1e-6)
    assert _compile.TRACE_COUNTS["apgd-t"] == before


# --------------------------------------------------------------------------
# Equality with the reference code (fra31/auto-attack, autoattack/autopgd_base.py),
# re-written in NumPy in the reference's own structure (loss history array,
# counter, shrinking interval k, reduced_last_check), on a tanh MLP whose
# cross-entropy gradient is written out by hand. (A linear model would not do:
# APGD ends in the same corner of the ball whatever its path.)

def _reference_apgd_mlp(w1, b1, w2, b2, x, y, eps, steps, noise, rho=0.75):
    flat = x.reshape(len(x), -1)

    def loss_grad(v):
        v = v.astype(np.float32)
        hidden = np.tanh(v @ w1 + b1)
        logits = hidden @ w2 + b2
        shifted = logits - logits.max(1, keepdims=True)
        p = np.exp(shifted) / np.exp(shifted).sum(1, keepdims=True)
        loss = -np.log(p[np.arange(len(v)), y])
        onehot = np.eye(w2.shape[1])[y]
        return loss, (((p - onehot) @ w2.T) * (1 - hidden ** 2)) @ w1.T, np.argmax(logits, 1)

    t = noise.reshape(len(x), -1)
    x_adv = np.clip(flat + eps * t / (np.abs(t).max(1, keepdims=True) + 1e-12), 0, 1)
    x_best, x_best_adv = x_adv.copy(), x_adv.copy()
    loss_steps = np.zeros([steps, len(x)])
    loss, grad, pred = loss_grad(x_adv)
    acc = pred == y
    grad_best, loss_best = grad.copy(), loss.copy()
    step = 2 * eps * np.ones([len(x), 1])
    x_old = x_adv.copy()
    k = max(int(0.22 * steps), 1)
    size_decr, n_min = max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)
    counter3 = 0
    loss_best_last, reduced_last = loss_best.copy(), np.ones(len(x))
    for i in range(steps):
        grad2 = x_adv - x_old
        x_old = x_adv.copy()
        a = 0.75 if i > 0 else 1.0
        z = np.clip(np.clip(x_adv + step * np.sign(grad), flat - eps, flat + eps), 0, 1)
        x_adv = np.clip(np.clip(x_adv + (z - x_adv) * a + grad2 * (1 - a), flat - eps, flat + eps), 0, 1)
        loss, grad, pred = loss_grad(x_adv)
        acc = acc & (pred == y)
        x_best_adv[pred != y] = x_adv[pred != y]
        loss_steps[i] = loss
        better = loss > loss_best
        x_best[better], grad_best[better], loss_best[better] = x_adv[better], grad[better], loss[better]
        counter3 += 1
        if counter3 == k:
            rises = sum(loss_steps[i - c] > loss_steps[i - c - 1] for c in range(k))
            reduce = (rises <= k * rho) | ((1 - reduced_last) * (loss_best_last >= loss_best) > 0)
            reduced_last, loss_best_last = reduce.astype(float), loss_best.copy()
            step[reduce] /= 2.0
            x_adv[reduce], grad[reduce] = x_best[reduce], grad_best[reduce]
            k = max(k - size_decr, n_min)
            counter3 = 0
    return np.where(acc[:, None], x_best, x_best_adv).reshape(x.shape), ~acc


@pytest.mark.parametrize("steps", [100, 30])
def test_apgd_equals_the_reference_code_on_an_mlp(steps):
    rng = np.random.default_rng(3)
    x = rng.uniform(0.0, 1.0, (16, 4, 4, 1)).astype("float32")
    w1, b1 = rng.normal(size=(16, 24)).astype("float32"), rng.normal(size=24).astype("float32")
    w2, b2 = rng.normal(size=(24, 5)).astype("float32"), rng.normal(size=5).astype("float32")
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(24, activation="tanh"), keras.layers.Dense(5)])
    model.layers[-2].set_weights([w1, b1])
    model.layers[-1].set_weights([w2, b2])
    y = _predict(model, x)
    eps, seed = 0.05, 11
    # tfadv's first run draws its start from seed + [0, 0] (apgd_body's restart 0).
    noise = tf.random.stateless_uniform(x.shape, tf.constant([seed, 0], tf.int64), -1.0, 1.0).numpy()
    expected, expected_fooled = _reference_apgd_mlp(w1, b1, w2, b2, x, y, eps, steps, noise)
    assert 0 < expected_fooled.sum() < len(x)  # both kinds of result are compared
    x_adv = apgd(model, x, y, eps, steps=steps, seed=seed, **PLAIN).numpy()
    np.testing.assert_array_equal(_predict(model, x_adv) != y, expected_fooled)
    # Float32 rounding may flip the sign of a near-zero gradient coordinate,
    # which moves that one coordinate a little; a difference in the algorithm
    # (start, schedule, conditions, momentum) moves many (16 % before the fix).
    off = np.abs(x_adv - expected) > 2e-5
    assert off.mean() < 0.03, f"{off.sum()} of {off.size} coordinates differ from the reference"
    assert np.abs(x_adv - expected).max() < eps / 20


def test_apgd_t_batched_targets_equal_the_one_after_another_loop(five_class_toy):
    """Targets 2..k stacked into one batch give the points of the reference's sequential loop."""
    from tfadv.attacks.apgd import apgd_body, misclassified

    model, x, y = five_class_toy
    eps, seed, steps = 0.03, 4, 12
    batched = apgd_targeted(model, x, y, eps, steps=steps, seed=seed, **PLAIN).numpy()
    # The loop, eagerly, with the same random numbers (drawn for the whole batch, then gathered).
    call = lambda images: model(images, training=False)  # noqa: E731
    logits = call(x).numpy()
    targets = top_other_classes(logits, y, 4).numpy()
    x_adv, fooled = x.copy(), logits.argmax(1) != y
    seed_pair = tf.constant([seed, 0], tf.int64)
    for k in range(4):
        todo = np.flatnonzero(~fooled)
        if todo.size == 0:
            break
        y_sub, t_sub = tf.constant(y[todo]), tf.constant(targets[todo, k])
        noise = lambda r, k=k, todo=todo: tf.gather(tf.random.stateless_uniform(  # noqa: E731
            x.shape, seed_pair + tf.stack([tf.constant(0, tf.int64), tf.cast(1000 * (k + 1) + r, tf.int64)]),
            -1.0, 1.0), todo)
        x_k, fooled_k = apgd_body(
            call, tf.constant(x[todo]), tf.fill([todo.size], eps), seed_pair,
            lambda z: dlr_targeted_loss(z, y_sub, t_sub), misclassified(tf.cast(y_sub, tf.int64)),
            steps=steps, restarts=1, rho=0.75, start_noise=noise)
        fooled_k = fooled_k.numpy()
        x_adv[todo[fooled_k]] = x_k.numpy()[fooled_k]
        fooled[todo[fooled_k]] = True
    assert 0 < fooled.sum() < len(x)
    np.testing.assert_array_equal(_predict(model, batched) != y, fooled)
    np.testing.assert_allclose(batched, x_adv, atol=1e-6)
