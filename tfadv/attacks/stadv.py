"""stAdv: spatially transformed adversarial examples (Xiao et al., 2018).

Instead of changing pixel values, stAdv moves pixels. A flow field ``f``
``[B, H, W, 2]`` gives every output pixel ``(u, v)`` (``u`` = row, ``v`` =
column) a displacement in pixels: channel 0 is ``Δu`` (down the rows),
channel 1 is ``Δv`` (along the columns). The adversarial pixel is read from
the input at ``(u + Δu, v + Δv)`` by bilinear interpolation, the sampling
position clamped to the image (edge pixels extend outwards).

**Flow units.** The attack optimizes the flow in one of :data:`FLOW_UNITS`,
``flow_unit``, and every setting that acts on the flow is in that unit: the
L∞ bound ``flow_bound``, the flow loss that τ weights (computed on the flow
in that unit) and Adam's ``learning_rate`` (Adam moves each component by
about that much per step). So settings written for one unit are written as
they are:

- ``"pixels"``: the flow is in pixels; ``|Δu|, |Δv| <= flow_bound``.
- ``"grid"``: the normalized coordinates of PyTorch's ``grid_sample``, in
  which the authors' released code of the loss-landscape paper (mister_ed's
  ``FullSpatial``: its parameters *are* the sampling grid) bounds the flow,
  computes the stAdv norm τ weights and takes Adam's steps
  (``scripts/advtrain_resnet32_stadv.py``: ``FLOW_LINF_BOUND = 0.05``,
  ``'st': 0.05``, ``lr 0.001``). That code predates
  PyTorch 1.3's ``align_corners`` argument and so samples as
  ``align_corners=True``: −1 and +1 are the *centres* of the first and last
  pixels, so one grid unit is ``(size − 1) / 2`` pixels along an axis of
  ``size`` pixels (15.5 px on CIFAR's 32; ``align_corners=False`` would make
  it ``size / 2``). A grid flow ``f`` moves ``f·(H − 1)/2`` pixels on rows
  and ``f·(W − 1)/2`` on columns (:func:`grid_to_pixels`). Since the flow
  loss grows linearly with the flow, the same τ is 2/(size − 1) times as
  strong in grid units as in pixels (about 15× weaker on CIFAR's 32 px).

The objective (:func:`stadv_objective`) equals the released code's per
example: ``CWLossF6`` plus τ times ``FullSpatial.stAdv_norm`` (mister_ed
``loss_functions.py``, ``spatial_transformers.py``), with its δ = 1e-10
and its border convention (see :func:`flow_loss`).
"""

import tensorflow as tf

from tfadv import checks
from tfadv.attacks import _compile
from tfadv.attacks.losses import carlini_wagner

DEFAULT_STEPS = 100
"""Adam steps of :func:`stadv`. The paper runs L-BFGS to convergence; 100
Adam steps of ``DEFAULT_LEARNING_RATE`` let a flow travel up to about one
pixel, which is more than the sub-pixel flows stAdv reports."""

DEFAULT_LEARNING_RATE = 0.01
"""Adam learning rate of :func:`stadv`, in pixels: Adam's steps are about this
long per flow component, whatever the scale of the loss."""

FLOW_LOSS_DELTA = 1e-10
"""δ under the square root of the flow loss: keeps its gradient finite at
zero flow, where every neighbour difference vanishes. 1e-10 as the released
code (mister_ed ``spatial_transformers.py``, ``FullSpatial.stAdv_norm``)."""

FLOW_UNITS = ("pixels", "grid")
"""Units of the flow (its bound, the flow loss τ weights, Adam's step): pixels, or ``grid_sample``'s normalized coordinates."""

FLOW_BOUND_UNITS = FLOW_UNITS
"""Former name of :data:`FLOW_UNITS` (the unit then governed the bound only)."""

_ADAM_BETA_1 = 0.9
_ADAM_BETA_2 = 0.999
_ADAM_EPSILON = 1e-8


def grid_to_pixels(value, size):
    """A length in ``grid_sample``'s normalized coordinates, in pixels, along an axis of ``size`` pixels.

    ``align_corners=True`` (the released code's PyTorch): ``value · (size − 1) / 2``.
    """
    return value * (size - 1) / 2


def pixels_to_grid(value, size):
    """The inverse of :func:`grid_to_pixels`: ``value · 2 / (size − 1)``."""
    return value * 2 / (size - 1)


