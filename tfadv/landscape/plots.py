"""Figures of loss surfaces: contours, heat maps, 3-D surfaces, 1-D curves.

Figures are drawn on ``matplotlib.figure.Figure`` objects with the Agg
canvas, never through ``pyplot``, so plotting works headless and leaves no
global state behind. Unfinished points (NaN) are left blank.

:func:`compare_figure` draws several models side by side on **one** color
scale and one set of contour levels, the layout of Li et al.'s Figures 1-2
(the paper compares un-augmented, FGSM, PGD and stAdv-trained models) —
with separate scales, a sharp and a flat minimum can look alike.
"""
import os

import numpy as np

from tfadv._files import save_figure
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from tfadv.landscape.surface import read_surface

KINDS = ("contour", "filled", "heatmap", "3d")


def _figure(**kwargs):
    figure = Figure(**kwargs)
    FigureCanvasAgg(figure)
    return figure


# Li et al.'s plot_2D default (vmax=10): losses explode at the grid's edges, and a
# scale reaching them leaves no contour near the minimum. Pass vmax=np.inf for none.
DEFAULT_LOSS_VMAX = 10.0


def _cap(key, vmax):
    return DEFAULT_LOSS_VMAX if vmax is None and key == "loss" else vmax


def _values(surface, key):
    if key not in ("loss", "acc"):
        raise ValueError(f"key must be 'loss' or 'acc'. Received: key={key!r}")
    return np.asarray(surface[key], np.float64)


def shared_levels(arrays, vmax=None, count=15):
    """Contour levels covering the finite values of all ``arrays`` up to ``vmax``.

    Args:
        arrays: surfaces to draw on one scale.
        vmax: values above are drawn as the top color (loss surfaces explode
            at the edges of the grid; capping keeps detail near the minimum).
        count: about how many levels.
    """
    finite = np.concatenate([a[np.isfinite(a)].ravel() for a in arrays])
    if finite.size == 0:
        raise ValueError("the surfaces have no finite values to plot yet. Received: all NaN")
    low, high = float(finite.min()), float(finite.max())
    if vmax is not None and np.isfinite(vmax):
        high = min(high, float(vmax))
    if not high > low:
        high = low + 1e-6
    return MaxNLocator(nbins=count).tick_values(low, high)


def _draw_2d(axes, surface, z, kind, levels, trajectory=None):
    x, y = surface["x"], surface["y"]
    X, Y = np.meshgrid(x, y)
    clipped = np.ma.masked_invalid(np.minimum(z, levels[-1]))
    if kind == "contour":
        artist = axes.contour(X, Y, clipped, levels=levels, cmap="viridis")
        axes.clabel(artist, inline=True, fontsize=7, fmt="%.3g")
    elif kind == "filled":
        artist = axes.contourf(X, Y, clipped, levels=levels, cmap="viridis", extend="max")
        lines = axes.contour(X, Y, clipped, levels=levels, colors="k", linewidths=0.4)
        axes.clabel(lines, inline=True, fontsize=6, fmt="%.3g")
    elif kind == "heatmap":
        artist = axes.imshow(clipped, origin="lower", extent=(x[0], x[-1], y[0], y[-1]),
                             aspect="auto", cmap="viridis", vmin=levels[0], vmax=levels[-1])
    else:
        artist = axes.plot_surface(X, Y, clipped.filled(np.nan), cmap="coolwarm", linewidth=0,
                                   antialiased=False, vmin=levels[0], vmax=levels[-1])
        axes.set_zlim(levels[0], levels[-1])
    if trajectory is not None and kind != "3d":
        axes.plot(trajectory[:, 0], trajectory[:, 1], marker=".", color="red", linewidth=1)
    axes.set_xlabel("α")
    axes.set_ylabel("β")
    return artist


