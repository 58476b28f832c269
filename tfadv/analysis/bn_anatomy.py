"""The BN anatomy of paper 2's Figure 1: which normalization parameters a fine-tuning moves.

Paper 2 (Adversarial Masking, Sec. 3.1) fine-tunes only the BN layers of an
adversarially trained ResNet-18 on clean images and observes, for the first
BN layer (and the appendix's deeper ones), that "the running mean and running
variance are nearly the same, while the rescaling parameters γ change a lot".
:func:`compare_bn` turns that observation into numbers: per layer, the
relative change of each of the four per-channel vectors between two models,

    change(v) = ||v_b − v_a||₂ / ||v_a||₂        (v ∈ {mean, variance, γ, β})

(``nan`` when ``||v_a||₂ = 0``, e.g. β at initialization). :func:`plot_bn_layer`
draws the per-channel values of one layer of both models, as the figure does.

Every kind of tfadv normalization is read at a chosen masking: plain
``BatchNormalization`` has one; ``DualBatchNormalization`` takes p = 0 (main
BN) or 1 (auxiliary BN) — values in between mix γ, β and the statistics
linearly, as the layer does in inference; ``ConditionedBatchNormalization``
(RobMask) gives γ_p = u(p)·W and β_p = u(p)·W' with its shared statistics.
"""

import numpy as np

from tfadv._files import save_figure
from tfadv.checks import check_strength

PARAMETERS = ("mean", "variance", "gamma", "beta")
BRANCHES = {"main": 0.0, "aux": 1.0}


def is_norm_layer(layer):
    """True for the batch normalizations whose rescaling is a mask (not the input normalization)."""
    import keras

    from tfadv.layers import ConditionedBatchNormalization, DualBatchNormalization

    return isinstance(layer, (keras.layers.BatchNormalization, DualBatchNormalization,
                              ConditionedBatchNormalization))


def norm_layers(model):
    """The model's batch normalizations in the order of its layers."""
    return [layer for layer in model.layers if is_norm_layer(layer)]


def masking_strength(value):
    """``main``/``aux`` (dual BN branches) or a number in [0, 1] → float p."""
    if isinstance(value, str):
        key = value.strip().lower()
        if key in BRANCHES:
            return BRANCHES[key]
        try:
            value = float(key)
        except ValueError:
            raise ValueError(
                f"A masking is 'main', 'aux' or a number p in [0, 1]. Received: {value!r}"
            ) from None
    return check_strength("p", value)


def _numpy(variable):
    return np.asarray(variable, dtype=np.float64)


def bn_parameters(layer, p=0.0):
    """The per-channel ``mean``, ``variance``, ``gamma``, ``beta`` of a norm layer at masking p.

    Args:
        layer: a built ``keras.layers.BatchNormalization``,
            ``DualBatchNormalization`` or ``ConditionedBatchNormalization``.
        p: masking strength in [0, 1] (ignored by plain BN); for dual BN 0 is
            the main branch and 1 the auxiliary one.

    Returns:
        dict of float64 arrays of shape ``[C]``.
    """
    import keras

    from tfadv.layers import ConditionedBatchNormalization, DualBatchNormalization
    from tfadv.layers.conditioned_batch_normalization import encode_strength

    p = masking_strength(p)
    if isinstance(layer, ConditionedBatchNormalization):
        u = np.asarray(keras.ops.convert_to_numpy(encode_strength(np.array([p]), layer.k)),
                       dtype=np.float64)[0]
        channels = layer.moving_mean.shape[0]
        gamma = u @ _numpy(layer.gamma_basis) if layer.scale else np.ones(channels)
        beta = u @ _numpy(layer.beta_basis) if layer.center else np.zeros(channels)
        return {"mean": _numpy(layer.moving_mean), "variance": _numpy(layer.moving_variance),
                "gamma": gamma, "beta": beta}
    if isinstance(layer, DualBatchNormalization):
        channels = layer.main_moving_mean.shape[0]
        branches = {
            "main": {"mean": _numpy(layer.main_moving_mean),
                     "variance": _numpy(layer.main_moving_variance),
                     "gamma": _numpy(layer.main_gamma) if layer.scale else np.ones(channels),
                     "beta": _numpy(layer.main_beta) if layer.center else np.zeros(channels)},
            "aux": {"mean": _numpy(layer.aux_moving_mean),
                    "variance": _numpy(layer.aux_moving_variance),
                    "gamma": _numpy(layer.aux_gamma) if layer.scale else np.ones(channels),
                    "beta": _numpy(layer.aux_beta) if layer.center else np.zeros(channels)},
        }
        return {name: (1.0 - p) * branches["main"][name] + p * branches["aux"][name]
                for name in PARAMETERS}
    if isinstance(layer, keras.layers.BatchNormalization):
        channels = layer.moving_mean.shape[0]
        return {"mean": _numpy(layer.moving_mean), "variance": _numpy(layer.moving_variance),
                "gamma": _numpy(layer.gamma) if layer.scale else np.ones(channels),
                "beta": _numpy(layer.beta) if layer.center else np.zeros(channels)}
    raise ValueError(f"Not a batch normalization layer. Received: layer={layer.name!r} "
                     f"({type(layer).__name__})")


