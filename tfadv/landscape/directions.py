"""Directions in weight space along which a loss landscape is drawn.

A landscape plots f(α, β) = L(θ* + αδ + βη) around trained weights θ*. With
raw Gaussian directions the picture depends on the scale of each layer, which
batch normalization and ReLU make arbitrary (a filter scaled by 10 computes
the same function). *Filter normalization* removes that freedom: every filter
of a random direction is rescaled to the norm of the same filter of θ*,

    δ_f  ←  δ_f · ‖θ*_f‖ / ‖δ_f‖,

so a step of α = 1 moves each filter by as much as its own size. In Keras a
filter is one slice along the **last axis** of a kernel (Conv*D: ``[kh, kw,
in, out]``, Dense: ``[in, out]``), except for depthwise kernels ``[kh, kw,
in, multiplier]`` whose output channels are the last *two* axes. (Transposed
convolutions ``[kh, kw, out, in]`` are normalized per input channel, which is
what the reference PyTorch tool does for them too.) Biases and the
parameters of normalization layers are not filters: by default
(``ignore="biasbn"``) they do not move at all.

A direction here is a list of NumPy arrays, one per variable of
:func:`landscape_variables`, held in a :class:`Directions` pair (x and,
for 2-D plots, y) together with the settings that made it.

Reference:
    Li, Xu, Taylor, Studer, Goldstein. "Visualizing the Loss Landscape of
    Neural Nets", NeurIPS 2018 (https://arxiv.org/abs/1712.09913); the
    reference tool is github.com/tomgoldstein/loss-landscape.
"""
import dataclasses
import json

import h5py
import keras
import numpy as np

from tfadv._files import atomic_path
from tfadv.checks import check_choice
from tfadv.fingerprints import fingerprint

NORMS = ("filter", "layer", "none")
IGNORES = ("biasbn", "none")
MODES = ("weights", "states")

_DEPTHWISE_KERNELS = {
    keras.layers.DepthwiseConv1D: "kernel",
    keras.layers.DepthwiseConv2D: "kernel",
    keras.layers.SeparableConv1D: "depthwise_kernel",
    keras.layers.SeparableConv2D: "depthwise_kernel",
}


def landscape_variables(model, mode="weights"):
    """The variables a landscape moves, in a fixed order.

    Args:
        model: a Keras model.
        mode: ``"weights"`` moves the trainable variables only; ``"states"``
            also moves the non-trainable float weights (BN moving mean and
            variance), like the reference tool's ``state_dict`` directions.
            Random-seed states are never moved.

    Returns:
        A list of Keras variables.
    """
    check_choice("mode", mode, MODES)
    variables = model.trainable_weights if mode == "weights" else model.weights
    return [v for v in variables if np.dtype(v.dtype).kind == "f"]


def _normalization_layer_types():
    from tfadv import layers

    return (keras.layers.BatchNormalization, keras.layers.LayerNormalization,
            keras.layers.GroupNormalization, layers.DualBatchNormalization,
            layers.ConditionedBatchNormalization)


def _variable_roles(model):
    """Facts about variables that their shapes alone do not tell.

    Returns:
        ``(output_axes, bias_or_norm)``: ``{id(variable): trailing axes that
        index the filters}`` for depthwise kernels (default 1), and the ids
        of variables owned by normalization layers (e.g. RobMask's 2-D
        ``gamma_basis``), which ``ignore="biasbn"`` treats like biases.
    """
    output_axes, bias_or_norm = {}, set()
    norm_types = _normalization_layer_types()
    for layer in _layers_within(model):
        for layer_type, attribute in _DEPTHWISE_KERNELS.items():
            if isinstance(layer, layer_type) and getattr(layer, attribute, None) is not None:
                output_axes[id(getattr(layer, attribute))] = 2
        if isinstance(layer, norm_types):
            bias_or_norm.update(id(v) for v in layer.weights)
    return output_axes, bias_or_norm


def _layers_within(layer):
    """``layer`` and every layer of the models nested in it (``model.layers``, recursively)."""
    yield layer
    for inner in getattr(layer, "layers", None) or []:
        yield from _layers_within(inner)


def _is_bias_or_norm(variable, bias_or_norm):
    return len(variable.shape) <= 1 or id(variable) in bias_or_norm


