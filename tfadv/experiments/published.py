"""The papers' published numbers beside ours.

The numbers live in ``tools/published_numbers.yaml`` (a data file: one entry
per paper, each table with ``columns``, ``rows`` and ``found_in``); this
module reads an entry and renders tables in which every row of ours has the
paper's row beneath it. A report section given no published entry prints our
rows only.
"""
import yaml

NOT_FOUND = "not found in the sources available here"


def load_published(path, paper):
    """The ``paper`` entry (``"paper1"``, ``"paper2"``) of a published-numbers YAML file."""
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)[paper]


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


def comparison_table(header, rows, units, with_published=True):
    """A markdown table with, for every row, our numbers and (``with_published``) the paper's beneath them.

    Args:
        header: column labels after the row label (e.g. ``["Clean", "FGSM ε=8/255"]``).
        rows: ``[(label, ours, published)]``; ``ours`` lists numbers in the
            table's units (accuracy as a percentage), ``published`` the
            paper's numbers or ``None`` when they were not found.
        units: ``"percent"`` or ``"distance"``.
        with_published: add the ``paper`` row under each of ours.
    """
    lines = ["| Model | | " + " | ".join(header) + " |",
             "|---|---|" + "---:|" * len(header)]
    for label, ours, published in rows:
        lines.append(f"| {label} | ours | " + " | ".join(_cell(v, units) for v in ours) + " |")
        if not with_published:
            continue
        if published is None:
            paper_cells = [NOT_FOUND] + [""] * (len(header) - 1)
        else:
            paper_cells = [_cell(v, units) if v is not None else "not found" for v in published]
        lines.append("| | paper | " + " | ".join(paper_cells) + " |")
    return "\n".join(lines)


def source_line(table):
    """Where a published table's numbers were read, or how to add them."""
    if table.get("found_in"):
        return f"Published numbers: {table['found_in']}."
    return (f"Published numbers: {NOT_FOUND} (tools/published_numbers.yaml lists what was searched; "
            "add them there with their source and rerun to fill the column).")
