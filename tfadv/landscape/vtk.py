"""Export a 2-D surface to VTK PolyData (``.vtp``, ASCII XML) for ParaView.

The grid becomes points (α, β, z) joined by one quadrilateral per grid cell;
z is also attached as point data (``zvalue``) and the mean of each cell's
four corners as cell data (``averaged zvalue``), the layout of the reference
tool's ``h52vtp.py``. ParaView renders such a file as the smooth 3-D
landscapes of Li et al.'s figures.
"""
import numpy as np

from tfadv._files import atomic_path

from tfadv.landscape.surface import read_surface


def _data_array(name, values, components=1, dtype="Float32"):
    values = np.asarray(values).ravel()
    text = " ".join(repr(float(v)) if dtype == "Float32" else str(int(v)) for v in values)
    low = values.min() if values.size else 0
    high = values.max() if values.size else 0
    return (f'        <DataArray type="{dtype}" Name="{name}" NumberOfComponents="{components}" '
            f'format="ascii" RangeMin="{low}" RangeMax="{high}">\n          {text}\n'
            f"        </DataArray>\n")


def write_vtp(surface_path, out_path, key="loss", zmax=None, log=False):
    """Write a 2-D surface as VTK PolyData.

    Args:
        surface_path: a complete 2-D surface h5 file.
        out_path: the ``.vtp`` file to write.
        key: ``"loss"`` or ``"acc"``.
        zmax: cap z at this value (the edges of a loss surface dwarf its
            minimum otherwise).
        log: draw log(z + 0.1) instead of z.

    Returns:
        ``out_path``.
    """
    surface = read_surface(surface_path)
    if surface["y"] is None:
        raise ValueError(f"write_vtp needs a 2-D surface. Received: surface_path={surface_path!r} (1-D)")
    if key not in ("loss", "acc"):
        raise ValueError(f"key must be 'loss' or 'acc'. Received: key={key!r}")
    z = np.asarray(surface[key], np.float64)
    if np.isnan(z).any():
        raise ValueError(
            f"the surface is unfinished ({int(np.isnan(z).sum())} NaN points); finish the sweep "
            f"first. Received: surface_path={surface_path!r}"
        )
    if zmax is not None:
        z = np.minimum(z, zmax)
    if log:
        z = np.log(z + 0.1)
    ny, nx = z.shape
    X, Y = np.meshgrid(surface["x"], surface["y"])
    points = np.stack([X.ravel(), Y.ravel(), z.ravel()], axis=1)
    # Point (i, j) has index j * nx + i; a cell joins its four corners counter-clockwise.
    corner = (np.arange(ny - 1)[:, None] * nx + np.arange(nx - 1)[None, :]).ravel()
    quads = np.stack([corner, corner + 1, corner + nx + 1, corner + nx], axis=1)
    cell_means = z.ravel()[quads].mean(axis=1)
    offsets = 4 * np.arange(1, len(quads) + 1)
    with atomic_path(out_path) as temporary, open(temporary, "w") as f:
        f.write('<?xml version="1.0"?>\n')
        f.write('<VTKFile type="PolyData" version="1.0" byte_order="LittleEndian" header_type="UInt64">\n')
        f.write("  <PolyData>\n")
        f.write(f'    <Piece NumberOfPoints="{len(points)}" NumberOfVerts="0" NumberOfLines="0" '
                f'NumberOfStrips="0" NumberOfPolys="{len(quads)}">\n')
        f.write("      <PointData>\n" + _data_array("zvalue", z) + "      </PointData>\n")
        f.write("      <CellData>\n" + _data_array("averaged zvalue", cell_means) + "      </CellData>\n")
        f.write("      <Points>\n" + _data_array("Points", points, components=3) + "      </Points>\n")
        f.write("      <Polys>\n")
        f.write(_data_array("connectivity", quads, dtype="Int64"))
        f.write(_data_array("offsets", offsets, dtype="Int64"))
        f.write("      </Polys>\n")
        f.write("    </Piece>\n  </PolyData>\n</VTKFile>\n")
    return out_path