def check_flow_unit(flow_unit, name="flow_unit"):
    """``ValueError`` unless ``flow_unit`` is one of :data:`FLOW_UNITS`."""
    checks.check_choice(name, flow_unit, FLOW_UNITS)


check_flow_bound_unit = check_flow_unit
"""Former name of :func:`check_flow_unit`."""


def pixels_per_unit(flow_unit, height, width):
    """``[rows, columns]``: how many pixels one unit of ``flow_unit`` moves along each axis.

    Works on Python numbers and on tensors (``height``/``width`` may be
    dynamic sizes inside a graph).
    """
    check_flow_unit(flow_unit)
    if flow_unit == "pixels":
        return tf.ones([2])
    return tf.cast(tf.stack([grid_to_pixels(1.0, height), grid_to_pixels(1.0, width)]), tf.float32)


def flow_bound_in_pixels(flow_bound, flow_unit, height, width):
    """The per-axis bound ``[rows, columns]`` in pixels of ``flow_bound`` given in ``flow_unit``."""
    return tf.cast(flow_bound, tf.float32) * pixels_per_unit(flow_unit, height, width)


def flow_warp(images, flow):
    """Bilinearly resample ``images`` at the positions displaced by ``flow``.

    ``out[b, u, v] = bilinear(images[b], clamp(u + Δu, 0, H−1), clamp(v + Δv, 0, W−1))``
    with ``Δu = flow[b, u, v, 0]`` (rows) and ``Δv = flow[b, u, v, 1]``
    (columns). Zero flow is the identity; integer flows copy pixels exactly.
    Differentiable in ``flow`` (through the interpolation weights).

    Args:
        images: float ``[B, H, W, C]``.
        flow: float ``[B, H, W, 2]``, displacements in pixels.

    Returns:
        float ``[B, H, W, C]``.
    """
    images = tf.convert_to_tensor(images)
    flow = tf.cast(flow, images.dtype)
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    rows = tf.cast(tf.range(height), images.dtype)[None, :, None]
    cols = tf.cast(tf.range(width), images.dtype)[None, None, :]
    sample_rows = tf.clip_by_value(rows + flow[..., 0], 0.0, tf.cast(height - 1, images.dtype))
    sample_cols = tf.clip_by_value(cols + flow[..., 1], 0.0, tf.cast(width - 1, images.dtype))
    # floor() has zero gradient: the flow gradient flows through the weights.
    row0 = tf.floor(sample_rows)
    col0 = tf.floor(sample_cols)
    row_weight = (sample_rows - row0)[..., None]
    col_weight = (sample_cols - col0)[..., None]
    row0 = tf.cast(row0, tf.int32)
    col0 = tf.cast(col0, tf.int32)
    row1 = tf.minimum(row0 + 1, height - 1)
    col1 = tf.minimum(col0 + 1, width - 1)

    # Gather from the flattened batch: index b·H·W + r·W + c.
    pixels = tf.reshape(images, [-1, shape[3]])
    offsets = (tf.range(batch) * height * width)[:, None, None]

    def at(r, c):
        return tf.gather(pixels, offsets + r * width + c)

    top = at(row0, col0) + col_weight * (at(row0, col1) - at(row0, col0))
    bottom = at(row1, col0) + col_weight * (at(row1, col1) - at(row1, col0))
    return top + row_weight * (bottom - top)


def flow_loss(flow, delta=FLOW_LOSS_DELTA):
    """The smoothness loss of a flow field, per example (Xiao et al., eq. 4).

    ``L_flow(f) = Σ_p Σ_{q∈N(p)} sqrt(‖Δu_p − Δu_q‖² + ‖Δv_p − Δv_q‖² + δ)``

    with ``N(p)`` the 4 neighbours of ``p`` (up, down, left, right). As in
    the released code (mister_ed's ``FullSpatial.stAdv_norm``), a neighbour
    beyond the border is the pixel itself: each of the ``2·(H + W)`` such
    terms adds ``sqrt(δ)``, a constant that leaves the gradient that of
    eq. 4 over the neighbours inside the image. Inside, the double sum
    visits every unordered pair of adjacent pixels twice, once from each
    end, so this is twice the sum over horizontal and vertical adjacent
    pairs plus the border constant. The flow is taken in whatever unit it
    is given (:data:`FLOW_UNITS`); the loss scales with it.

    Args:
        flow: float ``[B, H, W, 2]``.
        delta: δ, small and positive.

    Returns:
        float32 ``[B]``.
    """
    flow = tf.cast(flow, tf.float32)

    def pair_distances(difference):
        return tf.reduce_sum(tf.sqrt(tf.reduce_sum(tf.square(difference), axis=-1) + delta), axis=[1, 2])

    vertical = pair_distances(flow[:, 1:] - flow[:, :-1])
    horizontal = pair_distances(flow[:, :, 1:] - flow[:, :, :-1])
    size = tf.cast(tf.shape(flow)[1] + tf.shape(flow)[2], tf.float32)
    return 2.0 * (vertical + horizontal) + 2.0 * size * tf.sqrt(tf.cast(delta, tf.float32))


