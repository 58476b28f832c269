"""Landscapes sharded over processes: shard files, their merge, and the refusals."""
import json
import os

import h5py
import numpy as np
import pytest

from tfadv.landscape import run as run_module
from tfadv.landscape import run_landscape
from tfadv.landscape.shards import merge_surface_shards, parse_shard, shard_file_name, shard_points
from tfadv.models import build

SETTINGS = dict(dim=2, grid="-1:1:3", ygrid="-0.5:0.5:3", examples=None, batch_size=5,
                hessian_top_k=0, hutchinson_samples=0, plots=False, progress=False)


@pytest.fixture
def setup():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(13, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 10, size=(13,)).astype("int64")
    return build("tiny", input_shape=(8, 8, 3)), x, y


def _arrays(path):
    with h5py.File(path, "r") as f:
        return f["train_loss"][()], f["train_acc"][()]


@pytest.mark.parametrize("text, expected", [("0/3", (0, 3)), ("2/3", (2, 3)), ("0/1", (0, 1))])
def test_parse_shard(text, expected):
    assert parse_shard(text) == expected


@pytest.mark.parametrize("text", ["3/3", "-1/3", "1", "a/b", "1/0", ""])
def test_parse_shard_rejects_bad_text(text):
    with pytest.raises(ValueError, match="shard must look like I/N.*Received: shard="):
        parse_shard(text)


def test_shard_points_partition_the_grid():
    points = [shard_points((3, 5), i, 4) for i in range(4)]
    assert sorted(np.concatenate(points).tolist()) == list(range(15))
    np.testing.assert_array_equal(points[1], [1, 5, 9, 13])


def test_three_shards_merged_equal_the_unsharded_surface_bit_for_bit(tmp_path, setup):
    model, x, y = setup
    whole = run_landscape(model, x, y, tmp_path / "whole", name="m", **SETTINGS)
    assert whole["complete"]
    for index in range(3):
        part = run_landscape(model, x, y, tmp_path / "sharded", name="m", shard=(index, 3), **SETTINGS)
        assert part["complete"] and part["surface"].endswith(shard_file_name(index, 3))
        loss, _ = _arrays(part["surface"])  # its own points only, NaN elsewhere
        mine = np.zeros(9, bool)
        mine[shard_points((3, 3), index, 3)] = True
        assert np.isfinite(loss.ravel()[mine]).all() and np.isnan(loss.ravel()[~mine]).all()
    assert not os.path.exists(tmp_path / "sharded" / "m" / "surface.h5")
    merged = merge_surface_shards(tmp_path / "sharded" / "m")
    for expected, got in zip(_arrays(whole["surface"]), _arrays(merged)):
        assert expected.tobytes() == got.tobytes()
    with h5py.File(whole["surface"], "r") as a, h5py.File(merged, "r") as b:
        assert json.loads(a.attrs["settings"]) == json.loads(b.attrs["settings"])
    # The merged file is the usual surface: an unsharded run finds it complete and computes nothing.
    again = run_landscape(model, x, y, tmp_path / "sharded", name="m", **SETTINGS)
    assert again["complete"] and again["computed"] == 0


def test_incomplete_missing_and_mismatched_shards_are_refused(tmp_path, setup):
    model, x, y = setup
    folder = tmp_path / "out" / "m"
    run_landscape(model, x, y, tmp_path / "out", name="m", shard=(0, 3), **SETTINGS)
    with pytest.raises(ValueError, match="missing shard file.*surface.shard-1-of-3.h5"):
        merge_surface_shards(folder)
    partial = run_landscape(model, x, y, tmp_path / "out", name="m", shard=(1, 3), max_points=1, **SETTINGS)
    assert not partial["complete"]
    run_landscape(model, x, y, tmp_path / "out", name="m", shard=(2, 3), **SETTINGS)
    with pytest.raises(ValueError, match=r"surface.shard-1-of-3.h5 .* is incomplete \(1 of 3 points\)"):
        merge_surface_shards(folder)
    run_landscape(model, x, y, tmp_path / "out", name="m", shard=(1, 3), **SETTINGS)
    # Shard 2 made on other examples (same directions): the data fingerprint differs.
    run_landscape(model, x[:12], y[:12], tmp_path / "other", name="m", shard=(2, 3), **SETTINGS)
    os.replace(tmp_path / "other" / "m" / shard_file_name(2, 3), folder / shard_file_name(2, 3))
    with pytest.raises(ValueError, match=r"surface.shard-2-of-3.h5 .* other settings .*data_sha256"):
        merge_surface_shards(folder)
    assert not os.path.exists(folder / "surface.h5")


