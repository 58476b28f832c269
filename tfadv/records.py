"""What produced a result, and writing results so that a crash never leaves half a file.

A leaf module (it imports only the leaf `tfadv._files`), used by training,
evaluation, tuning, the benchmarks and the experiment pipeline alike:

- :func:`environment_record` — versions and the machine, stored beside results;
- :func:`write_json`, :func:`write_text` — atomic writes (a temporary file,
  then ``os.replace``), so a reader sees the previous file or the new one.
"""
import json
import os
import platform

import keras
import tensorflow as tf

import tfadv

VERSION_KEYS = ("tfadv", "tensorflow", "keras", "python")
"""The keys of :func:`environment_record` that are software versions (the rest describe the machine)."""


def environment_record():
    """What produced a result, beyond the config: versions and the machine."""
    return {
        "tfadv": tfadv.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "devices": [d.name for d in tf.config.list_logical_devices()],
    }


def write_text(path, text):
    """Write ``text`` to ``path`` atomically (UTF-8; see ``tfadv._files.atomic_write_text``)."""
    from tfadv._files import atomic_write_text

    atomic_write_text(path, text)


def write_json(path, data, indent=2, default=str, allow_nan=True):
    """Write ``data`` as JSON to ``path`` atomically.

    ``default`` turns values JSON does not know into something it does
    (``str`` by default; ``None`` refuses them); ``allow_nan=False`` refuses
    NaN and infinities instead of writing non-standard JSON.
    """
    write_text(path, json.dumps(data, indent=indent, default=default, allow_nan=allow_nan))