def paired_norm_layers(model_a, model_b):
    """Pairs ``(layer_a, layer_b)`` of the same BN in two models of one architecture.

    Layers are paired by name when both models use the same names, else by
    position (a plain-BN model names them ``bn_i``, a RobMask one
    ``robmask_i``); the models must have as many norm layers with the same
    channel counts.
    """
    layers_a, layers_b = norm_layers(model_a), norm_layers(model_b)
    if len(layers_a) != len(layers_b):
        raise ValueError(
            "The two models have different numbers of batch normalizations, so they are not one "
            f"architecture. Received: {model_a.name!r} has {len(layers_a)}, "
            f"{model_b.name!r} has {len(layers_b)}"
        )
    names_b = {layer.name: layer for layer in layers_b}
    if all(layer.name in names_b for layer in layers_a):
        pairs = [(layer, names_b[layer.name]) for layer in layers_a]
    else:
        pairs = list(zip(layers_a, layers_b))
    for layer_a, layer_b in pairs:
        channels_a = bn_parameters(layer_a)["mean"].shape
        channels_b = bn_parameters(layer_b)["mean"].shape
        if channels_a != channels_b:
            raise ValueError(
                f"BN layers {layer_a.name!r} and {layer_b.name!r} have different channel counts: "
                f"{channels_a[0]} and {channels_b[0]}"
            )
    return pairs


def select_pairs(pairs, layers="first"):
    """``first``, ``all`` or a list of layer names (of either model) → the chosen pairs."""
    if layers in ("first", None):
        return pairs[:1]
    if layers == "all":
        return list(pairs)
    names = [layers] if isinstance(layers, str) else list(layers)
    chosen = []
    for name in names:
        match = [pair for pair in pairs if name in (pair[0].name, pair[1].name)]
        if not match:
            available = [pair[0].name for pair in pairs]
            raise ValueError(f"No batch normalization named {name!r}. Available: {available}")
        chosen.extend(match)
    return chosen


def relative_change(a, b):
    """``||b − a||₂ / ||a||₂``; ``nan`` when ``a`` is all zeros."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    norm = np.linalg.norm(a)
    return float(np.linalg.norm(b - a) / norm) if norm > 0 else float("nan")


def compare_bn(model_a, model_b, layers="first", p_a=0.0, p_b=0.0):
    """Per layer, the relative change of mean, variance, γ and β from ``model_a`` to ``model_b``.

    Args:
        model_a, model_b: two models of one architecture (any norm kinds).
        layers: ``"first"``, ``"all"`` or a list of layer names.
        p_a, p_b: the masking at which each model's norms are read (see
            :func:`bn_parameters`; ``"main"``/``"aux"`` for dual BN).

    Returns:
        A list of dicts, one per layer: ``layer`` (name in model a),
        ``layer_b``, ``depth`` (index among the norm layers), ``channels``,
        the four relative changes, and ``values`` (the per-channel arrays of
        both models, for plotting).
    """
    pairs = paired_norm_layers(model_a, model_b)
    depth = {id(pair[0]): index for index, pair in enumerate(pairs)}
    rows = []
    for layer_a, layer_b in select_pairs(pairs, layers):
        values_a, values_b = bn_parameters(layer_a, p_a), bn_parameters(layer_b, p_b)
        row = {"layer": layer_a.name, "layer_b": layer_b.name, "depth": depth[id(layer_a)],
               "channels": int(values_a["mean"].shape[0])}
        row.update({name: relative_change(values_a[name], values_b[name]) for name in PARAMETERS})
        row["values"] = {"a": values_a, "b": values_b}
        rows.append(row)
    return rows


def changes_table(rows, label_a="A", label_b="B"):
    """A Markdown table of :func:`compare_bn`'s relative changes, one row per layer."""
    lines = [f"Relative change ||{label_b} − {label_a}|| / ||{label_a}|| per BN layer.", "",
             "| layer | channels | running mean | running variance | γ | β |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for row in rows:
        cells = " | ".join("n/a" if np.isnan(row[name]) else f"{row[name]:.4f}" for name in PARAMETERS)
        lines.append(f"| {row['layer']} | {row['channels']} | {cells} |")
    return "\n".join(lines) + "\n"


def plot_bn_layer(row, path, label_a="A", label_b="B"):
    """Per-channel running mean, running variance, γ and β of one layer of both models."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = {"mean": "running mean", "variance": "running variance", "gamma": "γ", "beta": "β"}
    figure, axes = plt.subplots(1, 4, figsize=(16, 3.2))
    channels = np.arange(row["channels"])
    for axis, name in zip(axes, PARAMETERS):
        axis.plot(channels, row["values"]["a"][name], "o-", markersize=3, linewidth=1, label=label_a)
        axis.plot(channels, row["values"]["b"][name], "s-", markersize=3, linewidth=1, label=label_b)
        change = row[name]
        axis.set_title(f"{titles[name]} (change {change:.3f})" if not np.isnan(change) else titles[name])
        axis.set_xlabel("channel")
    axes[0].legend()
    figure.suptitle(f"BN layer {row['layer']}")
    figure.tight_layout()
    save_figure(figure, path, dpi=110)
    plt.close(figure)
    return path


def plot_changes_by_depth(rows, path):
    """The four relative changes against the depth of the layer (all layers at once)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 3.5))
    depth = [row["depth"] for row in rows]
    for name, label in zip(PARAMETERS, ("running mean", "running variance", "γ", "β")):
        axis.plot(depth, [row[name] for row in rows], "o-", markersize=3, label=label)
    axis.set_xlabel("BN layer (depth)")
    axis.set_ylabel("relative change")
    axis.set_yscale("symlog", linthresh=1e-3)
    axis.legend()
    figure.tight_layout()
    save_figure(figure, path, dpi=110)
    plt.close(figure)
    return path