def test_a_shard_that_finds_directions_made_by_another_uses_them(tmp_path, setup, monkeypatch):
    """Two shards start at once: the one that links directions.h5 first wins, the other loads it."""
    model, x, y = setup
    folder = tmp_path / "m"
    folder.mkdir()
    path = str(folder / "directions.h5")
    winner = run_module._make_directions(model, run_module._direction_request(
        2, "filter", "biasbn", "weights", 0, False, None, None), None, None)
    make = run_module._make_directions

    def slower_than_the_other_shard(*args):
        from tfadv.landscape.directions import save_directions

        save_directions(winner, path)  # the other process finished first
        loser = make(*args)
        loser.x = [part + 1.0 for part in loser.x]  # values that must not be used
        return loser

    monkeypatch.setattr(run_module, "_make_directions", slower_than_the_other_shard)
    request = run_module._direction_request(2, "filter", "biasbn", "weights", 0, False, None, None)
    used = run_module._load_or_make_directions(path, model, request, None, None)
    assert used.fingerprint() == winner.fingerprint()
    assert sorted(os.listdir(folder)) == ["directions.h5"]  # no temporary file left


def test_cli_shards_and_merge_give_the_unsharded_surface_plots_and_sharpness(tmp_path, monkeypatch):
    from tfadv.cli.main import main

    for variable in ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN",
                     "SLURM_ARRAY_TASK_STEP", "JOB_COMPLETION_INDEX"):
        monkeypatch.delenv(variable, raising=False)
    # Shard 0 as task 1 of a Slurm array 1-2, shard 1 as pod 1 of a Kubernetes Indexed Job.
    schedulers = [({"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "2"},
                   "auto"), ({"JOB_COMPLETION_INDEX": "1"}, "auto/2")]

    model = build("tiny", input_shape=(32, 32, 3))
    model_path = str(tmp_path / "tiny.keras")
    model.save(model_path)
    common = ["--grid", "-1:1:3", "--examples", "24", "--batch-size", "8", "--hessian-top-k", "1",
              "--hutchinson-samples", "0", "--data", "digits"]
    assert main(["landscape", model_path, "--out", str(tmp_path / "whole"), *common]) == 0
    for environ, shard in schedulers:
        with monkeypatch.context() as scheduler:
            for variable, value in environ.items():
                scheduler.setenv(variable, value)
            assert main(["landscape", model_path, "--out", str(tmp_path / "sharded"), "--shard", shard,
                         *common]) == 0
    folder = tmp_path / "sharded" / "tiny"
    assert not (folder / "sharpness.json").exists() and not (folder / "loss_2dcontour.png").exists()
    assert main(["landscape", "merge", str(folder)]) == 0
    for expected, got in zip(_arrays(tmp_path / "whole" / "tiny" / "surface.h5"), _arrays(folder / "surface.h5")):
        assert expected.tobytes() == got.tobytes()
    assert (folder / "loss_2dcontour.png").exists()
    whole_sharpness = json.loads((tmp_path / "whole" / "tiny" / "sharpness.json").read_text())
    merged_sharpness = json.loads((folder / "sharpness.json").read_text())
    assert merged_sharpness["top_eigenvalues"] == whole_sharpness["top_eigenvalues"]
    os.remove(folder / shard_file_name(1, 2))
    assert main(["landscape", "merge", str(folder)]) == 2  # one line on stderr, exit code 2
    assert main(["landscape", model_path, "--out", str(tmp_path / "x"), "--shard", "auto", *common]) == 2
