"""Figures, VTK export and run_landscape end to end."""
import json
import xml.etree.ElementTree as ElementTree

import h5py
import numpy as np
import pytest

from tfadv.landscape import compare_figure, plot_surface, read_surface, run_landscape, write_vtp
from tfadv.landscape.plots import shared_levels
from tfadv.models import build


def write_surface(path, x, y, loss, acc=None):
    """A surface file as sweep_surface writes it, with chosen values."""
    with h5py.File(path, "w") as f:
        f["xcoordinates"] = x
        if y is not None:
            f["ycoordinates"] = y
        f["train_loss"] = loss
        f["train_acc"] = np.full(np.shape(loss), 0.5) if acc is None else acc
        f.attrs["settings"] = json.dumps({"split": "train"})
    return path


def bowl(scale, nx=5, ny=4):
    x, y = np.linspace(-1, 1, nx), np.linspace(-1, 1, ny)
    X, Y = np.meshgrid(x, y)
    return x, y, scale * (X**2 + 2 * Y**2) + 0.1


def test_plot_surface_writes_every_figure(tmp_path):
    x, y, z = bowl(1.0)
    path = write_surface(tmp_path / "s.h5", x, y, z)
    written = plot_surface(path, tmp_path / "plots")
    names = sorted(p.rsplit("/", 1)[-1] for p in map(str, written))
    assert names == ["acc_2dcontourf.png", "loss_2dcontour.png", "loss_2dcontourf.png",
                     "loss_2dheat.png", "loss_3dsurface.png"]
    for p in written:
        with open(p, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    line = write_surface(tmp_path / "line.h5", x, None, x**2)
    assert [str(p).rsplit("/", 1)[-1] for p in plot_surface(line, tmp_path / "p1")] == ["loss_acc_1d.png"]


def test_shared_levels_cover_all_surfaces_and_respect_vmax():
    flat, sharp = bowl(0.5)[2], bowl(4.0)[2]
    sharp[0, 0] = np.nan  # unfinished points are ignored
    levels = shared_levels([flat, sharp])
    assert levels[0] <= 0.1 and levels[-1] >= np.nanmax(sharp)
    capped = shared_levels([flat, sharp], vmax=2.0)
    assert capped[-1] <= 2.0 + (capped[1] - capped[0])


def test_compare_figure_side_by_side(tmp_path):
    paths = [write_surface(tmp_path / f"{s}.h5", *bowl(s)) for s in (0.5, 4.0)]
    out = compare_figure(paths, ["flat", "sharp"], tmp_path / "compare.png")
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    lines = [write_surface(tmp_path / f"l{s}.h5", bowl(s)[0], None, bowl(s)[2][0]) for s in (1, 2)]
    compare_figure(lines, ["a", "b"], tmp_path / "lines.png")
    with pytest.raises(ValueError, match="one name per surface"):
        compare_figure(paths, ["only one"], tmp_path / "x.png")
    with pytest.raises(ValueError, match="one dimension"):
        compare_figure([paths[0], lines[0]], ["a", "b"], tmp_path / "x.png")


def test_vtp_export_has_the_grid_points_and_quads(tmp_path):
    x, y, z = bowl(1.0, nx=4, ny=3)
    path = write_surface(tmp_path / "s.h5", x, y, z)
    root = ElementTree.parse(write_vtp(path, tmp_path / "s.vtp")).getroot()
    piece = root.find("PolyData/Piece")
    assert root.get("type") == "PolyData"
    assert piece.get("NumberOfPoints") == "12" and piece.get("NumberOfPolys") == "6"

    def array(parent, name):
        node = next(a for a in piece.find(parent) if a.get("Name") == name)
        return np.array(node.text.split(), dtype=float)

    points = array("Points", "Points").reshape(-1, 3)
    X, Y = np.meshgrid(x, y)
    np.testing.assert_allclose(points, np.stack([X.ravel(), Y.ravel(), z.ravel()], 1))
    quads = array("Polys", "connectivity").reshape(-1, 4).astype(int)
    np.testing.assert_array_equal(quads[0], [0, 1, 5, 4])  # (0,0) (1,0) (1,1) (0,1)
    np.testing.assert_array_equal(array("Polys", "offsets"), 4 * np.arange(1, 7))
    np.testing.assert_allclose(array("CellData", "averaged zvalue")[0], z[:2, :2].mean())

    z[1, 1] = np.nan
    unfinished = write_surface(tmp_path / "u.h5", x, y, z)
    with pytest.raises(ValueError, match="unfinished"):
        write_vtp(unfinished, tmp_path / "u.vtp")


def test_run_landscape_writes_everything_and_resumes(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(12, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 10, size=(12,)).astype("int64")
    model = build("tiny", input_shape=(8, 8, 3))
    options = dict(grid="-1:1:3", examples=10, batch_size=5, hessian_top_k=1, hutchinson_samples=2,
                   hessian_examples=6, hessian_max_iterations=5, progress=False)
    partial = run_landscape(model, x, y, tmp_path, "tiny", max_points=4, **options)
    assert not partial["complete"] and partial["plots"] == [] and partial["sharpness"] is None
    result = run_landscape(model, x, y, tmp_path, "tiny", **options)
    assert result["complete"] and result["computed"] == 5
    for key in ("directions", "surface", "settings", "vtp", "sharpness_json", "sharpness_md"):
        assert (tmp_path / "tiny" / result[key].rsplit("/", 1)[-1]).exists(), key
    assert len(result["plots"]) == 5
    stored = json.loads((tmp_path / "tiny" / "sharpness.json").read_text())
    assert stored["top_eigenvalues"] == result["sharpness"]["top_eigenvalues"]
    assert stored["examples"] == 6 and np.isfinite(stored["trace"])
    settings = json.loads((tmp_path / "tiny" / "settings.json").read_text())
    assert settings["examples"] == 10 and settings["directions"]["norm"] == "filter"
    assert read_surface(result["surface"])["loss"].shape == (3, 3)

    again = run_landscape(model, x, y, tmp_path, "tiny", **options)
    assert again["computed"] == 0 and again["sharpness"] == stored
    with pytest.raises(ValueError, match="directions made with other settings"):
        run_landscape(model, x, y, tmp_path, "tiny", **{**options, "seed": 1})
    with pytest.raises(ValueError, match="examples must be in"):
        run_landscape(model, x, y, tmp_path, "tiny", **{**options, "examples": 13})
