"""Figures of an evaluation, as PNG (matplotlib's Agg backend: no display needed).

- :func:`plot_accuracy_vs_eps` — accuracy under the ε sweep, one line per model.
- :func:`plot_tradeoff` — robust against clean accuracy of conditioned
  models, one labelled point per masking strength p.
- :func:`plot_image_grid` — clean, adversarial and amplified-difference
  images of the first examples of one attack.
- :func:`plot_perturbation_rows` / :func:`plot_perturbations` — one figure
  for all attacks: a row per attack, for each example its clean image, the
  adversarial image and the amplified difference side by side.
"""
import os

import numpy as np

from tfadv._files import save_figure

from tfadv.evaluation.results import part_id


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_accuracy_vs_eps(results, path):
    """Accuracy (%) against ε·255 for every model with sweep results; returns ``path`` or ``None``."""
    plan = results.get("plan") or {}
    sweep_ids, epsilons = plan.get("sweep", []), plan.get("sweep_eps", [])
    if not sweep_ids:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(5, 3.6))
    for name, record in results.get("models", {}).items():
        p = plan.get("p", 0.0) if record.get("conditioned") else None
        points = [
            (eps * 255, 100 * record["parts"][part_id(i, p)]["accuracy"])
            for i, eps in zip(sweep_ids, epsilons)
            if part_id(i, p) in record.get("parts", {})
        ]
        if points:
            axes.plot(*zip(*points), marker="o", label=name)
    axes.set_xlabel("ε (× 1/255)")
    axes.set_ylabel("accuracy (%)")
    axes.set_title(plan.get("sweep_label") or "accuracy vs ε")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    save_figure(figure, path, dpi=120)
    plt.close(figure)
    return path


def plot_tradeoff(results, path):
    """Robust against clean accuracy (%) over the p grid of each conditioned model; ``None`` if none."""
    plan = results.get("plan") or {}
    attack_id, grid = plan.get("tradeoff_attack"), plan.get("p_grid") or []
    curves = {}
    for name, record in results.get("models", {}).items():
        if not record.get("conditioned") or attack_id is None:
            continue
        parts = [(p, record.get("parts", {}).get(part_id(attack_id, p))) for p in grid]
        curves[name] = [(p, part["clean_accuracy"], part["accuracy"]) for p, part in parts if part]
    if not any(curves.values()):
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(5, 3.6))
    for name, points in curves.items():
        ps, clean, robust = zip(*points)
        axes.plot(100 * np.array(clean), 100 * np.array(robust), marker="o", label=name)
        for p, c, r in points:
            axes.annotate(f"p={p:g}", (100 * c, 100 * r), textcoords="offset points", xytext=(4, 4), fontsize=8)
    label = next(
        (part["label"] for record in results["models"].values() for part in record.get("parts", {}).values()
         if part.get("attack_id") == attack_id),
        "attack",
    )
    axes.set_xlabel("clean accuracy (%)")
    axes.set_ylabel(f"robust accuracy (%), {label}")
    axes.set_title("trade-off over the masking strength p")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    save_figure(figure, path, dpi=120)
    plt.close(figure)
    return path


def amplified_difference(x, x_adv):
    """``0.5 + (x_adv − x) / (2 max|x_adv − x|)``: the perturbation stretched to fill [0, 1], grey = 0."""
    difference = np.asarray(x_adv, np.float32) - np.asarray(x, np.float32)
    largest = np.max(np.abs(difference))
    return np.full_like(difference, 0.5) if largest == 0 else 0.5 + difference / (2 * largest)


def plot_image_grid(x, x_adv, path, title="", labels=None, predictions=None):
    """Rows: clean images, adversarial images, amplified differences; one column per example.

    Args:
        x, x_adv: ``[N, H, W, C]`` in [0, 1].
        path: the PNG to write.
        title: the figure title (the attack).
        labels, predictions: optional ``[N]`` true labels and adversarial
            predictions, shown above the adversarial images.
    """
    plt = _pyplot()
    x, x_adv = np.asarray(x), np.asarray(x_adv)
    count = len(x)
    rows = {"clean": x, "adversarial": x_adv, "difference (amplified)": amplified_difference(x, x_adv)}
    figure, axes = plt.subplots(3, count, figsize=(1.4 * count + 0.8, 4.6), squeeze=False)
    for row, (name, images) in enumerate(rows.items()):
        for column in range(count):
            image = np.clip(images[column], 0, 1)
            ax = axes[row, column]
            ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray" if image.shape[-1] == 1 else None,
                      vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if column == 0:
                ax.set_ylabel(name, fontsize=8)
            if row == 1 and labels is not None and predictions is not None:
                ax.set_title(f"{labels[column]}→{predictions[column]}", fontsize=8)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    save_figure(figure, path, dpi=100)
    plt.close(figure)
    return path