def normalize_direction(direction, weights, norm="filter", output_axes=1):
    """Rescale one variable's direction to the scale of its weights.

    Args:
        direction: array shaped like ``weights`` (not modified).
        weights: the trained values θ* of the variable.
        norm: ``"filter"`` rescales each filter (a slice over the trailing
            ``output_axes`` axes) to the norm of the same filter of the
            weights; ``"layer"`` rescales the whole variable; ``"none"``
            leaves it unchanged.
        output_axes: how many trailing axes index the filters.

    Returns:
        The rescaled direction, float32.
    """
    check_choice("norm", norm, NORMS)
    direction = np.asarray(direction, np.float64)
    weights = np.asarray(weights, np.float64)
    if norm == "none":
        scaled = direction
    elif norm == "layer":
        scaled = direction * (np.linalg.norm(weights) / (np.linalg.norm(direction) + 1e-10))
    else:
        filters = int(np.prod(weights.shape[-output_axes:]))
        d = direction.reshape(-1, filters)
        w = weights.reshape(-1, filters)
        scale = np.linalg.norm(w, axis=0) / (np.linalg.norm(d, axis=0) + 1e-10)
        scaled = (d * scale).reshape(direction.shape)
    return scaled.astype(np.float32)


@dataclasses.dataclass
class Directions:
    """One (1-D plot) or two (2-D plot) directions over the same variables.

    Attributes:
        x: list of float32 arrays, one per variable (the α axis).
        y: the same for the β axis, or ``None`` for a 1-D landscape.
        variable_paths: ``variable.path`` of each variable, for checking that
            a saved direction fits a model.
        settings: how the directions were made (kind, norm, ignore, mode,
            seed, ...), JSON-serializable.
        trajectory: for PCA directions, the (α, β) of each checkpoint,
            float64 ``[n, 2]``; otherwise ``None``.
    """

    x: list
    y: list = None
    variable_paths: list = dataclasses.field(default_factory=list)
    settings: dict = dataclasses.field(default_factory=dict)
    trajectory: np.ndarray = None

    @property
    def dim(self):
        return 1 if self.y is None else 2

    def fingerprint(self):
        """SHA-256 of the direction values: resumed sweeps must use the same."""
        return fingerprint((np.asarray(part, np.float32) for part in self.x + (self.y or [])),
                           header=False)

    def cosine_similarity(self):
        """cos∠(δ, η); near 0 for random directions in high dimension."""
        if self.y is None:
            return None
        x, y = _flatten(self.x), _flatten(self.y)
        return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y) + 1e-30))

    def check_fits(self, model):
        """Raise ValueError unless these directions match ``model``'s variables.

        Shapes are compared, not names: the same architecture loaded or built
        in another process may have other automatic layer names.
        """
        variables = landscape_variables(model, self.settings.get("mode", "weights"))
        shapes = [tuple(v.shape) for v in variables]
        mine = [tuple(part.shape) for part in self.x]
        if shapes != mine:
            raise ValueError(
                "directions do not fit the model: the variables differ. Received: directions "
                f"over {len(mine)} variables of shapes {mine[:4]}..., model {model.name!r} with "
                f"{len(shapes)} variables of shapes {shapes[:4]}..."
            )


def _flatten(parts):
    return np.concatenate([np.ravel(p).astype(np.float64) for p in parts]) if parts else np.zeros(0)


def _unflatten(vector, like):
    parts, start = [], 0
    for ref in like:
        size = int(np.prod(ref.shape))
        parts.append(np.asarray(vector[start : start + size], np.float32).reshape(ref.shape))
        start += size
    return parts


def _values(variables):
    return [np.array(v.numpy()) for v in variables]


