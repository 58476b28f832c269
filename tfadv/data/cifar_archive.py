"""CIFAR-10/100 "python version" archives, read without running pickle code.

The official archives are pickles of dicts of NumPy arrays. A plain
``pickle.load`` would execute whatever a crafted file asks for, so this module
unpickles with an allow-list: the builtins a dict of bytes/str/int/list needs
and NumPy's array reconstruction. Anything else is refused with an error
naming the global the file tried to load.
"""
import io
import os
import pickle
import tarfile

import numpy as np

# (module, name) pairs the real CIFAR pickles need. NumPy moved its internals
# from numpy.core to numpy._core in 2.0; archives written by either load.
_ALLOWED_GLOBALS = {
    ("builtins", "dict"),
    ("builtins", "list"),
    ("builtins", "bytes"),
    ("builtins", "str"),
    ("builtins", "int"),
    ("_codecs", "encode"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
}


class UnsafePickleError(ValueError):
    """A pickle asked for a global outside the CIFAR allow-list."""


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"Refusing to load {module}.{name} from a CIFAR pickle: only NumPy arrays and "
            "plain Python containers are allowed. The file is not an official CIFAR batch."
        )


def restricted_loads(data):
    """Unpickle ``data`` (bytes) admitting only what CIFAR batches contain."""
    return _RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()


def _decode_batch(batch, label_key):
    def get(key):
        return batch.get(key.encode(), batch.get(key))

    images = get("data")
    labels = get(label_key)
    if images is None or labels is None:
        raise ValueError(f"CIFAR batch has no 'data' or '{label_key}' entry")
    x = np.asarray(images, dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return x, np.asarray(labels, dtype=np.int64)


def _member_names(variant, split):
    if variant == "cifar10":
        return [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    return ["train"] if split == "train" else ["test"]


def load_cifar_archive(path, split="train"):
    """Load a CIFAR-10/100 python archive (``.tar.gz``) or its extracted folder.

    Returns ``(x uint8 [N, 32, 32, 3], y int64 [N])``. CIFAR-100 uses the fine labels.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        files = {name: os.path.join(root, name) for root, _, names in os.walk(path) for name in names}
        read = lambda name: open(files[name], "rb").read()  # noqa: E731
        available = set(files)
    elif tarfile.is_tarfile(path):
        archive = tarfile.open(path, "r:*")
        members = {os.path.basename(m.name): m for m in archive.getmembers() if m.isfile()}
        read = lambda name: archive.extractfile(members[name]).read()  # noqa: E731
        available = set(members)
    else:
        raise ValueError(f"Not a CIFAR python archive or folder: {path!r}")

    if "data_batch_1" in available:
        variant, label_key = "cifar10", "labels"
    elif "train" in available and "test" in available:
        variant, label_key = "cifar100", "fine_labels"
    else:
        raise ValueError(
            f"{path!r} holds neither CIFAR-10 (data_batch_1..5, test_batch) nor CIFAR-100 "
            "(train, test) batches"
        )
    parts = [_decode_batch(restricted_loads(read(name)), label_key) for name in _member_names(variant, split)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
