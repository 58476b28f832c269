"""``export_model``: a SavedModel with masking signatures, written atomically.

The export folder is the SavedModel itself plus a description::

    export/NAME/
        saved_model.pb        the graph and its signatures
        variables/            the weights
        assets/
        fingerprint.pb
        signatures.json       every signature's inputs and outputs, the meaning
                              of p, the maskings, eps_max, the training run

``tf.saved_model.load("export/NAME")`` and ``saved_model_cli --dir
export/NAME`` read it as is; TensorFlow Serving serves it as version 1 of a
model (mount it at ``/models/NAME/1``).

**Atomicity.** Everything is first written to a hidden sibling folder
``.NAME.partial-XXXX`` next to the destination and renamed into place only
when complete, so a server never sees a half-written model. An existing
export is replaced only with ``overwrite=True``: it is renamed aside, the new
one renamed in, and the old one deleted; if anything fails, the old export is
put back and the partial folder removed.
"""
import datetime
import json
import os
import platform
import shutil
import tempfile

import keras
import tensorflow as tf

import tfadv
from tfadv.export.signatures import P_MEANINGS, ServingFunctions
from tfadv.models.io import load_model, resolve_model_path
from tfadv.records import source_revision

SIGNATURES_FILE = "signatures.json"
FORMAT = "tfadv.export/1"


def export_model(model_or_path, out_dir, default_p=0.0, uint8=False, maskings=None,
                 run_info=None, overwrite=False):
    """Export a tfadv model as a SavedModel with masking signatures.

    Signatures (see ``tfadv.export.signatures``): ``serving_default`` at
    ``default_p``; for conditioned models (RobMask, masking interpolation,
    AdvProp dual BN) also ``serve_tradeoff`` (images and a scalar p) and
    ``serve_maskings`` (one output pair per named masking).

    Args:
        model_or_path: a ``keras.Model``, a ``.keras`` file, or a run folder
            holding ``model.keras`` (its ``config.yaml`` is then recorded and
            supplies ``eps_max`` of a RobMask run).
        out_dir: the export folder to create (e.g. ``export/NAME``).
        default_p: the masking strength of ``serving_default``, in [0, 1]
            (conditioned models only).
        uint8: take images as uint8 pixels 0..255 (scaled by 1/255 inside the
            graph) instead of float32 in [0, 1].
        maskings: ``{name: p}`` served by ``serve_maskings``; default
            ``{"clean": 0.0, "robust": 1.0}``.
        run_info: what to record about the training run when it cannot be read
            from ``model_or_path``: any of ``run_dir``, ``config`` (a dict),
            ``eps_max``; given keys override what was read.
        overwrite: replace an existing export at ``out_dir`` (atomically).

    Returns:
        The contents of ``signatures.json`` plus ``out_dir`` (absolute path).

    Raises:
        ValueError: ``out_dir`` exists and ``overwrite`` is False, a bad
            ``default_p`` / ``maskings``, or a model that cannot be exported.
    """
    out_dir = os.path.abspath(os.fspath(out_dir))
    _check_destination(out_dir, overwrite)
    model, source = _resolve_model(model_or_path)
    functions = ServingFunctions(model, default_p=default_p, uint8=uint8, maskings=maskings)
    record = _signatures_record(functions, _run_record(source, run_info))

    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.partial-", dir=parent)
    try:
        _write_archive(functions, staging)
        with open(os.path.join(staging, SIGNATURES_FILE), "w", encoding="utf-8") as handle:
            json.dump(record, handle, indent=2, default=str)
        _move_into_place(staging, out_dir, overwrite)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already after a successful move
    return {**record, "out_dir": out_dir}


def summary_lines(record):
    """Human-readable lines about an export (what ``tfadv export`` prints)."""
    model = record["model"]
    lines = [f"exported {model['name']} ({model['kind']}, {model['input_dtype']} images "
             f"{model['input_shape']}) to {record.get('out_dir', '?')}"]
    signatures = record["signatures"]
    if record["p"] is None:
        lines.append("  serving_default(images) -> logits, probabilities")
        return lines
    lines.append(f"  serving_default(images) -> logits, probabilities   at p = {record['p']['default']}")
    lines.append("  serve_tradeoff(images, p) -> logits, probabilities   p in [0, 1]")
    maskings = ", ".join(f"{name} (p = {value['p']})" for name, value in record["maskings"].items())
    lines.append(f"  serve_maskings(images) -> <name>_logits, <name>_probabilities   for {maskings}")
    if record["eps_max"] is not None:
        lines.append(f"  p is RobMask's masking strength: eps = p * eps_max, eps_max = {record['eps_max']:.6g}")
    lines.append(f"  described in {SIGNATURES_FILE}; signatures: {', '.join(signatures)}")
    return lines


