"""What produced a result, and writing results so that a crash never leaves half a file.

A leaf module (it imports only the leaf `tfadv._files`), used by training,
evaluation, tuning, the benchmarks and the experiment pipeline alike:

- :func:`environment_record` — versions, the source revision and the machine,
  stored beside results;
- :func:`source_revision` — which code ran: the git commit and whether the
  tree was dirty when tfadv is imported from a checkout, else the package
  version and a hash of the installed sources;
- :func:`resume_note` — the one line that says a resumed result was begun by
  another revision;
- :func:`write_json`, :func:`write_text` — atomic writes (a temporary file,
  then ``os.replace``), so a reader sees the previous file or the new one.
"""
import functools
import hashlib
import json
import os
import platform
import subprocess

import keras
import tensorflow as tf

import tfadv

VERSION_KEYS = ("tfadv", "tensorflow", "keras", "python")
"""The keys of :func:`environment_record` that are software versions (the rest describe the machine)."""

SOURCE_SUFFIXES = (".py", ".yaml", ".yml", ".json")
"""Files of the installed package hashed into ``sources_sha256`` (code and the data files it reads)."""


def _git(args, cwd):
    """``git <args>`` in ``cwd``: its stripped output, or ``None`` when git or the checkout is missing."""
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def sources_sha256(package_dir):
    """SHA-256 over the relative paths and bytes of the package's source files, in sorted order."""
    digest = hashlib.sha256()
    paths = []
    for root, dirs, files in os.walk(package_dir):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        paths += [os.path.join(root, name) for name in files if name.endswith(SOURCE_SUFFIXES)]
    for path in sorted(paths):
        digest.update(os.path.relpath(path, package_dir).replace(os.sep, "/").encode() + b"\0")
        with open(path, "rb") as handle:
            digest.update(handle.read())
        digest.update(b"\0")
    return digest.hexdigest()


def probe_revision(package_dir):
    """The revision of the code in ``package_dir`` (uncached; :func:`source_revision` caches it).

    From a git checkout: ``{"git_commit": <40 hex>, "dirty": bool}``, dirty
    when any tracked file differs from the commit or an untracked file is not
    ignored (``git status --porcelain``). Otherwise (an installed package, or
    no git): ``{"version": ..., "sources_sha256": ...}``.
    """
    top = _git(["rev-parse", "--show-toplevel"], package_dir)
    # The package must be tracked in that checkout (not an installed copy inside someone's repo).
    tracked = top is not None and _git(["ls-files", "--error-unmatch", "__init__.py"], package_dir) is not None
    commit = _git(["rev-parse", "HEAD"], package_dir) if tracked else None
    if commit:
        status = _git(["status", "--porcelain"], top)
        return {"git_commit": commit, "dirty": bool(status) if status is not None else None}
    return {"version": tfadv.__version__, "sources_sha256": sources_sha256(package_dir)}


@functools.lru_cache(maxsize=None)
def source_revision():
    """The revision of the imported tfadv (see :func:`probe_revision`), probed once per process."""
    return probe_revision(os.path.dirname(os.path.abspath(tfadv.__file__)))


def revision_label(source):
    """One short phrase for a ``source`` record: ``commit 1a2b3c4d5e6f (dirty)`` or ``tfadv 0.1.0, sources 9f8e7d6c5b4a``."""
    if not source:
        return "an unrecorded revision"
    if source.get("git_commit"):
        return f"commit {source['git_commit'][:12]}" + (" (dirty)" if source.get("dirty") else "")
    return f"tfadv {source.get('version', '?')}, sources {str(source.get('sources_sha256', '?'))[:12]}"


def same_revision(a, b):
    """Whether two ``source`` records name the same code (a dirty tree never equals anything)."""
    if not a or not b or a.get("dirty") or b.get("dirty"):
        return False
    keys = ("git_commit",) if a.get("git_commit") or b.get("git_commit") else ("version", "sources_sha256")
    return all(a.get(key) == b.get(key) for key in keys)


def resume_note(previous, what="run", current=None):
    """The one line to say when resuming a result begun by another revision, else ``None``.

    ``previous`` is the ``source`` record stored with the result (``None``
    when the result predates revision records); ``current`` defaults to
    :func:`source_revision`.
    """
    current = source_revision() if current is None else current
    if same_revision(previous, current):
        return None
    return f"Resuming a {what} begun by {revision_label(previous)} with {revision_label(current)}."


def cpu_model():
    """The CPU's model name (Linux's ``/proc/cpuinfo``), or ``None`` where it cannot be read."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def environment_record():
    """What produced a result, beyond the config: versions, the source revision and the machine."""
    return {
        "tfadv": tfadv.__version__,
        "source": dict(source_revision()),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),
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
