"""Figures of an evaluation, as PNG (matplotlib's Agg backend: no display needed).

- :func:`plot_accuracy_vs_eps` — accuracy under the ε sweep, one line per model.
- :func:`plot_tradeoff` — robust against clean accuracy of conditioned
  models, one labelled point per masking strength p.
- :func:`plot_image_grid` — clean, adversarial and amplified-difference
  images of the first examples of one attack.
"""

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