def _check_destination(out_dir, overwrite):
    if os.path.lexists(out_dir):
        if not os.path.isdir(out_dir) or os.path.islink(out_dir):
            raise ValueError(f"out_dir must be a folder path. Received: out_dir={out_dir!r} (an existing file)")
        if not overwrite:
            raise ValueError(
                f"out_dir already exists; pass overwrite=True (--overwrite) to replace it. "
                f"Received: out_dir={out_dir!r}"
            )


def _resolve_model(model_or_path):
    """``(model, source)``; source names the ``.keras`` file and run folder it came from."""
    if isinstance(model_or_path, keras.Model):
        return model_or_path, {}
    try:
        path = os.path.abspath(resolve_model_path(model_or_path))
    except ValueError:
        raise ValueError(
            f"model_or_path must be a keras.Model, a .keras file or a run folder holding "
            f"model.keras. Received: model_or_path={model_or_path!r}"
        ) from None
    model = load_model(path)
    run_dir = os.path.dirname(path)
    has_config = os.path.isfile(os.path.join(run_dir, "config.yaml"))
    return model, {"model_path": path, "run_dir": run_dir if has_config else None}


def _run_record(source, run_info):
    """The training run an export came from: model file, run folder, config, eps_max."""
    run = {"model_path": None, "run_dir": None, "config": None, **source, **(run_info or {})}
    if run["config"] is None and run["run_dir"]:
        config_path = os.path.join(run["run_dir"], "config.yaml")
        if os.path.isfile(config_path):
            import yaml

            with open(config_path, encoding="utf-8") as handle:
                run["config"] = yaml.safe_load(handle)
    if run.get("eps_max") is None:
        method = (run["config"] or {}).get("method") or {}
        run["eps_max"] = method.get("eps_max") if method.get("kind") == "robmask" else None
    return run


def _signatures_record(functions, run):
    eps_max = run.pop("eps_max", None)
    eps_max = float(eps_max) if eps_max is not None and functions.kind == "robmask" else None
    p = None
    if functions.conditioned:
        p = {"range": [0.0, 1.0], "default": functions.default_p_value,
             "meaning": P_MEANINGS[functions.kind]}
        if eps_max is not None:
            p["eps"] = "eps = p * eps_max"
    maskings = {name: {"p": value, **({"eps": value * eps_max} if eps_max is not None else {})}
                for name, value in functions.maskings.items()}
    return {
        "format": FORMAT,
        "model": {
            "name": functions.model.name,
            "kind": functions.kind,
            "input_shape": list(functions.image_shape),
            "input_dtype": "uint8" if functions.uint8 else "float32",
            "num_classes": functions.num_classes,
        },
        "p": p,
        "eps_max": eps_max,
        "maskings": maskings,
        "signatures": functions.describe(),
        "run": run,
        "environment": {
            "tfadv": tfadv.__version__,
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "python": platform.python_version(),
            "source": source_revision(),
        },
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _write_archive(functions, path):
    """Trace every signature and write the SavedModel to ``path``."""
    archive = keras.export.ExportArchive()
    archive.track(functions.model)
    for name, (fn, input_signature) in functions.endpoints().items():
        archive.add_endpoint(name, fn, input_signature=input_signature)
    archive.write_out(path, verbose=False)


def _move_into_place(staging, out_dir, overwrite):
    """Rename the complete ``staging`` folder to ``out_dir``, replacing an old export."""
    if not os.path.lexists(out_dir):
        os.rename(staging, out_dir)
        return
    _check_destination(out_dir, overwrite)  # it may have appeared while we were writing
    retired = f"{staging}.replaced"
    os.rename(out_dir, retired)
    try:
        os.rename(staging, out_dir)
    except BaseException:
        os.rename(retired, out_dir)
        raise
    shutil.rmtree(retired, ignore_errors=True)
