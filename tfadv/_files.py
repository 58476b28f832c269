"""Files a user keeps: all-or-nothing writes and one-process-per-folder locks.

A leaf module (standard library only), so every layer can use it.

**Atomic writes.** ``atomic_path(path)`` yields a temporary name in the same
folder; when the block ends without an exception the file is flushed to disk
(``fsync``) and renamed over ``path`` with ``os.replace``, which POSIX and
Windows make atomic within one file system. A kill at any moment leaves the
old file or the new one, never half of one; a stale temporary
(``.NAME.tmp-PID``) is all a kill can leave behind.

**Folder locks.** ``FolderLock(folder)`` takes an exclusive ``flock`` on
``folder/.tfadv.lock`` and writes its pid there. A second process asking for
the same folder gets a ``FolderLockedError`` naming the folder and the pid; a
lock whose process is gone (killed) is released by the kernel, so the next
command takes it over.
"""
import contextlib
import errno
import json
import os
import tempfile

LOCK_FILE = ".tfadv.lock"


# --------------------------------------------------------------------------
# Atomic writes.


def _fsync_folder(folder):
    """Make the rename itself durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _fsync_file(path):
    if os.path.isdir(path):
        for root, _, files in os.walk(path):
            for name in files:
                _fsync_file(os.path.join(root, name))
        return
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


@contextlib.contextmanager
def atomic_path(path, suffix=""):
    """Yield a temporary path next to ``path``; on success, fsync it and rename it to ``path``.

    The writer writes the whole file to the yielded name (with ``open``,
    ``h5py.File``, ``savefig``, ``model.save``…). On an exception the
    temporary file is removed and ``path`` is untouched.

    Args:
        path: the final file.
        suffix: ending of the temporary name, for writers that infer the
            format from it (``".keras"``, ``".png"``).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(
        prefix=f".{os.path.basename(path)}.tmp-{os.getpid()}-", suffix=suffix, dir=folder)
    os.close(descriptor)
    try:
        yield temporary
        _fsync_file(temporary)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        raise
    _fsync_folder(folder)


def atomic_write_text(path, text):
    """Write ``text`` (UTF-8) to ``path`` all-or-nothing."""
    with atomic_path(path) as temporary:
        with open(temporary, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)


def atomic_write_json(path, data, **dump_options):
    """``json.dump(data)`` to ``path`` all-or-nothing (``indent=2`` unless given)."""
    dump_options.setdefault("indent", 2)
    atomic_write_text(path, json.dumps(data, **dump_options))


def clear_folder(folder, keep=(LOCK_FILE,)):
    """Delete everything in ``folder`` but the names in ``keep`` (the lock of the command clearing it)."""
    import shutil

    for name in os.listdir(folder):
        if name in keep:
            continue
        path = os.path.join(folder, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)


def save_figure(figure, path, **savefig_options):
    """``figure.savefig(path)`` all-or-nothing (the format is ``path``'s extension)."""
    extension = os.path.splitext(os.fspath(path))[1]
    with atomic_path(path, suffix=extension) as temporary:
        figure.savefig(temporary, **savefig_options)


# --------------------------------------------------------------------------
# Folder locks.


class FolderLockedError(RuntimeError):
    """Another running process holds the folder; the message names the folder and its pid."""


def pid_is_running(pid):
    """True if a process with ``pid`` exists (it may belong to another user)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except OSError as err:
        return err.errno == errno.EPERM
    return True


def _read_holder(handle):
    handle.seek(0)
    text = handle.read().strip()
    try:
        return int(text.split()[0]) if text else None
    except ValueError:
        return None


class FolderLock:
    """An exclusive lock on ``folder`` for the life of one command.

    Use as a context manager (``with FolderLock(run_dir, "tfadv train"):``).
    The lock is an advisory ``flock`` on ``folder/.tfadv.lock``, a file that
    holds the pid and command of its holder while it runs. The kernel drops
    the lock when its holder exits, however it exits (SIGKILL included), so a
    lock left by a process that is gone is stale by construction and the
    next command takes it over; the file is kept (emptied) on release,
    because removing a locked file races with a process opening it.

    Raises:
        FolderLockedError: a running process holds the folder (this one included:
            the lock is not re-entrant).
    """

    def __init__(self, folder, command="tfadv"):
        self.folder = os.fspath(folder)
        self.command = command
        self.path = os.path.join(self.folder, LOCK_FILE)
        self._handle = None

    @property
    def held(self):
        return self._handle is not None

    def acquire(self):
        import fcntl

        os.makedirs(self.folder, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                handle.close()
                raise
            holder = _read_holder(handle)
            handle.close()
            who = "another process" if holder is None else (
                "this process" if holder == os.getpid() else "another process")
            pid = "pid unknown" if holder is None else f"pid {holder}"
            raise FolderLockedError(
                f"{self.folder} is in use by {who} ({pid}, lock file {self.path}). "
                "Wait for it to finish, or stop it, then run the command again."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()} {self.command}\n")
        handle.flush()
        self._handle = handle
        return self

    def holder(self):
        """The pid written in the lock file, or None."""
        try:
            with open(self.path, encoding="utf-8") as handle:
                return _read_holder(handle)
        except OSError:
            return None

    def release(self):
        if self._handle is None:
            return
        import fcntl

        handle, self._handle = self._handle, None
        try:
            handle.seek(0)
            handle.truncate()
            handle.flush()
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        finally:
            handle.close()

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc_info):
        self.release()
        return False
