"""The masking picture of paper 2's Figure 4: what BN + ReLU lets through.

Paper 2's hypothesis is that BN's rescaling followed by ReLU acts as a mask
on the features: a channel whose rescaled values are all negative is blocked
(all zero after ReLU), one with a larger γ is magnified. :func:`compare_masks`
measures this between two maskings — a RobMask model at two strengths p, a
dual-BN model's main and auxiliary branch (p = 0 and 1), or two models of one
architecture — at every BN → ReLU pair of the network:

- ``blocked``: the fraction of (image, channel) feature maps that are all
  zero, for masking A and for masking B, and ``newly_blocked``, the fraction
  blocked by B but not by A;
- ``magnification``: per (image, channel) map that A lets through, the ratio
  mean(B) / mean(A) of the activations; ``mean_magnification`` averages it
  and ``magnified`` is the fraction of maps above ``magnify_threshold``.

:func:`plot_masks` draws the feature maps of one layer for a few images, A
above B, with blocked maps framed in red and magnified ones in green.
"""

import numpy as np

from tfadv._files import save_figure

from tfadv.analysis.bn_anatomy import is_norm_layer, masking_strength


def masking_pairs(model):
    """``(norm_layer, relu_layer)`` for every BN whose output goes straight into a ReLU."""
    import keras

    norms = {id(layer.output): layer for layer in model.layers if is_norm_layer(layer)}
    pairs = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.ReLU) or (
                isinstance(layer, keras.layers.Activation)
                and getattr(layer.activation, "__name__", "") == "relu"):
            norm = norms.get(id(layer.input))
            if norm is not None:
                pairs.append((norm, layer))
    if not pairs:
        raise ValueError(f"Model {model.name!r} has no batch normalization followed by a ReLU.")
    return pairs


def _select(pairs, layer):
    if layer in (None, "first"):
        return [pairs[0]]
    if layer == "all":
        return list(pairs)
    names = [layer] if isinstance(layer, str) else list(layer)
    chosen = []
    for name in names:
        match = [pair for pair in pairs if name in (pair[0].name, pair[1].name)]
        if not match:
            raise ValueError(f"No BN → ReLU pair with a layer named {name!r}. "
                             f"Available: {[pair[0].name for pair in pairs]}")
        chosen.extend(match)
    return chosen


def masked_features(model, images, p=0.0, layers="first", batch_size=64):
    """The activations after the chosen BN → ReLU pairs, at masking strength p.

    Returns:
        A dict ``{bn layer name: float32 array [N, H, W, C]}`` in network order.
    """
    import keras

    from tfadv.models import call_model

    p = masking_strength(p)
    chosen = _select(masking_pairs(model), layers)
    probe = keras.Model(model.input, [relu.output for _, relu in chosen])
    outputs = [[] for _ in chosen]
    images = np.asarray(images, np.float32)
    for start in range(0, len(images), batch_size):
        result = call_model(probe, images[start:start + batch_size], p=p, training=False)
        result = result if isinstance(result, (list, tuple)) else [result]
        for collected, tensor in zip(outputs, result):
            collected.append(keras.ops.convert_to_numpy(tensor))
    return {norm.name: np.concatenate(parts) for (norm, _), parts in zip(chosen, outputs)}


def mask_statistics(features_a, features_b, magnify_threshold=1.5):
    """Blocked and magnified feature maps of B relative to A (arrays ``[N, H, W, C]``)."""
    features_a = np.asarray(features_a, np.float64)
    features_b = np.asarray(features_b, np.float64)
    if features_a.shape != features_b.shape:
        raise ValueError("The two maskings give feature maps of different shapes: "
                         f"{features_a.shape} and {features_b.shape}")
    spatial = tuple(range(1, features_a.ndim - 1))
    blocked_a = np.all(features_a == 0, axis=spatial)  # [N, C]
    blocked_b = np.all(features_b == 0, axis=spatial)
    mean_a = features_a.mean(axis=spatial)
    mean_b = features_b.mean(axis=spatial)
    open_a = mean_a > 0
    ratio = np.divide(mean_b, mean_a, out=np.full_like(mean_a, np.nan), where=open_a)
    valid = ratio[open_a]
    return {
        "channels": int(features_a.shape[-1]),
        "blocked_a": float(blocked_a.mean()),
        "blocked_b": float(blocked_b.mean()),
        "newly_blocked": float((blocked_b & ~blocked_a).mean()),
        "mean_magnification": float(valid.mean()) if valid.size else float("nan"),
        "magnified": float((valid > magnify_threshold).sum() / blocked_a.size),
        "magnify_threshold": float(magnify_threshold),
        "_blocked_b": blocked_b,
        "_ratio": ratio,
    }