def plot_2d(surface_path, out_path, key="loss", kind="contour", vmax=None, levels=None,
            trajectory=None, title=None):
    """One 2-D figure of a surface file.

    Args:
        surface_path: an h5 file written by :func:`~tfadv.landscape.surface.sweep_surface`.
        out_path: image file to write (format from the extension).
        key: ``"loss"`` or ``"acc"``.
        kind: ``"contour"`` (labelled level lines), ``"filled"`` (filled
            contours with labelled lines), ``"heatmap"`` or ``"3d"``.
        vmax: cap of the color scale (see :func:`shared_levels`).
        levels: explicit contour levels (overrides ``vmax``).
        trajectory: optional ``[n, 2]`` (α, β) path drawn on top (PCA plots).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}. Received: kind={kind!r}")
    surface = read_surface(surface_path)
    if surface["y"] is None:
        raise ValueError(f"plot_2d needs a 2-D surface. Received: surface_path={surface_path!r} (1-D)")
    z = _values(surface, key)
    levels = np.asarray(levels) if levels is not None else shared_levels([z], _cap(key, vmax))
    figure = _figure(figsize=(5.5, 4.5))
    axes = figure.add_subplot(projection="3d" if kind == "3d" else None)
    artist = _draw_2d(axes, surface, z, kind, levels, trajectory)
    if kind != "contour":
        figure.colorbar(artist, ax=axes, shrink=0.8, label=key)
    axes.set_title(title or f"{key} ({kind})")
    save_figure(figure, out_path, dpi=150, bbox_inches="tight")
    return out_path


def plot_1d(surface_path, out_path, vmax=None, title=None):
    """Loss (left axis) and accuracy (right axis) along a 1-D surface."""
    surface = read_surface(surface_path)
    if surface["y"] is not None:
        raise ValueError(f"plot_1d needs a 1-D surface. Received: surface_path={surface_path!r} (2-D)")
    figure = _figure(figsize=(5.5, 4))
    axes = figure.add_subplot()
    axes.plot(surface["x"], surface["loss"], color="tab:blue", label="loss")
    axes.set_xlabel("α")
    axes.set_ylabel("loss", color="tab:blue")
    if vmax is not None:  # 1-D curves show their whole range unless capped on purpose
        axes.set_ylim(top=vmax)
    accuracy_axes = axes.twinx()
    accuracy_axes.plot(surface["x"], 100 * surface["acc"], color="tab:red", linestyle="--",
                       label="accuracy")
    accuracy_axes.set_ylabel("accuracy (%)", color="tab:red")
    accuracy_axes.set_ylim(0, 100)
    axes.set_title(title or "1-D loss and accuracy")
    save_figure(figure, out_path, dpi=150, bbox_inches="tight")
    return out_path


def plot_surface(surface_path, out_dir, vmax=None, trajectory=None, fmt="png"):
    """All standard figures of a surface file into ``out_dir``.

    2-D: ``loss_2dcontour``, ``loss_2dcontourf``, ``loss_2dheat``,
    ``loss_3dsurface`` and ``acc_2dcontourf``. 1-D: ``loss_acc_1d``.

    Returns:
        list of written paths.
    """
    os.makedirs(out_dir, exist_ok=True)
    surface = read_surface(surface_path)
    if surface["y"] is None:
        return [plot_1d(surface_path, os.path.join(out_dir, f"loss_acc_1d.{fmt}"), vmax)]
    names = {"contour": "2dcontour", "filled": "2dcontourf", "heatmap": "2dheat", "3d": "3dsurface"}
    paths = [
        plot_2d(surface_path, os.path.join(out_dir, f"loss_{name}.{fmt}"), "loss", kind, vmax,
                trajectory=trajectory)
        for kind, name in names.items()
    ]
    paths.append(plot_2d(surface_path, os.path.join(out_dir, f"acc_2dcontourf.{fmt}"), "acc", "filled"))
    return paths


def compare_figure(surface_paths, names, out_path, key="loss", kind="filled", vmax=None):
    """Several surfaces side by side on one shared color scale and levels.

    Args:
        surface_paths: h5 surface files, all 2-D or all 1-D.
        names: a panel title per file.
        out_path: image file to write.
        key: ``"loss"`` or ``"acc"``.
        kind: for 2-D surfaces, one of ``"contour"``, ``"filled"``,
            ``"heatmap"``, ``"3d"``; 1-D surfaces are drawn as curves on a
            shared y-axis.
        vmax: cap of the shared scale.

    Returns:
        ``out_path``.
    """
    surface_paths, names = list(surface_paths), list(names)
    if not surface_paths or len(surface_paths) != len(names):
        raise ValueError(
            "compare_figure needs one name per surface file and at least one file. Received: "
            f"{len(surface_paths)} surface_paths, {len(names)} names"
        )
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}. Received: kind={kind!r}")
    surfaces = [read_surface(p) for p in surface_paths]
    dims = {1 if s["y"] is None else 2 for s in surfaces}
    if len(dims) != 1:
        raise ValueError(f"compare_figure needs surfaces of one dimension. Received: surface_paths={surface_paths}")
    values = [_values(s, key) for s in surfaces]
    levels = shared_levels(values, _cap(key, vmax))
    count = len(surfaces)
    figure = _figure(figsize=(4.2 * count + 1.0, 4.0))
    if dims == {1}:
        first = None
        for i, (surface, z, name) in enumerate(zip(surfaces, values, names)):
            axes = figure.add_subplot(1, count, i + 1, sharey=first)
            first = first or axes
            axes.plot(surface["x"], z)
            axes.set_ylim(levels[0], levels[-1])
            axes.set_xlabel("α")
            axes.set_title(name)
        first.set_ylabel(key)
    else:
        all_axes, artist = [], None
        for i, (surface, z, name) in enumerate(zip(surfaces, values, names)):
            axes = figure.add_subplot(1, count, i + 1, projection="3d" if kind == "3d" else None)
            artist = _draw_2d(axes, surface, z, kind, levels)
            axes.set_title(name)
            if i and kind != "3d":
                axes.set_ylabel("")
            all_axes.append(axes)
        if kind != "contour":
            figure.colorbar(artist, ax=all_axes, shrink=0.8, label=key)
    save_figure(figure, out_path, dpi=150, bbox_inches="tight")
    return out_path
