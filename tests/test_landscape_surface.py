"""Surface sweeps: grid parsing, values against independent NumPy computations,
resume, settings checks, weight restoration, MirroredStrategy, adversarial surfaces."""
import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfadv import attacks
from tfadv.landscape import directions as D
from tfadv.landscape.surface import parse_grid, read_surface, sweep_surface
from tfadv.models import build, condition_inputs

GRID = parse_grid("-1:1:3")


def tiny(**options):
    return build("tiny", input_shape=(8, 8, 3), **options)


DATA = {"count": 13}  # the conftest data fixture


def numpy_loss_and_accuracy(logits, y):
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_softmax[np.arange(len(y)), y].mean(), (logits.argmax(1) == y).mean()


def snapshot(model):
    return [w.numpy().copy() for w in model.weights]


@pytest.mark.parametrize("spec, expected", [("-1:1:3", [-1, 0, 1]), ("0:0.5:2", [0, 0.5]),
                                            ("-2.5:-0.5:5", [-2.5, -2, -1.5, -1, -0.5])])
def test_parse_grid(spec, expected):
    np.testing.assert_allclose(parse_grid(spec), expected)


@pytest.mark.parametrize("spec", ["-1:1", "-1:1:51:2", "a:1:5", "1:-1:5", "1:1:5", "-1:1:1",
                                  "-1:1:2.5", "-1:inf:5", "", "-1:1:x"])
def test_parse_grid_rejects_bad_strings(spec):
    with pytest.raises(ValueError, match="grid must look like '-1:1:51'.*Received: grid="):
        parse_grid(spec)


@pytest.mark.parametrize("conditioned", [False, True])
def test_points_equal_an_independent_numpy_evaluation(tmp_path, data, conditioned):
    """The centre is the model's own loss; a corner is the loss of weights
    θ* + αδ + βη set by hand, and sits at [j, i] for (x[i], y[j])."""
    x, y = data
    model = tiny(norm="robmask") if conditioned else tiny()
    p = 0.6 if conditioned else 0.0
    directions = D.random_directions(model, 2, seed=0)

    def logits():
        return model(condition_inputs(x, p) if conditioned else x, training=False).numpy()

    centre = numpy_loss_and_accuracy(logits(), y)
    result = sweep_surface(model, directions, x, y, tmp_path / "s.h5", GRID, GRID, batch_size=5,
                           p=p, progress=False)
    assert result["complete"] and result["computed"] == 9
    np.testing.assert_allclose((result["loss"][1, 1], result["acc"][1, 1]), centre, rtol=1e-5)

    theta = [v.numpy().copy() for v in D.landscape_variables(model)]
    for variable, w, dx, dy in zip(D.landscape_variables(model), theta, directions.x, directions.y):
        variable.assign(w + 1.0 * dx - 1.0 * dy)  # α = x[2] = 1, β = y[0] = -1
    corner = numpy_loss_and_accuracy(logits(), y)
    for variable, w in zip(D.landscape_variables(model), theta):
        variable.assign(w)
    np.testing.assert_allclose((result["loss"][0, 2], result["acc"][0, 2]), corner, rtol=1e-5)
    assert not np.isclose(corner[0], centre[0])


