"""Declared classes (issue 22, point 5): the class count is declared, stray labels are refused."""
import warnings

import numpy as np
import pytest
import yaml

from tfadv.cli.main import main
from tfadv.data import InvalidDataError, dataset_info, declared_num_classes, load_arrays


def _npz(path, labels, label_names=None, size=8):
    x = np.random.default_rng(0).integers(0, 256, (len(labels), size, size, 3), dtype=np.uint8)
    extra = {} if label_names is None else {"label_names": np.array(label_names)}
    np.savez(path, x=x, y=np.array(labels, dtype=np.int64), **extra)
    return str(path)


def test_label_names_declare_the_class_count(tmp_path):
    path = _npz(tmp_path / "d.npz", list(range(5)) * 4, label_names=[f"c{i}" for i in range(8)])
    assert declared_num_classes(path) == 8
    x, y = load_arrays(path, "train")
    assert dataset_info(x, y, source=path)["num_classes"] == 8
    with pytest.raises(ValueError, match="label_names declares 8 classes but num_classes=6"):
        declared_num_classes(path, 6)


def test_a_stray_label_is_refused_naming_file_key_and_value(tmp_path):
    labels = list(range(10)) * 3
    labels[17] = 17
    path = _npz(tmp_path / "stray.npz", labels, label_names=[str(i) for i in range(10)])
    with pytest.raises(InvalidDataError) as raised:
        load_arrays(path, "train")
    message = str(raised.value)
    assert "\n" not in message and path in message and "y has label 17 outside 0..9" in message
    assert "index 17" in message
    # data.num_classes declares the classes of a file without label_names.
    plain = _npz(tmp_path / "plain.npz", labels)
    with pytest.raises(InvalidDataError, match="y has label 17 outside 0..11"):
        load_arrays(plain, "train", num_classes=12)


def test_inferred_count_warns_naming_the_classes_without_examples(tmp_path):
    labels = [0, 1, 2, 5] * 5
    path = _npz(tmp_path / "gaps.npz", labels)
    x, y = load_arrays(path, "train")
    with pytest.warns(UserWarning, match=r"6 classes inferred .* classes 3, 4 have no training example"):
        info = dataset_info(x, np.array(labels), source=path)
    assert info["num_classes"] == 6
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert dataset_info(x, np.array(labels), num_classes=7, source=path)["num_classes"] == 7


def test_cli_train_refuses_a_stray_label_before_any_work_with_exit_2(tmp_path, capsys):
    labels = list(range(4)) * 8
    labels[3] = 17
    data = _npz(tmp_path / "stray.npz", labels, label_names=["a", "b", "c", "d"])
    config = {"name": "run", "output_dir": str(tmp_path / "runs"), "model": {"name": "tiny"},
              "data": {"source": data, "batch_size": 8, "augment": False},
              "train": {"epochs": 1, "verbose": 0}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", str(tmp_path / "c.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "stray.npz" in err and "y has label 17 outside 0..3" in err
    assert not (tmp_path / "runs" / "run").exists()


def test_divergence_message_starts_on_its_own_line(tmp_path, capsys):
    config = {"name": "run", "output_dir": str(tmp_path), "model": {"name": "tiny"},
              "data": {"limit_train": 128, "limit_test": 32, "batch_size": 32, "augment": False},
              "train": {"epochs": 3, "verbose": 1, "learning_rate": 1e10, "schedule": "constant"}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", str(tmp_path / "c.yaml")]) == 3
    captured = capsys.readouterr()
    assert captured.out.endswith("\n"), repr(captured.out[-200:])  # the progress bar's line is ended
    assert captured.err.strip().startswith("tfadv train: error: training diverged")
