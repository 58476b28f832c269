"""The papers' published numbers beside ours.

The numbers live in ``tfadv/evaluation/published_numbers.yaml`` (package data,
read by :mod:`tfadv.evaluation.published`: one entry per paper, each table
with ``setting``, ``columns``, ``rows``, ``found_in`` and ``quotes``, paper 2's
figures in words as ``statements``); this module renders report tables in
which every row of ours has the paper's row beneath it, and the "paper
states" lines. A report section given no published entry prints our rows
only; one whose data or model is not the paper's setting says so instead.
"""
from tfadv.evaluation.published import (  # noqa: F401  (re-exported: the reports' one entry point)
    PUBLISHED_FILE,
    is_cifar10,
    load_published,
    not_shown_note,
    published_cell,
    setting_label,
)

NOT_FOUND = "not found in the sources available here"
NOT_REPORTED = "not reported in the paper"


def in_setting(table, data_name, architecture=None):
    """Whether results on ``data_name`` with ``architecture`` (None: not checked) are in ``table``'s setting."""
    setting = table.get("setting") or {}
    dataset = setting.get("dataset")
    if dataset == "cifar10" and not is_cifar10(data_name):
        return False
    if dataset and dataset != "cifar10" and dataset not in str(data_name or "").lower():
        return False
    wanted = setting.get("architecture")
    return architecture is None or wanted is None or architecture == wanted


def statement_line(statement, ours=None):
    """``Paper states: <claim> — <found_in>: “<quote>”`` (and ``ours: …`` when given)."""
    line = f"Paper states: {statement['claim']} — {statement['found_in']}: “{statement['quote']}”"
    return line + (f" Ours: {ours}." if ours else "")


def paper_citation(entry):
    """``Authors, “Title”, arXiv:… (url)`` of a published entry."""
    authors = ", ".join(entry["authors"])
    where = f"arXiv:{entry['arxiv']}" if entry.get("arxiv") else entry.get("venue", "")
    return f"{authors}, “{entry['title']}”, {where} ({entry['url']})"


def published_row(table, row_key):
    """The published numbers of one row (one per column, ``None`` where missing), or None."""
    row = (table.get("rows") or {}).get(row_key)
    if row is None:
        return None
    if len(row) != len(table["columns"]):
        raise ValueError(f"published_numbers.yaml: row {row_key!r} has {len(row)} numbers for "
                         f"{len(table['columns'])} columns {table['columns']}")
    return list(row)


def _cell(value, units):
    if value is None:
        return "–"
    return f"{value:.2f}" if units == "percent" else f"{value:.4f}"


def comparison_table(header, rows, units, with_published=True, missing=NOT_FOUND):
    """A markdown table with, for every row, our numbers and (``with_published``) the paper's beneath them.

    Args:
        header: column labels after the row label (e.g. ``["Clean", "FGSM ε=8/255"]``).
        rows: ``[(label, ours, published)]``; ``ours`` lists numbers in the
            table's units (accuracy as a percentage), ``published`` the
            paper's numbers or ``None`` when they were not found.
        units: ``"percent"`` or ``"distance"``.
        with_published: add the ``paper`` row under each of ours.
        missing: the ``paper`` row's text where ``published`` is ``None``
            (:data:`NOT_FOUND`, or :data:`NOT_REPORTED` when the paper has
            the table but no such row).
    """
    lines = ["| Model | | " + " | ".join(header) + " |",
             "|---|---|" + "---:|" * len(header)]
    for label, ours, published in rows:
        lines.append(f"| {label} | ours | " + " | ".join(_cell(v, units) for v in ours) + " |")
        if not with_published:
            continue
        if published is None:
            paper_cells = [missing] + [""] * (len(header) - 1)
        else:
            paper_cells = [published_cell(v, units) if v is not None else "not found" for v in published]
        lines.append("| | paper | " + " | ".join(paper_cells) + " |")
    return "\n".join(lines)


def source_line(table):
    """Where a published table's numbers were read, or how to add them."""
    if table.get("found_in"):
        return f"Published numbers ({setting_label(table.get('setting') or {})}, the paper's scale): {table['found_in']}."
    return (f"Published numbers: {NOT_FOUND} (tfadv/evaluation/published_numbers.yaml; add them there with "
            "their source and rerun to fill the column).")
