"""The papers' tables, built from evaluation results alone (so ``eval.json`` reproduces them).

- :func:`accuracy_table` — the loss-landscape paper's Table 1 layout: clean
  top-1 accuracy and accuracy under each attack, one row per model, plus the
  per-example worst case over the attacks.
- :func:`ssim_table` — its Table 2: mean 1 − SSIM between adversarial and
  clean images per attack, each column naming its population: the test
  images whose prediction the attack changed, and all test images, under
  the plan's SSIM convention.
- :func:`stored_set_table` — Table 2 on the population the paper's rows
  name ("Data Augmented with"): the stored training set of each offline
  fine-tuning run, every image against its stored adversarial version.
- :func:`sweep_table` — the layout of Table 5 of the second paper:
  accuracy under L∞ PGD for each ε of the sweep.
- :func:`tradeoff_tables` — clean and robust accuracy over the masking
  strength p of conditioned models.
- :func:`robustness_table` — Table 6 of the second paper: accuracy under
  AutoAttack, one row per model, one column per ε (PGD over ε is Table 5,
  :func:`sweep_table`).

Every function returns :class:`Table` objects holding raw numbers (fractions
and distances); :func:`format_report` renders them as the ``eval.md``
Markdown.
"""

import dataclasses
from typing import List

from tfadv.attacks.spec import format_eps
from tfadv.evaluation.results import part_id
from tfadv.records import VERSION_KEYS, revision_label

MISSING = "–"


@dataclasses.dataclass
class Table:
    """A titled table: ``rows[i][0]`` names the row, the other cells are numbers or ``None``.

    ``kind`` says how numbers read: ``"accuracy"`` (fractions, shown as
    percentages with two decimals) or ``"distance"`` (shown with 4 decimals).
    """

    title: str
    header: List[str]
    rows: List[list]
    kind: str = "accuracy"

    def markdown(self):
        def cell(value):
            if value is None:
                return MISSING
            if isinstance(value, str):
                return value
            return f"{100 * value:.2f}" if self.kind == "accuracy" else f"{value:.4f}"

        lines = [
            f"### {self.title}",
            "",
            "| " + " | ".join(self.header) + " |",
            "|" + "|".join([" --- "] + [" ---: "] * (len(self.header) - 1)) + "|",
        ]
        lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in self.rows]
        return "\n".join(lines)


def _plan(results):
    return results.get("plan") or {}


def _model_p(results, record):
    return _plan(results).get("p", 0.0) if record.get("conditioned") else None


def _row_name(name, record, p):
    return f"{name} (p={p:g})" if record.get("conditioned") else name


def _part(record, attack_id, p):
    return record.get("parts", {}).get(part_id(attack_id, p))


def _value(record, attack_id, p, key):
    part = _part(record, attack_id, p)
    return None if part is None else part.get(key)


def _labels(results, ids):
    """Column headers of attack ids, from any stored part that ran them."""
    labels = {}
    for record in results.get("models", {}).values():
        for part in record.get("parts", {}).values():
            if part.get("attack_id") in ids:
                labels[part["attack_id"]] = part["label"]
    return [labels.get(attack_id, attack_id) for attack_id in ids]


def accuracy_table(results):
    """Clean accuracy, accuracy under each planned attack and the worst case, per model."""
    attack_ids = _plan(results).get("attacks", [])
    header = ["Model", "Clean"] + _labels(results, attack_ids)
    if attack_ids:
        header.append("Worst case")
    rows = []
    for name, record in results.get("models", {}).items():
        p = _model_p(results, record)
        row = [_row_name(name, record, p), _value(record, None, p, "accuracy")]
        row += [_value(record, attack_id, p, "accuracy") for attack_id in attack_ids]
        if attack_ids:
            worst = record.get("worst_case")
            row.append(None if worst is None else worst["accuracy"])
        rows.append(row)
    return Table("Top-1 accuracy (%) under attack — paper 1, Table 1 layout", header, rows)


