"""One fingerprint function; every stored fingerprint keeps the value files already hold."""
import hashlib
import importlib

import keras
import numpy as np

from tfadv import fingerprints, models


def _sha256(arrays, header):
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        if header is not None:
            digest.update(header(array).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def test_every_stored_fingerprint_keeps_its_format():
    from tfadv.evaluation.loading import weights_fingerprint
    from tfadv.evaluation.results import data_fingerprint
    from tfadv.landscape import directions as landscape_directions

    finetune = importlib.import_module("tfadv.training.methods.finetune")
    keras.utils.set_random_seed(0)
    model = models.build("tiny", input_shape=(8, 8, 1), norm="dual_bn")
    x = np.random.default_rng(0).uniform(size=(4, 8, 8, 1)).astype("float32")
    y = np.arange(4)
    weights = [np.asarray(w) for w in model.weights]
    dtype_shape = lambda a: f"{a.dtype}{a.shape}"  # noqa: E731

    # eval.json part keys: weights with their shapes, data with dtype and shape, 16 digits
    assert weights_fingerprint(model) == _sha256(weights, lambda a: str(a.shape))[:16]
    assert data_fingerprint(x, y) == _sha256([x, y], dtype_shape)[:16]
    # surface.h5: dtype and shape; the directions' bytes alone, as float32
    assert fingerprints.fingerprint(weights) == _sha256(weights, dtype_shape)
    directions = landscape_directions.random_directions(model, dim=2, seed=0)
    parts = [np.asarray(p, np.float32) for p in directions.x + directions.y]
    assert directions.fingerprint() == _sha256(parts, None)
    # the fine-tuning stored set: (dtype.str, shape)
    stored = lambda a: str((a.dtype.str, a.shape))  # noqa: E731
    assert finetune._fingerprint(x, y) == _sha256([x, y], stored)
    assert finetune._model_fingerprint(model) == _sha256(model.get_weights(), stored)


def test_fingerprints_tell_weights_and_data_apart():
    x = np.zeros((2, 3), np.float32)
    assert fingerprints.data_fingerprint(x, np.zeros(2)) != fingerprints.data_fingerprint(x, np.ones(2))
    assert fingerprints.fingerprint([x]) != fingerprints.fingerprint([x.astype(np.float64)])
    assert fingerprints.fingerprint([x]) != fingerprints.fingerprint([x.reshape(3, 2)])
    assert len(fingerprints.fingerprint([x], length=16)) == 16
    assert fingerprints.weights_fingerprint(object()) is None
