"""stAdv: the warp, the flow loss, its gradients and the in-graph Adam loop."""
import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from tfadv.attacks import flow_loss, flow_warp, stadv
from tfadv.attacks.losses import carlini_wagner


@pytest.fixture
def images():
    return np.random.default_rng(0).uniform(0, 1, (3, 7, 9, 2)).astype("float32")


def linear_model(input_shape=(7, 9, 2)):
    model = keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(), keras.layers.Dense(10)])
    rng = np.random.default_rng(1)
    kernel = rng.normal(0, 1, (int(np.prod(input_shape)), 10)).astype("float32")
    model.layers[-1].set_weights([kernel, np.zeros(10, "float32")])
    return model


def test_zero_flow_reproduces_the_input_exactly(images):
    np.testing.assert_array_equal(flow_warp(images, np.zeros(images.shape[:3] + (2,), "float32")), images)


def test_integer_flows_shift_pixels_exactly(images):
    batch, height, width, _ = images.shape
    flow = np.random.default_rng(1).integers(-3, 4, (batch, height, width, 2)).astype("float32")
    b, u, v = np.meshgrid(np.arange(batch), np.arange(height), np.arange(width), indexing="ij")
    # Channel 0 moves along rows, channel 1 along columns; positions beyond the border clamp to it.
    rows = np.clip(u + flow[..., 0].astype(int), 0, height - 1)
    cols = np.clip(v + flow[..., 1].astype(int), 0, width - 1)
    expected = images[b, rows, cols]
    np.testing.assert_array_equal(flow_warp(images, flow), expected)


def test_uniform_row_shift_reads_the_next_row(images):
    flow = np.zeros(images.shape[:3] + (2,), "float32")
    flow[..., 0] = 1.0
    warped = np.asarray(flow_warp(images, flow))
    np.testing.assert_array_equal(warped[:, :-1], images[:, 1:])
    np.testing.assert_array_equal(warped[:, -1], images[:, -1])


def test_fractional_flows_match_scipy_bilinear_interpolation(images):
    batch, height, width, channels = images.shape
    flow = np.random.default_rng(2).uniform(-2.5, 2.5, (batch, height, width, 2)).astype("float32")
    u, v = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    expected = np.empty_like(images)
    for b in range(batch):
        rows = np.clip(u + flow[b, ..., 0], 0, height - 1)
        cols = np.clip(v + flow[b, ..., 1], 0, width - 1)
        for c in range(channels):
            channel = images[b, ..., c].astype(np.float64)
            expected[b, ..., c] = ndimage.map_coordinates(channel, [rows, cols], order=1)
    np.testing.assert_allclose(flow_warp(images, flow), expected, atol=1e-5)


def flow_loss_np(flow, delta=1e-8):
    """Σ_p Σ_{q ∈ N(p)} sqrt(‖Δu_p − Δu_q‖² + ‖Δv_p − Δv_q‖² + δ), literally."""
    batch, height, width, _ = flow.shape
    flow = flow.astype(np.float64)
    losses = np.zeros(batch)
    for b in range(batch):
        for i in range(height):
            for j in range(width):
                for di, dj in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                    qi, qj = i + di, j + dj
                    if 0 <= qi < height and 0 <= qj < width:
                        du = flow[b, i, j, 0] - flow[b, qi, qj, 0]
                        dv = flow[b, i, j, 1] - flow[b, qi, qj, 1]
                        losses[b] += np.sqrt(du**2 + dv**2 + delta)
    return losses


def test_flow_loss_equals_the_formula_evaluated_directly():
    flow = np.random.default_rng(3).normal(0, 0.7, (2, 5, 6, 2)).astype("float32")
    np.testing.assert_allclose(flow_loss(flow), flow_loss_np(flow), rtol=1e-5)
    # Zero flow: 2·(number of adjacent pairs)·sqrt(δ).
    pairs = 5 * 5 + 4 * 6
    np.testing.assert_allclose(flow_loss(np.zeros((1, 5, 6, 2), "float32")), [2 * pairs * 1e-4], rtol=1e-5)


