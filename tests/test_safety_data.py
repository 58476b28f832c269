"""Bad data is refused before any work, with the file, the key and the value named (issue 16, point 4)."""
import numpy as np
import pytest
import yaml

from tfadv import data
from tfadv.cli.main import main


def _good(n=40, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, size=(n, 32, 32, channels)).astype(np.float32)
    y = np.arange(n) % 10
    return x, y


def _npz(tmp_path, name="data.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return str(path)


def _bad_label():
    x, y = _good()
    y = y.copy()
    y[37] = 12
    return {"x": x, "y": y}, "y has label 12 outside 0..9 at index 37"


def _negative_label():
    x, y = _good()
    y = y.copy()
    y[5] = -1
    return {"x": x, "y": y}, "y has label -1 outside 0.. at index 5"


def _nan_pixel():
    x, y = _good()
    x[21, 3, 4, 1] = np.nan
    return {"x": x, "y": y}, "x has pixel nan (not finite) at index 21"


def _inf_pixel():
    x, y = _good()
    x[2, 0, 0, 0] = np.inf
    return {"x": x, "y": y}, "x has pixel inf (not finite) at index 2"


def _float_out_of_range():
    x, y = _good()
    x[9, 1, 1, 2] = 1.5
    return {"x": x, "y": y}, "x has float pixel 1.5 outside [0, 1] at index 9"


def _images_not_3d():
    x, y = _good()
    return {"x": x[..., None], "y": y}, "x must hold 3-D images [N, H, W, C]; its images are 4-D"


def _length_mismatch():
    x, y = _good()
    return {"x": x, "y": y[:-3]}, "x has 40 images but y has 37 labels"


def _empty_test_split():
    x, y = _good()
    return {"x_train": x, "y_train": y, "x_test": x[:0], "y_test": y[:0]}, "x_test is empty"


CASES = {
    "negative label": (_negative_label, "train"),
    "nan pixel": (_nan_pixel, "train"),
    "inf pixel": (_inf_pixel, "train"),
    "float pixel outside [0, 1]": (_float_out_of_range, "train"),
    "images not 3-D": (_images_not_3d, "train"),
    "x and y lengths differ": (_length_mismatch, "train"),
    "empty split": (_empty_test_split, "test"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_npz_is_refused_naming_file_key_and_value(case, tmp_path):
    make, split = CASES[case]
    arrays, expected = make()
    path = _npz(tmp_path, **arrays)
    with pytest.raises(data.InvalidDataError) as raised:
        data.load_arrays(path, split)
    message = str(raised.value)
    assert message.startswith(path) and expected in message, message
    assert "\n" not in message


def test_good_npz_passes_and_uint8_is_scaled(tmp_path):
    x, y = _good()
    path = _npz(tmp_path, x=(x * 255).astype(np.uint8), y=y)
    loaded_x, loaded_y = data.load_arrays(path, "train")
    assert loaded_x.dtype == np.float32 and 0 <= loaded_x.min() and loaded_x.max() <= 1
    assert set(loaded_y) <= set(range(10))


def test_data_must_fit_the_model():
    x, y = _good(8)
    with pytest.raises(data.InvalidDataError, match=r"images are \(32, 32, 3\) but model 'm' takes "
                                                    r"\(32, 32, 1\) \(channels differ\)"):
        data.check_compatible(x, y, (32, 32, 1), 10, "data.npz", "model 'm'")
    with pytest.raises(data.InvalidDataError, match="y has label 5 outside 0..4 at index 5"):
        data.check_compatible(x, y, (32, 32, 3), 5, "data.npz")
    data.check_compatible(x, y, (None, None, 3), 10, "data.npz")  # unknown sizes match anything


def _write_config(tmp_path, source, **model):
    config = {"name": "run", "output_dir": str(tmp_path / "runs"),
              "model": {"name": "tiny", **model},
              "data": {"source": source, "batch_size": 8, "augment": False},
              "train": {"epochs": 1, "verbose": 0}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_cli_train_exits_2_with_one_line_on_bad_data(tmp_path, capsys):
    arrays, _ = _nan_pixel()
    source = _npz(tmp_path, **arrays)
    assert main(["train", _write_config(tmp_path, source)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert f"{source}: x has pixel nan (not finite) at index 21" in err
    assert not (tmp_path / "runs" / "run" / "checkpoints").exists()


def test_labels_beyond_the_models_classes_are_refused_by_train_and_eval(tmp_path, capsys):
    # The number of classes is the model's: the training split's labels 0..9 build a
    # 10-class model, so a test label 12 is out of range, as it is for a 10-class model in eval.
    x, y = _good()
    arrays, _ = _bad_label()
    source = _npz(tmp_path, x_train=x, y_train=y, x_test=arrays["x"], y_test=arrays["y"])
    assert main(["train", _write_config(tmp_path, source)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert f"{source} (test): y has label 12 outside 0..9 at index 37" in err
    from tfadv import models

    ten_classes = tmp_path / "ten.keras"
    models.build("tiny", num_classes=10).save(ten_classes)
    assert main(["eval", str(ten_classes), "--data", source, "--out", str(tmp_path / "eval")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "y has label 12 outside 0..9 at index 37" in err, err


def test_cli_refuses_a_pretrained_model_whose_input_shape_disagrees(tmp_path, capsys):
    from tfadv import models

    pretrained = tmp_path / "gray.keras"
    models.build("tiny", num_classes=10, input_shape=(32, 32, 1)).save(pretrained)
    x, y = _good()
    source = _npz(tmp_path, x=x, y=y)
    assert main(["train", _write_config(tmp_path, source, init_from=str(pretrained))]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert "images are (32, 32, 3) but model.init_from=" in err and "(channels differ)" in err
    # eval and landscape check the same before any attack or surface.
    assert main(["eval", str(pretrained), "--data", source, "--out", str(tmp_path / "eval")]) == 2
    assert "(channels differ)" in capsys.readouterr().err
    assert main(["landscape", str(pretrained), "--data", source, "--out", str(tmp_path / "ls"),
                 "--dim", "1", "--grid", "-1:1:3", "--no-plots"]) == 2
    assert "(channels differ)" in capsys.readouterr().err
    assert not (tmp_path / "eval" / "eval.json").exists()
