"""Run folders: create one for a config, or resume it if it holds the same config.

A run folder ``runs/<name>/`` holds ``config.yaml``, ``revision.json``, ``history.csv``,
``tensorboard/``, ``checkpoints/`` and, when training finished, ``model.keras``.
:func:`prepare_folder` refuses a folder whose config differs (naming the
changed keys), so two experiments never mix; :func:`save_model_atomically`
writes ``model.keras`` complete or not at all.

Moved out: the resume callbacks (:mod:`tfadv.training.callbacks`), the
environment record and atomic JSON writing (:mod:`tfadv.records`), model
loading (:mod:`tfadv.models.io`), the runs table of reports
(``tfadv.experiments.report.runs_table``); their former names here warn
(:mod:`tfadv._deprecated`).
"""
import json
import os

from tfadv import records
from tfadv._files import atomic_path, clear_folder
from tfadv.records import resume_note, source_revision


def changed_config_keys(saved, current, free_keys=(), prefix=""):
    """Dotted keys whose values differ between two config mappings, except ``free_keys``.

    A key that one side lacks and the other holds as ``null`` is no change
    (a setting added as "unset" since the saved config was written).
    """
    for key in sorted(set(saved) | set(current), key=str):
        old, new = saved.get(key), current.get(key)
        where = f"{prefix}{key}"
        if (key not in saved and new is None) or (key not in current and old is None):
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            yield from changed_config_keys(old, new, free_keys, where + ".")
        elif old != new and where not in free_keys:
            yield where


REVISION_FILE = "revision.json"
"""In a run folder: ``{"created_by": <source record>, "resumed_by": [<other source records>]}``."""


def note_revision(directory, resuming, what="run", say=print):
    """Record which code works in ``directory``; when ``resuming`` a folder begun by other code, say so in one line.

    ``revision.json`` keeps the revision that created the folder and every
    other revision that resumed it (see ``tfadv.records.source_revision``).
    Returns the line said, or ``None``.
    """
    path = os.path.join(directory, REVISION_FILE)
    current = source_revision()
    record = {"created_by": current, "resumed_by": []}
    if resuming:
        record = {"created_by": None, "resumed_by": []}  # a folder from before revision records
        if os.path.exists(path):
            with open(path, encoding="utf-8") as handle:
                record = json.load(handle)
        last = (record.get("resumed_by") or [record.get("created_by")])[-1]
        note = resume_note(last, what, current)
        if note is None:
            return None
        record.setdefault("resumed_by", []).append(current)
        records.write_json(path, record)
        say(f"{directory}: {note}")
        return note
    records.write_json(path, record)
    return None


def prepare_folder(config, directory, overwrite=False, free_keys=(), what="run", say=print):
    """Create ``directory`` for ``config``, or resume it if it holds the same config.

    With ``overwrite`` an existing folder is deleted first. A folder whose
    ``config.yaml`` differs (beyond ``free_keys``, dotted like ``train.verbose``)
    is refused with a ``ConfigError`` naming the changed keys, so two
    experiments never mix in one folder. The resolved config is written, and
    the source revision beside it (:func:`note_revision`: resuming a folder
    begun by another revision says so in one line, through ``say``).
    """
    import yaml

    from tfadv.config import ConfigError, save_config, to_dict

    config_path = os.path.join(directory, "config.yaml")
    if overwrite and os.path.isdir(directory):
        clear_folder(directory)  # keeps the lock file of the command that holds the folder
    resuming = os.path.exists(config_path)
    if resuming:
        with open(config_path, encoding="utf-8") as handle:
            saved = yaml.safe_load(handle) or {}
        changed = list(changed_config_keys(saved, to_dict(config), free_keys))
        if changed:
            raise ConfigError(
                f"{directory} holds a {what} with a different config ({', '.join(changed)} changed). "
                "Resume with the same config, choose another name, or pass --overwrite."
            )
    os.makedirs(directory, exist_ok=True)
    save_config(config, config_path)
    note_revision(directory, resuming, what, say)
    return directory


def save_model_atomically(model, path):
    """``model.save(path)`` through a temporary file, so ``path`` is complete or absent."""
    with atomic_path(path, suffix=".keras") as temporary:
        model.save(temporary)


def __getattr__(name):  # former names: tfadv._deprecated, with a DeprecationWarning
    from tfadv import _deprecated

    return _deprecated.former_name(__name__, name)
