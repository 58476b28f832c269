"""Filter-normalized loss landscapes, adversarial loss surfaces and sharpness.

* :mod:`~tfadv.landscape.directions` — random (filter / layer normalized),
  interpolation and PCA directions; save and load in h5.
* :mod:`~tfadv.landscape.surface` — the compiled, resumable grid sweep.
* :mod:`~tfadv.landscape.plots` and :mod:`~tfadv.landscape.vtk` — figures
  and ParaView export.
* :mod:`~tfadv.landscape.hessian` — top Hessian eigenvalues and trace.
* :func:`run_landscape` — all of it for one model, as ``tfadv landscape`` runs it.

Reference:
    Li, Xu, Taylor, Studer, Goldstein. "Visualizing the Loss Landscape of
    Neural Nets", NeurIPS 2018.
"""
from tfadv.landscape.directions import (
    Directions,
    interpolation_directions,
    landscape_variables,
    load_directions,
    normalize_direction,
    pca_directions,
    random_directions,
    save_directions,
)
from tfadv.landscape.hessian import (
    HessianVectorProduct,
    hutchinson_trace,
    sharpness,
    sharpness_table,
    top_eigenvalues,
)
from tfadv.landscape.plots import compare_figure, plot_1d, plot_2d, plot_surface
from tfadv.landscape.run import run_landscape
from tfadv.landscape.surface import (
    SurfaceEvaluator,
    parse_grid,
    read_surface,
    sweep_surface,
)
from tfadv.landscape.vtk import write_vtp

__all__ = [
    "Directions", "HessianVectorProduct", "SurfaceEvaluator", "compare_figure",
    "hutchinson_trace", "interpolation_directions", "landscape_variables", "load_directions",
    "normalize_direction", "parse_grid", "pca_directions", "plot_1d", "plot_2d", "plot_surface",
    "random_directions", "read_surface", "run_landscape", "save_directions", "sharpness",
    "sharpness_table", "sweep_surface", "top_eigenvalues", "write_vtp",
]