def random_direction(model, rng, norm="filter", ignore="biasbn", mode="weights"):
    """A Gaussian direction, normalized per filter (or layer) to the weights.

    Biases and normalization-layer variables (every 1-D variable, plus those
    owned by a BN / LayerNorm / GroupNorm / AdvProp / RobMask layer; in
    ``"states"`` mode also the BN moving statistics) are not normalized:
    with ``ignore="biasbn"`` they get a zero direction, otherwise the
    direction is a copy of the weights, as in the reference tool.

    Args:
        model: a Keras model at the trained weights θ*.
        rng: a ``numpy.random.Generator`` (the caller seeds it).
        norm: ``"filter"``, ``"layer"`` or ``"none"``.
        ignore: ``"biasbn"`` or ``"none"``.
        mode: ``"weights"`` or ``"states"`` (see :func:`landscape_variables`).

    Returns:
        A list of float32 arrays, one per landscape variable.
    """
    check_choice("norm", norm, NORMS)
    check_choice("ignore", ignore, IGNORES)
    output_axes, bias_or_norm = _variable_roles(model)
    direction = []
    for variable in landscape_variables(model, mode):
        weights = np.asarray(variable.numpy(), np.float32)
        if _is_bias_or_norm(variable, bias_or_norm):
            direction.append(np.zeros_like(weights) if ignore == "biasbn" else weights.copy())
            continue
        gaussian = rng.standard_normal(weights.shape)
        direction.append(
            normalize_direction(gaussian, weights, norm, output_axes.get(id(variable), 1))
        )
    return direction


def random_directions(model, dim=2, seed=0, norm="filter", ignore="biasbn", mode="weights",
                      same_dir=False):
    """One or two seeded random directions (see :func:`random_direction`).

    Args:
        dim: 1 or 2.
        seed: seeds a ``numpy.random.default_rng``; the same seed, model and
            settings give bit-identical directions.
        same_dir: for ``dim=2``, use δ for both axes (the plot then shows the
            loss along one line, a sanity check from the reference tool).

    Returns:
        :class:`Directions`.
    """
    if dim not in (1, 2):
        raise ValueError(f"dim must be 1 or 2. Received: dim={dim!r}")
    rng = np.random.default_rng(seed)
    x = random_direction(model, rng, norm, ignore, mode)
    y = None
    if dim == 2:
        y = [part.copy() for part in x] if same_dir else random_direction(model, rng, norm, ignore, mode)
    settings = dict(kind="random", dim=dim, seed=int(seed), norm=norm, ignore=ignore, mode=mode,
                    same_dir=bool(same_dir and dim == 2))
    return Directions(x, y, [v.path for v in landscape_variables(model, mode)], settings)


def difference_direction(model, other, mode="weights"):
    """The direction θ_other − θ*: α = 1 reaches the other model.

    Drawing the loss over α ∈ [−0.5, 1.5] gives the 1-D interpolation plot
    between two solutions (Goodfellow et al. 2015). No normalization is
    applied: the distance itself is the point.

    Args:
        model: the model at θ* (the origin).
        other: a model of the same architecture.
        mode: ``"weights"`` or ``"states"``.
    """
    mine, theirs = landscape_variables(model, mode), landscape_variables(other, mode)
    if [tuple(v.shape) for v in mine] != [tuple(v.shape) for v in theirs]:
        raise ValueError(
            "difference_direction needs two models with the same variables. Received: "
            f"model={model.name!r} ({len(mine)} variables), other={other.name!r} "
            f"({len(theirs)} variables)"
        )
    return [
        (np.asarray(b.numpy(), np.float64) - np.asarray(a.numpy(), np.float64)).astype(np.float32)
        for a, b in zip(mine, theirs)
    ]


def interpolation_directions(model, other, mode="weights"):
    """:class:`Directions` for the 1-D interpolation from ``model`` to ``other``."""
    x = difference_direction(model, other, mode)
    settings = dict(kind="difference", dim=1, mode=mode, other=other.name)
    return Directions(x, None, [v.path for v in landscape_variables(model, mode)], settings)


def _checkpoint_values(model, checkpoint_paths, mode):
    """Values of the landscape variables in each checkpoint; the model is left unchanged."""
    variables = landscape_variables(model, mode)
    saved = _values(model.weights)
    trajectory = []
    try:
        for path in checkpoint_paths:
            path = str(path)
            if not (path.endswith(".keras") or path.endswith(".weights.h5")):
                raise ValueError(
                    "checkpoints must be .keras or .weights.h5 files. "
                    f"Received: checkpoint_paths entry {path!r}"
                )
            model.load_weights(path)
            trajectory.append(_values(variables))
    finally:
        for variable, value in zip(model.weights, saved):
            variable.assign(value)
    return trajectory


