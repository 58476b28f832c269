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


def flow_loss_np(flow, delta=1e-10):
    """Σ_p Σ_{q ∈ N(p)} sqrt(‖Δu_p − Δu_q‖² + ‖Δv_p − Δv_q‖² + δ), literally; a neighbour beyond
    the border is the pixel itself (the released code's convention)."""
    batch, height, width, _ = flow.shape
    flow = flow.astype(np.float64)
    losses = np.zeros(batch)
    for b in range(batch):
        for i in range(height):
            for j in range(width):
                for di, dj in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                    qi, qj = min(max(i + di, 0), height - 1), min(max(j + dj, 0), width - 1)
                    du = flow[b, i, j, 0] - flow[b, qi, qj, 0]
                    dv = flow[b, i, j, 1] - flow[b, qi, qj, 1]
                    losses[b] += np.sqrt(du**2 + dv**2 + delta)
    return losses


def test_flow_loss_equals_the_formula_evaluated_directly():
    flow = np.random.default_rng(3).normal(0, 0.7, (2, 5, 6, 2)).astype("float32")
    np.testing.assert_allclose(flow_loss(flow), flow_loss_np(flow), rtol=1e-5)
    # Zero flow: every one of the 4·H·W terms is sqrt(δ).
    np.testing.assert_allclose(flow_loss(np.zeros((1, 5, 6, 2), "float32")), [4 * 5 * 6 * 1e-5], rtol=1e-5)


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
    """Three steps of the compiled attack equal three steps of Adam (Kingma & Ba, Algorithm 1,
    ε added after the bias correction) written out here on the same loss."""
    model = linear_model()
    labels = np.argmax(model(images), axis=1)
    tau, learning_rate, kappa, steps = 0.05, 0.02, 0.5, 3
    flow = tf.Variable(np.zeros(images.shape[:3] + (2,), "float32"))
    m = np.zeros(flow.shape, np.float64)
    v = np.zeros(flow.shape, np.float64)
    for t in range(1, steps + 1):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(
                carlini_wagner(model(flow_warp(images, flow)), labels, kappa) + tau * flow_loss(flow)
            )
        g = tape.gradient(loss, flow).numpy().astype(np.float64)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g**2
        update = learning_rate * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
        flow.assign(flow.numpy() - update.astype("float32"))
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
                             flow_bound=bound, flow_unit=unit))
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
    with pytest.raises(ValueError, match="flow_unit=.*'px'"):
        stadv(linear_model(), np.zeros((1, 7, 9, 2), "float32"), [0], flow_bound=1.0, flow_unit="px")
    with pytest.raises(ValueError, match="flow_bound_unit is now flow_unit"):
        stadv(linear_model(), np.zeros((1, 7, 9, 2), "float32"), [0], flow_bound=1.0, flow_bound_unit="grid")


def test_attack_spec_carries_the_flow_unit():
    from tfadv.attacks import AttackSpec

    assert AttackSpec("stadv").flow_unit == "pixels"
    assert "flow_unit" not in AttackSpec("stadv").id  # ids stored before the setting still match
    grid = AttackSpec.create({"name": "stadv", "flow_bound": "0.3/64", "flow_unit": "grid"})
    assert grid.flow_bound == pytest.approx(0.3 / 64)
    assert grid.settings()["flow_unit"] == "grid" and "flow_unit='grid'" in grid.id
    assert grid.label == "stAdv τ=0.05 ‖f‖∞≤0.004687 (grid units)"
    assert AttackSpec("stadv", flow_unit="grid") != AttackSpec("stadv")  # τ and the step change too
    with pytest.raises(ValueError, match="flow_unit=.*'px'"):
        AttackSpec("stadv", flow_bound=0.5, flow_unit="px")
    with pytest.raises(ValueError, match="flow_bound_unit is now flow_unit"):
        AttackSpec.create({"name": "stadv", "flow_bound": 0.5, "flow_bound_unit": "grid"})


# ------------------------------------------------- the released code's loss, in its units


def grid_sample_np(images, grid):
    """PyTorch's grid_sample as the released code ran it (align_corners=True, bilinear), in NumPy.

    ``images`` [B, H, W, C]; ``grid`` [B, H, W, 2] in [-1, 1], channel 0 = x (columns), 1 = y (rows).
    """
    batch, height, width, _ = images.shape
    out = np.zeros(images.shape, np.float64)
    for b in range(batch):
        cols = (grid[b, ..., 0] + 1) / 2 * (width - 1)
        rows = (grid[b, ..., 1] + 1) / 2 * (height - 1)
        c0, r0 = np.floor(cols).astype(int), np.floor(rows).astype(int)
        wc, wr = cols - c0, rows - r0
        c1, r1 = np.minimum(c0 + 1, width - 1), np.minimum(r0 + 1, height - 1)
        img = images[b].astype(np.float64)
        out[b] = ((1 - wr)[..., None] * ((1 - wc)[..., None] * img[r0, c0] + wc[..., None] * img[r0, c1])
                  + wr[..., None] * ((1 - wc)[..., None] * img[r1, c0] + wc[..., None] * img[r1, c1]))
    return out