def compare_masks(model_a, images, p_a=0.0, p_b=1.0, model_b=None, layers="all",
                  magnify_threshold=1.5):
    """:func:`mask_statistics` at every chosen BN → ReLU pair, masking A against masking B.

    Args:
        model_a: the model of masking A.
        images: float32 images in [0, 1], ``[N, H, W, C]``.
        p_a, p_b: masking strengths (RobMask p; dual BN 0 = main, 1 = aux;
            ``"main"``/``"aux"`` accepted).
        model_b: the model of masking B (default: ``model_a``), of the same
            architecture.
        layers: ``"first"``, ``"all"`` or BN layer names of ``model_a``.
        magnify_threshold: a map counts as magnified when mean(B) / mean(A)
            exceeds it.

    Returns:
        ``(rows, features)``: one dict of statistics per layer (JSON-ready, keys
        not starting with ``_``) and the feature maps ``{layer: (a, b)}``.
    """
    model_b = model_a if model_b is None else model_b
    features_a = masked_features(model_a, images, p_a, layers)
    pairs_a = masking_pairs(model_a)
    pairs_b = masking_pairs(model_b)
    if len(pairs_a) != len(pairs_b):
        raise ValueError(f"Models {model_a.name!r} and {model_b.name!r} have different numbers of "
                         f"BN → ReLU pairs ({len(pairs_a)} and {len(pairs_b)}).")
    position = {norm.name: index for index, (norm, _) in enumerate(pairs_a)}
    names_b = [pairs_b[position[name]][0].name for name in features_a]
    features_b_by_name = masked_features(model_b, images, p_b, names_b)
    rows, features = [], {}
    for name, name_b in zip(features_a, names_b):
        a, b = features_a[name], features_b_by_name[name_b]
        stats = mask_statistics(a, b, magnify_threshold)
        rows.append({"layer": name, "depth": position[name], **stats})
        features[name] = (a, b)
    return rows, features


def public_rows(rows):
    """Rows without the per-map arrays, for JSON."""
    return [{key: value for key, value in row.items() if not key.startswith("_")} for row in rows]


def plot_masks(images, features_a, features_b, row, path, label_a="A", label_b="B",
               max_channels=16):
    """Feature maps of one layer for each image: the image, then A's maps above B's.

    A map that B blocks (all zero) is framed in red; one that B magnifies
    above the threshold, in green. Each channel shares one colour scale
    between A and B, so a dimmer map is a weaker one.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = len(images)
    channels = min(max_channels, features_a.shape[-1])
    figure, axes = plt.subplots(2 * count, channels + 1,
                                figsize=(1.1 * (channels + 1), 1.15 * 2 * count), squeeze=False)
    for n in range(count):
        top, bottom = axes[2 * n], axes[2 * n + 1]
        top[0].imshow(np.clip(images[n], 0, 1).squeeze(), cmap="gray" if images[n].shape[-1] == 1 else None)
        top[0].set_ylabel(label_a, fontsize=7)
        bottom[0].set_ylabel(label_b, fontsize=7)
        bottom[0].set_xticks([])
        bottom[0].set_yticks([])
        for spine in bottom[0].spines.values():
            spine.set_visible(False)
        for c in range(channels):
            vmax = max(features_a[n, ..., c].max(), features_b[n, ..., c].max(), 1e-12)
            top[c + 1].imshow(features_a[n, ..., c], cmap="viridis", vmin=0, vmax=vmax)
            bottom[c + 1].imshow(features_b[n, ..., c], cmap="viridis", vmin=0, vmax=vmax)
            colour = None
            if row["_blocked_b"][n, c]:
                colour = "red"
            elif np.nan_to_num(row["_ratio"][n, c]) > row["magnify_threshold"]:
                colour = "limegreen"
            for axis in (top[c + 1], bottom[c + 1]):
                axis.set_xticks([])
                axis.set_yticks([])
            if colour:
                for spine in bottom[c + 1].spines.values():
                    spine.set_edgecolor(colour)
                    spine.set_linewidth(2.5)
            if n == 0:
                top[c + 1].set_title(f"ch {c}", fontsize=7)
        top[0].set_xticks([])
        top[0].set_yticks([])
    figure.suptitle(
        f"{row['layer']}: after BN + ReLU — blocked {label_a} {row['blocked_a']:.0%}, "
        f"{label_b} {row['blocked_b']:.0%}; mean magnification {row['mean_magnification']:.2f} "
        "(red: blocked by B, green: magnified)", fontsize=9)
    figure.tight_layout()
    save_figure(figure, path, dpi=100)
    plt.close(figure)
    return path