def stadv_objective(model_fn, x, y, flow, tau=0.05, kappa=0.0, flow_unit="pixels", targeted=False):
    """What :func:`stadv` minimises, per example: ``L_adv(x_f) + τ · L_flow(f)``.

    ``f`` is ``flow`` in ``flow_unit`` (``[B, H, W, 2]``, channel 0 rows,
    channel 1 columns); ``x_f = flow_warp(x, f · pixels_per_unit)``;
    ``L_adv`` is the Carlini–Wagner margin (``f_6``) with confidence κ and
    ``L_flow`` :func:`flow_loss` of ``f`` in its own unit. In ``"grid"``
    units this is the released code's loss per example (``CWLossF6`` +
    τ·``stAdv_norm``, whose batch sum Adam minimises there).
    """
    images = tf.convert_to_tensor(x, tf.float32)
    flow = tf.convert_to_tensor(flow, tf.float32)
    shape = tf.shape(images)
    scale = pixels_per_unit(flow_unit, tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32))
    logits = model_fn(flow_warp(images, flow * scale))
    return carlini_wagner(logits, tf.cast(y, tf.int64), kappa, targeted) + tau * flow_loss(flow)


def stadv(
    model_fn,
    x,
    y,
    tau=0.05,
    steps=DEFAULT_STEPS,
    learning_rate=DEFAULT_LEARNING_RATE,
    kappa=0.0,
    flow_bound=None,
    targeted=False,
    flow_unit="pixels",
    *,
    training=False,
    jit_compile=None,
    flow_bound_unit=None,
):
    """Spatially transformed adversarial examples: a smooth flow that fools the model.

    Starting from zero flow, Adam minimises, per example,

        L(f) = L_adv(x_f) + τ · L_flow(f),   x_f = flow_warp(x, f)

    with ``L_adv`` the Carlini–Wagner margin with confidence κ
    (:func:`tfadv.attacks.losses.carlini_wagner`: ``max(z_y − max_{i≠y} z_i,
    −κ)``, or for targets ``max(max_{i≠t} z_i − z_t, −κ)``) and ``L_flow``
    the smoothness loss (:func:`flow_loss`); :func:`stadv_objective`. The
    flow ``f`` lives in ``flow_unit``: Adam steps it by about
    ``learning_rate`` of that unit, ``L_flow`` is measured in it, and with
    ``flow_bound`` every component is clipped to ``[−flow_bound,
    flow_bound]`` of it after each step. Adam's moments are tensors of the
    compiled loop, not a Keras optimizer.
    The result is the warp by the last flow, clipped to [0, 1] against
    rounding (a bilinear mix of pixels in [0, 1] stays in [0, 1]).

    Args:
        model_fn: a Keras model, a ``BoundModel`` (``tfadv.models.bind``) or any callable
            mapping images in [0, 1] to logits.
        x: images ``[B, H, W, C]`` in [0, 1].
        y: int labels ``[B]``: true labels, or the targets if ``targeted``.
        tau: τ >= 0, the weight of the flow loss (measured in ``flow_unit``).
        steps: Adam steps, >= 1 (a tensor is fine).
        learning_rate: Adam's learning rate, in ``flow_unit``, > 0.
        kappa: κ >= 0, the logit margin beyond which an example stops being
            pushed.
        flow_bound: ``None``, or the largest displacement of any flow
            component (L∞ bound on f), > 0, in ``flow_unit``.
        targeted: move towards the class ``y``.
        flow_unit: ``"pixels"`` (default) or ``"grid"``, the ``[-1, 1]``
            coordinates of ``grid_sample`` with ``align_corners=True``, one
            unit = ``(size − 1) / 2`` pixels (module docstring): the unit of
            ``flow_bound``, ``tau``'s flow loss and ``learning_rate``. The
            released code of the loss-landscape paper trains with
            ``flow_unit="grid"``, ``flow_bound=0.05`` (0.775 px on 32 px),
            ``tau=0.05``, ``learning_rate=0.001``, 100 steps.
        training: run the model in training mode while crafting.
        flow_bound_unit: refused with a ``ValueError``: it was the bound's
            unit alone; ``flow_unit`` now sets the unit of all three.
        jit_compile: compile with XLA: ``True``, ``False``, or ``None``
            (default) for XLA on GPU/TPU only, where it pays (on CPU it
            makes these attacks slower; see ``_compile.use_xla``). If XLA
            cannot compile the model, the attack falls back to graph mode.

    Returns:
        The adversarial images, same shape and dtype as ``x``.

    Reference:
        Xiao, Zhu, Li, He, Liu & Song, "Spatially Transformed Adversarial
        Examples", ICLR 2018 (arXiv:1801.02612).
    """
    checks.check_images(x)
    checks.check_labels(x, y)
    checks.check_non_negative("tau", tau)
    checks.check_count("steps", steps)
    checks.check_positive("learning_rate", learning_rate)
    checks.check_non_negative("kappa", kappa)
    if flow_bound is not None:
        checks.check_positive("flow_bound", flow_bound)
    if flow_bound_unit is not None:
        raise ValueError("flow_bound_unit is now flow_unit, the unit of the flow bound, of the flow loss tau "
                         "weights and of Adam's learning_rate (give those in it too). "
                         f"Received: flow_bound_unit={flow_bound_unit!r}")
    check_flow_unit(flow_unit)
    images = _compile.as_float(x)
    tensors = (
        images,
        tf.cast(y, tf.int64),
        _compile.as_float(tau),
        tf.cast(steps, tf.int32),
        _compile.as_float(learning_rate),
        _compile.as_float(kappa),
        _compile.as_float(0.0 if flow_bound is None else flow_bound),
    )
    static = {"targeted": bool(targeted), "bounded": flow_bound is not None, "flow_unit": flow_unit}
    x_adv = _compile.run_compiled("stadv", _stadv_graph, model_fn, tensors, static, training, jit_compile)
    return _compile.restore_dtype(x_adv, x)