def pca_directions(model, checkpoint_paths, mode="weights", ignore="biasbn"):
    """The top two principal directions of a training trajectory.

    Each checkpoint θ_i gives the difference θ_i − θ* to the final weights
    (the model as passed); :class:`sklearn.decomposition.PCA` of these
    flattened differences gives two orthonormal directions that capture most
    of the motion of training, so the trajectory can be drawn on the surface.
    With ``ignore="biasbn"`` biases and normalization variables are left out
    (zero), as in the reference tool.

    Args:
        model: the model at the final weights θ*.
        checkpoint_paths: at least two ``.keras`` or ``.weights.h5`` files of
            the same architecture, in training order.

    Returns:
        :class:`Directions` whose settings hold ``explained_variance_ratio``
        and whose ``trajectory`` attribute holds the checkpoints' (α, β).
    """
    from sklearn.decomposition import PCA

    check_choice("ignore", ignore, IGNORES)
    checkpoint_paths = [str(p) for p in checkpoint_paths]
    if len(checkpoint_paths) < 2:
        raise ValueError(
            "pca_directions needs at least two checkpoints. "
            f"Received: checkpoint_paths={checkpoint_paths}"
        )
    variables = landscape_variables(model, mode)
    final = _values(variables)
    _, bias_or_norm = _variable_roles(model)
    keep = [not (ignore == "biasbn" and _is_bias_or_norm(v, bias_or_norm)) for v in variables]
    rows = []
    for values in _checkpoint_values(model, checkpoint_paths, mode):
        diff = [(v.astype(np.float64) - w) * k for v, w, k in zip(values, final, keep)]
        rows.append(_flatten(diff))
    pca = PCA(n_components=2).fit(np.stack(rows))
    x, y = (_unflatten(component, final) for component in pca.components_)
    settings = dict(
        kind="pca", dim=2, mode=mode, ignore=ignore, checkpoints=checkpoint_paths,
        explained_variance_ratio=[float(r) for r in pca.explained_variance_ratio_],
    )
    directions = Directions(x, y, [v.path for v in landscape_variables(model, mode)], settings)
    directions.trajectory = project_onto(directions, rows)
    return directions


def project_onto(directions, differences):
    """Least-squares (α, β) of weight differences θ_i − θ* in the direction plane.

    Args:
        directions: a 2-D :class:`Directions`.
        differences: flattened differences, one row per point.

    Returns:
        float64 array ``[n, 2]``.
    """
    basis = np.stack([_flatten(directions.x), _flatten(directions.y)], axis=1)
    coords, *_ = np.linalg.lstsq(basis, np.stack(differences).T, rcond=None)
    return coords.T


def save_directions(directions, path):
    """Write directions to h5: groups ``xdirection`` (and ``ydirection``) of
    datasets ``"0"``, ``"1"``, ... (one per variable, attribute ``path``), the
    settings as JSON in the file attribute ``settings``."""
    with atomic_path(path, suffix=".h5") as temporary, h5py.File(temporary, "w") as f:
        f.attrs["settings"] = json.dumps(directions.settings, sort_keys=True)
        f.attrs["variable_paths"] = json.dumps(list(directions.variable_paths))
        for name, parts in (("xdirection", directions.x), ("ydirection", directions.y)):
            if parts is None:
                continue
            group = f.create_group(name)
            for i, part in enumerate(parts):
                dataset = group.create_dataset(str(i), data=np.asarray(part, np.float32))
                if i < len(directions.variable_paths):
                    dataset.attrs["path"] = directions.variable_paths[i]
        if directions.trajectory is not None:
            f.create_dataset("trajectory", data=np.asarray(directions.trajectory, np.float64))


def load_directions(path, model=None):
    """Read :func:`save_directions` output; with ``model``, check it fits."""

    def read_group(group):
        return [np.asarray(group[str(i)][()], np.float32) for i in range(len(group))]

    try:
        with h5py.File(path, "r") as f:
            directions = Directions(
                x=read_group(f["xdirection"]),
                y=read_group(f["ydirection"]) if "ydirection" in f else None,
                variable_paths=json.loads(f.attrs["variable_paths"]),
                settings=json.loads(f.attrs["settings"]),
                trajectory=np.asarray(f["trajectory"][()]) if "trajectory" in f else None,
            )
    except (OSError, KeyError, ValueError) as error:  # truncated or not a directions file
        raise ValueError(
            f"{path} is damaged or not a directions file ({type(error).__name__}: {error}); delete it "
            "and the surface.h5 beside it, then run again to recompute both."
        ) from error
    if model is not None:
        directions.check_fits(model)
    return directions
