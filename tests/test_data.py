import io
import os
import pickle
import tarfile

import numpy as np
import pytest

from tfadv import data


def _cifar10_batch(n, seed):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 3 * 32 * 32), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).tolist()
    return {b"batch_label": b"x", b"labels": labels, b"data": images, b"filenames": [b"a"] * n}


def _write_cifar10_archive(path, n=4):
    batches = {f"data_batch_{i}": _cifar10_batch(n, i) for i in range(1, 6)}
    batches["test_batch"] = _cifar10_batch(n, 9)
    with tarfile.open(path, "w:gz") as archive:
        for name, batch in batches.items():
            blob = pickle.dumps(batch, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            archive.addfile(info, io.BytesIO(blob))
    return batches


def test_digits_are_32x32x3_unit_float_and_split_deterministically():
    x_train, y_train = data.load_arrays("digits", "train")
    x_test, y_test = data.load_arrays("digits", "test")
    assert x_train.shape[1:] == (32, 32, 3) and x_train.dtype == np.float32
    assert y_train.dtype == np.int64
    assert len(x_train) + len(x_test) == 1797
    assert 0.0 <= x_train.min() and x_train.max() <= 1.0
    # Nearest-neighbour upsampling: every 4x4 block is constant and channels equal.
    from sklearn.datasets import load_digits

    raw = load_digits()
    first = x_train[0, ::4, ::4, 0]
    matches = [i for i, img in enumerate(raw.images) if np.allclose(img / 16.0, first)]
    assert matches and raw.target[matches[0]] == y_train[0]
    np.testing.assert_array_equal(x_train[..., 0], x_train[..., 2])
    x_again, _ = data.load_arrays("digits", "train")
    np.testing.assert_array_equal(x_train, x_again)


def test_cifar_archive_and_folder_decode_to_nhwc(tmp_path):
    path = tmp_path / "cifar-10-python.tar.gz"
    batches = _write_cifar10_archive(path)
    x, y = data.load_arrays(str(path), "train")
    assert x.shape == (20, 32, 32, 3)
    first = batches["data_batch_1"][b"data"][0].reshape(3, 32, 32).transpose(1, 2, 0)
    np.testing.assert_allclose(x[0], first / 255.0, atol=1e-7)
    assert y.tolist()[:4] == batches["data_batch_1"][b"labels"]
    x_test, _ = data.load_arrays(str(path), "test")
    assert len(x_test) == 4
    with tarfile.open(path) as archive:
        archive.extractall(tmp_path / "extracted", filter="data")
    x_dir, y_dir = data.load_arrays(str(tmp_path / "extracted"), "train")
    np.testing.assert_array_equal(x_dir, x)
    np.testing.assert_array_equal(y_dir, y)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch /tmp/tfadv_pwned",))


def test_restricted_unpickler_refuses_code_execution(tmp_path):
    marker = "/tmp/tfadv_pwned"
    if os.path.exists(marker):
        os.remove(marker)
    evil = pickle.dumps({b"data": _Exploit(), b"labels": [1]}, protocol=2)
    with pytest.raises(data.UnsafePickleError, match="system"):
        data.restricted_loads(evil)
    assert not os.path.exists(marker)
    # The same through the archive loader.
    folder = tmp_path / "cifar"
    folder.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(evil)
    with pytest.raises(data.UnsafePickleError):
        data.load_arrays(str(folder), "train")
    assert not os.path.exists(marker)


def test_npz_with_uint8_and_split_keys(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(50, 8, 8, 3), dtype=np.uint8)
    y = np.arange(50) % 5
    np.savez(tmp_path / "d.npz", x=x, y=y)
    x_train, y_train = data.load_arrays(str(tmp_path / "d.npz"), "train")
    x_test, y_test = data.load_arrays(str(tmp_path / "d.npz"), "test")
    assert len(x_train) == 40 and len(x_test) == 10
    assert sorted(np.bincount(y_test).tolist()) == [2, 2, 2, 2, 2]  # stratified
    recovered = np.round(np.concatenate([x_train, x_test]) * 255).astype(np.uint8)
    assert sorted(map(bytes, recovered)) == sorted(map(bytes, x))
    np.savez(tmp_path / "s.npz", x_train=x[:30], y_train=y[:30], x_test=x[30:], y_test=y[30:])
    assert len(data.load_arrays(str(tmp_path / "s.npz"), "test")[0]) == 20


def test_missing_and_bad_sources_have_clear_errors(tmp_path):
    with pytest.raises(data.DatasetNotFoundError, match="nope.npz"):
        data.load_arrays(str(tmp_path / "nope.npz"))
    with pytest.raises(data.DatasetNotFoundError, match="Unknown dataset source 'imagenet'"):
        data.load_arrays("imagenet")
    np.savez(tmp_path / "wrong.npz", images=np.zeros((2, 4, 4, 3)))
    with pytest.raises(data.DatasetNotFoundError, match="expected 'x' and 'y'"):
        data.load_arrays(str(tmp_path / "wrong.npz"))
    with pytest.raises(ValueError, match="split"):
        data.load_arrays("digits", "validation")
    np.savez(tmp_path / "range.npz", x=np.full((4, 4, 4, 3), 2.0), y=np.zeros(4))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        data.load_arrays(str(tmp_path / "range.npz"))


def test_tfds_failure_explains_how_to_provide_data(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(tfds, "load", offline)
    with pytest.raises(data.DatasetNotFoundError, match="cifar-10-python.tar.gz"):
        data.load_arrays("cifar10", data_dir=str(tmp_path))


def test_pipeline_is_seeded_and_augmentation_is_pad_crop_flip():
    x = np.random.default_rng(1).uniform(size=(20, 32, 32, 3)).astype("float32")
    y = np.arange(20)
    first = [b[1].numpy().tolist() for b in data.make_dataset(x, y, 8, shuffle=True, seed=3)]
    second = [b[1].numpy().tolist() for b in data.make_dataset(x, y, 8, shuffle=True, seed=3)]
    assert first == second and sorted(sum(first, [])) == list(range(20))
    augmented = next(iter(data.make_dataset(x, y, 20, augment=True, seed=5)))[0].numpy()
    # Each augmented image is a (possibly flipped) 32x32 window of the zero-padded original.
    for image, original in zip(augmented, x):
        padded = np.pad(original, [(4, 4), (4, 4), (0, 0)])
        found = any(
            np.array_equal(image, cand[i:i + 32, j:j + 32])
            for cand in (padded, padded[:, ::-1])
            for i in range(9)
            for j in range(9)
        )
        assert found
    with pytest.raises(ValueError, match="batch_size"):
        data.make_dataset(x, y, 0)
