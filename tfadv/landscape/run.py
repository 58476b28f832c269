"""One call that computes everything for one model: what ``tfadv landscape`` runs.

``run_landscape`` writes, under ``out_dir/<name>/``::

    directions.h5     the directions (made once, reused on re-runs and by every shard)
    surface.h5        the surface, resumable point by point
    surface.shard-I-of-N.h5, settings.shard-I-of-N.json
                      with ``shard=(I, N)``: this shard's points only (merged into
                      surface.h5 by :func:`tfadv.landscape.shards.merge_surface_shards`)
    settings.json     every setting that produced the results
    loss_*.png ...    figures (when the surface is complete)
    loss.vtp          VTK PolyData of a 2-D surface
    sharpness.json    top Hessian eigenvalues and Hutchinson trace
    sharpness.md      the same as a markdown table

Running it again with the same ``out_dir`` resumes; different settings are
refused rather than mixed into the same files.
"""
import json
from tfadv._files import atomic_write_json, atomic_write_text
import os

import numpy as np
import tensorflow as tf

from tfadv.landscape import directions as directions_lib
from tfadv.landscape.hessian import sharpness, sharpness_table
from tfadv.landscape.plots import plot_surface
from tfadv.landscape.shards import check_shard
from tfadv.landscape.surface import parse_grid, sweep_surface
from tfadv.landscape.vtk import write_vtp


def _direction_request(dim, norm, ignore, mode, seed, same_dir, other_model, checkpoints):
    """The direction settings asked for: the keys a stored directions file must match."""
    if other_model is not None and checkpoints:
        raise ValueError("give other_model or checkpoints, not both. Received: both")
    if other_model is not None:
        if dim != 1:
            raise ValueError(f"an interpolation to other_model is 1-D. Received: dim={dim!r}")
        return dict(kind="difference", dim=1, mode=mode, other=other_model.name)
    if checkpoints:
        if dim != 2:
            raise ValueError(f"PCA directions from checkpoints are 2-D. Received: dim={dim!r}")
        return dict(kind="pca", dim=2, mode=mode, ignore=ignore, checkpoints=[str(c) for c in checkpoints])
    return dict(kind="random", dim=dim, seed=int(seed), norm=norm, ignore=ignore, mode=mode,
                same_dir=bool(same_dir and dim == 2))


def _make_directions(model, request, other_model, checkpoints):
    if request["kind"] == "difference":
        return directions_lib.interpolation_directions(model, other_model, request["mode"])
    if request["kind"] == "pca":
        return directions_lib.pca_directions(model, checkpoints, request["mode"], request["ignore"])
    return directions_lib.random_directions(
        model, request["dim"], request["seed"], request["norm"], request["ignore"], request["mode"],
        request["same_dir"])


def _load_or_make_directions(path, model, request, other_model, checkpoints):
    if os.path.exists(path):
        directions = directions_lib.load_directions(path, model)
        stored = {key: directions.settings.get(key) for key in request}
        if stored != request:
            raise ValueError(
                f"{path} holds directions made with other settings ({stored}); refusing to mix "
                f"them. Use another out_dir or delete the folder. Received: {request}"
            )
        return directions
    directions = _make_directions(model, request, other_model, checkpoints)
    # Shards started together all get here: each writes a private file and links it into
    # place only if no directions.h5 exists yet, so the file is never half-written and the
    # first one wins; the others use it (identical values for seeded directions).
    temporary = f"{path}.{os.getpid()}.tmp"
    directions_lib.save_directions(directions, temporary)
    try:
        os.link(temporary, path)
    except FileExistsError:
        return _load_or_make_directions(path, model, request, other_model, checkpoints)
    finally:
        os.remove(temporary)
    return directions


