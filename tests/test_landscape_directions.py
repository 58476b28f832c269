"""Directions: filter normalization, ignore rules, modes, seeds, h5, interpolation, PCA."""
import keras
import numpy as np
import pytest

from tfadv.landscape import directions as D


def small_model():
    """Conv2D, BN, depthwise conv (multiplier 2) and Dense: every kind of kernel."""
    return keras.Sequential([
        keras.Input((6, 6, 2)),
        keras.layers.Conv2D(3, 3, name="conv"),
        keras.layers.BatchNormalization(name="bn"),
        keras.layers.ReLU(),
        keras.layers.DepthwiseConv2D(3, depth_multiplier=2, name="depthwise"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(4, name="dense"),
    ], name="small")


def filter_norms(array, output_axes=1):
    return np.linalg.norm(array.reshape(-1, int(np.prod(array.shape[-output_axes:]))), axis=0)


def test_filter_normalization_matches_each_filter_norm_and_zeroes_biasbn():
    model = small_model()
    directions = D.random_directions(model, dim=2, seed=3)
    variables = D.landscape_variables(model, "weights")
    assert [v.path for v in variables] == directions.variable_paths
    for variable, dx, dy in zip(variables, directions.x, directions.y):
        weights = variable.numpy()
        if weights.ndim <= 1:
            np.testing.assert_array_equal(dx, 0.0)
            np.testing.assert_array_equal(dy, 0.0)
            continue
        axes = 2 if "depthwise" in variable.path else 1
        for d in (dx, dy):
            np.testing.assert_allclose(filter_norms(d, axes), filter_norms(weights, axes), rtol=1e-5)
            assert not np.allclose(d, weights)  # a random direction, not a copy
    # The depthwise kernel [3, 3, 3, 2] has 6 filters (one per output channel), not 2.
    depthwise = directions.x[directions.variable_paths.index("small/depthwise/kernel")]
    assert filter_norms(depthwise, 2).shape == (6,)


def test_ignore_none_copies_one_dimensional_weights():
    model = small_model()
    directions = D.random_directions(model, dim=1, seed=0, ignore="none")
    for variable, d in zip(D.landscape_variables(model), directions.x):
        if variable.numpy().ndim <= 1:
            np.testing.assert_array_equal(d, variable.numpy())


def test_layer_and_none_normalization_against_the_raw_gaussian():
    model = small_model()
    rng = np.random.default_rng(7)
    # random_direction draws one Gaussian per kernel (ndim >= 2), in variable order.
    expected = [rng.standard_normal(v.shape) for v in D.landscape_variables(model) if len(v.shape) >= 2]
    raw = [d for d in D.random_directions(model, 1, seed=7, norm="none").x if d.ndim >= 2]
    for got, want in zip(raw, expected):
        np.testing.assert_allclose(got, want.astype(np.float32), rtol=1e-6)
    layer = D.random_directions(model, 1, seed=7, norm="layer")
    for variable, d in zip(D.landscape_variables(model), layer.x):
        if d.ndim >= 2:
            np.testing.assert_allclose(np.linalg.norm(d), np.linalg.norm(variable.numpy()), rtol=1e-5)


def test_seeds_same_dir_and_modes():
    model = small_model()
    a = D.random_directions(model, 2, seed=1)
    b = D.random_directions(model, 2, seed=1)
    c = D.random_directions(model, 2, seed=2)
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
    same = D.random_directions(model, 2, seed=1, same_dir=True)
    for dx, dy in zip(same.x, same.y):
        np.testing.assert_array_equal(dx, dy)
    assert same.cosine_similarity() == pytest.approx(1.0)
    assert abs(a.cosine_similarity()) < 0.5

    weights_paths = {v.path for v in D.landscape_variables(model, "weights")}
    states_paths = {v.path for v in D.landscape_variables(model, "states")}
    assert states_paths - weights_paths == {"small/bn/moving_mean", "small/bn/moving_variance"}
    states = D.random_directions(model, 1, seed=0, mode="states", ignore="none")
    moving = states.x[states.variable_paths.index("small/bn/moving_variance")]
    np.testing.assert_array_equal(moving, model.get_layer("bn").moving_variance.numpy())


def test_bad_options_raise_value_error_naming_the_argument():
    model = small_model()
    with pytest.raises(ValueError, match="norm"):
        D.random_directions(model, 2, norm="filters")
    with pytest.raises(ValueError, match="ignore"):
        D.random_directions(model, 2, ignore="bn")
    with pytest.raises(ValueError, match="mode"):
        D.random_directions(model, 2, mode="all")
    with pytest.raises(ValueError, match="dim"):
        D.random_directions(model, 3)


def test_save_load_round_trip_and_fit_check(tmp_path):
    model = small_model()
    directions = D.random_directions(model, 2, seed=5, norm="layer")
    path = tmp_path / "directions.h5"
    D.save_directions(directions, path)
    loaded = D.load_directions(path, model)
    assert loaded.settings == directions.settings
    assert loaded.variable_paths == directions.variable_paths
    for got, want in zip(loaded.x + loaded.y, directions.x + directions.y):
        np.testing.assert_array_equal(got, want)
    other = keras.Sequential([keras.Input((6, 6, 2)), keras.layers.Conv2D(5, 3), keras.layers.Flatten(),
                              keras.layers.Dense(4)])
    with pytest.raises(ValueError, match="do not fit"):
        D.load_directions(path, other)


def test_difference_direction_is_the_weight_difference():
    first, second = small_model(), small_model()
    directions = D.interpolation_directions(first, second)
    assert directions.dim == 1
    for a, b, d in zip(D.landscape_variables(first), D.landscape_variables(second), directions.x):
        np.testing.assert_allclose(d, b.numpy() - a.numpy(), rtol=1e-6, atol=1e-7)


def test_pca_directions_recover_the_plane_of_a_synthetic_trajectory(tmp_path):
    """Checkpoints θ* + a_i u + b_i v with orthonormal u, v (zero on 1-D
    variables): the two principal components span {u, v}, agree with an SVD
    of the centred differences, and the projections give back (a_i, b_i)."""
    model = small_model()
    variables = D.landscape_variables(model)
    final = [v.numpy().copy() for v in variables]
    everything_before = [w.numpy().copy() for w in model.weights]
    rng = np.random.default_rng(0)
    kernel_mask = np.concatenate([np.full(w.size, w.ndim >= 2) for w in final])
    u = rng.standard_normal(kernel_mask.size) * kernel_mask
    v = rng.standard_normal(kernel_mask.size) * kernel_mask
    u /= np.linalg.norm(u)
    v -= (u @ v) * u
    v /= np.linalg.norm(v)
    steps = [(3.0, 0.5), (2.0, -0.4), (1.0, 0.3), (0.5, -0.2), (0.0, 0.0)]
    paths = []
    for i, (a, b) in enumerate(steps):
        flat = np.concatenate([w.ravel() for w in final]) + a * u + b * v
        for variable, part in zip(variables, D._unflatten(flat, final)):
            variable.assign(part)
        path = tmp_path / (f"step{i}.weights.h5" if i % 2 else f"step{i}.keras")
        model.save_weights(path) if i % 2 else model.save(path)
        paths.append(path)
    for w, value in zip(model.weights, everything_before):
        w.assign(value)

    directions = D.pca_directions(model, paths)
    for w, value in zip(model.weights, everything_before):  # the model is left at θ*
        np.testing.assert_array_equal(w.numpy(), value)
    pc1, pc2 = D._flatten(directions.x), D._flatten(directions.y)
    differences = np.stack([a * u + b * v for a, b in steps])
    _, _, vt = np.linalg.svd(differences - differences.mean(0), full_matrices=False)
    assert abs(pc1 @ vt[0]) == pytest.approx(1.0, abs=1e-4)
    assert abs(pc2 @ vt[1]) == pytest.approx(1.0, abs=1e-4)
    basis = np.stack([u, v], 1)
    np.testing.assert_allclose(basis @ (basis.T @ pc1), pc1, atol=1e-4)  # pc1 lies in span{u, v}
    ratio = directions.settings["explained_variance_ratio"]
    assert ratio[0] > ratio[1] and sum(ratio) == pytest.approx(1.0, abs=1e-4)
    reconstructed = directions.trajectory @ np.stack([pc1, pc2])
    np.testing.assert_allclose(reconstructed, differences, atol=1e-4)
    with pytest.raises(ValueError, match="checkpoint"):
        D.pca_directions(model, paths[:1])


def test_biasbn_covers_two_dimensional_normalization_variables():
    """RobMask's gamma/beta bases are 2-D but BN parameters: zero under biasbn."""
    from tfadv.models import build

    model = build("tiny", input_shape=(8, 8, 3), norm="robmask")
    directions = D.random_directions(model, 1, seed=0)
    for path, d in zip(directions.variable_paths, directions.x):
        if "robmask" in path or path.endswith("bias"):
            np.testing.assert_array_equal(d, 0.0)
        else:
            assert np.linalg.norm(d) > 0, path
    copied = D.random_directions(model, 1, seed=0, ignore="none")
    for variable, d in zip(D.landscape_variables(model), copied.x):
        if "basis" in variable.path:
            np.testing.assert_array_equal(d, variable.numpy())
