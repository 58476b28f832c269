"""The search's results: one row per trial, as Markdown, JSON and a plot against ε_max."""

from tfadv._files import atomic_write_text, save_figure
from tfadv.records import write_json
from tfadv.tuning.hypermodel import PIXEL_LEVELS
from tfadv.tuning.objectives import CLEAN, ROBUST

# keras-tuner's own bookkeeping hyperparameters (Hyperband's tuner/epochs, ...); the rows
# keep two of them under plain names.
_BOOKKEEPING_PREFIX = "tuner/"
_HYPERBAND_COLUMNS = {"tuner/epochs": "epochs", "tuner/trial_id": "continues_trial"}
COMPLETED = "COMPLETED"  # keras_tuner's TrialStatus.COMPLETED


def _metric(trial, name):
    # The tuner records each metric once per trial, at the trial's best epoch.
    if not trial.metrics.exists(name):
        return None
    return float(trial.metrics.get_last_value(name))


def trial_rows(oracle):
    """One mapping per trial, in the order the trials started.

    Keys: ``trial``, ``status``, ``eps_max_255`` (ε_max in units of 1/255),
    ``eps_max`` (pixel units), the other tuned hyperparameters, ``clean``
    (``val_accuracy``), ``robust`` (``val_robust_accuracy``) and
    ``objective`` (the tuner's score), all at the trial's best epoch, and
    ``best_epoch`` (1-based); metrics are ``None`` for trials that did not
    complete. Hyperband trials also have ``epochs`` (their budget) and
    ``continues_trial`` (the trial whose weights they start from).
    """
    rows = []
    for trial_id in oracle.start_order:
        trial = oracle.trials[trial_id]
        hyperparameters = trial.hyperparameters.values
        values = {k: v for k, v in hyperparameters.items() if not k.startswith(_BOOKKEEPING_PREFIX)}
        values.update({name: hyperparameters[key] for key, name in _HYPERBAND_COLUMNS.items()
                       if key in hyperparameters})
        eps_255 = float(values.pop("eps_max"))
        # Hyperband continues trials from an earlier one's weights at tuner/initial_epoch.
        first_epoch = int(hyperparameters.get("tuner/initial_epoch", 0))
        completed = trial.status == COMPLETED
        rows.append({
            "trial": trial.trial_id,
            "status": trial.status,
            "eps_max_255": eps_255,
            "eps_max": eps_255 / PIXEL_LEVELS,
            **values,
            "clean": _metric(trial, CLEAN) if completed else None,
            "robust": _metric(trial, ROBUST) if completed else None,
            "objective": float(trial.score) if completed and trial.score is not None else None,
            "best_epoch": first_epoch + int(trial.best_step) + 1 if completed else None,
        })
    return rows


def _cell(value):
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def markdown_table(rows, objective_name, best_trial=None):
    """The rows as a Markdown table; the best trial's row is marked with ★."""
    extra = [k for k in dict.fromkeys(k for r in rows for k in r)
             if k not in ("trial", "status", "eps_max_255", "eps_max", "clean", "robust", "objective",
                          "best_epoch")]
    header = (["trial", "ε_max (/255)", "ε_max"] + extra
              + ["clean", "robust", f"objective ({objective_name})", "best epoch", "status"])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        mark = " ★" if row["trial"] == best_trial else ""
        cells = ([row["trial"] + mark, f"{row['eps_max_255']:g}", f"{row['eps_max']:.5f}"]
                 + [_cell(row.get(k)) for k in extra]
                 + [_cell(row[k]) for k in ("clean", "robust", "objective", "best_epoch")] + [row["status"]])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_summary(rows, best, objective_name, robust_eps, markdown_path, json_path, record):
    """Write the table as Markdown and, with ``record`` (config, environment), as JSON.

    ``robust_eps`` is the radius (pixel units) robust accuracy was measured at.
    """
    lines = [
        f"# ε_max search: {len(rows)} trials, objective {objective_name}",
        "",
        f"Best: trial {best['trial']}, ε_max = {best['eps_max_255']:g}/255 ({best['eps_max']:.5f}), "
        f"objective {best['objective']:.4f}.",
        f"clean: validation accuracy; robust: validation accuracy under the method's attack at "
        f"ε = {robust_eps * PIXEL_LEVELS:g}/255 for every trial; both at the trial's best epoch.",
        "",
    ]
    atomic_write_text(markdown_path, "\n".join(lines) + "\n" + markdown_table(rows, objective_name, best["trial"]))
    write_json(json_path, {"objective": objective_name, "robust_eps": robust_eps, "best": best,
                           "trials": rows, **record})


def plot_tradeoff(rows, best, path, robust_eps=None):
    """Clean and robust accuracy of every completed trial against ε_max; the best trial ringed.

    ``robust_eps`` (pixel units), when given, labels the robust curve with its radius.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = sorted((r for r in rows if r["clean"] is not None), key=lambda r: r["eps_max_255"])
    eps = [r["eps_max_255"] for r in done]
    figure, axes = plt.subplots(figsize=(5.5, 4))
    axes.plot(eps, [r["clean"] for r in done], "o-", label="clean accuracy")
    robust_label = "robust accuracy" + (f" (ε = {robust_eps * PIXEL_LEVELS:g}/255)" if robust_eps else "")
    axes.plot(eps, [r["robust"] for r in done], "s-", label=robust_label)
    for name in ("clean", "robust"):
        axes.plot([best["eps_max_255"]], [best[name]], "o", markersize=14, markerfacecolor="none",
                  markeredgecolor="black", label="best trial" if name == "clean" else None)
    axes.set_xlabel("ε_max (× 1/255)")
    axes.set_ylabel("validation accuracy")
    axes.set_title(f"ε_max search (best: {best['eps_max_255']:g}/255)")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    save_figure(figure, path, dpi=120)
    plt.close(figure)
    return path