def run_landscape(model, x, y, out_dir, name=None, dim=2, grid="-1:1:51", ygrid=None, examples=5000,
                  batch_size=500, norm="filter", ignore="biasbn", mode="weights", seed=0,
                  same_dir=False, other_model=None, checkpoints=None, p=0.0, loss="crossentropy",
                  attack=None, split="train", hessian_top_k=1, hutchinson_samples=10,
                  hessian_examples=1000, hessian_batch_size=250, hessian_max_iterations=50,
                  plots=True, vmax=None, progress=True, max_points=None, strategy=None, shard=None):
    """Directions, surface, figures and sharpness of one model.

    Args:
        model: Keras model at the weights to study (plain or conditioned).
        x, y: examples (images in [0, 1], integer labels); the first
            ``examples`` are used for the surface and the first
            ``hessian_examples`` of those for sharpness.
        out_dir: results go to ``out_dir/<name>/``.
        name: folder name; default ``model.name``.
        dim: 1 or 2.
        grid: α values as ``"min:max:num"``; also β unless ``ygrid`` is given.
        examples: how many examples (``None``: all).
        batch_size: examples per forward pass and replica.
        norm, ignore, mode, seed, same_dir: random directions, see
            :func:`tfadv.landscape.directions.random_directions`.
        other_model: 1-D interpolation from ``model`` to this model instead.
        checkpoints: 2-D PCA directions of this trajectory instead.
        p: strength bound for conditioned models.
        loss: ``"crossentropy"``, ``"mse"`` or a callable ``(y, logits) -> [B]``.
        attack: adversarial surface: ``"fgsm"``, ``"pgd"`` or a dict, see
            :func:`tfadv.landscape.surface.resolve_attack`.
        split: dataset prefix in the h5 file (``"train"`` or ``"test"``).
        hessian_top_k: top Hessian eigenvalues to compute (0: none).
        hutchinson_samples: Rademacher samples for the trace (0: none).
        hessian_examples: examples for the Hessian (at most ``examples``).
        hessian_batch_size, hessian_max_iterations: Hessian settings.
        plots: write figures and ``loss.vtp`` once the surface is complete.
        vmax: cap of the plots' color scale.
        progress: show the progress bar.
        max_points: compute at most this many new points, then return.
        strategy: ``tf.distribute`` strategy (default: the active one).
        shard: ``(I, N)`` or ``"I/N"``: compute only shard I of N of the grid
            into ``surface.shard-I-of-N.h5`` (see :mod:`tfadv.landscape.shards`);
            figures and sharpness are left to the merged surface.

    Returns:
        dict of written paths (``dir``, ``directions``, ``surface``,
        ``settings``, ``plots``, ``vtp``, ``sharpness_json``,
        ``sharpness_md``), ``sharpness`` numbers, ``complete`` and
        ``computed`` (points computed by this call).
    """
    if dim not in (1, 2):
        raise ValueError(f"dim must be 1 or 2. Received: dim={dim!r}")
    if examples is None:
        examples = len(x)
    if not 1 <= int(examples) <= len(x):
        raise ValueError(f"examples must be in [1, {len(x)}] (the examples given). Received: examples={examples!r}")
    name = name or model.name
    folder = os.path.join(out_dir, name)
    os.makedirs(folder, exist_ok=True)
    strategy = strategy or tf.distribute.get_strategy()
    xcoordinates = parse_grid(grid, "grid")
    ycoordinates = parse_grid(ygrid or grid, "ygrid") if dim == 2 else None
    x, y = np.asarray(x)[: int(examples)], np.asarray(y)[: int(examples)]

    request = _direction_request(dim, norm, ignore, mode, seed, same_dir, other_model, checkpoints)
    shard = check_shard(shard)
    suffix = "" if shard is None else ".shard-{}-of-{}".format(*shard)
    paths = {"dir": folder, "directions": os.path.join(folder, "directions.h5"),
             "surface": os.path.join(folder, f"surface{suffix}.h5"),
             "settings": os.path.join(folder, f"settings{suffix}.json")}
    directions = _load_or_make_directions(paths["directions"], model, request, other_model, checkpoints)
    surface = sweep_surface(model, directions, x, y, paths["surface"], xcoordinates, ycoordinates,
                            batch_size, p, loss, attack, split, strategy, progress, max_points,
                            shard=shard)

    hessian_examples = min(int(hessian_examples), len(x))
    settings = {
        "name": name, "model": model.name, "dim": dim, "grid": grid, "ygrid": ygrid if dim == 2 else None,
        "examples": int(len(x)), "batch_size": int(batch_size), "directions": directions.settings,
        "cosine_similarity": directions.cosine_similarity(), "p": float(p),
        "loss": loss if isinstance(loss, str) else getattr(loss, "__name__", "callable"),
        "attack": attack if attack is None or isinstance(attack, (str, dict)) else getattr(attack, "__name__", "callable"),
        "split": split, "replicas": int(strategy.num_replicas_in_sync),
        "hessian": {"top_k": int(hessian_top_k), "hutchinson_samples": int(hutchinson_samples),
                    "examples": hessian_examples, "batch_size": int(hessian_batch_size),
                    "max_iterations": int(hessian_max_iterations), "seed": int(seed)},
    }
    if shard is not None:
        settings["shard"] = list(shard)
    atomic_write_json(paths["settings"], settings, indent=2, sort_keys=True)
    result = {**paths, "plots": [], "vtp": None, "sharpness_json": None, "sharpness_md": None,
              "sharpness": None, "complete": surface["complete"], "computed": surface["computed"]}
    if not surface["complete"] or shard is not None:
        return result

    if plots:
        result["plots"] = plot_surface(paths["surface"], folder, vmax, directions.trajectory)
        if dim == 2:
            result["vtp"] = write_vtp(paths["surface"], os.path.join(folder, "loss.vtp"), zmax=vmax)
    if hessian_top_k or hutchinson_samples:
        result.update(_sharpness_files(model, x[:hessian_examples], y[:hessian_examples], folder, name,
                                       settings["hessian"], p, loss, strategy))
    return result


def _sharpness_files(model, x, y, folder, name, hessian_settings, p, loss, strategy):
    """Compute (or reuse, when the settings match) sharpness.json and sharpness.md."""
    json_path, md_path = os.path.join(folder, "sharpness.json"), os.path.join(folder, "sharpness.md")
    if os.path.exists(json_path):
        with open(json_path) as f:
            stored = json.load(f)
        if stored.get("settings") == hessian_settings:
            return {"sharpness_json": json_path, "sharpness_md": md_path, "sharpness": stored}
    numbers = sharpness(
        model, x, y, top_k=hessian_settings["top_k"], hutchinson_samples=hessian_settings["hutchinson_samples"],
        batch_size=hessian_settings["batch_size"], p=p, loss=loss,
        max_iterations=hessian_settings["max_iterations"], seed=hessian_settings["seed"], strategy=strategy)
    numbers = {"model": name, **numbers, "settings": hessian_settings}
    atomic_write_json(json_path, numbers, indent=2)
    atomic_write_text(md_path, sharpness_table({name: numbers}))
    return {"sharpness_json": json_path, "sharpness_md": md_path, "sharpness": numbers}