def test_quadratic_loss_gives_the_closed_form_surface(tmp_path):
    """Linear regression with loss ½(w·x + b − t)²: the surface is the
    quadratic computed in NumPy from the same directions (bias included)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((24, 5)).astype("float32")
    t = rng.standard_normal(24).astype("float32")
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(1)])
    directions = D.random_directions(model, 2, seed=2, ignore="none")  # bias moves too
    kernel, bias = (v.numpy().astype(np.float64) for v in model.trainable_variables)

    def half_squared_error(target, predictions):
        return 0.5 * tf.square(predictions[:, 0] - target)

    xs, ys = parse_grid("-2:2:5"), parse_grid("-1:1:3")
    result = sweep_surface(model, directions, x, t, tmp_path / "q.h5", xs, ys, batch_size=7,
                           loss=half_squared_error, progress=False)
    (dk, db), (ek, eb) = directions.x, directions.y
    expected = np.empty((len(ys), len(xs)))
    for j, beta in enumerate(ys):
        for i, alpha in enumerate(xs):
            w = kernel + alpha * dk + beta * ek
            b = bias + alpha * db + beta * eb
            expected[j, i] = np.mean(0.5 * (x @ w + b - t[:, None]) ** 2)
    np.testing.assert_allclose(result["loss"], expected, rtol=1e-5)


def test_resume_after_interruption_gives_the_identical_array(tmp_path, data):
    x, y = data
    model = tiny()
    directions = D.random_directions(model, 2, seed=0)
    full = sweep_surface(model, directions, x, y, tmp_path / "full.h5", GRID, GRID, batch_size=4,
                         progress=False)
    path = tmp_path / "resumed.h5"
    first = sweep_surface(model, directions, x, y, path, GRID, GRID, batch_size=4, progress=False,
                          max_points=4)
    assert first["computed"] == 4 and not first["complete"]
    assert np.isnan(first["loss"]).sum() == 5 and np.isnan(first["acc"]).sum() == 5
    second = sweep_surface(model, directions, x, y, path, GRID, GRID, batch_size=4, progress=False)
    assert second["computed"] == 5 and second["complete"]
    np.testing.assert_array_equal(second["loss"], full["loss"])
    np.testing.assert_array_equal(second["acc"], full["acc"])
    third = sweep_surface(model, directions, x, y, path, GRID, GRID, batch_size=4, progress=False)
    assert third["computed"] == 0


def test_existing_file_with_other_settings_is_refused(tmp_path, data):
    x, y = data
    model = tiny()
    directions = D.random_directions(model, 2, seed=0)
    path = tmp_path / "s.h5"
    sweep_surface(model, directions, x, y, path, GRID, GRID, progress=False, max_points=1)
    other_directions = D.random_directions(model, 2, seed=1)
    attempts = {
        "directions": lambda: sweep_surface(model, other_directions, x, y, path, GRID, GRID, progress=False),
        "data_sha256": lambda: sweep_surface(model, directions, x[:-1], y[:-1], path, GRID, GRID, progress=False),
        "coordinates": lambda: sweep_surface(model, directions, x, y, path, parse_grid("-1:1:5"), GRID,
                                             progress=False),
        "p": lambda: sweep_surface(model, directions, x, y, path, GRID, GRID, p=0.5, progress=False),
    }
    for difference, attempt in attempts.items():
        with pytest.raises(ValueError, match=f"different settings.*{difference}.*refusing"):
            attempt()
    with h5py.File(path, "r") as f:  # the refused runs wrote nothing
        assert np.isfinite(f["train_acc"][()]).sum() == 1


@pytest.mark.parametrize("mode", ["weights", "states"])
def test_weights_restored_bit_exactly_also_after_an_error(tmp_path, data, mode):
    x, y = data
    model = tiny()
    # Non-trivial BN statistics, so "states" mode really moves something.
    model.get_layer("bn_1").moving_mean.assign(np.linspace(-0.2, 0.3, 8).astype("float32"))
    before = snapshot(model)
    directions = D.random_directions(model, 2, seed=0, mode=mode, ignore="none")
    sweep_surface(model, directions, x, y, tmp_path / "a.h5", GRID, GRID, progress=False)
    for got, want in zip(snapshot(model), before):
        np.testing.assert_array_equal(got, want)

    def fail_on_third_point(index, *_):
        if index == 2:
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        sweep_surface(model, directions, x, y, tmp_path / "b.h5", GRID, GRID, progress=False,
                      callback=fail_on_third_point)
    for got, want in zip(snapshot(model), before):
        np.testing.assert_array_equal(got, want)
    assert np.isfinite(read_surface(tmp_path / "b.h5")["acc"]).sum() == 3  # flushed as they finished


def test_mirrored_strategy_gives_the_same_surface(tmp_path, data, two_cpu_strategy):
    """13 examples over two replicas (uneven shards), BN statistics moved too."""
    x, y = data
    single = tiny()
    directions = D.random_directions(single, 2, seed=0, mode="states", ignore="none")
    expected = sweep_surface(single, directions, x, y, tmp_path / "one.h5", GRID, GRID, batch_size=4,
                             progress=False)
    with two_cpu_strategy.scope():
        mirrored = tiny()
    mirrored.set_weights(single.get_weights())
    before = snapshot(mirrored)
    with two_cpu_strategy.scope():
        got = sweep_surface(mirrored, directions, x, y, tmp_path / "two.h5", GRID, GRID, batch_size=4,
                            progress=False)
    assert read_surface(tmp_path / "two.h5")["settings"]["replicas"] == 2
    np.testing.assert_allclose(got["loss"], expected["loss"], rtol=1e-5)
    np.testing.assert_array_equal(got["acc"], expected["acc"])
    for got_w, want in zip(snapshot(mirrored), before):
        np.testing.assert_array_equal(got_w, want)


def test_adversarial_surface_uses_the_attack_at_each_point(tmp_path, data):
    x, y = data
    model = tiny()
    directions = D.random_directions(model, 1, seed=0)
    eps = 4 / 255
    result = sweep_surface(model, directions, x, y, tmp_path / "adv.h5", GRID, batch_size=5,
                           attack={"name": "fgsm", "eps": eps}, progress=False)
    x_adv = attacks.fgsm(model, x, y, eps).numpy()
    adversarial = numpy_loss_and_accuracy(model(x_adv, training=False).numpy(), y)
    clean = numpy_loss_and_accuracy(model(x, training=False).numpy(), y)
    np.testing.assert_allclose((result["loss"][1], result["acc"][1]), adversarial, rtol=1e-4)
    assert adversarial[0] > clean[0]
    assert read_surface(tmp_path / "adv.h5")["settings"]["attack"] == {"name": "fgsm", "eps": eps}
    with pytest.raises(ValueError, match="attack must be one of"):
        sweep_surface(model, directions, x, y, tmp_path / "bad.h5", GRID, attack="cw", progress=False)
