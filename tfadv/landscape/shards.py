"""A surface split over several processes or machines: shard files and their merge.

Grid points are independent, so ``N`` processes can each sweep a disjoint
part of one surface: shard ``I`` of ``N`` computes the points whose flat
(row-major) index satisfies ``index % N == I`` into its own resumable file
``surface.shard-I-of-N.h5``. That file has the layout of ``surface.h5``
(NaN at the points of other shards) and its settings name the shard. The
strided split gives every shard the same share of every row of the grid, so
shards take about equally long even when the cost of a point varies across
the grid.

:func:`merge_surface_shards` checks that all ``N`` shard files are there,
complete and made from the same directions, weights, examples and settings
(their SHA-256 fingerprints), and writes the usual ``surface.h5``; every
point is a copy of the value its shard computed, so the merged surface
equals an unsharded sweep bit for bit (each point is evaluated at weights
set from θ* afresh, independent of the points before it).

Reference: the loss-landscape reference tool spreads its grid points over
MPI ranks the same way (Li et al., NeurIPS 2018).
"""
import json
import os
import re

import h5py
import numpy as np

from tfadv.checks import parse_shard, resolve_shard  # noqa: F401  (re-exported: part of this module's API)
from tfadv.landscape.surface_file import open_surface_file, read_surface, value_keys

SHARD_FILE = re.compile(r"^surface\.shard-(\d+)-of-(\d+)\.h5$")
SURFACE_FILE = "surface.h5"

# Settings that may differ between shards: only rounding or bookkeeping depends on them.
_FREE_KEYS = ("shard", "batch_size", "replicas", "model")


def check_shard(shard):
    """``(I, N)`` validated, from a tuple or an ``"I/N"`` string; ``None`` passes through."""
    if shard is None:
        return None
    if isinstance(shard, str):
        return resolve_shard(shard)
    try:
        index, count = (int(v) for v in shard)
    except (TypeError, ValueError):
        raise ValueError(f"shard must be (index, count) or 'I/N'. Received: shard={shard!r}") from None
    return parse_shard(f"{index}/{count}")


def shard_file_name(index, count):
    """``surface.shard-I-of-N.h5``."""
    return f"surface.shard-{int(index)}-of-{int(count)}.h5"


def shard_points(shape, index, count):
    """Flat indices of the points shard ``index`` of ``count`` computes."""
    flat = np.arange(int(np.prod(shape)))
    return flat[flat % count == index]


def _differences(reference, other):
    keys = sorted(set(reference["settings"]) | set(other["settings"]))
    different = [k for k in keys if k not in _FREE_KEYS
                 and reference["settings"].get(k) != other["settings"].get(k)]
    if not np.array_equal(reference["x"], other["x"]) or (reference["y"] is None) != (other["y"] is None) \
            or (reference["y"] is not None and not np.array_equal(reference["y"], other["y"])):
        different.append("coordinates")
    return different


def find_shards(folder):
    """``{(I, N): path}`` of the shard files in ``folder``."""
    found = {}
    for name in sorted(os.listdir(folder)):
        match = SHARD_FILE.match(name)
        if match:
            found[(int(match.group(1)), int(match.group(2)))] = os.path.join(folder, name)
    return found


def merge_surface_shards(folder, out_path=None):
    """Combine the complete shard files of ``folder`` into ``surface.h5``.

    Args:
        folder: the landscape folder (``OUT/<model>``) holding
            ``surface.shard-I-of-N.h5`` for ``I = 0 … N−1``.
        out_path: the merged file; default ``folder/surface.h5``. Written
            through a temporary file, so it is complete or absent.

    Returns:
        The path of the merged surface.

    Raises:
        ValueError: naming the offending file when no shard, a missing
            shard, shards of different ``N``, an incomplete shard, or a
            shard made with other directions, weights, examples, attack,
            loss, p, split or grid is found; or when ``out_path`` already
            holds a surface of other settings.
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise ValueError(f"folder must be a landscape folder holding shard files. Received: folder={folder!r}")
    shards = find_shards(folder)
    if not shards:
        raise ValueError(f"{folder} holds no surface.shard-I-of-N.h5 files to merge. Received: folder={folder!r}")
    counts = sorted({count for _, count in shards})
    if len(counts) > 1:
        raise ValueError(
            f"{folder} holds shards of different splits (N = {counts}): "
            f"{', '.join(os.path.basename(p) for p in shards.values())}; "
            "delete the files of the split you do not want to merge."
        )
    count = counts[0]
    missing = [shard_file_name(i, count) for i in range(count) if (i, count) not in shards]
    if missing:
        raise ValueError(f"cannot merge {folder}: missing shard file(s) {', '.join(missing)}")

    surfaces = [read_surface(shards[(i, count)]) for i in range(count)]
    reference = surfaces[0]
    merged_loss = np.full(reference["loss"].shape, np.nan)
    merged_acc = np.full(reference["acc"].shape, np.nan)
    for index, surface in enumerate(surfaces):
        name = shard_file_name(index, count)
        if surface["settings"].get("shard") != [index, count]:
            raise ValueError(
                f"{name} in {folder} says it is shard {surface['settings'].get('shard')}, not "
                f"[{index}, {count}]; refusing to merge it."
            )
        different = _differences(reference, surface)
        if different:
            raise ValueError(
                f"{name} in {folder} was computed with other settings than "
                f"{shard_file_name(0, count)} ({', '.join(different)}); refusing to merge it. "
                "Recompute it with the same directions, model, examples and settings."
            )
        points = shard_points(surface["acc"].shape, index, count)
        done = ~np.isnan(surface["acc"].ravel()[points])
        if not done.all():
            raise ValueError(
                f"{name} in {folder} is incomplete ({int(done.sum())} of {len(points)} points); "
                "run its command again to finish it, then merge."
            )
        merged_loss.ravel()[points] = surface["loss"].ravel()[points]
        merged_acc.ravel()[points] = surface["acc"].ravel()[points]

    settings = {k: v for k, v in reference["settings"].items() if k != "shard"}
    out_path = os.fspath(out_path or os.path.join(folder, SURFACE_FILE))
    if os.path.exists(out_path):
        open_surface_file(out_path, settings, reference["x"], reference["y"])  # refuses other settings
    temporary = f"{out_path}.merging"
    if os.path.exists(temporary):
        os.remove(temporary)
    open_surface_file(temporary, settings, reference["x"], reference["y"])
    loss_key, acc_key = value_keys(settings.get("split", "train"))
    with h5py.File(temporary, "r+") as f:
        f[loss_key][...] = merged_loss
        f[acc_key][...] = merged_acc
        f.attrs["merged_from"] = json.dumps([shard_file_name(i, count) for i in range(count)])
    os.replace(temporary, out_path)
    return out_path
