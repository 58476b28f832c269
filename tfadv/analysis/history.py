"""Training curves of several runs on one plot (paper 2's Figure 3).

Every ``tfadv train`` run writes ``history.csv`` with one row per finished
epoch; :func:`plot_histories` draws one metric of several runs against the
epoch, as paper 2's Figure 3 compares the validation accuracy of BN, AdvProp
and RobMask during training.
"""

import csv
import os

from tfadv._files import save_figure


def read_history(run):
    """``{column: [float, ...]}`` from a run folder's ``history.csv`` (or the file itself)."""
    path = os.path.join(run, "history.csv") if os.path.isdir(run) else run
    if not os.path.isfile(path):
        raise ValueError(f"No history.csv in the run. Received: run={run!r}")
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise ValueError(f"history.csv has no finished epoch yet. Received: path={path!r}")
    columns = {}
    for name in rows[0]:
        try:
            columns[name] = [float(row[name]) for row in rows]
        except (TypeError, ValueError):
            continue  # a text column
    if "epoch" not in columns:
        columns["epoch"] = [float(i) for i in range(len(rows))]
    return columns


def plot_histories(runs, path, metric="val_accuracy", labels=None, title=None):
    """Plot ``metric`` per epoch of every run in ``runs`` into ``path`` (PNG).

    Epochs are drawn 1-based (the first finished epoch is 1). Returns the
    curves ``{label: (epochs, values)}`` that were drawn.

    Raises:
        ValueError: naming the run and the columns it has when ``metric`` is missing.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(labels) if labels else [os.path.basename(os.path.normpath(run)) for run in runs]
    if len(labels) != len(runs):
        raise ValueError(f"Give one label per run. Received: {len(labels)} labels for {len(runs)} runs")
    curves = {}
    for run, label in zip(runs, labels):
        history = read_history(run)
        if metric not in history:
            raise ValueError(f"Run {run!r} has no column {metric!r}. Columns: {sorted(history)}")
        epochs = [epoch + 1 for epoch in history["epoch"]]
        curves[label] = (epochs, history[metric])
    figure, axis = plt.subplots(figsize=(6.5, 4))
    for label, (epochs, values) in curves.items():
        axis.plot(epochs, values, marker="o", markersize=3, label=label)
    axis.set_xlabel("epoch")
    axis.set_ylabel(metric)
    axis.grid(alpha=0.3)
    axis.legend()
    if title:
        axis.set_title(title)
    figure.tight_layout()
    save_figure(figure, path, dpi=120)
    plt.close(figure)
    return curves