def released_stadv_loss_np(kernel, images, labels, flow_xy, tau):
    """mister_ed's RegularizedLoss({'adv': CWLossF6, 'st': PerturbationNormLoss}, {1, τ}) for a
    FullSpatial perturbation with use_stadv, negated back into what its Adam minimises:
    Σ_b f6_b + τ · stAdv_norm. ``flow_xy`` is the grid minus the identity grid (grid units, x then y)."""
    batch, height, width, _ = images.shape
    ys, xs = np.meshgrid(np.linspace(-1, 1, height), np.linspace(-1, 1, width), indexing="ij")
    identity = np.stack([xs, ys], axis=-1)[None]
    grid = np.clip(identity + flow_xy, -1, 1)  # FullSpatial.clip_params
    logits = grid_sample_np(images, grid).reshape(batch, -1) @ kernel
    true = logits[np.arange(batch), labels]
    others = np.where(np.arange(logits.shape[1])[None] == labels[:, None], -np.inf, logits)
    f6 = np.maximum(true - others.max(axis=1), 0.0)  # kappa = 0
    # stAdv_norm: for each of the 4 shifts (edges replicated), sqrt(Σ_channels Δ² + 1e-10), summed.
    norm = 0.0
    padded = np.pad(flow_xy, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        neighbour = padded[:, 1 + dr:1 + dr + height, 1 + dc:1 + dc + width]
        norm += np.sqrt(((flow_xy - neighbour) ** 2).sum(axis=-1) + 1e-10).sum()
    return f6.sum() + tau * norm


def test_the_objective_in_grid_units_is_the_released_loss_with_its_gradient():
    from tfadv.attacks.stadv import stadv_objective

    height, width, channels = 6, 6, 2  # square, as stAdv_norm requires
    rng = np.random.default_rng(5)
    images = rng.uniform(0, 1, (2, height, width, channels))
    model = linear_model((height, width, channels))
    kernel = model.layers[-1].get_weights()[0].astype(np.float64)
    labels = np.argmax(model(images.astype("float32")), axis=1)
    flow_xy = rng.uniform(-0.04, 0.04, (2, height, width, 2))  # grid units, interior of the image
    tau = 0.05

    flow_tf = tf.Variable(flow_xy[..., ::-1].astype("float32"))  # tfadv: channel 0 rows (y), 1 columns (x)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(stadv_objective(model, images.astype("float32"), labels, flow_tf, tau=tau,
                                             flow_unit="grid"))
    grad_tf = tape.gradient(loss, flow_tf).numpy()[..., ::-1]

    expected = released_stadv_loss_np(kernel, images, labels, flow_xy, tau)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    # Central finite differences of the NumPy loss (float64) at a sample of flow components.
    h = 1e-6
    for index in [tuple(rng.integers(0, s) for s in flow_xy.shape) for _ in range(25)]:
        step = np.zeros_like(flow_xy)
        step[index] = h
        numeric = (released_stadv_loss_np(kernel, images, labels, flow_xy + step, tau)
                   - released_stadv_loss_np(kernel, images, labels, flow_xy - step, tau)) / (2 * h)
        assert grad_tf[index] == pytest.approx(numeric, rel=2e-3, abs=2e-3)


def test_released_settings_are_written_as_they_are():
    """One Adam step in grid units moves every flow component by the learning rate in grid units
    (Adam's first step is lr · g/|g|), against the released loss's gradient sign."""
    height, width, channels = 6, 6, 2
    rng = np.random.default_rng(6)
    images = rng.uniform(0, 1, (2, height, width, channels)).astype("float32")
    model = linear_model((height, width, channels))
    kernel = model.layers[-1].get_weights()[0].astype(np.float64)
    labels = np.argmax(model(images), axis=1)
    learning_rate, tau = 0.001, 0.05
    x_adv = stadv(model, images, labels, tau=tau, steps=1, learning_rate=learning_rate, flow_bound=0.05,
                  flow_unit="grid")
    # The released gradient at zero flow. Zero flow samples pixel centres, where bilinear
    # interpolation has a kink; grid_sample (as flow_warp) differentiates from above (floor), so
    # forward differences. Components whose gradient vanishes (border pixels pushed outwards, which
    # clipping the grid stops) keep zero flow; the flow loss adds at most ~1e-5 to them here.
    zero = np.zeros((2, height, width, 2))
    grad = np.zeros_like(zero)
    h = 1e-9
    base = released_stadv_loss_np(kernel, images, labels, zero, tau)
    for index in np.ndindex(zero.shape):
        step = np.zeros_like(zero)
        step[index] = h
        grad[index] = (released_stadv_loss_np(kernel, images, labels, step, tau) - base) / h
    grad[np.abs(grad) < 1e-3] = 0.0
    flow_xy = -learning_rate * np.sign(grad)
    ys, xs = np.meshgrid(np.linspace(-1, 1, height), np.linspace(-1, 1, width), indexing="ij")
    expected = grid_sample_np(images, np.clip(np.stack([xs, ys], axis=-1)[None] + flow_xy, -1, 1))
    np.testing.assert_allclose(x_adv, expected, atol=1e-5)