def plot_perturbation_rows(rows, path, title=""):
    """One PNG of example perturbations: a row per attack, three panels per example.

    For every example the panels are the clean image, the adversarial image
    (titled ``true→predicted``) and the difference amplified per image (see
    :func:`amplified_difference`; grey is no change).

    Args:
        rows: ``[(attack label, x, x_adv, labels, predictions)]``; ``x`` and
            ``x_adv`` are ``[N, H, W, C]`` in [0, 1], the same N in every row;
            ``labels`` and ``predictions`` may be ``None``.
        path: the PNG to write.
        title: the figure title.
    """
    if not rows:
        raise ValueError("rows must name at least one attack. Received: rows=[]")
    count = len(rows[0][1])
    if any(len(x) != count or len(x_adv) != count for _, x, x_adv, _, _ in rows):
        raise ValueError(f"every row needs the same number of examples. Received: "
                         f"{[(label, len(x), len(x_adv)) for label, x, x_adv, _, _ in rows]}")
    plt = _pyplot()
    kinds = ("clean", "adversarial", "difference")
    figure, axes = plt.subplots(len(rows), 3 * count, figsize=(1.05 * 3 * count + 1.2, 1.25 * len(rows) + 0.7),
                                squeeze=False, gridspec_kw={"wspace": 0.06, "hspace": 0.35})
    for row, (label, x, x_adv, labels, predictions) in enumerate(rows):
        for example in range(count):
            clean, adversarial = np.asarray(x[example]), np.asarray(x_adv[example])
            panels = (clean, adversarial, amplified_difference(clean, adversarial))
            for offset, (kind, image) in enumerate(zip(kinds, panels)):
                ax = axes[row, 3 * example + offset]
                image = np.clip(image, 0, 1)
                gray = image.shape[-1] == 1
                ax.imshow(image[..., 0] if gray else image, cmap="gray" if gray else None, vmin=0, vmax=1)
                ax.set_xticks([])
                ax.set_yticks([])
                if kind == "adversarial" and labels is not None and predictions is not None:
                    changed = labels[example] != predictions[example]
                    prefix = "adversarial " if row == 0 else ""
                    ax.set_title(f"{prefix}{labels[example]}→{predictions[example]}", fontsize=7,
                                 color="tab:red" if changed else "black")
                elif row == 0:
                    ax.set_title(kind, fontsize=7)
            if example == 0:
                axes[row, 0].set_ylabel(label, fontsize=8)
    if title:
        figure.suptitle(title, fontsize=10)
    save_figure(figure, path, dpi=100, bbox_inches="tight")
    plt.close(figure)
    return path


def plot_perturbations(results, out_dir, model_name, path, examples=4):
    """The composite perturbation figure of ``model_name`` under every planned attack of an evaluation.

    Reads the image samples :func:`tfadv.evaluation.evaluate` stored in
    ``out_dir`` (its ``grid_examples``); returns ``path``, or ``None`` when
    no attack of the plan has samples for this model.
    """
    record = results.get("models", {}).get(model_name)
    if record is None:
        raise ValueError(f"model_name must be one of the evaluated models {list(results.get('models', {}))}. "
                         f"Received: model_name={model_name!r}")
    p = (results.get("plan") or {}).get("p", 0.0) if record.get("conditioned") else None
    rows = []
    for attack_id in (results.get("plan") or {}).get("attacks", []):
        part = record.get("parts", {}).get(part_id(attack_id, p))
        if not part or "samples" not in part or not os.path.exists(os.path.join(out_dir, part["samples"])):
            continue
        with np.load(os.path.join(out_dir, part["samples"])) as samples:
            rows.append((part["label"], samples["x"][:examples], samples["x_adv"][:examples],
                         samples["y"][:examples], samples["predictions"][:examples]))
    if not rows:
        return None
    count = min(len(row[1]) for row in rows)
    rows = [(label, x[:count], x_adv[:count], y[:count], pred[:count]) for label, x, x_adv, y, pred in rows]
    return plot_perturbation_rows(rows, path, title=f"{model_name}: example perturbations per attack")