def _ssim_value(record, attack_id, p, convention, population):
    """1 − SSIM of a part under ``convention`` over ``population`` (``flipped`` or ``all``)."""
    part = _part(record, attack_id, p)
    if part is None:
        return None
    by_convention = part.get("ssim_distances")
    if by_convention is not None:
        return (by_convention.get(convention) or {}).get(population)
    # Results written before conventions were stored hold the default convention only.
    return part.get(f"ssim_distance_{population}") if convention == "gaussian" else None


def ssim_table(results):
    """Mean 1 − SSIM per planned attack, each column naming the images it averages.

    Two columns per attack: ``test, flipped`` (the test images whose
    prediction the attack changed) and ``test, all``. Values use the plan's
    ``ssim_convention`` (named in the title). The stored training sets of
    fine-tuning runs are in :func:`stored_set_table`.
    """
    attack_ids = _plan(results).get("attacks", [])
    if not attack_ids:
        return None
    convention = _plan(results).get("ssim_convention") or "gaussian"
    header = ["Model"]
    for label in _labels(results, attack_ids):
        header += [f"{label} (test, flipped)", f"{label} (test, all)"]
    rows = []
    for name, record in results.get("models", {}).items():
        p = _model_p(results, record)
        row = [_row_name(name, record, p)]
        for attack_id in attack_ids:
            row += [_ssim_value(record, attack_id, p, convention, "flipped"),
                    _ssim_value(record, attack_id, p, convention, "all")]
        rows.append(row)
    title = (f"Mean 1 − SSIM(adversarial, clean) on the test set, SSIM convention {convention!r} — "
             "paper 1, Table 2 layout (test, flipped: the test images whose prediction the attack changed; "
             "test, all: every test image)")
    return Table(title, header, rows, kind="distance")


def stored_set_table(results):
    """Mean 1 − SSIM of each fine-tuning run's stored training set; ``None`` if no model has one.

    The loss-landscape paper's Table 2 rows are "Data Augmented with": the
    distance between the training images and the adversarial versions the
    model was fine-tuned on. ``tfadv train`` writes it to an offline
    fine-tuning run's ``summary.json`` (every stored example, all
    conventions); the value shown is the plan's ``ssim_convention``.
    """
    models = results.get("models", {})
    if not any(record.get("stored_set") for record in models.values()):
        return None
    convention = _plan(results).get("ssim_convention") or "gaussian"
    header = ["Model", "Stored set crafted by", "Training images", "1 − SSIM (stored training set, all)"]
    rows = []
    for name, record in models.items():
        stored = record.get("stored_set")
        if stored:
            count = stored.get("num_examples")
            rows.append([name, stored.get("label"), None if count is None else str(count),
                         (stored.get("ssim_distance") or {}).get(convention)])
    title = (f"Mean 1 − SSIM(stored adversarial, training image) over each fine-tuning run's stored training "
             f"set, SSIM convention {convention!r} — paper 1, Table 2 (\"Data Augmented with\")")
    return Table(title, header, rows, kind="distance")


def sweep_table(results):
    """Accuracy under each attack of the ε sweep (columns ordered as planned)."""
    sweep_ids = _plan(results).get("sweep", [])
    if not sweep_ids:
        return None
    epsilons = _plan(results).get("sweep_eps", [None] * len(sweep_ids))
    header = ["Model"] + [f"ε={format_eps(eps)}" if eps is not None else label
                          for eps, label in zip(epsilons, _labels(results, sweep_ids))]
    rows = []
    for name, record in results.get("models", {}).items():
        p = _model_p(results, record)
        rows.append([_row_name(name, record, p)] + [_value(record, i, p, "accuracy") for i in sweep_ids])
    attack = _plan(results).get("sweep_label") or "attack"
    return Table(f"Accuracy (%) under {attack} over ε — paper 2, Table 5 layout", header, rows)


def _autoattack_eps(results):
    """``{ε: attack id}`` of the planned AutoAttack attacks, from the parts that ran them."""
    planned = set(_plan(results).get("attacks", []))
    found = {}
    for record in results.get("models", {}).values():
        for part in record.get("parts", {}).values():
            settings = part.get("attack") or {}
            if part.get("attack_id") in planned and settings.get("name") == "autoattack":
                found[settings["eps"]] = part["attack_id"]
    return found