def test_gradients_with_respect_to_the_flow_are_nonzero(images):
    model = linear_model()
    labels = np.argmax(model(images), axis=1)  # correctly classified: the CW margin is above its floor
    flow_shape = images.shape[:3] + (2,)
    for flow_value in (np.zeros(flow_shape, "float32"), np.full(flow_shape, 0.3, "float32")):
        flow = tf.Variable(flow_value)
        with tf.GradientTape() as tape:
            loss = carlini_wagner(model(flow_warp(images, flow)), labels) + 0.05 * flow_loss(flow)
        grad = tape.gradient(loss, flow).numpy()
        assert np.all(np.isfinite(grad))
        assert np.all(np.abs(grad).reshape(3, -1).max(axis=1) > 1e-3)  # every example has a gradient
    # The flow loss alone has a finite zero gradient at zero flow and pulls a bump back.
    bump = np.zeros((1, 5, 5, 2), "float32")
    bump[0, 2, 2] = 1.0
    flow = tf.Variable(bump)
    with tf.GradientTape() as tape:
        loss = flow_loss(flow)
    grad = tape.gradient(loss, flow).numpy()
    assert grad[0, 2, 2, 0] > 0 and grad[0, 2, 2, 1] > 0


def test_stadv_runs_adam_on_the_stadv_objective(images):
    """Three steps of the compiled attack equal three steps of Keras' Adam on the same loss."""
    model = linear_model()
    labels = np.argmax(model(images), axis=1)
    tau, learning_rate, kappa, steps = 0.05, 0.02, 0.5, 3
    flow = keras.Variable(np.zeros(images.shape[:3] + (2,), "float32"))
    # Keras adds ε to sqrt(v) before the bias correction, tfadv after it; with
    # gradients near 1e-4 that difference shows, so make Keras' ε negligible.
    optimizer = keras.optimizers.Adam(learning_rate, epsilon=1e-12)
    for _ in range(steps):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(
                carlini_wagner(model(flow_warp(images, flow)), labels, kappa) + tau * flow_loss(flow)
            )
        optimizer.apply([tape.gradient(loss, flow)], [flow])
    expected = np.clip(flow_warp(images, flow), 0, 1)

    x_adv = stadv(model, images, labels, tau=tau, steps=steps, learning_rate=learning_rate, kappa=kappa)
    np.testing.assert_allclose(x_adv, expected, atol=5e-5)
    assert np.abs(np.asarray(x_adv) - images).max() > 0.02


def test_a_tiny_flow_bound_keeps_the_image(images):
    model = linear_model()
    labels = np.argmax(model(images), axis=1)
    free = stadv(model, images, labels, steps=10, learning_rate=0.1)
    bounded = stadv(model, images, labels, steps=10, learning_rate=0.1, flow_bound=1e-4)
    assert np.abs(np.asarray(free) - images).max() > 0.1
    # A bilinear sample within 1e-4 pixels moves a value by at most 2e-4 (neighbours differ by < 1).
    assert np.abs(np.asarray(bounded) - images).max() <= 2e-4


# ---------------------------------------------------------------- flow bound units


def grid_unit_in_pixels_np(size):
    """One unit of grid_sample's [-1, 1] coordinates in pixels, align_corners=True:
    -1 and +1 are the centres of pixels 0 and size - 1, which lie size - 1 pixels apart."""
    return (size - 1) / 2.0


def ramp_images(height, width):
    """Channel 0 rises down the rows, channel 1 along the columns, both linearly from 0 to 1:
    a bilinear warp of such an image reads the flow back exactly (away from the borders)."""
    rows = np.repeat(np.linspace(0, 1, height)[:, None], width, axis=1)
    cols = np.repeat(np.linspace(0, 1, width)[None, :], height, axis=0)
    return np.stack([rows, cols], axis=-1)[None].astype("float32").repeat(2, axis=0)


