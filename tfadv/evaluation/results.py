"""``eval.json``: every number with the settings, model and data that produced it.

Layout::

    {
      "format": "tfadv-eval/1",
      "environment": {"tfadv": ..., "tensorflow": ..., ..., "devices": [...]},  # tfadv.records
      "dataset": {"name": ..., "num_examples": N, "fingerprint": ...},
      "plan": {"attacks": [...], "sweep": [...], "tradeoff_attack": ..., "p_grid": [...], "p": 0.0},
      "models": {
        "<name>": {
          "source": ..., "fingerprint": ..., "conditioned": false,
          "parts": {"<part id>": {"attack": {settings} | null, "p": ..., "accuracy": ...,
                                   "clean_accuracy": ..., "correct": "0110…", ...}},
          "worst_case": {"accuracy": ..., "attacks": [...], "correct": "…"} | null
        }
      },
      "figures": [...]
    }

A *part* is the evaluation of one model under one attack (or none: clean) at
one masking strength p; it is what a rerun skips when its ``key`` matches.
Per-example correctness is stored as a string of ``0``/``1`` (one character
per example), so the worst case over attacks can be recomputed from the file.
"""

import hashlib
import json
import os

import numpy as np

from tfadv import fingerprints
from tfadv.records import environment_record, write_json

FORMAT = "tfadv-eval/1"
RESULTS_FILE = "eval.json"
REPORT_FILE = "eval.md"
CLEAN = "clean"



def data_fingerprint(x, y):
    """16 hex digits of :func:`tfadv.fingerprints.fingerprint` of images and labels: a rerun on
    other data never reuses results."""
    return fingerprints.data_fingerprint(x, y, length=16)


def part_id(attack_id, p=None):
    """The name of a part: ``clean`` or an attack's id, with ``@ p=…`` for conditioned models."""
    base = CLEAN if attack_id is None else attack_id
    return base if p is None else f"{base} @ p={float(p)!r}"


def part_key(model_fingerprint, dataset_fingerprint, attack_settings, p):
    """What must be unchanged for a stored part to be reused; ``None`` if the model is unidentifiable."""
    if model_fingerprint is None:
        return None
    record = [FORMAT, model_fingerprint, dataset_fingerprint, attack_settings, p]
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]


def encode_mask(mask):
    """A boolean vector as a string of ``0``/``1``."""
    return (np.asarray(mask, bool).astype(np.uint8) + ord("0")).tobytes().decode("ascii")


def decode_mask(text):
    """The inverse of :func:`encode_mask`."""
    return np.frombuffer(text.encode("ascii"), np.uint8) == ord("1")


def new_results(dataset):
    return {"format": FORMAT, "environment": environment_record(), "dataset": dataset, "plan": {}, "models": {}, "figures": []}


def results_path(path):
    """``path`` itself if it is a file, else ``path/eval.json``."""
    path = os.fspath(path)
    return path if os.path.isfile(path) or path.endswith(".json") else os.path.join(path, RESULTS_FILE)


def load_results(path):
    """Read ``eval.json`` (a file, or the folder holding it).

    Raises:
        ValueError: naming the path if it is missing or not an evaluation.
    """
    path = results_path(path)
    try:
        with open(path, encoding="utf-8") as handle:
            results = json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(
            f"Cannot read evaluation results. Received: path={path!r} ({error}). If the file is "
            "damaged, run the same `tfadv eval` with --force to recompute it (or delete it).") from error
    if not isinstance(results, dict) or results.get("format") != FORMAT:
        raise ValueError(f"Not a {FORMAT} file. Received: path={path!r}")
    return results


def save_results(results, path):
    """Write ``eval.json`` atomically (a crash mid-write leaves the previous file)."""
    path = results_path(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_json(path, results, indent=1, default=None, allow_nan=False)


def __getattr__(name):  # former names: tfadv._deprecated, with a DeprecationWarning
    from tfadv import _deprecated

    return _deprecated.former_name(__name__, name)
