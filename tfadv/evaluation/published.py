"""The papers' published numbers (``published_numbers.yaml``, package data) and when they apply.

The numbers are for one setting each (paper 1's tables: CIFAR-10, ResNet-32).
``eval.md`` prints them under its Table 1 / Table 2 layouts only when the
evaluated data is CIFAR-10 (:func:`is_cifar10`, judged by the data's name) and
says why not otherwise; the drivers' reports (``tfadv.experiments.published``)
also check the architecture.
"""
import math
import os
import re

PUBLISHED_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "published_numbers.yaml")
"""The data file: one entry per paper (tables with ``found_in`` and ``quotes``; paper 2's statements)."""

_CIFAR10 = re.compile(r"cifar[-_]?10(?!\d)")


def load_published(paper=None, path=None):
    """The ``paper`` entry (``"paper1"``, ``"paper2"``) of the published numbers, or all of them.

    Read with ``yaml.safe_load`` from ``path`` (default :data:`PUBLISHED_FILE`).
    """
    import yaml

    with open(path or PUBLISHED_FILE, encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    if paper is None:
        return data
    if paper not in data:
        raise ValueError(f"paper must be one of {sorted(data)}. Received: paper={paper!r}")
    return data[paper]


def is_cifar10(name):
    """Whether a dataset name (``cifar10``, ``cifar10[test][:500]``, ``…/cifar10_mini_train.npz``) is CIFAR-10.

    Judged by the name: ``cifar10`` / ``cifar-10`` / ``cifar_10`` in its file
    name, not followed by another digit (so CIFAR-100 is not).
    """
    if not name:
        return False
    base = os.path.basename(str(name).split("[", 1)[0].rstrip("/\\")).lower()
    return bool(_CIFAR10.search(base))


def not_shown_note(setting, data_name):
    """``published numbers are for CIFAR-10 ResNet-32; not shown for <data>``."""
    return f"Published numbers are for {setting_label(setting)}; not shown for {data_name or 'these data'}."


def setting_label(setting):
    """``CIFAR-10 ResNet-32`` from ``{dataset: cifar10, architecture: resnet32}``."""
    names = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "resnet32": "ResNet-32", "resnet18": "ResNet-18",
             "densenet121": "DenseNet-121", "imagenet": "ImageNet"}
    parts = [setting.get("dataset"), setting.get("architecture")]
    return " ".join(names.get(str(p), str(p)) for p in parts if p)


def paper_column(attack, attacks):
    """The paper's column key whose attack ``attack`` (an ``eval.json`` part's ``attack`` dict) is, or None.

    ``attacks`` maps column key → the paper's settings (``name`` and, where
    the paper gives them, ``eps`` and ``steps``).
    """
    if not attack:
        return None
    for key, wanted in attacks.items():
        if attack.get("name") != wanted["name"]:
            continue
        if "eps" in wanted and not math.isclose(attack.get("eps") or 0.0, wanted["eps"], rel_tol=1e-6):
            continue
        if "steps" in wanted and attack.get("steps") != wanted["steps"]:
            continue
        return key
    return None


def _attacks_by_id(results):
    attacks = {}
    for record in results.get("models", {}).values():
        for part in record.get("parts", {}).values():
            if part.get("attack_id") is not None:
                attacks[part["attack_id"]] = part.get("attack")
    return attacks


def published_cell(value, units):
    """A published number as the paper prints it: accuracy with 2 decimals, a distance in full (0.049344)."""
    if value is None:
        return "–"
    return f"{value:.2f}" if units == "percent" else f"{value:g}"


def paper1_published_lines(results, table_key, published=None):
    """``eval.md`` lines under the Table 1 (``"table1"``) or Table 2 (``"table2"``) layout: the paper's rows.

    The columns are ours (the plan's attacks); a column shows the paper's
    number when its attack is the paper's (:func:`paper_column`), else "–".
    Data that are not CIFAR-10 get one sentence saying why nothing is shown.
    """
    published = published or load_published("paper1")
    table = published["tables"][table_key]
    data_name = results.get("dataset", {}).get("name")
    if not is_cifar10(data_name):
        return [not_shown_note(table["setting"], data_name)]
    by_id = _attacks_by_id(results)
    keys = [paper_column(by_id.get(attack_id), published["attacks"])
            for attack_id in (results.get("plan") or {}).get("attacks", [])]
    columns = table["columns"]
    units = table["units"]
    lines = [f"Published ({setting_label(table['setting'])}, full scale): {table['found_in']}.", ""]
    if table_key == "table1":
        header = ["Paper: fine-tuned with", "Clean"] + [k or "(not the paper's attack)" for k in keys]
        lines += ["| " + " | ".join(header) + " |", "|" + "|".join([" --- "] + [" ---: "] * (len(header) - 1)) + "|"]
        for row_key, row in table["rows"].items():
            values = dict(zip(columns, row))
            cells = [values.get("clean")] + [values.get(k) if k else None for k in keys]
            label = "none (clean model)" if row_key == "clean" else row_key
            lines.append(f"| {label} | " + " | ".join(published_cell(v, units) for v in cells) + " |")
    else:
        from tfadv.evaluation.specs import PAPER1_SSIM_CONVENTION

        convention = (results.get("plan") or {}).get("ssim_convention") or "gaussian"
        if convention != PAPER1_SSIM_CONVENTION:
            return [f"The paper's Table 2 figures are not shown: the released code measures them with "
                    f"`{PAPER1_SSIM_CONVENTION}` (--ssim-convention), this table with `{convention}`."]
        header = ["Paper: data augmented with"] + ["1 − SSIM"]
        lines += ["| " + " | ".join(header) + " |", "| --- | ---: |"]
        values = dict(zip(columns, table["rows"]["clean"]))
        for key in columns:
            lines.append(f"| {key} | {published_cell(values[key], units)} |")
        lines += ["", "The paper's figure is one per attack; the released code measures it over the successful "
                  "attacks (the prediction changed), as the \"(test, flipped)\" columns above: compare it with "
                  "the clean model's row there."]
    return lines
