"""The surface file: one h5 file per loss surface, its layout, and its safe writes.

Layout (compatible with the reference tool's ``plot_2D.py``)::

    xcoordinates   [nx]          α values
    ycoordinates   [ny]          β values (2-D only)
    train_loss     [ny, nx]/[nx]  mean loss; value at (x[i], y[j]) is [j, i]
    train_acc      [ny, nx]/[nx]  accuracy in [0, 1]; NaN = not computed yet
    attrs          settings (JSON) and one attribute per setting

The ``[j, i]`` (row = β) layout is ``np.meshgrid(x, y)``'s, what matplotlib's
``contour(X, Y, Z)`` expects. The ``train_`` prefix is the split. The sweep (:mod:`tfadv.landscape.surface`)
and the merge of shards (:mod:`tfadv.landscape.shards`) both write this
format; keeping it in this leaf module lets each import it without the other.
"""
import json
import os
import shutil
import warnings

import h5py
import numpy as np

from tfadv._files import atomic_path

# Settings that change the values of a surface. Anything else (batch size,
# number of replicas) changes only float rounding and may differ on resume.
IDENTITY_KEYS = ("directions", "directions_sha256", "weights_sha256", "data_sha256",
               "examples", "loss", "p", "attack", "split", "shard")


def value_keys(split):
    """The loss and accuracy dataset names of ``split``."""
    return f"{split}_loss", f"{split}_acc"


def open_surface_file(path, settings, xcoordinates, ycoordinates):
    """Create the h5 file, or check an existing one was made with the same settings."""
    loss_key, acc_key = value_keys(settings["split"])
    shape = (len(xcoordinates),) if ycoordinates is None else (len(ycoordinates), len(xcoordinates))
    if os.path.exists(path) and not is_readable_surface_file(path, settings["split"]):
        warnings.warn(f"{path} is damaged (truncated or not a surface file); recomputing it from "
                      "scratch. Its points are recomputable from the model, data and directions.",
                      stacklevel=3)
        os.remove(path)
    if not os.path.exists(path):
        with atomic_path(path, suffix=".h5") as temporary, h5py.File(temporary, "w") as f:
            f["xcoordinates"] = xcoordinates
            if ycoordinates is not None:
                f["ycoordinates"] = ycoordinates
            f.create_dataset(loss_key, data=np.full(shape, np.nan))
            f.create_dataset(acc_key, data=np.full(shape, np.nan))
            f.attrs["settings"] = json.dumps(settings, sort_keys=True)
            for key, value in settings.items():
                f.attrs[key] = value if isinstance(value, (str, int, float)) else json.dumps(value)
        return
    with h5py.File(path, "r") as f:
        stored = json.loads(f.attrs.get("settings", "{}"))
        differences = [k for k in IDENTITY_KEYS if stored.get(k) != settings.get(k)]
        same_grid = (
            np.array_equal(f["xcoordinates"][()], xcoordinates)
            and ("ycoordinates" in f) == (ycoordinates is not None)
            and (ycoordinates is None or np.array_equal(f["ycoordinates"][()], ycoordinates))
        )
        if not same_grid:
            differences.append("coordinates")
        if loss_key not in f or acc_key not in f:
            differences.append("split")
    if differences:
        raise ValueError(
            f"{path} holds a surface computed with different settings ({', '.join(differences)}); "
            "refusing to mix them. Write to another path or delete the file. "
            f"Received: path={path!r}"
        )


def is_readable_surface_file(path, split):
    """True if ``path`` opens as an HDF5 surface with its coordinates and arrays intact."""
    try:
        with h5py.File(path, "r") as f:
            f["xcoordinates"][()]
            for key in value_keys(split):
                if key in f:
                    f[key][()]
            json.loads(f.attrs.get("settings", "{}"))
    except (OSError, KeyError, ValueError, RuntimeError):
        return False
    return True


def write_point(path, position, values):
    """Write one grid point all-or-nothing: a copy of ``path`` updated, then renamed over it.

    The surface file is small (two float64 arrays of the grid), so copying it per
    point costs milliseconds against the seconds a point takes; a kill mid-write
    then leaves the previous file, never a damaged one.
    """
    with atomic_path(path, suffix=".h5") as temporary:
        shutil.copyfile(path, temporary)
        with h5py.File(temporary, "r+") as f:
            for key, value in values.items():
                f[key][position] = value


def read_surface(path, split=None):
    """Read a surface file: dict with ``x``, ``y`` (or None), ``loss``, ``acc``, ``settings``."""
    with h5py.File(path, "r") as f:
        settings = json.loads(f.attrs.get("settings", "{}"))
        split = split or settings.get("split", "train")
        loss_key, acc_key = value_keys(split)
        return {
            "x": f["xcoordinates"][()],
            "y": f["ycoordinates"][()] if "ycoordinates" in f else None,
            "loss": f[loss_key][()],
            "acc": f[acc_key][()] if acc_key in f else None,
            "settings": settings,
        }