def _stadv_graph(model_call, x, y, tau, steps, learning_rate, kappa, flow_bound, *, targeted, bounded,
                 flow_unit):
    def adversarial_loss(logits):
        return carlini_wagner(logits, y, kappa, targeted)

    size = tf.cast(tf.shape(x)[1:3], tf.float32)
    scale = pixels_per_unit(flow_unit, size[0], size[1])  # [rows, cols] pixels per unit of the flow

    def adam_step(step, flow, first_moment, second_moment):
        with tf.GradientTape() as tape:
            tape.watch(flow)
            x_flow = flow_warp(x, flow * scale)
            smoothness = flow_loss(flow)
        # The model's part goes through the mixed-precision-safe input gradient.
        _, image_grad = _compile.loss_and_input_gradient(model_call, x_flow, adversarial_loss)
        grad = tape.gradient(
            [x_flow, smoothness], flow, output_gradients=[image_grad, tau * tf.ones_like(smoothness)]
        )
        first_moment = _ADAM_BETA_1 * first_moment + (1.0 - _ADAM_BETA_1) * grad
        second_moment = _ADAM_BETA_2 * second_moment + (1.0 - _ADAM_BETA_2) * tf.square(grad)
        t = tf.cast(step, tf.float32)
        unbiased_first = first_moment / (1.0 - _ADAM_BETA_1**t)
        unbiased_second = second_moment / (1.0 - _ADAM_BETA_2**t)
        flow = flow - learning_rate * unbiased_first / (tf.sqrt(unbiased_second) + _ADAM_EPSILON)
        if bounded:
            flow = tf.clip_by_value(flow, -flow_bound, flow_bound)
        return step + 1, flow, first_moment, second_moment

    zeros = tf.zeros(tf.concat([tf.shape(x)[:3], [2]], axis=0))
    _, flow, _, _ = tf.while_loop(
        lambda step, *_: step <= steps, adam_step, (tf.constant(1), zeros, zeros, zeros)
    )
    return tf.clip_by_value(flow_warp(x, flow * scale), 0.0, 1.0)