@pytest.mark.parametrize("unit, bound", [("pixels", 0.4), ("grid", 0.1)])
def test_the_flow_never_exceeds_its_bound_in_the_stated_unit(unit, bound):
    height, width = 8, 16  # not square: a grid unit is 3.5 px on rows and 7.5 px on columns
    x = ramp_images(height, width)
    model = linear_model((height, width, 2))
    labels = np.argmax(model(x), axis=1)
    # κ huge and τ 0: the adversarial loss never stops pushing, so Adam's 1-pixel steps drive
    # every flow component against the bound.
    x_adv = np.asarray(stadv(model, x, labels, tau=0.0, steps=5, learning_rate=1.0, kappa=1e6,
                             flow_bound=bound, flow_bound_unit=unit))
    if unit == "pixels":
        row_bound, col_bound = bound, bound
    else:
        row_bound, col_bound = bound * grid_unit_in_pixels_np(height), bound * grid_unit_in_pixels_np(width)
    assert row_bound < 1 and col_bound < 1  # so interior pixels never sample past the border
    # Read the flow back: the ramps rise by 1 / (size - 1) per pixel.
    flow_rows = (x_adv[:, 1:-1, 1:-1, 0] - x[:, 1:-1, 1:-1, 0]) * (height - 1)
    flow_cols = (x_adv[:, 1:-1, 1:-1, 1] - x[:, 1:-1, 1:-1, 1]) * (width - 1)
    assert np.abs(flow_rows).max() <= row_bound + 1e-4
    assert np.abs(flow_cols).max() <= col_bound + 1e-4
    # ... and the bound binds: the attack pushed some components all the way to it.
    assert np.abs(flow_rows).max() >= 0.99 * row_bound
    assert np.abs(flow_cols).max() >= 0.99 * col_bound


def test_units_convert_as_grid_sample_with_aligned_corners():
    from tfadv.attacks.stadv import flow_bound_in_pixels, grid_to_pixels, pixels_to_grid

    for size in (8, 32, 33):
        assert grid_to_pixels(0.05, size) == pytest.approx(0.05 * grid_unit_in_pixels_np(size))
        assert pixels_to_grid(grid_to_pixels(0.3, size), size) == pytest.approx(0.3)
        assert grid_to_pixels(2.0, size) == pytest.approx(size - 1)  # the whole grid spans -1..1
    # The released code's 0.05 on CIFAR's 32 px: 0.775 px.
    assert grid_to_pixels(0.05, 32) == pytest.approx(0.775)
    np.testing.assert_allclose(flow_bound_in_pixels(0.1, "grid", 8.0, 16.0), [0.35, 0.75], rtol=1e-6)
    np.testing.assert_allclose(flow_bound_in_pixels(0.1, "pixels", 8.0, 16.0), [0.1, 0.1], rtol=1e-6)
    with pytest.raises(ValueError, match="flow_bound_unit=.*'px'"):
        stadv(linear_model(), np.zeros((1, 7, 9, 2), "float32"), [0], flow_bound=1.0, flow_bound_unit="px")


def test_attack_spec_carries_the_unit_only_with_a_bound():
    from tfadv.attacks import AttackSpec

    assert AttackSpec("stadv").flow_bound_unit is None
    assert AttackSpec("stadv", flow_bound_unit="grid") == AttackSpec("stadv")  # no bound, nothing to scale
    assert AttackSpec("stadv", flow_bound=0.5).flow_bound_unit == "pixels"
    grid = AttackSpec.create({"name": "stadv", "flow_bound": "0.3/64", "flow_bound_unit": "grid"})
    assert grid.flow_bound == pytest.approx(0.3 / 64)
    assert grid.settings()["flow_bound_unit"] == "grid" and "flow_bound_unit='grid'" in grid.id
    assert grid.label == "stAdv τ=0.05 ‖f‖∞≤0.004687 grid"
    with pytest.raises(ValueError, match="flow_bound_unit=.*'px'"):
        AttackSpec("stadv", flow_bound=0.5, flow_bound_unit="px")