def robustness_table(results):
    """Paper 2, Table 6 layout: robust accuracy under AutoAttack, rows models, columns ε (None if no AutoAttack).

    PGD over ε is the paper's Table 5, :func:`sweep_table`: two tables, as the paper has.
    """
    autoattack_ids = _autoattack_eps(results)
    if not autoattack_ids:
        return None
    epsilons = sorted(autoattack_ids)
    header = ["Model"] + [f"ε={format_eps(eps)}" for eps in epsilons]
    rows = []
    for name, record in results.get("models", {}).items():
        p = _model_p(results, record)
        rows.append([_row_name(name, record, p)] + [_value(record, autoattack_ids[eps], p, "accuracy")
                                                     for eps in epsilons])
    return Table("Robust accuracy (%) under AutoAttack over ε — paper 2, Table 6 layout", header, rows)


def tradeoff_tables(results):
    """One table per conditioned model: clean and robust accuracy at each p of the grid."""
    plan = _plan(results)
    attack_id, grid = plan.get("tradeoff_attack"), plan.get("p_grid") or []
    tables = []
    if attack_id is None or not grid:
        return tables
    label = _labels(results, [attack_id])[0]
    for name, record in results.get("models", {}).items():
        if not record.get("conditioned"):
            continue
        rows = [
            [f"{p:g}", _value(record, attack_id, p, "clean_accuracy"), _value(record, attack_id, p, "accuracy")]
            for p in grid
        ]
        header = ["p", "Clean", f"Robust ({label})"]
        tables.append(Table(f"Trade-off over the masking strength p — {name}", header, rows))
    return tables


def all_tables(results):
    """Every table the results can fill, in report order."""
    tables = [accuracy_table(results), ssim_table(results), stored_set_table(results), sweep_table(results),
              robustness_table(results)]
    return [table for table in tables if table is not None] + tradeoff_tables(results)


def format_report(results):
    """``eval.md``: a header naming data and versions, then every table and figure."""
    dataset = results.get("dataset", {})
    versions = results.get("environment", {})
    lines = [
        "# Robustness evaluation",
        "",
        f"Data: {dataset.get('name') or 'arrays'}, {dataset.get('num_examples', '?')} examples "
        f"(fingerprint {dataset.get('fingerprint', '?')}). "
        + ", ".join(f"{key} {value}" for key, value in versions.items() if key in VERSION_KEYS)
        + f", code at {revision_label(versions.get('source'))}"
        + ". Attacks are untargeted and run on the model in inference mode; "
        "every setting is in eval.json.",
    ]
    for table in all_tables(results):
        lines += ["", table.markdown()]
        lines += _published_beneath(table, results)
    figures = results.get("figures", [])
    if figures:
        lines += ["", "### Figures", ""] + [f"![{figure}]({figure})" for figure in figures]
    return "\n".join(lines) + "\n"


def _published_beneath(table, results):
    """Paper 1's published rows under its Table 1 / Table 2 layouts (CIFAR-10 data only; else why not)."""
    from tfadv.evaluation.published import paper1_published_lines

    if not _plan(results).get("attacks"):
        return []
    layouts = {accuracy_table(results).title: "table1", ssim_table(results).title: "table2"}
    key = layouts.get(table.title)
    return [] if key is None else [""] + paper1_published_lines(results, key)


__all__ = ["Table", "accuracy_table", "all_tables", "format_report", "robustness_table", "ssim_table",
           "stored_set_table",
           "sweep_table", "tradeoff_tables"]


def embed_report(markdown, folder, extra_levels=1):
    """An ``eval.md`` inside a larger report.

    Headings go ``extra_levels`` levels down and figure links are re-rooted
    at ``folder`` (the evaluation's folder, relative to the report).
    """
    out = []
    for line in markdown.splitlines():
        if line.startswith("#"):
            line = "#" * extra_levels + line
        if line.startswith("![") and "](" in line:
            label, target = line[2:].split("](", 1)
            line = f"![{label}]({folder}/{target}"
        out.append(line)
    return "\n".join(out) + "\n"

